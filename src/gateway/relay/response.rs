//! Reads the backend's response head and writes the one the client gets:
//! HTTP/1.1, without hop-by-hop fields, framed as the backend framed it.

use super::chunked::Chunked;
use crate::gateway::headers::is_hop_by_hop;

/// The longest response head read; a longer one is a failed exchange.
pub const MAX_HEAD: usize = 64 * 1024;

/// Header fields a response may have (hyper's client limit too).
const MAX_HEADERS: usize = 100;

/// Longest header name lower-cased for the rules.
const MAX_NAME: usize = 64;

/// How the body after the head ends.
#[derive(Debug)]
pub enum Framing {
    /// No body (`HEAD`, `204`, `304`).
    Empty,
    Length(u64),
    Chunked(Chunked),
    /// Read to the backend's close; the client's connection closes too
    /// (a `Transfer-Encoding` not ending in chunked, passed on as it is).
    UntilClose,
    /// No length and no `Transfer-Encoding`: read to the backend's close
    /// and sent on chunked, so the client's connection stays and a body
    /// cut short shows as one.
    Rechunked,
}

#[derive(Debug)]
pub struct Head {
    /// Bytes of the backend's head.
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The backend's connection can carry another request after this one.
    pub reusable: bool,
    /// The client's connection closes after this response.
    pub close: bool,
}

#[derive(Debug)]
pub enum Parsed {
    Final(Head),
    /// A `1xx` other than `101`, this many bytes long: dropped, as hyper's
    /// client drops them.
    Interim(usize),
    Partial,
}

/// Reads the response head at the start of `bytes`; for a final one,
/// writes the client's head to `out`. `close`: the client's connection
/// closes after this response whatever the backend says.
pub fn read(bytes: &[u8], request_was_head: bool, close: bool, out: &mut Vec<u8>) -> Result<Parsed, &'static str> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut fields);
    let len = match res.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD => return Err("response head too large"),
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err("malformed response head"),
    };
    let (Some(version), Some(code)) = (res.version, res.code) else { return Err("malformed response head") };
    match code {
        101 => return Err("the backend switched protocols unasked"),
        100..=199 => return Ok(Parsed::Interim(len)),
        _ => {}
    }

    // What the fields say about the connection and the framing.
    let (mut says_close, mut says_keep_alive) = (false, false);
    let mut listed: Vec<Vec<u8>> = Vec::new();
    let mut chunked = None;
    let mut length = None;
    for field in res.headers.iter() {
        if field.name.eq_ignore_ascii_case("connection") {
            for option in field.value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|o| !o.is_empty()) {
                if option.eq_ignore_ascii_case(b"close") {
                    says_close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    says_keep_alive = true;
                } else {
                    listed.push(option.to_ascii_lowercase());
                }
            }
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides (RFC 9112 §6.3): chunked, or read to the close.
            let last = field.value.rsplit(|&b| b == b',').next().map(<[u8]>::trim_ascii);
            chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
        } else if field.name.eq_ignore_ascii_case("content-length") {
            let n = super::digits(field.value).ok_or("invalid Content-Length")?;
            if length.replace(n).is_some_and(|seen| seen != n) {
                return Err("conflicting Content-Length");
            }
        }
    }
    // HTTP/1.0 keeps the connection only when it says `keep-alive`.
    let backend_close = says_close || (version == 0 && !says_keep_alive);
    let framing = if request_was_head || code == 204 || code == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked(Chunked::default()),
            (Some(false), _) => Framing::UntilClose,
            (None, None) => Framing::Rechunked,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    let until_close = matches!(framing, Framing::UntilClose);
    // Both framings at once may be an attempt at splitting (RFC 9112 §6.3):
    // this response is passed on, the connection is not used again.
    let both_framings = chunked.is_some() && length.is_some();
    let close = close || until_close;

    out.clear();
    let reason = res.reason.unwrap_or("");
    for part in [b"HTTP/1.1 ".as_slice(), itoa3(code).as_slice(), b" ", reason.as_bytes(), b"\r\n"] {
        out.extend_from_slice(part);
    }
    let mut lower = [0u8; MAX_NAME];
    for field in res.headers.iter() {
        let name = field.name.as_bytes();
        // Hop-by-hop names are short: a longer name can only be one that
        // `Connection` lists.
        let (hop, framing_field) = lower.get_mut(..name.len()).map_or((false, false), |lower| {
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            let lower = std::str::from_utf8(lower).expect("httparse checks names are tokens");
            let framing_field = lower == "transfer-encoding" || lower == "content-length";
            // Transfer-Encoding is kept with the body it frames, and wins
            // over Content-Length (RFC 9112 §6.3).
            let hop = (is_hop_by_hop(lower) && !framing_field) || (lower == "content-length" && chunked.is_some());
            (hop, framing_field)
        });
        // The fields that frame the body the relay passes on are never
        // dropped for being named in `Connection`.
        if hop || (!framing_field && listed.iter().any(|l| l.eq_ignore_ascii_case(name))) {
            continue;
        }
        for part in [name, b": ", field.value, b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    let rechunked = matches!(framing, Framing::Rechunked);
    if rechunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let reusable = !backend_close && !until_close && !rechunked && !both_framings;
    Ok(Parsed::Final(Head { len, status: code, framing, reusable, close }))
}

/// A status code's three digits (httparse reads exactly three).
fn itoa3(code: u16) -> [u8; 3] {
    [b'0' + (code / 100 % 10) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8]
}
