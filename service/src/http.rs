//! The HTTP API (axum): scoring, the Open Inference Protocol, fleet state, model admin, health,
//! metrics and the OpenAPI document.
//!
//! # Layout
//!
//! - [`score`]: `POST /score`, explicit feature rows or a tail's live state (with an optional
//!   hypothetical event).
//! - [`oip`]: the Open Inference Protocol v2 (`/v2`, `/v2/models/{name}[/ready|/infer]`, and
//!   the same under `/v2/models/{name}/versions/{version}`).
//! - [`tails`]: `GET /tails/{tail}`; [`alerts`]: `GET /alerts`; [`models`]: `GET /models`;
//!   [`drift`]: `GET /models/{name}/drift`; [`admin`]: promote, pin, roll back (bearer token).
//! - The fleet view (`crate::fleet`): [`assets`] (`/`, the page), [`fleet`] (`GET /fleet`,
//!   `GET /tails/{tail}/history`), [`events`] (`GET /events`, its live updates).
//! - [`health`]: `/healthz`, `/readyz`, `/v2/health/*`, `/metrics`.
//! - [`openapi`]: `/openapi.json`, generated from the handlers' annotations.
//! - [`scorer`]: where `/score`'s model calls run: a cheap request on its own worker (the
//!   native trees) or batched by the scoring task (ONNX Runtime), anything bigger batched by
//!   the scoring thread (inference never runs long on an async worker).
//! - [`middleware`]: the one middleware around every handler (metrics, panics, and the limits
//!   of [`limits`]: load shedding, timeouts — the request's, its body's — and the hand-off of
//!   big bodies to blocking threads); [`json`]: request bodies; [`path`]: path parameters;
//!   [`error`]: the JSON error body.
//! - [`server`]: the connection loop (hyper): connection limit (capped by the fd limit),
//!   header-read and idle timeouts, accept errors, graceful drain; [`parse_errors`]: the JSON
//!   body of hyper's own answers to requests it cannot parse.
//!
//! Scoring and OIP routes are subject to the concurrency limit and the timeout; probes,
//! metrics and admin calls are not (a busy instance must still answer its probes, and an
//! operator must be able to roll back an overloaded one). Every error response carries a JSON
//! body: the router's ([`App`]), and hyper's own answers to requests it cannot parse (400, 414,
//! 431), rewritten on their way to the socket ([`parse_errors`]).

pub mod admin;
pub mod alerts;
pub mod assets;
pub mod drift;
pub mod error;
pub mod events;
pub mod fleet;
pub mod health;
pub mod json;
pub mod limits;
pub mod lookup;
pub mod middleware;
pub mod models;
pub mod oip;
pub mod openapi;
pub mod parse_errors;
pub mod path;
pub mod score;
pub mod scorer;
pub mod server;
pub mod tails;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRef, Request};
use axum::handler::HandlerWithoutStateExt;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::routing::get;
use axum::{BoxError, Router};
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppContext;
use crate::fleet::feed::Feed;
use error::ApiError;
use limits::Limits;
use middleware::Middleware;
use scorer::Scorer;

/// How long open connections may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers share: the service's context, the scoring thread and the fleet view's
/// live updates.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub ctx: Arc<AppContext>,
    pub scorer: Arc<Scorer>,
    pub feed: Arc<Feed>,
}

impl FromRef<ApiState> for Arc<AppContext> {
    fn from_ref(state: &ApiState) -> Self {
        Arc::clone(&state.ctx)
    }
}

impl FromRef<ApiState> for Arc<Scorer> {
    fn from_ref(state: &ApiState) -> Self {
        Arc::clone(&state.scorer)
    }
}

/// The service's routes (and the scoring thread behind them), each under the one
/// [`Middleware`]: the API routes with the concurrency limit and the request timeout, the
/// others without. The fleet view's updates run until `shutdown` (on a runtime: without one,
/// its pages get their snapshot only).
pub fn app(ctx: Arc<AppContext>) -> std::io::Result<App> {
    app_until(ctx, CancellationToken::new())
}

