//! The TOML configuration: loading, defaults and validation.
//!
//! Loading never stops at the first problem: every error is collected and
//! each one names the file and the key (`davgate.toml: upstream.url: ...`),
//! so an operator fixes a file in one pass. Unknown keys are errors.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Every problem found in one config file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub store: StoreConfig,
    #[serde(default)]
    pub hash: HashConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub activity: ActivityConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Service name → path patterns (`{user}` is the authenticated user).
    #[serde(default = "sections::default_services")]
    pub services: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub throttle: ThrottleConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub expiry: ExpiryConfig,
    #[serde(default)]
    pub web: WebConfig,
}

mod sections;
mod validate;

pub use sections::*;

impl Config {
    /// Reads, parses and validates `path`; every problem names the file and key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { problems: vec![format!("{file}: cannot read: {e}")] })?;
        Self::parse(&text, &file)
    }

    /// Parses TOML text; `file` is the name used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = one_line(inner.message());
            let message = if message.is_empty() { "invalid TOML".to_string() } else { message };
            let at = inner.span().map(|s| format!(" (line {})", line_of(text, s.start))).unwrap_or_default();
            let problem = if key == "." || key.is_empty() {
                format!("{file}: {message}{at}")
            } else {
                format!("{file}: {key}: {message}{at}")
            };
            ConfigError { problems: vec![problem] }
        })?;
        let problems: Vec<String> =
            config.validate().into_iter().map(|p| format!("{file}: {}", one_line(&p))).collect();
        if problems.is_empty() { Ok(config) } else { Err(ConfigError { problems }) }
    }

    /// The admin socket path: configured, or the sled store's path with
    /// `.sock` appended. A PostgreSQL store has none unless configured: the
    /// CLI can open the database beside running servers.
    pub fn admin_socket(&self) -> Option<PathBuf> {
        self.admin.socket.clone().or_else(|| {
            let mut s = self.store.path.clone()?.into_os_string();
            s.push(".sock");
            Some(PathBuf::from(s))
        })
    }

    /// Whether `ip` is a configured trusted proxy.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.server.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// An error is one line: toml's messages span several, and key names
