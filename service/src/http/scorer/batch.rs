//! One batch of queued requests scored as one backend call per model, shared by the scoring
//! thread ([`super::thread`]) and the scoring task ([`super::task`]); and a request scored on
//! the caller's thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use metrics::Histogram;
use tokio::sync::mpsc;

use super::{Job, MAX_COALESCED_ROWS, Output};
use crate::metrics::names;
use crate::model::{ModelError, ModelScores, ServingSet};

/// The stage histograms (`fleetscore_http_score_stage_seconds`), looked up once.
pub(super) struct Stages {
    pub wait: Histogram,
    pub model: Histogram,
    pub resume: Histogram,
}

pub(super) static STAGES: LazyLock<Stages> = LazyLock::new(|| {
    let stage = |name: &'static str| metrics::histogram!(names::HTTP_SCORE_STAGE, "stage" => name);
    Stages {
        wait: stage("wait"),
        model: stage("model"),
        resume: stage("resume"),
    }
});

/// What a batch's scoring reuses from one batch to the next.
#[derive(Default)]
pub(super) struct Buffers {
    scratch: Vec<f32>,
    out: Vec<f32>,
}

/// Takes `first` and what has queued behind it into `pending`, while the jobs taken cost less
/// than `max_cost` together (their estimates) and hold fewer than [`MAX_COALESCED_ROWS`] rows.
pub(super) fn gather(
    first: Job,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    pending: &mut Vec<Job>,
    max_cost: Duration,
) {
    let (mut cost, mut rows) = (first.cost, first.count);
    pending.push(first);
    while cost < max_cost && rows < MAX_COALESCED_ROWS {
        match rx.try_recv() {
            Ok(job) => {
                cost = cost.saturating_add(job.cost);
                rows += job.count;
                pending.push(job);
            }
            Err(_) => break,
        }
    }
}

/// Drops the jobs of requests that timed out or whose client left (their permits return now
/// rather than after scoring their rows for nobody), then hands what is left to `each`, one
/// group per model in arrival order within each, emptying `pending`.
pub(super) fn by_model(pending: &mut Vec<Job>, mut each: impl FnMut(Vec<Job>)) {
    pending.retain(|job| !job.reply.is_closed());
    while !pending.is_empty() {
        let model = Arc::clone(&pending[0].serving.serving);
        let (group, rest): (Vec<Job>, Vec<Job>) = pending
            .drain(..)
            .partition(|job| Arc::ptr_eq(&job.serving.serving, &model));
        *pending = rest;
        each(group);
    }
}

/// Scores `batch` (jobs of one serving set) as one backend call and answers each job with its
/// own rows' values; a failure fails the batch's jobs only.
pub(super) fn score(batch: Vec<Job>, buffers: &mut Buffers, batch_rows: &Histogram) {
    let started = Instant::now();
    for job in &batch {
        STAGES.wait.record(started.duration_since(job.queued));
    }
    let serving = batch[0].serving.clone();
    let Buffers { scratch, out } = buffers;
    let result = if batch.len() == 1 {
        score_now(&serving, &batch[0].rows, out)
    } else {
        scratch.clear();
        for job in &batch {
            scratch.extend_from_slice(&job.rows);
        }
        score_now(&serving, scratch, out)
    };
    let total: usize = batch.iter().map(|j| j.count).sum();
    batch_rows.record(total as f64);
    let answered = Instant::now();
    match result {
        Ok(scored) => {
            let mut values = out.iter().copied();
            for job in batch {
                let predictions: Vec<f32> = values.by_ref().take(job.count).collect();
                let output = Output {
                    predictions,
                    model: Arc::clone(&scored.model),
                };
                let _ = job.reply.send((Ok(output), answered));
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.reply.send((Err(e.clone()), answered));
            }
        }
    }
}

/// Scores `rows` with `serving` into `out` on this thread: the backend call timed (stage
/// `model`), a panic caught as an error, a failing shadow logged.
pub(super) fn score_now(
    serving: &ServingSet,
    rows: &[f32],
    out: &mut Vec<f32>,
) -> Result<ModelScores, ModelError> {
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| serving.score(rows, out)));
    STAGES.model.record(started.elapsed());
    let scored = result.unwrap_or_else(|_| {
        tracing::error!(model = %serving.serving.name(), "scoring panicked");
        Err(ModelError::scoring_msg("the backend panicked"))
    })?;
    if let Some(shadow) = &scored.shadow
        && let Err(e) = &shadow.result
    {
        tracing::warn!(model = %shadow.model.name(), version = %shadow.model.version(),
            error = %e, "shadow model failed");
    }
    Ok(scored)
}
