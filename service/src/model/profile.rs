//! `profile.json`: the reference profile of a model package (format in `models/README.md`),
//! written by `training/fleet_training/profile.py`: per input feature and for the model's
//! output, the bins of the training rows and how many rows fell in each.
//!
//! [`Profile::parse`] reads and checks one against its manifest; [`Entry::bin_of`] puts a live
//! value in the bin the Python writer would have put it in (the shared fixture
//! `service/tests/fixtures/profile/` pins the two together). The drift measures on these bins
//! are in [`crate::drift`].

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::manifest::Manifest;

pub const PROFILE_FORMAT: u32 = 1;
/// Profiles of 100 features are ~40 KiB; anything this big is not one.
pub const MAX_PROFILE_BYTES: u64 = 8 << 20;
/// A `values` entry has at most this many values (the writer's cut-off).
pub const MAX_VALUES: usize = 20;
/// The name of the output's entry.
pub const OUTPUT_ENTRY: &str = "output";

/// How an entry's bins are defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinKind {
    /// Open-ended intervals between `edges`: the bin of `v` is the number of edges below `v`.
    Quantile,
    /// One bin per value of `values`, plus a last bin for any other value.
    Values,
}

/// The reference of one feature (or of the output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub kind: BinKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    /// Reference rows per bin.
    pub counts: Vec<u64>,
    /// Reference rows whose value is NaN or infinite.
    pub missing: u64,
    /// Over the finite reference values; `None` when none is finite.
    pub min: Option<f32>,
    pub max: Option<f32>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
}

/// A package's reference profile, checked ([`Profile::parse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub format: u32,
    pub rows: u64,
    #[serde(default)]
    pub binning: String,
    /// In the manifest's `input.features` order.
    pub features: Vec<Entry>,
    pub output: Entry,
}

/// Where a value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// Bin `i` of the entry's `counts`.
    In(usize),
    /// NaN or infinite.
    Missing,
}

impl Entry {
    /// The bin boundaries: `edges` or `values`, whichever `kind` says.
    pub(crate) fn points(&self) -> &[f32] {
        match self.kind {
            BinKind::Quantile => self.edges.as_deref(),
            BinKind::Values => self.values.as_deref(),
        }
        .unwrap_or(&[])
    }

    /// Bins: `counts.len()`, the missing bin not included.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// The bin of `v`, as the writer computes it (`numpy.searchsorted(side="left")`).
    #[inline]
    pub fn bin_of(&self, v: f32) -> Bin {
        if !v.is_finite() {
            return Bin::Missing;
        }
        let points = self.points();
        let below = points.partition_point(|p| *p < v);
        match self.kind {
            BinKind::Quantile => Bin::In(below),
            // `==`, not a total order: -0.0 is 0.0, as in numpy.
            BinKind::Values if points.get(below) == Some(&v) => Bin::In(below),
            BinKind::Values => Bin::In(points.len()),
        }
    }

    /// Checks the entry on its own: kind and boundaries, counts adding up to `rows`, range.
    fn check(&self, rows: u64) -> Result<(), String> {
        let name = &self.name;
        let (points, other, what) = match self.kind {
            BinKind::Quantile => (&self.edges, &self.values, "edges"),
            BinKind::Values => (&self.values, &self.edges, "values"),
        };
        let Some(points) = points else {
            return Err(format!("`{name}`: kind {:?} needs `{what}`", self.kind));
        };
        if other.is_some() {
            return Err(format!("`{name}`: only `{what}` belongs to its kind"));
        }
        if self.kind == BinKind::Quantile && points.is_empty() {
            return Err(format!("`{name}`: no edges"));
        }
        if self.kind == BinKind::Values && points.len() > MAX_VALUES {
            return Err(format!(
                "`{name}`: {} values, at most {MAX_VALUES}",
                points.len()
            ));
        }
        if points.iter().any(|p| !p.is_finite()) {
            return Err(format!("`{name}`: {what} must be finite"));
        }
        if points.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("`{name}`: {what} must be strictly increasing"));
        }
        if self.counts.len() != points.len() + 1 {
            return Err(format!(
                "`{name}`: {} counts for {} {what} (expected {})",
                self.counts.len(),
                points.len(),
                points.len() + 1
            ));
        }
        let total = self
            .counts
            .iter()
            .try_fold(self.missing, |sum, c| sum.checked_add(*c));
        if total != Some(rows) {
            return Err(format!(
                "`{name}`: counts and missing add up to {}, not the {rows} rows",
                total.map_or("more than 2^64".to_owned(), |t| t.to_string())
            ));
        }
        let finite_rows = rows - self.missing;
        match (self.min, self.max, self.mean, self.std) {
            (Some(min), Some(max), Some(mean), Some(std)) if finite_rows > 0 => {
                if !(min.is_finite() && max.is_finite() && min <= max) {
                    return Err(format!("`{name}`: min {min} and max {max}"));
                }
                if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
                    return Err(format!("`{name}`: mean {mean} and std {std}"));
                }
            }
            (None, None, None, None) if finite_rows == 0 => {}
            _ => {
                return Err(format!(
                    "`{name}`: min, max, mean and std are numbers when a value is finite, \
                     else null ({finite_rows} finite rows)"
                ));
            }
        }
        Ok(())
    }
}

