//! The Open Inference Protocol (KServe v2, also spoken by Triton clients): server and model
//! metadata, readiness, and `infer` on a `[N, width]` FP32 tensor in the model's feature order.
//!
//! Unversioned calls address the serving version (and its shadow, as everywhere); the
//! versioned ones (`/v2/models/{name}/versions/{version}[/ready|/infer]`) any valid version,
//! alone, so that versions can be compared on the same inputs. Only the JSON tensor form is
//! supported (no binary-data extension). The model's one output column is returned as
//! `[N, 1]` under the manifest's output name.

mod tensor;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::{self, JsonBody};
use super::limits::{Permit, parse_off_worker_if_big};
use super::lookup::serving;
use super::path::{ModelVersion, PathParam as ModelName};
use super::scorer::Scorer;
use crate::app::AppContext;
use crate::model::ServingSet;
use crate::model::{BackendKind, LoadedModel};

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

#[utoipa::path(get, path = "/v2", tag = "open-inference",
    responses((status = 200, description = "Server metadata", body = ServerMetadata)))]
pub async fn server_metadata() -> Response {
    json::ok(&ServerMetadata {
        name: "fleetscore".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        extensions: Vec::new(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    #[schema(example = "FP32")]
    pub datatype: String,
    /// `-1` for the batch dimension.
    pub shape: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    /// The version these metadata describe (for the unversioned call: the serving one).
    pub version: String,
    /// Every valid version, greatest first: each can be asked for with
    /// `/v2/models/{name}/versions/{version}/...`.
    pub versions: Vec<String>,
    #[schema(example = "onnxruntime_onnx")]
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    pub parameters: ModelParameters,
}

/// Beyond the protocol: what the input columns are.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelParameters {
    pub feature_set: String,
    pub feature_set_version: String,
    /// The input's columns, in order (the feature names `POST /score` rows use).
    pub features: Vec<String>,
    pub output_meaning: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_unit: Option<String>,
    pub model_sha256: String,
}

#[utoipa::path(get, path = "/v2/models/{name}", tag = "open-inference",
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "Model metadata", body = ModelMetadata),
        (status = 404, description = "No such model is serving", body = ErrorBody),
    ))]
pub async fn model_metadata(
    State(ctx): State<Arc<AppContext>>,
    ModelName(name): ModelName,
) -> Result<Response, ApiError> {
    let set = serving(&ctx, &name)?;
    Ok(json::ok(&metadata(&ctx, &set.serving)))
}

#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "open-inference",
    params(ModelVersion),
    responses(
        (status = 200, description = "Metadata of that version", body = ModelMetadata),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "The version was rejected (`reason`)", body = ErrorBody),
    ))]
pub async fn model_version_metadata(
    State(ctx): State<Arc<AppContext>>,
    path: ModelVersion,
) -> Result<Response, ApiError> {
    let model = ctx.registry.version(&path.name, &path.version)?;
    Ok(json::ok(&metadata(&ctx, &model)))
}

fn metadata(ctx: &AppContext, model: &LoadedModel) -> ModelMetadata {
    let width = model.width() as i64;
    ModelMetadata {
        name: model.name().to_owned(),
        version: model.version().to_owned(),
        versions: ctx.registry.valid_versions(model.name()),
        platform: match model.backend.kind() {
            BackendKind::Ort => "onnxruntime_onnx",
            BackendKind::Tract => "tract_onnx",
            BackendKind::Trees => "fleetscore_trees_onnx",
        }
        .to_owned(),
        inputs: vec![TensorMetadata {
            name: model.manifest.input.name.clone(),
            datatype: "FP32".to_owned(),
            shape: vec![-1, width],
        }],
        outputs: vec![TensorMetadata {
            name: model.manifest.output.name.clone(),
            datatype: "FP32".to_owned(),
            shape: vec![-1, 1],
        }],
        parameters: ModelParameters {
            feature_set: model.feature_set.name().to_owned(),
            feature_set_version: model.feature_set.version().to_owned(),
            features: model.feature_set.names().to_vec(),
            output_meaning: model.manifest.output.meaning.clone(),
            output_unit: model.manifest.output.unit.clone(),
            model_sha256: model.sha256.clone(),
        },
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
}

#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "open-inference",
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "The model is serving", body = ModelReady),
        (status = 404, description = "No such model is serving", body = ErrorBody),
    ))]
