//! An Apple configuration profile that sets up CalDAV and CardDAV accounts.
//!
//! The "app password created" page offers one so that an iPhone or a Mac is
//! set up by opening a file instead of typing a host, a user name and a long
//! password. It is an unsigned XML property list holding the payloads
//! `com.apple.caldav.account` and `com.apple.carddav.account` from Apple's
//! Configuration Profile Reference. The app password is in it in clear, which
//! is the point: it must be served once, to its owner, and never be logged,
//! cached or stored.

use std::fmt;

/// The media type iOS and macOS open as a profile to install.
pub const CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// The longest label kept in a file name, in characters.
const MAX_FILE_LABEL: usize = 64;

/// The accounts to set up on one device, for one app password.
pub struct Profile<'a> {
    /// Host name as the device should reach it: no scheme, no port.
    pub host: &'a str,
    pub port: u16,
    pub tls: bool,
    pub user: &'a str,
    /// The app password; it goes into the file in clear.
    pub password: &'a str,
    /// Already percent-encoded path of the user's principal; `None` means `/`
    /// and leaves the device to discover the rest (RFC 6764).
    pub principal_path: Option<&'a str>,
    pub caldav: bool,
    pub carddav: bool,
    /// The app password's name, shown in the profile's title.
    pub label: &'a str,
}

/// Prints everything but the password, so a stray `{:?}` cannot leak it.
impl fmt::Debug for Profile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"***")
            .field("principal_path", &self.principal_path)
            .field("caldav", &self.caldav)
            .field("carddav", &self.carddav)
            .field("label", &self.label)
            .finish()
    }
}

/// One account payload: the Apple key prefix and the words shown for it.
struct Account {
    kind: &'static str,
    prefix: &'static str,
    what: &'static str,
}

const CALDAV: Account = Account { kind: "caldav", prefix: "CalDAV", what: "Calendars" };
const CARDDAV: Account = Account { kind: "carddav", prefix: "CardDAV", what: "Contacts" };

impl Profile<'_> {
    /// The profile as an XML property list.
    ///
    /// Only the accounts asked for are included; with neither `caldav` nor
    /// `carddav` set both are, because a profile that sets up nothing is never
    /// what the caller meant. Every identifier carries a fresh UUID, so each
    /// download installs as its own profile and never replaces another's.
    /// Characters XML 1.0 cannot carry at all (most C0 controls) are dropped.
    pub fn render(&self) -> String {
        let both = !self.caldav && !self.carddav;
        let accounts: Vec<&Account> = [(self.caldav || both, &CALDAV), (self.carddav || both, &CARDDAV)]
            .into_iter()
            .filter(|a| a.0)
            .map(|a| a.1)
            .collect();
        let domain = reverse_dns(self.host);

        let mut plist = Plist::default();
        plist.line("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        plist.line(
            "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">",
        );
        plist.line("<plist version=\"1.0\">");
        plist.open("dict");
        plist.key("PayloadContent");
        plist.open("array");
        for account in &accounts {
            self.account(&mut plist, account, &domain);
        }
        plist.close("array");
        let what = accounts.iter().map(|a| a.what.to_lowercase()).collect::<Vec<_>>().join(" and ");
        plist.string(
            "PayloadDescription",
            &format!(
                "Sets up your {what} on {host} for {user}, signed in with the davgate app password \"{label}\". \
                 The file contains that password: delete it once the profile is installed.",
                host = self.host,
                user = self.user,
                label = self.label,
            ),
        );
        plist.string("PayloadDisplayName", &format!("{} (davgate: {})", self.host, self.label));
        let uuid = uuid_v4();
        plist.string("PayloadIdentifier", &format!("{domain}.davgate.{uuid}"));
        plist.boolean("PayloadRemovalDisallowed", false);
        plist.string("PayloadType", "Configuration");
        plist.string("PayloadUUID", &uuid);
        plist.integer("PayloadVersion", 1);
        plist.close("dict");
        plist.line("</plist>");
        plist.out
    }

    fn account(&self, plist: &mut Plist, account: &Account, domain: &str) {
        let key = |name: &str| format!("{}{name}", account.prefix);
        let principal = match self.principal_path {
            Some(path) if path.starts_with('/') => path.to_owned(),
            Some(path) => format!("/{path}"),
            None => "/".to_owned(),
        };
        let uuid = uuid_v4();
        plist.open("dict");
        plist.string(&key("AccountDescription"), &format!("{} on {} ({})", account.what, self.host, self.label));
        plist.string(&key("HostName"), self.host);
        plist.string(&key("Password"), self.password);
        plist.integer(&key("Port"), self.port.into());
        plist.string(&key("PrincipalURL"), &principal);
        plist.boolean(&key("UseSSL"), self.tls);
        plist.string(&key("Username"), self.user);
        plist.string("PayloadDisplayName", &format!("{} ({})", account.prefix, self.label));
        plist.string("PayloadIdentifier", &format!("{domain}.{}.{uuid}", account.kind));
        plist.string("PayloadType", &format!("com.apple.{}.account", account.kind));
        plist.string("PayloadUUID", &uuid);
        plist.integer("PayloadVersion", 1);
        plist.close("dict");
    }
}

