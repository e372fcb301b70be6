//! A short name a person recognises for the client behind a User-Agent.
//!
//! The app-password list says "last used by DAVx5 4.4 on Android" so that its
//! owner can tell which device holds which password. The label is for reading
//! only: nothing may ever be decided on it, since any client can send any
//! agent. Whatever arrives, the label never carries control or invisible
//! characters, `<`, `>` or `"`, is at most [`MAX_LABEL`] characters long, and
//! building it never panics.

/// Longest label, in characters: it has to fit a table cell on a phone.
const MAX_LABEL: usize = 48;

/// Only this much of the agent is read, so a hostile 10 kB header costs what a normal one does.
const MAX_INPUT: usize = 512;

const UNKNOWN: &str = "Unknown client";

/// Known clients, first match wins. DAV clients come before browsers because
/// several of them embed a browser engine and also say "Chrome" or "Firefox";
/// among browsers Edge and Opera also say Chrome, and Chrome also says Safari.
const CLIENTS: &[Client] = &[
    // Android sync adapters and the apps that ride on them.
    product("DAVx5", "DAVx5", Version::MajorMinor, On::Fixed("Android")),
    product("DAVdroid", "DAVdroid", Version::MajorMinor, On::Fixed("Android")),
    product("ICSx5", "ICSx5", Version::MajorMinor, On::Fixed("Android")),
    product("org.tasks", "Tasks.org", Version::MajorMinor, On::Fixed("Android")),
    contains("Tasks.org", "Tasks.org", On::Fixed("Android")),
    contains("jtx", "jtx Board", On::Fixed("Android")),
    contains("OpenTasks", "OpenTasks", On::Fixed("Android")),
    contains("org.dmfs.tasks", "OpenTasks", On::Fixed("Android")),
    contains("Fossify", "Fossify", On::Fixed("Android")),
    product("Etar", "Etar", Version::MajorMinor, On::Fixed("Android")),
    contains("DecSync", "DecSync CC", On::Fixed("Android")),
    product("FolderSync", "FolderSync", Version::MajorMinor, On::Fixed("Android")),
    product("CalDAV-Sync", "CalDAV-Sync", Version::MajorMinor, On::Fixed("Android")),
    product("CardDAV-Sync", "CardDAV-Sync", Version::MajorMinor, On::Fixed("Android")),
    // Desktop mail, calendar and file clients.
    product("Betterbird", "Betterbird", Version::Major, On::Detect),
    product("Thunderbird", "Thunderbird", Version::Major, On::Detect),
    product("Evolution", "Evolution", Version::MajorMinor, On::Detect),
    product("gvfs", "GNOME gvfs", Version::MajorMinor, On::Detect),
    contains("Akonadi", "KDE Akonadi", On::Detect),
    product("KIO", "KDE KIO", Version::MajorMinor, On::Detect),
    product("Dolphin", "KDE Dolphin", Version::MajorMinor, On::Detect),
    contains("eM Client", "eM Client", On::Detect),
    product("BusyCal", "BusyCal", Version::MajorMinor, On::Fixed("macOS")),
    product("BusyContacts", "BusyContacts", Version::MajorMinor, On::Fixed("macOS")),
    product("CalDavSynchronizer", "Outlook CalDav Synchronizer", Version::MajorMinor, On::Nothing),
    product("Microsoft-WebDAV-MiniRedir", "Windows WebDAV", Version::Hidden, On::Nothing),
    contains("Microsoft Data Access Internet Publishing Provider", "Windows Web Folders", On::Nothing),
    contains("Microsoft Office", "Microsoft Office", On::Detect),
    product("WebDAVFS", "macOS Finder", Version::Hidden, On::Nothing),
    product("davfs2", "davfs2", Version::MajorMinor, On::Nothing),
    product("Cyberduck", "Cyberduck", Version::MajorMinor, On::Detect),
    contains("Mountain Duck", "Mountain Duck", On::Detect),
    product("WinSCP", "WinSCP", Version::MajorMinor, On::Fixed("Windows")),
    product("Transmit", "Transmit", Version::MajorMinor, On::Nothing),
    product("mirall", "Nextcloud desktop", Version::MajorMinor, On::Detect),
    product("GoodSync", "GoodSync", Version::MajorMinor, On::Detect),
    product("rclone", "rclone", Version::MajorMinor, On::Nothing),
    product("vdirsyncer", "vdirsyncer", Version::MajorMinor, On::Nothing),
    product("Joplin", "Joplin", Version::MajorMinor, On::Detect),
    product("obsidian", "Obsidian", Version::MajorMinor, On::Detect),
    product("Zotero", "Zotero", Version::MajorMinor, On::Detect),
    // Libraries and command-line tools.
    product("python-caldav", "caldav (Python)", Version::MajorMinor, On::Nothing),
    contains("python/caldav", "caldav (Python)", On::Nothing),
    product("python-requests", "python-requests", Version::MajorMinor, On::Nothing),
    product("curl", "curl", Version::MajorMinor, On::Nothing),
    product("Wget", "Wget", Version::MajorMinor, On::Nothing),
    // Browsers.
    product("Edg", "Edge", Version::Major, On::Detect),
    product("EdgA", "Edge", Version::Major, On::Detect),
    product("EdgiOS", "Edge", Version::Major, On::Detect),
    product("OPR", "Opera", Version::Major, On::Detect),
    product("Vivaldi", "Vivaldi", Version::Major, On::Detect),
    product("SamsungBrowser", "Samsung Internet", Version::Major, On::Detect),
    product("CriOS", "Chrome", Version::Major, On::Detect),
    product("FxiOS", "Firefox", Version::Major, On::Detect),
    product("Firefox", "Firefox", Version::Major, On::Detect),
    product("Chromium", "Chromium", Version::Major, On::Detect),
    product("Chrome", "Chrome", Version::Major, On::Detect),
    product("Safari", "Safari", Version::MajorOf("Version"), On::Detect),
];

