//! Abuse: brute-force throttling and the bounded hashing pool, end to end.

mod common;

use common::gate::Extra;
use common::{Gate, Http, Recorder, all};
use std::time::{Duration, Instant};

const STRICT: &str = "[throttle]\nmax_failures = 3\nbase_delay = \"200ms\"\n";

fn wrong(pw: &str, n: u32) -> String {
    format!("{}-{n:0>5}-22222-22222-22222", &pw[..5]).replace(['0', '1'], "3")
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_slow_then_refuse_cold_attempts_but_never_cached_clients() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with(&backend.url(), Extra { sections: STRICT, ..Extra::default() }).await;
    let signed_in = gate.password("alice", all()).await;
    let cold = gate.password("alice", all()).await;
    let http = Http::h1();
    let url = gate.url("/alice/");
    assert_eq!(http.get(&url, "alice", &signed_in).await.status, 200);

    let mut took = Vec::new();
    for n in 0..3 {
        let started = Instant::now();
        assert_eq!(http.get(&url, "alice", &wrong(&signed_in, n)).await.status, 401);
        took.push(started.elapsed());
    }
    assert!(took[1] >= Duration::from_millis(200), "second failure waited {:?}", took[1]);
    assert!(took[2] >= Duration::from_millis(400), "third failure waited {:?}", took[2]);

    let before = gate.verifications();
    let started = Instant::now();
    let refused = http.get(&url, "alice", &wrong(&signed_in, 9)).await;
    assert!(started.elapsed() >= Duration::from_millis(1000), "a refusal is held for the tarpit");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.text(), "too many failed sign-ins; try again later\n");
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 1700 && retry_after <= 1800, "{retry_after}");
    assert_eq!(http.get(&url, "alice", &cold).await.status, 429, "cold attempts wait for the window");
    assert_eq!(gate.verifications(), before, "a throttled attempt costs no hashing");

    for _ in 0..5 {
        assert_eq!(http.get(&url, "alice", &signed_in).await.status, 200, "a cached client is never throttled");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_count_per_user_across_addresses_and_per_address_across_users() {
    let backend = Recorder::start().await;
    let extra = Extra { server: "trusted_proxies = [\"127.0.0.1/32\"]", sections: STRICT, ..Extra::default() };
    let gate = Gate::start_with(&backend.url(), extra).await;
    let alice = gate.password("alice", all()).await;
    let bob = gate.password("bob", all()).await;
    let http = Http::h1();
    let url = gate.url("/x");
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for (n, ip) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"].into_iter().enumerate() {
        let r = http.call("GET", &url, Some(("alice", &wrong(&alice, n as u32))), &from(ip)).await;
        assert_eq!(r.status, 401);
    }
    let r = http.call("GET", &url, Some(("alice", &alice)), &from("203.0.113.9")).await;
    assert_eq!(r.status, 429, "alice's name is throttled wherever the attempt comes from");
    let r = http.call("GET", &url, Some(("bob", &bob)), &from("198.51.100.1")).await;
    assert_eq!(r.status, 200, "one failure from an address does not throttle it");

    for n in 0..3 {
        let r = http.call("GET", &url, Some(("bob", &wrong(&bob, n))), &from("192.0.2.50")).await;
        assert_eq!(r.status, 401);
    }
    let carol = gate.password("carol", all()).await;
    let r = http.call("GET", &url, Some(("carol", &carol)), &from("192.0.2.50")).await;
    assert_eq!(r.status, 429, "an address with too many failures is throttled for every user");
    let r = http.call("GET", &url, Some(("carol", &carol)), &from("192.0.2.51")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_hashing_queue_turns_cold_requests_away_at_once() {
    let backend = Recorder::start().await;
    let sections = "[hash]\nmemory_kib = 65536\niterations = 4\nmax_concurrent = 1\nmax_queue = 1\n";
    let gate = Gate::start_with(&backend.url(), Extra { sections, ..Extra::default() }).await;
    let mut passwords = Vec::new();
    for _ in 0..12 {
        passwords.push(gate.password("alice", all()).await);
    }
    let url = gate.url("/alice/");
    let tasks: Vec<_> = passwords
        .iter()
        .cloned()
        .map(|pw| {
            let url = url.clone();
            tokio::spawn(async move { Http::h1().get(&url, "alice", &pw).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 503 {
            assert_eq!(r.headers["retry-after"], "1");
            assert_eq!(r.text(), "too many new sign-ins at once; try again\n");
        }
        statuses.push(r.status.as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&503), "12 concurrent cold requests on a pool of 1 + 1: {statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    // Turned away is not failed: every password works when retried.
    for pw in &passwords {
        assert_eq!(Http::h1().get(&url, "alice", pw).await.status, 200);
    }
}