pub async fn model_ready(
    State(ctx): State<Arc<AppContext>>,
    ModelName(name): ModelName,
) -> Result<Response, ApiError> {
    let set = serving(&ctx, &name)?;
    Ok(json::ok(&ModelReady {
        name: set.serving.name().to_owned(),
        ready: true,
    }))
}

#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "open-inference",
    params(ModelVersion),
    responses(
        (status = 200, description = "The version is loaded and valid", body = ModelReady),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "The version was rejected (`reason`)", body = ErrorBody),
    ))]
pub async fn model_version_ready(
    State(ctx): State<Arc<AppContext>>,
    path: ModelVersion,
) -> Result<Response, ApiError> {
    let model = ctx.registry.version(&path.name, &path.version)?;
    Ok(json::ok(&ModelReady {
        name: model.name().to_owned(),
        ready: true,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<BTreeMap<String, Value>>,
    /// Exactly one input: `[N, width]` FP32 (FP64 is accepted and narrowed).
    #[schema(min_items = 1, max_items = 1)]
    pub inputs: Vec<InferInput>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InferInput {
    pub name: String,
    pub shape: Vec<i64>,
    #[schema(example = "FP32")]
    pub datatype: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<BTreeMap<String, Value>>,
    /// Row-major values, flat or nested.
    #[schema(value_type = Vec<Object>)]
    pub data: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<InferOutput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InferOutput {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    pub data: Vec<f32>,
}

#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "open-inference",
    params(("name" = String, Path, description = "Model name")),
    request_body(content = InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One output, `[N, 1]`", body = InferResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such model is serving", body = ErrorBody),
        (status = 413, description = "Too many rows or too large a body", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Wrong tensor name, type, shape or values", body = ErrorBody),
        (status = 503, description = "Overloaded or timed out; retry", body = ErrorBody),
    ))]
pub async fn infer(
    State(ctx): State<Arc<AppContext>>,
    State(scorer): State<Arc<Scorer>>,
    ModelName(name): ModelName,
    permit: Option<Extension<Permit>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    run_infer(ctx, &scorer, Target::Serving(name), permit, body).await
}

#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "open-inference",
    params(ModelVersion),
    request_body(content = InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One output, `[N, 1]`, from that version alone", body = InferResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "The version was rejected (`reason`)", body = ErrorBody),
        (status = 413, description = "Too many rows or too large a body", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Wrong tensor name, type, shape or values", body = ErrorBody),
        (status = 503, description = "Overloaded or timed out; retry", body = ErrorBody),
    ))]
pub async fn infer_version(
    State(ctx): State<Arc<AppContext>>,
    State(scorer): State<Arc<Scorer>>,
    path: ModelVersion,
    permit: Option<Extension<Permit>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    run_infer(ctx, &scorer, Target::Version(path), permit, body).await
}

/// The model an `infer` call addresses.
pub(crate) enum Target {
    /// The serving version (with its shadow).
    Serving(String),
    /// One valid version, alone.
    Version(ModelVersion),
}

impl Target {
    pub(crate) fn resolve(&self, ctx: &AppContext) -> Result<ServingSet, ApiError> {
        match self {
            Target::Serving(name) => serving(ctx, name),
            Target::Version(v) => Ok(ServingSet {
                serving: ctx.registry.version(&v.name, &v.version)?,
                shadow: None,
            }),
        }
    }
}

async fn run_infer(
    ctx: Arc<AppContext>,
    scorer: &Scorer,
    target: Target,
    permit: Option<Extension<Permit>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let permit = permit.map(|p| p.0);
    let prepared = {
        let ctx = Arc::clone(&ctx);
        parse_off_worker_if_big(permit.clone(), body.len(), move || {
            tensor::prepare(&ctx, &target, &body)
        })
        .await?
    };
    let (serving, values, rows, id) = prepared;
    let output = scorer
        .score(serving, values, rows, permit)
        .await
        .map_err(ApiError::Scoring)?;
    let model = output.model;
    if let Some(row) = output.predictions.iter().position(|p| !p.is_finite()) {
        return Err(ApiError::NonFiniteOutput {
            model: model.label(),
            row,
        });
    }
    crate::metrics::record_score_rows(model.name(), rows);
    Ok(json::ok(&InferResponse {
        model_name: model.name().to_owned(),
        model_version: model.version().to_owned(),
        id,
        outputs: vec![InferOutput {
            name: model.manifest.output.name.clone(),
            shape: vec![rows as i64, 1],
            datatype: "FP32".to_owned(),
            data: output.predictions,
        }],
    }))
}
