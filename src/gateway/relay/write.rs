//! Writing a response head with the first body bytes.

use std::io;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes `head` and then `body`: in one `writev` when the socket takes it
/// all, without first copying the body behind the head (a PROPFIND
/// answer's 8 KiB were a `memmove` per request). A writer without vectored
/// writes (none of davgate's sockets) gets them as one buffer, so a small
/// answer still leaves in one segment.
pub async fn head_and_body<W: AsyncWrite + Unpin>(io: &mut W, head: &mut Vec<u8>, body: &[u8]) -> io::Result<()> {
    if !io.is_write_vectored() {
        head.extend_from_slice(body);
        return io.write_all(head).await;
    }
    let mut slices = [io::IoSlice::new(head), io::IoSlice::new(body)];
    let mut left = &mut slices[..];
    // Drops leading empty slices; a trailing one goes once the rest is
    // written. Nothing left to write is not a zero-byte write.
    io::IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        let written = io.write_vectored(left).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut left, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A socket that takes at most `per_call` bytes a call, gathering
    /// them across slices as `writev` does (or only from the first slice,
    /// as a writer without vectored writes does).
    struct Trickle {
        written: Vec<u8>,
        per_call: usize,
        calls: usize,
        vectored: bool,
    }

    impl Trickle {
        fn new(per_call: usize, vectored: bool) -> Self {
            Self { written: Vec::new(), per_call, calls: 0, vectored }
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.calls += 1;
            let bufs = if self.vectored { bufs } else { &bufs[..bufs.len().min(1)] };
            let mut taken = 0;
            for buf in bufs {
                let n = buf.len().min(self.per_call - taken);
                self.written.extend_from_slice(&buf[..n]);
                taken += n;
            }
            Poll::Ready(Ok(taken))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";
    const BODY: &[u8] = b"0123456789abcdef";

    #[tokio::test]
    async fn head_and_body_go_out_whole_and_in_order_through_short_writes() {
        for vectored in [true, false] {
            let mut socket = Trickle::new(7, vectored);
            head_and_body(&mut socket, &mut HEAD.to_vec(), BODY).await.unwrap();
            assert_eq!(socket.written, [HEAD, BODY].concat(), "vectored: {vectored}");
            // Each call takes all it can: none is wasted on a slice's end.
            assert_eq!(socket.calls, (HEAD.len() + BODY.len()).div_ceil(7), "vectored: {vectored}");
        }
    }

    #[tokio::test]
    async fn head_and_body_take_one_write_when_the_socket_takes_them() {
        for vectored in [true, false] {
            let mut socket = Trickle::new(1 << 20, vectored);
            head_and_body(&mut socket, &mut HEAD.to_vec(), BODY).await.unwrap();
            assert_eq!((socket.written.len(), socket.calls), (HEAD.len() + BODY.len(), 1), "vectored: {vectored}");
        }
        let mut socket = Trickle::new(1 << 20, true);
        head_and_body(&mut socket, &mut HEAD.to_vec(), b"").await.unwrap();
        assert_eq!((socket.written.as_slice(), socket.calls), (HEAD, 1), "an empty body adds no write");
    }

    #[tokio::test]
    async fn a_socket_that_takes_nothing_is_an_error_not_a_spin() {
        let mut socket = Trickle::new(0, true);
        let e = head_and_body(&mut socket, &mut HEAD.to_vec(), BODY).await.unwrap_err();
        assert_eq!((e.kind(), socket.calls), (io::ErrorKind::WriteZero, 1));
    }
}
