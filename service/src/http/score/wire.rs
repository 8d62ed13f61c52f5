//! Reading a `POST /score` body in one pass: the hand-written serde visitors that parse rows
//! straight into a model's feature order (names looked up in a table built once per feature
//! set) without building a map per row, and name precisely what is wrong with a row.
//!
//! Over 400 lines on purpose: it is one concept, the body's grammar, and reads top to bottom
//! from the request object to its rows, a row, and a key (with the unit tests of a row last).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use fleet_features::{FeatureSet, PerFeatureSet};
use rustc_hash::FxHashMap;
use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::app::AppContext;
use crate::http::error::ApiError;
use crate::model::ServingSet;

/// A `POST /score` body, read in one pass. When `model` comes before `rows` (as clients write
/// it), the rows are parsed straight into the model's feature order while the body is read;
/// otherwise they are kept raw and parsed once the model is known.
pub(super) struct Wire<'a> {
    pub(super) model: String,
    /// The serving models of `model`, looked up as soon as it was read (`None`: not serving).
    pub(super) serving: Option<ServingSet>,
    pub(super) rows: Option<Rows<'a>>,
    pub(super) tail: Option<String>,
    pub(super) event: Option<&'a RawValue>,
    pub(super) engine: Option<u8>,
}

pub(super) enum Rows<'a> {
    /// Rows parsed in the model's feature order, row-major.
    Parsed { values: Vec<f32>, count: usize },
    /// More rows than allowed (the count); the rest were skipped unparsed.
    TooMany(usize),
    /// Rows that came before `model`.
    Raw(Vec<&'a RawValue>),
}

const WIRE_FIELDS: &[&str] = &["model", "rows", "tail", "event", "engine"];

/// Reads a [`Wire`]. A row's problem is put in `row_error`, more precise than the serde error
/// that stops the parse.
pub(super) struct WireSeed<'c> {
    pub(super) ctx: &'c AppContext,
    pub(super) row_error: &'c mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for WireSeed<'_> {
    type Value = Wire<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Wire<'de>, D::Error> {
        d.deserialize_struct("ScoreRequest", WIRE_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for WireSeed<'_> {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scoring request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        let WireSeed { ctx, row_error } = self;
        let mut model: Option<String> = None;
        let mut serving: Option<ServingSet> = None;
        let mut rows: Option<Option<Rows<'de>>> = None;
        let mut tail: Option<Option<String>> = None;
        let mut event: Option<Option<&'de RawValue>> = None;
        let mut engine: Option<Option<u8>> = None;
        while let Some(Key(key)) = map.next_key_seed(KeySeed)? {
            let fresh = match &*key {
                "model" => {
                    let name: String = map.next_value()?;
                    serving = ctx.registry.serving_by_name(&name);
                    model.replace(name).is_none()
                }
                "rows" => {
                    let value = match &serving {
                        Some(s) => map.next_value_seed(RowsSeed {
                            set: s.serving.feature_set,
                            max: ctx.config.http.max_batch_rows,
                            row_error: &mut *row_error,
                        })?,
                        None => map.next_value::<Option<Vec<_>>>()?.map(Rows::Raw),
                    };
                    rows.replace(value).is_none()
                }
                "tail" => tail.replace(map.next_value()?).is_none(),
                "event" => event.replace(map.next_value()?).is_none(),
                "engine" => engine.replace(map.next_value()?).is_none(),
                other => return Err(de::Error::unknown_field(other, WIRE_FIELDS)),
            };
            if !fresh {
                let field = WIRE_FIELDS
                    .iter()
                    .find(|f| **f == key)
                    .expect("matched above");
                return Err(de::Error::duplicate_field(field));
            }
        }
        let model = model.ok_or_else(|| de::Error::missing_field("model"))?;
        Ok(Wire {
            model,
            serving,
            rows: rows.flatten(),
            tail: tail.flatten(),
            event: event.flatten(),
            engine: engine.flatten(),
        })
    }
}

