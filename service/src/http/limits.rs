//! Hardening of the API routes: a global concurrency limit that sheds load (503 at once rather
//! than a queue), a request timeout, and the hand-off of CPU work (parsing big bodies, admin
//! calls that wait for the registry) to the blocking thread pool; inference has its own thread
//! ([`super::scorer`]). [`super::middleware`] applies them to each request.
//!
//! The permit of a request travels with the work it hands off (to the blocking pool or the
//! scorer): a request that times out answers 503 at once, but its permit is only released when
//! that work ends, so abandoned work still counts against the limit and cannot pile up. Work
//! whose request has gone (timed out, or the client left) is skipped when its turn comes
//! rather than done for nobody, so the permits come back as soon as the queue reaches it.
//!
//! Every request body, on every route, must arrive within the request timeout: a client that
//! stalls its upload gets 408 `request_timeout` (its fault), not the 503 `timeout` of a service
//! too slow to answer. On the API routes the request timeout itself tells the two apart (the
//! permit records whether the body arrived); elsewhere the body has a deadline of its own
//! ([`watch_body`]). The concurrency limit is taken before the body is read, so a shed request
//! never buffers its body.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use metrics::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::error::ApiError;
use crate::metrics::names;

#[derive(Debug)]
pub struct Limits {
    permits: Arc<Semaphore>,
    limit: usize,
    timeout: Duration,
}

impl Limits {
    /// `concurrency` must be within `1..=Semaphore::MAX_PERMITS` (`HttpConfig::validate`).
    pub fn new(concurrency: usize, timeout: Duration) -> Self {
        let limit = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        // Registered now, so that their series exist at 0 before the first shed or timeout
        // (a dashboard's rate over a missing series shows nothing rather than zero).
        for name in [
            names::HTTP_SHED,
            names::HTTP_TIMEOUTS,
            names::HTTP_BODY_TIMEOUTS,
        ] {
            let _ = metrics::counter!(name);
        }
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            timeout,
        }
    }

    /// The request timeout (which also bounds every body's arrival).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A permit for one more request in flight, if the limit allows.
    pub fn acquire(&self) -> Option<Permit> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        Some(Permit(Arc::new(Held::new(permit))))
    }

    /// The answer to a request shed at the limit: 503 `overloaded` (counted).
    pub fn overloaded(&self) -> Response {
        metrics::counter!(names::HTTP_SHED).increment(1);
        ApiError::Overloaded(self.limit).into_response()
    }

    /// The answer to a request whose handler did not finish within the timeout: 408 if its
    /// body had not arrived yet (the client's fault), else 503 `timeout`; counted.
    pub fn timeout_response(&self, permit: &Permit) -> Response {
        let ms = self.timeout.as_millis() as u64;
        if permit.body_arrived() {
            metrics::counter!(names::HTTP_TIMEOUTS).increment(1);
            ApiError::Timeout(ms).into_response()
        } else {
            metrics::counter!(names::HTTP_BODY_TIMEOUTS).increment(1);
            ApiError::RequestTimeout(ms).into_response()
        }
    }
}

/// A request's share of the concurrency limit; cloned into the work it starts.
#[derive(Debug, Clone)]
pub struct Permit(Arc<Held>);

impl Permit {
    /// Whether the request's body has arrived whole.
    fn body_arrived(&self) -> bool {
        self.0.body_arrived.load(Ordering::Relaxed)
    }
}

/// The semaphore permit, counted in `fleetscore_http_in_flight` while held; and whether the
/// request's body has arrived (one allocation per request for both).
#[derive(Debug)]
struct Held {
    _permit: OwnedSemaphorePermit,
    body_arrived: AtomicBool,
}

/// `fleetscore_http_in_flight`, looked up once (the recorder is installed before the first
/// request).
static IN_FLIGHT: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!(names::HTTP_IN_FLIGHT));

impl Held {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        IN_FLIGHT.increment(1.0);
        Held {
            _permit: permit,
            body_arrived: AtomicBool::new(false),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        IN_FLIGHT.decrement(1.0);
    }
}

/// The error a body gives when its deadline passes before its end.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive in time")]
pub struct BodyTimedOut;

