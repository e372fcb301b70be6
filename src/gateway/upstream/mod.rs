//! The upstream client: pooled, keep-alive, `http` or `https` backends.
//!
//! Requests are always sent as HTTP/1.1 in origin form with a `Host` (a
//! request that arrived over h2 is sent the same way). Bodies stream both
//! ways: nothing here buffers a body.

mod pool;

use super::unread_body::{self, ForwardedBody};
use crate::config::UpstreamConfig;
use crate::error::{Body, GatewayError};
use http::header::HOST;
use http::{HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use pool::{Pool, PooledBody, Senders};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;
use tower_service::Service;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct Upstream {
    /// Opens a TCP (and, for `https`, TLS) connection to the backend.
    connector: Connector,
    /// What the connector dials: the upstream URL's scheme and authority.
    address: Uri,
    /// Sent when the request has no `Host` (`preserve_host = false`, or an
    /// HTTP/1.0 client that sent none).
    host: HeaderValue,
    pool: Arc<Senders<ForwardedBody>>,
    /// Idle sockets of the HTTP/1 relay; `None` for an `https` backend.
    raw: Option<RawBackend>,
    timeout: Duration,
}

/// A plain-HTTP backend as the HTTP/1 relay reaches it.
struct RawBackend {
    /// `host:port`, as `TcpStream::connect` takes it.
    address: String,
    pool: Arc<Pool<tokio::net::TcpStream>>,
}

/// Why no response came back; what the client is told comes from here.
enum SendError {
    Unreachable(Box<dyn std::error::Error + Send + Sync>),
    Failed(hyper::Error),
}

/// A client config trusting the Mozilla roots plus the PEM bundle `ca_file`;
/// errors name the config key `key`.
pub(crate) fn tls_config(ca_file: Option<&std::path::Path>, key: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect())
            .map_err(|e| anyhow::anyhow!("{key}: cannot read PEM certificates from {}: {e}", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{key}: {} holds no certificate", path.display());
        }
        for cert in certs {
            roots.add(cert).map_err(|e| anyhow::anyhow!("{key}: {}: {e}", path.display()))?;
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(config.ca_file.as_deref(), "upstream.ca_file")?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let url = &config.url;
        let scheme = url.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP);
        let authority = url.authority().cloned().ok_or_else(|| anyhow::anyhow!("upstream.url: has no host"))?;
        let host = host_header(&scheme, &authority)?;
        let raw = (scheme == http::uri::Scheme::HTTP).then(|| RawBackend {
            address: format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80)),
            pool: Pool::new(config.pool_max_idle_per_host, config.pool_idle_timeout),
        });
        let address = Uri::builder().scheme(scheme).authority(authority).path_and_query("/").build()?;
        Ok(Self {
            connector: https,
            address,
            host,
            pool: Pool::new(config.pool_max_idle_per_host, config.pool_idle_timeout),
            raw,
            timeout: config.timeout,
        })
    }

    /// How long the backend has to answer a request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `Host` sent when the client's is not.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Whether the HTTP/1 relay can reach this backend (plain `http`).
    pub fn relayable(&self) -> bool {
        self.raw.is_some()
    }

    /// An idle relay socket to the backend, or `None` (then [`Self::connect_raw`]).
    pub fn checkout_raw(&self) -> Option<tokio::net::TcpStream> {
        self.raw.as_ref()?.pool.checkout()
    }

    /// A new relay socket to the backend (an `http` one: see [`Self::relayable`]).
    pub async fn connect_raw(&self) -> Result<tokio::net::TcpStream, GatewayError> {
        let raw = self.raw.as_ref().ok_or(GatewayError::BadGateway("the backend is unreachable"))?;
        let tcp = tokio::net::TcpStream::connect(raw.address.as_str()).await.map_err(|e| unreachable(&e))?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// Takes back a relay socket whose exchange ended cleanly.
    pub fn keep_raw(&self, tcp: tokio::net::TcpStream) {
        if let Some(raw) = &self.raw {
            raw.pool.keep(tcp);
        }
    }

    /// Sends a prepared request (headers already rewritten) to the backend.
    /// `body_unread`: the client has a body still to send (see
    /// [`unread_body`]); if the backend answers before davgate has read all
    /// of it, the answer closes the client's connection.
    pub async fn send(&self, req: Request<Incoming>, body_unread: bool) -> Result<Response<Body>, GatewayError> {
        // Never reached past the scope check (no path); kept so that no path
        // can make hyper's client take a `2xx` as an upgrade of a backend
        // connection.
        if req.method() == Method::CONNECT {
            return Err(GatewayError::BadRequest("CONNECT is not forwarded"));
        }
        let client_version = req.version();
        let (parts, body) = req.into_parts();
        let (body, read_to_end) = ForwardedBody::new(body, body_unread);
        let mut req = Request::from_parts(parts, body);
        *req.uri_mut() = origin_form(req.uri())?;
        *req.version_mut() = Version::HTTP_11;
        req.headers_mut().entry(HOST).or_insert_with(|| self.host.clone());
        let (response, sender) = match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Err(_) => return Err(timed_out(self.timeout)),
            Ok(Err(SendError::Unreachable(e))) => return Err(unreachable(&e)),
            Ok(Err(SendError::Failed(e))) => return Err(failed(&e)),
            Ok(Ok(answer)) => answer,
        };
        let (mut parts, body) = response.into_parts();
        // Answer in the client's version: a backend speaking HTTP/1.0 (Radicale's
        // wsgiref) must not turn off keep-alive on the client's connection.
        parts.version = client_version;
        super::headers::strip_hop_by_hop(&mut parts.headers);
        if read_to_end.is_some_and(|read| !read.load(std::sync::atomic::Ordering::Relaxed)) {
            unread_body::close(&mut parts.headers);
        }
        let body = PooledBody::new(body, sender, self.pool.clone());
        Ok(Response::from_parts(parts, body.map_err(Into::into).boxed()))
    }

    /// Sends on an idle pooled connection, or a new one. A request that a
    /// pooled connection refused before writing any of it (the backend had
    /// closed it) is sent again; one that was written is never repeated.
    async fn exchange(
        &self,
        mut req: Request<ForwardedBody>,
    ) -> Result<(Response<Incoming>, SendRequest<ForwardedBody>), SendError> {
        while let Some(mut sender) = self.pool.checkout() {
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Failed(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        match sender.send_request(req).await {
            Ok(response) => Ok((response, sender)),
            Err(e) => Err(SendError::Failed(e)),
        }
    }

    async fn connect(&self) -> Result<SendRequest<ForwardedBody>, SendError> {
        let io = self.connector.clone().call(self.address.clone()).await.map_err(SendError::Unreachable)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| SendError::Unreachable(e.into()))?;
        // Runs on this worker's runtime: the connection is only ever driven
        // by the thread that sends on it.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A backend that cannot be reached, logged and as the client is told.
pub(crate) fn unreachable(e: &dyn std::fmt::Display) -> GatewayError {
    tracing::warn!(error = %e, "backend unreachable");
    GatewayError::BadGateway("the backend is unreachable")
}

/// A backend connection that failed before the response head was in.
pub(crate) fn failed(e: &dyn std::fmt::Display) -> GatewayError {
    tracing::warn!(error = %e, "backend request failed");
    GatewayError::BadGateway("the backend connection failed")
}

/// A backend that took longer than `timeout` to answer.
pub(crate) fn timed_out(timeout: Duration) -> GatewayError {
    tracing::warn!(?timeout, "backend timed out");
    GatewayError::GatewayTimeout
}

/// The upstream's own `Host` (RFC 9110 §7.2): its host, and its port unless
/// that is the scheme's default.
fn host_header(scheme: &http::uri::Scheme, authority: &http::uri::Authority) -> anyhow::Result<HeaderValue> {
    let default_port = if *scheme == http::uri::Scheme::HTTPS { 443 } else { 80 };
    let host = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_string(),
    };
    HeaderValue::from_str(&host).map_err(|_| anyhow::anyhow!("upstream.url: the host cannot be sent as a Host header"))
}

/// The request target as the backend gets it: path and query only (RFC 9112
/// §3.2.1), whatever form the client used. (Asterisk- and authority-form
/// have no path and were refused by the scope check already.)
fn origin_form(original: &Uri) -> Result<Uri, GatewayError> {
    match original.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => Ok(Uri::from(pq.clone())),
        Some(_) => Err(GatewayError::BadRequest("the request target cannot be forwarded")),
        // Absolute form with an empty path.
        None => Ok(Uri::from_static("/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_host_header_leaves_out_a_default_port() {
        let host = |url: &str| {
            let uri: Uri = url.parse().unwrap();
            host_header(uri.scheme().unwrap(), uri.authority().unwrap()).unwrap()
        };
        assert_eq!(host("http://dav.example:80"), "dav.example");
        assert_eq!(host("https://dav.example:443"), "dav.example");
        assert_eq!(host("https://dav.example:80"), "dav.example:80");
        assert_eq!(host("http://127.0.0.1:5232"), "127.0.0.1:5232");
        assert_eq!(host("http://[::1]:5232"), "[::1]:5232");
    }

    #[test]
    fn the_backend_gets_origin_form() {
        let target = |uri: &str| origin_form(&uri.parse().unwrap()).unwrap();
        assert_eq!(target("http://evil.example/a/b?c=d"), "/a/b?c=d");
        assert_eq!(target("/a%20b"), "/a%20b");
        assert_eq!(target("http://evil.example"), "/");
    }
}
