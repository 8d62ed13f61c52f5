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
use crate::drift::{DriftStatus, Measure, ModelDrift};
use crate::metrics::names;
use crate::model::remote::SourceStatus;

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
    /// The last sync from object storage, when the models come from there (`ok: false`: the
    /// bucket could not be read; the cached models keep serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models_source: Option<SourceStatus>,
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
        models_source: ctx.readiness.models_source(),
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
    let drift_open = ctx.drift.open_episodes();
    let open = listing::open_counts(&ctx.config.alerts, &ctx.store, &drift_open);
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
    drift_gauges(&mut text, &ctx.drift.serving(&ctx.registry));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The drift gauges of the windows of the versions serving now, from their last evaluation
/// (the window's rows also while warming up).
fn drift_gauges(text: &mut String, windows: &[Arc<ModelDrift>]) {
    use crate::metrics::write_gauge;
    fn labels(d: &ModelDrift) -> Vec<(&str, &str)> {
        vec![("model", d.model.as_str()), ("version", d.version.as_str())]
    }
    let evaluated = || {
        windows
            .iter()
            .filter_map(|d| Some((d, d.evaluation.as_deref()?)))
    };
    write_gauge(
        text,
        names::DRIFT_WINDOW_ROWS,
        "Rows in the drift window of each serving model on this instance.",
        windows
            .iter()
            .filter(|d| d.status != DriftStatus::NoProfile)
            .map(|d| (labels(d), d.rows as f64)),
    );
    for (name, help, measure) in [
        (
            names::DRIFT_PSI,
            "Population stability index of each feature (and the output) of the drift window, at its last evaluation.",
            Measure::Psi,
        ),
        (
            names::DRIFT_JS,
            "Jensen-Shannon distance (base 2) of each feature (and the output) of the drift window, at its last evaluation.",
            Measure::Js,
        ),
    ] {
        write_gauge(
            text,
            name,
            help,
            evaluated().flat_map(|(d, e)| {
                e.report
                    .features
                    .iter()
                    .chain([&e.report.output])
                    .map(move |f| {
                        let mut l = labels(d);
                        l.push(("feature", f.name.as_str()));
                        (l, f.value(measure))
                    })
            }),
        );
    }
    write_gauge(
        text,
        names::DRIFT_WORST_PSI,
        "The worst PSI over the features not excluded of the drift window, at its last evaluation.",
        evaluated().map(|(d, e)| (labels(d), e.report.worst_psi())),
    );
    write_gauge(
        text,
        names::DRIFT_LEVEL,
        "The drift level of the window at its last evaluation: 0 ok, 1 warning, 2 critical.",
        evaluated().map(|(d, e)| (labels(d), e.report.level as u8 as f64)),
    );
}
