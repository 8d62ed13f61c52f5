//! Request bodies: read whole (within `http.max_body_bytes` and, see [`super::limits`], the
//! request timeout), checked for a JSON content type,
//! and parsed with each failure classified: not JSON at all is a 400, JSON of the wrong shape
//! a 422 naming the field.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::ApiError;
use crate::app::AppContext;

/// The raw bytes of a JSON request body; parse them with [`parse`] (borrowing from them).
#[derive(Debug)]
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody
where
    Arc<AppContext>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ctx = Arc::<AppContext>::from_ref(state);
        let limit = ctx.config.http.max_body_bytes;
        if let Some(value) = req.headers().get(header::CONTENT_TYPE) {
            let text = value.to_str().unwrap_or("");
            if !is_json(text) {
                return Err(ApiError::UnsupportedMediaType(
                    text.chars().take(100).collect(),
                ));
            }
        }
        // Refused before a byte of it is read when its length is announced.
        if content_length(req.headers()).is_some_and(|length| length > limit as u64) {
            return Err(ApiError::BodyTooLarge(limit));
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(bytes) => Ok(JsonBody(bytes)),
            Err(e) if super::limits::timed_out(&e) => {
                let timeout = ctx.config.http.request_timeout_ms;
                metrics::counter!(crate::metrics::names::HTTP_BODY_TIMEOUTS).increment(1);
                Err(ApiError::RequestTimeout(timeout))
            }
            Err(e) if too_long(&e) => Err(ApiError::BodyTooLarge(limit)),
            Err(e) => Err(ApiError::InvalidRequest {
                message: format!("the body could not be read: {e}"),
                field: None,
                row: None,
            }),
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether reading a body failed on the length limit.
fn too_long(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `application/json`, `application/problem+json` and the like, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `bytes` as `T`: syntax errors are [`ApiError::MalformedJson`] (400), shape errors
/// (missing, unknown or mistyped fields) [`ApiError::InvalidRequest`] (422).
pub fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(classify)
}

pub fn classify(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => ApiError::MalformedJson(e.to_string()),
        Category::Data => ApiError::InvalidRequest {
            field: field_of(&e.to_string()),
            message: e.to_string(),
            row: None,
        },
    }
}

/// The field a serde message names (`missing field `model``, `unknown field `rowz``).
fn field_of(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

/// Serializes `value` as a JSON response (status 200).
pub fn ok<T: serde::Serialize>(value: &T) -> axum::response::Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from(bytes),
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("serializing a response: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn syntax_is_400_shape_is_422_with_the_field() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            model: String,
        }
        assert!(matches!(
            parse::<T>(b"{\"model\":"),
            Err(ApiError::MalformedJson(_))
        ));
        match parse::<T>(b"{\"modle\":\"x\"}") {
            Err(ApiError::InvalidRequest { field, .. }) => {
                assert_eq!(field.as_deref(), Some("modle"))
            }
            other => panic!("{other:?}"),
        }
        match parse::<T>(b"{}") {
            Err(ApiError::InvalidRequest { field, .. }) => {
                assert_eq!(field.as_deref(), Some("model"))
            }
            other => panic!("{other:?}"),
        }
    }
}
