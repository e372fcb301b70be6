//! The gateway's listening sockets: one per worker, all bound to one
//! address with `SO_REUSEPORT`, so the kernel spreads new connections evenly
//! over the workers and an incoming connection wakes only the worker whose
//! socket it landed on. (With one shared socket every worker's event loop
//! woke for each connection, and one worker could end up with them all.)

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections each socket queues (what `TcpListener::bind` uses).
const BACKLOG: u32 = 1024;

/// Whether accepted connections get TCP_NODELAY from the listening socket;
/// elsewhere the accept loop sets it on each one.
pub const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Binds `count` sockets to `addr` (port 0: one free port for all of them).
///
/// An address already in use is refused, even by another `SO_REUSEPORT`
/// group of the same user: a second davgate started on the same port fails
/// instead of silently taking a share of the connections.
pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        // A plain bind fails on any listener already there.
        drop(std::net::TcpListener::bind(addr)?);
    }
    let first = bind_one(addr)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(addr)?);
    }
    Ok(sockets)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    // Linux copies TCP_NODELAY to accepted connections: one setsockopt per
    // socket instead of one per connection (see `NODELAY_INHERITED`).
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_spread_over_every_socket() {
        let sockets = bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = sockets[0].local_addr().unwrap();
        assert_eq!(sockets[1].local_addr().unwrap(), addr);
        let mut clients = Vec::new();
        for _ in 0..32 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // The kernel hashes each connection to one socket; 32 connections
        // all landing on one of two has a chance of 2^-31.
        let mut accepted = [0; 2];
        for _ in 0..32 {
            tokio::select! {
                r = sockets[0].accept() => { r.unwrap(); accepted[0] += 1; }
                r = sockets[1].accept() => { r.unwrap(); accepted[1] += 1; }
            }
        }
        assert!(accepted.iter().all(|&n| n > 0), "accepted per socket: {accepted:?}");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_connections_inherit_nodelay() {
        let sockets = bind("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let _client = tokio::net::TcpStream::connect(sockets[0].local_addr().unwrap()).await.unwrap();
        let (accepted, _) = sockets[0].accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    #[tokio::test]
    async fn an_address_in_use_is_refused_even_for_another_reuseport_group() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = first[0].local_addr().unwrap();
        let again = bind(addr, 2).expect_err("a second group on the same port");
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = bind(plain.local_addr().unwrap(), 1).expect_err("a port held by a plain listener");
        assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
    }
}
