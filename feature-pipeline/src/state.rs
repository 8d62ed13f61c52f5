//! Per-aircraft rolling state: everything the feature sets need, updated one event at a time.
//!
//! Rules (the README's "Event semantics" section says the same for users):
//!
//! - **Duplicates**: an event whose `event_id` is among the tail's last
//!   [`RECENT_IDS`] applied ids is ignored ([`ApplyOutcome::Duplicate`]). Redelivery after a
//!   consumer restart replays a short tail of the partition, so a short memory suffices.
//! - **Telemetry order** is the engine's cycle number: a cycle not greater than the last one
//!   applied for that engine is late ([`ApplyOutcome::Late`]) and changes nothing. Gaps in the
//!   cycles are fine (the slope uses the real cycle numbers).
//! - **Schedule order** is event time: a schedule event older than the newest schedule event
//!   applied to the tail is late and changes nothing. (Telemetry and schedule come from different
//!   topics with no order between them, so each keeps its own clock.) Within one partition a tail's events arrive in order, so late
//!   events only come from a producer's mistake.
//! - **First event** of a tail creates the state; an engine's first telemetry event starts its
//!   EWMA and baseline at that reading. Window statistics over fewer than N cycles use what there
//!   is (`window_len` says how much).

mod engine;
mod legs;

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};
use std::hash::Hasher;

pub(crate) use engine::EngineState;
pub use engine::{BASELINE_CYCLES, EWMA_ALPHA, TRACKED_SENSORS, WINDOW};
pub(crate) use legs::LegState;
pub use legs::RECENT_LEGS;

use crate::event::{Event, ScheduleEvent, TelemetryEvent};

/// How many recent event ids each tail remembers for duplicate detection.
pub const RECENT_IDS: usize = 16;

/// What `apply` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The state changed; the event can be scored.
    Applied,
    /// Same `event_id` as a recently applied event: ignored.
    Duplicate,
    /// Older than what the state already holds: ignored.
    Late(LateReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateReason {
    /// Telemetry for a cycle at or before the engine's last applied cycle.
    CycleNotAfterLast,
    /// A schedule event with an event time before the tail's newest schedule event.
    EventTimeBeforeLast,
}

impl LateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LateReason::CycleNotAfterLast => "cycle_not_after_last",
            LateReason::EventTimeBeforeLast => "event_time_before_last",
        }
    }
}

/// Everything the service knows about one aircraft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailState {
    /// Newest event time applied, ms since the epoch (`i64::MIN` before the first event).
    watermark_ms: i64,
    events_applied: u64,
    recent_ids: RecentIds,
    /// Engines by position, in the order they first reported (at most four).
    engines: Vec<EngineState>,
    /// Position of the engine that reported last: the one `engine-health` describes.
    last_engine: u8,
    legs: LegState,
}

impl Default for TailState {
    fn default() -> Self {
        Self::new()
    }
}

impl TailState {
    pub fn new() -> Self {
        Self {
            watermark_ms: i64::MIN,
            events_applied: 0,
            recent_ids: RecentIds::default(),
            engines: Vec::new(),
            last_engine: 0,
            legs: LegState::default(),
        }
    }

    /// Folds one validated event into the state. Amortized O(1): a constant amount of work per
    /// tracked sensor, never proportional to the history.
    pub fn apply(&mut self, event: &Event) -> ApplyOutcome {
        let id = id_hash(event.event_id());
        if self.recent_ids.contains(id) {
            return ApplyOutcome::Duplicate;
        }
        let outcome = match event {
            Event::Telemetry(t) => self.apply_telemetry(t),
            Event::Schedule(s) => self.apply_schedule(s),
        };
        if outcome == ApplyOutcome::Applied {
            self.recent_ids.push(id);
            self.watermark_ms = self.watermark_ms.max(event.event_time_ms());
            self.events_applied += 1;
        }
        outcome
    }

    fn apply_telemetry(&mut self, event: &TelemetryEvent) -> ApplyOutcome {
        let engine = match self
            .engines
            .iter()
            .position(|e| e.position() == event.engine)
        {
            Some(i) => &mut self.engines[i],
            None => {
                // Most airframes have two engines and C-MAPSS one: grow one at a time.
                self.engines.reserve_exact(1);
                self.engines.push(EngineState::new(event.engine));
                self.engines.last_mut().expect("just pushed")
            }
        };
        if !engine.accepts(event.cycle) {
            return ApplyOutcome::Late(LateReason::CycleNotAfterLast);
        }
        engine.apply(event);
        self.last_engine = event.engine;
        ApplyOutcome::Applied
    }

    fn apply_schedule(&mut self, event: &ScheduleEvent) -> ApplyOutcome {
        if !self.legs.accepts(event) {
            return ApplyOutcome::Late(LateReason::EventTimeBeforeLast);
        }
        self.legs.apply(event);
        ApplyOutcome::Applied
    }

    /// Newest event time applied, ms since the epoch; `None` before the first event.
    pub fn watermark_ms(&self) -> Option<i64> {
        (self.watermark_ms != i64::MIN).then_some(self.watermark_ms)
    }

    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    /// The engine that reported last, if any.
    pub(crate) fn current_engine(&self) -> Option<&EngineState> {
        self.engines
            .iter()
            .find(|e| e.position() == self.last_engine)
    }

    /// The engine at `position`, if it has reported.
    pub(crate) fn engine(&self, position: u8) -> Option<&EngineState> {
        self.engines.iter().find(|e| e.position() == position)
    }

    pub(crate) fn legs(&self) -> &LegState {
        &self.legs
    }

    /// Bytes this state occupies, inline and on the heap (capacities, not lengths).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.engines.capacity() * std::mem::size_of::<EngineState>()
            + self
                .engines
                .iter()
                .map(EngineState::heap_bytes)
                .sum::<usize>()
    }
}

fn id_hash(id: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(id.as_bytes());
    h.finish()
}

/// A small ring of recently applied event-id hashes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RecentIds {
    ids: [u64; RECENT_IDS],
    len: u8,
    head: u8,
}

impl RecentIds {
    fn contains(&self, id: u64) -> bool {
        self.ids[..self.len as usize].contains(&id)
    }

    fn push(&mut self, id: u64) {
        self.ids[self.head as usize] = id;
        self.head = ((self.head as usize + 1) % RECENT_IDS) as u8;
        self.len = (self.len + 1).min(RECENT_IDS as u8);
    }
}