/// Operating systems as agents name them, checked in order: Android agents
/// also say Linux, and iPhone agents also say "like Mac OS X".
const SYSTEMS: &[(&[&str], &str)] = &[
    (&["Android"], "Android"),
    (&["iPhone", "iPad", "iPod", "iOS", "iPadOS"], "iOS"),
    (&["CrOS"], "ChromeOS"),
    (&["Windows", "Win32", "Win64", "WinNT"], "Windows"),
    (&["Macintosh", "macOS", "Mac"], "macOS"),
    (&["Linux", "X11", "Ubuntu", "Fedora", "Debian"], "Linux"),
    (&["FreeBSD", "OpenBSD", "NetBSD"], "BSD"),
];

/// Apple's own DAV clients send `<system>/<version> (<build>) <daemon>/<version>`.
const APPLE_SYSTEMS: &[(&str, &str)] = &[
    ("iOS/", "iOS"),
    ("iPadOS/", "iPadOS"),
    ("watchOS/", "watchOS"),
    ("macOS/", "macOS"),
    ("Mac OS X/", "macOS"),
    ("Mac_OS_X/", "macOS"),
    ("OS X/", "macOS"),
];

/// On macOS the daemon is named after the app people know; iOS daemons are
/// shared by several apps, so they keep their own names there.
const MAC_DAEMONS: &[(&str, &str)] = &[
    ("CalendarAgent", "Calendar"),
    ("iCal", "Calendar"),
    ("AddressBookCore", "Contacts"),
    ("AddressBook", "Contacts"),
    ("AddressBookSourceSync", "Contacts"),
    ("ContactsAgent", "Contacts"),
];

/// Product tokens that open many agents and say nothing about the client.
const GENERIC: &[&str] = &["Mozilla", "AppleWebKit", "KHTML", "Gecko", "like", "compatible"];

/// A recognisable, display-safe name for the client that sent `user_agent`.
pub fn client_label(user_agent: &str) -> String {
    let agent = sanitize(user_agent);
    if agent.is_empty() {
        return UNKNOWN.to_owned();
    }
    let label = apple(&agent).or_else(|| known(&agent)).unwrap_or_else(|| fallback(&agent));
    let label = cap(&label);
    if label.is_empty() { UNKNOWN.to_owned() } else { label }
}

