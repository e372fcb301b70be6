//! Header rules for forwarding: hop-by-hop removal, identity-header
//! stripping, and the `X-Forwarded-*` set.
//!
//! The backend trusts the identity header absolutely, so every spelling a
//! client could use to choose an identity is removed before ours is set:
//! any case, `-` or `_` (Radicale's wsgiref and WsgiDAV's cheroot map
//! `X-Remote-User` and `X_Remote_User` to the same WSGI key), and the other
//! identity headers common SSO fronts use. Like nginx's default
//! `underscores_in_headers off`, every header with `_` in its name is dropped.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// RFC 9110 §7.6.1: connection-specific headers never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Identity headers of common auth fronts and backends, in `-` spelling.
const IDENTITY_HEADERS: &[&str] = &[
    "x-remote-user",
    "remote-user",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-authenticated-user",
    "x-remote-group",
    "x-remote-email",
    "x-webauth-user",
    "x-user",
    "x-username",
    "auth-user",
    "remote-email",
    "remote-groups",
    "remote-name",
];

/// Headers through which backends learn about proxies in front of them:
/// a client must not set any of them. Radicale, for one, strips a client's
/// `X-Script-Name` from the front of the path once `X-Forwarded-For` is
/// present, which would move a request out of the scope we checked.
const PROXY_HEADERS: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
const PROXY_HEADER_PREFIXES: &[&str] = &["x-forwarded-", "x-script-", "x-original-", "x-remote-", "x-auth-request-"];

fn is_proxy_header(name: &str) -> bool {
    PROXY_HEADERS.contains(&name) || PROXY_HEADER_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    remove_where(headers, is_hop_by_hop);
}

/// Removes every header whose (lowercase) name `doomed` picks, and, when
/// `Connection` is among them, the headers it names. One pass over the
/// names the request has, instead of a lookup for each name we know.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    debug_assert!(doomed("keep-alive"), "Connection: keep-alive relies on it");
    let mut names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n.as_str())).cloned().collect();
    if names.contains(&header::CONNECTION) {
        let listed = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // The usual values, skipped without a lookup: `close` names no
            // header, and `Keep-Alive` is hop-by-hop for every caller.
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok());
        names.extend(listed);
    }
    for name in names {
        headers.remove(name);
    }
}

/// Whether `name` (lowercase, as `HeaderName` stores it) is any spelling of
/// an identity header, or of the configured one.
fn is_identity_spelling(name: &str, configured: &HeaderName) -> bool {
    if name.contains('_') {
        return true;
    }
    name == configured.as_str() || IDENTITY_HEADERS.contains(&name)
}

/// What the backend must learn about the original request.
pub struct Forwarding<'a> {
    pub identity_header: &'a HeaderName,
    pub user: &'a str,
    /// The client address to report (already resolved through trusted proxies).
    pub client_ip: std::net::IpAddr,
    /// `https` or `http`, as the client reached us (or our trusted proxy).
    pub proto: &'static str,
    pub host: Option<HeaderValue>,
    /// Send the client's `Host` upstream (else the upstream's own).
    pub preserve_host: bool,
}

/// The self-service page's cookies (`davgate_*`) are never the backend's
/// business: it could log a session id, or serve a page that uses it.
fn strip_own_cookies(headers: &mut HeaderMap) {
    const OURS: &[u8] = b"davgate_";
    let mentions_ours = |v: &HeaderValue| v.as_bytes().windows(OURS.len()).any(|w| w == OURS);
    if !headers.get_all(header::COOKIE).iter().any(mentions_ours) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| match v.to_str() {
            Ok(text) => {
                let rest: Vec<&str> =
                    text.split(';').map(str::trim).filter(|p| !p.is_empty() && !p.starts_with("davgate_")).collect();
                HeaderValue::from_str(&rest.join("; ")).ok().filter(|_| !rest.is_empty())
            }
            // Not text: cannot hold our cookies in a form we set; pass it on.
            Err(_) => Some(v.clone()),
        })
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether a request header (lowercase `name`) never reaches the backend:
/// hop-by-hop headers, our credentials, `Expect` (we answer `100-continue`
/// ourselves when the body is first read, so the backend gets the body
/// straight away), every identity and proxy header a client could forge.
/// (`Host` is settled apart.)
pub fn is_dropped_request_header(name: &str, identity_header: &HeaderName) -> bool {
    is_hop_by_hop(name)
        || name == "authorization"
        || name == "expect"
        || is_identity_spelling(name, identity_header)
        || is_proxy_header(name)
}

