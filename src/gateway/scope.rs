//! What an app password may touch: path normalisation and the scope decision.
//!
//! A scope is `all`, or a set of services (path patterns from `[services]`),
//! or explicit collection paths; plus an optional read-only flag and source
//! networks. Discovery paths (RFC 6764 `.well-known`, principals, `/`) are
//! readable by every scope so that clients can find their collections.
//!
//! The path is decided on after percent-decoding, and anything a backend
//! could resolve differently from us (dot segments, encoded `/`, `\`, NUL,
//! bad escapes, invalid UTF-8) is refused, never forwarded: the decoded path
//! we match is then exactly the path the backend will see.

use http::{HeaderValue, Method};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The scope stored with each app password. Empty `services` and
/// `collections` together mean every path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>, example = json!(["192.0.2.0/24"]))]
    pub networks: Vec<IpNet>,
}

impl Scope {
    pub fn is_all_paths(&self) -> bool {
        self.services.is_empty() && self.collections.is_empty()
    }

    /// One short line for listings: `caldav,carddav read-only`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.is_all_paths() {
            parts.push("all".into());
        }
        if !self.services.is_empty() {
            parts.push(self.services.join(","));
        }
        if !self.collections.is_empty() {
            parts.push(self.collections.join(","));
        }
        if self.read_only {
            parts.push("read-only".into());
        }
        if !self.networks.is_empty() {
            let nets: Vec<String> = self.networks.iter().map(ToString::to_string).collect();
            parts.push(format!("from {}", nets.join(",")));
        }
        parts.join(" ")
    }
}

/// Why a request was refused by scope; the reason is the one-line body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The path (or Destination, or method name) is malformed or could
    /// escape its prefix: `400`.
    #[error("{0}")]
    BadPath(&'static str),
    /// Well-formed but outside what the password may do: `403`.
    #[error("{0}")]
    OutOfScope(&'static str),
}

/// The parts of a request the scope decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub method: &'a Method,
    /// The request target's path, as sent (still percent-encoded).
    pub path: &'a str,
    pub destination: Option<&'a HeaderValue>,
    pub depth: Option<&'a HeaderValue>,
    pub client_ip: IpAddr,
}

impl<'a> Target<'a> {
    /// Reads a request; a repeated `Destination` or `Depth` is refused, since
    /// backends join repeated headers and would read something else than us.
    pub fn of<B>(req: &'a http::Request<B>, client_ip: IpAddr) -> Result<Self, Refusal> {
        let single = |name: &str| {
            let mut values = req.headers().get_all(name).iter();
            let first = values.next();
            match values.next() {
                Some(_) => Err(Refusal::BadPath("repeated Destination or Depth header")),
                None => Ok(first),
            }
        };
        Ok(Self {
            method: req.method(),
            path: req.uri().path(),
            destination: single("destination")?,
            depth: single("depth")?,
            client_ip,
        })
    }
}

/// Discovery paths are for finding collections, not for listing a tree:
/// PROPFIND there needs `Depth: 0` or `1` (none means infinity, RFC 4918
/// §9.1), REPORT `Depth: 0` (its default, RFC 3253 §3.6).
fn discovery_depth(method: &Method, depth: Option<&HeaderValue>) -> Result<(), Refusal> {
    let depth = depth.map(|d| d.as_bytes());
    match (method.as_str(), depth) {
        ("PROPFIND", Some(b"0" | b"1")) => Ok(()),
        ("PROPFIND", _) => Err(Refusal::OutOfScope("discovery paths allow PROPFIND with Depth 0 or 1 only")),
        ("REPORT", None | Some(b"0")) => Ok(()),
        ("REPORT", _) => Err(Refusal::OutOfScope("discovery paths allow REPORT with Depth 0 only")),
        _ => Ok(()),
    }
}

/// Methods a read-only password may use.
pub fn is_read_method(method: &Method) -> bool {
    matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT")
}

/// The rules from the config, shared by every request.
#[derive(Debug, Clone)]
pub struct ScopeRules {
    services: BTreeMap<String, Vec<String>>,
    discovery: Vec<String>,
}

impl ScopeRules {
    pub fn new(services: BTreeMap<String, Vec<String>>, discovery: Vec<String>) -> Self {
        Self { services, discovery }
    }