/// may hold escaped newlines.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// The 1-based line of byte `offset`; toml's spans may point past the end.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8080"
[upstream]
url = "http://127.0.0.1:5232"
[store]
path = "./davgate-data"
"#;

    fn problems(text: &str) -> String {
        Config::parse(text, "davgate.toml").unwrap_err().to_string()
    }

    #[test]
    fn minimal_file_works_with_defaults() {
        let c = Config::parse(MINIMAL, "davgate.toml").unwrap();
        assert_eq!(c.upstream.identity_header, "X-Remote-User");
        assert_eq!(c.hash.memory_kib, 19456);
        assert_eq!(c.policy.max_active_passwords, 25);
        assert_eq!(c.activity.flush_interval, Duration::from_secs(60));
        assert_eq!((c.log.access, c.log.access_flush), (true, Duration::from_secs(1)));
        assert_eq!(c.admin_socket(), Some(PathBuf::from("./davgate-data.sock")));
        assert!(c.services.contains_key("caldav"));
    }

    #[test]
    fn unknown_key_is_named_with_its_section() {
        let e = problems(&MINIMAL.replace("[store]", "[store]\npaht = \"x\""));
        assert!(e.starts_with("davgate.toml: store.paht: unknown field"), "{e}");
        assert!(e.contains("paht"), "{e}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let e = problems(&MINIMAL.replace("\"127.0.0.1:8080\"", "\"nonsense\""));
        assert!(e.starts_with("davgate.toml: server.listen:"), "{e}");
        let e = problems(&MINIMAL.replace("http://127.0.0.1:5232", "/relative"));
        assert!(e.contains("upstream.url:"), "{e}");
        let e = problems(&MINIMAL.replace("5232\"", "5232/dav\""));
        assert!(e.contains("upstream.url: must be scheme://host:port"), "{e}");
        let e = problems(&MINIMAL.replace("http://127.0.0.1", "http://admin:hunter2@127.0.0.1"));
        assert!(e.contains("upstream.url: must not contain a user name or password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = problems(&format!("{MINIMAL}[cache]\nttl = \"0s\"\n"));
        assert!(e.contains("cache.ttl: must be longer than 0s"), "{e}");
        let e = problems(&format!("{MINIMAL}[activity]\nflush_interval = \"soon\"\n"));
        assert!(e.starts_with("davgate.toml: activity.flush_interval:"), "{e}");
        for bad in ["1ms", "2m"] {
            let e = problems(&format!("{MINIMAL}[log]\naccess_flush = \"{bad}\"\n"));
            assert!(
                e.contains(&format!("log.access_flush: {bad} is not \"0s\" (each line at once) or 10ms to 60s")),
                "{e}"
            );
        }
        for good in ["0s", "10ms", "60s"] {
            Config::parse(&format!("{MINIMAL}[log]\naccess_flush = \"{good}\"\n"), "davgate.toml").unwrap();
        }
        let e = problems(&format!("{MINIMAL}[log]\naccess_flush = \"often\"\n"));
        assert!(e.starts_with("davgate.toml: log.access_flush:") && e.contains("not a duration"), "{e}");
        let e = problems(&MINIMAL.replace("[upstream]", "workers = 0\n[upstream]"));
        assert!(e.contains("server.workers: must be 1 to 1024"), "{e}");
        let e = problems(&MINIMAL.replace("[store]", "[store]\ncache_mib = 0"));
        assert!(e.contains("store.cache_mib: must be 1 to 1048576"), "{e}");
        let e = problems(&MINIMAL.replace("[store]", "[store]\ncache_mib = 9223372036854775807"));
        assert!(e.contains("store.cache_mib: must be 1 to 1048576"), "{e}");
        let e = problems(&MINIMAL.replace("[upstream]", "workers = -1\n[upstream]"));
        assert!(e.starts_with("davgate.toml: server.workers:"), "{e}");
    }

    #[test]
    fn workers_default_to_one_per_cpu() {
        let c = Config::parse(MINIMAL, "davgate.toml").unwrap();
        assert_eq!(c.server.worker_count(), std::thread::available_parallelism().unwrap().get());
        let c = Config::parse(&MINIMAL.replace("[upstream]", "workers = 3\n[upstream]"), "davgate.toml").unwrap();
        assert_eq!(c.server.worker_count(), 3);
    }

    #[test]
    fn plain_http_on_a_public_address_is_refused_naming_the_key() {
        let e = problems(&MINIMAL.replace("127.0.0.1:8080", "0.0.0.0:8080"));
        assert!(e.contains("server.listen: plain HTTP"), "{e}");
        let ok = MINIMAL
            .replace("127.0.0.1:8080", "0.0.0.0:8080")
            .replace("[server]", "[server]\ntrusted_proxies = [\"10.0.0.1/32\"]");
        assert!(Config::parse(&ok, "davgate.toml").is_ok());
    }

    #[test]
    fn all_semantic_problems_are_reported_at_once() {
        let text = format!("{MINIMAL}[policy]\nmax_active_passwords = 0\n[services]\nBad = []\n");
        let e = Config::parse(&text, "davgate.toml").unwrap_err();
        assert!(e.problems.len() >= 3, "{e}");
        assert!(e.problems.iter().all(|p| p.starts_with("davgate.toml: ")));
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        for text in ["[t", "[", "a = ", "\r", "[server]\nlisten = \"", "\u{e9}["] {
            let e = Config::parse(text, "f.toml").unwrap_err();
            assert_eq!(e.to_string().lines().count(), e.problems.len(), "one line per problem: {e}");
            assert!(e.problems.iter().all(|p| p.starts_with("f.toml: ") && p.len() > "f.toml: ".len() + 2), "{e}");
        }
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb", 99), 2);
    }

    #[test]
    fn missing_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/davgate.toml")).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/davgate.toml: cannot read"), "{e}");
    }
}
