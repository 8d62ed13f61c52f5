//! Admin calls: promote, pin, roll back and unpin a model, by bearer token. Off (403) when no
//! token is configured. Every call is a registry pin ([`Registry::set_pin`]), applied at once
//! and kept until the process ends or the pin is removed; `[models.pins]` in the configuration
//! is the persistent form.
//!
//! [`Registry::set_pin`]: crate::model::Registry::set_pin

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::{self, JsonBody};
use super::limits::blocking;
use super::path::PathParam;
use crate::app::AppContext;
use crate::model::ModelStatus;

/// Proof that the request carried the admin token.
#[derive(Debug)]
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    Arc<AppContext>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ctx = Arc::<AppContext>::from_ref(state);
        let Some(token) = &ctx.config.http.admin_token else {
            return Err(ApiError::AdminDisabled);
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match given {
            Some(given) if same_token(given, token) => Ok(Admin),
            _ => {
                tracing::warn!(path = %parts.uri.path(), "admin call refused: missing or wrong token");
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// Constant-time comparison of digests, so neither the content nor the length of the token
/// leaks through timing.
fn same_token(given: &str, expected: &str) -> bool {
    Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// A version that passed validation.
    #[schema(example = "2")]
    pub version: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The version to serve; without it, the current shadow is promoted.
    #[serde(default)]
    pub version: Option<String>,
}

/// The model after the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminResponse {
    pub model: String,
    /// The version serving now.
    pub serving: Option<String>,
    pub shadow: Option<String>,
    pub pinned: Option<String>,
    pub versions: Vec<ModelStatus>,
}

fn report(ctx: &AppContext, name: &str) -> AdminResponse {
    let set = ctx.registry.serving_by_name(name);
    AdminResponse {
        model: name.to_owned(),
        serving: set.as_ref().map(|s| s.serving.version().to_owned()),
        shadow: set
            .as_ref()
            .and_then(|s| s.shadow.as_ref().map(|m| m.version().to_owned())),
        pinned: ctx.registry.pins().get(name).cloned(),
        versions: ctx
            .registry
            .statuses()
            .into_iter()
            .filter(|s| s.name == name)
            .collect(),
    }
}

fn pin(
    ctx: &AppContext,
    name: &str,
    version: Option<&str>,
    action: &str,
) -> Result<Response, ApiError> {
    ctx.registry.set_pin(name, version)?;
    tracing::info!(model = %name, version = version.unwrap_or("none"), action, "admin call");
    Ok(json::ok(&report(ctx, name)))
}

#[utoipa::path(put, path = "/admin/models/{name}/pin", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Model name")),
    request_body(content = PinRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Pinned; the version serves now", body = AdminResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Admin calls are disabled", body = ErrorBody),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "The version was rejected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Wrong request shape", body = ErrorBody),
    ))]
pub async fn set_pin(
    _: Admin,
    State(ctx): State<Arc<AppContext>>,
    PathParam(name): PathParam,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request: PinRequest = json::parse(&body)?;
    blocking(None, move || {
        pin(&ctx, &name, Some(&request.version), "pin")
    })
    .await
}

#[utoipa::path(delete, path = "/admin/models/{name}/pin", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "Unpinned; the greatest valid serving-stage version serves", body = AdminResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Admin calls are disabled", body = ErrorBody),
    ))]
pub async fn unpin(
    _: Admin,
    State(ctx): State<Arc<AppContext>>,
    PathParam(name): PathParam,
) -> Result<Response, ApiError> {
    blocking(None, move || pin(&ctx, &name, None, "unpin")).await
}

#[utoipa::path(post, path = "/admin/models/{name}/promote", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Model name")),
    request_body(content = Option<PromoteRequest>, content_type = "application/json",
        description = "Optional: without a body (or a version) the shadow is promoted"),
    responses(
        (status = 200, description = "The version serves now (pinned)", body = AdminResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Admin calls are disabled", body = ErrorBody),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "No shadow to promote, or the version was rejected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Wrong request shape", body = ErrorBody),
    ))]
pub async fn promote(
    _: Admin,
    State(ctx): State<Arc<AppContext>>,
    PathParam(name): PathParam,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request: PromoteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PromoteRequest::default()
    } else {
        json::parse(&body)?
    };
    blocking(None, move || {
        let version = match request.version {
            Some(version) => version,
            None => ctx
                .registry
                .serving_by_name(&name)
                .and_then(|s| s.shadow.map(|m| m.version().to_owned()))
                .ok_or_else(|| {
                    ApiError::Conflict(format!(
                        "model `{name}` has no shadow version to promote; give a `version`"
                    ))
                })?,
        };
        pin(&ctx, &name, Some(&version), "promote")
    })
    .await
}

#[utoipa::path(post, path = "/admin/models/{name}/rollback", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "The previous valid version serves now (pinned)", body = AdminResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Admin calls are disabled", body = ErrorBody),
        (status = 404, description = "No such model is serving", body = ErrorBody),
        (status = 409, description = "No valid version older than the serving one", body = ErrorBody),
    ))]
pub async fn rollback(
    _: Admin,
    State(ctx): State<Arc<AppContext>>,
    PathParam(name): PathParam,
) -> Result<Response, ApiError> {
    blocking(None, move || {
        let serving = super::lookup::serving(&ctx, &name)?;
        let current = serving.serving.version().to_owned();
        // Statuses come greatest version first: the next valid one after the serving one.
        let previous = ctx
            .registry
            .statuses()
            .into_iter()
            .filter(|s| s.name == name && s.state.is_valid())
            .skip_while(|s| s.version != current)
            .nth(1)
            .map(|s| s.version)
            .ok_or_else(|| {
                ApiError::Conflict(format!(
                    "model `{name}` has no valid version older than {current} to roll back to"
                ))
            })?;
        pin(&ctx, &name, Some(&previous), "rollback")
    })
    .await
}
