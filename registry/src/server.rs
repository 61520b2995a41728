//! The accept loop: HTTP/1.1 over hyper with the timeouts and the connection limit of
//! [`ConnectionLimits`], and graceful shutdown.
//!
//! Every connection is in one of three phases, and each phase has its own bound:
//! - idle (no request in flight, nothing of the next request received): closed after
//!   `idle_timeout`, also before its first request;
//! - reading a head (some bytes of the next request arrived): the head must be complete
//!   within `header_read_timeout` of its first byte, or the connection is cut off;
//! - busy (a request is in flight): the request body must deliver bytes at least every
//!   `body_idle_timeout` while the handler waits for them, or the body ends with an error
//!   (an upload keeps what arrived and stays resumable).
//!
//! hyper's own `header_read_timeout` is not used: its clock starts whenever the connection
//! waits for a head, idle keep-alive time included, so it could not tell a slow head from
//! an idle connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use pier_oci::{ErrorCode, OciError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::ConnectionLimits;
use crate::limits::{
    ACCEPT_ERROR_BACKOFF, FD_RESERVE, FDS_PER_CONNECTION, MAX_HEAD_BYTES, MAX_REFUSING, REFUSED_DRAIN_BYTES,
    REFUSED_LINGER, REFUSED_RETRY_AFTER, SHUTDOWN_GRACE,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serve `router` on `listener` until `shutdown` resolves; then stop accepting, let
/// requests in flight finish (up to [`SHUTDOWN_GRACE`]) and return.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits.clone());
    let max_connections = fit_to_open_file_limit(limits.max_connections);
    let permits = Arc::new(Semaphore::new(max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let refusal = Bytes::from(refusal_response());
    let mut http = http1::Builder::new();
    // Bounded heads; timeouts are the watchdog's (see the module comment), so hyper runs
    // without a timer.
    http.max_header_size(MAX_HEAD_BYTES).header_read_timeout(None);
    let http = Arc::new(http);
    let (stop_tx, stop_rx) = watch::channel(());
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    // Log a streak of failed accepts or refused connections once, not per connection.
    let mut accept_failing = false;
    let mut refused = 0u64;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!("a connection task panicked: {e}");
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            // The client gave up before it was accepted: nothing to do about it.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if !accept_failing {
                    tracing::warn!("cannot accept connections: {e}; retrying every {ACCEPT_ERROR_BACKOFF:?}");
                    accept_failing = true;
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                }
            }
        };
        if accept_failing {
            tracing::info!("accepting connections again");
            accept_failing = false;
        }
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                if refused > 0 {
                    tracing::info!("serving connections again after refusing {refused}");
                    refused = 0;
                }
                let conn = Connection {
                    http: http.clone(),
                    router: router.clone(),
                    limits: limits.clone(),
                    peer,
                    _permit: permit,
                };
                tasks.spawn(conn.serve(stream, stop_rx.clone()));
            }
            Err(_) => {
                if refused == 0 {
                    tracing::warn!("{max_connections} connections open: refusing more with 503");
                }
                refused += 1;
                // Each lingering refusal holds a descriptor; past the bound, just close.
                if let Ok(slot) = refusing.clone().try_acquire_owned() {
                    tasks.spawn(refuse(stream, refusal.clone(), slot));
                }
            }
        }
    }
    // New connections are refused by the kernel from here on.
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    drop(stop_tx);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("in-flight requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
}

/// Errors of one connection that `accept()` reports; the listener itself is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// `max_connections`, lowered if the process's open-file limit could not hold that many
/// connections: the limit must bite before `accept()` starts failing with EMFILE, or new
/// clients (a health check too) would wait in the backlog instead of getting an answer.
fn fit_to_open_file_limit(max_connections: usize) -> usize {
    let fitted = connections_fitting(max_connections, open_file_limit());
    if fitted < max_connections {
        tracing::warn!(
            "serving at most {fitted} connections, not {max_connections}: the open-file limit is too low \
             (raise it with `ulimit -n` or LimitNOFILE=)"
        );
    }
    fitted
}

/// How many of `max_connections` fit in `open_files` descriptors (at least one).
fn connections_fitting(max_connections: usize, open_files: Option<usize>) -> usize {
    let fits = open_files.map_or(usize::MAX, |files| {
        files.saturating_sub(FD_RESERVE) / FDS_PER_CONNECTION
    });
    max_connections.min(fits).max(1)
}

