//! The connection loop: accepts TCP connections and serves HTTP/1.1 on each with hyper, with
//! the limits that keep a client from taking the service down (`axum::serve` has none of them).
//!
//! - **Connections**: at most `max_connections` open at once, capped by the process's
//!   file-descriptor limit less [`FD_RESERVE`] (the registry, the Kafka clients, the
//!   validator's pipes need theirs), so the accept loop never meets `EMFILE` through its own
//!   connections. Beyond the cap a new connection is closed at once; open ones keep working.
//! - **Header read timeout**: a request's head must arrive within `header_read_timeout_ms` of
//!   its first byte — of the connection's opening for the first request (slowloris).
//! - **Idle timeout**: a keep-alive connection with no request for `idle_timeout_ms` is closed,
//!   and so is one whose client stops reading a response for that long.
//! - **Accept errors** (`EMFILE` from other fds, `ENOBUFS`...) pause accepting with a growing
//!   back-off instead of spinning; logged once per burst, counted always.
//!
//! Why not hyper's own `header_read_timeout`: hyper 1 starts that timer as soon as it waits
//! for a request head, including on an idle keep-alive connection, so it would also be the
//! idle timeout. The two must differ (a short header timeout against slowloris; an idle
//! timeout longer than a load balancer's), so a per-connection watchdog ([`Activity`]) keeps
//! both, fed by the connection's reads and by the requests and responses passing through.
//!
//! Body timeouts are per request (`limits::deadline`): 408 on every route.
//!
//! Over 400 lines on purpose: one concept (a connection's life: accepted or refused, watched,
//! served, drained), read top to bottom, with its unit tests (about 60 lines) last.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpConfig;
use crate::metrics::names;

/// File descriptors kept for everything but HTTP connections: stdio, the runtime, the
/// listener, the registry's watcher and model files, the Kafka clients' sockets and wake-up
/// pipes, the validator children's pipes; generous, as running out is what this prevents.
pub const FD_RESERVE: u64 = 128;

/// hyper's read buffer per connection (hyper's default is ~400 KiB), which bounds the memory
/// of an open connection (loosely: a read may fill the buffer's spare capacity), and the size
/// of a request head, strictly (431 beyond).
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Warnings of one kind (connections refused, accept errors) at most this often; the
/// metrics count every one.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Accepting pauses this long after an accept error, doubling up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The connection limits of `[http]`, with `max_connections` capped by the fd limit.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// How long open connections may take to finish after shutdown is requested.
    pub drain_timeout: Duration,
}

