//! Reads a client's request head, decides whether the relay takes it, and
//! writes the head the backend gets.
//!
//! The relay takes only the plainest requests: HTTP/1.1, an origin-form
//! target of plain characters, one plain `Host`, at most one
//! `Content-Length` up to [`DRAIN_LIMIT`] and no `Transfer-Encoding`,
//! `Expect` or `Upgrade`, `Connection` with only `keep-alive` or `close`.
//! Everything else (and every head `httparse` refuses) goes to hyper, which
//! answers or refuses it as before: the relay never has to decide a case
//! in which two parsers could read a request differently.

use crate::error::GatewayError;
use crate::gateway::credentials::{self, BasicCredentials};
use crate::gateway::headers::{self, is_dropped_request_header};
use crate::gateway::unread_body::DRAIN_LIMIT;
use crate::gateway::{Gateway, Peer};
use http::{HeaderValue, Method};
use std::net::IpAddr;
use std::ops::Range;

/// The longest head the relay waits for; a longer one goes to hyper.
pub const MAX_HEAD: usize = 16 * 1024;

/// Header fields a head may have (hyper's limit too).
const MAX_HEADERS: usize = 100;

/// Longest header name compared against the rules; longer ones go to hyper.
const MAX_NAME: usize = 64;

// Not boxed: it is returned once per request, and moved at most once.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    Relay(Head),
    /// Not all of the head is in yet.
    Partial,
    /// For hyper.
    Other,
}

/// What the relay needs of a request it takes; ranges are into the bytes
/// that were read.
pub struct Head {
    /// Bytes of the head, up to and with the empty line.
    pub len: usize,
    pub body_len: usize,
    pub method: Method,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
    pub credentials: Option<BasicCredentials>,
    pub client_ip: IpAddr,
    pub proto: &'static str,
    path: Range<usize>,
    host: Range<usize>,
    user_agent: Option<Range<usize>>,
    pub destination: Option<HeaderValue>,
    pub depth: Option<HeaderValue>,
}

impl Head {
    /// The target's path (percent-encoded, as sent).
    pub fn path<'b>(&self, bytes: &'b [u8]) -> &'b str {
        std::str::from_utf8(&bytes[self.path.clone()]).expect("checked to be ASCII")
    }

    /// The `User-Agent`, when it is visible ASCII (as `HeaderValue::to_str` reads it).
    pub fn user_agent<'b>(&self, bytes: &'b [u8]) -> Option<&'b str> {
        let value = &bytes[self.user_agent.clone()?];
        value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)).then(|| std::str::from_utf8(value).ok())?
    }
}

/// Reads the head at the start of `bytes` and, when the relay takes it,
/// writes the backend's head to `out` up to the headers [`finish`] adds.
pub fn read(bytes: &[u8], gateway: &Gateway, peer: Peer, out: &mut Vec<u8>) -> Parsed {
    if !gateway.upstream.relayable() {
        return Parsed::Other;
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else { return Parsed::Other };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Parsed::Other };
    if method == Method::CONNECT || !is_plain_target(target.as_bytes()) {
        return Parsed::Other;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if gateway.web.as_ref().is_some_and(|web| web.claims(path)) {
        return Parsed::Other;
    }
    out.clear();
    for part in [method.as_str().as_bytes(), b" ", target.as_bytes(), b" HTTP/1.1\r\n"] {
        out.extend_from_slice(part);
    }

    let range = |part: &[u8]| {
        let start = part.as_ptr() as usize - bytes.as_ptr() as usize;
        start..start + part.len()
    };
    let mut host = None;
    let mut body_len = None;
    let mut close = false;
    let mut authorization = None;
    let mut authorizations = 0;
    let mut user_agent = None;
    let mut destination = None;
    let mut depth = None;
    let mut lower = [0u8; MAX_NAME];
    for field in req.headers.iter() {
        let (name, value) = (field.name.as_bytes(), field.value);
        let Some(lower) = lower.get_mut(..name.len()) else { return Parsed::Other };
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        let name = std::str::from_utf8(lower).expect("httparse checks names are tokens");
        match name {
            "host" => {
                if host.replace(range(value)).is_some() || !is_plain_host(value) {
                    return Parsed::Other;
                }
                continue;
            }
            "content-length" => match super::digits(value) {
                Some(n) if body_len.is_none() && n <= DRAIN_LIMIT => body_len = Some(n as usize),
                _ => return Parsed::Other,
            },
            "transfer-encoding" | "expect" | "upgrade" => return Parsed::Other,
            "connection" => {
                for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if option.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if !option.eq_ignore_ascii_case(b"keep-alive") {
                        // Names another header to drop: for hyper.
                        return Parsed::Other;
                    }
                }
                continue;
            }
            "authorization" => {
                authorizations += 1;
                authorization = Some(value);
                continue;
            }
            // The page's cookies are cut out of the value by the hyper path.
            "cookie" if value.windows(8).any(|w| w == b"davgate_") => return Parsed::Other,
            // The first, as `HeaderMap::get` reads it on the hyper path.
            "user-agent" if user_agent.is_none() => user_agent = Some(range(value)),
            "destination" | "depth" => {
                let slot = if name == "depth" { &mut depth } else { &mut destination };
                match HeaderValue::from_bytes(value) {
                    // Repeated: the scope check refuses it, on the hyper path.
                    Ok(v) if slot.is_none() => *slot = Some(v),
                    _ => return Parsed::Other,
                }
            }
            _ => {}
        }
        if !is_dropped_request_header(name, &gateway.identity_header) {
            for part in [field.name.as_bytes(), b": ", value, b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
    }
    // HTTP/1.1 needs a Host; the hyper path answers one without it.
    let Some(host) = host else { return Parsed::Other };
    let client_ip = gateway.client_ip_from(peer.addr.ip(), || {
        req.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("x-forwarded-for")).map(|f| f.value)
    });
    let forwarded_https = req
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("x-forwarded-proto"))
        .is_some_and(|f| f.value == b"https");
    Parsed::Relay(Head {
        len,
        body_len: body_len.unwrap_or(0),
        method,
        close,
        credentials: authorization.filter(|_| authorizations == 1).and_then(credentials::from_value),
        client_ip,
        proto: gateway.proto_from(peer, forwarded_https),
        path: range(path.as_bytes()),
        host,
        user_agent,
        destination,
        depth,
    })
}