struct Client {
    matcher: Match,
    name: &'static str,
    version: Version,
    system: On,
}

/// What goes after " on ".
enum On {
    Nothing,
    /// The system the agent names, if any.
    Detect,
    /// The only system the client exists for, which its agent may not name.
    Fixed(&'static str),
}

enum Match {
    /// A product token `name/version` with this name (ASCII case-insensitive).
    Product(&'static str),
    /// This text anywhere in the agent (ASCII case-insensitive), for clients
    /// that have no product token of their own or one with a space in it.
    Contains(&'static str),
}

enum Version {
    Hidden,
    Major,
    MajorMinor,
    /// The major version of another product token: Safari puts its own in `Version/17.1`.
    MajorOf(&'static str),
}

const fn product(token: &'static str, name: &'static str, version: Version, system: On) -> Client {
    Client { matcher: Match::Product(token), name, version, system }
}

const fn contains(needle: &'static str, name: &'static str, system: On) -> Client {
    Client { matcher: Match::Contains(needle), name, version: Version::Hidden, system }
}

/// One `name/version` token outside parentheses (RFC 9110 §10.1.5).
struct Product<'a> {
    name: &'a str,
    version: Option<&'a str>,
}

fn apple(agent: &str) -> Option<String> {
    let (rest, system) =
        APPLE_SYSTEMS.iter().find_map(|(prefix, system)| Some((agent.strip_prefix(prefix)?, *system)))?;
    let tokens = products(rest);
    let raw_version = tokens.first().map(|p| p.name)?;
    let major = short_version(raw_version, 1)?;
    let mut label = if system == "macOS" {
        // Before 11, the minor number was the release (10.15 Catalina).
        let version = if major == "10" { short_version(raw_version, 2)? } else { major };
        format!("macOS {version}")
    } else {
        format!("{system}/{major}")
    };
    if let Some(daemon) = tokens.get(1).map(|p| p.name) {
        let daemon = match system {
            "macOS" => MAC_DAEMONS.iter().find(|(raw, _)| raw.eq_ignore_ascii_case(daemon)).map_or(daemon, |d| d.1),
            _ => daemon,
        };
        label.push(' ');
        label.push_str(daemon);
    }
    Some(label)
}

fn known(agent: &str) -> Option<String> {
    let tokens = products(agent);
    let lower = agent.to_ascii_lowercase();
    let client = CLIENTS.iter().find(|c| match c.matcher {
        Match::Product(name) => tokens.iter().any(|p| p.name.eq_ignore_ascii_case(name)),
        Match::Contains(needle) => lower.contains(&needle.to_ascii_lowercase()),
    })?;
    let version_of = |name: &str, parts: usize| {
        tokens.iter().find(|p| p.name.eq_ignore_ascii_case(name)).and_then(|p| short_version(p.version?, parts))
    };
    let version = match (&client.version, &client.matcher) {
        (Version::Major, Match::Product(name)) => version_of(name, 1),
        (Version::MajorMinor, Match::Product(name)) => version_of(name, 2),
        (Version::MajorOf(other), _) => version_of(other, 1),
        _ => None,
    };
    let system = match client.system {
        On::Nothing => None,
        On::Detect => operating_system(agent),
        On::Fixed(system) => Some(system),
    };
    Some(named(client.name, version.as_deref(), system))
}

fn fallback(agent: &str) -> String {
    let generic = |p: &&Product| GENERIC.iter().any(|g| p.name.eq_ignore_ascii_case(g));
    if let Some(p) = products(agent).iter().find(|p| !generic(p)) {
        return named(p.name, p.version.and_then(|v| short_version(v, 2)).as_deref(), None);
    }
    // Bots and old browsers name themselves inside the comment: "Mozilla/5.0 (compatible; Googlebot/2.1; …)".
    let opened = agent.replace(['(', ')', ';', ','], " ");
    let inner = products(&opened).iter().find_map(|p| {
        let version = short_version(p.version?, 2)?;
        (!generic(&p) && p.name.starts_with(char::is_alphanumeric)).then(|| named(p.name, Some(&version), None))
    });
    inner.unwrap_or_else(|| agent.to_owned())
}

fn named(name: &str, version: Option<&str>, system: Option<&str>) -> String {
    let mut label = name.to_owned();
    if let Some(version) = version {
        label.push(' ');
        label.push_str(version);
    }
    if let Some(system) = system {
        label.push_str(" on ");
        label.push_str(system);
    }
    label
}

fn operating_system(agent: &str) -> Option<&'static str> {
    let words: Vec<&str> = agent.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    SYSTEMS
        .iter()
        .find(|(names, _)| words.iter().any(|w| names.iter().any(|n| w.eq_ignore_ascii_case(n))))
        .map(|(_, system)| *system)
}

/// The product tokens of an agent, skipping parenthesised comments (which may nest).
fn products(agent: &str) -> Vec<Product<'_>> {
    let mut found = Vec::new();
    let mut depth = 0u32;
    let mut start = None;
    // Separators are ASCII, so every slice below starts and ends on a char boundary.
    for (i, byte) in agent.bytes().chain([b' ']).enumerate() {
        let separator = matches!(byte, b' ' | b'(' | b')');
        if separator && let Some(from) = start.take() {
            let word: &str = &agent[from..i];
            let (name, version) = word.split_once('/').map_or((word, None), |(n, v)| (n, Some(v)));
            if !name.is_empty() {
                found.push(Product { name, version: version.filter(|v| !v.is_empty()) });
            }
        }
        match byte {
            b'(' => depth = depth.saturating_add(1),
            b')' => depth = depth.saturating_sub(1),
            _ if depth == 0 && !separator && start.is_none() => start = Some(i),
            _ => {}
        }
    }
    found
}

/// At most `parts` numeric components, a leading `v` dropped: "v1.68.1" → "1.68", "4.4.3.2-ose" → "4.4".
fn short_version(raw: &str, parts: usize) -> Option<String> {
    let raw = raw.strip_prefix(['v', 'V']).unwrap_or(raw);
    let mut out = String::new();
    for segment in raw.split(['.', '_']).take(parts) {
        let digits = segment.find(|c: char| !c.is_ascii_digit()).map_or(segment, |end| &segment[..end]);
        if digits.is_empty() {
            break;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(digits);
        if digits.len() != segment.len() {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Printable text only, markup characters dropped, whitespace collapsed to single spaces.
fn sanitize(raw: &str) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in raw.chars().take(MAX_INPUT) {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else if visible(c) && !matches!(c, '<' | '>' | '"') {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// False for characters that render as nothing or rearrange the text around
/// them (bidi overrides could make a label read as something else).
fn visible(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FDD0}'..='\u{FDEF}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{FFFE}' | '\u{FFFF}'
            | '\u{E000}'..='\u{F8FF}' | '\u{E0000}'..='\u{10FFFF}')
}

fn cap(label: &str) -> String {
    let label = label.trim();
    if label.chars().count() <= MAX_LABEL {
        return label.to_owned();
    }
    let mut cut: String = label.chars().take(MAX_LABEL - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::client_label;

    fn check(cases: &[(&str, &str)]) {
        for (agent, want) in cases {
            assert_eq!(client_label(agent), *want, "agent: {agent:?}");
        }
    }

    #[test]
    fn android_sync_apps_are_named_with_major_minor_version() {
        check(&[
            ("DAVx5/4.4.3.2-ose (2024/09/10; dav4jvm; okhttp/4.12.0) Android/14", "DAVx5 4.4 on Android"),
            ("DAVx5/4.3.13-gplay (2024/03/18; dav4jvm; okhttp/4.12.0) Android/13", "DAVx5 4.3 on Android"),
            ("DAVdroid/1.11", "DAVdroid 1.11 on Android"),
            ("DAVdroid/1.11.4-ose (2018/06/27; dav4android; okhttp3) Android/8.1.0", "DAVdroid 1.11 on Android"),
            ("ICSx5/2.2.3-gplay (ical4j/3.2.14 okhttp/4.12.0) Android/14", "ICSx5 2.2 on Android"),
            ("org.tasks/13.11.1 (okhttp3) Android/14", "Tasks.org 13.11 on Android"),
            ("at.techbee.jtx/2.7.3 (okhttp/4.12.0) Android/14", "jtx Board on Android"),
            ("OpenTasks/1.4.1 Android/12", "OpenTasks on Android"),
            ("Fossify Calendar/1.0.3 Android/14", "Fossify on Android"),
            ("Etar/1.0.42 Android/13", "Etar 1.0 on Android"),
            ("DecSync CC/2.1 Android/11", "DecSync CC on Android"),
            ("FolderSync/3.5.10 (Android 14)", "FolderSync 3.5 on Android"),
        ]);
    }

    #[test]
    fn apple_daemons_keep_the_daemon_name_on_ios_and_the_app_name_on_macos() {
        check(&[
            ("iOS/18.1 (22B83) dataaccessd/1.0", "iOS/18 dataaccessd"),
            ("iOS/17.5 (21F79) remindd/1.0", "iOS/17 remindd"),
            ("iOS/16.6.1 (20G81) accountsd/1.0", "iOS/16 accountsd"),
            ("macOS/15.1 (24B83) CalendarAgent/1000", "macOS 15 Calendar"),
            ("Mac OS X/10.15.7 (19H2) CalendarAgent/954.1", "macOS 10.15 Calendar"),
            ("Mac_OS_X/10.9.2 (13C64) CalendarAgent/176", "macOS 10.9 Calendar"),
            ("macOS/14.0 (23A344) AddressBookCore/2487", "macOS 14 Contacts"),
            ("Mac OS X/10.11.6 (15G31) AddressBook/1756.20", "macOS 10.11 Contacts"),
            ("macOS/14.0 (23A344) dataaccessd/1.0", "macOS 14 dataaccessd"),
            ("WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)", "macOS Finder"),
        ]);
    }

    #[test]
    fn desktop_clients_are_named_with_their_system() {
        check(&[
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0",
                "Thunderbird 128 on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.5.1",
                "Thunderbird 128 on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:115.0) Gecko/20100101 Thunderbird/115.16.0",
                "Thunderbird 115 on macOS",
            ),
            ("Evolution/3.46.4", "Evolution 3.46"),
            ("gvfs/1.50.2", "GNOME gvfs 1.50"),
            (
                "Mozilla/5.0 (X11; Linux x86_64) KHTML/5.115.0 (like Gecko) Konqueror/5 KIO/5.115",
                "KDE KIO 5.115 on Linux",
            ),
            ("Akonadi DAV resource (KDE PIM 6.2; Linux)", "KDE Akonadi on Linux"),
            ("Microsoft-WebDAV-MiniRedir/10.0.19045", "Windows WebDAV"),
            ("Cyberduck/8.7.1.40770 (Mac OS X/14.1) (x86_64)", "Cyberduck 8.7 on macOS"),
            ("Cyberduck/9.0.2.42108 (Windows 10/10.0.19045) (amd64)", "Cyberduck 9.0 on Windows"),
            ("WinSCP/6.3.5 neon/0.33.0", "WinSCP 6.3 on Windows"),
            ("GoodSync/12.6.7.7", "GoodSync 12.6"),
            (
                "Mozilla/5.0 (Linux) mirall/3.14.3git (build 20240918) (Nextcloud, fedora)",
                "Nextcloud desktop 3.14 on Linux",
            ),
            ("Joplin/1.0", "Joplin 1.0"),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) obsidian/1.7.7 \
                 Chrome/128.0.6613.186 Electron/32.2.5 Safari/537.36",
                "Obsidian 1.7 on Windows",
            ),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Zotero/7.0", "Zotero 7.0 on Linux"),
        ]);
    }

    #[test]
    fn tools_and_libraries_are_named_with_their_version() {
        check(&[
            ("vdirsyncer/0.19.2", "vdirsyncer 0.19"),
            ("rclone/v1.68.1", "rclone 1.68"),
            ("davfs2/1.7.0 neon/0.32.5", "davfs2 1.7"),
            ("curl/8.5.0", "curl 8.5"),
            ("Wget/1.21.4", "Wget 1.21"),
            ("python-requests/2.32.3", "python-requests 2.32"),
            ("python-caldav/1.4.0", "caldav (Python) 1.4"),
            ("python/caldav/1.3.9", "caldav (Python)"),
        ]);
    }

    #[test]
    fn browsers_are_named_by_engine_order_not_by_the_first_token() {
        check(&[
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 \
                 Safari/537.36",
                "Chrome 131 on Windows",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile \
                 Safari/537.36",
                "Chrome 131 on Android",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 \
                 Safari/537.36 Edg/131.0.2903.86",
                "Edge 131 on Windows",
            ),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133 on Linux"),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/18.1 Safari/605.1.15",
                "Safari 18 on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/17.1 Mobile/15E148 Safari/604.1",
                "Safari 17 on iOS",
            ),
        ]);
    }

    #[test]
    fn unknown_agents_fall_back_to_their_first_product() {
        check(&[
            ("okhttp/4.12.0", "okhttp 4.12"),
            ("Go-http-client/1.1", "Go-http-client 1.1"),
            ("MyDavTool/v2.3.4-beta (+https://example.org)", "MyDavTool 2.3"),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot 2.1"),
            ("Mozilla/4.0 (compatible; MSIE 6.0)", "Mozilla/4.0 (compatible; MSIE 6.0)"),
            ("Mozilla/5.0 (compatible; +http://a.example/)", "Mozilla/5.0 (compatible; +http://a.example/)"),
            ("SomeClient", "SomeClient"),
            ("Tool/nightly", "Tool"),
        ]);
    }

    #[test]
    fn blank_agents_are_unknown() {
        check(&[
            ("", "Unknown client"),
            ("   \t\n ", "Unknown client"),
            ("\u{0}\u{7}\u{200B}\u{202E}", "Unknown client"),
        ]);
    }

    #[test]
    fn labels_are_cleaned_collapsed_and_capped() {
        check(&[
            ("curl/8.5.0\u{0}\u{1b}[31m", "curl 8.5"),
            ("  Cool\u{7}Tool/1.2.3\t\r\n  extra ", "CoolTool 1.2"),
            ("Mozilla/5.0 (<script>\"x\"</script>)", "Mozilla/5.0 (scriptx/script)"),
            ("\u{202E}evil/1.0", "evil 1.0"),
        ]);
        let long = format!("{}/1.0", "é".repeat(100));
        let label = client_label(&long);
        assert_eq!(label.chars().count(), 48);
        assert!(label.ends_with('…'));
        assert_eq!(client_label(&"a".repeat(48)), "a".repeat(48));
        assert_eq!(client_label(&"a".repeat(49)), format!("{}…", "a".repeat(47)));
    }

    #[test]
    fn hostile_agents_never_panic_and_stay_clean() {
        let hostile = [
            "x".repeat(10_000),
            "/".repeat(10_000),
            "(".repeat(10_000),
            ")".repeat(5_000) + &"(".repeat(5_000),
            "\u{0}".repeat(1_000),
            "日本語/二.三 (テスト) 🦀/🦀.🦀 Ω/v".to_owned(),
            "iOS/".to_owned(),
            "iOS/x (y) z".to_owned(),
            "macOS/10 (a)".to_owned(),
            "Mac OS X/".to_owned(),
            "/1.0 (a) b/".to_owned(),
            "v/v.v.v".to_owned(),
            "DAVx5/".to_owned(),
            "Safari/1 Version/".to_owned(),
            "a/\u{301}\u{301}\u{301} e\u{301}".repeat(40),
        ];
        for agent in &hostile {
            let label = client_label(agent);
            assert!(!label.is_empty());
            assert!(label.chars().count() <= 48, "{label:?}");
            assert!(!label.chars().any(|c| c.is_control() || matches!(c, '<' | '>' | '"')), "{label:?}");
        }
        assert_eq!(client_label("/".repeat(10_000).as_str()), format!("{}…", "/".repeat(47)));
        assert_eq!(client_label("iOS/x (y) z"), "iOS");
        assert_eq!(client_label("macOS/10 (a)"), "macOS 10");
    }
}
