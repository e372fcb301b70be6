//! Human output: aligned tables, readable times, and `--json`.

use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// Prints `value` as JSON with `--json`, else runs `human`.
pub fn emit(json: bool, value: &Value, human: impl FnOnce()) {
    if json {
        println!("{value}");
    } else {
        human();
    }
}

/// `2026-11-24 10:15` (UTC), or `-` for none.
pub fn time(unix: Option<u64>) -> String {
    match unix {
        Some(t) => {
            let s = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string();
            format!("{} {}", &s[..10], &s[11..16])
        }
        None => "-".into(),
    }
}

/// `90days`, `12h`.
pub fn duration(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// The strings of a JSON array.
pub fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|v| v.as_str()).map(String::from).collect()
}

/// A string field, or empty.
pub fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A query string from the parameters that are set.
pub fn query(params: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|v| {
                format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC))
            })
        })
        .collect();
    if set.is_empty() { String::new() } else { format!("?{}", set.join("&")) }
}