/// Ends the backend's head in `out`: the verified identity, the
/// `X-Forwarded-*` set and the `Host`, then the empty line.
pub fn finish(out: &mut Vec<u8>, head: &Head, bytes: &[u8], gateway: &Gateway, user: &str) -> Result<(), GatewayError> {
    // Raw UTF-8 bytes, as on the hyper path; the credentials' check already
    // ruled out control characters.
    HeaderValue::from_bytes(user.as_bytes())
        .map_err(|_| GatewayError::BadRequest("the user name cannot be sent as a header"))?;
    let host = &bytes[head.host.clone()];
    let upstream_host = if gateway.preserve_host { host } else { gateway.upstream.host().as_bytes() };
    let client_ip = headers::ip_value(head.client_ip);
    for part in [
        gateway.identity_header.as_str().as_bytes(),
        b": ",
        user.as_bytes(),
        b"\r\nx-forwarded-for: ",
        client_ip.as_bytes(),
        b"\r\nx-forwarded-proto: ",
        head.proto.as_bytes(),
        b"\r\nx-forwarded-host: ",
        host,
        b"\r\nhost: ",
        upstream_host,
        b"\r\n\r\n",
    ] {
        out.extend_from_slice(part);
    }
    Ok(())
}

/// An origin-form target of RFC 3986 path and query characters only: a
/// subset of what `http::Uri` accepts, so both paths read it the same.
fn is_plain_target(target: &[u8]) -> bool {
    target.first() == Some(&b'/')
        && target.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@/?".contains(&b))
}

/// A host name or IPv4 address, or a bracketed IPv6 address, with an
/// optional port: a subset of what `http::uri::Authority` accepts, and
/// never userinfo.
fn is_plain_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|&b| b == b':') {
        Some(colon) if !value.ends_with(b"]") => (&value[..colon], Some(&value[colon + 1..])),
        _ => (value, None),
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && super::digits(p).is_some_and(|n| n <= 65535));
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty() && inner.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        _ => !host.is_empty() && host.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_hosts_are_a_subset_of_what_http_accepts() {
        for host in ["dav.example", "dav.example:8080", "127.0.0.1:5232", "[::1]", "[::1]:443", "a-b.c"] {
            assert!(is_plain_host(host.as_bytes()), "{host}");
            assert!(host.parse::<http::uri::Authority>().is_ok(), "{host}");
        }
        for host in [
            "",
            "user@dav.example",
            "dav.example:",
            "dav.example:99999",
            "dav.example:8o",
            "[::1",
            "a b",
            "a_b",
            "::1",
            ":80",
        ] {
            assert!(!is_plain_host(host.as_bytes()), "{host}");
        }
    }

    #[test]
    fn plain_targets_are_a_subset_of_what_http_accepts() {
        for target in ["/", "/alice/calendar/", "/a%20b?x=1&y=2", "/~u/@x:y;z=(1)*,+!$'"] {
            assert!(is_plain_target(target.as_bytes()), "{target}");
            assert!(target.parse::<http::uri::PathAndQuery>().is_ok(), "{target}");
        }
        for target in ["*", "http://x/", "/a#b", "/a\"b", "/a{b}", "/a<b>", "/a`b", "/a|b", "/a\\b", "/é"] {
            assert!(!is_plain_target(target.as_bytes()), "{target}");
        }
    }
}
