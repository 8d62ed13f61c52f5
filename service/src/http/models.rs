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
    pub models: Vec<ModelStatus>,
    /// Feature set -> the models it feeds, in order (the streaming path publishes one
    /// prediction per event and model).
    pub routes: BTreeMap<String, Vec<RoutedModel>>,
    /// Model name -> pinned version (configuration and admin calls).
    pub pins: BTreeMap<String, String>,
}

/// A model a feature set feeds, and the version serving it (null: none).
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutedModel {
    pub model: String,
    pub serving: Option<String>,
}

#[utoipa::path(get, path = "/models", tag = "models",
    responses((status = 200, description = "Every model version and its state", body = ModelsResponse)))]
pub async fn models(State(ctx): State<Arc<AppContext>>) -> Response {
    json::ok(&list(&ctx))
}

pub fn list(ctx: &AppContext) -> ModelsResponse {
    let routes = FeatureSet::all()
        .map(|set| {
            let serving = ctx.registry.routed(set.id());
            let models = ctx.registry.config().routes[set.id()]
                .iter()
                .map(|name| RoutedModel {
                    model: name.clone(),
                    serving: serving
                        .iter()
                        .find(|s| s.serving.name() == name)
                        .map(|s| s.serving.version().to_owned()),
                })
                .collect();
            (set.name().to_owned(), models)
        })
        .collect();
    ModelsResponse {
        models: ctx.registry.statuses(),
        routes,
        pins: ctx.registry.pins(),
    }
}
