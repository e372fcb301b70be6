//! The config sections, their defaults, and the serde helpers for
//! durations and URLs. Every default here is documented in
//! `config.example.toml`.

use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Brute-force throttling of cold sign-ins (defaults follow Nextcloud's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// allowed between keep-alive requests on HTTP/1.1, the TLS handshake's
    /// limit and the wait for a new connection's first bytes.
    #[serde(default = "secs::<30>", with = "duration")]
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long is closed.
    #[serde(default = "secs::<120>", with = "duration")]
    pub idle_timeout: Duration,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Threads serving client connections, each with its own event loop
    /// and upstream pool; unset means one per CPU.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Time in-flight requests get to finish on SIGTERM/SIGINT.
    #[serde(default = "secs::<30>", with = "duration")]
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// Worker threads to run: `workers`, or one per CPU.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(with = "uri")]
    pub url: http::Uri,
    #[serde(default = "default_identity_header")]
    pub identity_header: String,
    /// Time the backend has to answer with response headers (on the HTTP/1
    /// relay also the longest it may go quiet in a response body).
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The embedded sled store's directory. Exactly one of `path` and `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A PostgreSQL store shared by several instances:
    /// `postgres://user@host:port/db` (`?sslmode=require` for TLS). The
    /// password comes from `password_file` or `DAVGATE_STORE_PASSWORD`,
    /// never from the URL, so the config can be shown.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Extra PEM CA bundle trusted for the database's TLS certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Pooled database connections (plus one for change notifications).
    #[serde(default = "default_store_pool_size")]
    pub pool_size: usize,
    /// The longest a database connect, pool wait or statement may take.
    #[serde(default = "secs::<5>", with = "duration")]
    pub timeout: Duration,
    /// sled's page cache, in MiB (sled's own default is 1 GiB); 1 to
    /// 1048576.
    #[serde(default = "default_store_cache_mib")]
    pub cache_mib: u64,
}

impl StoreConfig {
    /// An embedded store at `path`, other keys at their defaults.
    pub fn sled(path: &std::path::Path) -> Self {
        Self { path: Some(path.to_path_buf()), ..Self::blank() }
    }

    /// A PostgreSQL store at `url`, other keys at their defaults.
    pub fn postgres(url: &str) -> Self {
        Self { url: Some(url.to_string()), ..Self::blank() }
    }

    /// The config key and value naming the store, for messages.
    pub fn describe(&self) -> String {
        match (&self.path, &self.url) {
            (Some(path), _) => format!("store.path {}", path.display()),
            (None, Some(url)) => format!("store.url {url}"),
            (None, None) => "store (not set)".into(),
        }
    }

