//! The signed-in user's calendars and address books, listed from the
//! backend (PROPFIND Depth 1 on each service's home, as that user), so the
//! create form can offer them by name.

use crate::config::UpstreamConfig;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::collections::BTreeMap;
use std::time::Duration;

const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:displayname/></d:prop></d:propfind>"#;
/// A listing is a convenience: never hold the page up for long.
const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_LISTING_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Decoded absolute path, as scopes store it (`/calendars/alice/work/`).
    pub path: String,
    pub name: String,
    pub kind: &'static str,
}

pub struct Lister {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Uri,
    identity_header: HeaderName,
    /// Service → home patterns (`/calendars/{user}/`).
    services: BTreeMap<String, Vec<String>>,
}

impl Lister {
    pub fn new(config: &UpstreamConfig, services: &BTreeMap<String, Vec<String>>) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::gateway::upstream::tls_config(config.ca_file.as_deref(), "upstream.ca_file")?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            base: config.url.clone(),
            identity_header: HeaderName::from_bytes(config.identity_header.as_bytes())?,
            services: services.clone(),
        })
    }

    /// Every calendar and address book under the user's service homes;
    /// empty when the backend cannot say.
    pub async fn list(&self, user: &str) -> Vec<Collection> {
        let mut found = Vec::new();
        let segment = utf8_percent_encode(user, NON_ALPHANUMERIC).to_string();
        for pattern in self.services.values().flatten() {
            if !pattern.ends_with('/') || !pattern.contains("{user}") {
                continue;
            }
            let path = pattern.replace("{user}", &segment);
            match self.propfind(&path, user).await {
                Ok(xml) => found.extend(parse_multistatus(&xml, &pattern.replace("{user}", user))),
                Err(e) => tracing::debug!(path, error = %e, "cannot list collections"),
            }
        }
        found.sort_by(|a, b| a.kind.cmp(b.kind).then_with(|| a.name.cmp(&b.name)));
        found.dedup_by(|a, b| a.path == b.path);
        found
    }

    async fn propfind(&self, path: &str, user: &str) -> anyhow::Result<String> {
        let uri = Uri::builder()
            .scheme(self.base.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP))
            .authority(self.base.authority().cloned().ok_or_else(|| anyhow::anyhow!("no host"))?)
            .path_and_query(path)
            .build()?;
        let req = Request::builder()
            .method(Method::from_bytes(b"PROPFIND")?)
            .uri(uri)
            .header("depth", "1")
            .header(http::header::CONTENT_TYPE, "application/xml; charset=utf-8")
            .header(self.identity_header.clone(), HeaderValue::from_bytes(user.as_bytes())?)
            .body(Full::new(Bytes::from_static(PROPFIND_BODY.as_bytes())))?;
        let res = tokio::time::timeout(TIMEOUT, self.client.request(req)).await??;
        if res.status().as_u16() != 207 {
            anyhow::bail!("status {}", res.status());
        }
        let body = Limited::new(res.into_body(), MAX_LISTING_BYTES).collect().await.map_err(|e| anyhow::anyhow!(e))?;
        Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
    }
}

/// Calendars and address books in a PROPFIND answer, except `home` itself.
pub fn parse_multistatus(xml: &str, home: &str) -> Vec<Collection> {
    let Ok(doc) = roxmltree::Document::parse(xml) else { return Vec::new() };
    let dav = |n: &roxmltree::Node, name: &str| n.is_element() && n.has_tag_name(("DAV:", name));
    let mut out = Vec::new();
    for response in doc.descendants().filter(|n| dav(n, "response")) {
        let Some(href) = response.children().find(|n| dav(n, "href")).and_then(|n| n.text()) else { continue };
        let raw_path = href.trim().parse::<Uri>().map(|u| u.path().to_string()).unwrap_or_else(|_| href.to_string());
        let Ok(path) = percent_decode_str(&raw_path).decode_utf8() else { continue };
        let mut path = path.into_owned();
        if !path.ends_with('/') {
            path.push('/');
        }
        if path == home || crate::gateway::scope::check_pattern(&path).is_err() || path.contains("{user}") {
            continue;
        }
        let props: Vec<roxmltree::Node> = response
            .descendants()
            .filter(|n| dav(n, "propstat"))
            .filter(|ps| {
                ps.descendants().find(|n| dav(n, "status")).and_then(|n| n.text()).is_some_and(|s| s.contains(" 200"))
            })
            .flat_map(|ps| ps.descendants())
            .collect();
        let kind = props.iter().find(|n| dav(n, "resourcetype")).and_then(|rt| {
            rt.children().find_map(|c| match (c.tag_name().namespace(), c.tag_name().name()) {
                (Some("urn:ietf:params:xml:ns:caldav"), "calendar") => Some("calendar"),
                (Some("urn:ietf:params:xml:ns:carddav"), "addressbook") => Some("address book"),
                _ => None,
            })
        });
        let Some(kind) = kind else { continue };
        let fallback = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        let name = props
            .iter()
            .find(|n| dav(n, "displayname"))
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .unwrap_or(fallback);
        out.push(Collection { path, name: name.chars().take(80).collect(), kind });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_calendars_and_address_books_by_name() {
        let xml = r#"<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav">
 <response><href>/alice/</href><propstat><prop><resourcetype><collection/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/alice/work%20cal/</href><propstat><prop><resourcetype><collection/><C:calendar/></resourcetype><displayname>Work</displayname></prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>http://example.org/alice/contacts/</href><propstat><prop><resourcetype><collection/><CR:addressbook/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><displayname/></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>
 <response><href>/alice/../bob/</href><propstat><prop><resourcetype><C:calendar/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat></response>
</multistatus>"#;
        let found = parse_multistatus(xml, "/alice/");
        assert_eq!(
            found,
            vec![
                Collection { path: "/alice/work cal/".into(), name: "Work".into(), kind: "calendar" },
                Collection { path: "/alice/contacts/".into(), name: "contacts".into(), kind: "address book" },
            ]
        );
        assert!(parse_multistatus("not xml", "/").is_empty());
    }
}
