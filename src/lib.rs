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
//! - [`server`]: TCP/TLS listener, HTTP/1.1 + HTTP/2, one single-threaded
//!   event loop per worker thread (each with its own gateway), timeouts,
//!   connection limit, graceful shutdown.
//! - [`gateway::credentials`]: the Basic header (RFC 7617).
//! - [`gateway::verify`]: verify cache (keyed hash → grant; each serving
//!   thread keeps copies of the grants it uses), then one store read and
//!   one argon2id verification on a bounded pool.
//! - [`gateway::scope`]: path normalisation and the scope decision.
//! - [`activity`]: last activity in memory, flushed in batches.
//! - [`gateway::headers`] and [`gateway::upstream`]: identity header,
//!   hop-by-hop removal, the pooled upstream client.
//! - [`gateway::unread_body`]: a body davgate does not forward is read
//!   when small, or the answer closes the connection.
//! - [`gateway::access_log`] and [`metrics`]: one log line and one counter
//!   per request.
//!
//! Around it: [`store`] (the `Store` trait and sled), [`accounts`] (the
//! operations and policy every surface shares), [`admin`] (JSON API on a
//! Unix socket and TCP with bearer tokens, `/metrics`, health), [`reload`]
//! (SIGHUP), [`config`], [`password`] (format, generation, hashing),
//! [`secret`] (values that never print), [`error`] (status mapping) and
//! [`log_writer`] (stderr, with access lines in batches).

pub mod accounts;
pub mod activity;
pub mod admin;
pub mod config;
pub mod error;
pub mod gateway;
pub mod log_writer;
pub mod logins;
pub mod metrics;
pub mod password;
pub mod reload;
pub mod secret;
pub mod server;
pub mod store;
pub mod web;

use accounts::Accounts;
use activity::ActivityRecorder;
use arc_swap::ArcSwap;
use config::Config;
use gateway::Gateway;
use gateway::scope::ScopeRules;
use gateway::upstream::Upstream;
use gateway::verify::{HashPool, Verifier, VerifyCache};
use metrics::Metrics;
use std::sync::Arc;
use store::Store;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

/// How often moka's housekeeping runs (it has no thread of its own).
const CACHE_MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Everything one davgate instance holds, wired together.
pub struct App {
    /// The config in force; a reload swaps it (see [`reload`]).
    config: ArcSwap<Config>,
    pub store: Arc<dyn Store>,
    pub cache: Arc<VerifyCache>,
    pub activity: Arc<ActivityRecorder>,
    pub accounts: Arc<Accounts>,
    pub verifier: Arc<Verifier>,
    pub metrics: Arc<Metrics>,
    /// The gateways (one per worker thread) and TLS acceptor the listener
    /// uses, swapped on reload.
    pub live: Arc<server::Live>,
    /// Sessions, login flows and the sign-in throttle of the page.
    pub web: Arc<web::WebState>,
}

/// The sockets one instance serves.
pub struct Listeners {
    pub gateway: server::listen::GatewaySockets,
    /// The admin API for the CLI (mode 0600, no token).
    pub admin_socket: Option<UnixListener>,
    /// `[admin] listen`: the API with bearer tokens, metrics and health.
    pub admin_tcp: Option<TcpListener>,
    /// `[admin.tls]`, loaded at start (a new certificate needs a restart).
    pub admin_tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listeners {
    pub fn gateway_only(gateway: server::listen::GatewaySockets) -> Self {
        Self { gateway, admin_socket: None, admin_tcp: None, admin_tls: None }
    }
}

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<Self>> {
        server::tls::install_crypto_provider();
        let hash_params =
            argon2::Params::new(config.hash.memory_kib, config.hash.iterations, config.hash.parallelism, None)
                .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
        let metrics = Arc::new(Metrics::new());
        let cache = Arc::new(VerifyCache::new(config.cache.capacity, config.cache.ttl));
        let activity = Arc::new(ActivityRecorder::new());
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            cache.clone(),
            activity.clone(),
            ScopeRules::new(config.services.clone(), config.discovery.paths.clone()),
            config.policy.clone(),
            hash_params.clone(),
        ));
        let pool = HashPool::new(config.hash.max_concurrent, config.hash.max_queue, metrics.clone());
        let throttle = gateway::throttle::Throttle::new(config.throttle.clone());
        let verifier =
            Arc::new(Verifier::new(store.clone(), cache.clone(), pool, throttle, &hash_params, metrics.clone()));
        let logins = Arc::new(logins::Logins::new(accounts.clone(), hash_params.clone(), "davgate"));
        let web = Arc::new(web::WebState::new(&config, logins));
        let gateways = (0..config.server.worker_count())
            .map(|_| {
                Ok(ArcSwap::from_pointee(build_gateway(&config, &verifier, &activity, &metrics, &accounts, &web)?))
            })
            .collect::<anyhow::Result<_>>()?;
        let tls = match &config.server.tls {
            Some(t) => Some(ArcSwap::from_pointee(server::tls::acceptor(t, "server.tls")?)),
            None => None,
        };
        let live = Arc::new(server::Live { gateways, tls });
        Ok(Arc::new(Self {
            config: ArcSwap::from_pointee(config),
            store,
            cache,
            activity,
            accounts,
            verifier,
            metrics,
            live,
            web,
        }))
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Applies a new config to every later request and handshake without
    /// touching open connections. Keys that only take effect at start keep
    /// their old value and are returned, so the caller can say so. On any
    /// error nothing changes.
    pub fn reload(&self, new: Config) -> anyhow::Result<Vec<&'static str>> {
        let old = self.config();
        let (effective, needs_restart) = reload::effective(&old, new);
        // Kept restart-only keys combined with new ones must still pass the
        // checks a start would make (e.g. plain HTTP on a public address).
        let problems = effective.validate();
        if !problems.is_empty() {
            anyhow::bail!("with the keys that need a restart kept: {}", problems.join("; "));
        }
        let gateways = (self.live.gateways.iter())
            .map(|_| {
                build_gateway(&effective, &self.verifier, &self.activity, &self.metrics, &self.accounts, &self.web)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tls = match (&self.live.tls, &effective.server.tls) {
            (Some(_), Some(t)) => Some(server::tls::acceptor(t, "server.tls")?),
            _ => None,
        };
        for (live, gateway) in self.live.gateways.iter().zip(gateways) {
            live.store(Arc::new(gateway));
        }
        if let (Some(live), Some(tls)) = (&self.live.tls, tls) {
            live.store(Arc::new(tls));
        }
        self.accounts.reconfigure(
            ScopeRules::new(effective.services.clone(), effective.discovery.paths.clone()),
            effective.policy.clone(),
        );
        self.config.store(Arc::new(effective));
        Ok(needs_restart)
    }
}