/// The soft open-file limit (Linux; `None` elsewhere or when unlimited). Read from procfs
/// because `getrlimit` would need `unsafe`.
fn open_file_limit() -> Option<usize> {
    soft_open_file_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft limit in a `/proc/<pid>/limits` text.
fn soft_open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The complete answer of a connection over the limit.
fn refusal_response() -> Vec<u8> {
    let error = OciError::new(ErrorCode::Unavailable).message("too many connections");
    let body = serde_json::to_vec(&error.body()).expect("error body serializes");
    let mut response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: {}\r\nconnection: close\r\n\r\n",
        body.len(),
        REFUSED_RETRY_AFTER.as_secs()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

/// Answer 503 without reading the request first, then close. Bounded in time
/// ([`REFUSED_LINGER`]) and in bytes read.
async fn refuse(mut stream: TcpStream, response: Bytes, _slot: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(REFUSED_LINGER, async {
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        // Wait for the client to close after reading the answer, discarding its request.
        let mut sink = [0u8; 4096];
        let mut left = REFUSED_DRAIN_BYTES;
        loop {
            let n = stream.read(&mut sink).await?;
            if n == 0 || n >= left {
                return Ok::<_, io::Error>(());
            }
            left -= n;
        }
    })
    .await;
}

/// One accepted connection within the limit.
struct Connection {
    http: Arc<http1::Builder>,
    router: Router,
    limits: Arc<ConnectionLimits>,
    peer: SocketAddr,
    /// Held while the connection is open.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, mut stop: watch::Receiver<()>) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let router = TowerToHyperService::new(self.router);
        let (peer, body_idle) = (self.peer, self.limits.body_idle_timeout);
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let request = requests.request_started();
            let mut req = req.map(|body| IdleTimeout::new(body, body_idle));
            // Handlers read the client's address from here (audit log, login throttling).
            req.extensions_mut().insert(ConnectInfo(peer));
            let call = router.call(req);
            async move {
                let response = call.await?;
                // The request counts as in flight until its answer is written out.
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    inner: body,
                    _request: request,
                }))
            }
        });
        let mut conn = pin!(self.http.serve_connection(io, service));
        let mut stopping = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(peer = %self.peer, "connection ended: {e}");
                    }
                    return;
                }
                why = watchdog(&activity, &self.limits) => {
                    // Nothing is in flight: dropping the connection loses no answer.
                    tracing::debug!(peer = %self.peer, "closing connection: {why}");
                    return;
                }
                // Sent, or the sender dropped: either way the server is stopping. hyper
                // closes an idle connection at once and a busy one after its answer.
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Where a connection is, for its timeouts (see the module comment).
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in flight and nothing of the next one received, since then.
    Idle(Instant),
    /// The first bytes of a request head arrived then.
    Head(Instant),
    /// This many requests in flight (their answers not yet written out).
    Busy(usize),
}

struct Activity {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when the phase changes (its deadline with it).
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // A panic while holding this lock leaves a valid phase behind.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> RequestInFlight {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Idle(_) | Phase::Head(_) => Phase::Busy(1),
        };
        self.changed.notify_one();
        RequestInFlight(self.clone())
    }

    /// When the connection is to be closed, and why; `None` while a request is in flight.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        match *self.phase() {
            Phase::Idle(since) => Some((since + limits.idle_timeout, "idle")),
            Phase::Head(since) => Some((since + limits.header_read_timeout, "request head too slow")),
            Phase::Busy(_) => None,
        }
    }
}

/// Marks a request in flight until dropped (with its answer's body, once written out).
struct RequestInFlight(Arc<Activity>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
        self.0.changed.notify_one();
    }
}

/// Resolves when the connection has been idle or reading a head for too long.
async fn watchdog(activity: &Activity, limits: &ConnectionLimits) -> &'static str {
    loop {
        // A change after this read leaves a permit in `changed`, so it is not missed.
        match activity.deadline(limits) {
            Some((at, why)) if at <= Instant::now() => return why,
            Some((at, _)) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = activity.changed.notified() => {}
                }
            }
            None => activity.changed.notified().await,
        }
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The request body went quiet for longer than `body_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?}")]
pub(crate) struct BodyIdle(Duration);

/// A request body that ends with [`BodyIdle`] when no data arrives for `timeout` while it
/// is being waited on. Time the handler spends elsewhere (writing to disk) does not count:
/// the clock starts when a poll finds nothing to read.
struct IdleTimeout<B> {
    inner: B,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    done: bool,
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            timer: None,
            waiting: false,
            done: false,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    this.waiting = true;
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        // Ended for good: whoever reads on (an upload's drain) sees the end.
                        this.done = true;
                        Poll::Ready(Some(Err(Box::new(BodyIdle(this.timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body, holding its request's [`RequestInFlight`] until written out.
struct Tracked<B> {
    inner: B,
    _request: RequestInFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_open_file_limit() {
        assert_eq!(connections_fitting(1024, None), 1024);
        assert_eq!(connections_fitting(1024, Some(1 << 20)), 1024);
        assert_eq!(
            connections_fitting(1024, Some(1024)),
            (1024 - FD_RESERVE) / FDS_PER_CONNECTION
        );
        assert_eq!(connections_fitting(1024, Some(10)), 1);
        assert_eq!(connections_fitting(0, None), 1);
    }

    #[test]
    fn soft_open_file_limit_is_parsed() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127368               127368               processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_open_file_limit(limits), Some(1024));
        let unlimited = "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(soft_open_file_limit(unlimited), None);
        assert_eq!(soft_open_file_limit(""), None);
    }

    #[test]
    fn refusal_is_a_complete_response() {
        let r = String::from_utf8(refusal_response()).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["errors"][0]["code"], "UNAVAILABLE");
    }

    /// A body that delivers one frame and then nothing.
    struct OneThenStall(bool);

    impl Body for OneThenStall {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"abc")))))
            }
        }
    }

    #[tokio::test]
    async fn a_quiet_body_ends_with_an_error_then_nothing() {
        use http_body_util::BodyExt as _;
        let mut body = IdleTimeout::new(OneThenStall(false), Duration::from_millis(50));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyIdle>(), "{err}");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }
}