    pub fn has_service(&self, name: &str) -> bool {
        self.services.contains_key(name)
    }

    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// Decides one request.
    pub fn check(&self, scope: &Scope, user: &str, target: &Target<'_>) -> Result<(), Refusal> {
        let method = target.method;
        // The rules name methods in upper case, and backends read them in
        // any case (Radicale upper-cases them): a `move` would pass here as
        // an unknown method with no Destination check, and move there.
        if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(Refusal::BadPath("method names must be upper case"));
        }
        let path = decode_path(target.path)?;
        let destination = match (method.as_str(), target.destination) {
            ("COPY" | "MOVE", Some(d)) => Some(decode_destination(d)?),
            ("COPY" | "MOVE", None) => return Err(Refusal::BadPath("COPY and MOVE need a Destination header")),
            _ => None,
        };
        if !scope.networks.is_empty() && !scope.networks.iter().any(|n| n.contains(&target.client_ip)) {
            return Err(Refusal::OutOfScope("this app password is not allowed from your network"));
        }
        let read = is_read_method(method);
        if scope.read_only && !read {
            return Err(Refusal::OutOfScope("this app password is read-only"));
        }
        if self.covers(scope, user, &path) {
            return match destination {
                Some(dest) if !self.covers(scope, user, &dest) => {
                    Err(Refusal::OutOfScope("the Destination is outside the app password's scope"))
                }
                _ => Ok(()),
            };
        }
        if read && self.discovery.iter().any(|p| matches(p, user, &path)) {
            return discovery_depth(method, target.depth);
        }
        Err(Refusal::OutOfScope("this path is outside the app password's scope"))
    }

    fn covers(&self, scope: &Scope, user: &str, path: &str) -> bool {
        if scope.is_all_paths() {
            return true;
        }
        let service_patterns = scope.services.iter().filter_map(|s| self.services.get(s)).flatten();
        service_patterns.chain(scope.collections.iter()).any(|p| matches(p, user, path))
    }
}

/// Whether `path` falls under `pattern` for `user`. A pattern ending in `/`
/// covers that collection (with or without the slash) and everything below
/// it; any other pattern covers exactly one path. `/` alone covers only `/`.
fn matches(pattern: &str, user: &str, path: &str) -> bool {
    let subtree = pattern.len() > 1 && pattern.ends_with('/');
    let template = if subtree { &pattern[..pattern.len() - 1] } else { pattern };
    let Some(rest) = strip_template(template, user, path) else {
        return false;
    };
    if subtree { rest.is_empty() || rest.starts_with('/') } else { rest.is_empty() || (rest == "/" && template != "/") }
}

/// Strips `template` (with `{user}` filled in) from the front of `path`,
/// without allocating.
fn strip_template<'p>(template: &str, user: &str, path: &'p str) -> Option<&'p str> {
    let mut parts = template.split("{user}");
    let mut rest = path.strip_prefix(parts.next().unwrap_or(""))?;
    for literal in parts {
        rest = rest.strip_prefix(user)?.strip_prefix(literal)?;
    }
    Some(rest)
}