    fn blank() -> Self {
        Self {
            path: None,
            url: None,
            password_file: None,
            ca_file: None,
            pool_size: default_store_pool_size(),
            timeout: secs::<5>(),
            cache_mib: default_store_cache_mib(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default = "default_cache_capacity")]
    pub capacity: u64,
    #[serde(default = "secs::<600>", with = "duration")]
    pub ttl: Duration,
    /// While the PostgreSQL change feed is down, a cached credential older
    /// than this has its record read again (no argon2): the longest a
    /// revocation made on another instance can go unseen, and how long
    /// cached clients ride out a database outage.
    #[serde(default = "secs::<30>", with = "duration")]
    pub max_staleness: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityConfig {
    #[serde(default = "secs::<60>", with = "duration")]
    pub flush_interval: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Unix socket of the admin API; default: the store path + `.sock`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Also serve the admin API (bearer tokens), `/metrics`, `/healthz` and
    /// `/readyz` on this TCP address. Plain HTTP only on loopback.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Compact,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// A `tracing` filter such as "info" or "info,davgate::access=off";
    /// the `DAVGATE_LOG` environment variable overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// One line per gateway request (target `davgate::access`).
    #[serde(default = "yes")]
    pub access: bool,
    /// Access lines are written in batches at least this often (or per
    /// 32 KiB); zero writes each line as it comes.
    #[serde(default = "secs::<1>", with = "duration")]
    pub access_flush: Duration,
}

/// How the self-service page learns who is signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebAuth {
    /// User name, login password and optional TOTP, checked by davgate.
    Local,
    /// The user named by `user_header`, set by an SSO front that is one of
    /// `server.trusted_proxies`; from anyone else the page is refused.
    TrustedHeader,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the self-service page (and the Nextcloud login flow) on the
    /// main listener.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the page lives; a path of its own, ending in `/`.
    #[serde(default = "default_web_path")]
    pub path: String,
    #[serde(default = "default_web_auth")]
    pub auth: WebAuth,
    /// The header an SSO front puts the user in (`auth = "trusted-header"`).
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// Create users davgate does not know on their first SSO sign-in.
    #[serde(default)]
    pub auto_create_users: bool,
    /// A session ends after this long without a request...
    #[serde(default = "secs::<1800>", with = "duration")]
    pub session_idle: Duration,
    /// ...and this long after sign-in, whatever happens.
    #[serde(default = "secs::<43200>", with = "duration")]
    pub session_max: Duration,
    /// The URL clients use to reach davgate, shown on the page and put in
    /// setup profiles; default: the scheme and host of the request.
    #[serde(default, with = "opt_uri")]
    pub public_url: Option<http::Uri>,
    /// Nextcloud Login Flow v2 at `/index.php/login/v2`, so DAVx5 and
    /// Nextcloud-aware clients get an app password without copying it.
    #[serde(default = "yes")]
    pub login_flow: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryConfig {
    /// How often expired passwords get their `expired` event. Refusal does
    /// not wait for it: an expired password is refused at once.
    #[serde(default = "secs::<60>", with = "duration")]
    pub sweep_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// Changing the login password on the page revokes every app password.
    #[serde(default)]
    pub revoke_on_password_change: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
        Self { capacity: default_cache_capacity(), ttl: secs::<600>(), max_staleness: secs::<30>() }
    }
}
impl Default for ActivityConfig {
    fn default() -> Self {
        Self { flush_interval: secs::<60>() }
    }
}
impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            max_active_passwords: default_max_active(),
            default_lifetime: None,
            max_lifetime: None,
            revoke_on_password_change: false,
        }
    }
}
impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: default_web_path(),
            auth: default_web_auth(),
            user_header: default_user_header(),
            auto_create_users: false,
            session_idle: secs::<1800>(),
            session_max: secs::<43200>(),
            public_url: None,
            login_flow: true,
        }
    }
}
impl Default for LogConfig {
    fn default() -> Self {
        Self { format: default_log_format(), level: default_log_level(), access: true, access_flush: secs::<1>() }
    }
}
impl Default for ExpiryConfig {
    fn default() -> Self {
        Self { sweep_interval: secs::<60>() }
    }
}
impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self { paths: default_discovery_paths() }
    }
}

fn default_web_path() -> String {
    "/account/".into()
}
fn default_web_auth() -> WebAuth {
    WebAuth::Local
}
fn default_user_header() -> String {
    "Remote-User".into()
}
fn default_log_format() -> LogFormat {
    LogFormat::Compact
}
fn default_log_level() -> String {
    "info".into()
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
fn default_store_pool_size() -> usize {
    16
}
/// sled caches decoded pages, about 250 bytes per password record, and a
/// read loads a whole leaf. A store is read on a verify-cache miss (next to
/// an argon2 run that costs far more than a page read) and written once per
/// activity flush, so a small cache costs nothing measurable; at 64 MiB, 10k
/// distinct credentials on a store of 100k passwords filled ~30 MiB of it,
/// and RSS was 65 MiB against 56 at 8 MiB (BENCHMARKS.md, footprint).
fn default_store_cache_mib() -> u64 {
    8
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
pub(super) fn default_services() -> BTreeMap<String, Vec<String>> {
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

mod opt_uri {
    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<http::Uri>, D::Error> {
        super::uri::deserialize(d).map(Some)
    }
}