/// Reads `rows` (or `null`) into the feature order of `set`, at most `max` of them.
struct RowsSeed<'c> {
    set: &'static FeatureSet,
    max: usize,
    row_error: &'c mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Option<Rows<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Option<Rows<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let width = self.set.len();
        let mut values = Vec::with_capacity(width);
        let mut count = 0;
        loop {
            if count == self.max {
                let mut total = count;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                if total > self.max {
                    return Ok(Some(Rows::TooMany(total)));
                }
                break;
            }
            let start = values.len();
            values.resize(start + width, 0.0);
            let row = RowSeed {
                set: self.set,
                i: count,
                out: &mut values[start..],
                row_error: &mut *self.row_error,
            };
            if seq.next_element_seed(row)?.is_none() {
                values.truncate(start);
                break;
            }
            count += 1;
        }
        Ok(Some(Rows::Parsed { values, count }))
    }
}

/// Reads row `i` into `out`; what was wrong with it goes to `row_error`.
struct RowSeed<'c> {
    set: &'static FeatureSet,
    i: usize,
    out: &'c mut [f32],
    row_error: &'c mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        read_row(self.set, d, self.i, self.out).map_err(|(problem, e)| {
            *self.row_error = Some(problem);
            e.unwrap_or_else(|| de::Error::custom("invalid row"))
        })
    }
}

/// Feature name -> position, per feature set (FxHash: the keys are our own names, and a
/// lookup is on the path of every feature of every row).
static INDEX: LazyLock<PerFeatureSet<FxHashMap<&'static str, usize>>> = LazyLock::new(|| {
    PerFeatureSet::from_fn(|id| {
        FeatureSet::get(id)
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect()
    })
});

/// Parses one row object (`{"T24_mean": 642.1, ...}`) into `out`, in the set's order.
pub fn parse_row(set: &FeatureSet, row: &str, i: usize, out: &mut [f32]) -> Result<(), ApiError> {
    let mut de = serde_json::Deserializer::from_str(row);
    read_row(set, &mut de, i, out).map_err(|(problem, _)| problem)
}

/// Reads one row object from `d` into `out`, in the set's order. On failure, what was wrong
/// with the row, and the deserializer's error when it stopped reading.
fn read_row<'de, D: Deserializer<'de>>(
    set: &FeatureSet,
    d: D,
    i: usize,
    out: &mut [f32],
) -> Result<(), (ApiError, Option<D::Error>)> {
    let mut seen = vec![false; set.len()];
    let mut unknown = Vec::new();
    let mut failed_on: Option<String> = None;
    let mut non_finite: Option<(String, f64)> = None;
    let visitor = RowVisitor {
        index: &INDEX[set.id()],
        names: set.names(),
        out,
        seen: &mut seen,
        unknown: &mut unknown,
        failed_on: &mut failed_on,
        non_finite: &mut non_finite,
    };
    if let Err(e) = d.deserialize_map(visitor) {
        let problem = ApiError::InvalidRequest {
            message: match &failed_on {
                Some(feature) => format!("row {i}: feature `{feature}`: {e}"),
                None => format!("row {i}: {e}"),
            },
            field: failed_on,
            row: Some(i),
        };
        return Err((problem, Some(e)));
    }
    let missing: Vec<String> = set
        .names()
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(n, _)| n.clone())
        .collect();
    if !missing.is_empty() || !unknown.is_empty() {
        let problem = ApiError::FeatureMismatch {
            row: i,
            missing,
            unknown,
        };
        return Err((problem, None));
    }
    if let Some((feature, value)) = non_finite {
        let problem = ApiError::NotFinite {
            row: i,
            feature,
            value,
        };
        return Err((problem, None));
    }
    Ok(())
}

struct RowVisitor<'s> {
    index: &'static FxHashMap<&'static str, usize>,
    /// The set's names in order: clients tend to send them so, and checking the name after the
    /// previous one costs less than a lookup.
    names: &'s [String],
    out: &'s mut [f32],
    seen: &'s mut [bool],
    unknown: &'s mut Vec<String>,
    failed_on: &'s mut Option<String>,
    non_finite: &'s mut Option<(String, f64)>,
}

