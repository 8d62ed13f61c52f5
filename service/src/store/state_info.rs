//! How fresh an aircraft's live state is, as `/score` (tail requests), `/tails/{tail}` and
//! the fleet board report it.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::TailEntry;

/// The freshness of a tail's live state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StateInfo {
    /// Whether this instance holds state for the tail (false: scored from an empty state plus
    /// the hypothetical event).
    pub known: bool,
    pub events_applied: u64,
    /// Event time of the newest event applied.
    pub last_event_time: Option<DateTime<Utc>>,
    /// Wall-clock time the newest event was applied (when streaming).
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Input partition owning the tail (when streaming).
    pub partition: Option<i32>,
    /// Topic, partition and offset of the newest event applied (when streaming).
    pub source: Option<SourceInfo>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceInfo {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl StateInfo {
    pub fn of(entry: Option<&TailEntry>) -> Self {
        match entry {
            None => Self {
                known: false,
                events_applied: 0,
                last_event_time: None,
                last_applied_at: None,
                partition: None,
                source: None,
            },
            Some(entry) => Self {
                known: true,
                events_applied: entry.state.events_applied(),
                last_event_time: entry.state.watermark_ms().and_then(millis_to_time),
                last_applied_at: entry.last_applied_at,
                partition: entry.partition,
                source: entry.last_source.as_ref().map(|s| SourceInfo {
                    topic: s.topic.clone(),
                    partition: s.partition,
                    offset: s.offset,
                }),
            },
        }
    }
}

pub fn millis_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}
