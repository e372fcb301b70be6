//! `davgate admin-token create|list|revoke`: bearer tokens for the TCP admin
//! API. Managed only locally (socket or store), never with a token.

use super::output::{self, emit, field};
use clap::Subcommand;
use davgate::admin::client::AdminClient;
use http::Method;
use serde_json::json;

#[derive(Subcommand)]
pub enum AdminTokenCommand {
    /// Create a token; it is printed once and never again
    Create {
        /// Who uses it, e.g. "monitoring"
        #[arg(long)]
        name: String,
    },
    /// List tokens (ids and names, never the tokens)
    List,
    /// Revoke a token: requests with it are refused at once
    Revoke { id: String },
}

pub async fn run(command: AdminTokenCommand, api: &AdminClient, json: bool) -> anyhow::Result<()> {
    match command {
        AdminTokenCommand::Create { name } => {
            let created = api.call(Method::POST, "/admin-tokens", Some(json!({"name": name}))).await?;
            emit(json, &created, || {
                println!("Admin token {} ({name}), shown once:", field(&created, "id"));
                println!();
                println!("    {}", field(&created, "token"));
                println!();
                println!("Send it as: Authorization: Bearer <token>");
            });
        }
        AdminTokenCommand::List => {
            let list = api.call(Method::GET, "/admin-tokens", None).await?;
            emit(json, &list, || {
                let rows: Vec<Vec<String>> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| vec![field(t, "id").into(), field(t, "name").into(), output::time(t["created"].as_u64())])
                    .collect();
                output::table(&["ID", "NAME", "CREATED"], &rows);
            });
        }
        AdminTokenCommand::Revoke { id } => {
            let path = format!(
                "/admin-tokens/{}",
                percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC)
            );
            let revoked = api.call(Method::DELETE, &path, None).await?;
            emit(json, &revoked, || println!("revoked admin token {id}"));
        }
    }
    Ok(())
}
