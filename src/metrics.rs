//! Prometheus metrics (`prometheus-client`), served as OpenMetrics text on
//! the admin listener's `/metrics`.
//!
//! The request path must stay cheap: every (outcome, method) counter is
//! created once at start and indexed by enum, so recording a request is one
//! atomic add, with no label hashing. (Histograms in prometheus-client take
//! a short uncontended mutex per observation.) No label ever carries a user
//! name, a path or anything secret.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// How a gateway request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Forwarded, and the backend answered (whatever its status).
    Ok,
    Unauthenticated,
    ForbiddenScope,
    Throttled,
    /// The hashing queue was full.
    Busy,
    BadRequest,
    UpstreamError,
    StoreUnavailable,
}

impl Outcome {
    const ALL: [Outcome; 8] = [
        Self::Ok,
        Self::Unauthenticated,
        Self::ForbiddenScope,
        Self::Throttled,
        Self::Busy,
        Self::BadRequest,
        Self::UpstreamError,
        Self::StoreUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unauthenticated => "unauthenticated",
            Self::ForbiddenScope => "forbidden_scope",
            Self::Throttled => "throttled",
            Self::Busy => "busy",
            Self::BadRequest => "bad_request",
            Self::UpstreamError => "upstream_error",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Request methods get a label of their own only when they are known, so a
/// client cannot grow the label set.
const METHODS: [&str; 18] = [
    "GET",
    "HEAD",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "REPORT",
    "PUT",
    "DELETE",
    "POST",
    "PATCH",
    "MKCOL",
    "MKCALENDAR",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "ACL",
    "other",
];

fn method_index(method: &http::Method) -> usize {
    let name = method.as_str();
    METHODS[..METHODS.len() - 1].iter().position(|m| *m == name).unwrap_or(METHODS.len() - 1)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    outcome: Outcome,
    method: &'static str,
}

/// Every metric davgate exports.
pub struct Metrics {
    registry: Registry,
    /// `[outcome][method]`, pre-created from the labelled family.
    requests: Vec<Vec<Counter>>,
    pub verify_cache_hits: Counter,
    pub verify_cache_misses: Counter,
    /// Requests the HTTP/1 relay served (the others went through hyper).
    pub relayed_requests: Counter,
    pub argon2_duration: Histogram,
    pub upstream_duration: Histogram,
    pub connections: Gauge,
    pub activity_flush_duration: Histogram,
    pub store_errors: Counter,
    pub expired_swept: Counter,
    /// Set from `Store::write_count` at each scrape.
    pub store_writes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("davgate");
        let family = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Gateway requests by outcome and method", family.clone());
        let requests = Outcome::ALL
            .iter()
            .map(|&outcome| {
                METHODS.iter().map(|&method| family.get_or_create(&RequestLabels { outcome, method }).clone()).collect()
            })
            .collect();
        let this = Self {
            requests,
            verify_cache_hits: Counter::default(),
            verify_cache_misses: Counter::default(),
            relayed_requests: Counter::default(),
            // 1 ms .. ~8 s: argon2 takes tens of milliseconds, more when queued.
            argon2_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            // 0.5 ms .. ~65 s.
            upstream_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            connections: Gauge::default(),
            activity_flush_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            store_errors: Counter::default(),
            expired_swept: Counter::default(),
            store_writes: Gauge::default(),
            registry,
        };
        let mut registry = this.registry;
        registry.register(
            "verify_cache_hits",
            "Credentials found in the verify cache (no hashing)",
            this.verify_cache_hits.clone(),
        );
        registry.register(
            "verify_cache_misses",
            "Credentials not in the verify cache (cold: throttled, malformed, or a store read and one argon2 run)",
            this.verify_cache_misses.clone(),
        );
        registry.register(
            "relayed_requests",
            "Requests served by the HTTP/1 relay (plain requests to a plain-HTTP backend); the rest go through hyper",
            this.relayed_requests.clone(),
        );
        registry.register(
            "argon2_verification_seconds",
            "argon2id verifications and their duration, queueing included",
            this.argon2_duration.clone(),
        );
        registry.register(
            "upstream_response_seconds",
            "Time from forwarding a request to the backend's response headers",
            this.upstream_duration.clone(),
        );
        registry.register("connections_active", "Open client connections", this.connections.clone());
        registry.register(
            "activity_flush_seconds",
            "Duration of each batched last-activity write (empty batches are not written)",
            this.activity_flush_duration.clone(),
        );
        registry.register("store_errors", "Store operations that failed", this.store_errors.clone());
        registry.register(
            "store_writes",
            "Durable store writes since start (none on the request path; one per activity batch)",
            this.store_writes.clone(),
        );
        registry.register(
            "passwords_expired",
            "Expired passwords recorded by the expiry sweep",
            this.expired_swept.clone(),
        );
        Self { registry, ..this }
    }

    /// Counts one gateway request.
    pub fn request(&self, outcome: Outcome, method: &http::Method) {
        self.requests[outcome as usize][method_index(method)].inc();
    }

    /// The count for one (outcome, method) pair (tests and the benchmark).
    pub fn requests(&self, outcome: Outcome, method: &http::Method) -> u64 {
        self.requests[outcome as usize][method_index(method)].get()
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Seconds as a histogram observes them.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_index_their_own_counters() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "Outcome::ALL follows the declaration order");
        }
    }

    #[test]
    fn each_request_counts_once_under_its_outcome_and_method() {
        let m = Metrics::new();
        m.request(Outcome::Ok, &http::Method::GET);
        m.request(Outcome::Ok, &http::Method::GET);
        m.request(Outcome::Throttled, &http::Method::from_bytes(b"PROPFIND").unwrap());
        m.request(Outcome::Unauthenticated, &http::Method::from_bytes(b"BREW").unwrap());
        assert_eq!(m.requests(Outcome::Ok, &http::Method::GET), 2);
        let text = m.encode();
        assert!(text.contains(r#"davgate_requests_total{outcome="ok",method="GET"} 2"#), "{text}");
        assert!(text.contains(r#"davgate_requests_total{outcome="throttled",method="PROPFIND"} 1"#));
        assert!(text.contains(r#"davgate_requests_total{outcome="unauthenticated",method="other"} 1"#));
        assert!(!text.contains("BREW"));
        assert!(text.ends_with("# EOF\n"));
    }
}
