//! The request path: credentials → verify → scope → activity → forward.
//!
//! Authentication happens before the body is touched, so an unauthenticated
//! `Expect: 100-continue` upload is refused without being received; a
//! small body that comes with a refused request is read and dropped, so the
//! client's connection stays usable ([`unread_body`]). No request reaches
//! the backend without a verified app password.

pub mod access_log;
pub mod credentials;
pub mod headers;
pub mod relay;
pub mod scope;
mod thread_cache;
pub mod throttle;
pub mod unread_body;
pub mod upstream;
pub mod verify;

use crate::activity::ActivityRecorder;
use crate::error::{Body, GatewayError};
use crate::metrics::{Metrics, Outcome};
use access_log::AccessRecord;
use http::{HeaderName, HeaderValue, Request, Response};
use hyper::body::Incoming;
use ipnet::IpNet;
use scope::ScopeRules;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use upstream::Upstream;
use verify::{Verifier, VerifyError};

pub struct Gateway {
    pub verifier: Arc<Verifier>,
    pub rules: ScopeRules,
    pub activity: Arc<ActivityRecorder>,
    pub upstream: Upstream,
    pub identity_header: HeaderName,
    pub preserve_host: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub challenge: HeaderValue,
    pub metrics: Arc<Metrics>,
    /// Write one `davgate::access` line per request.
    pub access_log: bool,
    /// The self-service page and login flow, when enabled.
    pub web: Option<crate::web::Web>,
}

/// What the request path learnt about a request, for the access log.
#[derive(Default)]
pub struct Seen {
    /// Whether an access line will be written (the rest is only for it).
    pub logged: bool,
    pub client_ip: Option<IpAddr>,
    pub user: Option<String>,
    pub password_id: Option<String>,
}

/// How a connection reached us.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl Gateway {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        is_in(&self.trusted_proxies, ip)
    }

    /// The client address: the TCP peer, or, when the peer is a trusted
    /// proxy, the right-most untrusted `X-Forwarded-For` entry. An IPv4
    /// peer on a dual-stack (`[::]`) listener arrives as `::ffff:a.b.c.d`
    /// and is taken as the IPv4 address it is.
    fn client_ip(&self, req: &Request<Incoming>, peer: IpAddr) -> IpAddr {
        self.client_ip_from(peer, || req.headers().get_all("x-forwarded-for").iter().map(HeaderValue::as_bytes))
    }

    /// [`Self::client_ip`] from the request's `X-Forwarded-For` values
    /// (read only when the peer is trusted).
    pub(crate) fn client_ip_from<'h, V>(&self, peer: IpAddr, forwarded_for: impl FnOnce() -> V) -> IpAddr
    where
        V: Iterator<Item = &'h [u8]>,
    {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let chain: Vec<IpAddr> = forwarded_for()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        chain.into_iter().rev().find(|ip| !self.is_trusted(*ip)).map_or(peer, |ip| ip.to_canonical())
    }

    fn proto(&self, req: &Request<Incoming>, peer: Peer) -> &'static str {
        self.proto_from(peer, req.headers().get("x-forwarded-proto").is_some_and(|v| v == "https"))
    }

    /// `https` or `http`, as the client reached us (or our trusted proxy,
    /// whose `X-Forwarded-Proto: https` is `forwarded_https`).
    pub(crate) fn proto_from(&self, peer: Peer, forwarded_https: bool) -> &'static str {
        if peer.tls {
            return "https";
        }
        if self.is_trusted(peer.addr.ip()) && forwarded_https { "https" } else { "http" }
    }

    pub async fn handle(&self, mut req: Request<Incoming>, peer: Peer) -> Response<Body> {
        if let Some(web) = &self.web
            && web.claims(req.uri().path())
        {
            let client_ip = self.client_ip(&req, peer.addr.ip());
            let secure = self.proto(&req, peer) == "https";
            return web.handle(req, peer, client_ip, secure).await;
        }
        let start = Instant::now();
        let method = req.method().clone();
        let logged = self.access_log && access_log::enabled();
        let record = logged.then(|| AccessRecord::begin(&req, start));
        let mut seen = Seen { logged, ..Seen::default() };
        let (outcome, res) = match self.admit(&mut req, peer, &mut seen).await {
            Ok(()) => self.forward(req).await,
            Err(e) => {
                let mut res = e.response(&self.challenge);
                // Boxed: refusals are rare, and the drain's timer would
                // otherwise enlarge every request's future.
                Box::pin(unread_body::settle(req, &mut res)).await;
                (e.outcome(), res)
            }
        };
        self.metrics.request(outcome, &method);
        match record {
            Some(record) => record.finish(res, outcome, seen),
            None => res,
        }
    }

    /// Checks the credentials and the scope, records the activity and
    /// rewrites the headers for the backend; the body is not touched.
    async fn admit(&self, req: &mut Request<Incoming>, peer: Peer, seen: &mut Seen) -> Result<(), GatewayError> {
        let client_ip = self.client_ip(req, peer.addr.ip());
        seen.client_ip = Some(client_ip);
        let creds = credentials::basic(req.headers());
        let target = scope::Target::of(req, client_ip);
        let user_agent = req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok());
        let grant = self.authorize(creds.as_ref(), client_ip, target, user_agent, seen).await?;

        let host = request_host(req)?;
        let forwarding = headers::Forwarding {
            identity_header: &self.identity_header,
            user: &grant.user,
            client_ip,
            proto: self.proto(req, peer),
            host,
            preserve_host: self.preserve_host,
        };
        headers::prepare_request(req.headers_mut(), &forwarding)
            .map_err(|_| GatewayError::BadRequest("the user name cannot be sent as a header"))
    }

    /// The checks every request passes, whichever parser read it: the
    /// credentials are verified, then the scope is checked (`target` is
    /// read before, refused only after), then the activity is recorded.
    pub(crate) async fn authorize(
        &self,
        creds: Option<&credentials::BasicCredentials>,
        client_ip: IpAddr,
        target: Result<scope::Target<'_>, scope::Refusal>,
        user_agent: Option<&str>,
        seen: &mut Seen,
    ) -> Result<Arc<verify::Grant>, GatewayError> {
        let creds = creds.ok_or(GatewayError::Unauthorized)?;
        // Only when it is written: the check is a parse of the name.
        let claimed = || loggable_user(creds.user());
        if seen.logged {
            seen.user = Some(claimed().to_string());
        }
        let grant = match self.verifier.verify(creds.user(), creds.password(), client_ip).await {
            Ok(g) => g,
            Err(VerifyError::StoreUnavailable) => return Err(GatewayError::StoreUnavailable),
            Err(VerifyError::Busy) => return Err(GatewayError::Busy),
            Err(VerifyError::Throttled(retry_after)) => {
                tracing::info!(target: "davgate::auth", user = claimed(), ip = %client_ip, "throttled");
                return Err(GatewayError::TooManyAttempts { retry_after_secs: retry_after.as_secs().max(1) });
            }
            Err(why) => {
                tracing::info!(target: "davgate::auth", user = claimed(), ip = %client_ip, reason = %why, "auth failure");
                return Err(GatewayError::Unauthorized);
            }
        };
        if seen.logged {
            seen.password_id = Some(grant.password_id.clone());
        }
        let method = target.as_ref().map_or("", |t| t.method.as_str());
        target.and_then(|target| self.rules.check(&grant.scope, &grant.user, &target)).inspect_err(|why| {
            tracing::info!(target: "davgate::auth", user = grant.user.as_str(), password_id = %grant.password_id,
                method, reason = %why, "out of scope");
        })?;
        self.activity.record(&grant.password_id, client_ip, user_agent);
        Ok(grant)
    }

    async fn forward(&self, req: Request<Incoming>) -> (Outcome, Response<Body>) {
        let body_unread = unread_body::unread(&req);
        let sent = Instant::now();
        let res = self.upstream.send(req, body_unread).await;
        self.metrics.upstream_duration.observe(sent.elapsed().as_secs_f64());
        match res {
            Ok(res) => (Outcome::Ok, res),
            Err(e) => {
                let mut res = e.response(&self.challenge);
                // The body went with the request and may be half sent.
                if body_unread {
                    unread_body::close(res.headers_mut());
                }
                (e.outcome(), res)
            }
        }
    }
}

