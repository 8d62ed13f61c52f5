//! Telemetry in its canonical layout, decoded by hand.
//!
//! Every producer in this repository writes telemetry the same way ([`super::Event::encode`],
//! `fleetscore import`, the load generator): serde's member order, no whitespace, the schema
//! first. [`decode`] reads exactly that layout in one pass and gives up (`None`) at the first
//! byte that differs, so that serde's general path decides anything else and reports its
//! errors. Where it returns an event, it is the event `serde_json` builds from the same bytes:
//!
//! - strings only when printable ASCII without escapes (what serde reads them as unchanged);
//! - numbers only in JSON's grammar, without an exponent and with at most 18 digits, turned
//!   into `f64` by the same operations as `serde_json`'s (the digits as an integer, converted
//!   once, then one division by a power of ten: `serde_json::de::f64_from_parts` without the
//!   `float_roundtrip` feature), so the same bits;
//! - times only as `YYYY-MM-DDTHH:MM:SS[.f]Z` with 1-9 fraction digits and seconds below 60.
//!
//! The tests below hold it to that against serde on random events, numbers and corrupted
//! bytes. Why by hand: serde's derived decoding was the largest cost of the streaming path
//! after inference, 2.2 µs of the service's ~21 µs of CPU per event; this path takes 1.0 µs
//! (criterion `decode/FD001`, validation included; BENCHMARKS.md, session 16).

use chrono::{DateTime, NaiveDate, Utc};

use super::telemetry::{SENSOR_COUNT, SENSOR_NAMES, Sensors, TelemetryEvent};

/// Digits a number may have here: below `u64::MAX / 10`, so the significand never overflows
/// (`serde_json` switches to another algorithm when it would).
const MAX_DIGITS: u32 = 18;

