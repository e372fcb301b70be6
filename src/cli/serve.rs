//! `davgate serve`: open the store, bind, run until SIGTERM/SIGINT.

use anyhow::Context;
use davgate::config::Config;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = davgate::App::open_store(&config)
        .with_context(|| format!("store.path: cannot open {}", config.store.path.display()))?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot bind {}", config.server.listen))?;
    let admin = davgate::admin::socket::bind(&config.admin_socket())?;
    let app = davgate::App::new(config, store)?;
    tracing::info!(
        listen = %listener.local_addr()?,
        upstream = %app.config.upstream.url,
        admin_socket = %app.config.admin_socket().display(),
        "davgate ready"
    );
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop.send(true);
    });
    davgate::run(app, listener, Some(admin), stopped).await?;
    tracing::info!("stopped");
    Ok(())
}
