//! Hardening of the API routes: a global concurrency limit that sheds load (503 at once rather
//! than a queue), a request timeout, and the hand-off of CPU work (parsing big bodies, admin
//! calls that wait for the registry) to the blocking thread pool; inference has its own thread
//! ([`super::scorer`]).
//!
//! The permit of a request travels with the work it hands off (to the blocking pool or the
//! scorer): a request that times out answers 503 at once, but its permit is only released when
//! that work ends, so abandoned work still counts against the limit and cannot pile up.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::metrics::names;

#[derive(Debug)]
pub struct Limits {
    permits: Arc<Semaphore>,
    limit: usize,
    timeout: Duration,
}

impl Limits {
    pub fn new(concurrency: usize, timeout: Duration) -> Self {
        let limit = concurrency.max(1);
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
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!(names::HTTP_TIMEOUTS).increment(1);
            ApiError::Timeout(limits.timeout.as_millis() as u64).into_response()
        }
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

/// Runs `work` on the blocking pool, holding `permit` until it is done.
pub async fn blocking<T: Send + 'static>(
    permit: Option<Permit>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("blocking task: {e}")))?
}
