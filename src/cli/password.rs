//! `davgate password create|list|revoke|revoke-all|rename`.

use super::output;
use super::user::user_path;
use clap::Subcommand;
use davgate::admin::client::AdminClient;
use http::Method;
use ipnet::IpNet;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum PasswordCommand {
    /// Create an app password; it is printed once and never again
    Create {
        user: String,
        /// What the password is for, e.g. "Phone (DAVx5)" (at most 64 characters)
        #[arg(long)]
        name: String,
        /// "all", or services from [services], comma-separated: caldav,carddav
        #[arg(long, value_delimiter = ',', default_value = "all")]
        scope: Vec<String>,
        /// Limit to one collection path (repeatable), e.g. /calendars/alice/work/
        #[arg(long = "collection", value_name = "PATH")]
        collections: Vec<String>,
        /// Only GET, HEAD, OPTIONS, PROPFIND and REPORT
        #[arg(long)]
        read_only: bool,
        /// Only from this network (repeatable), e.g. 192.0.2.0/24
        #[arg(long = "from", value_name = "CIDR")]
        networks: Vec<IpNet>,
        /// Expiry: a duration ("90d") or a date ("2027-01-31")
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a user's app passwords (never the passwords themselves)
    List {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Rename an app password
    Rename { user: String, id: String, name: String },
    /// Revoke one app password
    Revoke { user: String, id: String },
    /// Revoke every app password of a user
    RevokeAll { user: String },
}

fn scope_json(scope: Vec<String>, collections: Vec<String>, read_only: bool, networks: Vec<IpNet>) -> Value {
    let services: Vec<String> =
        scope.into_iter().map(|s| s.trim().to_string()).filter(|s| s != "all" && !s.is_empty()).collect();
    json!({"services": services, "collections": collections, "read_only": read_only, "networks": networks})
}

fn describe_scope(scope: &Value) -> String {
    serde_json::from_value::<davgate::gateway::scope::Scope>(scope.clone()).map(|s| s.describe()).unwrap_or_default()
}

pub async fn run(command: PasswordCommand, api: &AdminClient) -> anyhow::Result<()> {
    match command {
        PasswordCommand::Create { user, name, scope, collections, read_only, networks, expires, json } => {
            let body =
                json!({"name": name, "scope": scope_json(scope, collections, read_only, networks), "expires": expires});
            let created = api.call(Method::POST, &format!("{}/passwords", user_path(&user)), Some(body)).await?;
            if json {
                println!("{created}");
            } else {
                println!("App password for {user} ({}), shown once:", created["name"].as_str().unwrap_or(""));
                println!();
                println!("    {}", created["password"].as_str().unwrap_or(""));
                println!();
                println!(
                    "id {}, scope {}, expires {}",
                    created["id"].as_str().unwrap_or(""),
                    describe_scope(&created["scope"]),
                    output::time(created["expires"].as_u64())
                );
            }
        }
        PasswordCommand::List { user, json } => {
            let list = api.call(Method::GET, &format!("{}/passwords", user_path(&user)), None).await?;
            if json {
                println!("{list}");
            } else {
                let rows: Vec<Vec<String>> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let last = &p["last_activity"];
                        let last = if last.is_null() {
                            "never".to_string()
                        } else {
                            format!("{} from {}", output::time(last["at"].as_u64()), last["ip"].as_str().unwrap_or("?"))
                        };
                        vec![
                            p["id"].as_str().unwrap_or("").to_string(),
                            p["name"].as_str().unwrap_or("").to_string(),
                            describe_scope(&p["scope"]),
                            output::time(p["created"].as_u64()),
                            output::time(p["expires"].as_u64()),
                            last,
                            p["status"].as_str().unwrap_or("").to_string(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "STATUS"], &rows);
            }
        }
        PasswordCommand::Rename { user, id, name } => {
            api.call(Method::PATCH, &format!("{}/passwords/{id}", user_path(&user)), Some(json!({"name": name})))
                .await?;
            println!("renamed {id} to {name}");
        }
        PasswordCommand::Revoke { user, id } => {
            api.call(Method::DELETE, &format!("{}/passwords/{id}", user_path(&user)), None).await?;
            println!("revoked {id}");
        }
        PasswordCommand::RevokeAll { user } => {
            let r = api.call(Method::POST, &format!("{}/passwords/revoke-all", user_path(&user)), None).await?;
            println!("revoked {} app passwords of {user}", r["revoked"].as_u64().unwrap_or(0));
        }
    }
    Ok(())
}
