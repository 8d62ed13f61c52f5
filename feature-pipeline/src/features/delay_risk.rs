//! `delay-risk`: the aircraft's recent legs and the plan of its next departure.
//!
//! Point in time by construction: the vector describes the pending flight (the latest
//! `scheduled` event) from legs that departed or arrived before it; the pending flight's own
//! departure ends its pendency, so its actual times can never enter its own vector.

use crate::error::{Error, Result};
use crate::state::{RECENT_LEGS, TailState};

const MS_PER_MINUTE: f64 = 60_000.0;

pub(super) fn definitions() -> Vec<(String, String)> {
    [
        ("sched_hour_local", "scheduled departure hour in the origin's local time, with minutes as a fraction"),
        ("sched_weekday_local", "scheduled departure weekday in the origin's local time, 0 = Monday"),
        ("block_minutes", "scheduled arrival minus scheduled departure, minutes"),
        ("legs_today", "departures of this aircraft earlier on the same local day"),
        ("delay_today_min", "summed departure delay of those departures, minutes"),
        ("has_prev_leg", "1 if the aircraft has departed before, else 0"),
        ("prev_dep_delay_min", "departure delay of the previous departure, minutes (0 if none)"),
        ("prev_arr_delay_min", "arrival delay of the previous arrival, minutes (0 if none)"),
        ("inbound_airborne", "1 if the previous departure has not arrived yet, else 0"),
        ("turnaround_min", "scheduled departure minus the previous actual arrival, minutes (-1 if unknown or airborne)"),
        ("recent_dep_delay_mean", "mean departure delay over the last 5 departures, minutes (0 if none)"),
        ("legs_seen", "departures seen for this aircraft"),
    ]
    .into_iter()
    .map(|(name, def)| {
        // Keep the window size in the hashed definition text.
        let def = def.replace("last 5", &format!("last {RECENT_LEGS}"));
        (name.to_owned(), def)
    })
    .collect()
}

/// `_engine` is ignored: the set describes the aircraft, not an engine.
pub(super) fn compute(state: &TailState, _engine: Option<u8>, out: &mut Vec<f32>) -> Result<()> {
    let legs = state.legs();
    let pending = legs.pending.ok_or(Error::NoHistory {
        what: "pending departure",
    })?;
    let same_day = legs.legs_seen > 0 && legs.day == pending.local_day;
    let turnaround = if legs.arrivals_seen > 0 && !legs.airborne {
        ((pending.sched_dep_ms - legs.last_arrival_ms) as f64 / MS_PER_MINUTE) as f32
    } else {
        -1.0
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    out.extend_from_slice(&[
        pending.local_hour,
        f32::from(pending.local_weekday),
        ((pending.sched_arr_ms - pending.sched_dep_ms) as f64 / MS_PER_MINUTE) as f32,
        if same_day {
            f32::from(legs.legs_on_day)
        } else {
            0.0
        },
        if same_day { legs.delay_on_day_min } else { 0.0 },
        flag(legs.legs_seen > 0),
        if legs.legs_seen > 0 {
            legs.last_dep_delay_min
        } else {
            0.0
        },
        if legs.arrivals_seen > 0 {
            legs.last_arr_delay_min
        } else {
            0.0
        },
        flag(legs.airborne),
        turnaround,
        legs.recent_mean_dep_delay(),
        legs.legs_seen as f32,
    ]);
    Ok(())
}
