//! Live rows counted into a profile's bins.

use std::sync::Arc;

use crate::model::profile::Profile;

use super::coder::{ABOVE, BELOW, Coder, SLOT_MASK};
use super::measure::{Thresholds, js, psi};
use super::report::{DriftReport, EntryDrift};

/// Live rows counted into the bins of a [`Profile`]: per entry (each input feature, then the
/// output), the rows per bin with the missing (non-finite) bin last, and the rows below the
/// reference's minimum and above its maximum.
///
/// [`BinCounts::add`] and [`BinCounts::remove`] are exact inverses, so a sliding window keeps
/// one up to date as rows enter and leave it; [`BinCounts::report`] measures it at any time.
#[derive(Debug, Clone)]
pub struct BinCounts {
    profile: Arc<Profile>,
    /// The profile's bins laid out for coding rows.
    coder: Arc<Coder>,
    /// Where each entry's counts start in `counts` (`bins + 1` each, the missing bin last).
    offsets: Vec<usize>,
    counts: Vec<u64>,
    below: Vec<u64>,
    above: Vec<u64>,
    rows: u64,
}

impl BinCounts {
    /// No rows yet, in the bins of `profile`.
    pub fn new(profile: Arc<Profile>) -> Self {
        let mut offsets = Vec::with_capacity(profile.features.len() + 1);
        let mut next = 0;
        for entry in profile.entries() {
            offsets.push(next);
            next += entry.bins() + 1;
        }
        let n = offsets.len();
        BinCounts {
            coder: Arc::new(Coder::new(&profile, &offsets)),
            profile,
            offsets,
            counts: vec![0; next],
            below: vec![0; n],
            above: vec![0; n],
            rows: 0,
        }
    }

    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Entry `i`'s counts (the profile's entries in order, the output last): one per bin, then
    /// the missing rows.
    pub fn counts(&self, i: usize) -> &[u64] {
        let end = self
            .offsets
            .get(i + 1)
            .copied()
            .unwrap_or(self.counts.len());
        &self.counts[self.offsets[i]..end]
    }

    /// Counts a row: its feature values (in the profile's order) and the model's output on it.
    pub fn add(&mut self, row: &[f32], output: f32) {
        self.update(row, output, true);
        self.rows += 1;
    }

    /// Takes back a row counted by [`BinCounts::add`] (the same values).
    pub fn remove(&mut self, row: &[f32], output: f32) {
        debug_assert!(self.rows > 0, "removing a row from empty counts");
        self.update(row, output, false);
        self.rows = self.rows.saturating_sub(1);
    }

    /// Entries per row: the profile's features and the output.
    pub fn width(&self) -> usize {
        self.offsets.len()
    }

    /// Appends the row's [`BinCounts::width`] codes to `out`: per entry, where the value is
    /// counted (its slot) and whether it is below the reference's minimum or above its
    /// maximum. A sliding window keeps these instead of the values, so that taking a row out
    /// ([`BinCounts::remove_codes`]) needs no binning.
    #[inline]
    pub fn codes(&self, row: &[f32], output: f32, out: &mut Vec<u32>) {
        let profile = &*self.profile;
        debug_assert_eq!(row.len(), profile.features.len(), "row width");
        out.extend(
            row.iter()
                .chain([&output])
                .enumerate()
                .map(|(i, &v)| self.coder.code(profile, i, v)),
        );
    }

    /// Counts a row by its [`BinCounts::codes`].
    #[inline]
    pub fn add_codes(&mut self, codes: &[u32]) {
        debug_assert_eq!(codes.len(), self.width());
        for (i, &code) in codes.iter().enumerate() {
            self.apply(i, code, true);
        }
        self.rows += 1;
    }

    /// Takes back a row counted with these codes.
    #[inline]
    pub fn remove_codes(&mut self, codes: &[u32]) {
        debug_assert_eq!(codes.len(), self.width());
        debug_assert!(self.rows > 0, "removing a row from empty counts");
        for (i, &code) in codes.iter().enumerate() {
            self.apply(i, code, false);
        }
        self.rows = self.rows.saturating_sub(1);
    }

    /// Counts (or takes back) a row by its values, coding each as [`BinCounts::codes`] does.
    #[inline]
    fn update(&mut self, row: &[f32], output: f32, add: bool) {
        let profile = Arc::clone(&self.profile);
        let coder = Arc::clone(&self.coder);
        debug_assert_eq!(row.len(), profile.features.len(), "row width");
        for (i, &v) in row.iter().chain([&output]).enumerate() {
            self.apply(i, coder.code(&profile, i, v), add);
        }
    }

    /// Counts (or takes back) entry `i`'s value by its code.
    #[inline]
    fn apply(&mut self, i: usize, code: u32, add: bool) {
        let step = |c: &mut u64, hit: bool| {
            if hit {
                *c = if add { *c + 1 } else { c.saturating_sub(1) };
            }
        };
        step(&mut self.counts[(code & SLOT_MASK) as usize], true);
        step(&mut self.below[i], code & BELOW != 0);
        step(&mut self.above[i], code & ABOVE != 0);
    }

    /// The drift of the counted rows against the profile, worst first; `None` without rows.
    pub fn report(&self, thresholds: &Thresholds) -> Option<DriftReport> {
        if self.rows == 0 {
            return None;
        }
        let profile = &*self.profile;
        let n = self.rows as f64;
        let mut reference = Vec::new();
        let mut entries: Vec<EntryDrift> = profile
            .entries()
            .enumerate()
            .map(|(i, entry)| {
                reference.clear();
                reference.extend_from_slice(&entry.counts);
                reference.push(entry.missing);
                let live = self.counts(i);
                let (p, j) = (psi(&reference, live), js(&reference, live));
                EntryDrift {
                    name: entry.name.clone(),
                    psi: p,
                    js: j,
                    level: thresholds.level(p, j),
                    missing: live[live.len() - 1] as f64 / n,
                    reference_missing: entry.missing as f64 / profile.rows as f64,
                    below_min: self.below[i] as f64 / n,
                    above_max: self.above[i] as f64 / n,
                    excluded: false,
                }
            })
            .collect();
        let output = entries.pop().expect("the output entry");
        Some(DriftReport::new(
            self.rows,
            profile.rows,
            *thresholds,
            entries,
            output,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::measure::{EPSILON, Level, THRESHOLDS};
    use crate::model::profile::testing::entry;
    use crate::model::profile::{BinKind, Entry};
    use proptest::prelude::*;

    /// The value pool rows are drawn from: edges themselves, values between and beyond them,
    /// -0.0 and the non-finite ones.
    const POOL: [f32; 12] = [
        -5.0,
        -0.0,
        0.0,
        0.5,
        1.0,
        1.5,
        2.0,
        3.0,
        7.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];

    /// A profile of three features (deciles, values with -0.0, a single edge) and the output,
    /// `4 * base` reference rows each; the values entry never saw another value (an empty
    /// reference bin).
    fn profile(base: u64) -> Arc<Profile> {
        let rows = base * 4;
        let spread = |k: usize| -> Vec<u64> {
            let mut c = vec![base; k];
            c[0] += rows - base * k as u64;
            c
        };
        Arc::new(Profile {
            format: 1,
            rows,
            binning: String::new(),
            features: vec![
                entry("q", BinKind::Quantile, vec![0.0, 1.0, 2.0], spread(4)),
                entry(
                    "v",
                    BinKind::Values,
                    vec![-0.0, 1.0, 3.0],
                    vec![base, base, 2 * base, 0],
                ),
                entry("one", BinKind::Quantile, vec![1.5], spread(2)),
            ],
            output: entry("output", BinKind::Quantile, vec![0.5, 3.0], spread(3)),
        })
    }

    /// The bin of `v` by definition, on its own: edges strictly below; the index of an equal
    /// value, else the last bin; non-finite: the missing bin (after the others).
    fn naive_bin(entry: &Entry, v: f32) -> usize {
        let bins = entry.counts.len();
        if v.is_nan() || v.is_infinite() {
            return bins;
        }
        match entry.kind {
            BinKind::Quantile => entry
                .edges
                .as_ref()
                .unwrap()
                .iter()
                .filter(|e| **e < v)
                .count(),
            BinKind::Values => {
                let values = entry.values.as_ref().unwrap();
                (0..values.len())
                    .find(|&i| values[i] == v)
                    .unwrap_or(values.len())
            }
        }
    }

    fn naive_psi(e: &[f64], a: &[f64]) -> f64 {
        let mut sum = 0.0;
        for i in 0..e.len() {
            let ei = if e[i] > 0.0 { e[i] } else { EPSILON };
            let ai = if a[i] > 0.0 { a[i] } else { EPSILON };
            sum += (ai - ei) * (ai.ln() - ei.ln());
        }
        sum
    }

    fn naive_js(e: &[f64], a: &[f64]) -> f64 {
        let kl = |p: &[f64], q: &[f64]| -> f64 {
            (0..p.len())
                .filter(|&i| p[i] > 0.0)
                .map(|i| p[i] * (p[i] / q[i]).log2())
                .sum()
        };
        let m: Vec<f64> = e.iter().zip(a).map(|(x, y)| (x + y) / 2.0).collect();
        (0.5 * kl(e, &m) + 0.5 * kl(a, &m)).max(0.0).sqrt()
    }

    fn shares(counts: &[u64]) -> Vec<f64> {
        let n: u64 = counts.iter().sum();
        counts.iter().map(|c| *c as f64 / n as f64).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    proptest! {
        /// Any sequence of adds and removes leaves exactly the counts of the rows still in,
        /// and the report's measures equal a naive recomputation from those rows.
        #[test]
        fn counts_and_measures_equal_a_naive_recomputation(
            base in 1u64..50,
            ops in prop::collection::vec((any::<bool>(), prop::array::uniform4(0usize..POOL.len())), 1..200),
        ) {
            let profile = profile(base);
            let mut counts = BinCounts::new(Arc::clone(&profile));
            let mut present: Vec<[f32; 4]> = Vec::new();
            for (remove, picks) in ops {
                if remove && !present.is_empty() {
                    let row = present.remove(picks[0] % present.len());
                    counts.remove(&row[..3], row[3]);
                } else {
                    let row = picks.map(|p| POOL[p]);
                    counts.add(&row[..3], row[3]);
                    present.push(row);
                }
            }
            prop_assert_eq!(counts.rows(), present.len() as u64);
            let report = counts.report(&THRESHOLDS);
            prop_assert_eq!(report.is_none(), present.is_empty());
            for (i, entry) in profile.entries().enumerate() {
                let mut want = vec![0u64; entry.counts.len() + 1];
                for row in &present {
                    want[naive_bin(entry, row[i])] += 1;
                }
                prop_assert_eq!(counts.counts(i), &want[..], "entry {}", entry.name);
                let Some(report) = &report else { continue };
                let got = if i < 3 {
                    report.features.iter().find(|f| f.name == entry.name).unwrap()
                } else {
                    &report.output
                };
                let mut reference = entry.counts.clone();
                reference.push(entry.missing);
                let (e, a) = (shares(&reference), shares(&want));
                prop_assert!(close(got.psi, naive_psi(&e, &a)), "{} psi {} vs {}", entry.name, got.psi, naive_psi(&e, &a));
                prop_assert!(close(got.js, naive_js(&e, &a)), "{} js {} vs {}", entry.name, got.js, naive_js(&e, &a));
                prop_assert!(got.psi >= 0.0 && (0.0..=1.0).contains(&got.js));
                let n = present.len() as f64;
                let below = present.iter().filter(|r| r[i] < 0.0).count() as f64 / n;
                let above = present.iter().filter(|r| r[i] > 2.0).count() as f64 / n;
                prop_assert_eq!(got.below_min, below);
                prop_assert_eq!(got.above_max, above);
                prop_assert_eq!(got.missing, a[a.len() - 1]);
            }
            if let Some(report) = &report {
                let levels: Vec<_> = report.features.iter().map(|f| f.level).collect();
                prop_assert!(levels.windows(2).all(|w| w[0] >= w[1]), "worst first: {:?}", levels);
                prop_assert_eq!(report.level, levels[0]);
            }
        }
    }

    #[test]
    fn the_reference_rows_themselves_do_not_drift() {
        // A profile whose counts are those of these rows: PSI and JS are exactly 0.
        let rows: [[f32; 4]; 4] = [
            [-1.0, -0.0, 0.0, 0.0],
            [0.5, 1.0, 2.0, 1.0],
            [1.5, 3.0, 2.0, 4.0],
            [9.0, 8.0, 2.0, 1.0],
        ];
        let profile = Arc::new(Profile {
            format: 1,
            rows: 4,
            binning: String::new(),
            features: vec![
                entry(
                    "q",
                    BinKind::Quantile,
                    vec![0.0, 1.0, 2.0],
                    vec![1, 1, 1, 1],
                ),
                entry("v", BinKind::Values, vec![-0.0, 1.0, 3.0], vec![1, 1, 1, 1]),
                entry("one", BinKind::Quantile, vec![1.5], vec![1, 3]),
            ],
            output: entry("output", BinKind::Quantile, vec![0.5, 3.0], vec![1, 2, 1]),
        });
        let mut counts = BinCounts::new(profile);
        for row in &rows {
            counts.add(&row[..3], row[3]);
        }
        let report = counts.report(&THRESHOLDS).unwrap();
        for f in report.features.iter().chain([&report.output]) {
            assert_eq!((f.psi, f.js, f.level), (0.0, 0.0, Level::Ok), "{f:?}");
        }
        // One row out and a shifted one in: the feature moves, and the counts follow.
        counts.remove(&rows[0][..3], rows[0][3]);
        counts.add(&[9.0, -0.0, 0.0], 0.0);
        let report = counts.report(&THRESHOLDS).unwrap();
        assert_eq!(report.features[0].name, "q");
        assert!(report.features[0].psi > 0.25, "{report:?}");
        assert_eq!(report.level, Level::Critical);
        assert_eq!(report.at_least(Level::Warning).count(), 1);
    }
}
