//! RFC 3339 timestamps with clear decode errors, and the range of times we accept.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

use crate::error::{DecodeError, RejectReason};

/// 1970-01-01T00:00:00Z: nothing in this domain happened before it.
pub(crate) const MIN_MS: i64 = 0;
/// 2100-01-01T00:00:00Z: anything later is a unit mistake (seconds vs milliseconds, say).
pub(crate) const MAX_MS: i64 = 4_102_444_800_000;

pub(crate) fn check_range(field: &'static str, ms: i64) -> Result<(), DecodeError> {
    if (MIN_MS..MAX_MS).contains(&ms) {
        Ok(())
    } else {
        Err(DecodeError::field(
            RejectReason::BadTimestamp,
            field,
            "must lie between 1970 and 2100".to_owned(),
        ))
    }
}

fn parse(s: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("invalid timestamp `{s}`: {e} (expected RFC 3339)"))
}

/// `event_time` and the like: any offset on input, UTC in memory and on output.
pub(crate) mod utc {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }
}

/// Scheduled times keep their UTC offset: local hour and weekday are features.
pub(crate) mod local {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        t: &DateTime<FixedOffset>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<DateTime<FixedOffset>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&s).map_err(D::Error::custom)
    }
}

/// Optional UTC times (actual departure and arrival).
pub(crate) mod opt_utc {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => utc::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        s.map(|s| parse(&s).map(|t| t.with_timezone(&Utc)))
            .transpose()
            .map_err(D::Error::custom)
    }
}
