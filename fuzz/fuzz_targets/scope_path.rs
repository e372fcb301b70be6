//! `gateway::scope::decode_path` and the scope decision `ScopeRules::check`.
//!
//! Input layout: `[method, depth, scope, path bytes.., (b'\n', destination bytes..)?]`
//! - method: index into `METHODS` (reads, writes, extension methods);
//! - depth: none, `0`, `1` or `infinity`;
//! - scope: one collection `/calendars/alice/work/`, the `caldav` service,
//!   or everything read-only; the user is always `alice`;
//! - the rest is the request path, then after the first `\n` an optional
//!   `Destination` value (used by COPY and MOVE).
//!
//! Invariants: `decode_path` never panics; a decoded path starts with `/`,
//! has no `.`/`..` segment, no `\`, no NUL or ASCII control character, and
//! equals a plain percent-decoding of the input (so what we match is what
//! the backend sees). `check` never allows a write (any method but GET,
//! HEAD, OPTIONS, PROPFIND, REPORT) outside the scope, for the path or for a
//! COPY/MOVE Destination; it allows a read only inside the scope or on a
//! discovery path. For an allowed COPY/MOVE, the path Radicale and WsgiDAV
//! really write to (their `urlparse(unquote(Destination))`, dot segments
//! resolved: `davgate_fuzz::Backend`) must be inside the scope too.
//!
//! `DAVGATE_FUZZ_KNOWN` tags: those of the destination target
//! (`dest-fragment`, `dest-params`, `dest-scheme`, `dest-network-path`)
//! skip the backends' view of a Destination in that class.

#![no_main]

use davgate::gateway::scope::{Scope, ScopeRules, Target, decode_destination, decode_path};
use davgate_fuzz::{Backend, tolerated_destination};
use http::{HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const METHODS: [&str; 20] = [
    "GET",
    "HEAD",
    "OPTIONS",
    "PROPFIND",
    "REPORT",
    "PUT",
    "DELETE",
    "MKCOL",
    "MKCALENDAR",
    "PROPPATCH",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "POST",
    "ACL",
    "PATCH",
    "get",
    "propfind",
    "SEARCH",
];
const READS: [&str; 5] = ["GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"];
const USER: &str = "alice";

/// The rules of the default config (`config.rs`): services and discovery paths.
fn rules() -> &'static ScopeRules {
    static RULES: OnceLock<ScopeRules> = OnceLock::new();
    RULES.get_or_init(|| {
        let services: BTreeMap<String, Vec<String>> =
            [("caldav", "/calendars/{user}/"), ("carddav", "/addressbooks/{user}/"), ("files", "/files/{user}/")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect();
        let discovery = ["/", "/.well-known/caldav", "/.well-known/carddav", "/principals/{user}/", "/{user}"]
            .into_iter()
            .map(String::from)
            .collect();
        ScopeRules::new(services, discovery)
    })
}

/// Subtree test written independently of `scope::matches`.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

fn exact(path: &str, p: &str) -> bool {
    path == p || (p != "/" && path.strip_suffix('/') == Some(p))
}

fn is_discovery(path: &str) -> bool {
    ["/", "/.well-known/caldav", "/.well-known/carddav", "/alice"].iter().any(|p| exact(path, p))
        || under(path, "/principals/alice")
}

fn check_decoded(raw: &str, decoded: &str) {
    assert!(decoded.starts_with('/'), "decoded {raw:?} to {decoded:?}: no leading /");
    assert!(!decoded.split('/').any(|seg| seg == "." || seg == ".."), "decoded {raw:?} to {decoded:?}: dot segment");
    assert!(!decoded.contains('\\'), "decoded {raw:?} to {decoded:?}: backslash");
    assert!(!decoded.bytes().any(|b| b.is_ascii_control()), "decoded {raw:?} to {decoded:?}: control character");
    let plain: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    assert_eq!(plain, decoded.as_bytes(), "decoded {raw:?} to {decoded:?}, a plain percent-decoding differs");
}

fuzz_target!(|data: &[u8]| {
    let [m, d, s, rest @ ..] = data else { return };
    let (path_bytes, dest_bytes) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let Ok(raw) = std::str::from_utf8(path_bytes) else { return };

    let decoded = decode_path(raw);
    if let Ok(decoded) = &decoded {
        check_decoded(raw, decoded);
    }

    let method_name = METHODS[usize::from(*m) % METHODS.len()];
    let method = Method::from_bytes(method_name.as_bytes()).unwrap();
    let depth = match d % 4 {
        0 => None,
        1 => Some(HeaderValue::from_static("0")),
        2 => Some(HeaderValue::from_static("1")),
        _ => Some(HeaderValue::from_static("infinity")),
    };
    let destination = dest_bytes.and_then(|b| HeaderValue::from_bytes(b).ok());
    let (scope, prefix) = match s % 3 {
        0 => (
            Scope { collections: vec!["/calendars/alice/work/".into()], ..Scope::default() },
            Some("/calendars/alice/work"),
        ),
        1 => (Scope { services: vec!["caldav".into()], ..Scope::default() }, Some("/calendars/alice")),
        _ => (Scope { read_only: true, ..Scope::default() }, None),
    };
    let target = Target {
        method: &method,
        path: raw,
        destination: destination.as_ref(),
        depth: depth.as_ref(),
        client_ip: "127.0.0.1".parse().unwrap(),
    };

    if rules().check(&scope, USER, &target).is_err() {
        return;
    }
    let path = decoded.unwrap_or_else(|e| panic!("allowed {method_name} {raw:?}, which decode_path refuses: {e}"));
    let write = !READS.contains(&method_name);
    match prefix {
        None => assert!(!write, "read-only scope allowed {method_name} {raw:?}"),
        Some(prefix) if write => {
            assert!(under(&path, prefix), "allowed {method_name} {raw:?} ({path:?}) outside {prefix}")
        }
        Some(prefix) => assert!(
            under(&path, prefix) || is_discovery(&path),
            "allowed {method_name} {raw:?} ({path:?}): neither in {prefix} nor a discovery path"
        ),
    }
    if matches!(method_name, "COPY" | "MOVE") {
        let dest = destination.as_ref().expect("COPY/MOVE allowed without a Destination");
        let dest_path = decode_destination(dest)
            .unwrap_or_else(|e| panic!("allowed {method_name} to {dest:?}, which decode_destination refuses: {e}"));
        if let Some(prefix) = prefix {
            assert!(under(&dest_path, prefix), "allowed {method_name} to {dest:?} ({dest_path:?}) outside {prefix}");
            let text = dest.to_str().expect("accepted a non-ASCII Destination");
            if !tolerated_destination(text, &dest_path) {
                for backend in Backend::ALL {
                    if let Some(target) = backend.destination_target(text) {
                        assert!(
                            under(&target, prefix),
                            "allowed {method_name} to {text:?}: we checked {dest_path:?}, {} writes to {target:?}, outside {prefix}",
                            backend.name()
                        );
                    }
                }
            }
        }
    }
});
