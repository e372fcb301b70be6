//! Nextcloud Login Flow v2: a client POSTs to `/index.php/login/v2`, opens
//! the returned `login` URL in a browser, and polls with its token. The
//! user signs in here, names and scopes the password, and the next poll
//! returns `{server, loginName, appPassword}` once. Flows live 20 minutes;
//! a poll token works for one successful poll.

use crate::secret::Secret;
use moka::sync::Cache;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Nextcloud's own lifetime for a pending flow.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(20 * 60);
const MAX_FLOWS: u64 = 10_000;

/// What the poll returns once the user granted access.
pub struct Grant {
    pub server: String,
    pub login_name: String,
    pub app_password: Secret<String>,
}

/// The flow's three endpoints: start, poll, and the browser page.
pub fn is_flow_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(super::LOGIN_FLOW_PREFIX) else { return false };
    match rest {
        "" | "/poll" => true,
        _ => rest.strip_prefix("/flow/").is_some_and(|token| {
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }),
    }
}

pub struct Flow {
    pub poll_token: String,
    /// The client that started the flow (its User-Agent), shown to the user.
    pub client: String,
    /// Where the flow was started from, shown to the user.
    pub from: std::net::IpAddr,
    pub grant: Option<Grant>,
}

pub type FlowRef = Arc<Mutex<Flow>>;

pub struct Flows {
    /// Browser (login) token → flow.
    by_login: Cache<String, FlowRef>,
    /// Poll token → flow.
    by_poll: Cache<String, FlowRef>,
}

impl Default for Flows {
    fn default() -> Self {
        Self::new()
    }
}

impl Flows {
    pub fn new() -> Self {
        let cache = || Cache::builder().max_capacity(MAX_FLOWS).time_to_live(FLOW_LIFETIME).build();
        Self { by_login: cache(), by_poll: cache() }
    }

    /// Starts a flow; returns (login token, poll token).
    pub fn start(&self, client: &str, from: std::net::IpAddr) -> (String, String) {
        let login = super::session::random_token();
        let poll = super::session::random_token();
        let flow =
            Arc::new(Mutex::new(Flow { poll_token: poll.clone(), client: client.to_string(), from, grant: None }));
        self.by_login.insert(login.clone(), flow.clone());
        self.by_poll.insert(poll.clone(), flow);
        (login, poll)
    }

    pub fn by_login_token(&self, token: &str) -> Option<FlowRef> {
        self.by_login.get(token)
    }

    /// Records the grant and retires the browser token, so the page cannot
    /// be used twice.
    pub fn grant(&self, login_token: &str, grant: Grant) -> bool {
        let Some(flow) = self.by_login.remove(login_token) else { return false };
        let Ok(mut flow) = flow.lock() else { return false };
        flow.grant = Some(grant);
        true
    }

    /// The grant, once: the poll token is gone after a successful poll.
    pub fn poll(&self, poll_token: &str) -> Option<Grant> {
        let flow = self.by_poll.get(poll_token)?;
        let grant = flow.lock().ok()?.grant.take()?;
        self.by_poll.invalidate(poll_token);
        Some(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_polled_once_and_the_browser_token_used_once() {
        let flows = Flows::new();
        let (login, poll) = flows.start("DAVx5", std::net::Ipv4Addr::LOCALHOST.into());
        assert!(flows.poll(&poll).is_none(), "nothing before the grant");
        let grant = || Grant { server: "s".into(), login_name: "alice".into(), app_password: Secret::new("p".into()) };
        assert!(flows.grant(&login, grant()));
        assert!(!flows.grant(&login, grant()), "the browser token is single use");
        assert_eq!(flows.poll(&poll).unwrap().login_name, "alice");
        assert!(flows.poll(&poll).is_none(), "the poll token is single use");
        assert!(flows.poll("unknown").is_none());
    }
}
