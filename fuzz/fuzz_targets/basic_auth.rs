//! `gateway::credentials::basic`: the `Authorization: Basic` parser.
//!
//! Input layout: the first byte is a mode, the rest the payload.
//! - mode bit 0 clear: the payload is the raw header value (or values);
//!   bit 0 set: each value is built as `<scheme><spaces><base64(payload)>`,
//!   so the fuzzer reaches the decoded `user:password` directly.
//! - mode bit 1: two `Authorization` values, the payload cut at a point
//!   taken from the upper mode bits (a repeated header must be refused).
//!
//! Invariants: never panics; a repeated header or a value over 1024 bytes
//! gives `None`; a result has a non-empty user without control characters
//! or `:`, and the token really decodes to `user:password`; the Debug
//! output shows the user and `***`, never the password; and well-formed
//! credentials built by the harness are always accepted (no false refusal).

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use davgate::gateway::credentials::basic;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const MAX_HEADER_LEN: usize = 1024;
const SCHEMES: [&str; 4] = ["Basic", "basic", "BASIC", "bAsIc"];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else { return };
    let encode = mode & 1 == 1;
    let parts: Vec<&[u8]> = if mode & 2 == 2 {
        let cut = usize::from(mode >> 2) % (payload.len() + 1);
        vec![&payload[..cut], &payload[cut..]]
    } else {
        vec![payload]
    };

    let mut values = Vec::new();
    for part in &parts {
        let raw = if encode {
            let scheme = SCHEMES[usize::from(mode >> 2) % SCHEMES.len()];
            let spaces = " ".repeat(1 + usize::from(mode >> 6));
            format!("{scheme}{spaces}{}", STANDARD.encode(part)).into_bytes()
        } else {
            part.to_vec()
        };
        // Values hyper could never hand us are out of scope.
        let Ok(value) = HeaderValue::from_bytes(&raw) else { return };
        values.push(value);
    }
    let mut headers = HeaderMap::new();
    for value in &values {
        headers.append(AUTHORIZATION, value.clone());
    }

    let result = basic(&headers);

    let Some(creds) = result else {
        // No false refusal: a single well-formed value we built must parse.
        if encode
            && values.len() == 1
            && values[0].len() <= MAX_HEADER_LEN
            && let Ok(text) = std::str::from_utf8(payload)
            && let Some((user, _)) = text.split_once(':')
        {
            assert!(user.is_empty() || user.chars().any(char::is_control), "well-formed credentials refused: {text:?}");
        }
        return;
    };

    assert_eq!(values.len(), 1, "credentials accepted from a repeated Authorization header");
    let value = &values[0];
    assert!(value.len() <= MAX_HEADER_LEN, "accepted a {}-byte Authorization value", value.len());

    let user = creds.user.as_str();
    let password = creds.password.expose().as_str();
    assert!(!user.is_empty(), "empty user accepted");
    assert!(!user.chars().any(char::is_control), "control character in user {user:?}");
    assert!(!user.contains(':'), "':' in user {user:?}");

    // The token really is base64 of `user:password`, behind a Basic scheme.
    let text = value.to_str().expect("accepted a non-visible-ASCII value");
    let (scheme, token) = text.trim().split_once(' ').expect("accepted a value without a scheme");
    assert!(scheme.eq_ignore_ascii_case("basic"), "accepted scheme {scheme:?}");
    let decoded = STANDARD.decode(token.trim()).expect("accepted a token that is not base64");
    assert_eq!(decoded, format!("{user}:{password}").into_bytes(), "user/password differ from the token");
    if encode {
        assert_eq!(decoded, payload, "built credentials decoded differently");
    }

    // Debug shows the user and `***`, nothing else, so never the password.
    // An exact comparison rather than "does not contain the password": a
    // password such as "Cred", or one inside the user name, would make a
    // substring test fail for no bug.
    let shown = format!("{creds:?}");
    assert_eq!(shown, format!("BasicCredentials {{ user: {user:?}, password: *** }}"), "Debug output changed");
    assert_eq!(format!("{}", creds.password), "***");
});
