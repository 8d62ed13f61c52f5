//! Path parameters with JSON errors (axum's own rejection is plain text).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The one path parameter of a route (`{name}`, `{tail}`).
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        extract(parts, state).await.map(PathParam)
    }
}

/// The route's path parameters as `T`, or a JSON 422 saying why not.
async fn extract<T, S>(parts: &mut Parts, state: &S) -> Result<T, ApiError>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    match Path::<T>::from_request_parts(parts, state).await {
        Ok(Path(value)) => Ok(value),
        Err(rejection) => Err(ApiError::InvalidRequest {
            message: rejection.body_text(),
            field: None,
            row: None,
        }),
    }
}

/// The model name and version of a versioned route (`/v2/models/{name}/versions/{version}`).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelVersion {
    /// Model name
    pub name: String,
    /// Model version
    pub version: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ModelVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let (name, version) = extract(parts, state).await?;
        Ok(ModelVersion { name, version })
    }
}