/// A download name that is safe in a `Content-Disposition` header and on
/// any file system: `davgate-<label>.mobileconfig`, with only `[A-Za-z0-9._-]`.
pub fn file_name(label: &str) -> String {
    let mut safe = String::new();
    for c in label.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' };
        if !(c == '-' && safe.ends_with('-')) {
            safe.push(c);
        }
    }
    // No leading dots or dashes, so "../x" cannot turn into anything but "x".
    let safe: String = safe.trim_matches(['-', '.']).chars().take(MAX_FILE_LABEL).collect();
    let safe = safe.trim_end_matches(['-', '.']);
    if safe.is_empty() { "davgate.mobileconfig".to_owned() } else { format!("davgate-{safe}.mobileconfig") }
}

/// A plist written line by line, indented with tabs as Apple's tools do.
#[derive(Default)]
struct Plist {
    out: String,
    depth: usize,
}

impl Plist {
    fn line(&mut self, text: &str) {
        self.out.extend(std::iter::repeat_n('\t', self.depth));
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn open(&mut self, tag: &str) {
        self.line(&format!("<{tag}>"));
        self.depth += 1;
    }

    fn close(&mut self, tag: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.line(&format!("</{tag}>"));
    }

    fn key(&mut self, key: &str) {
        self.line(&format!("<key>{}</key>", escape(key)));
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        self.line(&format!("<string>{}</string>", escape(value)));
    }

    fn integer(&mut self, key: &str, value: u32) {
        self.key(key);
        self.line(&format!("<integer>{value}</integer>"));
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.key(key);
        self.line(if value { "<true/>" } else { "<false/>" });
    }
}

/// Text made safe for XML element content. A carriage return is written as a
/// reference because parsers turn a literal one into a line feed, which would
/// change a password.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            // The Char production of XML 1.0 §2.2; nothing can stand for the rest.
            '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => out.push(c),
            _ => {}
        }
    }
    out
}

/// "dav.example.org" → "org.example.dav", the reverse-DNS style Apple expects in PayloadIdentifier.
fn reverse_dns(host: &str) -> String {
    let labels: Vec<String> = host
        .rsplit('.')
        .map(|label| label.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>())
        .filter(|label| !label.is_empty())
        .map(|label| label.to_ascii_lowercase())
        .collect();
    if labels.is_empty() { "davgate".to_owned() } else { labels.join(".") }
}

