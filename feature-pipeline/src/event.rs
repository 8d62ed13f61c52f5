//! Wire events: JSON with an explicit schema tag, decoded and validated in one step.
//!
//! Every event names its schema in the `schema` field (`fleet.telemetry.v1`,
//! `fleet.schedule.v1`), carries an `event_id` (used to drop duplicates) and an `event_time`
//! (RFC 3339). Unknown fields, missing fields, wrong types, non-finite numbers and values outside
//! sane ranges are all rejected with a typed [`RejectReason`], so the streaming path can send
//! the record to the dead-letter topic with a precise error class.

mod canonical;
mod schedule;
mod telemetry;
pub(crate) mod time;

use serde::{Deserialize, Serialize};

pub use schedule::{ScheduleEvent, ScheduleKind};
pub use telemetry::{SENSOR_COUNT, SENSOR_NAMES, Sensors, TelemetryEvent};

use crate::error::{DecodeError, RejectReason};

/// Largest encoded event we accept; anything bigger is poison, not data.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// An event on one of the input topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schema")]
pub enum Event {
    /// One operating cycle of one engine.
    #[serde(rename = "fleet.telemetry.v1")]
    Telemetry(TelemetryEvent),
    /// A change in one flight of the aircraft's schedule.
    #[serde(rename = "fleet.schedule.v1")]
    Schedule(ScheduleEvent),
}

impl Event {
    /// Decodes and validates one JSON-encoded event.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(DecodeError::new(
                RejectReason::TooLarge,
                format!("{} bytes, the limit is {MAX_EVENT_BYTES}", bytes.len()),
            ));
        }
        let fast = canonical::decode(bytes)
            .map(Event::Telemetry)
            .or_else(|| decode_tagged_first(bytes));
        let event = match fast {
            Some(event) => event,
            None => serde_json::from_slice::<Event>(bytes).map_err(DecodeError::from_json)?,
        };
        event.validate()?;
        Ok(event)
    }

    /// Encodes the event as one line of JSON (no trailing newline).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(self).expect("events always serialize")
    }

    /// Checks ranges and cross-field rules that the JSON types alone cannot express.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Event::Telemetry(t) => t.validate(),
            Event::Schedule(s) => s.validate(),
        }
    }

    pub fn tail(&self) -> &str {
        match self {
            Event::Telemetry(t) => &t.tail,
            Event::Schedule(s) => &s.tail,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Event::Telemetry(t) => &t.event_id,
            Event::Schedule(s) => &s.event_id,
        }
    }

    /// Event time in milliseconds since the Unix epoch.
    pub fn event_time_ms(&self) -> i64 {
        match self {
            Event::Telemetry(t) => t.event_time.timestamp_millis(),
            Event::Schedule(s) => s.event_time.timestamp_millis(),
        }
    }
}

/// The next fastest case (telemetry in another member order, schedule events): an event whose
/// first member is its schema tag (as [`Event::encode`] and every producer in this repository
/// write it) is parsed straight into its struct. serde's
/// internally tagged enums otherwise buffer every field into an intermediate tree before
/// building the struct, which was half of the decoding time. Anything else, and any error,
/// returns `None` so that the general path decides, and reports errors the same way. Both
/// structs deny unknown fields, so a second `schema` member cannot slip through here.
fn decode_tagged_first(bytes: &[u8]) -> Option<Event> {
    const TELEMETRY: &[u8] = br#"{"schema":"fleet.telemetry.v1","#;
    const SCHEDULE: &[u8] = br#"{"schema":"fleet.schedule.v1","#;
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (rest, telemetry) = if let Some(rest) = bytes.strip_prefix(TELEMETRY) {
        (rest, true)
    } else {
        (bytes.strip_prefix(SCHEDULE)?, false)
    };
    BUFFER.with_borrow_mut(|buffer| {
        // The same object without its first member.
        buffer.clear();
        buffer.push(b'{');
        buffer.extend_from_slice(rest);
        if telemetry {
            serde_json::from_slice(buffer).ok().map(Event::Telemetry)
        } else {
            serde_json::from_slice(buffer).ok().map(Event::Schedule)
        }
    })
}

/// Tail numbers: 2 to 16 characters of `A-Z`, `0-9` and `-` (e.g. `N14228`, `CMAPSS-7`).
pub(crate) fn validate_tail(tail: &str) -> Result<(), DecodeError> {
    let ok = (2..=16).contains(&tail.len())
        && tail
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DecodeError::field(
            RejectReason::BadIdentifier,
            "tail",
            format!("`{tail}` is not 2-16 characters of A-Z, 0-9 and '-'"),
        ))
    }
}

/// Event ids: 1 to 128 printable ASCII characters without spaces.
pub(crate) fn validate_event_id(id: &str) -> Result<(), DecodeError> {
    let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(DecodeError::field(
            RejectReason::BadIdentifier,
            "event_id",
            "must be 1-128 printable ASCII characters without spaces".to_owned(),
        ))
    }
}

pub(crate) fn check_finite_in(
    field: &'static str,
    value: f64,
    limit: f64,
) -> Result<(), DecodeError> {
    if !value.is_finite() {
        return Err(DecodeError::field(
            RejectReason::NotFinite,
            field,
            format!("{value} is not a finite number"),
        ));
    }
    if value.abs() > limit {
        return Err(DecodeError::field(
            RejectReason::OutOfRange,
            field,
            format!("{value} is outside ±{limit}"),
        ));
    }
    Ok(())
}
