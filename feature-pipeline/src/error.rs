//! The crate's error type. Everything here is about bad input (poison): nothing in this crate
//! does I/O that could succeed on a retry, except reading files in the importers.

use std::fmt;

/// Why an event was rejected: the dead-letter topic's error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not JSON at all, or truncated.
    MalformedJson,
    /// A required field is absent.
    MissingField,
    /// A field the schema does not define.
    UnknownField,
    /// A field has the wrong JSON type (string for a number, ...).
    WrongType,
    /// The `schema` tag is absent or names a schema this service does not speak.
    UnsupportedSchema,
    /// A number is NaN or infinite.
    NotFinite,
    /// A number is outside the range the field allows.
    OutOfRange,
    /// A timestamp is not RFC 3339 or lies outside 1970-2100.
    BadTimestamp,
    /// A tail number, event id, airport or flight code has the wrong form.
    BadIdentifier,
    /// Fields contradict each other (arrival before departure, actual times on a plan, ...).
    Inconsistent,
    /// The encoded event exceeds [`crate::event::MAX_EVENT_BYTES`].
    TooLarge,
}

impl RejectReason {
    /// Stable snake_case name, used as the dead-letter error class and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::MissingField => "missing_field",
            RejectReason::UnknownField => "unknown_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::UnsupportedSchema => "unsupported_schema",
            RejectReason::NotFinite => "not_finite",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadIdentifier => "bad_identifier",
            RejectReason::Inconsistent => "inconsistent",
            RejectReason::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event that cannot be decoded or fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {}{message}", field.map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct DecodeError {
    pub reason: RejectReason,
    /// The offending field, when one is to blame.
    pub field: Option<&'static str>,
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(reason: RejectReason, message: String) -> Self {
        Self {
            reason,
            field: None,
            message,
        }
    }

    pub(crate) fn field(reason: RejectReason, field: &'static str, message: String) -> Self {
        Self {
            reason,
            field: Some(field),
            message,
        }
    }

    /// Prefixes the message with a detail such as the sensor's name.
    pub(crate) fn with_detail(mut self, detail: &str) -> Self {
        self.message = format!("{detail}: {}", self.message);
        self
    }

    /// Classifies a serde_json error into a reject reason by its category and message.
    pub(crate) fn from_json(err: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let message = err.to_string();
        let reason = match err.classify() {
            _ if message.starts_with("number out of range") => RejectReason::OutOfRange,
            Category::Io | Category::Syntax | Category::Eof => RejectReason::MalformedJson,
            Category::Data => classify_data_error(&message),
        };
        Self::new(reason, message)
    }
}

fn classify_data_error(message: &str) -> RejectReason {
    if message.starts_with("missing field `schema`")
        || (message.starts_with("unknown variant") && message.contains("`fleet.telemetry.v1`"))
    {
        RejectReason::UnsupportedSchema
    } else if message.starts_with("unknown variant") {
        // A value outside an enumeration, such as a schedule `kind` we do not know.
        RejectReason::OutOfRange
    } else if message.starts_with("missing field") {
        RejectReason::MissingField
    } else if message.starts_with("unknown field") {
        RejectReason::UnknownField
    } else if message.starts_with("invalid timestamp") {
        RejectReason::BadTimestamp
    } else if message.contains("out of range") {
        RejectReason::OutOfRange
    } else {
        RejectReason::WrongType
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid event: {0}")]
    Decode(#[from] DecodeError),

    /// Features were asked of an aircraft that has no history for that feature set yet.
    #[error("tail has no {what} yet")]
    NoHistory { what: &'static str },

    #[error("unknown feature set `{0}`")]
    UnknownFeatureSet(String),

    #[error("state snapshot cannot be read: {0}")]
    Snapshot(String),

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A line of an input data file that the importer cannot use.
    #[error("{path}:{line}: {message}")]
    Import {
        path: String,
        line: u64,
        message: String,
    },
}

impl Error {
    /// Whether retrying the same input could succeed. Bad input never can: it is poison and
    /// belongs in the dead-letter topic.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Io { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
