//! Property tests: every rolling statistic equals a naive recomputation over the same window.
//!
//! Tolerance: relative error under 1e-9. Where the true value is zero or nearly so (the mean of a
//! series centred on zero, the slope of a flat one) a relative error means nothing, so the bound
//! is 1e-9 relative or 1e-12 of the window's largest magnitude, whichever is larger. Constant
//! series need no floor at all, and the exact-arithmetic oracle below needs it only for a slope
//! that is exactly zero (and then relative to the series' spread, not to its offset).

use fleet_features::rolling::{EwmaBaseline, MAX_WINDOW, RollingWindow, WindowStats};
use proptest::prelude::*;

const REL: f64 = 1e-9;

fn close(actual: f64, expected: f64, magnitude: f64) -> bool {
    let tol = (REL * expected.abs()).max(1e-12 * magnitude);
    (actual - expected).abs() <= tol
}

/// Textbook formulas over a window given oldest first.
fn naive(xs: &[f64], ys: &[f64]) -> WindowStats {
    let n = ys.len() as f64;
    let mean = ys.iter().sum::<f64>() / n;
    let var = ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n;
    let mx = xs.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - mean)).sum();
    WindowStats {
        n: ys.len(),
        mean,
        std: var.sqrt(),
        min: ys.iter().copied().fold(f64::INFINITY, f64::min),
        max: ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        slope: if sxx > 0.0 { sxy / sxx } else { 0.0 },
    }
}

fn stats_of(window: &RollingWindow) -> Vec<WindowStats> {
    let mut out = vec![WindowStats::default(); window.channels()];
    window.stats_into(&mut out);
    out
}

