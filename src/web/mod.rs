//! The self-service page: users sign in, then create, see and revoke their
//! own app passwords, and read their history. Plus the Nextcloud Login
//! Flow v2, so DAVx5 and Nextcloud-aware clients get a password without
//! anyone copying it.
//!
//! Server-rendered HTML from askama templates compiled into the binary, one
//! stylesheet and one tiny script (copy buttons) served from here: every
//! flow works without JavaScript. Every response forbids framing and
//! caching, and carries a CSP without inline script.

pub mod client_label;
pub mod collections;
mod forms;
mod handlers;
pub mod login_flow;
pub mod mobileconfig;
mod pages;
mod qr;
pub mod session;

use crate::accounts::Accounts;
use crate::config::WebConfig;
use crate::error::{Body, full};
use crate::gateway::Peer;
use crate::gateway::throttle::Throttle;
use crate::logins::Logins;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use ipnet::IpNet;
use session::{SessionRef, Sessions};
use std::net::IpAddr;
use std::sync::Arc;

/// Nextcloud's Login Flow v2 lives at a fixed path: clients append it to
/// the server URL the user typed.
pub const LOGIN_FLOW_PREFIX: &str = "/index.php/login/v2";

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What outlives a config reload: sessions, pending login flows and the
/// sign-in throttle.
pub struct WebState {
    pub sessions: Sessions,
    pub flows: login_flow::Flows,
    pub throttle: Throttle,
    /// One sign-in check per user at a time, so the throttle's count is
    /// read and updated around each check and a burst cannot slip past it.
    pub attempts: moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
    pub logins: Arc<Logins>,
}

impl WebState {
    pub fn new(config: &crate::config::Config, logins: Arc<Logins>) -> Self {
        Self {
            sessions: Sessions::new(config.web.session_idle, config.web.session_max),
            flows: login_flow::Flows::new(),
            throttle: Throttle::new(config.throttle.clone()),
            attempts: moka::sync::Cache::builder()
                .max_capacity(config.throttle.max_tracked)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
            logins,
        }
    }
}

/// The page as configured now; rebuilt on reload around the same state.
pub struct Web {
    pub config: WebConfig,
    pub state: Arc<WebState>,
    pub accounts: Arc<Accounts>,
    pub trusted_proxies: Vec<IpNet>,
    /// Lists the signed-in user's collections for the create form.
    pub collections: collections::Lister,
}

/// One request, as the handlers see it.
pub struct Ctx {
    pub client_ip: IpAddr,
    /// Served over TLS (here or at a trusted proxy): cookies get `Secure`.
    pub secure: bool,
    /// Plain HTTP from loopback: allowed without TLS (development, tests).
    pub loopback: bool,
    /// `https://dav.example.org`: what clients are told to use.
    pub server_url: String,
    pub session: Option<(String, SessionRef)>,
    pub user_agent: String,
}

impl Web {
    /// Whether `path` belongs to the page or the login flow. Only exact,
    /// plain paths: an SSO front that guards `/account/` must never see a
    /// page of ours under another spelling (`/x/../account/`,
    /// `%2e%2e`), and other `/index.php/...` paths stay the backend's.
    pub fn claims(&self, path: &str) -> bool {
        // Prefixes first: every DAV request passes here.
        let base = self.config.path.trim_end_matches('/');
        let ours = path == base
            || path.starts_with(&self.config.path)
            || (self.config.login_flow && login_flow::is_flow_path(path));
        ours && is_plain_path(path)
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        crate::gateway::is_in(&self.trusted_proxies, ip)
    }

    /// `client_ip` and `secure` come from the gateway, which already knows
    /// which proxies to believe.
    fn context(&self, req: &Request<Incoming>, peer: Peer, client_ip: IpAddr, secure: bool) -> Ctx {
        let peer_ip = peer.addr.ip();
        let server_url = match &self.config.public_url {
            Some(url) => url.to_string().trim_end_matches('/').to_string(),
            None => {
                let host = req
                    .uri()
                    .authority()
                    .map(|a| a.as_str().to_string())
                    .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(String::from))
                    .filter(|h| h.parse::<http::uri::Authority>().is_ok_and(|a| !a.as_str().contains('@')))
                    .unwrap_or_else(|| peer.addr.to_string());
                format!("{}://{host}", if secure { "https" } else { "http" })
            }
        };
        let session = session::cookie(req.headers(), session::COOKIE)
            .and_then(|id| self.state.sessions.get(id).map(|s| (id.to_string(), s)));
        let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Ctx { client_ip, secure, loopback: peer_ip.is_loopback() && !peer.tls, server_url, session, user_agent }
    }

    pub async fn handle(&self, req: Request<Incoming>, peer: Peer, client_ip: IpAddr, secure: bool) -> Response<Body> {
        let ctx = self.context(&req, peer, client_ip, secure);
        if !ctx.secure && !ctx.loopback {
            return plain(StatusCode::FORBIDDEN, "the account page needs HTTPS: set server.tls or a TLS proxy\n");
        }
        let mut res = handlers::route(self, req, ctx, peer).await;
        secure_headers(res.headers_mut());
        res
    }
}

/// A path with one spelling only: no escapes, dot segments or empty
/// segments that a proxy or backend could read differently.
pub fn is_plain_path(path: &str) -> bool {
    path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..")
}

fn secure_headers(h: &mut http::HeaderMap) {
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

/// A short plain-text answer.
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut res = Response::new(full(text));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    secure_headers(res.headers_mut());
    res
}
