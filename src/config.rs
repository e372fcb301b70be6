//! The TOML configuration: loading, defaults and validation.
//!
//! Loading never stops at the first problem: every error is collected and
//! each one names the file and the key (`davgate.toml: upstream.url: ...`),
//! so an operator fixes a file in one pass. Unknown keys are errors.

use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

#[derive(Debug, Clone, Deserialize)]
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
    #[serde(default = "default_services")]
    pub services: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub throttle: ThrottleConfig,
}

/// Brute-force throttling of cold sign-ins (defaults follow Nextcloud's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failures are counted in a window starting at the first one.
    #[serde(default = "secs::<1800>", with = "duration")]
    pub window: Duration,
    /// From this many failures on, attempts get `429` until the window ends.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Delay after the first failure; doubles with each further one.
    #[serde(default = "default_base_delay", with = "duration")]
    pub base_delay: Duration,
    #[serde(default = "secs::<25>", with = "duration")]
    pub max_delay: Duration,
    /// A refused attempt is held this long before its `429`, so a client
    /// hammering in a loop costs next to nothing.
    #[serde(default = "secs::<1>", with = "duration")]
    pub tarpit: Duration,
    /// Networks and user names remembered at most (bounded memory).
    #[serde(default = "default_max_tracked")]
    pub max_tracked: u64,
    /// IPv6 clients are counted per prefix of this length.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window: secs::<1800>(),
            max_failures: default_max_failures(),
            base_delay: default_base_delay(),
            max_delay: secs::<25>(),
            tarpit: secs::<1>(),
            max_tracked: default_max_tracked(),
            ipv6_prefix: default_ipv6_prefix(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Peers allowed to terminate TLS in front of davgate and to set
    /// `X-Forwarded-For`.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Time a client has to send a request's headers; also the idle time
    /// allowed between keep-alive requests on HTTP/1.1.
    #[serde(default = "secs::<30>", with = "duration")]
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long is closed.
    #[serde(default = "secs::<120>", with = "duration")]
    pub idle_timeout: Duration,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time in-flight requests get to finish on SIGTERM/SIGINT.
    #[serde(default = "secs::<30>", with = "duration")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(with = "uri")]
    pub url: http::Uri,
    #[serde(default = "default_identity_header")]
    pub identity_header: String,
    /// Time the backend has to answer with response headers.
    #[serde(default = "secs::<60>", with = "duration")]
    pub timeout: Duration,
    /// Send the client's `Host` to the backend (like nginx's
    /// `proxy_set_header Host $host`), so `Destination` headers match what the
    /// backend sees; off sends the upstream's own host (the client's stays in
    /// `X-Forwarded-Host`), for backends with name-based virtual hosts.
    #[serde(default = "yes")]
    pub preserve_host: bool,
    /// Extra PEM CA bundle trusted for an `https` upstream.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Keep below the backend's own keep-alive timeout (hyper#2136).
    #[serde(default = "secs::<4>", with = "duration")]
    pub pool_idle_timeout: Duration,
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// sled's page cache, in MiB (sled's own default is 1 GiB).
    #[serde(default = "default_store_cache_mib")]
    pub cache_mib: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashConfig {
    #[serde(default = "default_memory_kib")]
    pub memory_kib: u32,
    #[serde(default = "default_iterations")]
    pub iterations: u32,
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// Verifications running at once; 0 = half the CPU cores (at least one),
    /// so a flood of cold attempts leaves cores for cached clients.
    #[serde(default)]
    pub max_concurrent: usize,
    /// Cold verifications waiting beyond those; more get `503` at once.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default = "default_cache_capacity")]
    pub capacity: u64,
    #[serde(default = "secs::<600>", with = "duration")]
    pub ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityConfig {
    #[serde(default = "secs::<60>", with = "duration")]
    pub flush_interval: Duration,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Unix socket of the admin API; default: the store path + `.sock`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_max_active")]
    pub max_active_passwords: usize,
    /// Lifetime given when none is asked for; none = never expires.
    #[serde(default, with = "opt_duration")]
    pub default_lifetime: Option<Duration>,
    /// Longest lifetime a password may get; none = unbounded.
    #[serde(default, with = "opt_duration")]
    pub max_lifetime: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Paths every scope may read (RFC 6764 `.well-known`, principals, root).
    /// A pattern ending in `/` covers everything below it; others are exact.
    #[serde(default = "default_discovery_paths")]
    pub paths: Vec<String>,
}

impl Default for HashConfig {
    fn default() -> Self {
        Self {
            memory_kib: default_memory_kib(),
            iterations: default_iterations(),
            parallelism: default_parallelism(),
            max_concurrent: 0,
            max_queue: default_max_queue(),
        }
    }
}
impl Default for CacheConfig {
    fn default() -> Self {
        Self { capacity: default_cache_capacity(), ttl: secs::<600>() }
    }
}
impl Default for ActivityConfig {
    fn default() -> Self {
        Self { flush_interval: secs::<60>() }
    }
}
impl Default for PolicyConfig {
    fn default() -> Self {
        Self { max_active_passwords: default_max_active(), default_lifetime: None, max_lifetime: None }
    }
}
impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self { paths: default_discovery_paths() }
    }
}