impl Profile {
    /// Parses `bytes` and checks the profile against `manifest`: format, one entry per input
    /// feature in order, the output entry, every entry's bins and counts.
    pub fn parse(bytes: &[u8], manifest: &Manifest) -> Result<Profile, ModelError> {
        let profile: Profile =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Profile(e.to_string()))?;
        profile.check(&manifest.input.features)?;
        Ok(profile)
    }

    /// The checks of [`Profile::parse`], for a profile of these feature names.
    pub fn check(&self, features: &[String]) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Profile(m));
        if self.format != PROFILE_FORMAT {
            return bad(format!(
                "format {} is not supported (expected {PROFILE_FORMAT})",
                self.format
            ));
        }
        if self.rows == 0 {
            return bad("no reference rows".to_owned());
        }
        let names: Vec<&str> = self.features.iter().map(|e| e.name.as_str()).collect();
        if names != features {
            let at = names
                .iter()
                .zip(features)
                .position(|(a, b)| a != b)
                .unwrap_or(names.len().min(features.len()));
            return bad(format!(
                "features differ from input.features at position {at}: {} entries for {} \
                 features (`{}` vs `{}`)",
                names.len(),
                features.len(),
                names.get(at).copied().unwrap_or("-"),
                features.get(at).map_or("-", String::as_str)
            ));
        }
        if self.output.name != OUTPUT_ENTRY {
            return bad(format!(
                "the output entry is named `{}`, expected `{OUTPUT_ENTRY}`",
                self.output.name
            ));
        }
        for entry in self.features.iter().chain([&self.output]) {
            entry.check(self.rows).map_err(ModelError::Profile)?;
        }
        Ok(())
    }

    /// The entries in row order, then the output's: what [`crate::drift::BinCounts`] counts.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.features.iter().chain([&self.output])
    }
}

/// Profile entries for the tests of the modules that count into them.
#[cfg(test)]
pub(crate) mod testing {
    use super::{BinKind, Entry};

    /// An entry binned at `points` (edges or values, by `kind`) with reference `counts`.
    pub(crate) fn entry(name: &str, kind: BinKind, points: Vec<f32>, counts: Vec<u64>) -> Entry {
        Entry {
            name: name.to_owned(),
            kind,
            edges: (kind == BinKind::Quantile).then(|| points.clone()),
            values: (kind == BinKind::Values).then_some(points),
            counts,
            missing: 0,
            min: Some(0.0),
            max: Some(2.0),
            mean: Some(1.0),
            std: Some(0.5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile(edges: &[f32], counts: &[u64]) -> Entry {
        Entry {
            name: "x".to_owned(),
            kind: BinKind::Quantile,
            edges: Some(edges.to_vec()),
            values: None,
            counts: counts.to_vec(),
            missing: 0,
            min: Some(0.0),
            max: Some(10.0),
            mean: Some(5.0),
            std: Some(1.0),
        }
    }

    #[test]
    fn bins_are_open_below_and_closed_above() {
        let e = quantile(&[1.0, 2.0, 3.0], &[1, 1, 1, 1]);
        let bins: Vec<Bin> = [0.5, 1.0, 1.5, 2.0, 3.0, 3.5, f32::NAN, f32::INFINITY]
            .iter()
            .map(|v| e.bin_of(*v))
            .collect();
        use Bin::*;
        assert_eq!(
            bins,
            [In(0), In(0), In(1), In(1), In(2), In(3), Missing, Missing]
        );
    }

    #[test]
    fn values_match_exactly_and_negative_zero_is_zero() {
        let e = Entry {
            kind: BinKind::Values,
            edges: None,
            values: Some(vec![-0.0, 1.0]),
            counts: vec![1, 1, 0],
            ..quantile(&[], &[])
        };
        use Bin::*;
        let got: Vec<Bin> = [0.0, -0.0, 1.0, 0.5, 2.0, -1.0, f32::NEG_INFINITY]
            .iter()
            .map(|v| e.bin_of(*v))
            .collect();
        assert_eq!(got, [In(0), In(0), In(1), In(2), In(2), In(2), Missing]);
    }

    #[test]
    fn entry_checks() {
        let good = quantile(&[1.0, 2.0], &[1, 1, 1]);
        assert_eq!(good.check(3), Ok(()));
        let cases: Vec<(Entry, &str)> = vec![
            (quantile(&[2.0, 1.0], &[1, 1, 1]), "strictly increasing"),
            (quantile(&[1.0, 1.0], &[1, 1, 1]), "strictly increasing"),
            (quantile(&[1.0, f32::NAN], &[1, 1, 1]), "finite"),
            (quantile(&[], &[3]), "no edges"),
            (quantile(&[1.0, 2.0], &[1, 2]), "counts for"),
            (quantile(&[1.0, 2.0], &[1, 1, 2]), "add up to 4"),
            (
                Entry {
                    values: Some(vec![1.0]),
                    ..good.clone()
                },
                "only `edges`",
            ),
            (
                Entry {
                    edges: None,
                    ..good.clone()
                },
                "needs `edges`",
            ),
            (
                Entry {
                    min: Some(5.0),
                    max: Some(4.0),
                    ..good.clone()
                },
                "min 5",
            ),
            (
                Entry {
                    std: Some(-1.0),
                    ..good.clone()
                },
                "std -1",
            ),
            (
                Entry {
                    mean: None,
                    ..good.clone()
                },
                "else null",
            ),
            (
                Entry {
                    kind: BinKind::Values,
                    edges: None,
                    values: Some((0..21).map(|v| v as f32).collect()),
                    counts: vec![0; 22],
                    ..good
                },
                "at most 20",
            ),
        ];
        for (entry, want) in cases {
            let err = entry.check(3).unwrap_err();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
