//! Decoding and validation: every kind of bad input is rejected with its typed reason.

mod common;

use fleet_features::{Event, RejectReason};
use serde_json::{Value, json};

fn telemetry_json() -> Value {
    serde_json::from_slice(&common::telemetry("N14228", 1, 7, 500.0).encode()).unwrap()
}

fn schedule_json() -> Value {
    let [scheduled, ..] = common::flight("N14228", 1545, common::ny(2013, 1, 1, 5, 15), 180, 2, 11);
    serde_json::from_slice(&scheduled.encode()).unwrap()
}

fn reason(value: &Value) -> RejectReason {
    Event::decode(value.to_string().as_bytes())
        .unwrap_err()
        .reason
}

#[test]
fn valid_events_round_trip() {
    for event in [
        common::telemetry("CMAPSS-1", 2, 3, 641.0),
        common::flight("N14228", 1545, common::ny(2013, 1, 1, 5, 15), 180, 2, 11)[2].clone(),
    ] {
        let bytes = event.encode();
        assert_eq!(Event::decode(&bytes).unwrap(), event);
    }
}

#[test]
fn wire_format_names_the_schema_and_sensors() {
    let v = telemetry_json();
    assert_eq!(v["schema"], "fleet.telemetry.v1");
    assert!(v["sensors"]["T24"].is_number());
    assert_eq!(v["event_time"], "2026-01-01T07:00:00Z");
    let s = schedule_json();
    assert_eq!(s["schema"], "fleet.schedule.v1");
    assert_eq!(s["scheduled_departure"], "2013-01-01T05:15:00-05:00");
    assert!(s.get("actual_departure").is_none());
}

#[test]
fn malformed_json_is_rejected() {
    for bad in [
        &b"{"[..],
        b"",
        b"not json",
        b"[1,2]",
        b"{\"schema\": \"fleet.telemetry.v1\",",
    ] {
        let err = Event::decode(bad).unwrap_err();
        assert!(
            matches!(
                err.reason,
                RejectReason::MalformedJson
                    | RejectReason::WrongType
                    | RejectReason::UnsupportedSchema
            ),
            "{bad:?} -> {err}"
        );
    }
    assert_eq!(
        Event::decode(b"{").unwrap_err().reason,
        RejectReason::MalformedJson
    );
}

#[test]
fn schema_must_be_known() {
    let mut v = telemetry_json();
    v["schema"] = json!("fleet.telemetry.v2");
    assert_eq!(reason(&v), RejectReason::UnsupportedSchema);
    v.as_object_mut().unwrap().remove("schema");
    assert_eq!(reason(&v), RejectReason::UnsupportedSchema);
}

#[test]
fn missing_unknown_and_mistyped_fields() {
    let mut v = telemetry_json();
    v.as_object_mut().unwrap().remove("cycle");
    assert_eq!(reason(&v), RejectReason::MissingField);

    let mut v = telemetry_json();
    v["sensors"].as_object_mut().unwrap().remove("W32");
    assert_eq!(reason(&v), RejectReason::MissingField);

    let mut v = telemetry_json();
    v["extra"] = json!(1);
    assert_eq!(reason(&v), RejectReason::UnknownField);

    let mut v = telemetry_json();
    v["sensors"]["T99"] = json!(1.0);
    assert_eq!(reason(&v), RejectReason::UnknownField);

    let mut v = telemetry_json();
    v["sensors"]["T24"] = json!("641.8");
    assert_eq!(reason(&v), RejectReason::WrongType);

    let mut v = telemetry_json();
    v["sensors"]["T24"] = json!("NaN");
    assert_eq!(reason(&v), RejectReason::WrongType);
}

#[test]
fn numbers_must_be_finite_and_in_range() {
    // JSON has no NaN literal; an overflowing literal is the way an infinity arrives.
    let text = telemetry_json()
        .to_string()
        .replace("\"cycle\":7", "\"cycle\":7e999");
    assert_eq!(
        Event::decode(text.as_bytes()).unwrap_err().reason,
        RejectReason::OutOfRange
    );

    let text = telemetry_json()
        .to_string()
        .replacen("\"T24\":", "\"T24\":1e999,\"_\":", 1);
    let err = Event::decode(text.as_bytes()).unwrap_err();
    assert_eq!(err.reason, RejectReason::OutOfRange, "{err}");

    let mut v = telemetry_json();
    v["sensors"]["T30"] = json!(5.0e6);
    let err = Event::decode(v.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.reason, RejectReason::OutOfRange);
    assert!(err.to_string().contains("T30"), "{err}");

    let mut v = telemetry_json();
    v["engine"] = json!(5);
    assert_eq!(reason(&v), RejectReason::OutOfRange);

    let mut v = telemetry_json();
    v["cycle"] = json!(0);
    assert_eq!(reason(&v), RejectReason::OutOfRange);

    let mut v = telemetry_json();
    v["cycle"] = json!(-3);
    assert_ne!(reason(&v), RejectReason::MalformedJson);
}

