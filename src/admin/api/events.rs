//! Account history: one user's (`/users/{user}/events`) or everyone's
//! (`/events`), newest first, paged, filtered by kind and time.

use super::{ApiError, ApiResult, ErrorBody, Paging, to_json};
use crate::accounts::Accounts;
use crate::store::EventQuery;
use crate::store::model::{Event, EventKind};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    #[serde(default)]
    #[param(minimum = 0)]
    offset: usize,
    #[serde(default = "super::default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: usize,
    /// Only these kinds, comma-separated: `password-created,password-revoked`.
    #[param(example = "password-revoked,passwords-revoked-all")]
    kind: Option<String>,
    /// Only events at or after this time (Unix seconds).
    since: Option<u64>,
    /// Only events before this time (Unix seconds).
    until: Option<u64>,
    /// Only this user's events (on `/events`).
    user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// The `offset` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
}

fn parse_kinds(text: &str) -> Result<Vec<EventKind>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            serde_json::from_value(serde_json::Value::String(k.to_string())).map_err(|_| {
                let known: Vec<String> =
                    EventKind::ALL.iter().map(|k| super::to_json(k).as_str().unwrap_or("").to_string()).collect();
                ApiError::bad_request("bad_query", format!("kind: unknown {k:?}; known: {}", known.join(", ")))
            })
        })
        .collect()
}

async fn page(accounts: &Accounts, user: Option<String>, params: EventParams) -> ApiResult {
    let paging = Paging { offset: params.offset, limit: params.limit }.checked()?;
    let query = EventQuery {
        user,
        kinds: params.kind.as_deref().map(parse_kinds).transpose()?.unwrap_or_default(),
        since: params.since,
        until: params.until,
        offset: paging.offset,
        // One more than asked tells whether another page follows.
        limit: paging.limit + 1,
    };
    let mut events = accounts.events(&query).await?;
    let more = events.len() > paging.limit;
    events.truncate(paging.limit);
    let next_offset = more.then(|| paging.offset.saturating_add(paging.limit));
    Ok((StatusCode::OK, to_json(&EventPage { events, next_offset })))
}

#[utoipa::path(get, path = "/api/v1/users/{user}/events", tag = "events", params(("user" = String, Path), EventParams),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_for_user(accounts: &Accounts, user: &str, params: EventParams) -> ApiResult {
    if params.user.as_deref().is_some_and(|u| u != user) {
        return Err(ApiError::bad_request("bad_query", "user: differs from the user in the path"));
    }
    page(accounts, Some(user.to_string()), params).await
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(accounts: &Accounts, mut params: EventParams) -> ApiResult {
    let user = params.user.take();
    page(accounts, user, params).await
}
