//! Connections that end when the collector stops.
//!
//! tonic's graceful stop waits for every open stream to finish, and an agent's `Ship` stream never
//! finishes by itself, so a stop with agents connected used to wait out the whole drain deadline
//! and then leave the store writer running. Each accepted connection is therefore wrapped in
//! [`Draining`]: once the stop token is cancelled its reads return end-of-file, the HTTP/2
//! connection closes, the stream handlers drop their writer handles and the writer thread commits
//! and stops.
//!
//! Invariant: nothing is lost. Writes still go through after the stop (acks already due are sent);
//! a batch whose ack did not leave is resent by the agent after it reconnects and dropped as a
//! duplicate by the writer (ARCHITECTURE.md invariant 2).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

/// A connection whose reads end (EOF) once `stop` is cancelled.
pub struct Draining<T> {
    inner: T,
    stop: CancellationToken,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
}

// === impl Draining ===

impl<T> Draining<T> {
    /// Wraps `inner`; its reads end when `stop` is cancelled.
    pub fn new(inner: T, stop: CancellationToken) -> Self {
        let stopped = Box::pin(stop.clone().cancelled_owned());
        Draining {
            inner,
            stop,
            stopped,
        }
    }

    /// True once the stop was requested (and registers the waker until then).
    fn stopping(&mut self, cx: &mut Context<'_>) -> bool {
        self.stop.is_cancelled() || self.stopped.as_mut().poll(cx).is_ready()
    }
}

impl<T: Connected> Connected for Draining<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Draining<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.stopping(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Draining<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