impl<'de> Visitor<'de> for RowVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of feature name to number")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut next = 0;
        while let Some(Key(key)) = map.next_key_seed(KeySeed)? {
            let expected = self.names.get(next).is_some_and(|name| *name == *key);
            let found = if expected {
                Some(next)
            } else {
                self.index.get(&*key).copied()
            };
            let Some(i) = found else {
                map.next_value::<IgnoredAny>()?;
                if self.unknown.len() < 100 {
                    self.unknown.push(key.chars().take(100).collect());
                }
                continue;
            };
            let value: f64 = match map.next_value() {
                Ok(v) => v,
                Err(e) => {
                    *self.failed_on = Some(key.into_owned());
                    return Err(e);
                }
            };
            if self.seen[i] {
                *self.failed_on = Some(key.to_string());
                return Err(de::Error::custom("given twice"));
            }
            self.seen[i] = true;
            next = i + 1;
            let narrowed = value as f32;
            if !narrowed.is_finite() && self.non_finite.is_none() {
                *self.non_finite = Some((key.into_owned(), value));
            }
            self.out[i] = narrowed;
        }
        Ok(())
    }
}

/// A map key, borrowed from the body unless it contains escapes.
struct Key<'de>(Cow<'de, str>);
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a feature name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_features::FeatureSetId;

    fn row_json(set: &FeatureSet, skip: usize, extra: &str) -> String {
        let mut parts: Vec<String> = set
            .names()
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, n)| format!("\"{n}\": {i}.5"))
            .collect();
        if !extra.is_empty() {
            parts.push(extra.to_owned());
        }
        format!("{{{}}}", parts.join(","))
    }

    #[test]
    fn rows_land_in_the_feature_sets_order_whatever_the_json_order() {
        let set = FeatureSet::get(FeatureSetId::DelayRisk);
        let mut names: Vec<&String> = set.names().iter().collect();
        names.reverse();
        let json = format!(
            "{{{}}}",
            names
                .iter()
                .map(|n| format!(
                    "\"{n}\": {}",
                    set.names().iter().position(|m| m == *n).unwrap()
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut out = vec![f32::NAN; set.len()];
        parse_row(set, &json, 0, &mut out).unwrap();
        assert_eq!(out, (0..set.len()).map(|i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn missing_unknown_duplicate_and_non_finite_features_are_named() {
        let set = FeatureSet::get(FeatureSetId::DelayRisk);
        let mut out = vec![0.0; set.len()];
        match parse_row(set, &row_json(set, 2, "\"bogus\": 1"), 3, &mut out) {
            Err(ApiError::FeatureMismatch {
                row,
                missing,
                unknown,
            }) => {
                assert_eq!(row, 3);
                assert_eq!(missing, set.names()[..2].to_vec());
                assert_eq!(unknown, ["bogus"]);
            }
            other => panic!("{other:?}"),
        }
        let first = &set.names()[0];
        match parse_row(
            set,
            &row_json(set, 0, &format!("\"{first}\": 2")),
            0,
            &mut out,
        ) {
            Err(ApiError::InvalidRequest { field, .. }) => assert_eq!(field.as_ref(), Some(first)),
            other => panic!("{other:?}"),
        }
        let json = row_json(set, 1, &format!("\"{first}\": \"7\""));
        match parse_row(set, &json, 0, &mut out) {
            Err(ApiError::InvalidRequest { field, message, .. }) => {
                assert_eq!(field.as_ref(), Some(first));
                assert!(message.contains("invalid type"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match parse_row(
            set,
            &row_json(set, 1, &format!("\"{first}\": 1e300")),
            0,
            &mut out,
        ) {
            Err(ApiError::NotFinite { feature, .. }) => assert_eq!(&feature, first),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_row(set, "[1, 2]", 0, &mut out),
            Err(ApiError::InvalidRequest { .. })
        ));
    }
}
