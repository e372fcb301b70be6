//! Command-line surface: `serve`, `config check`, and one command per admin
//! API operation (`user`, `password`, `events`, `policy`, `health`,
//! `admin-token`).
//!
//! Account commands speak the admin API: over the admin socket when a
//! server runs (so its cache sees every change at once), otherwise
//! in-process on the store opened directly. `--json` prints the API's JSON
//! for every command.

mod admin_token;
mod config;
mod events;
mod output;
mod password;
mod serve;
mod store;
mod user;

use anyhow::Context;
use clap::{Parser, Subcommand};
use davgate::admin::client::AdminClient;
use davgate::config::{Config, LogConfig, LogFormat};
use davgate::log_writer;
use http::Method;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "davgate", version, about = "App passwords in front of any WebDAV, CalDAV or CardDAV server")]
pub struct Cli {
    /// Config file [default: $DAVGATE_CONFIG, else ./davgate.toml]
    #[arg(long, global = true, env = "DAVGATE_CONFIG", default_value = "davgate.toml", hide_default_value = true)]
    config: PathBuf,
    /// Print the API's JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway and the admin listeners; SIGHUP reloads the config
    Serve,
    /// Check the config file
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Manage users
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage app passwords
    #[command(subcommand)]
    Password(password::PasswordCommand),
    /// Show account history, newest first
    Events(events::EventsArgs),
    /// Show the password policy and the services passwords may get
    Policy,
    /// Check that the server (or the store) answers
    Health,
    /// Manage bearer tokens for the TCP admin API
    #[command(subcommand)]
    AdminToken(admin_token::AdminTokenCommand),
    /// Apply PostgreSQL migrations, or copy everything between stores
    #[command(subcommand)]
    Store(store::StoreCommand),
}

/// Logging to stderr: compact lines, or JSON with `[log] format = "json"`.
/// `DAVGATE_LOG` overrides the configured filter. Access lines are batched
/// ([`log_writer`]).
pub fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAVGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // davgate writes access lines itself in the same form; coloured
    // compact lines stay tracing's.
    let direct = (log.format == LogFormat::Json || !ansi).then_some(log.format);
    let writer = log_writer::LogWriter::new(log.access_flush, direct);
    // Also forwards the `log` records of dependencies (sled's).
    tracing_subscriber::util::SubscriberInitExt::init(log_writer::subscriber(log.format, ansi, filter, writer));
}

fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// The API, through the running server's socket or on the store directly
/// (a PostgreSQL store may be opened beside running servers: they learn of
/// changes through its notifications).
async fn admin_client(config: &Config) -> anyhow::Result<AdminClient> {
    let socket = config.admin_socket();
    if let Some(socket) = &socket
        && AdminClient::socket_is_live(socket).await
    {
        return Ok(AdminClient::Socket(socket.clone()));
    }
    let store = davgate::store::open(&config.store).await.with_context(|| match &socket {
        Some(socket) => {
            format!(
                "cannot open {} (and no server answers on admin.socket {})",
                config.store.describe(),
                socket.display()
            )
        }
        None => format!("cannot open {}", config.store.describe()),
    })?;
    let app = davgate::App::new(config.clone(), store)?;
    Ok(AdminClient::InProcess(app.accounts.clone(), app.web.logins.clone()))
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    if let Command::Serve = cli.command {
        return serve::run(load_config(&cli.config)?, cli.config).await;
    }
    if let Command::Config(c) = cli.command {
        init_logging(&LogConfig::default());
        return config::run(c, &cli.config);
    }
    if let Command::Store(c) = cli.command {
        // A copy between two named stores needs no config file.
        let config = match (&c, cli.config.exists()) {
            (store::StoreCommand::Copy { .. }, false) => None,
            _ => Some(load_config(&cli.config)?),
        };
        init_logging(config.as_ref().map(|c| &c.log).unwrap_or(&LogConfig::default()));
        return store::run(c, config.as_ref(), json).await;
    }
    let config = load_config(&cli.config)?;
    init_logging(&config.log);
    let api = admin_client(&config).await?;
    match cli.command {
        Command::User(c) => user::run(c, &api, json).await,
        Command::Password(c) => password::run(c, &api, json).await,
        Command::Events(args) => events::run(args, &api, json).await,
        Command::AdminToken(c) => admin_token::run(c, &api, json).await,
        Command::Policy => {
            let policy = api.call(Method::GET, "/policy", None).await?;
            output::emit(json, &policy, || {
                let secs = |v: &serde_json::Value| v.as_u64().map(output::duration).unwrap_or_else(|| "none".into());
                println!("max active passwords per user: {}", policy["max_active_passwords"]);
                println!("default lifetime: {}", secs(&policy["default_lifetime_secs"]));
                println!("maximum lifetime: {}", secs(&policy["max_lifetime_secs"]));
                println!("services: {}", output::strings(&policy["services"]).join(", "));
            });
            Ok(())
        }
        Command::Health => {
            // A shared store opens beside a hung server: only the server's
            // own answer tells that it is alive.
            if let (AdminClient::InProcess(..), Some(socket), Some(_)) =
                (&api, config.admin_socket(), &config.store.url)
            {
                anyhow::bail!("no server answers on admin.socket {}", socket.display());
            }
            let health = api.call(Method::GET, "/health", None).await?;
            let via = match api {
                AdminClient::Socket(ref path) => format!("server on {}", path.display()),
                AdminClient::InProcess(..) => "store (no server running)".to_string(),
            };
            output::emit(json, &health, || println!("ok: {via}"));
            Ok(())
        }
        Command::Serve | Command::Config(_) | Command::Store(_) => unreachable!("handled above"),
    }
}