impl Settings {
    /// Raises the soft fd limit as far as `max_connections` needs (within the hard limit)
    /// and caps `max_connections` by what it allows.
    pub fn new(http: &HttpConfig, drain_timeout: Duration) -> Self {
        let wanted = (http.max_connections as u64).saturating_add(FD_RESERVE);
        let max_connections = match rlimit::increase_nofile_limit(wanted) {
            Ok(soft) => {
                let cap = soft.saturating_sub(FD_RESERVE).max(1);
                let max = (http.max_connections as u64).min(cap) as usize;
                if max < http.max_connections {
                    tracing::warn!(
                        configured = http.max_connections,
                        max_connections = max,
                        fd_limit = soft,
                        fd_reserve = FD_RESERVE,
                        "http.max_connections capped by the file-descriptor limit (raise `ulimit -n` / LimitNOFILE)"
                    );
                }
                max
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the file-descriptor limit; max_connections not capped");
                http.max_connections
            }
        };
        Self {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(http.idle_timeout_ms),
            max_connections,
            drain_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then drains (see [`super::serve`]).
pub async fn run(
    listener: TcpListener,
    router: Router,
    settings: Settings,
    shutdown: CancellationToken,
) -> io::Result<()> {
    tracing::info!(
        max_connections = settings.max_connections,
        header_read_timeout_ms = settings.header_read_timeout.as_millis() as u64,
        idle_timeout_ms = settings.idle_timeout.as_millis() as u64,
        "HTTP connection limits"
    );
    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(READ_BUFFER_BYTES)
        .max_header_size(READ_BUFFER_BYTES);
    // The watchdog keeps the header timeout (see the module doc).
    builder.header_read_timeout(None);
    let builder = Arc::new(builder);
    let open = metrics::gauge!(names::HTTP_CONNECTIONS);
    metrics::gauge!(names::HTTP_MAX_CONNECTIONS).set(settings.max_connections as f64);
    let refused = metrics::counter!(names::HTTP_CONNECTIONS_REFUSED);
    let mut refused_log = Throttle::default();
    let mut accept_log = Throttle::default();
    let mut backoff = MIN_BACKOFF;
    let mut paused: Option<Pin<Box<Sleep>>> = None;
    let mut connections = JoinSet::new();
    let mut upkeep = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
    #[cfg(feature = "fault-injection")]
    let panic_on_accept = crate::fault::armed(crate::fault::Fault::HttpAcceptPanic);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(ended) = connections.join_next() => {
                reaped(ended);
                open.set(connections.len() as f64);
            }
            _ = upkeep.tick() => crate::metrics::upkeep(),
            () = async { paused.as_mut().expect("guarded").await }, if paused.is_some() => {
                paused = None;
            }
            accepted = listener.accept(), if paused.is_none() => match accepted {
                Ok((tcp, peer)) => {
                    #[cfg(feature = "fault-injection")]
                    if panic_on_accept {
                        panic!("injected fault: the HTTP accept loop panics");
                    }
                    backoff = MIN_BACKOFF;
                    while let Some(ended) = connections.try_join_next() {
                        reaped(ended);
                    }
                    if connections.len() >= settings.max_connections {
                        // Closed at once: the fd comes straight back.
                        drop(tcp);
                        refused.increment(1);
                        if let Some(more) = refused_log.hit(Instant::now()) {
                            tracing::warn!(
                                %peer,
                                max_connections = settings.max_connections,
                                refused_since_last_warning = more,
                                "HTTP connection limit reached; closing new connections"
                            );
                        }
                        continue;
                    }
                    // Small responses must not wait for Nagle's algorithm.
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(connection(
                        tcp,
                        router.clone(),
                        Arc::clone(&builder),
                        settings,
                        shutdown.clone(),
                    ));
                    open.set(connections.len() as f64);
                }
                Err(e) => {
                    let (kind, pause) = classify_accept_error(&e);
                    metrics::counter!(names::HTTP_ACCEPT_ERRORS, "kind" => kind).increment(1);
                    if let Some(more) = accept_log.hit(Instant::now()) {
                        tracing::warn!(error = %e, kind, errors_since_last_warning = more, "HTTP accept error");
                    }
                    if pause {
                        paused = Some(Box::pin(tokio::time::sleep(backoff)));
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
    drop(listener);
    let drain = async {
        while let Some(ended) = connections.join_next().await {
            reaped(ended);
        }
    };
    if tokio::time::timeout(settings.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_s = settings.drain_timeout.as_secs(),
            open = connections.len(),
            "HTTP connections still open after the drain timeout; closing them"
        );
        connections.shutdown().await;
    }
    open.set(0.0);
    Ok(())
}

fn reaped(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!(error = %e, "an HTTP connection task panicked");
    }
}

/// The metric label of an accept error, and whether accepting should pause: errors of one
/// connection (reset before it was accepted) do not; running out of fds or memory does.
fn classify_accept_error(e: &io::Error) -> (&'static str, bool) {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => ("too_many_open_files", true),
        Some(libc::ENOBUFS | libc::ENOMEM) => ("out_of_memory", true),
        _ => match e.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock => ("connection", false),
            _ => ("other", true),
        },
    }
}

/// A warning's throttle: the first of a burst at once, then at most one per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(how many were suppressed since the last one)` when this one should be logged.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now - last < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Why the watchdog closed a connection (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimedOut {
    Header,
    Idle,
    Send,
}

impl TimedOut {
    fn as_str(self) -> &'static str {
        match self {
            TimedOut::Header => "header_timeout",
            TimedOut::Idle => "idle_timeout",
            TimedOut::Send => "send_timeout",
        }
    }
}

/// Serves one connection until it ends, the watchdog closes it, or shutdown drains it.
async fn connection(
    tcp: TcpStream,
    router: Router,
    builder: Arc<http1::Builder>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: tcp,
        activity: Arc::clone(&activity),
    });
    let service = ConnService {
        router,
        activity: Arc::clone(&activity),
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let watchdog = tokio::time::sleep(settings.header_read_timeout.min(settings.idle_timeout));
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut watchdog => match activity.check(Instant::now(), &settings) {
                Ok(next) => watchdog.as_mut().reset(next),
                Err(reason) => {
                    metrics::counter!(names::HTTP_CONNECTIONS_TIMED_OUT, "reason" => reason.as_str())
                        .increment(1);
                    tracing::debug!(reason = reason.as_str(), "closing an HTTP connection");
                    return;
                }
            }
        }
    }
}

