//! Command-line surface: `serve`, `config check`, `user ...`, `password ...`.
//!
//! Account commands speak the admin API: over the admin socket when a
//! server runs (so its cache sees every change at once), otherwise
//! in-process on the store opened directly.

mod config;
mod output;
mod password;
mod serve;
mod user;

use anyhow::Context;
use clap::{Parser, Subcommand};
use davgate::admin::client::AdminClient;
use davgate::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "davgate", version, about = "App passwords in front of any WebDAV, CalDAV or CardDAV server")]
pub struct Cli {
    /// Config file [default: $DAVGATE_CONFIG, else ./davgate.toml]
    #[arg(long, global = true, env = "DAVGATE_CONFIG", default_value = "davgate.toml", hide_default_value = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (and the admin socket)
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
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAVGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// The API, through the running server's socket or on the store directly.
async fn admin_client(config: &Config) -> anyhow::Result<AdminClient> {
    let socket = config.admin_socket();
    if AdminClient::socket_is_live(&socket).await {
        return Ok(AdminClient::Socket(socket));
    }
    let store = davgate::App::open_store(config).with_context(|| {
        format!(
            "store.path: cannot open {} (and no server answers on admin.socket {})",
            config.store.path.display(),
            socket.display()
        )
    })?;
    let app = davgate::App::new(config.clone(), store)?;
    Ok(AdminClient::InProcess(app.accounts.clone()))
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve::run(load_config(&cli.config)?).await,
        Command::Config(c) => config::run(c, &cli.config),
        Command::User(c) => user::run(c, &admin_client(&load_config(&cli.config)?).await?).await,
        Command::Password(c) => password::run(c, &admin_client(&load_config(&cli.config)?).await?).await,
    }
}
