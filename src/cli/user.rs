//! `davgate user add|list|show|disable|enable|app-access|remove`.

use super::output::{self, emit, field};
use clap::{Subcommand, ValueEnum};
use davgate::admin::client::AdminClient;
use http::Method;
use serde_json::{Value, json};

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
    }
    Ok(())
}