/// Percent-decodes a request path and refuses anything that could be
/// resolved to another path by the backend (RFC 3986 §5.2.4 dot segments,
/// encoded separators, NUL, malformed escapes, invalid UTF-8).
pub fn decode_path(raw: &str) -> Result<String, Refusal> {
    if !raw.starts_with('/') {
        return Err(Refusal::BadPath("the request path must start with /"));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(Refusal::BadPath("malformed percent-escape in the path"))?;
            let decoded = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Refusal::BadPath("malformed percent-escape in the path"))?;
            if decoded == b'/' {
                return Err(Refusal::BadPath("encoded / in the path"));
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if out.iter().any(|&b| b == 0 || b == b'\\' || b.is_ascii_control()) {
        return Err(Refusal::BadPath("backslash or control character in the path"));
    }
    let path = String::from_utf8(out).map_err(|_| Refusal::BadPath("the path is not valid UTF-8"))?;
    // Servlet containers drop `;params` before resolving dots: `..;` is `..` there.
    let is_dots = |seg: &str| matches!(seg.split(';').next(), Some("." | ".."));
    // Every segment starts after a `/`: without "/." there is none to check.
    if path.contains("/.") && path.split('/').any(is_dots) {
        return Err(Refusal::BadPath("dot segments in the path"));
    }
    Ok(path)
}

/// The path of a WebDAV `Destination` header (RFC 4918 §10.3: an absolute
/// URI, or an absolute path), decoded like a request path.
pub fn decode_destination(value: &HeaderValue) -> Result<String, Refusal> {
    let text = value.to_str().map_err(|_| Refusal::BadPath("the Destination header is not ASCII"))?;
    let uri: http::Uri = text.parse().map_err(|_| Refusal::BadPath("the Destination header is not a URI"))?;
    // "//host/path" is a network-path reference: backends read a host there;
    // and a scheme Python does not know ("1http:") makes it all one path.
    let scheme_ok = match uri.scheme_str() {
        Some(scheme) => scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"),
        None => text.starts_with('/') && !text.starts_with("//"),
    };
    if !scheme_ok {
        return Err(Refusal::BadPath("the Destination header is not an http(s) URL or absolute path"));
    }
    // Backends (Radicale, WsgiDAV) percent-decode the whole header, then
    // split it with Python's urlparse, which also cuts `;params` and
    // `#fragment` off the path: anything that could make them see another
    // path than the one we check is refused.
    if uri.authority().is_some_and(|a| a.as_str().contains(['@', '%'])) {
        return Err(Refusal::BadPath("the Destination host is malformed"));
    }
    if text.contains('#') {
        return Err(Refusal::BadPath("the Destination has a fragment"));
    }
    let path = decode_path(uri.path())?;
    if path.contains(['?', '#', ';']) {
        return Err(Refusal::BadPath("the Destination path has ?, # or ; in it"));
    }
    Ok(path)
}

/// Service names are what `--scope` takes: lowercase letters, digits, `-`.
pub fn is_service_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Validates a configured path pattern.
pub fn check_pattern(pattern: &str) -> Result<(), &'static str> {
    if !pattern.starts_with('/') {
        return Err("a path pattern must start with /");
    }
    let probe = pattern.replace("{user}", "u");
    match decode_path(&probe) {
        Ok(decoded) if decoded == probe => Ok(()),
        Ok(_) => Err("write the pattern decoded, without percent-escapes"),
        Err(_) => Err("a path pattern must not contain dot segments, backslashes or control characters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ScopeRules {
        let services =
            [("caldav", "/calendars/{user}/"), ("carddav", "/addressbooks/{user}/"), ("files", "/files/{user}/")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect();
        let discovery = ["/", "/.well-known/caldav", "/.well-known/carddav", "/principals/{user}/"]
            .into_iter()
            .map(String::from)
            .collect();
        ScopeRules::new(services, discovery)
    }

    fn caldav() -> Scope {
        Scope { services: vec!["caldav".into()], ..Scope::default() }
    }

    fn target<'a>(method: &'a Method, path: &'a str) -> Target<'a> {
        Target { method, path, destination: None, depth: None, client_ip: "127.0.0.1".parse().unwrap() }
    }

    fn check(scope: &Scope, method: &str, path: &str) -> Result<(), Refusal> {
        let method: Method = method.parse().unwrap();
        let depth = HeaderValue::from_static("1");
        rules().check(scope, "alice", &Target { depth: Some(&depth), ..target(&method, path) })
    }

    #[test]
    fn service_scope_covers_its_tree_and_nothing_else() {
        assert_eq!(check(&caldav(), "PUT", "/calendars/alice/work/1.ics"), Ok(()));
        assert_eq!(check(&caldav(), "PROPFIND", "/calendars/alice"), Ok(()));
        assert!(check(&caldav(), "GET", "/files/alice/secret.txt").is_err());
        assert!(check(&caldav(), "GET", "/calendars/alicex/").is_err());
        assert!(check(&caldav(), "GET", "/calendars/bob/").is_err());
    }

    #[test]
    fn discovery_paths_are_readable_by_every_scope_but_not_writable() {
        let coll = Scope { collections: vec!["/calendars/alice/work/".into()], ..Scope::default() };
        for path in ["/", "/.well-known/caldav", "/.well-known/carddav", "/principals/alice/"] {
            assert_eq!(check(&coll, "PROPFIND", path), Ok(()), "{path}");
        }
        assert!(check(&coll, "PROPPATCH", "/principals/alice/").is_err());
        assert!(check(&coll, "PROPFIND", "/principals/bob/").is_err());
        assert!(check(&coll, "GET", "/index.html").is_err(), "/ is exact, not a subtree");
    }

    #[test]
    fn a_method_in_lower_case_is_refused_before_any_rule() {
        let coll = Scope { collections: vec!["/calendars/alice/work/".into()], ..Scope::default() };
        let method = Method::from_bytes(b"move").unwrap();
        let outside = HeaderValue::from_static("/calendars/alice/home/e.ics");
        let target = Target { destination: Some(&outside), ..target(&method, "/calendars/alice/work/e.ics") };
        assert_eq!(
            rules().check(&coll, "alice", &target),
            Err(Refusal::BadPath("method names must be upper case")),
            "a backend upper-casing it would MOVE out of the scope"
        );
        for m in ["get", "Put", "propfind"] {
            assert!(matches!(check(&Scope::default(), m, "/calendars/alice/work/"), Err(Refusal::BadPath(_))), "{m}");
        }
        assert_eq!(check(&Scope::default(), "MKCALENDAR", "/calendars/alice/new/"), Ok(()));
    }

    #[test]
    fn collection_scope_covers_one_collection() {
        let coll = Scope { collections: vec!["/calendars/alice/work/".into()], ..Scope::default() };
        assert_eq!(check(&coll, "PUT", "/calendars/alice/work/e.ics"), Ok(()));
        assert!(check(&coll, "PUT", "/calendars/alice/home/e.ics").is_err());
        assert!(check(&coll, "PUT", "/calendars/alice/workshop/e.ics").is_err());
    }

    #[test]
    fn read_only_allows_only_reading_methods() {
        let ro = Scope { read_only: true, ..Scope::default() };
        for m in ["GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"] {
            assert_eq!(check(&ro, m, "/calendars/alice/"), Ok(()), "{m}");
        }
        for m in ["PUT", "DELETE", "MKCOL", "PROPPATCH", "LOCK", "UNLOCK", "POST", "MKCALENDAR", "ACL"] {
            assert_eq!(
                check(&ro, m, "/calendars/alice/x"),
                Err(Refusal::OutOfScope("this app password is read-only")),
                "{m}"
            );
        }
    }

    #[test]
    fn traversal_and_encoding_tricks_are_bad_paths_whatever_the_scope() {
        let all = Scope::default();
        for path in [
            "/calendars/alice/../bob/",
            "/calendars/alice/%2e%2e/bob/",
            "/calendars/alice/%2E%2e/x",
            "/calendars/alice%2f..%2fbob/",
            "/calendars/alice/..%5cbob",
            "/calendars/alice/\\x",
            "/calendars/alice/%00",
            "/calendars/alice/./x",
            "/calendars/alice/%",
            "/calendars/alice/%zz",
            "/calendars/alice/%c0%ae%c0%ae/",
            "/calendars/alice/..;/files/",
            "/calendars/alice/%2e%2e;x=1/",
            "relative",
            "*",
        ] {
            assert!(matches!(check(&all, "GET", path), Err(Refusal::BadPath(_))), "{path}");
            assert!(matches!(check(&caldav(), "GET", path), Err(Refusal::BadPath(_))), "{path}");
        }
        // Double encoding reaches the backend as a literal "%2e" name: harmless, allowed.
        assert_eq!(check(&caldav(), "GET", "/calendars/alice/%252e%252e/x"), Ok(()));
        assert_eq!(check(&caldav(), "GET", "/calendars/alice/caf%C3%A9/"), Ok(()));
    }

    fn move_to(method: &str, destination: Option<&str>) -> Result<(), Refusal> {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let dest = destination.map(|d| HeaderValue::from_str(d).unwrap());
        let t = Target { destination: dest.as_ref(), ..target(&method, "/calendars/alice/work/e.ics") };
        rules().check(&caldav(), "alice", &t)
    }

    #[test]
    fn destination_must_be_in_scope_too() {
        assert_eq!(move_to("MOVE", Some("http://dav.example/calendars/alice/home/e.ics")), Ok(()));
        assert_eq!(move_to("COPY", Some("/calendars/alice/home/e.ics")), Ok(()));
        assert!(matches!(move_to("MOVE", Some("http://dav.example/files/alice/e.ics")), Err(Refusal::OutOfScope(_))));
        assert!(matches!(move_to("MOVE", Some("/calendars/alice/../../files/alice/e.ics")), Err(Refusal::BadPath(_))));
        assert!(matches!(move_to("MOVE", None), Err(Refusal::BadPath(_))));
        // Discovery paths are never a writable Destination.
        assert!(move_to("COPY", Some("/principals/alice/x")).is_err());
    }

    #[test]
    fn destinations_that_decode_into_another_url_are_refused() {
        // Decoded whole, this is http://h:1/files/alice/x#@h:1/calendars/alice/work/x.ics
        let trick = "http://h:1%2Ffiles%2Falice%2Fx%23@h:1/calendars/alice/work/x.ics";
        assert!(matches!(move_to("MOVE", Some(trick)), Err(Refusal::BadPath(_))));
        assert!(matches!(move_to("MOVE", Some("http://u@h/calendars/alice/work/x")), Err(Refusal::BadPath(_))));
        assert!(matches!(
            move_to("MOVE", Some("/calendars/alice/work/x%3F/../../../files/")),
            Err(Refusal::BadPath(_))
        ));
        assert!(matches!(move_to("MOVE", Some("/calendars/alice/work/x%23y")), Err(Refusal::BadPath(_))));
        // Found by fuzzing against Python's urlparse(unquote(header)):
        for d in [
            "//calendars/alice/work/x",
            "/calendars/alice/work/x;p",
            "/calendars/alice/work/x%3Bp",
            "/#",
            "/calendars/alice/work/a#/../../../bob/x",
            "1http://h/calendars/alice/work/x",
            "://c/calendars/alice/work/x",
        ] {
            assert!(matches!(move_to("MOVE", Some(d)), Err(Refusal::BadPath(_))), "{d}");
        }
    }

    #[test]
    fn discovery_paths_cannot_list_a_whole_tree() {
        let coll = Scope { collections: vec!["/calendars/alice/work/".into()], ..Scope::default() };
        let r = rules();
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        let report = Method::from_bytes(b"REPORT").unwrap();
        let (zero, one, inf) =
            (HeaderValue::from_static("0"), HeaderValue::from_static("1"), HeaderValue::from_static("infinity"));
        let with = |m, d| Target { depth: d, ..target(m, "/") };
        assert_eq!(r.check(&coll, "alice", &with(&propfind, Some(&zero))), Ok(()));
        assert_eq!(r.check(&coll, "alice", &with(&propfind, Some(&one))), Ok(()));
        assert!(r.check(&coll, "alice", &with(&propfind, None)).is_err(), "no Depth means infinity");
        assert!(r.check(&coll, "alice", &with(&propfind, Some(&inf))).is_err());
        assert_eq!(r.check(&coll, "alice", &with(&report, None)), Ok(()));
        assert!(r.check(&coll, "alice", &with(&report, Some(&one))).is_err());
        // Inside the scope itself there is no such limit.
        assert_eq!(r.check(&Scope::default(), "alice", &with(&propfind, None)), Ok(()));
    }

    #[test]
    fn repeated_destination_or_depth_is_refused() {
        let req = http::Request::builder()
            .method("MOVE")
            .uri("/calendars/alice/a")
            .header("destination", "/calendars/alice/b")
            .header("destination", "/files/alice/c")
            .body(())
            .unwrap();
        assert!(matches!(Target::of(&req, "127.0.0.1".parse().unwrap()), Err(Refusal::BadPath(_))));
    }

    #[test]
    fn source_networks_limit_where_a_password_works() {
        let r = rules();
        let scope = Scope { networks: vec!["192.0.2.0/24".parse().unwrap()], ..Scope::default() };
        let get = Method::GET;
        let from = |ip: &str| Target { client_ip: ip.parse().unwrap(), ..target(&get, "/x") };
        assert_eq!(r.check(&scope, "alice", &from("192.0.2.7")), Ok(()));
        assert!(r.check(&scope, "alice", &from("198.51.100.1")).is_err());
    }

    #[test]
    fn patterns_are_validated() {
        assert!(check_pattern("/calendars/{user}/").is_ok());
        assert!(check_pattern("calendars/").is_err());
        assert!(check_pattern("/a/../b/").is_err());
        assert!(check_pattern("/a%20b/").is_err());
    }
}