/// Powers of ten up to the largest fraction this path reads; exact in `f64`, as
/// `serde_json`'s table is.
const POW10: [f64; MAX_DIGITS as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// A telemetry event in the canonical layout, or `None` for anything else (see the module).
pub(super) fn decode(bytes: &[u8]) -> Option<TelemetryEvent> {
    let mut c = Cursor { bytes, at: 0 };
    c.literal(br#"{"schema":"fleet.telemetry.v1","event_id":""#)?;
    let event_id = c.string()?.to_owned();
    c.literal(br#","tail":""#)?;
    let tail = c.string()?.to_owned();
    c.literal(br#","engine":"#)?;
    let engine = u8::try_from(c.unsigned()?).ok()?;
    c.literal(br#","event_time":""#)?;
    let event_time = c.timestamp()?;
    c.literal(br#","cycle":"#)?;
    let cycle = u32::try_from(c.unsigned()?).ok()?;
    c.literal(br#","settings":["#)?;
    let mut settings = [0.0; 3];
    for (i, setting) in settings.iter_mut().enumerate() {
        if i > 0 {
            c.literal(b",")?;
        }
        *setting = c.number()?;
    }
    c.literal(br#"],"sensors":{"#)?;
    let mut sensors = [0.0; SENSOR_COUNT];
    for (i, (sensor, name)) in sensors.iter_mut().zip(SENSOR_NAMES).enumerate() {
        if i > 0 {
            c.literal(b",")?;
        }
        c.literal(b"\"")?;
        c.literal(name.as_bytes())?;
        c.literal(b"\":")?;
        *sensor = c.number()?;
    }
    c.literal(b"}}")?;
    (c.at == bytes.len()).then(|| TelemetryEvent {
        event_id,
        tail,
        engine,
        event_time,
        cycle,
        settings,
        sensors: Sensors::from_array(sensors),
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let end = self.at + expected.len();
        if self.bytes.get(self.at..end)? != expected {
            return None;
        }
        self.at = end;
        Some(())
    }

    /// A string's contents up to its closing quote (the opening one already read): printable
    /// ASCII, no escapes.
    fn string(&mut self) -> Option<&'a str> {
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|&b| b == b'"')?;
        let contents = &rest[..len];
        if !contents
            .iter()
            .all(|&b| (b' '..=b'~').contains(&b) && b != b'\\')
        {
            return None;
        }
        self.at += len + 1;
        // Printable ASCII is UTF-8.
        std::str::from_utf8(contents).ok()
    }

    /// Consecutive digits appended to `value`, and how many there were (`None` past
    /// `budget`).
    fn digits(&mut self, mut value: u64, budget: u32) -> Option<(u64, u32)> {
        let mut count = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            count += 1;
            if count > budget {
                return None;
            }
            value = value * 10 + u64::from(d - b'0');
            self.at += 1;
        }
        Some((value, count))
    }

    /// JSON's integer part: `0`, or a non-zero digit and more digits.
    fn integer_part(&mut self) -> Option<(u64, u32)> {
        match self.peek()? {
            b'0' => {
                self.at += 1;
                // One leading zero only (serde rejects `01`).
                (!matches!(self.peek(), Some(b'0'..=b'9'))).then_some((0, 1))
            }
            b'1'..=b'9' => self.digits(0, MAX_DIGITS),
            _ => None,
        }
    }

    /// A non-negative integer without fraction or exponent (`engine`, `cycle`).
    fn unsigned(&mut self) -> Option<u64> {
        let (value, _) = self.integer_part()?;
        (!matches!(self.peek(), Some(b'.' | b'e' | b'E'))).then_some(value)
    }

    /// A JSON number without an exponent, as `serde_json` computes it.
    fn number(&mut self) -> Option<f64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let (integer, integer_digits) = self.integer_part()?;
        let value = if self.peek() == Some(b'.') {
            self.at += 1;
            let (significand, fraction_digits) =
                self.digits(integer, MAX_DIGITS - integer_digits)?;
            if fraction_digits == 0 {
                return None;
            }
            significand as f64 / POW10[fraction_digits as usize]
        } else {
            // serde_json reads an integer as u64 or i64 and the visitor converts it: for
            // magnitudes below 10^18 the same value as converting the magnitude and negating.
            integer as f64
        };
        if matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        Some(if negative { -value } else { value })
    }

    /// Exactly `count` digits, as a number.
    fn fixed(&mut self, count: usize) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + count)?;
        let mut value = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(d - b'0');
        }
        self.at += count;
        Some(value)
    }

    /// `YYYY-MM-DDTHH:MM:SS[.f]Z"` (the opening quote already read), in UTC.
    fn timestamp(&mut self) -> Option<DateTime<Utc>> {
        let year = self.fixed(4)?;
        self.literal(b"-")?;
        let month = self.fixed(2)?;
        self.literal(b"-")?;
        let day = self.fixed(2)?;
        self.literal(b"T")?;
        let hour = self.fixed(2)?;
        self.literal(b":")?;
        let minute = self.fixed(2)?;
        self.literal(b":")?;
        let second = self.fixed(2)?;
        let mut nanos = 0;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let (fraction, digits) = self.digits(0, 9)?;
            if digits == 0 {
                return None;
            }
            nanos = fraction as u32 * 10u32.pow(9 - digits);
        }
        self.literal(b"Z\"")?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
        Some(
            date.and_hms_nano_opt(hour, minute, second, nanos)?
                .and_utc(),
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::Event;

    /// What serde's general path makes of `bytes`, validation aside.
    fn by_serde(bytes: &[u8]) -> Option<TelemetryEvent> {
        match serde_json::from_slice::<Event>(bytes).ok()? {
            Event::Telemetry(t) => Some(t),
            Event::Schedule(_) => None,
        }
    }

    /// `number` held to serde on the same text, to the bit.
    fn same_number(text: &str) -> Result<(), TestCaseError> {
        let mut c = Cursor {
            bytes: text.as_bytes(),
            at: 0,
        };
        let ours = c.number().filter(|_| c.at == text.len());
        let theirs = serde_json::from_str::<f64>(text).ok();
        if let Some(ours) = ours {
            let theirs =
                theirs.ok_or_else(|| TestCaseError::fail(format!("serde refused {text}")))?;
            prop_assert_eq!(ours.to_bits(), theirs.to_bits(), "{}", text);
        }
        Ok(())
    }

    /// Events of any strings and numbers, or (`plain`) of those this path takes.
    fn event(plain: bool) -> impl Strategy<Value = TelemetryEvent> {
        let text = if plain {
            "[ !#-\\[\\]-~]{1,20}".boxed()
        } else {
            prop_oneof!["[ -~]{0,20}", any::<String>()].boxed()
        };
        let short =
            (-10_000_000i64..10_000_000, 0i32..8).prop_map(|(n, d)| n as f64 / 10f64.powi(d));
        let number = if plain {
            prop_oneof![short, Just(-0.0)].boxed()
        } else {
            prop_oneof![any::<f64>(), short, Just(-0.0)].boxed()
        };
        (
            (text.clone(), text, any::<u8>(), any::<u32>()),
            (
                // 1900-2300, whole seconds or with a fraction
                -2_208_988_800i64..10_413_792_000,
                prop_oneof![
                    Just(0u32),
                    0u32..1_000_000_000,
                    (0u32..1000).prop_map(|m| m * 1_000_000)
                ],
            ),
            prop::array::uniform3(number.clone()),
            prop::array::uniform21(number),
        )
            .prop_map(
                |((event_id, tail, engine, cycle), (secs, nanos), settings, sensors)| {
                    TelemetryEvent {
                        event_id,
                        tail,
                        engine,
                        event_time: DateTime::from_timestamp(secs, nanos).unwrap(),
                        cycle,
                        settings,
                        sensors: Sensors::from_array(sensors),
                    }
                },
            )
    }

    #[test]
    fn the_canonical_layout_is_what_encode_writes() {
        let event = TelemetryEvent {
            event_id: "cmapss:train_FD001:u1:c1".to_owned(),
            tail: "CMAPSS-1".to_owned(),
            engine: 1,
            event_time: DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
            cycle: 1,
            settings: [-0.0007, -0.0004, 100.0],
            sensors: Sensors::from_array(std::array::from_fn(|i| 500.0 + i as f64 * 1.25)),
        };
        let bytes = Event::Telemetry(event.clone()).encode();
        assert_eq!(decode(&bytes), Some(event));
        // One byte of whitespace, and the general path decides.
        let spaced = String::from_utf8(bytes)
            .unwrap()
            .replace(",\"tail\"", ", \"tail\"");
        assert_eq!(decode(spaced.as_bytes()), None);
        assert!(by_serde(spaced.as_bytes()).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any event `encode` writes: where this path takes it, it decodes as serde does.
        #[test]
        fn decodes_as_serde_does(event in event(false)) {
            let bytes = Event::Telemetry(event).encode();
            if let Some(ours) = decode(&bytes) {
                prop_assert_eq!(Some(ours), by_serde(&bytes));
            }
        }

        /// Events of printable strings and short numbers (what producers write) take this
        /// path, and come back as they were.
        #[test]
        fn plain_events_take_this_path(event in event(true)) {
            let bytes = Event::Telemetry(event.clone()).encode();
            prop_assert_eq!(decode(&bytes), Some(event));
        }

        /// Numbers of every shape JSON allows and some it does not, to the bit.
        #[test]
        fn numbers_are_serde_numbers(
            text in "-?(0|[1-9][0-9]{0,20}|0[0-9]{1,3})(\\.[0-9]{0,22})?([eE][+-]?[0-9]{1,3})?"
        ) {
            same_number(&text)?;
        }

        /// Any corruption of a canonical event: taken only where serde takes it the same.
        #[test]
        fn corrupted_events_are_left_to_serde(
            event in event(false),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = Event::Telemetry(event).encode();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some(ours) = decode(&bytes) {
                prop_assert_eq!(Some(ours), by_serde(&bytes));
            }
        }

        /// Times: where this path reads one, chrono's RFC 3339 parser reads the same instant.
        #[test]
        fn times_are_chronos(
            text in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?Z"
        ) {
            let quoted = format!("{text}\"");
            let mut c = Cursor { bytes: quoted.as_bytes(), at: 0 };
            if let Some(ours) = c.timestamp() {
                let theirs = DateTime::parse_from_rfc3339(&text);
                prop_assert_eq!(Ok(ours), theirs.map(|t| t.with_timezone(&Utc)), "{}", text);
            }
        }
    }
}
