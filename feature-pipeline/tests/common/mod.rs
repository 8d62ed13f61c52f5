//! Builders for test events.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use fleet_features::event::{SENSOR_COUNT, Sensors};
use fleet_features::{Event, ScheduleEvent, ScheduleKind, TelemetryEvent};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

pub fn telemetry(tail: &str, engine: u8, cycle: u32, base: f64) -> Event {
    let mut values = [0.0; SENSOR_COUNT];
    for (i, v) in values.iter_mut().enumerate() {
        *v = base + i as f64 + f64::from(cycle) * 0.01;
    }
    Event::Telemetry(TelemetryEvent {
        event_id: format!("{tail}-e{engine}-c{cycle}"),
        tail: tail.to_owned(),
        engine,
        event_time: t0() + Duration::hours(i64::from(cycle)),
        cycle,
        settings: [0.0, 0.0, 100.0],
        sensors: Sensors::from_array(values),
    })
}

/// New York local time (UTC-5 in winter).
pub fn ny(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<FixedOffset> {
    FixedOffset::west_opt(5 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
}

/// The events of one flight: scheduled (2 h ahead), departed and arrived, with the delays given.
pub fn flight(
    tail: &str,
    number: u32,
    dep: DateTime<FixedOffset>,
    block_min: i64,
    dep_delay_min: i64,
    arr_delay_min: i64,
) -> [Event; 3] {
    let arr = dep + Duration::minutes(block_min);
    let base = ScheduleEvent {
        event_id: format!("{tail}-F{number}-scheduled"),
        tail: tail.to_owned(),
        event_time: (dep - Duration::hours(2)).with_timezone(&Utc),
        kind: ScheduleKind::Scheduled,
        carrier: "UA".to_owned(),
        flight: format!("UA{number}"),
        origin: "EWR".to_owned(),
        destination: "ORD".to_owned(),
        scheduled_departure: dep,
        scheduled_arrival: arr,
        actual_departure: None,
        actual_arrival: None,
    };
    let actual_dep = (dep + Duration::minutes(dep_delay_min)).with_timezone(&Utc);
    let actual_arr = (arr + Duration::minutes(arr_delay_min)).with_timezone(&Utc);
    let departed = ScheduleEvent {
        event_id: format!("{tail}-F{number}-departed"),
        event_time: actual_dep,
        kind: ScheduleKind::Departed,
        actual_departure: Some(actual_dep),
        ..base.clone()
    };
    let arrived = ScheduleEvent {
        event_id: format!("{tail}-F{number}-arrived"),
        event_time: actual_arr,
        kind: ScheduleKind::Arrived,
        actual_departure: Some(actual_dep),
        actual_arrival: Some(actual_arr),
        ..base.clone()
    };
    [
        Event::Schedule(base),
        Event::Schedule(departed),
        Event::Schedule(arrived),
    ]
}