/// How a request's body is watched: see [`watch_body`].
#[derive(Debug)]
pub enum Watch {
    /// Reading it fails with [`BodyTimedOut`] once this instant passes before its end.
    Deadline(Instant),
    /// Its arrival is recorded in the request's permit (the API routes: the request timeout
    /// is the body's deadline too, so it needs no timer of its own).
    Arrival(Permit),
}

/// `req` with its body watched by `watch`. A body that came whole with its head (none, or an
/// empty one) is left as it is.
pub fn watch_body(req: Request, watch: Watch) -> Request {
    if req.body().is_end_stream() {
        if let Watch::Arrival(permit) = &watch {
            permit.0.body_arrived.store(true, Ordering::Relaxed);
        }
        return req;
    }
    req.map(|inner| {
        Body::new(WatchedBody {
            inner,
            watch,
            sleep: None,
        })
    })
}

/// Whether a failure to read a body was its deadline ([`BodyTimedOut`] in the chain).
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A request body under a [`Watch`]. A deadline's timer is only armed once the body stalls.
struct WatchedBody {
    inner: Body,
    watch: Watch,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Watch::Arrival(permit) = &this.watch
                && (frame.is_none() || this.inner.is_end_stream())
            {
                permit.0.body_arrived.store(true, Ordering::Relaxed);
            }
            return Poll::Ready(frame);
        }
        let Watch::Deadline(until) = this.watch else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Bodies up to this size are parsed on the async worker (a one-row `/score` body is about
/// 3 KiB); a bigger one on the blocking pool, where it cannot stall other requests.
pub const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Parses a body of `len` bytes with `parse`: inline when small (cheaper than a hand-off),
/// on the blocking pool when big, holding `permit` until it is done.
pub async fn parse_off_worker_if_big<T: Send + 'static>(
    permit: Option<Permit>,
    len: usize,
    parse: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if len > INLINE_PARSE_BYTES {
        blocking(permit, parse).await
    } else {
        parse()
    }
}

/// Runs `work` on the blocking pool, holding `permit` until it is done; skipped if the
/// request is gone (timed out) before its turn comes.
pub async fn blocking<T: Send + 'static>(
    permit: Option<Permit>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        if !reply.is_closed() {
            let _ = reply.send(work());
        }
    });
    answer
        .await
        .map_err(|_| ApiError::Internal("a blocking task ended without an answer".to_owned()))?
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;
    use crate::http::middleware::Middleware;

    /// One route whose handler reads the body, then hangs, under `middleware`.
    fn app(middleware: Middleware) -> Router {
        Router::new()
            .route(
                "/",
                post(|body: Body| async move {
                    if let Err(e) = axum::body::to_bytes(body, 1 << 16).await {
                        assert!(timed_out(&e), "{e}");
                        return ApiError::RequestTimeout(100).into_response();
                    }
                    std::future::pending::<Response>().await
                }),
            )
            .layer(middleware)
    }

    async fn status_and_code(app: Router, body: Body) -> (StatusCode, String) {
        let request = Request::post("/").body(body).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        (status, json["code"].as_str().unwrap().to_owned())
    }

    /// On an API route the request timeout tells a slow handler (503) from a slow body (408);
    /// elsewhere the body's own deadline makes reading it fail, and the handler says 408.
    #[tokio::test]
    async fn a_slow_handler_is_a_503_a_slow_body_a_408() {
        let limits = Arc::new(Limits::new(4, Duration::from_millis(100)));
        let api = || app(Middleware::api(Arc::clone(&limits)));
        assert_eq!(
            status_and_code(api(), Body::from("{}")).await,
            (StatusCode::SERVICE_UNAVAILABLE, "timeout".to_owned())
        );
        assert_eq!(
            status_and_code(api(), Body::new(Stalled)).await,
            (StatusCode::REQUEST_TIMEOUT, "request_timeout".to_owned())
        );
        let open = app(Middleware::open(Duration::from_millis(100)));
        assert_eq!(
            status_and_code(open, Body::new(Stalled)).await,
            (StatusCode::REQUEST_TIMEOUT, "request_timeout".to_owned())
        );
    }

    /// A body whose bytes never come.
    struct Stalled;

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            Poll::Pending
        }
    }
}
