//! TailState rules: duplicates, late events, first events, point-in-time features, snapshots.

mod common;

use chrono::Duration;
use common::{flight, ny, telemetry};
use fleet_features::features::FeatureSetId;
use fleet_features::state::{RECENT_IDS, WINDOW};
use fleet_features::{ApplyOutcome, Error, Event, FeatureSet, LateReason, TailState};

fn engine_health(state: &TailState) -> Vec<f32> {
    let mut out = Vec::new();
    FeatureSet::get(FeatureSetId::EngineHealth)
        .compute(state, &mut out)
        .unwrap();
    out
}

fn delay_risk(state: &TailState) -> fleet_features::Result<Vec<f32>> {
    let mut out = Vec::new();
    FeatureSet::get(FeatureSetId::DelayRisk).compute(state, &mut out)?;
    Ok(out)
}

fn feature(set: FeatureSetId, vector: &[f32], name: &str) -> f32 {
    let i = FeatureSet::get(set)
        .names()
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no feature {name}"));
    vector[i]
}

#[test]
fn duplicates_are_ignored() {
    let mut state = TailState::new();
    let e = telemetry("N1", 1, 1, 100.0);
    assert_eq!(state.apply(&e), ApplyOutcome::Applied);
    let before = state.clone();
    assert_eq!(state.apply(&e), ApplyOutcome::Duplicate);
    assert_eq!(state, before);

    // Still recognised after RECENT_IDS - 1 newer events.
    for cycle in 2..=RECENT_IDS as u32 {
        state.apply(&telemetry("N1", 1, cycle, 100.0));
    }
    assert_eq!(state.apply(&e), ApplyOutcome::Duplicate);
    // Schedule events keep their own clock: telemetry from another topic does not make them late.
    let [scheduled, ..] = flight("N1", 10, ny(2013, 1, 1, 8, 0), 120, 0, 0);
    assert_eq!(state.apply(&scheduled), ApplyOutcome::Applied);
    assert_eq!(state.apply(&scheduled), ApplyOutcome::Duplicate);
}

#[test]
fn late_telemetry_changes_nothing() {
    let mut state = TailState::new();
    for cycle in [1, 2, 5] {
        assert_eq!(
            state.apply(&telemetry("N1", 1, cycle, 100.0)),
            ApplyOutcome::Applied
        );
    }
    let before = state.clone();
    let mut late = telemetry("N1", 1, 3, 100.0);
    let mut same_cycle = telemetry("N1", 1, 5, 999.0);
    if let (Event::Telemetry(a), Event::Telemetry(b)) = (&mut late, &mut same_cycle) {
        a.event_id = "late".into();
        b.event_id = "resent-with-new-id".into();
    }
    let want = ApplyOutcome::Late(LateReason::CycleNotAfterLast);
    assert_eq!(state.apply(&late), want);
    assert_eq!(state.apply(&same_cycle), want);
    assert_eq!(state, before);

    // Another engine has its own order; a gap in cycles is fine.
    assert_eq!(
        state.apply(&telemetry("N1", 2, 1, 50.0)),
        ApplyOutcome::Applied
    );
    assert_eq!(
        state.apply(&telemetry("N1", 1, 9, 100.0)),
        ApplyOutcome::Applied
    );
}

#[test]
fn late_schedule_events_change_nothing() {
    let mut state = TailState::new();
    let [s1, d1, a1] = flight("N1", 1, ny(2013, 1, 1, 8, 0), 120, 5, 5);
    let [s2, ..] = flight("N1", 2, ny(2013, 1, 1, 6, 0), 60, 0, 0);
    for e in [&s1, &d1, &a1] {
        assert_eq!(state.apply(e), ApplyOutcome::Applied);
    }
    let before = state.clone();
    assert_eq!(
        state.apply(&s2),
        ApplyOutcome::Late(LateReason::EventTimeBeforeLast)
    );
    assert_eq!(state, before);
}