fn build_gateway(
    config: &Config,
    verifier: &Arc<Verifier>,
    activity: &Arc<ActivityRecorder>,
    metrics: &Arc<Metrics>,
    accounts: &Arc<Accounts>,
    web_state: &Arc<web::WebState>,
) -> anyhow::Result<Gateway> {
    let web = match config.web.enabled {
        true => Some(web::Web {
            config: config.web.clone(),
            state: web_state.clone(),
            accounts: accounts.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            collections: web::collections::Lister::new(&config.upstream, &config.services)?,
        }),
        false => None,
    };
    Ok(Gateway {
        verifier: verifier.clone(),
        rules: ScopeRules::new(config.services.clone(), config.discovery.paths.clone()),
        activity: activity.clone(),
        upstream: Upstream::new(&config.upstream)?,
        identity_header: http::HeaderName::from_bytes(config.upstream.identity_header.as_bytes())?,
        preserve_host: config.upstream.preserve_host,
        trusted_proxies: config.server.trusted_proxies.clone(),
        challenge: error::basic_challenge(&config.server.realm),
        metrics: metrics.clone(),
        access_log: config.log.access,
        web,
    })
}

/// Runs the gateway (and the admin listeners) until `shutdown` turns true;
/// then drains requests and flushes activity.
pub async fn run(app: Arc<App>, listeners: Listeners, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = app.config();
    let (stop_tasks, tasks_stopped) = watch::channel(false);
    let flusher = tokio::spawn(activity::run_flusher(
        app.activity.clone(),
        app.store.clone(),
        config.activity.flush_interval,
        app.metrics.clone(),
        tasks_stopped.clone(),
    ));
    let cache = app.cache.clone();
    let maintenance = tokio::spawn(async move {
        let mut tick = tokio::time::interval(CACHE_MAINTENANCE_INTERVAL);
        loop {
            tick.tick().await;
            cache.run_pending_tasks().await;
        }
    });
    // Three checks of the feed per bound: a silently dead feed is noticed
    // well within `max_staleness`.
    if let Some(feed) = app.store.follow_changes(config.cache.max_staleness / 3) {
        tokio::spawn(apply_changes(feed, app.cache.clone(), config.cache.max_staleness));
    }
    let sweeper = tokio::spawn(run_expiry_sweep(app.clone(), config.expiry.sweep_interval, tasks_stopped));
    let mut admin_tasks = Vec::new();
    if let (Some(listener), Some(path)) = (listeners.admin_socket, config.admin_socket()) {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        admin_tasks.push(tokio::spawn(admin::socket::serve(listener, path, app, shutdown)));
    }
    if let Some(listener) = listeners.admin_tcp {
        let tls = listeners.admin_tls;
        admin_tasks.push(tokio::spawn(admin::tcp::serve(listener, tls, app.clone(), shutdown.clone())));
    }
    let served =
        server::serve(listeners.gateway, app.live.clone(), config.server.clone(), app.metrics.clone(), shutdown).await;
    let _ = stop_tasks.send(true);
    let _ = flusher.await;
    let _ = sweeper.await;
    maintenance.abort();
    for task in admin_tasks {
        let _ = task.await;
    }
    served
}

/// Keeps the verify cache in step with changes other instances make to a
/// shared store. Until the feed is live, and whenever it is down (or gone),
/// cached credentials older than `max_staleness` have their record read
/// again; when it comes back, every cached credential does, as changes may
/// have gone unseen.
async fn apply_changes(
    mut feed: tokio::sync::mpsc::Receiver<store::FeedEvent>,
    cache: Arc<VerifyCache>,
    max_staleness: std::time::Duration,
) {
    use store::{Change, FeedEvent};
    cache.bound_age(Some(max_staleness));
    while let Some(event) = feed.recv().await {
        match event {
            FeedEvent::Changed(Change::User(name)) => cache.invalidate_user(&name).await,
            FeedEvent::Changed(Change::Password(id)) => cache.invalidate_password(&id).await,
            FeedEvent::Down => cache.bound_age(Some(max_staleness)),
            FeedEvent::Resumed => {
                cache.mark_all_stale();
                cache.bound_age(None);
            }
        }
    }
    cache.bound_age(Some(max_staleness));
}

/// Records `expired` events periodically (refusal itself is immediate).
async fn run_expiry_sweep(app: Arc<App>, interval: std::time::Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match app.accounts.sweep_expired(store::model::unix_now()).await {
            Ok(0) => {}
            Ok(n) => {
                app.metrics.expired_swept.inc_by(n as u64);
                tracing::info!(count = n, "recorded expired app passwords");
            }
            Err(e) => {
                app.metrics.store_errors.inc();
                tracing::warn!(error = %e, "expiry sweep failed; will retry");
            }
        }
    }
}
