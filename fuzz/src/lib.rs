//! Helpers shared by the fuzz targets: the backends' URL parsing (a
//! reference model to compare davgate with) and the switch that lets a long
//! run continue past bugs that are already known.

use std::sync::OnceLock;

/// Whether the bug class `tag` is listed in `DAVGATE_FUZZ_KNOWN`
/// (comma- or space-separated). Unset, the default, every invariant is
/// checked: that is how `bench/fuzz.sh` runs. Listing a class that is
/// reported but not fixed yet lets a long run look for other bugs instead
/// of stopping at the same one again; each target documents its tags.
pub fn known(tag: &str) -> bool {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("DAVGATE_FUZZ_KNOWN")
                .unwrap_or_default()
                .split([',', ' '])
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        })
        .iter()
        .any(|t| t == tag)
}

/// `urllib.parse.uses_params`: the schemes whose last path segment loses `;params`.
const USES_PARAMS: [&[u8]; 16] = [
    b"",
    b"ftp",
    b"hdl",
    b"prospero",
    b"http",
    b"imap",
    b"https",
    b"shttp",
    b"rtsp",
    b"rtsps",
    b"rtspu",
    b"sip",
    b"sips",
    b"mms",
    b"sftp",
    b"tel",
];

fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// What CPython 3.11's `urllib.parse.urlparse(url, allow_fragments=...)`
/// returns for `url`, the parts the backends use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyUrl {
    pub scheme: Vec<u8>,
    pub netloc: Vec<u8>,
    pub path: Vec<u8>,
}

/// CPython 3.11 `urlparse` (urlsplit, then `;params` off the last segment),
/// or `None` where Python raises `ValueError` (bad brackets in the netloc).
///
/// Works on bytes: every delimiter is ASCII, so this equals the `str`
/// version on the UTF-8 decoding of `url` (invalid sequences become U+FFFD,
/// never a delimiter). `_checknetloc` (NFKC of a non-ASCII netloc) is not
/// modelled.
pub fn urlparse(url: &[u8], allow_fragments: bool) -> Option<PyUrl> {
    // lstrip C0 controls and space, then drop every \t \r \n.
    let start = url.iter().position(|&b| b > b' ').unwrap_or(url.len());
    let mut url: Vec<u8> = url[start..].iter().copied().filter(|b| !matches!(b, b'\t' | b'\r' | b'\n')).collect();
    let mut scheme = Vec::new();
    let mut netloc = Vec::new();
    if let Some(i) = url.iter().position(|&b| b == b':')
        && i > 0
        && url[0].is_ascii_alphabetic()
        && url[..i].iter().all(|&b| is_scheme_char(b))
    {
        scheme = url[..i].to_ascii_lowercase();
        url.drain(..=i);
    }
    if url.starts_with(b"//") {
        let end = url[2..].iter().position(|b| b"/?#".contains(b)).map_or(url.len(), |p| p + 2);
        netloc = url[2..end].to_vec();
        if netloc.contains(&b'[') != netloc.contains(&b']') {
            return None;
        }
        if netloc.contains(&b'[') {
            // _check_bracketed_host: IPvFuture `v<hex>.<any>`, or an IPv6 address.
            let host = netloc.split(|&b| b == b'[').nth(1)?.split(|&b| b == b']').next()?;
            let text = std::str::from_utf8(host).ok()?;
            let valid = match text.strip_prefix('v') {
                Some(future) => future.split_once('.').is_some_and(|(hex, tail)| {
                    !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !tail.is_empty()
                }),
                None => text.parse::<std::net::Ipv6Addr>().is_ok(),
            };
            if !valid {
                return None;
            }
        }
        url.drain(..end);
    }
    if allow_fragments && let Some(i) = url.iter().position(|&b| b == b'#') {
        url.truncate(i);
    }
    if let Some(i) = url.iter().position(|&b| b == b'?') {
        url.truncate(i);
    }
    if USES_PARAMS.contains(&scheme.as_slice()) && url.contains(&b';') {
        let from = url.iter().rposition(|&b| b == b'/').unwrap_or(0);
        if let Some(i) = url[from..].iter().position(|&b| b == b';') {
            url.truncate(from + i);
        }
    }
    Some(PyUrl { scheme, netloc, path: url })
}

