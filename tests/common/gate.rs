//! An in-process davgate on 127.0.0.1:0 with its own temp store.

#![allow(dead_code)]

use davgate::App;
use davgate::accounts::NewPassword;
use davgate::config::Config;
use davgate::gateway::scope::Scope;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

pub struct Gate {
    pub addr: SocketAddr,
    /// The TCP admin listener, when started with one.
    pub admin: Option<SocketAddr>,
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
}

/// TOML added to the minimal config: keys under `[server]` and
/// `[upstream]`, and further sections after `[store]`.
#[derive(Default, Clone, Copy)]
pub struct Extra<'a> {
    pub server: &'a str,
    pub upstream: &'a str,
    pub sections: &'a str,
}

/// Every test client comes from 127.0.0.1, so tests of other behaviour
/// would trip the brute-force throttle: it is relaxed unless a test
/// configures `[throttle]` itself.
pub const RELAXED_THROTTLE: &str =
    "[throttle]\nmax_failures = 100000\nbase_delay = \"1ms\"\nmax_delay = \"1ms\"\ntarpit = \"1ms\"\n";

pub fn config_text(upstream: &str, store: &std::path::Path, extra: Extra<'_>) -> String {
    let throttle = if extra.sections.contains("[throttle]") { "" } else { RELAXED_THROTTLE };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[upstream]\nurl = \"{upstream}\"\n{}\n[store]\npath = \"{}\"\n{}\n{throttle}",
        extra.server,
        extra.upstream,
        store.display(),
        extra.sections
    )
}

impl Gate {
    pub async fn start(upstream: &str) -> Gate {
        Self::start_with(upstream, Extra::default()).await
    }

    pub async fn start_with(upstream: &str, extra: Extra<'_>) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(upstream, &dir.path().join("store"), extra);
        let config = Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        Self::start_config(config, dir).await
    }

    pub async fn start_config(config: Config, dir: tempfile::TempDir) -> Gate {
        Self::start_listeners(config, dir, false).await
    }

    /// Also serves the TCP admin listener (API with bearer tokens, metrics).
    pub async fn start_with_admin(upstream: &str, extra: Extra<'_>) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(upstream, &dir.path().join("store"), extra);
        let config = Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        Self::start_listeners(config, dir, true).await
    }

    async fn start_listeners(config: Config, dir: tempfile::TempDir, admin: bool) -> Gate {
        let sockets =
            davgate::server::listen::bind("127.0.0.1:0".parse().unwrap(), config.server.worker_count()).unwrap();
        let addr = sockets.local_addr().unwrap();
        let mut listeners = davgate::Listeners::gateway_only(sockets);
        if admin {
            listeners.admin_tcp = Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let admin = listeners.admin_tcp.as_ref().map(|l| l.local_addr().unwrap());
        let store = davgate::store::open(&config.store).await.unwrap();
        let app = App::new(config, store).unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(davgate::run(app.clone(), listeners, stopped));
        Gate { addr, admin, app, stop, task, dir }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("started with an admin listener"))
    }

    /// A new admin bearer token.
    pub async fn admin_token(&self, name: &str) -> String {
        let (_, token) = davgate::admin::tokens::create(self.app.store.as_ref(), name).await.unwrap();
        token.expose().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Adds `user` (if new) and creates a password with `scope`.
    pub async fn password(&self, user: &str, scope: Scope) -> String {
        let accounts = &self.app.accounts;
        if accounts.user(user).await.is_err() {
            accounts.add_user(user, "test").await.unwrap();
        }
        let new = NewPassword { name: "test client".into(), scope, expires: None };
        let created = accounts.create_password(user, new, "test").await.unwrap();
        created.password.expose().clone()
    }

    pub fn verifications(&self) -> u64 {
        self.app.verifier.pool().verifications()
    }

    /// Stops serving (in-flight requests finish, activity is flushed).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}
