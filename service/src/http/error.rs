//! Every error the API returns: a status, a stable `code`, a message that helps the caller, and
//! the details a program needs (which features are missing, which row). Internals (backend
//! messages, paths) are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fleet_features::DecodeError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::ModelError;
use crate::model::registry::VersionError;

/// The body of every error response. `error` is a sentence for people (and the Open Inference
/// Protocol's error field); `code` is for programs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// Stable snake_case class, for programs (e.g. `unknown_model`, `feature_mismatch`).
    pub code: &'static str,
    /// Features the model needs that the row does not give.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Names in the row that are not features of the model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// Index of the offending row in `rows` (or in the tensor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
    /// The offending field or feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For an event that does not decode: the reject reason (`missing_field`, `out_of_range`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The limit that was exceeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// For an unknown model: the models that are serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

impl ErrorBody {
    /// A body with the sentence and the class only.
    pub fn new(code: &'static str, error: String) -> Self {
        Self {
            error,
            code,
            missing: Vec::new(),
            unknown: Vec::new(),
            row: None,
            field: None,
            reason: None,
            limit: None,
            models: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (syntax error, truncated, not UTF-8).
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body must be JSON (Content-Type: application/json), not `{0}`")]
    UnsupportedMediaType(String),
    /// JSON of the wrong shape: missing or unknown fields, wrong types.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        field: Option<String>,
        row: Option<usize>,
    },
    #[error("no model named `{name}` is serving")]
    UnknownModel { name: String, serving: Vec<String> },
    #[error("tail `{0}` is not known to this instance (no event for it was applied here)")]
    UnknownTail(String),
    /// A query parameter that is unknown or does not parse.
    #[error("{0}")]
    InvalidQuery(String),
    #[error("row {row}: {} missing and {} unknown feature names", missing.len(), unknown.len())]
    FeatureMismatch {
        row: usize,
        missing: Vec<String>,
        unknown: Vec<String>,
    },
    #[error("row {row}: feature `{feature}` is {value}, which is not a finite float32")]
    NotFinite {
        row: usize,
        feature: String,
        value: f64,
    },
    #[error("{rows} rows; at most {max} rows per request")]
    BatchTooLarge { rows: usize, max: usize },
    #[error("the request must carry at least one row")]
    EmptyBatch,
    #[error("the event does not decode: {0}")]
    InvalidEvent(DecodeError),
    #[error("the event is for tail `{event}`, the request for `{request}`")]
    TailMismatch { event: String, request: String },
    #[error("tail `{tail}` has no {what} yet: nothing to compute {feature_set} from")]
    NoHistory {
        tail: String,
        what: &'static str,
        feature_set: &'static str,
    },
    #[error("model {model} gave no finite prediction for row {row} (inputs outside its range?)")]
    NonFiniteOutput { model: String, row: usize },
    #[error("scoring failed")]
    Scoring(#[source] ModelError),
    #[error("internal error")]
    Internal(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("admin calls are disabled: no admin token is configured (http.admin_token)")]
    AdminDisabled,
    #[error(transparent)]
    Version(VersionError),
    #[error("{0}")]
    Conflict(String),
    /// The tail's partition is being restored from the changelog (start, rebalance).
    #[error(
        "the state of tail `{0}` is being restored from the changelog (after a start or a rebalance); retry shortly"
    )]
    Restoring(String),
    #[error("the service is at its concurrency limit ({0} requests in flight); retry shortly")]
    Overloaded(usize),
    #[error(
        "{0} live-update streams are open, the most allowed (fleet_view.max_event_streams); retry shortly"
    )]
    TooManyStreams(usize),
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// The client did not deliver the body in time: its fault, not overload.
    #[error("the request body did not arrive within {0} ms")]
    RequestTimeout(u64),
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("the body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// hyper could not parse the request head. This and the next two are hyper's own answers
    /// (the request never reaches the router), given their body on the way out by
    /// [`super::parse_errors`].
    #[error(
        "the request line or headers could not be parsed (a malformed request line or header, \
         or a Content-Length that is invalid or given twice with different values)"
    )]
    BadRequestHead,
    #[error("the request URI is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("the request head (request line and headers) is larger than {0} bytes")]
    HeadersTooLarge(usize),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MalformedJson(_) | BadRequestHead | InvalidQuery(_) => StatusCode::BAD_REQUEST,
            UriTooLong(_) => StatusCode::URI_TOO_LONG,
            HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InvalidRequest { .. }
            | FeatureMismatch { .. }
            | NotFinite { .. }
            | EmptyBatch
            | InvalidEvent(_)
            | TailMismatch { .. }
            | NonFiniteOutput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            UnknownModel { .. } | UnknownTail(_) | NoRoute { .. } => StatusCode::NOT_FOUND,
            Version(VersionError::UnknownModel(_) | VersionError::UnknownVersion { .. }) => {
                StatusCode::NOT_FOUND
            }
            Version(VersionError::NotValid { .. }) | Conflict(_) | NoHistory { .. } => {
                StatusCode::CONFLICT
            }
            BatchTooLarge { .. } | BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Scoring(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Unauthorized => StatusCode::UNAUTHORIZED,
            AdminDisabled => StatusCode::FORBIDDEN,
            Overloaded(_) | Timeout(_) | Restoring(_) | TooManyStreams(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            UnsupportedMediaType(_) => "unsupported_media_type",
            InvalidRequest { .. } => "invalid_request",
            UnknownModel { .. } => "unknown_model",
            UnknownTail(_) => "unknown_tail",
            InvalidQuery(_) => "invalid_query",
            FeatureMismatch { .. } => "feature_mismatch",
            NotFinite { .. } => "not_finite",
            BatchTooLarge { .. } => "batch_too_large",
            EmptyBatch => "empty_batch",
            InvalidEvent(_) => "invalid_event",
            TailMismatch { .. } => "tail_mismatch",
            NoHistory { .. } => "no_history",
            NonFiniteOutput { .. } => "non_finite_output",
            Scoring(_) => "scoring_failed",
            Internal(_) => "internal",
            Unauthorized => "unauthorized",
            AdminDisabled => "admin_disabled",
            Version(VersionError::UnknownModel(_)) => "unknown_model",
            Version(VersionError::UnknownVersion { .. }) => "unknown_version",
            Version(VersionError::NotValid { .. }) => "version_not_valid",
            Conflict(_) => "conflict",
            Overloaded(_) => "overloaded",
            TooManyStreams(_) => "too_many_streams",
            Restoring(_) => "restoring",
            Timeout(_) => "timeout",
            RequestTimeout(_) => "request_timeout",
            NoRoute { .. } => "not_found",
            MethodNotAllowed(_) => "method_not_allowed",
            BodyTooLarge(_) => "body_too_large",
            BadRequestHead => "bad_request",
            UriTooLong(_) => "uri_too_long",
            HeadersTooLarge(_) => "headers_too_large",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.to_string());
        match self {
            ApiError::InvalidRequest { field, row, .. } => {
                body.field.clone_from(field);
                body.row = *row;
            }
            ApiError::UnknownModel { serving, .. } => body.models = Some(serving.clone()),
            ApiError::FeatureMismatch {
                row,
                missing,
                unknown,
            } => {
                body.row = Some(*row);
                body.missing.clone_from(missing);
                body.unknown.clone_from(unknown);
                body.error = describe_mismatch(*row, missing, unknown);
            }
            ApiError::NotFinite { row, feature, .. } => {
                body.row = Some(*row);
                body.field = Some(feature.clone());
            }
            ApiError::NonFiniteOutput { row, .. } => body.row = Some(*row),
            ApiError::BatchTooLarge { max, .. } => body.limit = Some(*max as u64),
            ApiError::BodyTooLarge(limit)
            | ApiError::UriTooLong(limit)
            | ApiError::HeadersTooLarge(limit) => body.limit = Some(*limit as u64),
            ApiError::Overloaded(limit) | ApiError::TooManyStreams(limit) => {
                body.limit = Some(*limit as u64)
            }
            ApiError::Timeout(ms) | ApiError::RequestTimeout(ms) => body.limit = Some(*ms),
            ApiError::InvalidEvent(e) => {
                body.reason = Some(e.reason.as_str().to_owned());
                body.field = e.field.map(|f| format!("event.{f}"));
            }
            ApiError::Version(VersionError::NotValid { reason, .. }) => {
                body.reason = Some(reason.clone())
            }
            _ => {}
        }
        body
    }
}