#[test]
fn timestamps_and_identifiers() {
    let mut v = telemetry_json();
    v["event_time"] = json!("yesterday");
    assert_eq!(reason(&v), RejectReason::BadTimestamp);

    let mut v = telemetry_json();
    v["event_time"] = json!("2200-01-01T00:00:00Z");
    assert_eq!(reason(&v), RejectReason::BadTimestamp);

    let mut v = telemetry_json();
    v["tail"] = json!("n14228 ");
    assert_eq!(reason(&v), RejectReason::BadIdentifier);

    let mut v = telemetry_json();
    v["event_id"] = json!("");
    assert_eq!(reason(&v), RejectReason::BadIdentifier);

    let mut v = schedule_json();
    v["origin"] = json!("Newark");
    assert_eq!(reason(&v), RejectReason::BadIdentifier);
}

#[test]
fn schedule_cross_field_rules() {
    // A plan must not carry the outcome: that would leak it into the features scored on it.
    let mut v = schedule_json();
    v["actual_departure"] = json!("2013-01-01T10:17:00Z");
    assert_eq!(reason(&v), RejectReason::Inconsistent);

    let mut v = schedule_json();
    v["kind"] = json!("departed");
    assert_eq!(reason(&v), RejectReason::MissingField);

    let mut v = schedule_json();
    v["kind"] = json!("diverted");
    assert_eq!(reason(&v), RejectReason::OutOfRange);

    let mut v = schedule_json();
    v["scheduled_arrival"] = v["scheduled_departure"].clone();
    assert_eq!(reason(&v), RejectReason::Inconsistent);

    let mut v = schedule_json();
    v["flight"] = json!("AA1545");
    assert_eq!(reason(&v), RejectReason::Inconsistent);
}

#[test]
fn oversized_events_are_rejected_before_parsing() {
    let big = vec![b' '; fleet_features::event::MAX_EVENT_BYTES + 1];
    assert_eq!(
        Event::decode(&big).unwrap_err().reason,
        RejectReason::TooLarge
    );
}

/// Moves the leading `"schema"` member of an encoded event to the end of the object.
fn schema_last(encoded: &[u8]) -> String {
    let text = std::str::from_utf8(encoded).unwrap();
    let rest = text.strip_prefix("{\"schema\":\"").unwrap();
    let (schema, rest) = rest.split_once("\",").unwrap();
    let body = rest.strip_suffix('}').unwrap();
    format!("{{{body},\"schema\":\"{schema}\"}}")
}

#[test]
fn schema_first_and_schema_elsewhere_decode_alike() {
    // Encoded events lead with their schema (the fast path); elsewhere, serde's general path.
    let mut events = vec![
        common::telemetry("CMAPSS-1", 2, 3, 641.0),
        common::telemetry("N14228", 1, 7, 500.25),
    ];
    events.extend(common::flight(
        "N14228",
        1545,
        common::ny(2013, 1, 1, 5, 15),
        180,
        2,
        11,
    ));
    for event in events {
        let fast = event.encode();
        assert!(fast.starts_with(b"{\"schema\":\"fleet."));
        let slow = schema_last(&fast);
        assert_eq!(Event::decode(&fast).unwrap(), event);
        assert_eq!(Event::decode(slow.as_bytes()).unwrap(), event, "{slow}");

        // A second schema member is refused either way.
        let twice = format!(
            "{},\"schema\":\"fleet.telemetry.v1\"}}",
            std::str::from_utf8(&fast)
                .unwrap()
                .strip_suffix('}')
                .unwrap()
        );
        assert!(Event::decode(twice.as_bytes()).is_err(), "{twice}");
    }
    // The same mistake gets the same reason whichever member comes first.
    let fast = common::telemetry("N14228", 1, 7, 500.0).encode();
    let broken = String::from_utf8(fast)
        .unwrap()
        .replace("\"cycle\":7", "\"cycle\":\"7\"");
    assert_eq!(
        Event::decode(broken.as_bytes()).unwrap_err().reason,
        Event::decode(schema_last(broken.as_bytes()).as_bytes())
            .unwrap_err()
            .reason
    );
}
