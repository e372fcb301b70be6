//! `davgate password create|list|show|rename|revoke|revoke-all`.

use super::output::{self, emit, field};
use super::user::user_path;
use clap::{Subcommand, ValueEnum};
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
    },
    /// List one user's app passwords, or (--all) everyone's; never the passwords themselves
    #[command(group = clap::ArgGroup::new("whose").required(true).args(["user", "all"]))]
    List {
        user: Option<String>,
        /// Every user's passwords, with the filters below
        #[arg(long)]
        all: bool,
        /// With --all: only this user's passwords
        #[arg(long = "user", value_name = "USER", conflicts_with = "user")]
        only_user: Option<String>,
        #[arg(long, value_enum, conflicts_with = "user")]
        status: Option<Status>,
        /// Only active passwords expiring within this time, e.g. 7d
        #[arg(long, value_name = "DURATION", conflicts_with = "user")]
        expiring_within: Option<String>,
        /// Passwords per page (1 to 1000)
        #[arg(long, default_value_t = 100, conflicts_with = "user")]
        limit: usize,
        #[arg(long, default_value_t = 0, conflicts_with = "user")]
        offset: usize,
    },
    /// Show one app password
    Show { user: String, id: String },
    /// Rename an app password
    Rename { user: String, id: String, name: String },
    /// Revoke one app password
    Revoke { user: String, id: String },
    /// Revoke every app password of a user
    RevokeAll { user: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Status {
    Active,
    Revoked,
    Expired,
}

fn scope_json(scope: Vec<String>, collections: Vec<String>, read_only: bool, networks: Vec<IpNet>) -> Value {
    let services: Vec<String> =
        scope.into_iter().map(|s| s.trim().to_string()).filter(|s| s != "all" && !s.is_empty()).collect();
    json!({"services": services, "collections": collections, "read_only": read_only, "networks": networks})
}

fn describe_scope(scope: &Value) -> String {
    serde_json::from_value::<davgate::gateway::scope::Scope>(scope.clone()).map(|s| s.describe()).unwrap_or_default()
}

fn password_rows(list: &[Value], with_user: bool) -> Vec<Vec<String>> {
    list.iter()
        .map(|p| {
            let last = &p["last_activity"];
            let last = if last.is_null() {
                "never".to_string()
            } else {
                format!("{} from {}", output::time(last["at"].as_u64()), last["ip"].as_str().unwrap_or("?"))
            };
            let mut row = vec![field(p, "id").to_string()];
            if with_user {
                row.push(field(p, "user").to_string());
            }
            row.extend([
                field(p, "name").to_string(),
                describe_scope(&p["scope"]),
                output::time(p["created"].as_u64()),
                output::time(p["expires"].as_u64()),
                last,
                field(p, "status").to_string(),
            ]);
            row
        })
        .collect()
}

fn print_passwords(list: &[Value], with_user: bool) {
    let mut header = vec!["ID"];
    if with_user {
        header.push("USER");
    }
    header.extend(["NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "STATUS"]);
    output::table(&header, &password_rows(list, with_user));
}

fn password_path(user: &str, id: &str) -> String {
    let id = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
    format!("{}/passwords/{id}", user_path(user))
}

pub async fn run(command: PasswordCommand, api: &AdminClient, json: bool) -> anyhow::Result<()> {
    match command {
        PasswordCommand::Create { user, name, scope, collections, read_only, networks, expires } => {
            let body =
                json!({"name": name, "scope": scope_json(scope, collections, read_only, networks), "expires": expires});
            let created = api.call(Method::POST, &format!("{}/passwords", user_path(&user)), Some(body)).await?;
            emit(json, &created, || {
                println!("App password for {user} ({}), shown once:", field(&created, "name"));
                println!();
                println!("    {}", field(&created, "password"));
                println!();
                println!(
                    "id {}, scope {}, expires {}",
                    field(&created, "id"),
                    describe_scope(&created["scope"]),
                    output::time(created["expires"].as_u64())
                );
            });
        }
        PasswordCommand::List { user: Some(user), .. } => {
            let list = api.call(Method::GET, &format!("{}/passwords", user_path(&user)), None).await?;
            emit(json, &list, || print_passwords(list.as_array().map(Vec::as_slice).unwrap_or_default(), false));
        }
        PasswordCommand::List { user: None, only_user, status, expiring_within, limit, offset, .. } => {
            let status = status.map(|s| match s {
                Status::Active => "active".to_string(),
                Status::Revoked => "revoked".to_string(),
                Status::Expired => "expired".to_string(),
            });
            let query = output::query(&[
                ("user", only_user),
                ("status", status),
                ("expiring_within", expiring_within),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ]);
            let page = api.call(Method::GET, &format!("/passwords{query}"), None).await?;
            emit(json, &page, || {
                let list = page["passwords"].as_array().map(Vec::as_slice).unwrap_or_default();
                print_passwords(list, true);
                let total = page["total"].as_u64().unwrap_or(0) as usize;
                if offset + list.len() < total {
                    println!("({} of {total} shown; next page: --offset {})", list.len(), offset + list.len());
                }
            });
        }
        PasswordCommand::Show { user, id } => {
            let p = api.call(Method::GET, &password_path(&user, &id), None).await?;
            emit(json, &p, || print_passwords(std::slice::from_ref(&p), false));
        }
        PasswordCommand::Rename { user, id, name } => {
            let p = api.call(Method::PATCH, &password_path(&user, &id), Some(json!({"name": name}))).await?;
            emit(json, &p, || println!("renamed {id} to {name}"));
        }
        PasswordCommand::Revoke { user, id } => {
            let p = api.call(Method::DELETE, &password_path(&user, &id), None).await?;
            emit(json, &p, || println!("revoked {id}"));
        }
        PasswordCommand::RevokeAll { user } => {
            let r = api.call(Method::POST, &format!("{}/passwords/revoke-all", user_path(&user)), None).await?;
            emit(json, &r, || println!("revoked {} app passwords of {user}", r["revoked"].as_u64().unwrap_or(0)));
        }
    }
    Ok(())
}
