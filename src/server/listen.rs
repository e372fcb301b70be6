//! The gateway's listening sockets. On Linux, one per worker, all bound to
//! one address with `SO_REUSEPORT`: the kernel assigns each new connection
//! to one socket by a hash of its addresses, so connections spread over the
//! workers and a new one wakes only the worker it landed on. (With one
//! shared socket every worker's event loop woke for each connection, and
//! one worker could end up with them all.) Elsewhere `SO_REUSEPORT` does
//! not balance TCP, so there is one socket that the workers share.
//!
//! Never joins a listener it did not create: an address in use is refused,
//! even by another `SO_REUSEPORT` group. The reverse cannot be prevented:
//! while davgate listens, a process running as the same user may join its
//! group with `SO_REUSEPORT` and take a share of the connections (Linux
//! allows that only to the same user id, which could replace davgate's
//! binary anyway).

use std::net::SocketAddr;
use tokio::net::TcpSocket;

/// Pending connections each socket queues (what `TcpListener::bind` uses).
const BACKLOG: u32 = 1024;

/// Whether accepted connections get TCP_NODELAY from the listening socket
/// (Linux copies it); elsewhere the accept loop sets it on each one.
pub const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Listening sockets made by [`bind`], so each has TCP_NODELAY set.
pub struct GatewaySockets(pub(super) Vec<std::net::TcpListener>);

impl GatewaySockets {
    /// The address every socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0[0].local_addr()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Binds one socket per worker (`workers`, at least one; one in all off
/// Linux) to `addr`; port 0 picks one free port for all of them. Must be
/// called within a Tokio runtime.
pub fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<GatewaySockets> {
    let count = if cfg!(target_os = "linux") { workers.max(1) } else { 1 };
    // Port 0 needs no probe: the kernel never picks a port that a
    // listener, reuseport or not, already holds.
    if addr.port() != 0 {
        probe(addr)?;
    }
    let first = bind_one(addr, count > 1)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(addr, true)?);
    }
    Ok(GatewaySockets(sockets))
}

/// Fails with `AddrInUse` on any listener already at `addr`: a bind
/// without `SO_REUSEPORT` conflicts with every listener, reuseport or not.
/// (`SO_REUSEADDR`, as every bind here, so a restart is not refused for
/// connections of the previous run still in TIME_WAIT.) A reuseport
/// listener appearing between the probe and the bind would still be
/// joined; that window is a few system calls long.
fn probe(addr: SocketAddr) -> std::io::Result<()> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)
}

fn bind_one(addr: SocketAddr, reuseport: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuseport {
        #[cfg(target_os = "linux")]
        socket.set_reuseport(true)?;
    }
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn listeners(sockets: GatewaySockets) -> Vec<TcpListener> {
        sockets.0.into_iter().map(|s| TcpListener::from_std(s).unwrap()).collect()
    }

    #[tokio::test]
    async fn connections_spread_over_every_socket() {
        let sockets = listeners(bind("127.0.0.1:0".parse().unwrap(), 2).unwrap());
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

    #[tokio::test]
    async fn an_address_in_use_is_refused_even_for_another_reuseport_group() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = first.local_addr().unwrap();
        let again = bind(addr, 2).err().expect("a second group on the same port");
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = bind(plain.local_addr().unwrap(), 1).err().expect("a port held by a plain listener");
        assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn accepted_connections_inherit_nodelay() {
        let sockets = listeners(bind("127.0.0.1:0".parse().unwrap(), 1).unwrap());
        let _client = tokio::net::TcpStream::connect(sockets[0].local_addr().unwrap()).await.unwrap();
        let (accepted, _) = sockets[0].accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