#[test]
fn first_event_gives_a_defined_vector() {
    let mut state = TailState::new();
    assert!(matches!(
        FeatureSet::get(FeatureSetId::EngineHealth).compute(&state, &mut Vec::new()),
        Err(Error::NoHistory { .. })
    ));
    assert!(matches!(delay_risk(&state), Err(Error::NoHistory { .. })));
    state.apply(&telemetry("N1", 1, 1, 100.0));
    let v = engine_health(&state);
    let id = FeatureSetId::EngineHealth;
    assert_eq!(v.len(), FeatureSet::get(id).len());
    assert!(v.iter().all(|x| x.is_finite()));
    assert_eq!(feature(id, &v, "T24_mean"), 101.01);
    assert_eq!(feature(id, &v, "T24_std"), 0.0);
    assert_eq!(feature(id, &v, "T24_slope"), 0.0);
    assert_eq!(feature(id, &v, "T24_drift"), 0.0);
    assert_eq!(feature(id, &v, "window_len"), 1.0);
    assert_eq!(feature(id, &v, "cycle"), 1.0);
}

#[test]
fn engine_health_follows_the_window() {
    let id = FeatureSetId::EngineHealth;
    let mut state = TailState::new();
    for cycle in 1..=50 {
        state.apply(&telemetry("N1", 1, cycle, 100.0));
    }
    let v = engine_health(&state);
    // T24 = 101 + 0.01·cycle: slope 0.01, mean over cycles 31..=50.
    let mean = 101.0 + 0.01 * (31..=50).sum::<u32>() as f64 / WINDOW as f64;
    assert!((feature(id, &v, "T24_mean") as f64 - mean).abs() < 1e-4);
    assert!((feature(id, &v, "T24_slope") - 0.01).abs() < 1e-6);
    assert_eq!(feature(id, &v, "T24_min"), 101.31);
    assert_eq!(feature(id, &v, "window_len"), WINDOW as f32);
    assert!(feature(id, &v, "T24_drift") > 0.0);
}

/// Builds a day of three flights for one aircraft; flight 2's delays are parameters.
fn day(f2_dep_delay: i64, f2_arr_delay: i64) -> Vec<Event> {
    let mut events = Vec::new();
    events.extend(flight("N1", 1, ny(2013, 3, 4, 6, 0), 120, 30, 25));
    events.extend(flight(
        "N1",
        2,
        ny(2013, 3, 4, 10, 0),
        90,
        f2_dep_delay,
        f2_arr_delay,
    ));
    events.extend(flight("N1", 3, ny(2013, 3, 4, 14, 0), 60, 0, 0));
    // Deliver in event-time order, as the importer and Kafka do.
    events.sort_by_key(Event::event_time_ms);
    events
}

/// The delay-risk vector computed at each `scheduled` event, by flight.
fn rows(events: &[Event]) -> Vec<(String, Vec<f32>)> {
    let mut state = TailState::new();
    let mut out = Vec::new();
    for e in events {
        assert_eq!(state.apply(e), ApplyOutcome::Applied, "{e:?}");
        if let Event::Schedule(s) = e
            && FeatureSet::for_event(e).is_some()
        {
            out.push((s.flight.clone(), delay_risk(&state).unwrap()));
        }
    }
    out
}

#[test]
fn delay_risk_never_sees_the_scored_flights_own_actual_times() {
    let on_time = rows(&day(0, 0));
    let very_late = rows(&day(240, 230));
    // Flight 2's own row is identical whatever its outcome; flight 3's row differs.
    assert_eq!(on_time[1], very_late[1]);
    assert_eq!(on_time[1].0, "UA2");
    assert_ne!(on_time[2].1, very_late[2].1);

    // Once the flight departs it is no longer pending: asking for its features is an error,
    // never a vector that includes its own departure.
    let mut state = TailState::new();
    let [s, d, _] = flight("N1", 7, ny(2013, 3, 4, 10, 0), 90, 45, 40);
    state.apply(&s);
    assert!(delay_risk(&state).is_ok());
    state.apply(&d);
    assert!(matches!(delay_risk(&state), Err(Error::NoHistory { .. })));
}

