//! The page templates (askama: compiled into the binary, auto-escaped) and
//! the little formatting they need.

use super::forms::Errors;
use askama::Template;

/// What every page's frame needs: where the page lives, who is signed in
/// (empty when nobody) and the session's CSRF token for the sign-out form.
pub struct Chrome {
    pub base: String,
    pub user: String,
    pub csrf: String,
    pub current: &'static str,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignIn<'a> {
    pub chrome: Chrome,
    pub pre_token: &'a str,
    pub next: &'a str,
    pub user: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
pub struct SecondFactor<'a> {
    pub chrome: Chrome,
    pub next: &'a str,
    pub error: Option<&'a str>,
}

pub struct PasswordRow {
    pub id: String,
    pub name: String,
    pub services: Vec<String>,
    pub read_only: bool,
    pub collections: Vec<String>,
    pub networks: Vec<String>,
    pub created: String,
    pub created_iso: String,
    pub expires: String,
    pub status: &'static str,
    pub active: bool,
    pub last_used: String,
    pub client: Option<String>,
    pub ip: Option<String>,
}

#[derive(Template)]
#[template(path = "list.html")]
pub struct List {
    pub chrome: Chrome,
    pub notice: Option<String>,
    pub app_access: bool,
    pub active_count: usize,
    pub rows: Vec<PasswordRow>,
}

pub struct Choice {
    pub name: String,
    pub label: String,
    pub checked: bool,
}

pub struct CollectionChoice {
    pub path: String,
    pub label: String,
    pub kind: &'static str,
    pub checked: bool,
}

pub struct ExpiryChoice {
    pub value: &'static str,
    pub label: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "new.html")]
pub struct NewPassword {
    pub chrome: Chrome,
    pub heading: String,
    pub intro: Option<String>,
    pub action: String,
    pub submit: &'static str,
    pub errors: Errors,
    pub name: String,
    pub services: Vec<Choice>,
    pub collections: Vec<CollectionChoice>,
    pub read_only: bool,
    pub expiry_options: Vec<ExpiryChoice>,
    pub expiry_date: String,
    pub networks: String,
}

#[derive(Template)]
#[template(path = "created.html")]
pub struct Created<'a> {
    pub chrome: Chrome,
    pub name: &'a str,
    pub password: &'a str,
    pub server_url: &'a str,
    pub user: &'a str,
    pub profile_url: Option<String>,
    pub profile_services: &'static str,
    pub qr_svg: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub chrome: Chrome,
    pub heading: &'a str,
    pub text: &'a str,
    pub link: Option<(String, &'a str)>,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct Confirm<'a> {
    pub chrome: Chrome,
    pub heading: String,
    pub text: &'a str,
    pub action: String,
    pub button: &'a str,
}

#[derive(Template)]
#[template(path = "rename.html")]
pub struct Rename<'a> {
    pub chrome: Chrome,
    pub id: &'a str,
    pub current: &'a str,
    pub name: &'a str,
    pub error: Option<String>,
}

pub struct HistoryEntry {
    pub when: String,
    pub iso: String,
    pub what: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "history.html")]
pub struct History {
    pub chrome: Chrome,
    pub entries: Vec<HistoryEntry>,
    pub newer: Option<usize>,
    pub older: Option<usize>,
}

#[derive(Template)]
#[template(path = "security.html")]
pub struct Security {
    pub chrome: Chrome,
    pub notice: Option<String>,
    pub local: bool,
    pub totp: bool,
    pub revokes: bool,
    pub errors: Errors,
}

#[derive(Template)]
#[template(path = "totp_setup.html")]
pub struct TotpSetup<'a> {
    pub chrome: Chrome,
    pub qr_svg: String,
    pub secret: &'a str,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "recovery.html")]
pub struct Recovery<'a> {
    pub chrome: Chrome,
    pub codes: Vec<&'a str>,
}

/// `2026-11-24 13:05 UTC`
pub fn date_time(at: u64) -> String {
    let t = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at)).to_string();
    format!("{} {} UTC", &t[..10], &t[11..16])
}

/// `2026-11-24`
pub fn date(at: u64) -> String {
    date_time(at)[..10].to_string()
}

/// RFC 3339 for `<time datetime>`.
pub fn iso(at: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at)).to_string()
}

/// "just now", "2 minutes ago", "3 days ago", then the date.
pub fn ago(at: u64, now: u64) -> String {
    let secs = now.saturating_sub(at);
    let plural = |n: u64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match secs {
        0..60 => "just now".into(),
        60..3600 => plural(secs / 60, "minute"),
        3600..86_400 => plural(secs / 3600, "hour"),
        86_400..2_592_000 => plural(secs / 86_400, "day"),
        _ => date(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_a_person_would_say_them() {
        let now = 1_800_000_000;
        assert_eq!(ago(now - 5, now), "just now");
        assert_eq!(ago(now - 120, now), "2 minutes ago");
        assert_eq!(ago(now - 3600, now), "1 hour ago");
        assert_eq!(ago(now - 3 * 86_400, now), "3 days ago");
        assert_eq!(ago(now - 90 * 86_400, now), date(now - 90 * 86_400));
        assert_eq!(date_time(0), "1970-01-01 00:00 UTC");
    }

    #[test]
    fn templates_escape_what_users_typed() {
        let page = Rename {
            chrome: Chrome { base: "/account/".into(), user: "<b>".into(), csrf: "t".into(), current: "" },
            id: "abcde",
            current: "<script>alert(1)</script>",
            name: "\"onmouseover=x",
            error: None,
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)"), "{html}");
        assert!(!html.contains("value=\"\"onmouseover"), "an attribute cannot be closed early");
        assert!(!html.contains("<b>"));
    }
}
