//! `GET /models`: every model version the registry has seen, with its state (serving, shadow,
//! standby, rejected with the reason, pending), the feature-set routes and the pins in force.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use fleet_features::FeatureSet;
use serde::Serialize;
use utoipa::ToSchema;

use super::json;
use crate::app::AppContext;
use crate::model::ModelStatus;

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    pub models: Vec<VersionStatus>,
    /// Feature set -> the model scoring it for the streaming path (null: none serving).
    pub routes: BTreeMap<String, Option<String>>,
    /// Model name -> pinned version (configuration and admin calls).
    pub pins: BTreeMap<String, String>,
}

/// One model version as the registry sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionStatus {
    pub name: String,
    pub version: String,
    /// `serving`, `shadow`, `standby` (valid, not chosen), `rejected` or `pending`.
    #[schema(example = "serving")]
    pub state: String,
    /// The manifest's stage (`serving` or `shadow`), for valid versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `name@version` of the feature set the model was trained on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_set: Option<String>,
    /// Rejection class (`checksum_mismatch`, `golden_mismatch`...) or why it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub pinned: bool,
}

impl From<ModelStatus> for VersionStatus {
    fn from(s: ModelStatus) -> Self {
        Self {
            name: s.name,
            version: s.version,
            state: s.state.to_owned(),
            stage: s.stage.map(|stage| match stage {
                crate::model::Stage::Serving => "serving".to_owned(),
                crate::model::Stage::Shadow => "shadow".to_owned(),
            }),
            backend: s.backend.map(str::to_owned),
            sha256: s.sha256,
            feature_set: s.feature_set,
            reason: s.reason,
            message: s.message,
            pinned: s.pinned,
        }
    }
}

#[utoipa::path(get, path = "/models", tag = "models",
    responses((status = 200, description = "Every model version and its state", body = ModelsResponse)))]
pub async fn models(State(ctx): State<Arc<AppContext>>) -> Response {
    json::ok(&list(&ctx))
}

pub fn list(ctx: &AppContext) -> ModelsResponse {
    let routes = FeatureSet::all()
        .into_iter()
        .map(|set| {
            let model = ctx
                .registry
                .serving(set.id())
                .map(|s| format!("{}/{}", s.serving.name(), s.serving.version()));
            (set.name().to_owned(), model)
        })
        .collect();
    ModelsResponse {
        models: ctx
            .registry
            .statuses()
            .into_iter()
            .map(Into::into)
            .collect(),
        routes,
        pins: ctx.registry.pins(),
    }
}