/// Whether a response header (lowercase `name`) is hop-by-hop.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Rewrites request headers for the backend.
pub fn prepare_request(headers: &mut HeaderMap, f: &Forwarding<'_>) -> Result<(), http::header::InvalidHeaderValue> {
    remove_where(headers, |name| is_dropped_request_header(name, f.identity_header));
    strip_own_cookies(headers);
    // Raw UTF-8 bytes: RFC 9110 allows obs-text, and user names may be non-ASCII.
    headers.insert(f.identity_header.clone(), HeaderValue::from_bytes(f.user.as_bytes())?);
    headers.insert(X_FORWARDED_FOR, ip_value(f.client_ip));
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(f.proto));
    if let Some(host) = &f.host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    // The client's host, or none (the upstream client then sends its own).
    // Usually the one `Host` there already is: left as it is, no lookup
    // to remove it and another to put it back.
    match &f.host {
        Some(host) if f.preserve_host => {
            let mut present = headers.get_all(header::HOST).iter();
            if !(present.next() == Some(host) && present.next().is_none()) {
                headers.insert(header::HOST, host.clone());
            }
        }
        _ => {
            headers.remove(header::HOST);
        }
    }
    Ok(())
}

/// `ip` as a header value. IPv4 is written digit by digit: `Display`
/// through `fmt` was ~1.3k instructions, over 2 % of a cached request.
pub fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    let v4 = match ip {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(v6) => {
            return HeaderValue::from_str(&v6.to_string()).expect("an IPv6 address is a valid header value");
        }
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let first = match octet {
            100.. => 0,
            10.. => 1,
            _ => 2,
        };
        for digit in &digits[first..] {
            text[len] = b'0' + digit;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&text[..len]).expect("digits and dots are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_values_read_as_display_writes_them() {
        let mut samples: Vec<std::net::IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "127.0.0.1",
            "10.9.100.99",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        samples.extend((0..=255u8).map(|o| std::net::IpAddr::from([o, 255 - o, o / 3, 7])));
        for ip in samples {
            assert_eq!(ip_value(ip).to_str().unwrap(), ip.to_string());
        }
    }

    fn forwarding(identity: &HeaderName) -> Forwarding<'_> {
        Forwarding {
            identity_header: identity,
            user: "alice",
            client_ip: "192.0.2.1".parse().unwrap(),
            proto: "https",
            host: Some(HeaderValue::from_static("dav.example")),
            preserve_host: true,
        }
    }

    #[test]
    fn every_identity_spelling_is_replaced_by_the_verified_user() {
        let identity = HeaderName::from_static("x-remote-user");
        let mut h = HeaderMap::new();
        for name in [
            "X-Remote-User",
            "x_remote_user",
            "X_REMOTE_USER",
            "Remote-User",
            "remote_user",
            "X-Forwarded-User",
            "X-Auth-Request-User",
            "x-remote_user",
        ] {
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("mallory"));
        }
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        prepare_request(&mut h, &forwarding(&identity)).unwrap();
        assert_eq!(h.get_all("x-remote-user").iter().collect::<Vec<_>>(), vec!["alice"]);
        assert!(h.iter().all(|(_, v)| v != "mallory"), "{h:?}");
        assert!(!h.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let identity = HeaderName::from_static("x-remote-user");
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
        h.insert("x-script-name", HeaderValue::from_static("/alice/work"));
        h.insert("x-forwarded-prefix", HeaderValue::from_static("/x"));
        h.insert("x-http-method-override", HeaderValue::from_static("DELETE"));
        h.insert("depth", HeaderValue::from_static("1"));
        prepare_request(&mut h, &forwarding(&identity)).unwrap();
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "te",
            "upgrade",
            "x-script-name",
            "x-forwarded-prefix",
            "x-http-method-override",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "dav.example");
        assert_eq!(h["depth"], "1");
    }

    #[test]
    fn a_response_loses_its_hop_by_hop_headers_and_those_connection_names() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("close, X-Hop"));
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::ETAG, HeaderValue::from_static("\"1\""));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::ETAG]);
    }

    #[test]
    fn the_backend_gets_one_host_the_clients_or_none() {
        let identity = HeaderName::from_static("x-remote-user");
        let prepared = |hosts: &[&'static str], preserve_host: bool| {
            let mut h = HeaderMap::new();
            for host in hosts {
                h.append(header::HOST, HeaderValue::from_static(host));
            }
            prepare_request(&mut h, &Forwarding { preserve_host, ..forwarding(&identity) }).unwrap();
            h.get_all(header::HOST).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(prepared(&["dav.example"], true), ["dav.example"]);
        assert_eq!(prepared(&[], true), ["dav.example"], "absolute-form: the target's authority");
        assert_eq!(prepared(&["other.example"], true), ["dav.example"]);
        assert_eq!(prepared(&["dav.example", "dav.example"], true), ["dav.example"]);
        assert!(prepared(&["dav.example"], false).is_empty(), "the upstream client sets its own");
    }

    #[test]
    fn the_pages_cookies_never_reach_the_backend() {
        let identity = HeaderName::from_static("x-remote-user");
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark; davgate_session=abc; lang=en"));
        h.append(header::COOKIE, HeaderValue::from_static("davgate_signin=xyz"));
        prepare_request(&mut h, &forwarding(&identity)).unwrap();
        let cookies: Vec<&str> = h.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies, ["theme=dark; lang=en"]);
        let mut plain = HeaderMap::new();
        plain.append(header::COOKIE, HeaderValue::from_static("a=1"));
        prepare_request(&mut plain, &forwarding(&identity)).unwrap();
        assert_eq!(plain[header::COOKIE], "a=1");
    }
}