/// A random (version 4) UUID in the uppercase 8-4-4-4-12 form profiles use (RFC 9562 §5.4).
fn uuid_v4() -> String {
    let mut bytes = rand::random::<[u8; 16]>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn profile<'a>(caldav: bool, carddav: bool) -> Profile<'a> {
        Profile {
            host: "dav.example.org",
            port: 443,
            tls: true,
            user: "alice",
            password: "app-password-1",
            principal_path: Some("/alice/"),
            caldav,
            carddav,
            label: "iPhone",
        }
    }

    /// The profile as Python's plistlib reads it, or `None` (with a note) without python3.
    fn parsed(xml: &str) -> Option<Value> {
        let script = "import json,plistlib,sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))";
        let child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipping the plistlib check: cannot run python3: {e}");
                return None;
            }
        };
        child.stdin.take().expect("stdin").write_all(xml.as_bytes()).expect("write to python3");
        let out = child.wait_with_output().expect("python3 output");
        assert!(out.status.success(), "plistlib refused the profile: {}\n{xml}", String::from_utf8_lossy(&out.stderr));
        Some(serde_json::from_slice(&out.stdout).expect("json from python3"))
    }

    fn payload_types(xml: &str) -> Vec<String> {
        xml.lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("<string>com.apple.")?.strip_suffix("</string>"))
            .map(|t| format!("com.apple.{t}"))
            .collect()
    }

    fn uuids(xml: &str) -> Vec<String> {
        let lines: Vec<&str> = xml.lines().map(str::trim).collect();
        lines
            .windows(2)
            .filter(|w| w[0] == "<key>PayloadUUID</key>")
            .filter_map(|w| Some(w[1].strip_prefix("<string>")?.strip_suffix("</string>")?.to_owned()))
            .collect()
    }

    fn well_formed_v4(uuid: &str) -> bool {
        let b = uuid.as_bytes();
        uuid.len() == 36
            && uuid.char_indices().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_digit() || ('A'..='F').contains(&c) }
            })
            && b[14] == b'4'
            && matches!(b[19], b'8' | b'9' | b'A' | b'B')
    }

    #[test]
    fn only_the_requested_payloads_are_included() {
        let caldav = "com.apple.caldav.account";
        let carddav = "com.apple.carddav.account";
        assert_eq!(payload_types(&profile(true, false).render()), [caldav]);
        assert_eq!(payload_types(&profile(false, true).render()), [carddav]);
        assert_eq!(payload_types(&profile(true, true).render()), [caldav, carddav]);
        assert_eq!(payload_types(&profile(false, false).render()), [caldav, carddav], "neither means both");
    }

    #[test]
    fn every_value_is_xml_escaped() {
        let mut p = profile(true, true);
        p.user = "a&b<c>";
        p.password = "p\"w'd&<x>";
        p.label = "<script>";
        let xml = p.render();
        assert!(xml.contains("<string>a&amp;b&lt;c&gt;</string>"));
        assert!(xml.contains("<string>p&quot;w&apos;d&amp;&lt;x&gt;</string>"));
        assert!(!xml.contains("a&b<c>") && !xml.contains("<script>") && !xml.contains("w'd"));
    }

    #[test]
    fn uuids_are_well_formed_and_fresh_on_every_render() {
        let first = uuids(&profile(true, true).render());
        let second = uuids(&profile(true, true).render());
        assert_eq!(first.len(), 3);
        assert!(first.iter().chain(&second).all(|u| well_formed_v4(u)), "{first:?} {second:?}");
        let mut all: Vec<&String> = first.iter().chain(&second).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn plistlib_reads_back_the_structure_and_exact_values() {
        let password = "p&<>\"' \r\n\t é 🦀 \u{1}end";
        let p = Profile {
            host: "dav.example.org",
            port: 8443,
            tls: true,
            user: "a&b<c>",
            password,
            principal_path: Some("alice/"),
            caldav: true,
            carddav: true,
            label: "Alice's iPhone",
        };
        let Some(d) = parsed(&p.render()) else { return };
        assert_eq!(d["PayloadType"], "Configuration");
        assert_eq!(d["PayloadVersion"], 1);
        assert_eq!(d["PayloadRemovalDisallowed"], false);
        assert_eq!(d["PayloadDisplayName"], "dav.example.org (davgate: Alice's iPhone)");
        assert!(d["PayloadDescription"].as_str().is_some_and(|s| s.contains("calendars and contacts")));
        let id = d["PayloadIdentifier"].as_str().expect("identifier");
        assert!(id.starts_with("org.example.dav.davgate."), "{id}");
        assert!(id.ends_with(d["PayloadUUID"].as_str().expect("uuid")));
        let content = d["PayloadContent"].as_array().expect("content");
        assert_eq!(content.len(), 2);
        for (payload, prefix, kind) in [(&content[0], "CalDAV", "caldav"), (&content[1], "CardDAV", "carddav")] {
            assert_eq!(payload["PayloadType"], format!("com.apple.{kind}.account"));
            assert_eq!(payload["PayloadVersion"], 1);
            let id = payload["PayloadIdentifier"].as_str().expect("identifier");
            assert!(id.starts_with(&format!("org.example.dav.{kind}.")), "{id}");
            assert!(well_formed_v4(payload["PayloadUUID"].as_str().expect("uuid")));
            assert!(payload["PayloadDisplayName"].is_string());
            assert!(payload[format!("{prefix}AccountDescription")].is_string());
            assert_eq!(payload[format!("{prefix}HostName")], "dav.example.org");
            assert_eq!(payload[format!("{prefix}Port")], 8443);
            assert_eq!(payload[format!("{prefix}UseSSL")], true);
            assert_eq!(payload[format!("{prefix}Username")], "a&b<c>");
            // U+0001 cannot exist in XML 1.0; everything else survives, CR included.
            assert_eq!(payload[format!("{prefix}Password")], password.replace('\u{1}', ""));
            assert_eq!(payload[format!("{prefix}PrincipalURL")], "/alice/");
        }
    }

    #[test]
    fn plain_http_and_a_missing_principal_are_rendered_as_such() {
        let mut p = profile(false, true);
        p.tls = false;
        p.port = 80;
        p.principal_path = None;
        let Some(d) = parsed(&p.render()) else { return };
        let card = &d["PayloadContent"][0];
        assert_eq!(card["CardDAVUseSSL"], false);
        assert_eq!(card["CardDAVPort"], 80);
        assert_eq!(card["CardDAVPrincipalURL"], "/");
    }

    #[test]
    fn debug_never_prints_the_password() {
        let shown = format!("{:?}", profile(true, true));
        assert!(!shown.contains("app-password-1"), "{shown}");
        assert!(shown.contains("***") && shown.contains("alice"));
    }

    #[test]
    fn file_names_are_plain_ascii() {
        assert_eq!(file_name("iPhone"), "davgate-iPhone.mobileconfig");
        assert_eq!(file_name("Alice's iPad 🍎"), "davgate-Alice-s-iPad.mobileconfig");
        assert_eq!(file_name("../../etc/passwd"), "davgate-etc-passwd.mobileconfig");
        assert_eq!(file_name("\"; x=\r\n"), "davgate-x.mobileconfig");
        assert_eq!(file_name(""), "davgate.mobileconfig");
        assert_eq!(file_name("🍎"), "davgate.mobileconfig");
        let long = file_name(&"a".repeat(1000));
        assert_eq!(long, format!("davgate-{}.mobileconfig", "a".repeat(64)));
    }

    #[test]
    fn identifiers_use_the_host_in_reverse() {
        assert_eq!(reverse_dns("dav.example.org"), "org.example.dav");
        assert_eq!(reverse_dns("[::1]"), "1");
        assert_eq!(reverse_dns("..."), "davgate");
        assert_eq!(reverse_dns("DAV.Example.ORG"), "org.example.dav");
    }
}
