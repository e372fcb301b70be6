//! The upstream client: pooled, keep-alive, `http` or `https` backends.
//!
//! Requests are always sent as HTTP/1.1 with an absolute URI (a request
//! that arrived over h2 would otherwise fail with `UserUnsupportedVersion`).
//! Bodies stream both ways: nothing here buffers a body.

use crate::config::UpstreamConfig;
use crate::error::{Body, GatewayError};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::time::Duration;

pub struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    timeout: Duration,
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
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .build(https);
        let url = &config.url;
        Ok(Self {
            client,
            scheme: url.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
            authority: url.authority().cloned().ok_or_else(|| anyhow::anyhow!("upstream.url: has no host"))?,
            timeout: config.timeout,
        })
    }

    fn target(&self, original: &Uri) -> Result<Uri, GatewayError> {
        let path_and_query = original.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| GatewayError::BadRequest("the request target cannot be forwarded"))
    }

    /// Sends a prepared request (headers already rewritten) to the backend.
    pub async fn send(&self, mut req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
        let client_version = req.version();
        *req.uri_mut() = self.target(req.uri())?;
        *req.version_mut() = Version::HTTP_11;
        let response = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "backend timed out");
                return Err(GatewayError::GatewayTimeout);
            }
            Ok(Err(e)) if e.is_connect() => {
                tracing::warn!(error = %e, "backend unreachable");
                return Err(GatewayError::BadGateway("the backend is unreachable"));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "backend request failed");
                return Err(GatewayError::BadGateway("the backend connection failed"));
            }
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = response.into_parts();
        // Answer in the client's version: a backend speaking HTTP/1.0 (Radicale's
        // wsgiref) must not turn off keep-alive on the client's connection.
        parts.version = client_version;
        super::headers::strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.map_err(Into::into).boxed()))
    }
}