fn default_max_queue() -> usize {
    64
}
fn default_max_failures() -> u32 {
    10
}
fn default_base_delay() -> Duration {
    Duration::from_millis(100)
}
fn default_max_tracked() -> u64 {
    100_000
}
fn default_ipv6_prefix() -> u8 {
    56
}
fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}
fn yes() -> bool {
    true
}
fn default_realm() -> String {
    "davgate".into()
}
fn default_max_connections() -> usize {
    10_000
}
fn default_identity_header() -> String {
    "X-Remote-User".into()
}
fn default_pool_max_idle() -> usize {
    64
}
fn default_store_cache_mib() -> u64 {
    64
}
fn default_memory_kib() -> u32 {
    19_456
}
fn default_iterations() -> u32 {
    2
}
fn default_parallelism() -> u32 {
    1
}
fn default_cache_capacity() -> u64 {
    100_000
}
fn default_max_active() -> usize {
    25
}
fn default_services() -> BTreeMap<String, Vec<String>> {
    // SabreDAV / Nextcloud / Baïkal layout; Radicale keeps everything in /{user}/.
    [("caldav", "/calendars/{user}/"), ("carddav", "/addressbooks/{user}/"), ("files", "/files/{user}/")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect()
}
fn default_discovery_paths() -> Vec<String> {
    // "/{user}" (exact) is Radicale's principal; "/principals/{user}/" SabreDAV's.
    ["/", "/.well-known/caldav", "/.well-known/carddav", "/principals/{user}/", "/{user}"]
        .into_iter()
        .map(String::from)
        .collect()
}

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
            let message = inner.message().trim().to_string();
            let at =
                inner.span().map(|s| format!(" (line {})", text[..s.start].lines().count().max(1))).unwrap_or_default();
            let problem = if key == "." || key.is_empty() {
                format!("{file}: {message}{at}")
            } else {
                format!("{file}: {key}: {message}{at}")
            };
            ConfigError { problems: vec![problem] }
        })?;
        let problems: Vec<String> = config.validate().into_iter().map(|p| format!("{file}: {p}")).collect();
        if problems.is_empty() { Ok(config) } else { Err(ConfigError { problems }) }
    }

    /// Checks what serde cannot: each entry is `key: what is wrong, how to fix`.
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let listen_ip = self.server.listen.ip();
        if self.server.tls.is_none() && !listen_ip.is_loopback() && self.server.trusted_proxies.is_empty() {
            p.push(format!(
                "server.listen: plain HTTP on the non-loopback address {listen_ip} would expose Basic credentials; \
                 set server.tls (cert and key) or server.trusted_proxies (the TLS terminator in front)"
            ));
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    p.push(format!("{key}: cannot read {}: {e}", path.display()));
                }
            }
        }
        if self.server.realm.contains('"') || self.server.realm.chars().any(char::is_control) {
            p.push("server.realm: must not contain quotes or control characters".into());
        }
        if self.server.max_connections == 0 {
            p.push("server.max_connections: must be at least 1".into());
        }
        match self.upstream.url.scheme_str() {
            Some("http") | Some("https") => {}
            _ => p.push(format!(
                "upstream.url: {:?} must be an absolute http:// or https:// URL",
                self.upstream.url.to_string()
            )),
        }
        if self.upstream.url.authority().is_none() {
            p.push("upstream.url: has no host".into());
        }
        if self.upstream.url.query().is_some() || !matches!(self.upstream.url.path(), "" | "/") {
            // Destination headers and response hrefs would need rewriting too.
            p.push(
                "upstream.url: must be scheme://host:port with no path or query; davgate forwards paths unchanged"
                    .into(),
            );
        }
        if http::HeaderName::from_bytes(self.upstream.identity_header.as_bytes()).is_err() {
            p.push(format!("upstream.identity_header: {:?} is not a valid header name", self.upstream.identity_header));
        }
        if let Some(ca) = &self.upstream.ca_file
            && let Err(e) = std::fs::metadata(ca)
        {
            p.push(format!("upstream.ca_file: cannot read {}: {e}", ca.display()));
        }
        if self.store.path.as_os_str().is_empty() {
            p.push("store.path: must not be empty".into());
        }
        if let Err(e) = argon2::Params::new(self.hash.memory_kib, self.hash.iterations, self.hash.parallelism, None) {
            p.push(format!("hash: invalid argon2 parameters (memory_kib, iterations, parallelism): {e}"));
        } else if self.hash.memory_kib < 8192 {
            p.push(format!(
                "hash.memory_kib: {} is below the OWASP minimum of 8192 (default 19456)",
                self.hash.memory_kib
            ));
        }
        if self.cache.capacity == 0 {
            p.push("cache.capacity: must be at least 1".into());
        }
        if self.cache.ttl.is_zero() {
            p.push("cache.ttl: must be longer than 0s".into());
        }
        if self.throttle.max_failures == 0 {
            p.push("throttle.max_failures: must be at least 1".into());
        }
        if self.throttle.window.is_zero() {
            p.push("throttle.window: must be longer than 0s".into());
        }
        if self.throttle.max_tracked == 0 {
            p.push("throttle.max_tracked: must be at least 1".into());
        }
        if self.throttle.ipv6_prefix > 128 {
            p.push(format!("throttle.ipv6_prefix: {} is longer than 128", self.throttle.ipv6_prefix));
        }
        if self.activity.flush_interval.is_zero() {
            p.push("activity.flush_interval: must be longer than 0s".into());
        }
        if self.policy.max_active_passwords == 0 {
            p.push("policy.max_active_passwords: must be at least 1".into());
        }
        if let (Some(d), Some(m)) = (self.policy.default_lifetime, self.policy.max_lifetime)
            && d > m
        {
            p.push("policy.default_lifetime: must be shorter than or equal to policy.max_lifetime".into());
        }
        for (name, patterns) in &self.services {
            if !crate::gateway::scope::is_service_name(name) {
                p.push(format!("services.{name}: a service name is lowercase letters, digits and '-'"));
            }
            if name == "all" {
                p.push("services.all: \"all\" is reserved for the unrestricted scope".into());
            }
            if patterns.is_empty() {
                p.push(format!("services.{name}: needs at least one path pattern"));
            }
            for pattern in patterns {
                if let Err(e) = crate::gateway::scope::check_pattern(pattern) {
                    p.push(format!("services.{name}: {pattern:?}: {e}"));
                }
            }
        }
        for pattern in &self.discovery.paths {
            if let Err(e) = crate::gateway::scope::check_pattern(pattern) {
                p.push(format!("discovery.paths: {pattern:?}: {e}"));
            }
        }
        p
    }

    /// The admin socket path: configured, or the store path with `.sock` appended.
    pub fn admin_socket(&self) -> PathBuf {
        self.admin.socket.clone().unwrap_or_else(|| {
            let mut s = self.store.path.clone().into_os_string();
            s.push(".sock");
            PathBuf::from(s)
        })
    }

    /// Whether `ip` is a configured trusted proxy.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.server.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// Durations are written as humantime strings: "30s", "5m", "90d".
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration like \"30s\" or \"5m\": {e}")))
    }
}

mod opt_duration {
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

mod uri {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Uri, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<http::Uri>().map_err(|e| serde::de::Error::custom(format!("{s:?} is not a URL: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.admin_socket(), PathBuf::from("./davgate-data.sock"));
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
        let e = problems(&format!("{MINIMAL}[cache]\nttl = \"0s\"\n"));
        assert!(e.contains("cache.ttl: must be longer than 0s"), "{e}");
        let e = problems(&format!("{MINIMAL}[activity]\nflush_interval = \"soon\"\n"));
        assert!(e.starts_with("davgate.toml: activity.flush_interval:"), "{e}");
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
    fn missing_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/davgate.toml")).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/davgate.toml: cannot read"), "{e}");
    }
}
