//! davgate: app passwords in front of any WebDAV, CalDAV or CardDAV server.
//!
//! Sync clients send HTTP Basic credentials; davgate checks them against the
//! user's app passwords, enforces what that password may do, and streams
//! the request to the backend with a trusted identity header. The backend
//! never sees a password, and no client can choose its identity.
//!
//! # Layout
//!
//! The request path, in the order a request meets it:
//!
//! - [`server`]: TCP/TLS listener, HTTP/1.1 + HTTP/2, timeouts, connection
//!   limit, graceful shutdown.
//! - [`gateway::credentials`]: the Basic header (RFC 7617).
//! - [`gateway::verify`]: verify cache (keyed hash → grant), then one store
//!   read and one argon2id verification on a bounded pool.
//! - [`gateway::scope`]: path normalisation and the scope decision.
//! - [`activity`]: last activity in memory, flushed in batches.
//! - [`gateway::headers`] and [`gateway::upstream`]: identity header,
//!   hop-by-hop removal, the pooled upstream client.
//!
//! Around it: [`store`] (the `Store` trait and sled), [`accounts`] (the
//! operations and policy every surface shares), [`admin`] (JSON API on a
//! Unix socket), [`config`], [`password`] (format, generation, hashing),
//! [`secret`] (values that never print) and [`error`] (status mapping).

pub mod accounts;
pub mod activity;
pub mod admin;
pub mod config;
pub mod error;
pub mod gateway;
pub mod password;
pub mod secret;
pub mod server;
pub mod store;

use accounts::Accounts;
use activity::ActivityRecorder;
use config::Config;
use gateway::Gateway;
use gateway::scope::ScopeRules;
use gateway::upstream::Upstream;
use gateway::verify::{HashPool, Verifier, VerifyCache};
use std::sync::Arc;
use store::Store;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

/// How often moka's housekeeping runs (it has no thread of its own).
const CACHE_MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Everything one davgate instance holds, wired together.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub cache: Arc<VerifyCache>,
    pub activity: Arc<ActivityRecorder>,
    pub accounts: Arc<Accounts>,
    pub gateway: Arc<Gateway>,
}

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<Self>> {
        server::tls::install_crypto_provider();
        let hash_params =
            argon2::Params::new(config.hash.memory_kib, config.hash.iterations, config.hash.parallelism, None)
                .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
        let cache = Arc::new(VerifyCache::new(config.cache.capacity, config.cache.ttl));
        let activity = Arc::new(ActivityRecorder::new());
        let rules = ScopeRules::new(config.services.clone(), config.discovery.paths.clone());
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            cache.clone(),
            activity.clone(),
            rules.clone(),
            config.policy.clone(),
            hash_params.clone(),
        ));
        let pool = HashPool::new(config.hash.max_concurrent, config.hash.max_queue);
        let throttle = gateway::throttle::Throttle::new(config.throttle.clone());
        let verifier = Arc::new(Verifier::new(store.clone(), cache.clone(), pool, throttle, &hash_params));
        let gateway = Arc::new(Gateway {
            verifier,
            rules,
            activity: activity.clone(),
            upstream: Upstream::new(&config.upstream)?,
            identity_header: http::HeaderName::from_bytes(config.upstream.identity_header.as_bytes())?,
            preserve_host: config.upstream.preserve_host,
            trusted_proxies: config.server.trusted_proxies.clone(),
            challenge: error::basic_challenge(&config.server.realm),
        });
        Ok(Arc::new(Self { config, store, cache, activity, accounts, gateway }))
    }

    /// Opens the store the config names.
    pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, store::StoreError> {
        Ok(Arc::new(store::sled::SledStore::open(&config.store.path, config.store.cache_mib)?))
    }
}

/// Runs the gateway on `listener` (and the admin API on `admin`) until
/// `shutdown` turns true; then drains requests and flushes activity.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    admin: Option<UnixListener>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (flush_stop, flush_rx) = watch::channel(false);
    let flusher = tokio::spawn(activity::run_flusher(
        app.activity.clone(),
        app.store.clone(),
        app.config.activity.flush_interval,
        flush_rx,
    ));
    let cache = app.cache.clone();
    let maintenance = tokio::spawn(async move {
        let mut tick = tokio::time::interval(CACHE_MAINTENANCE_INTERVAL);
        loop {
            tick.tick().await;
            cache.run_pending_tasks().await;
        }
    });
    let admin_task = admin.map(|listener| {
        tokio::spawn(admin::socket::serve(listener, app.config.admin_socket(), app.accounts.clone(), shutdown.clone()))
    });
    let served = server::serve(listener, app.gateway.clone(), app.config.server.clone(), shutdown).await;
    let _ = flush_stop.send(true);
    let _ = flusher.await;
    maintenance.abort();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    served
}