fn app_until(ctx: Arc<AppContext>, shutdown: CancellationToken) -> std::io::Result<App> {
    crate::metrics::install();
    let http = &ctx.config.http;
    // `Config::load` refuses these already; a config built in code must not panic here.
    http.validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e:#}")))?;
    let timeout = Duration::from_millis(http.request_timeout_ms);
    let limits = Arc::new(Limits::new(http.concurrency_limit, timeout));
    let guarded = OpenApiRouter::new()
        .routes(routes!(score::score))
        .routes(routes!(oip::server_metadata))
        .routes(routes!(oip::model_metadata))
        .routes(routes!(oip::model_ready))
        .routes(routes!(oip::infer))
        .routes(routes!(oip::model_version_metadata))
        .routes(routes!(oip::model_version_ready))
        .routes(routes!(oip::infer_version))
        .routes(routes!(tails::tail))
        .routes(routes!(alerts::alerts))
        .routes(routes!(models::models))
        .routes(routes!(drift::drift))
        .routes(routes!(fleet::fleet))
        .routes(routes!(fleet::history))
        .layer(Middleware::api(limits));
    let open = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(admin::set_pin, admin::unpin))
        .routes(routes!(admin::promote))
        .routes(routes!(admin::rollback))
        // The page and its stream are not API calls (not in the OpenAPI document).
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/app.css", get(assets::style))
        .route("/events", get(events::events));
    #[cfg(feature = "fault-injection")]
    let open = if crate::fault::armed(crate::fault::Fault::HttpHandlerPanic) {
        open.route("/fault/panic", axum::routing::get(injected_panic))
    } else {
        open
    };
    let open = open
        .fallback_service(no_route.into_service())
        .layer(Middleware::open(timeout));
    let (router, api) = guarded.merge(open).split_for_parts();
    let docs =
        openapi::router(openapi::finish(api, &ctx.config.http)).layer(Middleware::open(timeout));
    let view = &ctx.config.fleet_view;
    let feed = Feed::new(view.max_event_streams, shutdown);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let interval = Duration::from_millis(view.update_interval_ms);
        runtime.spawn(Arc::clone(&feed).run(Arc::clone(&ctx), interval));
    }
    let state = ApiState {
        scorer: Arc::new(Scorer::start()?),
        feed,
        ctx,
    };
    Ok(App(router.merge(docs).with_state(state)))
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains open requests (for at
/// most [`DRAIN_TIMEOUT`]), with the connection limits of `[http]` ([`server`]). Also
/// compacts the metrics' histograms meanwhile.
pub async fn serve(
    ctx: Arc<AppContext>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app_until(Arc::clone(&ctx), shutdown.child_token())?;
    warn_if_body_limit_is_small(&ctx.config.http);
    let settings = server::Settings::new(&ctx.config.http, DRAIN_TIMEOUT);
    server::run(listener, app, settings, shutdown).await
}

/// A `/score` row of a 100-feature set is about 2.2 KB of JSON; a body limit that cannot hold
/// `max_batch_rows` of them refuses batches the row limit allows.
fn warn_if_body_limit_is_small(http: &crate::config::HttpConfig) {
    const ROW_BYTES: usize = 2300;
    let fits = http.max_body_bytes / ROW_BYTES;
    if fits < http.max_batch_rows {
        tracing::warn!(
            max_body_bytes = http.max_body_bytes,
            max_batch_rows = http.max_batch_rows,
            rows_that_fit = fits,
            "http.max_body_bytes holds fewer 100-feature rows than http.max_batch_rows allows; \
             allow ~{ROW_BYTES} bytes per row"
        );
    }
}

/// `GET /fault/panic` with the fault `http-handler-panic` armed.
#[cfg(feature = "fault-injection")]
async fn injected_panic() -> &'static str {
    panic!("injected fault: a handler panics")
}

async fn no_route(req: Request) -> ApiError {
    ApiError::NoRoute {
        method: req.method().to_string(),
        path: req.uri().path().chars().take(200).collect(),
    }
}

/// The HTTP API as one service: the router, with a JSON error body given on the way out to the
/// error responses the router makes itself (axum's 405, whose `Allow` header is only added out
/// here, after the routes' middleware).
#[derive(Debug, Clone)]
pub struct App(Router);

impl<B> Service<axum::http::Request<B>> for App
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> AppFuture {
        AppFuture::Routing {
            inner: self.0.call(req),
        }
    }
}

pin_project! {
    /// The response of [`App`].
    #[project = AppFutureProj]
    pub enum AppFuture {
        Routing { #[pin] inner: RouteFuture<Infallible> },
        // The rare error response that is not JSON yet, its body being read.
        Converting { inner: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                AppFutureProj::Routing { inner } => {
                    let Ok(response) = ready!(inner.poll(cx));
                    if is_json_or_no_error(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    self.set(AppFuture::Converting {
                        inner: Box::pin(json_error(response)),
                    });
                }
                AppFutureProj::Converting { inner } => return inner.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

impl std::fmt::Debug for AppFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppFuture::Routing { .. } => "AppFuture::Routing",
            AppFuture::Converting { .. } => "AppFuture::Converting",
        })
    }
}

fn is_json_or_no_error(response: &Response) -> bool {
    let status = response.status();
    !(status.is_client_error() || status.is_server_error())
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
}

/// An error response that is not JSON (axum's own 405, for one) as the JSON error body,
/// keeping its status and headers (such as `Allow`).
async fn json_error(response: Response) -> Response {
    let status = response.status();
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!(
                "method not allowed here; allowed: {}",
                parts
                    .headers
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the body is too large".to_owned()),
        _ if text.trim().is_empty() => (
            "http_error",
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
        _ => ("http_error", text.trim().to_owned()),
    };
    let body = error::ErrorBody::new(code, message);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}
