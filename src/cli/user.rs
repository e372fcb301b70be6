//! `davgate user add|list|show|disable|enable|app-access|remove`.

use super::output::{self, emit, field};
use clap::{Subcommand, ValueEnum};
use davgate::admin::client::AdminClient;
use http::Method;
use serde_json::{Value, json};
use zeroize::Zeroize;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (the name is the identity sent to the backend)
    Add { name: String },
    /// List users
    List {
        /// Only users whose name contains this text
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, value_enum)]
        state: Option<State>,
        #[arg(long, value_enum)]
        app_access: Option<OnOff>,
        /// Users per page (1 to 1000)
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Show one user
    Show { name: String },
    /// Refuse every app password of the user
    Disable { name: String },
    /// Allow the user's app passwords again
    Enable { name: String },
    /// Turn app access on or off without touching the passwords
    AppAccess { name: String, state: OnOff },
    /// Remove a user with all their passwords and history
    Remove { name: String },
    /// Set the login password for the self-service page, read from the
    /// first line of standard input (never an argument: it would show in `ps`)
    SetPassword { name: String },
    /// Remove the user's TOTP second factor (lost phone); they sign in with
    /// the password alone and may enrol again
    ResetTotp { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum State {
    Active,
    Disabled,
}

pub fn user_path(name: &str) -> String {
    format!("/users/{}", percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC))
}

fn user_row(u: &Value) -> Vec<String> {
    vec![
        field(u, "name").to_string(),
        field(u, "state").to_string(),
        if u["app_access"] == Value::Bool(true) { "on" } else { "off" }.to_string(),
        output::time(u["created"].as_u64()),
    ]
}

const USER_HEADER: [&str; 4] = ["NAME", "STATE", "APP ACCESS", "CREATED"];

pub async fn run(command: UserCommand, api: &AdminClient, json: bool) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name } => {
            let user = api.call(Method::POST, "/users", Some(json!({"name": name}))).await?;
            emit(json, &user, || println!("added user {name}"));
        }
        UserCommand::List { filter, state, app_access, limit, offset } => {
            let query = output::query(&[
                ("q", filter),
                ("state", state.map(|s| if matches!(s, State::Active) { "active" } else { "disabled" }.into())),
                ("app_access", app_access.map(|a| matches!(a, OnOff::On).to_string())),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ]);
            let page = api.call(Method::GET, &format!("/users{query}"), None).await?;
            emit(json, &page, || {
                let users = page["users"].as_array().cloned().unwrap_or_default();
                let rows: Vec<Vec<String>> = users.iter().map(user_row).collect();
                output::table(&USER_HEADER, &rows);
                let total = page["total"].as_u64().unwrap_or(0) as usize;
                if offset + rows.len() < total {
                    println!("({} of {total} shown; next page: --offset {})", rows.len(), offset + rows.len());
                }
            });
        }
        UserCommand::Show { name } => {
            let user = api.call(Method::GET, &user_path(&name), None).await?;
            emit(json, &user, || output::table(&USER_HEADER, &[user_row(&user)]));
        }
        UserCommand::Disable { name } => {
            let user = api.call(Method::PATCH, &user_path(&name), Some(json!({"state": "disabled"}))).await?;
            emit(json, &user, || println!("disabled user {name}: every app password is refused"));
        }
        UserCommand::Enable { name } => {
            let user = api.call(Method::PATCH, &user_path(&name), Some(json!({"state": "active"}))).await?;
            emit(json, &user, || println!("enabled user {name}"));
        }
        UserCommand::AppAccess { name, state } => {
            let on = matches!(state, OnOff::On);
            let user = api.call(Method::PATCH, &user_path(&name), Some(json!({"app_access": on}))).await?;
            emit(json, &user, || println!("app access for {name} is {}", if on { "on" } else { "off" }));
        }
        UserCommand::Remove { name } => {
            let removed = api.call(Method::DELETE, &user_path(&name), None).await?;
            emit(json, &removed, || println!("removed user {name}"));
        }
        UserCommand::SetPassword { name } => {
            let password = read_password_line()?;
            let path = format!("{}/login-password", user_path(&name));
            let set = api.call(Method::PUT, &path, Some(json!({"password": password.expose()}))).await?;
            emit(json, &set, || {
                let revoked = set["revoked"].as_u64().unwrap_or(0);
                println!("set the login password of {name}");
                if revoked > 0 {
                    println!("revoked {revoked} app passwords (policy.revoke_on_password_change)");
                }
            });
        }
        UserCommand::ResetTotp { name } => {
            let reset = api.call(Method::DELETE, &format!("{}/totp", user_path(&name)), None).await?;
            emit(json, &reset, || match reset["removed"].as_bool() {
                Some(true) => println!("removed the second factor of {name}"),
                _ => println!("{name} had no second factor"),
            });
        }
    }
    Ok(())
}

/// The first line of standard input, without its line ending.
fn read_password_line() -> anyhow::Result<davgate::secret::Secret<String>> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("login password (shown as you type; or pipe it in): ");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    line.zeroize();
    if password.is_empty() {
        anyhow::bail!("no password on standard input: echo it in, e.g. `davgate user set-password alice < file`");
    }
    Ok(davgate::secret::Secret::new(password))
}