/// "row 0: missing T24_mean, T30_mean; unknown T24_avg" — the names themselves, so a caller
/// sees the typo without reading the lists.
fn describe_mismatch(row: usize, missing: &[String], unknown: &[String]) -> String {
    const SHOW: usize = 8;
    let list = |names: &[String]| {
        let mut s = names
            .iter()
            .take(SHOW)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if names.len() > SHOW {
            s.push_str(&format!(" and {} more", names.len() - SHOW));
        }
        s
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(missing)));
    }
    if !unknown.is_empty() {
        parts.push(format!("unknown {}", list(unknown)));
    }
    format!(
        "row {row}: {} (see `missing` and `unknown`; GET /v2/models/{{name}} lists the features)",
        parts.join("; ")
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Scoring(e) => {
                tracing::error!(class = e.class(), error = %e, "scoring failed");
            }
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::NonFiniteOutput { model, row } => {
                tracing::warn!(%model, row, "model gave a non-finite output");
            }
            ApiError::Restoring(_) => tracing::debug!(code = self.code(), "{self}"),
            _ if status.is_server_error() => tracing::warn!(code = self.code(), "{self}"),
            _ => tracing::debug!(code = self.code(), status = status.as_u16(), "{self}"),
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Overloaded(_)
            | ApiError::Timeout(_)
            | ApiError::Restoring(_)
            | ApiError::TooManyStreams(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RequestTimeout(_) => {
                // The rest of the body may still come: this connection is done.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<VersionError> for ApiError {
    fn from(e: VersionError) -> Self {
        ApiError::Version(e)
    }
}
