//! A profile's bins laid out for coding rows fast.
//!
//! Every scored row is counted into its model's drift window ([`super::Window`]): each of its
//! values (a hundred for `engine-rul`) is binned against its entry's boundaries. Read from the
//! profile's entries (a heap vector each, behind an enum and two options) and searched, a
//! row cost 2.2 µs (criterion `drift/window-push/engine-rul`, 101 entries). Here the
//! boundaries of every entry sit in one array, [`WIDTH`] to an entry and padded with +inf,
//! and are counted without a branch to mispredict: 1.2 µs a row (BENCHMARKS.md, session 14).

use crate::model::profile::{Bin, BinKind, Entry, Profile};

/// A code's slot bits ([`Coder::code`]); the two above them flag below-min and above-max.
pub(super) const SLOT_MASK: u32 = (1 << 30) - 1;
pub(super) const BELOW: u32 = 1 << 30;
pub(super) const ABOVE: u32 = 1 << 31;

/// Boundaries per entry held inline (profiles have 9 edges, or up to 20 values); an entry
/// with more is binned by the entry itself.
const WIDTH: usize = 16;

/// The bins of a [`Profile`]'s entries (its features in order, then the output), laid out for
/// [`Coder::code`].
#[derive(Debug, Clone)]
pub(super) struct Coder {
    /// Per entry, its boundaries padded with +inf (no finite value is above one).
    points: Vec<[f32; WIDTH]>,
    lanes: Vec<Lane>,
}

#[derive(Debug, Clone, Copy)]
struct Lane {
    /// Where the entry's slots start (its missing slot is `offset + bins`).
    offset: u32,
    bins: u32,
    /// Its boundaries; more than [`WIDTH`]: binned by [`Entry::bin_of`].
    len: usize,
    values: bool,
    /// The reference's range; -inf and +inf when it has none.
    min: f32,
    max: f32,
}

impl Coder {
    /// `offsets`: where each entry's slots start.
    pub(super) fn new(profile: &Profile, offsets: &[usize]) -> Self {
        let mut points = Vec::with_capacity(offsets.len());
        let mut lanes = Vec::with_capacity(offsets.len());
        for (entry, &offset) in profile.entries().zip(offsets) {
            let kind_points = entry.points();
            let mut padded = [f32::INFINITY; WIDTH];
            if kind_points.len() <= WIDTH {
                padded[..kind_points.len()].copy_from_slice(kind_points);
            }
            points.push(padded);
            debug_assert!(
                offset + entry.bins() < SLOT_MASK as usize,
                "slots fit 30 bits"
            );
            lanes.push(Lane {
                offset: offset as u32,
                bins: entry.bins() as u32,
                len: kind_points.len(),
                values: entry.kind == BinKind::Values,
                min: entry.min.unwrap_or(f32::NEG_INFINITY),
                max: entry.max.unwrap_or(f32::INFINITY),
            });
        }
        Coder { points, lanes }
    }

    /// Entry `i`'s code for `v`: the slot it is counted in, and whether it is below the
    /// reference's minimum or above its maximum. Equal to [`code_of`] on the profile's entry.
    #[inline]
    pub(super) fn code(&self, profile: &Profile, i: usize, v: f32) -> u32 {
        let lane = self.lanes[i];
        let bin = if !v.is_finite() {
            lane.bins
        } else if lane.len > WIDTH {
            return code_of(lane.offset as usize, entry(profile, i), v);
        } else {
            let points = &self.points[i];
            let below: u32 = points.iter().map(|p| u32::from(*p < v)).sum();
            if !lane.values || points.get(below as usize) == Some(&v) {
                below
            } else {
                lane.len as u32
            }
        };
        (lane.offset + bin) | (u32::from(v < lane.min) * BELOW) | (u32::from(v > lane.max) * ABOVE)
    }
}

fn entry(profile: &Profile, i: usize) -> &Entry {
    profile.features.get(i).unwrap_or(&profile.output)
}

/// A value's code for an entry whose slots start at `offset`, from the entry itself.
pub(super) fn code_of(offset: usize, entry: &Entry, v: f32) -> u32 {
    let slot = match entry.bin_of(v) {
        Bin::In(b) => offset + b,
        Bin::Missing => offset + entry.bins(),
    };
    let below = entry.min.is_some_and(|min| v < min);
    let above = entry.max.is_some_and(|max| v > max);
    slot as u32 | (u32::from(below) * BELOW) | (u32::from(above) * ABOVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::profile::testing::entry as make_entry;
    use proptest::prelude::*;

    /// Boundaries of `len` (sorted, distinct) and a value to code, on a grid where values meet
    /// boundaries exactly; `special` picks a non-finite value or -0.0 instead.
    fn case() -> impl Strategy<Value = (Vec<f32>, bool, bool, f32)> {
        (
            prop::collection::btree_set(-40i32..40, 1..24),
            any::<bool>(),
            any::<bool>(),
            -45i32..45,
            0usize..8,
        )
            .prop_map(|(points, values, ranged, v, special)| {
                let points: Vec<f32> = points.into_iter().map(|p| p as f32 / 2.0).collect();
                let v = match special {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => -0.0,
                    _ => v as f32 / 2.0,
                };
                (points, values, ranged, v)
            })
    }

    proptest! {
        /// The laid-out code equals the entry's own, with boundaries fewer and more than
        /// `WIDTH`, either kind, with and without a reference range.
        #[test]
        fn codes_equal_the_entrys_own((points, values, ranged, v) in case()) {
            let kind = if values { BinKind::Values } else { BinKind::Quantile };
            let bins = points.len() + 1;
            let mut e = make_entry("x", kind, points.clone(), vec![1; bins]);
            if ranged {
                e.min = points.first().copied();
                e.max = points.last().copied();
            } else {
                e.min = None;
                e.max = None;
            }
            let profile = Profile {
                format: 1,
                rows: bins as u64,
                binning: String::new(),
                features: vec![e.clone()],
                output: make_entry("output", BinKind::Quantile, vec![0.0], vec![1, 1]),
            };
            let offsets = [3, 3 + bins + 1];
            let coder = Coder::new(&profile, &offsets);
            prop_assert_eq!(coder.code(&profile, 0, v), code_of(3, &e, v));
            prop_assert_eq!(
                coder.code(&profile, 1, v),
                code_of(offsets[1], &profile.output, v)
            );
        }
    }
}
