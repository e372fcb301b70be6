//! A recording backend: answers every request and keeps what it saw, so a
//! test can assert what reached (or never reached) the backend.
//!
//! Paths with a meaning: `/slow/...` waits 5 s; `/download?bytes=N`
//! streams N bytes; `/sink/...` counts the body without keeping it.

#![allow(dead_code)]

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body_len: u64,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted (to see upstream pooling).
    pub connections: Arc<AtomicUsize>,
}

type Body = BoxBody<Bytes, std::io::Error>;

const CHUNK: usize = 64 * 1024;

fn download(total: u64) -> Body {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let chunks = stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(CHUNK as u64);
            Some((Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n as usize))), left - n))
        }
    });
    StreamBody::new(chunks).boxed()
}

async fn answer(req: Request<Incoming>, seen: Arc<Mutex<Vec<Seen>>>) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let keep = !path.starts_with("/sink");
    let mut kept = Vec::new();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            body_len += data.len() as u64;
            if keep {
                kept.extend_from_slice(&data);
            }
        }
    }
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body_len,
        body: Bytes::from(kept),
    });
    if path.starts_with("/slow") {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    let body = if path == "/download" {
        let bytes = parts.uri.query().and_then(|q| q.strip_prefix("bytes=")).and_then(|n| n.parse().ok()).unwrap_or(0);
        download(bytes)
    } else {
        http_body_util::Full::new(Bytes::from(format!("{} {path} {body_len}\n", parts.method)))
            .map_err(|never| match never {})
            .boxed()
    };
    Response::builder()
        .header("x-backend", "recorder")
        .header("connection", "x-backend-hop")
        .header("x-backend-hop", "1")
        .body(body)
        .unwrap()
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    pub fn serve(listener: tokio::net::TcpListener) -> Recorder {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let seen = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(answer(req, seen).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Recorder { addr, seen, connections }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}
