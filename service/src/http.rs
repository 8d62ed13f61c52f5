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
//! - [`limits`]: load shedding, timeout, and the hand-off of big bodies to blocking threads;
//!   [`json`]: request bodies; [`path`]: path parameters; [`error`]: the JSON error body.
//!
//! Scoring and OIP routes are subject to the concurrency limit and the timeout; probes,
//! metrics and admin calls are not (a busy instance must still answer its probes, and an
//! operator must be able to roll back an overloaded one). Every response that is an error
//! carries a JSON body, whatever produced it.

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
use axum::serve::ListenerExt;
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
        .layer(middleware::from_fn_with_state(limits, limits::guard));
    let open = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(admin::set_pin, admin::unpin))
        .routes(routes!(admin::promote))
        .routes(routes!(admin::rollback));
    let (router, api) = guarded.merge(open).split_for_parts();
    let max_body = http.max_body_bytes;
    let scorer = Arc::new(scorer::Scorer::start()?);
    Ok(router
        .merge(openapi::router(openapi::finish(api, &ctx.config.http)))
        .fallback(no_route)
        .layer(Extension(scorer))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(observe))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(ctx))
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains open requests (for at
/// most [`DRAIN_TIMEOUT`]). Also compacts the metrics' histograms meanwhile.
pub async fn serve(
    ctx: Arc<AppContext>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Small responses must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
    });
    let drained = shutdown.clone();
    let server = axum::serve(listener, app(ctx)?)
        .with_graceful_shutdown(async move { drained.cancelled().await })
        .into_future();
    tokio::pin!(server);
    let mut upkeep = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
    let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            result = &mut server => return result,
            _ = upkeep.tick() => crate::metrics::upkeep(),
            () = shutdown.cancelled(), if deadline.is_none() => {
                deadline = Some(Box::pin(tokio::time::sleep(DRAIN_TIMEOUT)));
            }
            () = async { deadline.as_mut().expect("guarded").await }, if deadline.is_some() => {
                tracing::warn!(timeout_s = DRAIN_TIMEOUT.as_secs(), "HTTP connections still open after the drain timeout; closing them");
                return Ok(());
            }
        }
    }
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

/// Counts every request by method, route (the pattern, not the path) and status, and times it;
/// gives every error response a JSON body ([`json_errors`]).
async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = json_errors(next.run(req).await).await;
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
async fn json_errors(response: Response) -> Response {
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
