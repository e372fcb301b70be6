//! `config::Config::parse`: TOML parsing and validation.
//!
//! The input is the text of a config file (skipped unless UTF-8).
//!
//! Invariants: never panics; an error has at least one problem, every
//! problem says something besides the file name and line, and every line an
//! operator reads (`ConfigError`'s Display: the problems joined by newlines)
//! starts with the file name, `fuzz.toml: `.
//!
//! `DAVGATE_FUZZ_KNOWN` tags (see `davgate_fuzz::known`): `config-multiline`
//! checks only that each problem starts with the file name, not each line;
//! `config-empty-message` lets a problem be just `fuzz.toml:  (line N)`.

#![no_main]

use davgate::config::Config;
use davgate_fuzz::known;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Err(e) = Config::parse(text, FILE) else { return };
    assert!(!e.problems.is_empty(), "an error without a problem");
    let prefix = format!("{FILE}: ");
    for problem in &e.problems {
        assert!(problem.starts_with(&prefix), "problem does not name the file: {problem:?}");
        if !known("config-empty-message") {
            // Something to read besides the file and the " (line N)" suffix.
            let text = problem[prefix.len()..].trim_end();
            let text = match text.rfind(" (line ") {
                Some(i) if text.ends_with(')') => &text[..i],
                _ => text,
            };
            assert!(!text.trim().is_empty(), "problem without a message: {problem:?}");
        }
    }
    if known("config-multiline") {
        return;
    }
    for line in e.to_string().lines() {
        assert!(line.starts_with(&prefix), "error line does not name the file: {line:?}\nin: {e}");
    }
});
