//! `davgate store migrate|copy`: the store itself, not the accounts in it.

use super::output::emit;
use anyhow::Context;
use clap::Subcommand;
use davgate::config::{Config, StoreConfig};
use davgate::store::{self, postgres::PgStore};

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Apply pending PostgreSQL schema migrations and stop (`serve` applies them too)
    Migrate,
    /// Copy users, logins, app passwords, activity, events and admin tokens
    /// into an empty store, counting them back afterwards
    Copy {
        /// `sled:PATH` or `postgres://user@host/db` (the sled store must not be in use)
        #[arg(long)]
        from: String,
        /// `sled:PATH` or `postgres://user@host/db`; must be empty
        #[arg(long)]
        to: String,
    },
}

pub async fn run(command: StoreCommand, config: Option<&Config>, json: bool) -> anyhow::Result<()> {
    match command {
        StoreCommand::Migrate => {
            let config = config.context("store migrate: needs the config file's [store] url")?;
            if config.store.url.is_none() {
                anyhow::bail!("store migrate: the store is sled ({}): it has no migrations", config.store.describe());
            }
            let pg = PgStore::without_migrating(&config.store)?;
            let applied = pg.migrate().await.with_context(|| format!("cannot migrate {}", config.store.describe()))?;
            let value = serde_json::json!({"schema_version": store::postgres::migrate::latest(), "applied": applied});
            emit(json, &value, || println!("schema at version {}", store::postgres::migrate::latest()));
        }
        StoreCommand::Copy { from, to } => {
            let (from_config, to_config) = (location(&from, "--from", config)?, location(&to, "--to", config)?);
            if from_config.path.is_some() && from_config.path == to_config.path
                || from_config.url.is_some() && from_config.url == to_config.url
            {
                anyhow::bail!("--from and --to name the same store");
            }
            let source = store::open(&from_config).await.with_context(|| format!("--from: cannot open {from}"))?;
            let target = store::open(&to_config).await.with_context(|| format!("--to: cannot open {to}"))?;
            let counts = store::copy::copy(source.as_ref(), target.as_ref()).await.context("store copy")?;
            emit(json, &serde_json::to_value(&counts)?, || println!("copied {counts}"));
        }
    }
    Ok(())
}

/// `sled:PATH` or a `postgres://` URL. A URL equal to the config's
/// `[store] url` keeps that section's password file, CA and timeouts;
/// another gets its password from `DAVGATE_STORE_PASSWORD`.
fn location(text: &str, flag: &str, config: Option<&Config>) -> anyhow::Result<StoreConfig> {
    if let Some(path) = text.strip_prefix("sled:") {
        anyhow::ensure!(!path.is_empty(), "{flag}: sled: needs a path (sled:/var/lib/davgate/store)");
        return Ok(StoreConfig::sled(std::path::Path::new(path)));
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        store::postgres::parse_url(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
        return Ok(match config {
            Some(c) if c.store.url.as_deref() == Some(text) => c.store.clone(),
            _ => StoreConfig::postgres(text),
        });
    }
    // Not echoed: a mistyped URL may carry a password.
    anyhow::bail!("{flag}: neither sled:PATH nor a postgres:// URL")
}