/// What a connection is doing, for its watchdog; times in ms since the connection opened.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Requests whose handler is running.
    handlers: AtomicU32,
    /// Responses being sent.
    responses: AtomicU32,
    /// When the last response ended (0: the connection's opening).
    idle_since: AtomicU64,
    /// The first byte of the next request, [`NONE`] until one comes while idle (0 for the
    /// first request: its clock starts with the connection).
    head_started: AtomicU64,
    last_io: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            handlers: AtomicU32::new(0),
            responses: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            last_io: AtomicU64::new(0),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.opened).as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    fn busy(&self) -> bool {
        self.handlers.load(Ordering::Acquire) > 0 || self.responses.load(Ordering::Acquire) > 0
    }

    fn read(&self) {
        let now = self.ms(Instant::now());
        self.last_io.store(now, Ordering::Relaxed);
        if self.head_started.load(Ordering::Relaxed) == NONE && !self.busy() {
            let _ =
                self.head_started
                    .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io
            .store(self.ms(Instant::now()), Ordering::Relaxed);
    }

    /// `Ok(when to look again)`, or why to close the connection now.
    fn check(&self, now: Instant, settings: &Settings) -> Result<Instant, TimedOut> {
        let (header, idle) = (settings.header_read_timeout, settings.idle_timeout);
        // A head may start at any moment while idle, so never look later than this.
        let soon = now + header.min(idle);
        let now_ms = self.ms(now);
        let due = |since: u64, limit: Duration, reason: TimedOut| {
            let due = since.saturating_add(limit.as_millis() as u64);
            if now_ms >= due {
                Err(reason)
            } else {
                Ok(self.at(due).min(soon))
            }
        };
        if self.handlers.load(Ordering::Acquire) > 0 {
            // The handler's own limits apply (the request timeout, the body's deadline).
            Ok(soon)
        } else if self.responses.load(Ordering::Acquire) > 0 {
            due(self.last_io.load(Ordering::Relaxed), idle, TimedOut::Send)
        } else {
            match self.head_started.load(Ordering::Relaxed) {
                NONE => due(
                    self.idle_since.load(Ordering::Relaxed),
                    idle,
                    TimedOut::Idle,
                ),
                started => due(started, header, TimedOut::Header),
            }
        }
    }
}

/// The connection's socket, reporting reads and writes to its [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service, counting its requests and responses in the
/// connection's [`Activity`].
#[derive(Clone)]
struct ConnService {
    router: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let handler = Handler::start(Arc::clone(&self.activity));
        let router = self.router.clone();
        Box::pin(async move {
            let response: Response = match router.oneshot(req.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let sending = handler.responded();
            Ok(response.map(|inner| TrackedBody {
                inner,
                _sending: sending,
            }))
        })
    }
}

/// A running handler; when dropped, it no longer counts.
struct Handler(Arc<Activity>);

impl Handler {
    fn start(activity: Arc<Activity>) -> Self {
        activity.handlers.fetch_add(1, Ordering::AcqRel);
        // The head is in: its clock stops.
        activity.head_started.store(NONE, Ordering::Relaxed);
        Handler(activity)
    }

    /// The handler has its response: the connection now counts it as being sent (before the
    /// handler stops counting, so it never looks idle in between).
    fn responded(self) -> Sending {
        self.0.responses.fetch_add(1, Ordering::AcqRel);
        Sending(Arc::clone(&self.0))
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response being sent; when dropped (sent, or the connection closed), the connection is
/// idle from then on.
struct Sending(Arc<Activity>);

impl Drop for Sending {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since
            .store(activity.ms(Instant::now()), Ordering::Relaxed);
        activity.head_started.store(NONE, Ordering::Relaxed);
        activity.responses.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that marks the end of its sending when dropped.
struct TrackedBody {
    inner: Body,
    _sending: Sending,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
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

    fn settings() -> Settings {
        Settings {
            header_read_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1000),
            max_connections: 1,
            drain_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_watchdog_applies_the_header_timeout_from_the_opening_then_the_idle_timeout() {
        let a = Activity::new();
        let s = settings();
        let at = |ms| a.opened + Duration::from_millis(ms);
        // First request: the header clock runs from the opening.
        assert_eq!(a.check(at(50), &s), Ok(at(100)));
        assert_eq!(a.check(at(100), &s), Err(TimedOut::Header));
        // A request came, was answered at 200 ms: idle until 1200 ms, looked at every 100 ms.
        a.head_started.store(NONE, Ordering::Relaxed);
        a.idle_since.store(200, Ordering::Relaxed);
        assert_eq!(a.check(at(250), &s), Ok(at(350)));
        assert_eq!(a.check(at(1150), &s), Ok(at(1200)));
        assert_eq!(a.check(at(1200), &s), Err(TimedOut::Idle));
        // The next head started at 1100 ms: 100 ms for it.
        a.head_started.store(1100, Ordering::Relaxed);
        assert_eq!(a.check(at(1150), &s), Ok(at(1200)));
        assert_eq!(a.check(at(1200), &s), Err(TimedOut::Header));
        // A response stuck for the idle timeout.
        a.responses.store(1, Ordering::Relaxed);
        a.last_io.store(300, Ordering::Relaxed);
        assert_eq!(a.check(at(1300), &s), Err(TimedOut::Send));
        // A handler running: never closed by the watchdog.
        a.handlers.store(1, Ordering::Relaxed);
        assert_eq!(a.check(at(5000), &s), Ok(at(5100)));
    }

    #[test]
    fn warnings_are_throttled() {
        let mut t = Throttle::default();
        let start = Instant::now();
        assert_eq!(t.hit(start), Some(0));
        for i in 1..100 {
            assert_eq!(t.hit(start + Duration::from_millis(i)), None);
        }
        assert_eq!(t.hit(start + LOG_EVERY), Some(99));
    }

    #[test]
    fn accept_errors_that_mean_out_of_fds_pause_accepting() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(
            classify_accept_error(&emfile),
            ("too_many_open_files", true)
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify_accept_error(&reset), ("connection", false));
    }
}
