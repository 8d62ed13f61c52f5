//! Rolling statistics over the last N observations of several channels, plus the exponentially
//! weighted mean and an early-life baseline.
//!
//! `push` is O(1). The window statistics are recomputed from the ring when asked (two passes
//! over at most N values per channel) instead of being maintained by adding and subtracting
//! running sums: a sliding sum accumulates rounding error without bound over a long stream,
//! while the two-pass form stays within a few ulps of the exact answer whatever came before.
//! Values are shifted by the newest observation before summing, so a large offset with a small
//! spread (a sensor reading 9,046.19 ± 0.02) loses no precision and a constant series has a
//! standard deviation of exactly zero.

use serde::{Deserialize, Serialize};

/// Largest window supported; keeps the per-call scratch space on the stack.
pub const MAX_WINDOW: usize = 64;

/// Channels whose window statistics are computed together ([`RollingWindow::stats_into`]).
const LANES: usize = 8;

/// Statistics of one channel over the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowStats {
    /// Observations in the window (less than the capacity until it fills).
    pub n: usize,
    pub mean: f64,
    /// Population standard deviation (divides by n); 0 for a single observation.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// Least-squares slope of the values against x (the cycle number); 0 with fewer than two
    /// distinct x.
    pub slope: f64,
}

/// A ring of the last `capacity` observations of `channels` values each, with their x.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingWindow {
    capacity: u16,
    len: u16,
    /// Slot the next observation is written to.
    head: u16,
    /// x of each slot (the cycle number).
    xs: Vec<f64>,
    /// Channel-major: `values[c * capacity + slot]`, so each channel's window is contiguous.
    values: Vec<f64>,
}