/// A claimed (unverified) user name as it may be logged: people type their
/// password into the user field, so anything shaped like a davgate password
/// is never written. A `&str` field is escaped by every log format.
fn loggable_user(claimed: &str) -> &str {
    if crate::password::parse(claimed).is_some() { "<redacted: looks like a password>" } else { claimed }
}

/// The host the client asked for: the request target's authority when it
/// has one (absolute-form, HTTP/2 `:authority`; RFC 9112 §3.2.2), else the
/// one `Host` header. HTTP/1.1 without exactly one valid `Host`, or a host
/// with userinfo or a path, is `400` (RFC 9112 §3.2).
fn request_host<B>(req: &Request<B>) -> Result<Option<HeaderValue>, GatewayError> {
    const BAD_HOST: GatewayError = GatewayError::BadRequest("missing, repeated or invalid Host header");
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(BAD_HOST);
    }
    let valid = |v: &HeaderValue| {
        v.to_str().ok().and_then(|s| s.parse::<http::uri::Authority>().ok()).is_some_and(|a| !a.as_str().contains('@'))
    };
    if header.is_some_and(|h| !valid(h)) {
        return Err(BAD_HOST);
    }
    if let Some(authority) = req.uri().authority() {
        if authority.as_str().contains('@') {
            return Err(BAD_HOST);
        }
        return Ok(HeaderValue::from_str(authority.as_str()).ok());
    }
    if header.is_none() && req.version() == http::Version::HTTP_11 {
        return Err(BAD_HOST);
    }
    Ok(header.cloned())
}

/// Whether `ip` is in one of `nets`, IPv4-mapped IPv6 addresses matched as
/// the IPv4 addresses they carry (so `10.0.0.0/8` covers `::ffff:10.0.0.1`).
pub(crate) fn is_in(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_networks() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(is_in(&nets, ip("10.1.2.3")));
        assert!(is_in(&nets, ip("::ffff:10.1.2.3")));
        assert!(is_in(&nets, ip("fd00::1")));
        assert!(!is_in(&nets, ip("::ffff:192.0.2.1")));
        assert!(!is_in(&nets, ip("192.0.2.1")));
    }
}
