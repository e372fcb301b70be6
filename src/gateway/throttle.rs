//! Brute-force throttling of cold (uncached) sign-ins.
//!
//! Failures are counted per client network (an IPv4 address, an IPv6 /56 by
//! default) and per user name, in a window that starts with the first
//! failure. Each further cold attempt from a key with failures waits
//! `base_delay · 2^(failures-1)` (capped), and from `max_failures` on it is
//! refused with `429` and `Retry-After` until the window ends, without any
//! hashing, after a short tarpit that makes a hammering loop cheap. Credentials already in the verify cache never get here, so an
//! attacker's failures never slow a valid client that is already signed in.
//!
//! Memory is bounded: both maps are caches with a maximum size, so a flood
//! from a million addresses evicts old entries instead of growing.

use crate::config::ThrottleConfig;
use moka::sync::Cache;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Failures of one key within its window.
#[derive(Debug)]
struct Failures {
    count: AtomicU32,
    since: Instant,
}

/// What a cold attempt must do before it may be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead after waiting this long (zero for a clean key).
    Proceed(Duration),
    /// Refuse with `429`; the client may retry after this long.
    Refuse(Duration),
}

/// The network a client address counts for: the address itself for IPv4,
/// its /`ipv6_prefix` for IPv6 (one subscriber usually holds a /56 or /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Network(u128);

pub struct Throttle {
    networks: Cache<Network, Arc<Failures>>,
    users: Cache<String, Arc<Failures>>,
    config: ThrottleConfig,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        let networks = Cache::builder().max_capacity(config.max_tracked).time_to_live(config.window).build();
        let users = Cache::builder().max_capacity(config.max_tracked).time_to_live(config.window).build();
        Self { networks, users, config }
    }

    fn network(&self, ip: IpAddr) -> Network {
        match ip {
            IpAddr::V4(v4) => Network(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Network(u128::from(u32::from(v4))),
                None => {
                    let bits = u128::from(v6);
                    let prefix = u32::from(self.config.ipv6_prefix.min(128));
                    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
                    // Tag IPv6 so it can never collide with an IPv4 key.
                    Network((bits & mask) | 1)
                }
            },
        }
    }

    fn verdict(&self, failures: Option<Arc<Failures>>) -> Verdict {
        let Some(f) = failures else { return Verdict::Proceed(Duration::ZERO) };
        let count = f.count.load(Ordering::Relaxed);
        if count >= self.config.max_failures {
            let left = self.config.window.saturating_sub(f.since.elapsed());
            return Verdict::Refuse(left.max(Duration::from_secs(1)));
        }
        if count == 0 {
            return Verdict::Proceed(Duration::ZERO);
        }
        let factor = 1u32.checked_shl(count - 1).unwrap_or(u32::MAX);
        Verdict::Proceed(self.config.base_delay.saturating_mul(factor).min(self.config.max_delay))
    }

    /// What a cold attempt for `user` from `ip` must do: the stricter of the
    /// network's and the user's verdict.
    pub fn check(&self, ip: IpAddr, user: &str) -> Verdict {
        let by_net = self.verdict(self.networks.get(&self.network(ip)));
        let by_user = self.verdict(self.users.get(user));
        match (by_net, by_user) {
            (Verdict::Refuse(a), Verdict::Refuse(b)) => Verdict::Refuse(a.max(b)),
            (r @ Verdict::Refuse(_), _) | (_, r @ Verdict::Refuse(_)) => r,
            (Verdict::Proceed(a), Verdict::Proceed(b)) => Verdict::Proceed(a.max(b)),
        }
    }

    /// Counts one failed attempt against the network and the user name.
    pub fn record_failure(&self, ip: IpAddr, user: &str) {
        let fresh = || Arc::new(Failures { count: AtomicU32::new(0), since: Instant::now() });
        self.networks.get_with(self.network(ip), fresh).count.fetch_add(1, Ordering::Relaxed);
        self.users.get_with_by_ref(user, fresh).count.fetch_add(1, Ordering::Relaxed);
    }

    /// How long a refused attempt is held before its answer.
    pub fn tarpit(&self) -> Duration {
        self.config.tarpit
    }

    /// Keys tracked now (networks, users), after pending evictions.
    pub fn tracked(&self) -> (u64, u64) {
        self.networks.run_pending_tasks();
        self.users.run_pending_tasks();
        (self.networks.entry_count(), self.users.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(max_tracked: u64) -> Throttle {
        Throttle::new(ThrottleConfig {
            window: Duration::from_secs(1800),
            max_failures: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(25),
            tarpit: Duration::from_secs(1),
            max_tracked,
            ipv6_prefix: 56,
        })
    }

    #[test]
    fn delay_doubles_with_each_failure_then_attempts_are_refused() {
        let t = throttle(1000);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(t.check(ip, "alice"), Verdict::Proceed(Duration::ZERO));
        let mut delays = Vec::new();
        for _ in 0..9 {
            t.record_failure(ip, "alice");
            match t.check(ip, "alice") {
                Verdict::Proceed(d) => delays.push(d.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 3200, 6400, 12800, 25000]);
        t.record_failure(ip, "alice");
        assert!(matches!(t.check(ip, "alice"), Verdict::Refuse(d) if d > Duration::from_secs(1700)));
        // Another user from the same network is refused too; the user from elsewhere as well.
        assert!(matches!(t.check(ip, "bob"), Verdict::Refuse(_)));
        assert!(matches!(t.check("203.0.113.1".parse().unwrap(), "alice"), Verdict::Refuse(_)));
        assert_eq!(t.check("203.0.113.1".parse().unwrap(), "bob"), Verdict::Proceed(Duration::ZERO));
    }

    #[test]
    fn ipv6_addresses_count_per_prefix() {
        let t = throttle(1000);
        t.record_failure("2001:db8:aa:bb00::1".parse().unwrap(), "x");
        let same_56 = "2001:db8:aa:bbff:1::2".parse().unwrap();
        let other_56 = "2001:db8:aa:cc00::1".parse().unwrap();
        assert_eq!(t.check(same_56, "y"), Verdict::Proceed(Duration::from_millis(100)));
        assert_eq!(t.check(other_56, "y"), Verdict::Proceed(Duration::ZERO));
        // An IPv4-mapped address counts as its IPv4 address.
        t.record_failure("192.0.2.1".parse().unwrap(), "z");
        assert_ne!(t.check("::ffff:192.0.2.1".parse().unwrap(), "w"), Verdict::Proceed(Duration::ZERO));
    }

    #[test]
    fn memory_stays_bounded_under_a_million_addresses() {
        let t = throttle(10_000);
        for i in 0..1_000_000u32 {
            t.record_failure(IpAddr::V4(i.into()), "alice");
        }
        let (networks, users) = t.tracked();
        assert!(networks <= 10_000, "{networks} networks tracked");
        assert_eq!(users, 1);
    }
}
