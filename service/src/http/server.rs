//! The connection loop: accepts TCP connections and serves HTTP/1.1 on each with hyper, with
//! the limits that keep a client from taking the service down (`axum::serve` has none of them).
//!
//! - **Connections**: at most `max_connections` open at once, capped by the process's
//!   file-descriptor limit less [`FD_RESERVE`] (the registry, the Kafka clients, the
//!   validator's pipes need theirs), so the accept loop never meets `EMFILE` through its own
//!   connections. With the cap reached, a new connection takes the place of the longest-idle
//!   keep-alive connection (one between requests), as production servers do: that one is
//!   closed. If none is idle, the new connection is closed at once; open ones keep working.
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
//! timeout longer than a load balancer's), so each connection reports what it is doing
//! ([`Activity`]: a phase and since when, plain stores by the connection's own task), and one
//! watchdog in the accept loop looks at them all when the next deadline comes, closing the
//! late ones. Nothing is shared between connections on the request path: each has its own
//! close signal (eviction, shutdown), not a token they would all poll.
//!
//! Body timeouts are per request (`limits`, `middleware`): 408 on every route. hyper's own
//! answers to requests it cannot parse get their JSON body on the way out (`parse_errors`).
//!
//! Over 400 lines on purpose: one concept (a connection's life: accepted, refused or admitted
//! in an idle one's place, watched, served, drained), read top to bottom, with its unit tests
//! last.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::parse_errors::ParseErrors;
use super::{App, AppFuture};
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

/// At most this many evicted connections closing at once (their file descriptors count
/// beyond `max_connections` until they have; [`FD_RESERVE`] has room for them).
const MAX_CLOSING: usize = 16;

/// The watchdog looks at most this often: deadlines closer together are served by one look.
const WATCHDOG_RESOLUTION: Duration = Duration::from_millis(5);

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

