//! A backend that answers with scripted bytes, for what a well-behaved
//! HTTP library would never send (chunked trailers split anywhere,
//! interim responses, HTTP/1.0, a close instead of an answer), and keeps
//! every request exactly as it arrived.

#![allow(dead_code)]

use super::client::{content_length, read_head, read_more};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the backend does with one request.
pub enum Reply {
    /// Writes these bytes, then reads the next request.
    Send(Vec<u8>),
    /// Writes these bytes in pieces of this size, flushing each.
    Pieces(Vec<u8>, usize),
    /// Writes these bytes and closes the connection.
    SendAndClose(Vec<u8>),
    /// Closes the connection without answering.
    Close,
    /// Resets the connection (RST) without answering.
    Reset,
    /// Writes these bytes, then neither reads nor writes again (until the
    /// other side closes).
    Stall(Vec<u8>),
}

/// A request as the backend read it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection (from 0) and which request on it (from 0).
    pub connection: usize,
    pub index: usize,
    pub head: String,
    pub body: Vec<u8>,
}

impl Received {
    /// The values of header `name` (any case), in order.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
}

type Script = dyn Fn(&Received) -> Reply + Send + Sync;

#[derive(Clone)]
pub struct Scripted {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Scripted {
    /// Answers each request with `script(request)`.
    pub async fn start(script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log = received.clone();
        tokio::spawn(async move {
            for connection in 0.. {
                let Ok((tcp, _)) = listener.accept().await else { return };
                tokio::spawn(serve(tcp, connection, script.clone(), log.clone()));
            }
        });
        Scripted { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve(mut tcp: tokio::net::TcpStream, connection: usize, script: Arc<Script>, log: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::new();
    for index in 0.. {
        let Some((head, body)) = read_request(&mut tcp, &mut buf).await else { return };
        let request = Received { connection, index, head, body };
        let reply = script(&request);
        log.lock().unwrap().push(request);
        match reply {
            Reply::Send(bytes) => {
                if tcp.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Pieces(bytes, size) => {
                for piece in bytes.chunks(size) {
                    if tcp.write_all(piece).await.is_err() {
                        return;
                    }
                    tcp.flush().await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = tcp.write_all(&bytes).await;
                return;
            }
            Reply::Close => return,
            Reply::Reset => {
                // A zero linger never blocks: the close sends RST at once.
                #[allow(deprecated)]
                let _ = tcp.set_linger(Some(std::time::Duration::ZERO));
                return;
            }
            Reply::Stall(bytes) => {
                let _ = tcp.write_all(&bytes).await;
                let mut rest = Vec::new();
                let _ = tcp.read_to_end(&mut rest).await;
                return;
            }
        }
    }
}

/// One request: the head, and a body of its `Content-Length`.
async fn read_request(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let end = read_head(tcp, buf).await?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    if head.to_ascii_lowercase().contains("\r\ntransfer-encoding: chunked\r\n") {
        buf.drain(..end);
        return Some((head, read_chunked(tcp, buf).await?));
    }
    let length = content_length(&head);
    while buf.len() < end + length {
        read_more(tcp, buf).await?;
    }
    let body = buf[end..end + length].to_vec();
    buf.drain(..end + length);
    Some((head, body))
}

/// A chunked body, decoded (no extensions or trailers expected).
async fn read_chunked(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            read_more(tcp, buf).await?;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?, 16).ok()?;
        while buf.len() < line_end + 2 + size + 2 {
            read_more(tcp, buf).await?;
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..line_end + 2 + size + 2);
        if size == 0 {
            return Some(body);
        }
    }
}
