//! The HTTP API (axum): scoring, Open Inference Protocol, fleet state, health, metrics.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::AppContext;

/// The service's routes.
pub fn app(ctx: Arc<AppContext>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .with_state(ctx)
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains open requests.
pub async fn serve(
    ctx: Arc<AppContext>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(ctx))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