#[test]
fn delay_risk_describes_the_previous_legs() {
    let id = FeatureSetId::DelayRisk;
    let rows = rows(&day(0, 0));
    let first = &rows[0].1;
    assert_eq!(feature(id, first, "has_prev_leg"), 0.0);
    assert_eq!(feature(id, first, "sched_hour_local"), 6.0);
    assert_eq!(feature(id, first, "sched_weekday_local"), 0.0); // Monday 2013-03-04
    assert_eq!(feature(id, first, "turnaround_min"), -1.0);

    // Flight 2 is scheduled at 08:00 local, while flight 1 (06:30 actual off block) is airborne.
    let second = &rows[1].1;
    assert_eq!(feature(id, second, "legs_today"), 1.0);
    assert_eq!(feature(id, second, "prev_dep_delay_min"), 30.0);
    assert_eq!(feature(id, second, "inbound_airborne"), 1.0);
    assert_eq!(feature(id, second, "turnaround_min"), -1.0);
    assert_eq!(feature(id, second, "block_minutes"), 90.0);

    // Flight 3 at 12:00: flight 2 departed on time and arrived at 11:30.
    let third = &rows[2].1;
    assert_eq!(feature(id, third, "legs_today"), 2.0);
    assert_eq!(feature(id, third, "delay_today_min"), 30.0);
    assert_eq!(feature(id, third, "inbound_airborne"), 0.0);
    assert_eq!(feature(id, third, "turnaround_min"), 150.0);
    assert_eq!(feature(id, third, "recent_dep_delay_mean"), 15.0);
}

#[test]
fn cancelled_flight_is_no_longer_pending() {
    let [s, ..] = flight("N1", 1, ny(2013, 3, 4, 6, 0), 120, 0, 0);
    let Event::Schedule(plan) = &s else {
        unreachable!()
    };
    let mut cancelled = plan.clone();
    cancelled.kind = fleet_features::ScheduleKind::Cancelled;
    cancelled.event_id = "cancel".into();
    cancelled.event_time += Duration::hours(1);
    let mut state = TailState::new();
    state.apply(&s);
    state.apply(&Event::Schedule(cancelled));
    assert!(delay_risk(&state).is_err());
}

#[test]
fn snapshots_round_trip() {
    let mut state = TailState::new();
    for cycle in 1..=137 {
        state.apply(&telemetry("N1", 1, cycle, 100.0 + f64::from(cycle % 7)));
    }
    for e in day(12, 3) {
        state.apply(&e);
    }
    let bytes = state.to_snapshot();
    let restored = TailState::from_snapshot(&bytes).unwrap();
    assert_eq!(restored, state);
    assert_eq!(engine_health(&restored), engine_health(&state));
    // Duplicate memory survives too.
    let mut again = restored;
    assert_eq!(
        again.apply(&telemetry("N1", 1, 137, 100.0)),
        ApplyOutcome::Duplicate
    );

    assert!(TailState::from_snapshot(&bytes[..bytes.len() - 3]).is_err());
    assert!(TailState::from_snapshot(b"nope").is_err());
    let mut future = bytes.clone();
    future[3] = 99;
    let err = TailState::from_snapshot(&future).unwrap_err().to_string();
    assert!(err.contains("format version 99"), "{err}");
    let mut trailing = bytes;
    trailing.push(0);
    assert!(TailState::from_snapshot(&trailing).is_err());
}

#[test]
fn state_fits_in_four_kib_per_aircraft() {
    let mut state = TailState::new();
    for cycle in 1..=300 {
        state.apply(&telemetry("N1", 1, cycle, 100.0));
    }
    for e in day(1, 1) {
        state.apply(&e);
    }
    let bytes = state.memory_bytes();
    println!(
        "one engine + legs: {bytes} bytes in memory, {} bytes as snapshot",
        state.to_snapshot().len()
    );
    assert!(bytes < 4096, "{bytes} bytes");

    for cycle in 1..=300 {
        state.apply(&telemetry("N1", 2, cycle, 100.0));
    }
    println!(
        "two engines + legs: {} bytes in memory",
        state.memory_bytes()
    );
}

#[test]
fn feature_set_versions_are_stable_and_distinct() {
    let eh = FeatureSet::get(FeatureSetId::EngineHealth);
    let dr = FeatureSet::get(FeatureSetId::DelayRisk);
    assert_eq!(eh.len(), 14 * 7 + 2);
    assert_eq!(dr.len(), 12);
    for set in [eh, dr] {
        assert_eq!(set.version().len(), 12);
        assert_eq!(set.names().len(), set.definitions().len());
        assert_eq!(
            FeatureSet::by_name(set.name()).unwrap().version(),
            set.version()
        );
    }
    assert_ne!(eh.version(), dr.version());
    assert!(FeatureSet::by_name("nope").is_err());
}
