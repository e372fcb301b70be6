//! Human output: aligned tables and readable times.

use std::time::{Duration, UNIX_EPOCH};

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
