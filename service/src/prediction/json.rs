//! The prediction record's JSON, written directly: byte for byte what serde's derive writes
//! for [`Prediction`] (a proptest compares them), without serde's per-field calls or the
//! timestamps' `Display` formatting. Encoding predictions this way was one of the stream's
//! per-event costs (issue #18; criterion `prediction` bench: BENCHMARKS.md). What it does not
//! write itself (a timestamp outside years 0-9999 or in a leap second, a string that needs
//! escapes) it hands to serde_json, so every value still encodes exactly as before.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::Prediction;
use crate::model::interval::Interval;

/// Room for a whole record with an interval, so that encoding allocates once.
const CAPACITY: usize = 640;

/// [`Prediction`] as one line of JSON (no trailing newline).
pub(super) fn encode(p: &Prediction) -> Vec<u8> {
    let mut out = Vec::with_capacity(CAPACITY);
    out.extend_from_slice(b"{\"schema\":");
    string(&mut out, &p.schema);
    out.extend_from_slice(b",\"tail\":");
    string(&mut out, &p.tail);
    out.extend_from_slice(b",\"source_event_id\":");
    string(&mut out, &p.source_event_id);
    out.extend_from_slice(b",\"event_time\":");
    timestamp(&mut out, &p.event_time);
    out.extend_from_slice(b",\"model\":");
    string(&mut out, &p.model);
    out.extend_from_slice(b",\"model_version\":");
    string(&mut out, &p.model_version);
    out.extend_from_slice(b",\"model_sha256\":");
    string(&mut out, &p.model_sha256);
    out.extend_from_slice(b",\"feature_set\":");
    string(&mut out, &p.feature_set);
    out.extend_from_slice(b",\"feature_set_version\":");
    string(&mut out, &p.feature_set_version);
    out.extend_from_slice(b",\"prediction\":");
    float(&mut out, p.prediction);
    if let Some(interval) = &p.interval {
        out.extend_from_slice(b",\"interval\":");
        self::interval(&mut out, interval);
    }
    out.extend_from_slice(b",\"scored_at\":");
    timestamp(&mut out, &p.scored_at);
    out.push(b'}');
    out
}

fn interval(out: &mut Vec<u8>, i: &Interval) {
    out.extend_from_slice(b"{\"level\":");
    float(out, i.level);
    out.extend_from_slice(b",\"lower\":");
    float(out, i.lower);
    out.extend_from_slice(b",\"upper\":");
    float(out, i.upper);
    out.extend_from_slice(b",\"lower_model\":");
    string(out, &i.lower_model);
    out.extend_from_slice(b",\"upper_model\":");
    string(out, &i.upper_model);
    out.push(b'}');
}

