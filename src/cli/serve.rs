//! `davgate serve`: open the store, bind, run until SIGTERM/SIGINT; SIGHUP
//! re-reads the config file and applies it without dropping connections.

use anyhow::Context;
use davgate::config::Config;
use davgate::{App, Listeners};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

pub async fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    super::init_logging(&config.log);
    let store = davgate::store::open(&config.store)
        .await
        .with_context(|| format!("cannot open {}", config.store.describe()))?;
    let gateway = davgate::server::listen::bind(config.server.listen, config.server.worker_count())
        .with_context(|| format!("server.listen: cannot bind {}", config.server.listen))?;
    let admin_tcp = match config.admin.listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("admin.listen: cannot bind {addr}"))?),
        None => None,
    };
    let admin_tls = match &config.admin.tls {
        Some(t) => Some(davgate::server::tls::acceptor(t, "admin.tls")?),
        None => None,
    };
    let admin_socket = match config.admin_socket() {
        Some(path) => Some(davgate::admin::socket::bind(&path)?),
        None => None,
    };
    // Handlers exist before "ready": a signal sent at once must not find
    // the default action (which would end the process).
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let app = App::new(config, store)?;
    let config = app.config();
    tracing::info!(
        listen = %gateway.local_addr()?,
        upstream = %config.upstream.url,
        admin_socket = %config.admin_socket().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        admin_listen = %admin_tcp.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        "davgate ready"
    );
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop.send(true);
    });
    tokio::spawn(reload_on_sighup(app.clone(), path, hup));
    let listeners = Listeners { gateway, admin_socket, admin_tcp, admin_tls };
    davgate::run(app, listeners, stopped).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Each SIGHUP re-reads `path`. A file with any problem changes nothing:
/// the problems are logged and the running config stays.
async fn reload_on_sighup(app: Arc<App>, path: PathBuf, mut hup: Signal) {
    while hup.recv().await.is_some() {
        let applied = Config::load(&path).map_err(|e| e.problems.join("; ")).and_then(|new| {
            let checked = tokio::task::block_in_place(|| app.reload(new));
            checked.map_err(|e| format!("{e:#}"))
        });
        match applied {
            Ok(needs_restart) if needs_restart.is_empty() => {
                tracing::info!(file = %path.display(), "config reloaded");
            }
            Ok(needs_restart) => tracing::warn!(
                file = %path.display(),
                keys = %needs_restart.join(", "),
                "config reloaded; these changed keys keep their old value until a restart"
            ),
            Err(problems) => tracing::error!(
                file = %path.display(),
                problems = %problems,
                "config reload refused; the running config is unchanged"
            ),
        }
    }
}
