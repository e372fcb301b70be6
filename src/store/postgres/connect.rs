//! Turning `[store]` into a connection config, a TLS connector and a pool.

use crate::config::StoreConfig;
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Where the password comes from when the config has no `password_file`.
pub const PASSWORD_ENV: &str = "DAVGATE_STORE_PASSWORD";

/// Parses a `postgres://` URL, refusing one that carries a password (it
/// would end up in config dumps and process listings).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// (e.g. postgres://davgate@db.example:5432/davgate)".into());
    }
    // libpq's default `prefer` (and `allow`) fall back to plain text when
    // an attacker in the path says so: TLS is either required or off.
    let ssl_mode = url.split_once("sslmode=").map(|(_, rest)| rest.split('&').next().unwrap_or_default());
    if let Some(other) = ssl_mode.filter(|m| !matches!(*m, "disable" | "require")) {
        return Err(format!("sslmode={other}: use sslmode=require (verified TLS) or sslmode=disable"));
    }
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    if config.get_password().is_some() {
        return Err(format!("holds a password: put it in store.password_file or ${PASSWORD_ENV} instead"));
    }
    if config.get_hosts().is_empty() {
        return Err("names no host".into());
    }
    if ssl_mode.is_none() {
        config.ssl_mode(SslMode::Disable);
    }
    Ok(config)
}

/// The database password: `password_file` (one line), else the environment.
fn password(store: &StoreConfig) -> StoreResult<Option<Vec<u8>>> {
    if let Some(file) = &store.password_file {
        use std::os::unix::fs::PermissionsExt;
        let cannot =
            |e: std::io::Error| StoreError::Io(format!("store.password_file: cannot read {}: {e}", file.display()));
        let mode = std::fs::metadata(file).map_err(cannot)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::Io(format!(
                "store.password_file: {} is readable by group or others (mode {:o}): chmod 600 it",
                file.display(),
                mode & 0o777
            )));
        }
        let text = std::fs::read(file).map_err(cannot)?;
        let end = text.iter().rposition(|b| !matches!(b, b'\n' | b'\r')).map_or(0, |i| i + 1);
        return Ok(Some(text[..end].to_vec()));
    }
    Ok(std::env::var_os(PASSWORD_ENV).map(|p| p.into_encoded_bytes()))
}

/// The connection config for `store.url`, with the password and timeouts.
pub fn pg_config(store: &StoreConfig) -> StoreResult<tokio_postgres::Config> {
    let url = store.url.as_deref().ok_or_else(|| StoreError::Io("store.url is not set".into()))?;
    let mut config = parse_url(url).map_err(|e| StoreError::Io(format!("store.url: {e}")))?;
    if let Some(password) = password(store)? {
        config.password(password);
    }
    config
        .application_name("davgate")
        .connect_timeout(store.timeout)
        // A dead peer behind a silent network (a failover that drops
        // packets) closes the connection within about `timeout`, idle or
        // busy, so the pool replaces it instead of handing it out again.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .tcp_user_timeout(store.timeout)
        // The server gives up on a statement the client no longer waits for.
        .options(format!("-c statement_timeout={}", store.timeout.as_millis()));
    Ok(config)
}

pub fn tls(store: &StoreConfig) -> StoreResult<MakeRustlsConnect> {
    crate::server::tls::install_crypto_provider();
    let config = crate::gateway::upstream::tls_config(store.ca_file.as_deref(), "store.ca_file")
        .map_err(|e| StoreError::Io(e.to_string()))?;
    Ok(MakeRustlsConnect::new(config))
}

/// A pool whose every wait (for a free connection, a new one, a health
/// check) is bounded by `store.timeout`, so a dead database fails fast.
pub fn pool(store: &StoreConfig, config: tokio_postgres::Config, tls: MakeRustlsConnect) -> StoreResult<Pool> {
    let home = tokio::runtime::Handle::try_current()
        .map_err(|_| StoreError::Io("the PostgreSQL store must be opened inside a tokio runtime".into()))?;
    let manager = Manager::from_connect(
        config,
        ConnectAtHome { tls, home },
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(store.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(store.timeout))
        .create_timeout(Some(store.timeout))
        .recycle_timeout(Some(store.timeout))
        .build()
        .map_err(|e| StoreError::Io(format!("database pool: {e}")))
}

/// Opens every connection on the runtime the store was opened on, whichever
/// thread asks: a connection's socket and driver task belong to one event
/// loop, and each gateway worker thread runs its own, which stops before
/// the process's last activity flush.
struct ConnectAtHome {
    tls: MakeRustlsConnect,
    home: tokio::runtime::Handle,
}

impl deadpool_postgres::Connect for ConnectAtHome {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let (config, tls, home) = (config.clone(), self.tls.clone(), self.home.clone());
        Box::pin(async move {
            match home.spawn(connect_on(home.clone(), config.clone(), tls.clone())).await {
                Ok(connected) => connected,
                // The home runtime is shutting down: connect from here.
                Err(_) => connect_on(tokio::runtime::Handle::current(), config, tls).await,
            }
        })
    }
}

async fn connect_on(
    runtime: tokio::runtime::Handle,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
) -> Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = config.connect(tls).await?;
    let driver = runtime.spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection failed");
        }
    });
    Ok((client, driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("postgres://davgate@127.0.0.1:5432/davgate").is_ok());
        assert!(parse_url("mysql://x@y/z").unwrap_err().contains("postgres://"));
        let e = parse_url("postgres://davgate:hunter2@db/davgate").unwrap_err();
        assert!(e.contains("password_file") && !e.contains("hunter2"), "{e}");
        let plain = parse_url("postgres://u@db/d").unwrap();
        assert_eq!(plain.get_ssl_mode(), SslMode::Disable, "TLS only when asked");
        let tls = parse_url("postgres://u@db/d?sslmode=require").unwrap();
        assert_eq!(tls.get_ssl_mode(), SslMode::Require);
        for downgradable in ["prefer", "allow"] {
            let e = parse_url(&format!("postgres://u@db/d?sslmode={downgradable}")).unwrap_err();
            assert!(e.contains("sslmode=require"), "{e}");
        }
    }

    #[test]
    fn the_password_comes_from_its_file_without_the_line_end() {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret pass\r\n").unwrap();
        let mut store = StoreConfig::postgres("postgres://u@db/d");
        store.password_file = Some(file.clone());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = pg_config(&store).unwrap_err().to_string();
        assert!(e.contains("readable by group or others") && !e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(pg_config(&store).unwrap().get_password(), Some(&b"s3cret pass"[..]));
        store.password_file = Some(dir.path().join("missing"));
        let e = pg_config(&store).unwrap_err().to_string();
        assert!(e.contains("store.password_file: cannot read"), "{e}");
    }
}
