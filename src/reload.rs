//! Config reload (SIGHUP): which keys apply at once and which need a restart.
//!
//! Everything the request path reads per request (upstream, services,
//! discovery, policy, realm, trusted proxies, the TLS certificate, the
//! access-log switch) applies to the next request. What is bound or sized
//! at start (listen addresses, store, hashing, caches, throttle, timeouts,
//! log format, session lifetimes) keeps its old value until a restart, and is named so the
//! operator knows.

use crate::config::Config;

/// The config to apply: `new`, with every restart-only key kept from `old`;
/// and the restart-only keys that differ.
pub fn effective(old: &Config, new: Config) -> (Config, Vec<&'static str>) {
    let mut effective = new;
    let mut needs_restart = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $name:literal) => {
            if effective.$($field).+ != old.$($field).+ {
                needs_restart.push($name);
                effective.$($field).+ = old.$($field).+.clone();
            }
        };
    }
    keep!(server.listen, "server.listen");
    keep!(server.header_read_timeout, "server.header_read_timeout");
    keep!(server.idle_timeout, "server.idle_timeout");
    keep!(server.max_connections, "server.max_connections");
    keep!(server.workers, "server.workers");
    keep!(server.shutdown_grace, "server.shutdown_grace");
    // The certificate files may change; turning TLS on or off may not.
    if effective.server.tls.is_some() != old.server.tls.is_some() {
        needs_restart.push("server.tls");
        effective.server.tls = old.server.tls.clone();
    }
    keep!(store, "store");
    keep!(hash, "hash");
    keep!(cache, "cache");
    keep!(activity, "activity");
    keep!(admin, "admin");
    keep!(throttle, "throttle");
    keep!(expiry, "expiry");
    keep!(log.format, "log.format");
    keep!(log.level, "log.level");
    keep!(log.access_flush, "log.access_flush");
    keep!(web.session_idle, "web.session_idle");
    keep!(web.session_max, "web.session_max");
    (effective, needs_restart)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\n{extra}\n[upstream]\nurl = \"http://127.0.0.1:5232\"\n[store]\npath = \"/tmp/x\"\n"
        );
        Config::parse(&text, "t.toml").unwrap()
    }

    #[test]
    fn per_request_keys_apply_and_startup_keys_are_kept_and_named() {
        let old = parse("realm = \"old\"");
        let mut new = parse("realm = \"new\"\nmax_connections = 5\nworkers = 3");
        new.server.listen = "127.0.0.1:9090".parse().unwrap();
        new.upstream.url = "http://127.0.0.1:6000".parse().unwrap();
        let (effective, restart) = effective(&old, new);
        assert_eq!(effective.server.realm, "new");
        assert_eq!(effective.upstream.url, "http://127.0.0.1:6000");
        assert_eq!(effective.server.listen, old.server.listen);
        assert_eq!(effective.server.max_connections, old.server.max_connections);
        assert_eq!(effective.server.workers, None);
        assert_eq!(restart, ["server.listen", "server.max_connections", "server.workers"]);
    }

    #[test]
    fn the_log_writer_is_set_at_start_up_and_the_access_switch_applies() {
        let old = parse("[log]\naccess = true");
        let new = parse("[log]\naccess = false\naccess_flush = \"0s\"");
        let (effective, restart) = effective(&old, new);
        assert!(!effective.log.access);
        assert_eq!(effective.log.access_flush, std::time::Duration::from_secs(1));
        assert_eq!(restart, ["log.access_flush"]);
    }

    #[test]
    fn an_unchanged_file_needs_no_restart() {
        let (_, restart) = effective(&parse(""), parse(""));
        assert!(restart.is_empty());
    }
}