/// Serves `app` on `listener` until `shutdown`, then drains (see [`super::serve`]).
pub async fn run(
    listener: TcpListener,
    app: App,
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
    let open_gauge = metrics::gauge!(names::HTTP_CONNECTIONS);
    metrics::gauge!(names::HTTP_MAX_CONNECTIONS).set(settings.max_connections as f64);
    let refused = metrics::counter!(names::HTTP_CONNECTIONS_REFUSED);
    let evicted = metrics::counter!(names::HTTP_CONNECTIONS_EVICTED);
    let mut refused_log = Throttle::default();
    let mut evicted_log = Throttle::default();
    let mut accept_log = Throttle::default();
    let mut backoff = MIN_BACKOFF;
    let mut paused: Option<Pin<Box<Sleep>>> = None;
    let mut tasks = JoinSet::new();
    let mut open = Open::default();
    let watchdog = tokio::time::sleep(settings.header_read_timeout.min(settings.idle_timeout));
    tokio::pin!(watchdog);
    let mut upkeep = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
    #[cfg(feature = "fault-injection")]
    let panic_on_accept = crate::fault::armed(crate::fault::Fault::HttpAcceptPanic);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(ended) = tasks.join_next_with_id() => {
                open.reaped(ended);
                open_gauge.set(tasks.len() as f64);
            }
            () = &mut watchdog => {
                let next = open.watch(Instant::now(), &settings);
                watchdog.as_mut().reset(next);
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
                    while let Some(ended) = tasks.try_join_next_with_id() {
                        open.reaped(ended);
                    }
                    if tasks.len() >= settings.max_connections {
                        if open.evict_longest_idle() {
                            evicted.increment(1);
                            if let Some(more) = evicted_log.hit(Instant::now()) {
                                tracing::warn!(
                                    max_connections = settings.max_connections,
                                    evicted_since_last_warning = more,
                                    "HTTP connection limit reached; closing the longest-idle \
                                     keep-alive connection for a new one"
                                );
                            }
                        } else {
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
                    }
                    // Small responses must not wait for Nagle's algorithm.
                    let _ = tcp.set_nodelay(true);
                    let activity = Arc::new(Activity::new());
                    let (close, closed) = oneshot::channel();
                    let task = tasks.spawn(connection(
                        tcp,
                        app.clone(),
                        Arc::clone(&builder),
                        Arc::clone(&activity),
                        closed,
                    ));
                    open.admitted(task, activity, close);
                    // Its first head is due one header timeout from now.
                    let due = Instant::now() + settings.header_read_timeout;
                    if due < watchdog.deadline() {
                        watchdog.as_mut().reset(due);
                    }
                    open_gauge.set(tasks.len() as f64);
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
    // Every connection is told to finish (its close signal goes with the table): idle ones
    // close at once, the others after the request in flight.
    drop(open);
    let drain = async {
        while let Some(ended) = tasks.join_next().await {
            reaped(ended);
        }
    };
    if tokio::time::timeout(settings.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_s = settings.drain_timeout.as_secs(),
            open = tasks.len(),
            "HTTP connections still open after the drain timeout; closing them"
        );
        tasks.shutdown().await;
    }
    open_gauge.set(0.0);
    Ok(())
}

/// One open connection, as the accept loop knows it.
#[derive(Debug)]
struct Conn {
    activity: Arc<Activity>,
    /// Sent (or dropped) to have it finish gracefully; `None` once it was (evicted).
    close: Option<oneshot::Sender<()>>,
    abort: AbortHandle,
    /// Closed by the watchdog; waiting to be reaped.
    aborted: bool,
}

/// The open connections, by task.
#[derive(Debug, Default)]
struct Open {
    conns: HashMap<tokio::task::Id, Conn>,
    /// Evicted and not ended yet (an idle connection ends as soon as its task runs).
    closing: usize,
}

impl Open {
    fn admitted(
        &mut self,
        abort: AbortHandle,
        activity: Arc<Activity>,
        close: oneshot::Sender<()>,
    ) {
        self.conns.insert(
            abort.id(),
            Conn {
                activity,
                close: Some(close),
                abort,
                aborted: false,
            },
        );
    }

    fn reaped(&mut self, ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match &ended {
            Ok((id, ())) => *id,
            Err(e) => e.id(),
        };
        if self.conns.remove(&id).is_some_and(|c| c.close.is_none()) {
            self.closing -= 1;
        }
        reaped(ended.map(|_| ()));
    }

    /// Closes (gracefully) the keep-alive connection idle the longest, if one is idle and
    /// fewer than [`MAX_CLOSING`] evicted ones are still closing; whether one was.
    fn evict_longest_idle(&mut self) -> bool {
        if self.closing >= MAX_CLOSING {
            return false;
        }
        let longest = self
            .conns
            .values_mut()
            .filter(|c| c.close.is_some() && !c.aborted)
            .filter_map(|c| c.activity.idle_since().map(|since| (since, c)))
            .min_by_key(|(since, _)| *since);
        let Some((_, conn)) = longest else {
            return false;
        };
        if let Some(close) = conn.close.take() {
            let _ = close.send(());
        }
        self.closing += 1;
        tracing::debug!("evicting an idle HTTP connection");
        true
    }

    /// Closes the connections whose header, idle or send timeout has passed at `now`; when to
    /// look again (the earliest deadline of the others, and never later than a header or idle
    /// timeout from now, as a head may start on an idle connection at any moment).
    fn watch(&mut self, now: Instant, settings: &Settings) -> Instant {
        let mut next = now + settings.header_read_timeout.min(settings.idle_timeout);
        for conn in self.conns.values_mut().filter(|c| !c.aborted) {
            match conn.activity.check(now, settings) {
                Ok(due) => next = next.min(due),
                Err(reason) => {
                    conn.abort.abort();
                    conn.aborted = true;
                    metrics::counter!(names::HTTP_CONNECTIONS_TIMED_OUT, "reason" => reason.as_str())
                        .increment(1);
                    tracing::debug!(reason = reason.as_str(), "closing an HTTP connection");
                }
            }
        }
        // Deadlines close together are served by one look.
        next.max(now + WATCHDOG_RESOLUTION)
    }
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

/// Serves one connection until it ends, is closed (evicted, or drained at shutdown: `close`
/// fires), or the watchdog aborts it.
async fn connection(
    tcp: TcpStream,
    app: App,
    builder: Arc<http1::Builder>,
    activity: Arc<Activity>,
    mut close: oneshot::Receiver<()>,
) {
    // Outside `Tracked`, which so sees the bytes that really go out.
    let io = TokioIo::new(ParseErrors::new(
        Tracked {
            inner: tcp,
            activity: Arc::clone(&activity),
        },
        READ_BUFFER_BYTES,
    ));
    let service = ConnService { app, activity };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            // Sent or dropped alike: finish the request in flight, if any, then close.
            _ = &mut close, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
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

/// What a connection is doing (HTTP/1.1: one request at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// A request head is arriving (from its first byte; the first request's from the
    /// connection's opening).
    Head = 0,
    /// A handler has the request (its own limits apply: request timeout, body deadline).
    Handling = 1,
    /// The response is being sent.
    Sending = 2,
    /// Between requests, nothing received yet: a keep-alive connection.
    Idle = 3,
}

/// What a connection is doing and since when, for the watchdog and for eviction. Written by
/// the connection's own task only (hyper polls the handler and the response body there too),
/// so a change is two plain stores; the accept loop reads it.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    phase: AtomicU8,
    /// When the phase began, in ms since `opened`; while sending, the last write.
    since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            phase: AtomicU8::new(Phase::Head as u8),
            since: AtomicU64::new(0),
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Head,
            1 => Phase::Handling,
            2 => Phase::Sending,
            _ => Phase::Idle,
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Enters `phase` now (`since` first: a reader that sees the phase sees its time).
    fn enter(&self, phase: Phase) {
        self.since.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Bytes came in: on an idle connection, a head starts.
    fn read(&self) {
        if self.phase() == Phase::Idle {
            self.enter(Phase::Head);
        }
    }

    /// Bytes went out: a response being sent progresses.
    fn wrote(&self) {
        if self.phase() == Phase::Sending {
            self.since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A handler has the request (no clock needed: the watchdog leaves it alone).
    fn handling(&self) {
        self.phase.store(Phase::Handling as u8, Ordering::Release);
    }

    /// Since when the connection is idle, if it is.
    fn idle_since(&self) -> Option<Instant> {
        (self.phase() == Phase::Idle)
            .then(|| self.opened + Duration::from_millis(self.since.load(Ordering::Relaxed)))
    }

    /// `Ok(its next deadline)`, or why to close the connection now.
    fn check(&self, now: Instant, settings: &Settings) -> Result<Instant, TimedOut> {
        let phase = self.phase();
        let since = self.opened + Duration::from_millis(self.since.load(Ordering::Relaxed));
        let (limit, reason) = match phase {
            // A head may start at any moment, but the watchdog looks again by then anyway.
            Phase::Handling => return Ok(now + settings.header_read_timeout),
            Phase::Head => (settings.header_read_timeout, TimedOut::Header),
            Phase::Sending => (settings.idle_timeout, TimedOut::Send),
            Phase::Idle => (settings.idle_timeout, TimedOut::Idle),
        };
        let due = since + limit;
        if now >= due { Err(reason) } else { Ok(due) }
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

/// The app as one connection's hyper service, telling the connection's [`Activity`] when a
/// handler has a request and when its response is sent.
struct ConnService {
    app: App,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<SentBody>;
    type Error = Infallible;
    type Future = ConnFuture;

    fn call(&self, req: hyper::Request<Incoming>) -> ConnFuture {
        self.activity.handling();
        ConnFuture {
            inner: self.app.clone().call(req),
            activity: Some(Arc::clone(&self.activity)),
        }
    }
}

pin_project! {
    /// A response of [`ConnService`].
    struct ConnFuture {
        #[pin]
        inner: AppFuture,
        activity: Option<Arc<Activity>>,
    }
}

impl Future for ConnFuture {
    type Output = Result<hyper::Response<SentBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let activity = this.activity.take().expect("polled after completion");
        activity.enter(Phase::Sending);
        Poll::Ready(Ok(response.map(|inner| SentBody { inner, activity })))
    }
}

/// A response body; once dropped (sent, or the connection closed), the connection is idle.
struct SentBody {
    inner: Body,
    activity: Arc<Activity>,
}

impl Drop for SentBody {
    fn drop(&mut self) {
        self.activity.enter(Phase::Idle);
    }
}

impl HttpBody for SentBody {
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

    impl Activity {
        fn set(&self, phase: Phase, since_ms: u64) {
            self.since.store(since_ms, Ordering::Relaxed);
            self.phase.store(phase as u8, Ordering::Release);
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
        assert_eq!(a.idle_since(), None, "not idle: never evicted");
        // A request came, was answered at 200 ms: idle until 1200 ms.
        a.set(Phase::Idle, 200);
        assert_eq!(a.check(at(250), &s), Ok(at(1200)));
        assert_eq!(a.check(at(1200), &s), Err(TimedOut::Idle));
        assert_eq!(a.idle_since(), Some(at(200)));
        // The next head started at 1100 ms: 100 ms for it.
        a.read();
        a.set(Phase::Head, 1100);
        assert_eq!(a.check(at(1150), &s), Ok(at(1200)));
        assert_eq!(a.check(at(1200), &s), Err(TimedOut::Header));
        // A response stuck for the idle timeout.
        a.set(Phase::Sending, 300);
        assert_eq!(a.check(at(1300), &s), Err(TimedOut::Send));
        // A handler running: never closed by the watchdog, never evicted.
        a.handling();
        assert_eq!(a.check(at(5000), &s), Ok(at(5100)));
        assert_eq!(a.idle_since(), None);
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
