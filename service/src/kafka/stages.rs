//! Where a micro-batch's time goes on the streaming path (`fleetscore_pipeline_stage_seconds`,
//! by `stage`), from its first record taken from the consumer to its last output handed to
//! the producer. A batch's stages follow each other, so their sum is that whole time; with
//! `fleetscore_event_lag_seconds{stage="consumed"}` (the time before a record is taken) and
//! `fleetscore_commit_seconds` (the time after, until a read_committed consumer sees it) it
//! tells which part of a slow prediction was slow (issue #13).
//!
//! | stage | from | to | on |
//! | --- | --- | --- | --- |
//! | `batching` | the batch's first record taken | its hand-over starts | pipeline thread (polling, decoding) |
//! | `apply` | hand-over starts | events applied, features built | pipeline thread |
//! | `to_scoring` | built | the scoring thread starts on it | waiting for the scoring thread |
//! | `scoring` | scoring starts | scored | scoring thread (the backend calls) |
//! | `to_output` | scored | the output thread starts on it | waiting for the output thread |
//! | `txn_gate` | the output thread starts | its transaction is open | waiting for the previous commit (exactly-once) |
//! | `produce` | its transaction is open | every output handed to the producer | output thread (records built, sent) |

use std::sync::LazyLock;
use std::time::Instant;

use metrics::Histogram;

use crate::metrics::names;

/// A stage of a batch, in the order a batch goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Batching,
    Apply,
    ToScoring,
    Scoring,
    ToOutput,
    TxnGate,
    Produce,
}

impl Stage {
    const ALL: [Stage; 7] = [
        Stage::Batching,
        Stage::Apply,
        Stage::ToScoring,
        Stage::Scoring,
        Stage::ToOutput,
        Stage::TxnGate,
        Stage::Produce,
    ];

    /// The `stage` label.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Stage::Batching => "batching",
            Stage::Apply => "apply",
            Stage::ToScoring => "to_scoring",
            Stage::Scoring => "scoring",
            Stage::ToOutput => "to_output",
            Stage::TxnGate => "txn_gate",
            Stage::Produce => "produce",
        }
    }
}

/// The histograms, looked up once.
static HISTOGRAMS: LazyLock<[Histogram; 7]> = LazyLock::new(|| {
    Stage::ALL.map(|stage| metrics::histogram!(names::PIPELINE_STAGE, "stage" => stage.as_str()))
});

/// A batch's stopwatch: each [`BatchClock::lap`] records the stage that ends then.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchClock {
    last: Instant,
}

impl BatchClock {
    /// Starts at `at` (when the batch's first record was taken).
    pub(super) fn start(at: Instant) -> Self {
        Self { last: at }
    }

    /// `stage` ends now.
    pub(super) fn lap(&mut self, stage: Stage) {
        self.lap_at(stage, Instant::now());
    }

    /// `stage` ended at `at` (not before the previous stage ended).
    pub(super) fn lap_at(&mut self, stage: Stage, at: Instant) {
        let took = at.saturating_duration_since(self.last);
        HISTOGRAMS[stage as usize].record(took.as_secs_f64());
        self.last = self.last.max(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_has_its_own_label_in_order() {
        for (i, stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(*stage as usize, i, "{stage:?} indexes the wrong histogram");
        }
        let mut labels: Vec<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Stage::ALL.len());
    }

    #[test]
    fn a_lap_never_goes_back_in_time() {
        let start = Instant::now();
        let mut clock = BatchClock::start(start + std::time::Duration::from_millis(5));
        clock.lap_at(Stage::Batching, start);
        assert_eq!(clock.last, start + std::time::Duration::from_millis(5));
    }
}