/// A JSON string: copied as it is unless a byte needs an escape (a control character, `"` or
/// `\`), when serde_json escapes it.
fn string(out: &mut Vec<u8>, s: &str) {
    // Without a short cut, so that the scan vectorizes.
    let escapes = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escapes {
        serde_json::to_writer(&mut *out, s).expect("a string serializes");
        return;
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// A float as serde_json writes an `f32`: shortest round-trip digits (zmij, the writer
/// serde_json uses), `null` if not finite.
fn float(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A timestamp as chrono's serde writes a `DateTime<Utc>` (RFC 3339, `Z`, as many fractional
/// digits as it needs of 0, 3, 6 or 9).
fn timestamp(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    // `DateTime`'s accessors each convert to local time first (a no-op offset, but a call).
    let t = t.naive_utc();
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // A signed or long year, or a leap second: chrono's own formatting.
        serde_json::to_writer(&mut *out, &t.and_utc()).expect("a timestamp serializes");
        return;
    }
    let year = year as u32; // 0..=9999 (checked above)
    out.push(b'"');
    digits(out, year, 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    digits(out, t.second(), 2);
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
}

/// `value`'s last `width` decimal digits, zero-padded.
fn digits(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    use super::encode;
    use crate::model::interval::Interval;
    use crate::prediction::{PREDICTION_SCHEMA, Prediction};

    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        let nanos = prop_oneof![
            Just(0u32),
            (0u32..1000).prop_map(|ms| ms * 1_000_000),
            (0u32..1_000_000).prop_map(|us| us * 1_000),
            0u32..1_000_000_000,
            1_000_000_000u32..2_000_000_000, // a leap second
        ];
        let seconds = prop_oneof![
            // Years 1970-2100, as events carry them.
            0i64..4_102_444_800,
            // Any year chrono represents, and the edges of four digits.
            -8_000_000_000_000i64..8_000_000_000_000,
            Just(-62_167_219_200), // 0000-01-01
            Just(253_402_300_799), // 9999-12-31T23:59:59
        ];
        (seconds, nanos).prop_filter_map("a time chrono represents", |(s, n)| {
            let t = DateTime::from_timestamp(s, n % 1_000_000_000)?;
            if n < 1_000_000_000 {
                return Some(t);
            }
            // chrono only puts a leap second at second 59.
            let naive = t.naive_utc().date().and_hms_nano_opt(23, 59, 59, n)?;
            Some(Utc.from_utc_datetime(&naive))
        })
    }

    fn any_float() -> impl Strategy<Value = f32> {
        prop_oneof![
            any::<f32>(),
            -400.0f32..400.0,
            Just(0.0),
            Just(-0.0),
            Just(f32::NAN),
            Just(f32::INFINITY),
        ]
    }

    /// Names as they come (tails and model names), and any string at all (event ids may hold
    /// quotes and backslashes; the record's type allows anything).
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Z0-9-]{2,16}", "[ -~]{0,40}", any::<String>()]
    }

    fn any_prediction() -> impl Strategy<Value = Prediction> {
        let interval = proptest::option::of(
            (
                any_float(),
                any_float(),
                any_float(),
                any_text(),
                any_text(),
            )
                .prop_map(|(level, lower, upper, lower_model, upper_model)| Interval {
                    level,
                    lower,
                    upper,
                    lower_model,
                    upper_model,
                }),
        );
        (
            proptest::collection::vec(any_text(), 7),
            any_time(),
            any_time(),
            any_float(),
            interval,
        )
            .prop_map(|(text, event_time, scored_at, prediction, interval)| {
                let [
                    tail,
                    source_event_id,
                    model,
                    model_version,
                    model_sha256,
                    feature_set,
                    feature_set_version,
                ] = <[String; 7]>::try_from(text).unwrap();
                Prediction {
                    schema: PREDICTION_SCHEMA.into(),
                    tail,
                    source_event_id,
                    event_time,
                    model: model.into(),
                    model_version: model_version.into(),
                    model_sha256: model_sha256.into(),
                    feature_set: feature_set.into(),
                    feature_set_version: feature_set_version.into(),
                    prediction,
                    interval,
                    scored_at,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The written record is byte for byte serde_json's.
        #[test]
        fn encodes_as_serde_does(p in any_prediction()) {
            prop_assert_eq!(
                String::from_utf8(encode(&p)).unwrap(),
                serde_json::to_string(&p).unwrap()
            );
        }
    }

    /// The edges the strategy may not draw every run: each fractional width, years 0 and
    /// 9999, a leap second; exponents (serde_json writes `e+15`, not ryu's `e15`), -0,
    /// non-finite values.
    #[test]
    fn encodes_edges_as_serde_does() {
        let values = [
            3.958_631e15,
            1.0e-7,
            -0.0,
            f32::NAN,
            f32::NEG_INFINITY,
            112.25,
        ];
        let times = [
            Utc.with_ymd_and_hms(2026, 11, 30, 22, 4, 5).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 120_000_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 120_300_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 120_300_001).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.from_utc_datetime(
                &NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                    .unwrap(),
            ),
        ];
        for (t, value) in times.into_iter().zip(values.into_iter().cycle()) {
            let p = Prediction {
                schema: PREDICTION_SCHEMA.into(),
                tail: "N1-\"quoted\"\\".to_owned(),
                source_event_id: "e\u{1}".to_owned(),
                event_time: t,
                model: "engine-rul".into(),
                model_version: "1".into(),
                model_sha256: "ab".repeat(32).into(),
                feature_set: "engine-health".into(),
                feature_set_version: "2".into(),
                prediction: value,
                interval: Some(Interval {
                    level: 0.8,
                    lower: value,
                    upper: f32::MAX,
                    lower_model: "engine-rul-p10/1".to_owned(),
                    upper_model: "engine-rul-p90/1".to_owned(),
                }),
                scored_at: t,
            };
            assert_eq!(
                String::from_utf8(encode(&p)).unwrap(),
                serde_json::to_string(&p).unwrap(),
                "{t:?}"
            );
        }
    }
}
