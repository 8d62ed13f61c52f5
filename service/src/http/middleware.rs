//! The one middleware around every route's handler: it counts and times the request
//! (`fleetscore_http_requests_total`, `..._duration_seconds`), answers a panic with a 500 and
//! the JSON error body, bounds the body's arrival by the request timeout (408), and on the API
//! routes applies the concurrency limit (503 `overloaded`, before the body is read) and the
//! request timeout (503 `timeout`, or 408 if the body was still arriving) — see [`super::limits`].
//!
//! One hand-written layer rather than a stack of `from_fn` middlewares: each of those boxes the
//! request's future and a copy of the rest of the stack, which on a one-row `/score` costs more
//! than the routing. Here the future is a plain struct; its timer is created only when the
//! handler has to wait, and only on the API routes (their body needs no timer of its own).

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::error::ApiError;
use super::limits::{Limits, Permit, Watch, watch_body};
use crate::supervisor::panic_message;
use crate::telemetry;

/// The middleware as a layer: [`Middleware::api`] for the routes under the limits,
/// [`Middleware::open`] for the others (probes, metrics, admin, the fallback).
#[derive(Debug, Clone)]
pub struct Middleware {
    /// `None` on the open routes, which get only the body deadline.
    limits: Option<Arc<Limits>>,
    timeout: Duration,
}

impl Middleware {
    pub fn api(limits: Arc<Limits>) -> Self {
        Self {
            timeout: limits.timeout(),
            limits: Some(limits),
        }
    }

    /// `timeout`: the request timeout, which bounds the body's arrival.
    pub fn open(timeout: Duration) -> Self {
        Self {
            limits: None,
            timeout,
        }
    }
}

impl<S> tower::Layer<S> for Middleware {
    type Service = WithMiddleware<S>;

    fn layer(&self, inner: S) -> WithMiddleware<S> {
        WithMiddleware {
            inner,
            middleware: self.clone(),
        }
    }
}

/// A route's service under the [`Middleware`].
#[derive(Debug, Clone)]
pub struct WithMiddleware<S> {
    inner: S,
    middleware: Middleware,
}

impl<S> tower::Service<Request> for WithMiddleware<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let span = telemetry::http::server(
            req.method(),
            route.as_ref().map(MatchedPath::as_str),
            req.uri().path(),
            req.headers(),
        );
        let observed = Observed {
            start,
            method: req.method().clone(),
            route,
            span,
        };
        let deadline = start + self.middleware.timeout;
        let (req, limit) = match &self.middleware.limits {
            None => (watch_body(req, Watch::Deadline(deadline)), None),
            Some(limits) => match limits.acquire() {
                Some(permit) => {
                    let mut req = watch_body(req, Watch::Arrival(permit.clone()));
                    req.extensions_mut().insert(permit.clone());
                    let limit = Limit {
                        deadline,
                        limits: Arc::clone(limits),
                        permit,
                    };
                    (req, Some(limit))
                }
                None => return ResponseFuture::answered(limits.overloaded(), observed),
            },
        };
        let entered = observed.span.enter();
        let called = catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
        drop(entered);
        match called {
            Ok(inner) => ResponseFuture {
                inner: Some(inner),
                answer: None,
                limit,
                sleep: None,
                observed,
            },
            Err(panic) => ResponseFuture::answered(panicked(&*panic), observed),
        }
    }
}

/// An API request's deadline, and its permit (which records its body's arrival).
#[derive(Debug)]
struct Limit {
    deadline: Instant,
    limits: Arc<Limits>,
    permit: Permit,
}

/// What the request's metrics and its span need.
#[derive(Debug)]
struct Observed {
    start: Instant,
    method: Method,
    route: Option<MatchedPath>,
    /// The server span (disabled when tracing is off).
    span: tracing::Span,
}

impl Observed {
    fn record(&self, response: &Response) {
        telemetry::http::responded(&self.span, response.status().as_u16());
        crate::metrics::record_request(
            self.method.as_str(),
            self.route.as_ref().map_or("unmatched", MatchedPath::as_str),
            response.status().as_u16(),
            self.start.elapsed(),
        );
    }
}

pin_project! {
    /// The response of a route under the [`Middleware`].
    pub struct ResponseFuture<F> {
        // The handler's future; `None` if answered without it (shed, a panic in `call`), or
        // once given up on (timed out).
        #[pin]
        inner: Option<F>,
        answer: Option<Response>,
        limit: Option<Limit>,
        // The API routes' timer, created when the handler first has to wait.
        #[pin]
        sleep: Option<Sleep>,
        observed: Observed,
    }
}

impl<F> ResponseFuture<F> {
    fn answered(response: Response, observed: Observed) -> Self {
        Self {
            inner: None,
            answer: Some(response),
            limit: None,
            sleep: None,
            observed,
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.answer.take() {
            Some(response) => response,
            None => {
                let inner = this
                    .inner
                    .as_mut()
                    .as_pin_mut()
                    .expect("polled after completion");
                let entered = this.observed.span.enter();
                let polled = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
                drop(entered);
                match polled {
                    Ok(Poll::Ready(Ok(response))) => response,
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Err(panic) => panicked(&*panic),
                    Ok(Poll::Pending) => {
                        let Some(limit) = this.limit.as_ref() else {
                            return Poll::Pending;
                        };
                        if this.sleep.is_none() {
                            this.sleep
                                .set(Some(tokio::time::sleep_until(limit.deadline)));
                        }
                        let sleep = this.sleep.as_pin_mut().expect("just set");
                        ready!(sleep.poll(cx));
                        // Given up on: the handler's future goes now; work it handed off keeps
                        // the permit until that work ends.
                        this.inner.set(None);
                        limit.limits.timeout_response(&limit.permit)
                    }
                }
            }
        };
        this.observed.record(&response);
        Poll::Ready(Ok(response))
    }
}

/// The answer to a handler that panicked: 500 `internal`, the panic's message in the log only.
fn panicked(panic: &(dyn Any + Send)) -> Response {
    ApiError::Internal(format!("handler panicked: {}", panic_message(panic))).into_response()
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}
