//! Probes and metrics: `/healthz` (the process answers), `/readyz` (models loaded and, when
//! streaming, partitions assigned and ready), their Open Inference Protocol twins, and
//! `/metrics` in the Prometheus text format. None of these is subject to load shedding: a busy
//! instance must not be restarted by its liveness probe.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::alerts::listing;
use crate::app::AppContext;
use crate::metrics::names;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessReport {
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub live: bool,
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Response {
    axum::Json(Health {
        status: "ok".to_owned(),
    })
    .into_response()
}

fn readiness(ctx: &AppContext) -> Response {
    let reason = ctx.readiness.not_ready_reason(&ctx.registry);
    let status = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ReadinessReport {
        ready: reason.is_none(),
        reason,
    };
    (status, axum::Json(body)).into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = ReadinessReport),
        (status = 503, description = "Not ready, with the reason", body = ReadinessReport),
    ))]
pub async fn readyz(State(ctx): State<Arc<AppContext>>) -> Response {
    readiness(&ctx)
}

#[utoipa::path(get, path = "/v2/health/live", tag = "open-inference",
    responses((status = 200, description = "The server is live", body = Liveness)))]
pub async fn live() -> Response {
    axum::Json(Liveness { live: true }).into_response()
}

#[utoipa::path(get, path = "/v2/health/ready", tag = "open-inference",
    responses(
        (status = 200, description = "Ready to serve", body = ReadinessReport),
        (status = 503, description = "Not ready, with the reason", body = ReadinessReport),
    ))]
pub async fn ready(State(ctx): State<Arc<AppContext>>) -> Response {
    readiness(&ctx)
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain")))]
pub async fn metrics(State(ctx): State<Arc<AppContext>>) -> Response {
    let mut text = crate::metrics::render(&ctx.registry);
    let open = listing::open_counts(&ctx.config.alerts, &ctx.store);
    crate::metrics::write_gauge(
        &mut text,
        names::ALERTS_OPEN,
        "Open alert episodes of the aircraft this instance owns, by rule and severity.",
        open.into_iter().map(|(rule, severity, n)| {
            (
                vec![("rule", rule), ("severity", severity.as_str())],
                n as f64,
            )
        }),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
