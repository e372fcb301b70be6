//! `davgate user add|list|disable|enable|remove|app-access`.

use super::output;
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
        #[arg(long)]
        json: bool,
    },
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

pub fn user_path(name: &str) -> String {
    format!("/users/{}", percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC))
}

pub async fn run(command: UserCommand, api: &AdminClient) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name } => {
            api.call(Method::POST, "/users", Some(json!({"name": name}))).await?;
            println!("added user {name}");
        }
        UserCommand::List { json } => {
            let users = api.call(Method::GET, "/users", None).await?;
            if json {
                println!("{users}");
            } else {
                let rows: Vec<Vec<String>> = users
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| {
                        vec![
                            u["name"].as_str().unwrap_or("").to_string(),
                            u["state"].as_str().unwrap_or("").to_string(),
                            if u["app_access"] == Value::Bool(true) { "on" } else { "off" }.to_string(),
                            output::time(u["created"].as_u64()),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "STATE", "APP ACCESS", "CREATED"], &rows);
            }
        }
        UserCommand::Disable { name } => {
            api.call(Method::PATCH, &user_path(&name), Some(json!({"state": "disabled"}))).await?;
            println!("disabled user {name}: every app password is refused");
        }
        UserCommand::Enable { name } => {
            api.call(Method::PATCH, &user_path(&name), Some(json!({"state": "active"}))).await?;
            println!("enabled user {name}");
        }
        UserCommand::AppAccess { name, state } => {
            let on = matches!(state, OnOff::On);
            api.call(Method::PATCH, &user_path(&name), Some(json!({"app_access": on}))).await?;
            println!("app access for {name} is {}", if on { "on" } else { "off" });
        }
        UserCommand::Remove { name } => {
            api.call(Method::DELETE, &user_path(&name), None).await?;
            println!("removed user {name}");
        }
    }
    Ok(())
}
