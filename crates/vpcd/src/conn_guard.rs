//! Connection hygiene below HTTP (issue 11, finding 2): a cap on
//! concurrent connections and an idle timeout, as an axum-server acceptor
//! wrapped around the plain or TLS one.
//!
//! hyper bounds how long a client may take to send its headers (the
//! header-read timeout, set in `server.rs`), and the handlers in `http.rs`
//! bound the body and the whole request. What neither sees is a connection
//! with no request on it: one that never sends a byte, a keep-alive
//! connection left open after its last answer, or an HTTP/2 connection kept
//! alive by pings alone. [`Guard`] closes those once they have had no request
//! in progress for the idle timeout, counted from the connection's start or
//! the end of its last request, whatever bytes arrive meanwhile.
//!
//! The cap: a connection over `max_connections` waits for a free slot for at
//! most `slot_wait` and is then closed without an answer; the connections
//! already being served are not slowed down by it.
//!
//! # Layout
//! - [`Guard`]: the acceptor (slot, then the inner acceptor, then the
//!   wrappers).
//! - `Activity`: one connection's requests in progress and when the last
//!   one ended, shared by the two wrappers.
//! - `Counted`: the connection's service, keeping `Activity` up to date.
//! - `IdleIo`: the connection's stream, failing its reads and writes once
//!   the connection has been idle too long (hyper then closes it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The limits one listener enforces on its connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once (each listener has its own cap).
    pub(crate) max_connections: usize,
    /// How long a connection over the cap waits for a slot.
    pub(crate) slot_wait: Duration,
    /// How long a connection may stay without a request in progress.
    pub(crate) idle_timeout: Duration,
}

/// The acceptor: a slot, then `inner` (TLS or nothing), then the idle
/// watch on the stream and the service.
#[derive(Clone)]
pub(crate) struct Guard<A> {
    inner: A,
    slots: Arc<Semaphore>,
    limits: Limits,
}

impl<A> Guard<A> {
    pub(crate) fn new(inner: A, limits: Limits) -> Self {
        Guard {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
        }
    }
}

impl<A, I, S> Accept<I, S> for Guard<A>
where
    A: Accept<I, S> + Clone + Send + Sync + 'static,
    A::Future: Send,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = IdleIo<A::Stream>;
    type Service = Counted<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let slot = match tokio::time::timeout(
                this.limits.slot_wait,
                this.slots.clone().acquire_owned(),
            )
            .await
            {
                Ok(Ok(slot)) => slot,
                // Dropping the stream closes the connection.
                _ => {
                    tracing::debug!(
                        max = this.limits.max_connections,
                        "connection closed: no free connection slot"
                    );
                    return Err(io::Error::other("no free connection slot"));
                }
            };
            // The idle clock starts before the TLS handshake, which has its
            // own timeout.
            let activity = Arc::new(Activity::new());
            let (stream, service) = this.inner.accept(stream, service).await?;
            Ok((
                IdleIo {
                    inner: stream,
                    activity: activity.clone(),
                    idle: this.limits.idle_timeout,
                    timer: Box::pin(tokio::time::sleep(this.limits.idle_timeout)),
                    _slot: slot,
                },
                Counted {
                    inner: service,
                    activity,
                },
            ))
        })
    }
}

/// One connection's requests in progress, and when the connection last
/// became idle (milliseconds since `start`).
struct Activity {
    start: Instant,
    in_progress: AtomicUsize,
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            in_progress: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn begin(&self) {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        self.touch();
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(ms, Ordering::SeqCst);
    }

    /// When the connection times out if nothing starts before: `None`
    /// while a request is in progress (the request timeouts bound it).
    fn deadline(&self, idle: Duration) -> Option<Instant> {
        if self.in_progress.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(self.start + since + idle)
    }
}

/// The connection's service: every request counts as activity from its
/// start to its answer (or its cancellation).
#[derive(Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// Ends the request's activity when dropped, answered or not.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl<S, R> tower_service::Service<R> for Counted<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.activity.begin();
        let guard = InProgress(self.activity.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let _guard = guard;
            fut.await
        })
    }
}

/// The connection's stream. While its reads or writes wait, it also waits
/// for the idle deadline; past it, they fail and hyper closes the
/// connection.
pub(crate) struct IdleIo<T> {
    inner: T,
    activity: Arc<Activity>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<T> IdleIo<T> {
    /// Whether the connection has been idle too long; otherwise the timer
    /// is armed for the current deadline (waking `cx`).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            match self.activity.deadline(self.idle) {
                Some(at) if at <= now => return true,
                Some(at) => self.timer.as_mut().reset(at),
                None => self.timer.as_mut().reset(now + self.idle),
            }
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_deadline_counts_from_the_start_and_pauses_during_a_request() {
        let a = Activity::new();
        let idle = Duration::from_secs(30);
        let first = a.deadline(idle).unwrap();
        assert_eq!(first, a.start + idle);
        a.begin();
        a.begin();
        assert_eq!(a.deadline(idle), None);
        a.end();
        assert_eq!(a.deadline(idle), None, "one request is still in progress");
        a.end();
        assert!(a.deadline(idle).unwrap() >= first);
    }
}
