//! `davgate config check`: validate without starting.

use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file and report every problem
    Check,
}

pub fn run(command: ConfigCommand, path: &Path) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check => {
            let config = super::load_config(path)?;
            println!("{}: ok (listen {}, upstream {})", path.display(), config.server.listen, config.upstream.url);
            Ok(())
        }
    }
}
