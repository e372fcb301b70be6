//! `davgate events [USER]`: account history, newest first.

use super::output::{self, emit, field};
use super::user::user_path;
use clap::Args;
use davgate::admin::client::AdminClient;
use davgate::store::model::unix_now;
use http::Method;

#[derive(Args)]
pub struct EventsArgs {
    /// Only this user's history (default: every user)
    user: Option<String>,
    /// Only these kinds, comma-separated, e.g. password-revoked,password-expired
    #[arg(long)]
    kind: Option<String>,
    /// Only events since a time ago ("7d") or a date ("2026-11-01")
    #[arg(long, value_parser = past_time)]
    since: Option<u64>,
    /// Only events before a time ago ("1h") or a date
    #[arg(long, value_parser = past_time)]
    until: Option<u64>,
    /// Events per page (1 to 1000)
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long, default_value_t = 0)]
    offset: usize,
}

/// A duration ago (`7d`) or a date, as Unix seconds.
fn past_time(text: &str) -> Result<u64, String> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(unix_now().saturating_sub(d.as_secs()));
    }
    davgate::accounts::parse_date(text)
        .ok_or_else(|| format!("{text:?} is neither a duration like \"7d\" nor a date like \"2026-11-01\""))
}

pub async fn run(args: EventsArgs, api: &AdminClient, json: bool) -> anyhow::Result<()> {
    let base = match &args.user {
        Some(user) => format!("{}/events", user_path(user)),
        None => "/events".to_string(),
    };
    let query = output::query(&[
        ("kind", args.kind),
        ("since", args.since.map(|t| t.to_string())),
        ("until", args.until.map(|t| t.to_string())),
        ("limit", Some(args.limit.to_string())),
        ("offset", Some(args.offset.to_string())),
    ]);
    let page = api.call(Method::GET, &format!("{base}{query}"), None).await?;
    emit(json, &page, || {
        let events = page["events"].as_array().map(Vec::as_slice).unwrap_or_default();
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    output::time(e["at"].as_u64()),
                    field(e, "user").to_string(),
                    field(e, "kind").to_string(),
                    e["password_id"].as_str().unwrap_or("-").to_string(),
                    field(e, "actor").to_string(),
                ]
            })
            .collect();
        output::table(&["TIME", "USER", "EVENT", "PASSWORD", "BY"], &rows);
        if let Some(next) = page["next_offset"].as_u64() {
            println!("(more: --offset {next})");
        }
    });
    Ok(())
}
