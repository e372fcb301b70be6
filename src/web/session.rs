//! Server-side sessions of the self-service page.
//!
//! The cookie carries only a random id (256 bits); everything else stays
//! here, in memory, with an idle and an absolute expiry. A restart signs
//! everyone out. Each session has its own CSRF token for every form.

use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::sync::Cache;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "davgate_session";
/// Double-submit cookie guarding the sign-in form, before any session exists.
pub const PRE_COOKIE: &str = "davgate_signin";
const MAX_SESSIONS: u64 = 100_000;

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Password accepted; a TOTP or recovery code must follow.
    SecondFactor,
    SignedIn,
}

/// A just-created app password, waiting to be shown once.
pub struct Reveal {
    pub password_id: String,
    pub secret: Secret<String>,
    /// Set once the page has been shown: the setup profile may still be
    /// downloaded (once, with this token, for a few minutes).
    pub profile_token: Option<String>,
    pub created: Instant,
}

pub struct Session {
    pub user: String,
    pub stage: Stage,
    pub csrf: String,
    pub started: Instant,
    /// Unix time of the sign-in: a login password changed after it ends
    /// the session.
    pub signed_in_at: u64,
    /// A TOTP secret offered for enrolment, not yet confirmed.
    pub totp_offer: Option<Secret<String>>,
    /// Recovery codes to show once, right after TOTP is enabled.
    pub recovery_codes: Option<Vec<Secret<String>>>,
    pub reveal: Option<Reveal>,
}

pub type SessionRef = Arc<Mutex<Session>>;

pub struct Sessions {
    live: Cache<String, SessionRef>,
    max_age: Duration,
}

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration) -> Self {
        Self { live: Cache::builder().max_capacity(MAX_SESSIONS).time_to_idle(idle).build(), max_age }
    }

    /// Starts a session; returns the cookie value.
    pub fn start(&self, user: &str, stage: Stage) -> String {
        let id = random_token();
        let session = Session {
            user: user.to_string(),
            stage,
            csrf: random_token(),
            started: Instant::now(),
            signed_in_at: crate::store::model::unix_now(),
            totp_offer: None,
            recovery_codes: None,
            reveal: None,
        };
        self.live.insert(id.clone(), Arc::new(Mutex::new(session)));
        id
    }

    /// The live session behind a cookie value (idle expiry is moka's;
    /// the absolute one is checked here).
    pub fn get(&self, id: &str) -> Option<SessionRef> {
        let session = self.live.get(id)?;
        let expired = session.lock().map(|s| s.started.elapsed() > self.max_age).unwrap_or(true);
        if expired {
            self.live.invalidate(id);
            return None;
        }
        Some(session)
    }

    pub fn end(&self, id: &str) {
        self.live.invalidate(id);
    }

    /// Ends every session of `user` (login password changed, user removed).
    pub fn end_user(&self, user: &str, keep: Option<&str>) {
        let doomed: Vec<Arc<String>> = self
            .live
            .iter()
            .filter(|(id, s)| keep != Some(id.as_str()) && s.lock().map(|s| s.user == user).unwrap_or(true))
            .map(|(id, _)| id)
            .collect();
        for id in doomed {
            self.live.invalidate(id.as_str());
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure unless the page
/// is served over plain HTTP on loopback.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<Duration>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_absolutely_and_end_per_user() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_millis(50));
        let id = sessions.start("alice", Stage::SignedIn);
        assert!(sessions.get(&id).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&id).is_none(), "past the absolute lifetime");

        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let a1 = sessions.start("alice", Stage::SignedIn);
        let a2 = sessions.start("alice", Stage::SignedIn);
        let b = sessions.start("bob", Stage::SignedIn);
        sessions.end_user("alice", Some(&a2));
        assert!(sessions.get(&a1).is_none());
        assert!(sessions.get(&a2).is_some());
        assert!(sessions.get(&b).is_some());
    }

    #[test]
    fn idle_sessions_expire() {
        let sessions = Sessions::new(Duration::from_millis(50), Duration::from_secs(60));
        let id = sessions.start("alice", Stage::SignedIn);
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn cookies_parse_and_carry_their_flags() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; davgate_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        let c = set_cookie(COOKIE, "v", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(COOKIE, "v", false, None).contains("Secure"));
        assert_ne!(random_token(), random_token());
    }
}
