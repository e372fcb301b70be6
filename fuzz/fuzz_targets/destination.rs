//! `gateway::scope::decode_destination` against what the backends do.
//!
//! The input is one `Destination` header value (skipped when
//! `HeaderValue::from_bytes` refuses it). Radicale (`app/move.py`) and
//! WsgiDAV (`request_server.py`) both percent-decode the WHOLE header and
//! only then split it: `urlparse(unquote(value))`, Radicale with fragments
//! split off, WsgiDAV with `allow_fragments=False`. `davgate_fuzz::urlparse`
//! is CPython 3.11's `urlparse`, byte for byte.
//!
//! Invariants: never panics; an accepted Destination decodes to a path
//! with no dot segment, `\` or control character; and both backends'
//! reading of the header is exactly the path we decided on. Any mismatch
//! means the scope decision was made on another path than the one the
//! backend copies or moves to.
//!
//! `DAVGATE_FUZZ_KNOWN` tags (see `davgate_fuzz::known`), for long runs
//! while a reported bug is not fixed yet:
//! - `dest-fragment`: a literal `#` (http::Uri drops the fragment; WsgiDAV
//!   keeps it in the path and resolves the `..` after it);
//! - `dest-params`: `;` in the last segment (urlparse cuts `;params`);
//! - `dest-scheme`: a scheme other than http/https (`1http://h/x`: Python
//!   sees no scheme, so the whole text is the path);
//! - `dest-network-path`: `//host/path` (Python: netloc `host`, path `/path`).

#![no_main]

use davgate::gateway::scope::decode_destination;
use davgate_fuzz::{Backend, tolerated_destination};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let Ok(ours) = decode_destination(&value) else { return };

    assert!(ours.starts_with('/'), "{value:?} decoded to {ours:?}: no leading /");
    assert!(!ours.split('/').any(|seg| seg == "." || seg == ".."), "{value:?} decoded to {ours:?}: dot segment");
    assert!(!ours.contains('\\'), "{value:?} decoded to {ours:?}: backslash");
    assert!(!ours.bytes().any(|b| b.is_ascii_control()), "{value:?} decoded to {ours:?}: control character");

    let text = value.to_str().expect("accepted a non-ASCII Destination");
    if tolerated_destination(text, &ours) {
        return;
    }
    for backend in Backend::ALL {
        let Some(mut theirs) = backend.destination_path(text) else { continue };
        // "http://host" has an empty path: the root for both sides.
        if theirs.is_empty() {
            theirs.push(b'/');
        }
        assert!(
            theirs == ours.as_bytes(),
            "Destination {text:?}: we decided on {ours:?}, {} (urlparse(unquote(...))) uses {:?}",
            backend.name(),
            String::from_utf8_lossy(&theirs)
        );
    }
});
