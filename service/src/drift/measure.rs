//! The drift measures on one entry's bins, and the thresholds (one place).
//!
//! Both take the reference counts and the live counts of the same bins (the missing bin
//! included, last) and compare their shares:
//!
//! - **PSI**, the population stability index: `Σ (a - e) ln(a / e)` over the bins, where `e` is
//!   the reference share and `a` the live share, an empty share replaced by [`EPSILON`] on
//!   either side (as Evidently does). Customary bands: below 0.1 no significant change,
//!   0.1-0.25 moderate, above 0.25 significant. It grows without bound when live mass lands
//!   where the reference had none (5 % of the rows in an empty bin alone give ≈ 0.31).
//! - **Jensen-Shannon distance**, base 2: `sqrt(½ KL(a‖m) + ½ KL(e‖m))` with `m = (a + e) / 2`:
//!   symmetric, bounded to [0, 1], defined with empty bins without any ε. For small changes
//!   it is about `sqrt(PSI / (8 ln 2))`, so it mostly re-expresses PSI on a bounded scale that
//!   does not explode on empty bins (Evidently's `jensenshannon` uses natural logarithms:
//!   its 0.1 is about 0.12 here).

use serde::{Deserialize, Serialize};

/// What replaces an empty share in PSI.
pub const EPSILON: f64 = 1e-4;

/// The thresholds of one measure: at or above `warning`, at or above `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Band {
    pub warning: f64,
    pub critical: f64,
}

/// The thresholds of both measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Thresholds {
    pub psi: Band,
    pub js: Band,
}

/// The thresholds `fleetscore drift` and the reports use: PSI 0.1 / 0.25 (the customary
/// bands), Jensen-Shannon distance (base 2) 0.1 / 0.2.
pub const THRESHOLDS: Thresholds = Thresholds {
    psi: Band {
        warning: 0.1,
        critical: 0.25,
    },
    js: Band {
        warning: 0.1,
        critical: 0.2,
    },
};

/// One of the two measures (what a drift alert rule watches: `measure = "psi"` or `"js"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The population stability index.
    #[default]
    Psi,
    /// The Jensen-Shannon distance (base 2).
    Js,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Psi => "psi",
            Measure::Js => "js",
        }
    }
}

/// How far an entry has drifted, by the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Below both warning thresholds: no drift.
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

impl Band {
    /// The level of `value` (NaN counts as critical: something is wrong).
    pub fn level(&self, value: f64) -> Level {
        if value >= self.critical || value.is_nan() {
            Level::Critical
        } else if value >= self.warning {
            Level::Warning
        } else {
            Level::Ok
        }
    }
}

impl Thresholds {
    /// The worse of the two measures' levels.
    pub fn level(&self, psi: f64, js: f64) -> Level {
        self.psi.level(psi).max(self.js.level(js))
    }
}

fn total(counts: &[u64]) -> f64 {
    counts.iter().sum::<u64>() as f64
}

/// The population stability index of `live` against `reference` (counts of the same bins).
/// Both must have rows.
pub fn psi(reference: &[u64], live: &[u64]) -> f64 {
    debug_assert_eq!(reference.len(), live.len());
    let (nr, nl) = (total(reference), total(live));
    let share = |c: u64, n: f64| if c == 0 { EPSILON } else { c as f64 / n };
    reference
        .iter()
        .zip(live)
        .map(|(&r, &l)| {
            let (e, a) = (share(r, nr), share(l, nl));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The Jensen-Shannon distance (base 2, in [0, 1]) between `live` and `reference` (counts of
/// the same bins). Both must have rows.
pub fn js(reference: &[u64], live: &[u64]) -> f64 {
    debug_assert_eq!(reference.len(), live.len());
    let (nr, nl) = (total(reference), total(live));
    // ½ p log2(p / m), 0 for an empty p.
    let half_kl = |p: f64, m: f64| {
        if p > 0.0 {
            0.5 * p * (p / m).log2()
        } else {
            0.0
        }
    };
    let divergence: f64 = reference
        .iter()
        .zip(live)
        .map(|(&r, &l)| {
            let (e, a) = (r as f64 / nr, l as f64 / nl);
            let m = 0.5 * (e + a);
            half_kl(e, m) + half_kl(a, m)
        })
        .sum();
    // Rounding can leave a tiny negative divergence for identical shares.
    divergence.max(0.0).sqrt().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_shares_measure_zero() {
        assert_eq!(psi(&[10, 20, 0, 70], &[1, 2, 0, 7]), 0.0);
        assert_eq!(js(&[10, 20, 0, 70], &[1, 2, 0, 7]), 0.0);
    }

    #[test]
    fn hand_computed_cases() {
        // e = (0.5, 0.5), a = (0.9, 0.1): PSI = 0.4 ln 1.8 - 0.4 ln 0.2.
        let want = 0.4 * 1.8f64.ln() + (-0.4) * 0.2f64.ln();
        assert!((psi(&[50, 50], &[9, 1]) - want).abs() < 1e-15);
        // Disjoint supports: JS distance 1; PSI through ε: 2 (1 - ε) ln(1/ε).
        assert!((js(&[5, 0], &[0, 3]) - 1.0).abs() < 1e-15);
        let want = 2.0 * (1.0 - EPSILON) * (1.0 / EPSILON).ln();
        assert!((psi(&[5, 0], &[0, 3]) - want).abs() < 1e-12);
        // 5 % of the live rows in a bin the reference never saw.
        let p = psi(&[100, 0], &[95, 5]);
        assert!((p - 0.31).abs() < 0.01, "{p}");
        // e = (0.5, 0.5), a = (1, 0): m = (0.75, 0.25),
        // JS² = ½ (1 · log2(4/3)) + ½ (0.5 log2(2/3) + 0.5 log2(2)).
        let js2 = 0.5 * (4.0f64 / 3.0).log2() + 0.5 * (0.5 * (2.0f64 / 3.0).log2() + 0.5);
        assert!((js(&[1, 1], &[1, 0]) - js2.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn levels_at_the_thresholds() {
        let t = THRESHOLDS;
        assert_eq!(t.level(0.0999, 0.0999), Level::Ok);
        assert_eq!(t.level(0.1, 0.0), Level::Warning);
        assert_eq!(t.level(0.0, 0.1), Level::Warning);
        assert_eq!(t.level(0.25, 0.0), Level::Critical);
        assert_eq!(t.level(0.2, 0.2), Level::Critical);
        assert_eq!(t.level(f64::NAN, 0.0), Level::Critical);
    }
}
