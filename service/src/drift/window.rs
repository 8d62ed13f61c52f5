//! A sliding window of live rows: the last `capacity` rows counted into a profile's bins.

use std::sync::Arc;

use crate::model::profile::Profile;

use super::counts::BinCounts;

/// The last `capacity` rows, counted ([`BinCounts`]). Each row is kept as its bin codes
/// ([`BinCounts::codes`], one `u32` per feature and the output), not its values: a row leaving
/// the window is taken out of the counts at O(features) without being binned again.
#[derive(Debug, Clone)]
pub struct Window {
    counts: BinCounts,
    capacity: usize,
    /// Row-major codes of the rows held, `width` per row; grows to `capacity` rows, then
    /// wraps (the oldest row's codes are overwritten by the newest's).
    ring: Vec<u32>,
    /// The ring row the next row goes into once the ring is full.
    next: usize,
    /// Rows ever pushed.
    seen: u64,
    /// The codes of the row being pushed.
    scratch: Vec<u32>,
}

impl Window {
    /// An empty window of at most `capacity` rows (at least one) in the bins of `profile`.
    pub fn new(profile: Arc<Profile>, capacity: usize) -> Self {
        let counts = BinCounts::new(profile);
        let width = counts.width();
        Window {
            counts,
            capacity: capacity.max(1),
            ring: Vec::new(),
            next: 0,
            seen: 0,
            scratch: Vec::with_capacity(width),
        }
    }

    /// Counts a row (its feature values in the profile's order and the model's output on
    /// it); once the window is full, the oldest row leaves it.
    pub fn push(&mut self, row: &[f32], output: f32) {
        let width = self.counts.width();
        self.scratch.clear();
        self.counts.codes(row, output, &mut self.scratch);
        if self.len() < self.capacity {
            self.ring.extend_from_slice(&self.scratch);
        } else {
            let at = self.next * width;
            let slot = &mut self.ring[at..at + width];
            self.counts.remove_codes(slot);
            slot.copy_from_slice(&self.scratch);
            self.next = (self.next + 1) % self.capacity;
        }
        self.counts.add_codes(&self.scratch);
        self.seen += 1;
    }

    /// Rows in the window.
    pub fn len(&self) -> usize {
        self.ring.len() / self.counts.width()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows ever pushed (those that left the window included).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The counts of the rows in the window.
    pub fn counts(&self) -> &BinCounts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::THRESHOLDS;
    use crate::model::profile::BinKind;
    use crate::model::profile::testing::entry;
    use proptest::prelude::*;

    /// Values on, between and beyond the edges, and the non-finite ones.
    const POOL: [f32; 9] = [
        -3.0,
        0.0,
        0.5,
        1.0,
        2.0,
        9.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];

    fn profile() -> Arc<Profile> {
        Arc::new(Profile {
            format: 1,
            rows: 8,
            binning: String::new(),
            features: vec![
                entry("q", BinKind::Quantile, vec![0.0, 1.0], vec![2, 3, 3]),
                entry("v", BinKind::Values, vec![0.0, 2.0], vec![4, 4, 0]),
            ],
            output: entry("output", BinKind::Quantile, vec![0.5], vec![4, 4]),
        })
    }

    proptest! {
        /// After any sequence of rows, the window's counts (and report) are those of the last
        /// `capacity` rows counted afresh.
        #[test]
        fn counts_equal_a_recount_of_the_last_rows(
            capacity in 1usize..12,
            rows in prop::collection::vec(prop::array::uniform3(0usize..POOL.len()), 0..60),
        ) {
            let profile = profile();
            let mut window = Window::new(Arc::clone(&profile), capacity);
            let rows: Vec<[f32; 3]> = rows.iter().map(|r| r.map(|i| POOL[i])).collect();
            for (pushed, row) in rows.iter().enumerate() {
                window.push(&row[..2], row[2]);
                let last = &rows[(pushed + 1).saturating_sub(capacity)..=pushed];
                let mut naive = BinCounts::new(Arc::clone(&profile));
                for r in last {
                    naive.add(&r[..2], r[2]);
                }
                prop_assert_eq!(window.len(), last.len());
                prop_assert_eq!(window.seen(), pushed as u64 + 1);
                for i in 0..3 {
                    prop_assert_eq!(window.counts().counts(i), naive.counts(i), "entry {}", i);
                }
                prop_assert_eq!(window.counts().report(&THRESHOLDS), naive.report(&THRESHOLDS));
            }
        }
    }

    #[test]
    fn a_full_window_forgets_its_oldest_row() {
        let mut window = Window::new(profile(), 2);
        window.push(&[9.0, 2.0], 0.0); // q: last bin, above max; v: bin 1
        window.push(&[0.5, 0.0], 1.0);
        window.push(&[0.5, 0.0], 1.0); // the first row leaves
        assert_eq!((window.len(), window.seen()), (2, 3));
        assert_eq!(window.counts().counts(0), &[0, 2, 0, 0]);
        assert_eq!(window.counts().counts(1), &[2, 0, 0, 0]);
        let report = window.counts().report(&THRESHOLDS).unwrap();
        let q = report.features.iter().find(|f| f.name == "q").unwrap();
        assert_eq!(q.above_max, 0.0);
    }
}
