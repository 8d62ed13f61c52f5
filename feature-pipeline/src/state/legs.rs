//! The aircraft's recent flights, as far as the schedule events have told us.

use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};

use crate::event::{ScheduleEvent, ScheduleKind};

/// Completed departures averaged into the rolling mean departure delay.
pub const RECENT_LEGS: usize = 5;

const MS_PER_MINUTE: f64 = 60_000.0;

/// The flight the latest `scheduled` event announced, until it departs or is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlannedLeg {
    /// Identifies the flight: the flight designator and its scheduled departure.
    key: u64,
    pub(crate) sched_dep_ms: i64,
    pub(crate) sched_arr_ms: i64,
    /// Local (origin) hour of departure including minutes, e.g. 17.5 for 17:30.
    pub(crate) local_hour: f32,
    /// Local weekday of departure, 0 = Monday.
    pub(crate) local_weekday: u8,
    /// Local calendar day of departure (days from the common era, in the origin's time).
    pub(crate) local_day: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LegState {
    /// Event time of the newest schedule event applied, ms (0 before the first).
    last_event_ms: i64,
    pub(crate) pending: Option<PlannedLeg>,
    /// Departures seen (flights that left the gate).
    pub(crate) legs_seen: u32,
    pub(crate) last_dep_delay_min: f32,
    /// Arrival delay of the last arrived leg; meaningful once `arrivals_seen > 0`.
    pub(crate) last_arr_delay_min: f32,
    pub(crate) arrivals_seen: u32,
    pub(crate) last_arrival_ms: i64,
    /// The last departed leg has not arrived yet.
    pub(crate) airborne: bool,
    /// Local day of the latest departure, and the departures and summed departure delay on it.
    pub(crate) day: i32,
    pub(crate) legs_on_day: u16,
    pub(crate) delay_on_day_min: f32,
    recent_dep_delays: [f32; RECENT_LEGS],
    recent_len: u8,
    recent_head: u8,
}

impl LegState {
    /// Whether the event is not older than the newest schedule event applied.
    pub(crate) fn accepts(&self, event: &ScheduleEvent) -> bool {
        event.event_time.timestamp_millis() >= self.last_event_ms
    }

    pub(crate) fn apply(&mut self, event: &ScheduleEvent) {
        self.last_event_ms = event.event_time.timestamp_millis();
        let key = leg_key(event);
        match event.kind {
            ScheduleKind::Scheduled => {
                let dep = event.scheduled_departure;
                let local = dep.naive_local();
                self.pending = Some(PlannedLeg {
                    key,
                    sched_dep_ms: dep.timestamp_millis(),
                    sched_arr_ms: event.scheduled_arrival.timestamp_millis(),
                    local_hour: local.hour() as f32 + local.minute() as f32 / 60.0,
                    local_weekday: local.weekday().num_days_from_monday() as u8,
                    local_day: local_day(event),
                });
            }
            ScheduleKind::Departed => {
                let Some(actual) = event.actual_departure else {
                    return; // validation guarantees it; nothing to learn without it
                };
                let delay = minutes(
                    actual.timestamp_millis() - event.scheduled_departure.timestamp_millis(),
                );
                let day = local_day(event);
                if day != self.day || self.legs_seen == 0 {
                    self.day = day;
                    self.legs_on_day = 0;
                    self.delay_on_day_min = 0.0;
                }
                self.legs_on_day = self.legs_on_day.saturating_add(1);
                self.delay_on_day_min += delay;
                self.last_dep_delay_min = delay;
                self.legs_seen = self.legs_seen.saturating_add(1);
                self.airborne = true;
                self.recent_dep_delays[self.recent_head as usize] = delay;
                self.recent_head = ((self.recent_head as usize + 1) % RECENT_LEGS) as u8;
                self.recent_len = (self.recent_len + 1).min(RECENT_LEGS as u8);
                self.clear_pending(key);
            }
            ScheduleKind::Arrived => {
                let Some(actual) = event.actual_arrival else {
                    return;
                };
                self.last_arr_delay_min =
                    minutes(actual.timestamp_millis() - event.scheduled_arrival.timestamp_millis());
                self.last_arrival_ms = actual.timestamp_millis();
                self.arrivals_seen = self.arrivals_seen.saturating_add(1);
                self.airborne = false;
                self.clear_pending(key);
            }
            ScheduleKind::Cancelled => self.clear_pending(key),
        }
    }

    fn clear_pending(&mut self, key: u64) {
        if self.pending.is_some_and(|p| p.key == key) {
            self.pending = None;
        }
    }

    /// Mean departure delay over the last [`RECENT_LEGS`] departures (0 before the first).
    pub(crate) fn recent_mean_dep_delay(&self) -> f32 {
        let n = self.recent_len as usize;
        if n == 0 {
            return 0.0;
        }
        // Sum in chronological order so the result does not depend on where the ring starts.
        let start = (self.recent_head as usize + RECENT_LEGS - n) % RECENT_LEGS;
        let sum: f32 = (0..n)
            .map(|i| self.recent_dep_delays[(start + i) % RECENT_LEGS])
            .sum();
        sum / n as f32
    }
}

fn minutes(ms: i64) -> f32 {
    (ms as f64 / MS_PER_MINUTE) as f32
}

fn local_day(event: &ScheduleEvent) -> i32 {
    event.scheduled_departure.date_naive().num_days_from_ce()
}

fn leg_key(event: &ScheduleEvent) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(event.flight.as_bytes());
    h.write_i64(event.scheduled_departure.timestamp_millis());
    h.finish()
}