impl RollingWindow {
    pub fn new(capacity: usize, channels: usize) -> Self {
        assert!(
            (1..=MAX_WINDOW).contains(&capacity),
            "window must be 1..={MAX_WINDOW}"
        );
        Self {
            capacity: capacity as u16,
            len: 0,
            head: 0,
            xs: vec![0.0; capacity],
            values: vec![0.0; capacity * channels],
        }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn channels(&self) -> usize {
        self.values.len() / self.capacity as usize
    }

    pub fn heap_bytes(&self) -> usize {
        (self.xs.capacity() + self.values.capacity()) * std::mem::size_of::<f64>()
    }

    /// Appends one observation, evicting the oldest when the window is full. O(channels).
    pub fn push(&mut self, x: f64, row: impl IntoIterator<Item = f64>) {
        let cap = self.capacity as usize;
        let slot = self.head as usize;
        self.xs[slot] = x;
        let mut written = 0;
        for (c, v) in row.into_iter().enumerate() {
            self.values[c * cap + slot] = v;
            written += 1;
        }
        debug_assert_eq!(written, self.channels());
        self.head = ((slot + 1) % cap) as u16;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// The newest slot's index.
    fn newest(&self) -> usize {
        let cap = self.capacity as usize;
        (self.head as usize + cap - 1) % cap
    }

    /// Statistics of every channel, written to `out` (one entry per channel).
    ///
    /// [`LANES`] channels at a time, each in its own lane: every channel's values go through
    /// exactly the operations, in exactly the order, of computing it alone (the results are
    /// the same to the bit; a proptest compares them with [`Self::stats_one_by_one`]), but the
    /// lanes' independent sums overlap in the CPU instead of each waiting for the previous
    /// addition (issue #18: this was 5 % of the service's CPU per event).
    pub fn stats_into(&self, out: &mut [WindowStats]) {
        let n = self.len as usize;
        let cap = self.capacity as usize;
        debug_assert_eq!(out.len(), self.channels());
        if n == 0 {
            out.fill(WindowStats::default());
            return;
        }
        let newest = self.newest();
        let nf = n as f64;
        let (dx, sxx) = self.centred_x(n, newest);

        for (group, stats) in out.chunks_mut(LANES).enumerate() {
            // A last group with fewer channels repeats its last one in the spare lanes.
            let first = group * LANES;
            let last = first + stats.len() - 1;
            let windows: [&[f64]; LANES] = std::array::from_fn(|lane| {
                let c = (first + lane).min(last);
                &self.values[c * cap..c * cap + n]
            });
            let y_ref: [f64; LANES] = std::array::from_fn(|lane| windows[lane][newest]);
            let mut sum = [0.0; LANES];
            let mut min = [f64::INFINITY; LANES];
            let mut max = [f64::NEG_INFINITY; LANES];
            // Slot by slot across the lanes (zipping `LANES` slices would hide the shape).
            #[allow(clippy::needless_range_loop)]
            for i in 0..n {
                for lane in 0..LANES {
                    let y = windows[lane][i];
                    sum[lane] += y - y_ref[lane];
                    min[lane] = min[lane].min(y);
                    max[lane] = max[lane].max(y);
                }
            }
            let mean_dy: [f64; LANES] = std::array::from_fn(|lane| sum[lane] / nf);
            let (mut syy, mut sxy) = ([0.0; LANES], [0.0; LANES]);
            for (i, &d) in dx[..n].iter().enumerate() {
                for lane in 0..LANES {
                    let e = (windows[lane][i] - y_ref[lane]) - mean_dy[lane];
                    syy[lane] += e * e;
                    sxy[lane] += d * e;
                }
            }
            for (lane, stats) in stats.iter_mut().enumerate() {
                *stats = WindowStats {
                    n,
                    mean: y_ref[lane] + mean_dy[lane],
                    std: (syy[lane] / nf).sqrt(),
                    min: min[lane],
                    max: max[lane],
                    slope: if sxx > 0.0 { sxy[lane] / sxx } else { 0.0 },
                };
            }
        }
    }

    /// The window's x centred on their mean (the filled slots are 0..n whether or not the ring
    /// has wrapped, and every statistic here is order-independent), and their sum of squares.
    fn centred_x(&self, n: usize, newest: usize) -> ([f64; MAX_WINDOW], f64) {
        let nf = n as f64;
        let x_ref = self.xs[newest];
        let mut dx = [0.0f64; MAX_WINDOW];
        let mut sum_x = 0.0;
        for (d, &x) in dx.iter_mut().zip(&self.xs[..n]) {
            *d = x - x_ref;
            sum_x += *d;
        }
        let mean_dx = sum_x / nf;
        let mut sxx = 0.0;
        for d in &mut dx[..n] {
            *d -= mean_dx;
            sxx += *d * *d;
        }
        (dx, sxx)
    }

    /// [`Self::stats_into`] one channel after the other: the reference its lanes must equal.
    #[cfg(test)]
    fn stats_one_by_one(&self, out: &mut [WindowStats]) {
        let n = self.len as usize;
        let cap = self.capacity as usize;
        if n == 0 {
            out.fill(WindowStats::default());
            return;
        }
        let newest = self.newest();
        let nf = n as f64;
        let (dx, sxx) = self.centred_x(n, newest);
        for (c, stats) in out.iter_mut().enumerate() {
            let window = &self.values[c * cap..c * cap + n];
            let y_ref = window[newest];
            let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
            for &y in window {
                sum += y - y_ref;
                min = min.min(y);
                max = max.max(y);
            }
            let mean_dy = sum / nf;
            let (mut syy, mut sxy) = (0.0, 0.0);
            for (&y, &d) in window.iter().zip(&dx[..n]) {
                let e = (y - y_ref) - mean_dy;
                syy += e * e;
                sxy += d * e;
            }
            *stats = WindowStats {
                n,
                mean: y_ref + mean_dy,
                std: (syy / nf).sqrt(),
                min,
                max,
                slope: if sxx > 0.0 { sxy / sxx } else { 0.0 },
            };
        }
    }
}

/// Exponentially weighted moving average and early-life baseline of several channels.
///
/// Both are kept relative to each channel's first observation, for the same precision reason as
/// the window statistics; `drift` is the EWMA minus the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EwmaBaseline {
    /// First observation of each channel: the reference everything else is relative to.
    origin: Vec<f64>,
    ewma_dev: Vec<f64>,
    baseline_dev_sum: Vec<f64>,
    baseline_n: u32,
    seen: u32,
}

impl EwmaBaseline {
    pub fn new(channels: usize) -> Self {
        Self {
            origin: vec![0.0; channels],
            ewma_dev: vec![0.0; channels],
            baseline_dev_sum: vec![0.0; channels],
            baseline_n: 0,
            seen: 0,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        (self.origin.capacity() + self.ewma_dev.capacity() + self.baseline_dev_sum.capacity())
            * std::mem::size_of::<f64>()
    }

    /// Folds one observation in. The EWMA starts at the first value; the baseline is the mean
    /// of the first `baseline_len` observations (of all seen so far until then).
    pub fn push(&mut self, alpha: f64, baseline_len: u32, row: impl IntoIterator<Item = f64>) {
        let first = self.seen == 0;
        let in_baseline = self.baseline_n < baseline_len;
        for (c, v) in row.into_iter().enumerate() {
            if first {
                self.origin[c] = v;
            }
            let dev = v - self.origin[c];
            self.ewma_dev[c] = if first {
                0.0
            } else {
                self.ewma_dev[c] + alpha * (dev - self.ewma_dev[c])
            };
            if in_baseline {
                self.baseline_dev_sum[c] += dev;
            }
        }
        if in_baseline {
            self.baseline_n += 1;
        }
        self.seen = self.seen.saturating_add(1);
    }

    pub fn ewma(&self, channel: usize) -> f64 {
        self.origin[channel] + self.ewma_dev[channel]
    }

    pub fn baseline(&self, channel: usize) -> f64 {
        self.origin[channel] + self.baseline_dev(channel)
    }

    /// EWMA minus baseline, computed without the offset so that small drifts stay exact.
    pub fn drift(&self, channel: usize) -> f64 {
        self.ewma_dev[channel] - self.baseline_dev(channel)
    }

    fn baseline_dev(&self, channel: usize) -> f64 {
        if self.baseline_n == 0 {
            0.0
        } else {
            self.baseline_dev_sum[channel] / f64::from(self.baseline_n)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{MAX_WINDOW, RollingWindow, WindowStats};

    proptest! {
        /// Channels computed in lanes equal channels computed alone, to the bit, for any
        /// window size, channel count (a last group of 1 to `LANES`), fill (wrapped or not) and values
        /// (spreads small and large around offsets small and large).
        #[test]
        fn lanes_equal_one_channel_at_a_time(
            capacity in 1usize..=MAX_WINDOW,
            channels in 1usize..=17,
            pushes in 0usize..150,
            seed in any::<u64>(),
            offset in prop_oneof![Just(0.0), -1.0e4..1.0e4f64],
            spread in prop_oneof![Just(0.0), 1.0e-3..1.0e3f64],
        ) {
            let mut window = RollingWindow::new(capacity, channels);
            let mut state = seed | 1;
            let mut next = move || {
                // xorshift64: any reproducible spread of values will do.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            };
            for cycle in 0..pushes {
                let row: Vec<f64> = (0..channels)
                    .map(|c| offset * (c + 1) as f64 + spread * next())
                    .collect();
                window.push(cycle as f64 + 1.0, row);
            }
            let (mut lanes, mut alone) =
                (vec![WindowStats::default(); channels], vec![WindowStats::default(); channels]);
            window.stats_into(&mut lanes);
            window.stats_one_by_one(&mut alone);
            for (a, b) in lanes.iter().zip(&alone) {
                prop_assert_eq!(a.n, b.n);
                for (x, y) in [(a.mean, b.mean), (a.std, b.std), (a.min, b.min), (a.max, b.max),
                               (a.slope, b.slope)] {
                    prop_assert_eq!(x.to_bits(), y.to_bits());
                }
            }
        }
    }
}
