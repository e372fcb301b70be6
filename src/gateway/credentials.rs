//! HTTP Basic credentials (RFC 7617), read from the `Authorization` header.
//!
//! Only well-formed, UTF-8 (RFC 7617 §2.1 `charset="UTF-8"`) credentials
//! with a colon come out; anything else is `None`, which the gateway answers
//! with the same `401` as a wrong password. The header value is never logged.

use crate::secret::Secret;
use base64::Engine;
use http::HeaderMap;
use http::header::AUTHORIZATION;

/// Longest `Authorization` value considered: a user name and a 29-character
/// password fit many times over; longer is an attack, not a client.
const MAX_HEADER_LEN: usize = 1024;

/// The decoded `user:password`, kept as one buffer (one allocation, wiped
/// once when dropped).
pub struct BasicCredentials {
    decoded: Secret<String>,
    /// Where the first `:` is: the user name is before it.
    colon: usize,
}

impl BasicCredentials {
    pub fn user(&self) -> &str {
        &self.decoded.expose()[..self.colon]
    }

    pub fn password(&self) -> &str {
        &self.decoded.expose()[self.colon + 1..]
    }
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials").field("user", &self.user()).field("password", &format_args!("***")).finish()
    }
}

/// Extracts Basic credentials; `None` when absent, repeated or malformed.
pub fn basic(headers: &HeaderMap) -> Option<BasicCredentials> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    from_value(value.as_bytes())
}

/// Decodes one `Authorization` value; `None` when malformed.
pub fn from_value(value: &[u8]) -> Option<BasicCredentials> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
    let decoded = Secret::new(String::from_utf8(decoded).ok()?);
    let colon = decoded.expose().find(':')?;
    let user = &decoded.expose()[..colon];
    if user.is_empty() || user.chars().any(char::is_control) {
        return None;
    }
    Some(BasicCredentials { decoded, colon })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_utf8_user_and_password_with_colons_in_the_password() {
        let h = headers(&[format!("Basic {}", b64("jürgen:pa:ss".as_bytes())).as_bytes()]);
        let c = basic(&h).unwrap();
        assert_eq!(c.user(), "jürgen");
        assert_eq!(c.password(), "pa:ss");
        let h = headers(&[format!("bAsIc {}", b64(b"a:b")).as_bytes()]);
        assert_eq!(basic(&h).unwrap().user(), "a");
    }

    #[test]
    fn refuses_malformed_credentials() {
        let long = format!("Basic {}", b64(&[b'a'; 65536]));
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"Basic".to_vec(),
            format!("Bearer {}", b64(b"a:b")).into_bytes(),
            b"Basic !!!notbase64".to_vec(),
            format!("Basic {}", b64(b"nocolon")).into_bytes(),
            format!("Basic {}", b64(b":emptyuser")).into_bytes(),
            format!("Basic {}", b64(b"\xff\xfe:x")).into_bytes(),
            long.into_bytes(),
        ];
        for case in cases {
            assert!(basic(&headers(&[&case])).is_none(), "{:?}", String::from_utf8_lossy(&case));
        }
        assert!(basic(&HeaderMap::new()).is_none());
        let one = format!("Basic {}", b64(b"a:b"));
        assert!(basic(&headers(&[one.as_bytes(), one.as_bytes()])).is_none(), "repeated header");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let h = headers(&[format!("Basic {}", b64(b"alice:topsecret")).as_bytes()]);
        let shown = format!("{:?}", basic(&h).unwrap());
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}