/// A stream: strictly increasing cycles with gaps, and values of one magnitude.
fn stream() -> impl Strategy<Value = (usize, Vec<(f64, f64)>)> {
    (1..=MAX_WINDOW, -12i32..=12, 1usize..=150).prop_flat_map(|(cap, exp, len)| {
        let scale = 10f64.powi(exp);
        (
            Just(cap),
            prop::collection::vec((1u32..=5, -1.0f64..1.0), len).prop_map(move |steps| {
                let mut cycle = 0u32;
                steps
                    .into_iter()
                    .map(|(gap, u)| {
                        cycle += gap;
                        (f64::from(cycle), u * scale)
                    })
                    .collect()
            }),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn window_stats_match_naive((cap, points) in stream()) {
        let mut window = RollingWindow::new(cap, 2);
        for (i, &(x, y)) in points.iter().enumerate() {
            // Channel 1 is channel 0 shifted by a large offset: same spread, new magnitude.
            window.push(x, [y, y + 1.0e6]);
            let from = (i + 1).saturating_sub(cap);
            let xs: Vec<f64> = points[from..=i].iter().map(|p| p.0).collect();
            for (c, got) in stats_of(&window).into_iter().enumerate() {
                let offset = if c == 0 { 0.0 } else { 1.0e6 };
                let ys: Vec<f64> = points[from..=i].iter().map(|p| p.1 + offset).collect();
                let want = naive(&xs, &ys);
                let mag = ys.iter().fold(0.0f64, |m, y| m.max(y.abs()));
                prop_assert_eq!(got.n, want.n);
                prop_assert_eq!(got.min, want.min);
                prop_assert_eq!(got.max, want.max);
                prop_assert!(close(got.mean, want.mean, mag), "mean {} vs {}", got.mean, want.mean);
                if c == 0 {
                    // The offset channel's naive std loses digits to cancellation; the exact
                    // oracle below covers large offsets.
                    prop_assert!(close(got.std, want.std, mag), "std {} vs {}", got.std, want.std);
                    prop_assert!(close(got.slope, want.slope, mag / xs.len() as f64),
                        "slope {} vs {}", got.slope, want.slope);
                }
            }
        }
    }

    /// Values are integers times a power of two, so an i128 oracle is exact, even for a huge
    /// offset with a tiny spread where floating-point textbook formulas lose every digit.
    #[test]
    fn window_stats_match_exact_oracle(
        cap in 1..=MAX_WINDOW,
        offset in -(1i64 << 40)..(1i64 << 40),
        noise in prop::collection::vec(-1024i64..1024, 1..120),
        exp in -40i32..20,
    ) {
        let unit = 2f64.powi(exp);
        let mut window = RollingWindow::new(cap, 1);
        for i in 0..noise.len() {
            let x = (i * 2 + 1) as i64;
            window.push(x as f64, [(offset + noise[i]) as f64 * unit]);
            let from = (i + 1).saturating_sub(cap);
            let ys: Vec<i128> = noise[from..=i].iter().map(|&v| i128::from(offset + v)).collect();
            let xs: Vec<i128> = (from..=i).map(|j| (j * 2 + 1) as i128).collect();
            let n = ys.len() as i128;
            let (sy, syy) = (ys.iter().sum::<i128>(), ys.iter().map(|y| y * y).sum::<i128>());
            let (sx, sxx) = (xs.iter().sum::<i128>(), xs.iter().map(|x| x * x).sum::<i128>());
            let sxy: i128 = xs.iter().zip(&ys).map(|(x, y)| x * y).sum();
            // n²·var = n·Σy² − (Σy)², exact; so are the slope's numerator and denominator.
            let var_n2 = n * syy - sy * sy;
            let (num, den) = (n * sxy - sx * sy, n * sxx - sx * sx);
            let want_std = (var_n2 as f64).sqrt() / n as f64 * unit;
            let want_mean = sy as f64 / n as f64 * unit;
            let want_slope = if den > 0 { num as f64 / den as f64 * unit } else { 0.0 };

            let got = stats_of(&window)[0];
            let rel = |a: f64, b: f64| if b == 0.0 { a == 0.0 } else { ((a - b) / b).abs() < REL };
            prop_assert!(rel(got.mean, want_mean), "mean {} vs {}", got.mean, want_mean);
            prop_assert!(rel(got.std, want_std), "std {} vs {}", got.std, want_std);
            // A slope that is exactly zero gets the floor, scaled by the spread (not the offset).
            let spread = noise.iter().map(|v| v.abs()).max().unwrap_or(0) as f64 * unit;
            prop_assert!(
                rel(got.slope, want_slope) || (got.slope - want_slope).abs() <= 1e-12 * spread,
                "slope {} vs {}", got.slope, want_slope
            );
        }
    }

    #[test]
    fn ewma_and_drift_match_naive(
        points in prop::collection::vec(-1.0f64..1.0, 1..200),
        exp in -12i32..=12,
        offset_exp in prop::option::of(0i32..=9),
        baseline_len in 1u32..=20,
    ) {
        let alpha = 0.1;
        let offset = offset_exp.map_or(0.0, |e| 10f64.powi(e));
        let scale = 10f64.powi(exp);
        let ys: Vec<f64> = points.iter().map(|p| offset + p * scale).collect();
        let mut trend = EwmaBaseline::new(1);
        for i in 0..ys.len() {
            trend.push(alpha, baseline_len, [ys[i]]);
            // The recurrence, unrolled as an explicit weighted sum.
            let t = i as i32;
            let mut ewma = (1.0 - alpha).powi(t) * ys[0];
            for (j, y) in ys.iter().enumerate().take(i + 1).skip(1) {
                ewma += alpha * (1.0 - alpha).powi(t - j as i32) * y;
            }
            let b = (i + 1).min(baseline_len as usize);
            let baseline = ys[..b].iter().sum::<f64>() / b as f64;
            let mag = ys[..=i].iter().fold(0.0f64, |m, y| m.max(y.abs()));
            prop_assert!(close(trend.ewma(0), ewma, mag), "ewma {} vs {}", trend.ewma(0), ewma);
            prop_assert!(close(trend.baseline(0), baseline, mag));
            prop_assert!(close(trend.drift(0), ewma - baseline, mag),
                "drift {} vs {}", trend.drift(0), ewma - baseline);
        }
    }

    #[test]
    fn constant_series_are_exact(c in prop::num::f64::NORMAL, cap in 1..=MAX_WINDOW, len in 1usize..100) {
        let c = c.clamp(-1e300, 1e300);
        let mut window = RollingWindow::new(cap, 1);
        let mut trend = EwmaBaseline::new(1);
        for i in 0..len {
            window.push(i as f64, [c]);
            trend.push(0.1, 10, [c]);
            let s = stats_of(&window)[0];
            prop_assert_eq!(s.mean, c);
            prop_assert_eq!(s.std, 0.0);
            prop_assert_eq!(s.slope, 0.0);
            prop_assert_eq!((s.min, s.max), (c, c));
            prop_assert_eq!(trend.ewma(0), c);
            prop_assert_eq!(trend.drift(0), 0.0);
        }
    }
}

/// Pinned cases: a window that is not yet full, then one that wraps.
#[test]
fn pinned_partial_and_wrapped_windows() {
    let mut w = RollingWindow::new(3, 1);
    w.push(1.0, [2.0]);
    assert_eq!(
        stats_of(&w)[0],
        WindowStats {
            n: 1,
            mean: 2.0,
            std: 0.0,
            min: 2.0,
            max: 2.0,
            slope: 0.0
        }
    );
    w.push(2.0, [4.0]);
    let s = stats_of(&w)[0];
    assert_eq!((s.n, s.mean, s.std, s.slope), (2, 3.0, 1.0, 2.0));
    w.push(3.0, [6.0]);
    w.push(4.0, [20.0]); // evicts (1, 2)
    let s = stats_of(&w)[0];
    assert_eq!((s.n, s.min, s.max, s.mean), (3, 4.0, 20.0, 10.0));
    assert_eq!(s.slope, 8.0);
}
