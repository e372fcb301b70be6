//! Small HTTP helpers for tests: a hyper client, and raw TCP for requests
//! a well-behaved client would never send.

#![allow(dead_code)]

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn h1() -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http() }
    }

    /// HTTP/2 with prior knowledge over plain TCP (h2c).
    pub fn h2() -> Self {
        Self { client: Client::builder(TokioExecutor::new()).http2_only(true).build_http() }
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        self.try_send(req).await.expect("request failed")
    }

    /// For servers that may die under the request.
    pub async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Reply, Box<dyn std::error::Error>> {
        let res = self.client.request(req).await?;
        let status = res.status();
        let version = res.version();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await?.to_bytes();
        Ok(Reply { status, headers, body, version })
    }

    pub async fn call(&self, method: &str, url: &str, auth: Option<(&str, &str)>, headers: &[(&str, &str)]) -> Reply {
        let mut b = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(url);
        if let Some((u, p)) = auth {
            b = b.header("authorization", basic(u, p));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::new())).unwrap()).await
    }

    pub async fn get(&self, url: &str, user: &str, password: &str) -> Reply {
        self.call("GET", url, Some((user, password)), &[]).await
    }
}

/// Sends raw bytes and reads the whole answer (the request should say
/// `Connection: close`). Returns the response text.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), request).await
}

/// [`raw`] on a Unix socket (the admin socket).
pub async fn raw_unix(path: &std::path::Path, request: &[u8]) -> String {
    exchange(tokio::net::UnixStream::connect(path).await.unwrap(), request).await
}

async fn exchange(mut io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, request: &[u8]) -> String {
    io.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), io.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response from `tcp`: its head, and a body of its
/// `Content-Length` (none without one). `None` if the connection ends (or
/// nothing comes for 10 s) before the whole response.
pub async fn read_response(tcp: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let end = read_head(tcp, &mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length = content_length(&head);
    while buf.len() < end + length {
        read_more(tcp, &mut buf).await?;
    }
    Some((head, buf[end..end + length].to_vec()))
}

/// Reads into `buf` until it holds a whole head; returns where the head ends.
pub async fn read_head(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        read_more(tcp, buf).await?;
    }
}

/// The `Content-Length` of a head (0 without one).
pub fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse().expect("content-length"))
}

/// Reads once more into `buf`; `None` at the end or after 10 s without a byte.
pub async fn read_more(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
        _ => None,
    }
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}
