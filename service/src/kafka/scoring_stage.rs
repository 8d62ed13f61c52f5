//! The scoring thread: scores each micro-batch the pipeline hands over, one backend call per
//! model, and passes the results on to the output thread.
//!
//! Batches come in through a channel of capacity 1 and leave in the same order; the emptied
//! batcher goes back to the pipeline to be reused. When the pipeline drops its sender, the
//! thread finishes what it was given, lets the output thread finish, and joins it.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use anyhow::Context;
use chrono::Utc;

use super::delivery::BatchTracker;
use super::output::{Emitter, Meta, OutputRecord, ScoredBatch};
use super::stages::{BatchClock, Stage};
use crate::scoring::Batcher;
use crate::telemetry::messaging;

/// A batch for the scoring thread: its rows, the dead letters found while decoding, and the
/// tracker already registered in flight for all of its outputs.
pub(super) struct Work {
    pub(super) batcher: Batcher<Meta>,
    pub(super) outputs: Vec<OutputRecord>,
    pub(super) tracker: Arc<BatchTracker>,
    /// The epoch of its transaction ([`super::txn_gate`]).
    pub(super) epoch: u64,
    /// Its `process` span ([`crate::telemetry::messaging`]).
    pub(super) span: tracing::Span,
    /// Its stage times ([`super::stages`]).
    pub(super) clock: BatchClock,
}

/// The pipeline's end of a started scoring stage.
pub(super) struct ScoringLink {
    /// Batches to the scoring thread (capacity 1: at most one waits while one is scored).
    pub(super) work: mpsc::SyncSender<Work>,
    /// Emptied batchers coming back, to be reused.
    pub(super) spare: mpsc::Receiver<Batcher<Meta>>,
    /// The scoring thread; it joins the output thread before it ends.
    pub(super) thread: JoinHandle<()>,
}

/// The scoring thread: scores batches in the order they come and hands the results to the
/// output thread.
pub(super) struct ScoringStage {
    spare: mpsc::Sender<Batcher<Meta>>,
    scored: mpsc::SyncSender<ScoredBatch>,
    output: JoinHandle<()>,
}

impl ScoringStage {
    /// Starts the output thread, then the scoring thread that feeds it. Either failing to
    /// start is an error (a started output thread then ends, its channel closed).
    pub(super) fn start(emitter: Emitter) -> anyhow::Result<ScoringLink> {
        let (scored, output) = emitter.start()?;
        let (work_tx, work_rx) = mpsc::sync_channel::<Work>(1);
        let (spare_tx, spare_rx) = mpsc::channel();
        let stage = ScoringStage {
            spare: spare_tx,
            scored,
            output,
        };
        let thread = std::thread::Builder::new()
            .name("kafka-scorer".to_owned())
            .spawn(move || stage.run(&work_rx))
            .context("starting the scoring thread")?;
        Ok(ScoringLink {
            work: work_tx,
            spare: spare_rx,
            thread,
        })
    }

    /// Scores until the pipeline closes the channel, then lets the output thread finish.
    fn run(self, work: &mpsc::Receiver<Work>) {
        let ScoringStage {
            spare,
            scored,
            output,
        } = self;
        while let Ok(work) = work.recv() {
            if scored.send(score(work, &spare)).is_err() {
                tracing::error!("the output thread has stopped");
                break;
            }
        }
        drop(scored);
        if output.join().is_err() {
            tracing::error!("the output thread panicked");
        }
    }
}

/// Scores a batch (one backend call per model) and returns the batcher for reuse.
fn score(work: Work, spare: &mpsc::Sender<Batcher<Meta>>) -> ScoredBatch {
    let Work {
        mut batcher,
        outputs,
        tracker,
        epoch,
        span,
        mut clock,
    } = work;
    clock.lap(Stage::ToScoring);
    let rows = batcher.len();
    let mut scored = Vec::with_capacity(rows);
    {
        let _scoring = messaging::score(&span, rows).entered();
        batcher.flush(Utc::now(), |outcome| scored.push(outcome));
    }
    clock.lap(Stage::Scoring);
    let _ = spare.send(batcher);
    ScoredBatch {
        scored,
        outputs,
        tracker,
        rows,
        epoch,
        span,
        clock,
    }
}
