//! The HTTP API (axum): scoring, the Open Inference Protocol, fleet state, model admin, health,
//! metrics and the OpenAPI document.
//!
//! # Layout
//!
//! - [`score`]: `POST /score`, explicit feature rows or a tail's live state (with an optional
//!   hypothetical event).
//! - [`oip`]: the Open Inference Protocol v2 (`/v2`, `/v2/models/{name}[/ready|/infer]`, and
//!   the same under `/v2/models/{name}/versions/{version}`).
//! - [`tails`]: `GET /tails/{tail}`; [`models`]: `GET /models`; [`admin`]: promote, pin, roll
//!   back (bearer token).
//! - [`health`]: `/healthz`, `/readyz`, `/v2/health/*`, `/metrics`.
//! - [`openapi`]: `/openapi.json`, generated from the handlers' annotations.
//! - [`scorer`]: the scoring thread (inference never runs on an async worker), which batches
//!   requests that arrive together into one backend call per model.
//! - [`limits`]: load shedding, timeouts (the request's; its body's), and the hand-off of big
//!   bodies to blocking threads; [`json`]: request bodies; [`path`]: path parameters;
//!   [`error`]: the JSON error body.
//! - [`server`]: the connection loop (hyper): connection limit (capped by the fd limit),
//!   header-read and idle timeouts, accept errors, graceful drain.
//!
//! Scoring and OIP routes are subject to the concurrency limit and the timeout; probes,
//! metrics and admin calls are not (a busy instance must still answer its probes, and an
//! operator must be able to roll back an overloaded one). Every response that the router
//! produces and that is an error carries a JSON body; hyper's own answers to requests it
//! cannot parse (400, 414, 431) have none (see the README).

pub mod admin;
pub mod error;
pub mod health;
pub mod json;
pub mod limits;
pub mod lookup;
pub mod models;
pub mod oip;
pub mod openapi;
pub mod path;
pub mod score;
pub mod scorer;
pub mod server;
pub mod state_info;
pub mod tails;

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppContext;
use error::ApiError;
use limits::Limits;

/// How long open connections may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The service's routes (and the scoring thread behind them).
pub fn app(ctx: Arc<AppContext>) -> std::io::Result<Router> {
    crate::metrics::install();
    let http = &ctx.config.http;
    // `Config::load` refuses these already; a config built in code must not panic here.
    http.validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e:#}")))?;
    let limits = Arc::new(Limits::new(
        http.concurrency_limit,
        Duration::from_millis(http.request_timeout_ms),
    ));
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
        .routes(routes!(models::models))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&limits),
            limits::guard,
        ));
    let open = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(admin::set_pin, admin::unpin))
        .routes(routes!(admin::promote))
        .routes(routes!(admin::rollback));
    #[cfg(feature = "fault-injection")]
    let open = if crate::fault::armed(crate::fault::Fault::HttpHandlerPanic) {
        open.route("/fault/panic", axum::routing::get(injected_panic))
    } else {
        open
    };
    let (router, api) = guarded.merge(open).split_for_parts();
    let max_body = http.max_body_bytes;
    let scorer = Arc::new(scorer::Scorer::start()?);
    let routes = router
        .merge(openapi::router(openapi::finish(api, &ctx.config.http)))
        .fallback(no_route)
        .layer(Extension(scorer))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(limits, limits::deadline))
        .layer(middleware::from_fn(observe))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(ctx);
    // Outside the routes: a route's 405 gets its `Allow` header only on the way out of it.
    Ok(Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(json_errors)))
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains open requests (for at
/// most [`DRAIN_TIMEOUT`]), with the connection limits of `[http]` ([`server`]). Also
/// compacts the metrics' histograms meanwhile.
pub async fn serve(
    ctx: Arc<AppContext>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = app(Arc::clone(&ctx))?;
    warn_if_body_limit_is_small(&ctx.config.http);
    let settings = server::Settings::new(&ctx.config.http, DRAIN_TIMEOUT);
    server::run(listener, router, settings, shutdown).await
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

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}

/// Counts every request by method, route (the pattern, not the path) and status, and times it.
async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    crate::metrics::record_request(
        method.as_str(),
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        start.elapsed(),
    );
    response
}

/// Turns an error response that is not JSON (axum's own 405, for one) into the JSON error
/// body, keeping its status and headers (such as `Allow`).
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
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
