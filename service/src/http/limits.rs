//! Hardening of the API routes: a global concurrency limit that sheds load (503 at once rather
//! than a queue), a request timeout, and the hand-off of CPU work (parsing big bodies, admin
//! calls that wait for the registry) to the blocking thread pool; inference has its own thread
//! ([`super::scorer`]).
//!
//! The permit of a request travels with the work it hands off (to the blocking pool or the
//! scorer): a request that times out answers 503 at once, but its permit is only released when
//! that work ends, so abandoned work still counts against the limit and cannot pile up. Work
//! whose request has gone (timed out, or the client left) is skipped when its turn comes
//! rather than done for nobody, so the permits come back as soon as the queue reaches it.
//!
//! Every request body, on every route, must arrive within the request timeout ([`deadline`]):
//! a client that stalls its upload gets 408 `request_timeout` (its fault), not the 503
//! `timeout` of a service too slow to answer. The concurrency limit is taken before the body
//! is read, so a shed request never buffers its body.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
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
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            timeout,
        }
    }
}

/// A request's share of the concurrency limit; cloned into the work it starts.
#[derive(Debug, Clone)]
pub struct Permit(#[allow(dead_code)] Arc<Held>);

/// The semaphore permit, counted in `fleetscore_http_in_flight` while held.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] OwnedSemaphorePermit);

/// `fleetscore_http_in_flight`, looked up once (the recorder is installed before the first
/// request).
static IN_FLIGHT: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!(names::HTTP_IN_FLIGHT));

impl Held {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        IN_FLIGHT.increment(1.0);
        Held(permit)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        IN_FLIGHT.decrement(1.0);
    }
}

/// Middleware of the API routes: shed when full, give up after the timeout.
pub async fn guard(State(limits): State<Arc<Limits>>, mut req: Request, next: Next) -> Response {
    let Ok(permit) = Arc::clone(&limits.permits).try_acquire_owned() else {
        metrics::counter!(names::HTTP_SHED).increment(1);
        return ApiError::Overloaded(limits.limit).into_response();
    };
    req.extensions_mut()
        .insert(Permit(Arc::new(Held::new(permit))));
    let body = req.extensions().get::<BodyProgress>().cloned();
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) if body.is_some_and(|b| !b.complete()) => body_timeout(limits.timeout),
        Err(_) => {
            metrics::counter!(names::HTTP_TIMEOUTS).increment(1);
            ApiError::Timeout(limits.timeout.as_millis() as u64).into_response()
        }
    }
}

fn body_timeout(timeout: Duration) -> Response {
    metrics::counter!(names::HTTP_BODY_TIMEOUTS).increment(1);
    ApiError::RequestTimeout(timeout.as_millis() as u64).into_response()
}

/// Whether a request's body has arrived whole; in the request's extensions.
#[derive(Debug, Clone)]
pub struct BodyProgress(Arc<AtomicBool>);

impl BodyProgress {
    pub fn complete(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The error a body gives when its deadline passes before its end.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive in time")]
pub struct BodyTimedOut;

/// Middleware of every route: the body must arrive within the request timeout of the
/// request's start (after that, reading it fails with [`BodyTimedOut`]).
pub async fn deadline(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let until = Instant::now() + limits.timeout;
    let (mut parts, body) = req.into_parts();
    let progress = BodyProgress(Arc::new(AtomicBool::new(body.is_end_stream())));
    parts.extensions.insert(progress.clone());
    let body = Body::new(TimedBody {
        inner: body,
        until,
        sleep: None,
        progress,
    });
    next.run(Request::from_parts(parts, body)).await
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

/// A request body with a deadline. The timer is only armed once the body stalls (a body that
/// came with its head never touches it).
struct TimedBody {
    inner: Body,
    until: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    progress: BodyProgress,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() || this.inner.is_end_stream() {
                this.progress.0.store(true, Ordering::Relaxed);
            }
            return Poll::Ready(frame);
        }
        let until = this.until;
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
    use axum::middleware;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    /// `guard` and `deadline` around one route whose handler reads the body, then hangs.
    /// Whichever fires first on a stalled body, the body's deadline or the request timeout,
    /// the answer is the same 408.
    fn app(limits: Arc<Limits>) -> Router {
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
            .layer(middleware::from_fn_with_state(Arc::clone(&limits), guard))
            .layer(middleware::from_fn_with_state(limits, deadline))
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

    #[tokio::test]
    async fn a_slow_handler_is_a_503_a_slow_body_a_408() {
        let limits = Arc::new(Limits::new(4, Duration::from_millis(100)));
        assert_eq!(
            status_and_code(app(Arc::clone(&limits)), Body::from("{}")).await,
            (StatusCode::SERVICE_UNAVAILABLE, "timeout".to_owned())
        );
        assert_eq!(
            status_and_code(app(limits), Body::new(Stalled)).await,
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