/// The DAV servers whose reading of `Destination` is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `app/move.py`: `sanitize_path(urlparse(unquote(raw)).path)`.
    Radicale,
    /// `request_server.py`: `normalize_path(urlparse(unquote(raw), allow_fragments=False).path)`.
    WsgiDav,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Radicale, Backend::WsgiDav];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Radicale => "Radicale",
            Backend::WsgiDav => "WsgiDAV",
        }
    }

    /// The urlparse path (before dot segments are resolved) the backend
    /// reads from a `Destination` value, or `None` where urlparse raises.
    /// With `dest-fragment` known, WsgiDAV is taken to split off `#` too.
    pub fn destination_path(self, raw: &str) -> Option<Vec<u8>> {
        let whole: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        let allow_fragments = self == Backend::Radicale || known("dest-fragment");
        urlparse(&whole, allow_fragments).map(|u| u.path)
    }

    /// The path the backend copies or moves to: `destination_path` with
    /// dot segments resolved as the backend does (Radicale's
    /// `sanitize_path` stops at the root, WsgiDAV's `normalize_path` refuses
    /// to go above it: `None`). The trailing slash is dropped.
    pub fn destination_target(self, raw: &str) -> Option<String> {
        let path = String::from_utf8_lossy(&self.destination_path(raw)?).into_owned();
        let mut parts: Vec<&str> = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() && self == Backend::WsgiDav {
                        return None;
                    }
                }
                _ => parts.push(part),
            }
        }
        Some(format!("/{}", parts.join("/")))
    }
}

/// Whether a `Destination` mismatch with the backends falls in a bug class
/// listed in `DAVGATE_FUZZ_KNOWN` (other than `dest-fragment`, which
/// `Backend::destination_path` handles): `dest-params` (`;` in the last
/// segment of the path we decided on), `dest-network-path` (`//host/...`),
/// `dest-scheme` (a scheme other than http/https).
pub fn tolerated_destination(raw: &str, ours: &str) -> bool {
    if known("dest-params") && ours.rsplit('/').next().is_some_and(|last| last.contains(';')) {
        return true;
    }
    if known("dest-network-path") && raw.starts_with("//") {
        return true;
    }
    if known("dest-scheme") && !raw.starts_with('/') {
        let lower = raw.to_ascii_lowercase();
        return !lower.starts_with("http://") && !lower.starts_with("https://");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values printed by CPython 3.11.7:
    /// `urlparse(u, allow_fragments=f)[:3]`.
    #[test]
    fn matches_cpython() {
        type Case = (&'static str, bool, Option<(&'static str, &'static str, &'static str)>);
        let cases: &[Case] = &[
            ("http://h/a/b", true, Some(("http", "h", "/a/b"))),
            ("HTTP://H:1/a?q#f", true, Some(("http", "H:1", "/a"))),
            ("/a/b#c/../d", true, Some(("", "", "/a/b"))),
            ("/a/b#c/../d", false, Some(("", "", "/a/b#c/../d"))),
            ("/a/b;p", true, Some(("", "", "/a/b"))),
            ("/a;p/b", true, Some(("", "", "/a;p/b"))),
            ("x:/a/b;p", true, Some(("x", "", "/a/b;p"))),
            ("1http://h/a", true, Some(("", "", "1http://h/a"))),
            ("//h/a", true, Some(("", "h", "/a"))),
            ("http://h", true, Some(("http", "h", ""))),
            ("http://h:1/files/x#@h:1/cal/x", true, Some(("http", "h:1", "/files/x"))),
            (" \t/a\n/b", true, Some(("", "", "/a/b"))),
            ("http://[::1]/a", true, Some(("http", "[::1]", "/a"))),
            ("http://[x]/a", true, None),
            ("http://[/a", true, None),
            ("/a:b", true, Some(("", "", "/a:b"))),
        ];
        for &(url, frags, want) in cases {
            let got = urlparse(url.as_bytes(), frags);
            let want = want.map(|(s, n, p)| PyUrl { scheme: s.into(), netloc: n.into(), path: p.into() });
            assert_eq!(got, want, "{url:?} allow_fragments={frags}");
        }
    }

    /// Python: sanitize_path / normalize_path of the urlparse path above.
    #[test]
    fn backend_targets_resolve_dot_segments_like_the_backends() {
        let raw = "/calendars/alice/work/x#/../../../../files/alice/evil";
        assert_eq!(Backend::Radicale.destination_target(raw).as_deref(), Some("/calendars/alice/work/x"));
        assert_eq!(Backend::WsgiDav.destination_target(raw).as_deref(), Some("/files/alice/evil"));
        let raw = "1http://h/calendars/alice/work/x";
        assert_eq!(Backend::Radicale.destination_target(raw).as_deref(), Some("/1http:/h/calendars/alice/work/x"));
        assert_eq!(Backend::WsgiDav.destination_target("/a#/../../b"), None);
        assert_eq!(Backend::Radicale.destination_target("/a#/../../b").as_deref(), Some("/a"));
        assert_eq!(
            Backend::Radicale.destination_target("http://h:1%2Ffiles%2Fx%23@h:1/c/x").as_deref(),
            Some("/files/x")
        );
    }
}
