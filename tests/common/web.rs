//! A cookie-keeping form client for the self-service page: what a browser
//! does, minus the rendering.

#![allow(dead_code)]

use super::client::{Http, Reply};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use std::collections::BTreeMap;

pub struct WebClient {
    http: Http,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
    /// Extra headers on every request (an SSO front's user header).
    pub headers: Vec<(String, String)>,
}

/// The value of the first `name="field" value="..."` input in a page.
pub fn input_value(html: &str, field: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{field}\" value=\""))?;
    let rest = &html[at + field.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The text of the element with `id`, tags stripped.
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest.find("</")?;
    Some(rest[start..end].trim().to_string())
}

impl WebClient {
    pub fn new(base: &str) -> Self {
        Self {
            http: Http::h1(),
            base: base.trim_end_matches('/').to_string(),
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    fn remember(&mut self, reply: &Reply) {
        for v in reply.headers.get_all("set-cookie") {
            let text = v.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
    }

    async fn send(&mut self, method: Method, path: &str, body: Option<String>) -> Reply {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let mut b = Request::builder().method(method).uri(url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            b = b.header("cookie", jar.join("; "));
        }
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if body.is_some() {
            b = b.header("content-type", "application/x-www-form-urlencoded");
        }
        let reply = self.http.send(b.body(Full::new(Bytes::from(body.unwrap_or_default()))).unwrap()).await;
        self.remember(&reply);
        reply
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.send(Method::POST, path, Some(body)).await
    }

    /// GETs `page`, then POSTs `fields` to `action` with the page's CSRF token.
    pub async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Reply {
        let html = self.get(page).await.text();
        let csrf = input_value(&html, "csrf").unwrap_or_else(|| panic!("no csrf field on {page}:\n{html}"));
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    /// Signs in with a login password (no second factor); panics otherwise.
    pub async fn sign_in(&mut self, user: &str, password: &str) {
        let reply = self.submit("/account/login", "/account/login", &[("user", user), ("password", password)]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    }

    /// Creates an app password on the page and returns it as shown once.
    pub async fn create_password(&mut self, fields: &[(&str, &str)]) -> String {
        let reply = self.submit("/account/new", "/account/new", fields).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let shown = self.get("/account/created").await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
        element_text(&shown.text(), "app-password").expect("the password is on the page")
    }
}
