//! Checks serde cannot make: each problem is `key: what is wrong`, and all
//! of them are collected so an operator fixes a file in one pass.

use super::Config;
use std::time::Duration;

/// More serving threads than this is a typo, not a machine.
const MAX_WORKERS: usize = 1024;
/// 1 TiB: far above any real store, and `cache_mib` MiB still fits in a u64 of bytes.
const MAX_STORE_CACHE_MIB: u64 = 1 << 20;

impl Config {
    /// Checks what serde cannot: each entry is `key: what is wrong, how to fix`.
    pub(crate) fn validate(&self) -> Vec<String> {
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
        if let Some(addr) = self.admin.listen
            && self.admin.tls.is_none()
            && !addr.ip().is_loopback()
        {
            p.push(format!(
                "admin.listen: plain HTTP on the non-loopback address {} would expose admin tokens; \
                 set admin.tls (cert and key) or listen on 127.0.0.1",
                addr.ip()
            ));
        }
        if let Some(tls) = &self.admin.tls {
            if self.admin.listen.is_none() {
                p.push("admin.tls: set admin.listen too, or remove admin.tls".into());
            }
            for (key, path) in [("admin.tls.cert", &tls.cert), ("admin.tls.key", &tls.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    p.push(format!("{key}: cannot read {}: {e}", path.display()));
                }
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!("log.level: {:?} is not a filter like \"info\" or \"warn,davgate=debug\"", self.log.level));
        }
        p.extend(self.validate_web());
        if self.expiry.sweep_interval.is_zero() {
            p.push("expiry.sweep_interval: must be longer than 0s".into());
        }
        if self.server.realm.contains('"') || self.server.realm.chars().any(char::is_control) {
            p.push("server.realm: must not contain quotes or control characters".into());
        }
        if self.server.max_connections == 0 {
            p.push("server.max_connections: must be at least 1".into());
        }
        if let Some(n) = self.server.workers
            && !(1..=MAX_WORKERS).contains(&n)
        {
            p.push(format!("server.workers: must be 1 to {MAX_WORKERS} (leave it unset for one per CPU), not {n}"));
        }
        match self.upstream.url.scheme_str() {
            Some("http") | Some("https") => {}
            _ => p.push(format!(
                "upstream.url: {:?} must be an absolute http:// or https:// URL",
                self.upstream.url.to_string()
            )),
        }
        match self.upstream.url.authority() {
            None => p.push("upstream.url: has no host".into()),
            // It would be sent in `Host`; the backend learns the user from the identity header.
            Some(a) if a.as_str().contains('@') => {
                p.push("upstream.url: must not contain a user name or password (user@host)".into())
            }
            Some(_) => {}
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
        self.validate_store(&mut p);
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
        let flush = self.log.access_flush;
        if !flush.is_zero() && !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&flush) {
            // Shorter would wake a thread all the time; longer would hold
            // lines back (and lose more in a crash) for no gain.
            p.push(format!(
                "log.access_flush: {} is not \"0s\" (each line at once) or 10ms to 60s",
                humantime::format_duration(flush)
            ));
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
}

impl Config {
    fn validate_store(&self, p: &mut Vec<String>) {
        let store = &self.store;
        match (&store.path, &store.url) {
            (Some(_), Some(_)) => p.push("store: set either path (sled) or url (PostgreSQL), not both".into()),
            (None, None) => p.push("store: set path (the embedded sled store) or url (PostgreSQL)".into()),
            (Some(path), None) if path.as_os_str().is_empty() => p.push("store.path: must not be empty".into()),
            (Some(_), None) => {
                for (key, set) in
                    [("password_file", store.password_file.is_some()), ("ca_file", store.ca_file.is_some())]
                {
                    if set {
                        p.push(format!("store.{key}: only used with store.url (PostgreSQL)"));
                    }
                }
            }
            (None, Some(url)) => {
                if let Err(e) = crate::store::postgres::parse_url(url) {
                    p.push(format!("store.url: {e}"));
                }
            }
        }
        for (key, file) in [("password_file", &store.password_file), ("ca_file", &store.ca_file)] {
            let Some(file) = file else { continue };
            match std::fs::metadata(file) {
                Err(e) => p.push(format!("store.{key}: cannot read {}: {e}", file.display())),
                Ok(meta)
                    if key == "password_file"
                        && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 =>
                {
                    p.push(format!(
                        "store.password_file: {} is readable by group or others: chmod 600 it",
                        file.display()
                    ))
                }
                Ok(_) => {}
            }
        }
        if store.pool_size == 0 {
            p.push("store.pool_size: must be at least 1".into());
        }
        // Only sled has a page cache; PostgreSQL ignores the key.
        if store.path.is_some() && !(1..=MAX_STORE_CACHE_MIB).contains(&store.cache_mib) {
            p.push(format!("store.cache_mib: must be 1 to {MAX_STORE_CACHE_MIB}"));
        }
        if store.timeout.is_zero() {
            p.push("store.timeout: must be longer than 0s".into());
        }
        if self.cache.max_staleness < std::time::Duration::from_secs(1) {
            p.push("cache.max_staleness: must be at least 1s".into());
        }
    }

    fn validate_web(&self) -> Vec<String> {
        let web = &self.web;
        let mut p = Vec::new();
        let path_ok = web.path.starts_with('/')
            && web.path.ends_with('/')
            && web.path.len() > 1
            && web.path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
            && !web.path.contains("//")
            && !web.path.split('/').any(|s| s == "." || s == "..");
        if !path_ok {
            p.push(format!("web.path: {:?} must be a path of its own like \"/account/\" (not \"/\")", web.path));
        }
        if web.auth == super::WebAuth::TrustedHeader && self.server.trusted_proxies.is_empty() {
            p.push(
                "web.auth: \"trusted-header\" needs server.trusted_proxies (the SSO front's address); \
                 without it every sign-in is refused"
                    .into(),
            );
        }
        if http::HeaderName::from_bytes(web.user_header.as_bytes()).is_err() {
            p.push(format!("web.user_header: {:?} is not a header name", web.user_header));
        }
        if web.session_idle.is_zero() || web.session_max < web.session_idle {
            p.push("web.session_idle: must be longer than 0s and at most web.session_max".into());
        }
        if let Some(url) = &web.public_url
            && (!matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() || url.path() != "/")
        {
            p.push(format!("web.public_url: {:?} must be like \"https://dav.example.org\" (no path)", url.to_string()));
        }
        p
    }
}
