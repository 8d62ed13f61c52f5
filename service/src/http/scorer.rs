//! Where `/score` runs its model calls. A request whose rows cost little ([`INLINE_COST`],
//! from the model's cost per row measured at load) is scored on the HTTP worker that holds it,
//! as a small body is parsed there, when its backend does not take turns (the native trees):
//! a hand-off would cost more than the call, and it puts two thread wake-ups on the request's
//! path (to the scoring thread and back), each exposed to the machine's scheduling jitter
//! (issue #20; the `wait` and `resume` stages of `fleetscore_http_score_stage_seconds` show
//! them).
//!
//! Everything else goes to the scoring thread, so inference never runs long on an async
//! worker: big requests, and every request for a backend that takes turns (ONNX Runtime's
//! session takes one call at a time). Requests hand their rows over a channel; the thread
//! takes everything that has queued (up to [`MAX_COALESCED_ROWS`]), scores it as one batch per
//! model — requests that arrive together share one backend call (dynamic batching, as Triton
//! does) — and answers each request with its own rows' values. That is where ONNX Runtime's
//! per-call cost is shared out (a row costs 3.2 µs alone and 0.23 µs in a batch of 256); its
//! one-row requests scored on the workers instead cost 16 % more CPU per request at 20,000
//! req/s (BENCHMARKS.md). A backend error fails the requests of that batch only; a panic, on
//! either path, is caught and answered as an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::Histogram;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::limits::Permit;
use crate::metrics::names;
use crate::model::LoadedModel;
use crate::model::ModelError;
use crate::model::ModelScores;
use crate::model::ServingSet;

/// Rows scored in one backend call at most (one request's rows are never split).
pub const MAX_COALESCED_ROWS: usize = 256;

/// A request whose model calls are estimated to cost at most this much is scored on the HTTP
/// worker: the order of what a worker already does for one (parsing a body of up to
/// `limits::INLINE_PARSE_BYTES` costs about 70 µs), so it delays the worker's other requests
/// no more than that. The published `engine-rul` (1,500 trees, 5 µs a row) scores up to 10
/// rows this way.
pub const INLINE_COST: Duration = Duration::from_micros(50);

/// What a request gets back: its values, and the model that produced them.
#[derive(Debug)]
pub struct Output {
    pub predictions: Vec<f32>,
    pub model: Arc<LoadedModel>,
}

/// A request's answer from the scoring thread, and when it was sent.
type Answer = (Result<Output, ModelError>, Instant);

/// The stage histograms (`fleetscore_http_score_stage_seconds`), looked up once.
struct Stages {
    wait: Histogram,
    model: Histogram,
    resume: Histogram,
}

static STAGES: LazyLock<Stages> = LazyLock::new(|| {
    let stage = |name: &'static str| metrics::histogram!(names::HTTP_SCORE_STAGE, "stage" => name);
    Stages {
        wait: stage("wait"),
        model: stage("model"),
        resume: stage("resume"),
    }
});

#[derive(Debug)]
struct Job {
    serving: ServingSet,
    rows: Vec<f32>,
    count: usize,
    queued: Instant,
    reply: oneshot::Sender<Answer>,
    /// The request's concurrency permit: held until its rows are scored, even if the request
    /// timed out meanwhile.
    _permit: Option<Permit>,
}

#[derive(Debug)]
pub struct Scorer {
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Scorer {
    /// Starts the scoring thread; it stops when the scorer is dropped.
    pub fn start() -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("http-scorer".to_owned())
            .spawn(move || run(rx))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Scores `count` rows (row-major in `rows`) with `serving`, one value per row in order: on
    /// this thread if [`here`] allows, else on the scoring thread.
    pub async fn score(
        &self,
        serving: ServingSet,
        rows: Vec<f32>,
        count: usize,
        permit: Option<Permit>,
    ) -> Result<Output, ModelError> {
        if here(&serving, count) {
            let mut out = Vec::with_capacity(count);
            let scored = score_now(&serving, &rows, &mut out)?;
            return Ok(Output {
                predictions: out,
                model: scored.model,
            });
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            serving,
            rows,
            count,
            queued: Instant::now(),
            reply,
            _permit: permit,
        };
        let stopped = || ModelError::scoring_msg("the scoring thread has stopped");
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        let (output, answered) = answer.await.map_err(|_| stopped())?;
        STAGES.resume.record(answered.elapsed());
        output
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        self.jobs = None; // closes the channel: the thread ends after the jobs queued
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut pending: Vec<Job> = Vec::new();
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    let batch_rows = metrics::histogram!(names::HTTP_BATCH_ROWS);
    let mut busy = false;
    while let Some(first) = next_job(&mut rx, &mut busy) {
        let mut rows = first.count;
        pending.push(first);
        while rows < MAX_COALESCED_ROWS {
            match rx.try_recv() {
                Ok(job) => {
                    rows += job.count;
                    pending.push(job);
                }
                Err(_) => break,
            }
        }
        // A request that timed out or whose client left does not wait for its rows: dropping
        // its job returns its permit now rather than after scoring them for nobody.
        pending.retain(|job| !job.reply.is_closed());
        let picked = Instant::now();
        for job in &pending {
            STAGES.wait.record(picked.duration_since(job.queued));
        }
        // One backend call per model among what queued, in arrival order within each.
        while !pending.is_empty() {
            let model = Arc::clone(&pending[0].serving.serving);
            let (batch, rest): (Vec<Job>, Vec<Job>) = pending
                .drain(..)
                .partition(|job| Arc::ptr_eq(&job.serving.serving, &model));
            pending = rest;
            score_batch(batch, &mut scratch, &mut out, &batch_rows);
        }
    }
}

/// How long the thread looks for the next job before it sleeps, while requests come fast.
const LINGER: Duration = Duration::from_micros(50);

/// The next job, or `None` once the channel is closed. While requests come less than
/// [`LINGER`] apart (`busy`), the thread keeps looking for up to that long, yielding the core
/// meanwhile, instead of sleeping: being woken costs each request a futex call and a context
/// switch. When they come slower, it sleeps at once and idles at no cost.
fn next_job(rx: &mut mpsc::UnboundedReceiver<Job>, busy: &mut bool) -> Option<Job> {
    if *busy {
        let deadline = Instant::now() + LINGER;
        loop {
            match rx.try_recv() {
                Ok(job) => return Some(job),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if Instant::now() < deadline => std::thread::yield_now(),
                Err(TryRecvError::Empty) => break,
            }
        }
    }
    let asleep = Instant::now();
    let job = rx.blocking_recv();
    *busy = asleep.elapsed() < LINGER;
    job
}

/// Whether `count` rows of `serving` are scored on the caller's thread: no model of the set
/// takes turns ([`crate::model::backend::Backend::takes_turns`]) and their calls are estimated
/// to cost at most [`INLINE_COST`] together.
fn here(serving: &ServingSet, count: usize) -> bool {
    let rows = u32::try_from(count).unwrap_or(u32::MAX);
    let mut cost = Duration::ZERO;
    for model in std::iter::once(&serving.serving).chain(&serving.shadow) {
        if model.backend.takes_turns() {
            return false;
        }
        cost += model.row_cost.saturating_mul(rows);
    }
    cost <= INLINE_COST
}

/// Scores `rows` with `serving` into `out` on this thread: the backend call timed (stage
/// `model`), a panic caught as an error, a failing shadow logged.
fn score_now(
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

fn score_batch(
    batch: Vec<Job>,
    scratch: &mut Vec<f32>,
    out: &mut Vec<f32>,
    batch_rows: &metrics::Histogram,
) {
    let serving = batch[0].serving.clone();
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{INLINE_COST, Scorer, here};
    use crate::model::package::Golden;
    use crate::model::{LoadedModel, ServingSet, package};

    fn fixture(dir: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
    }

    /// The package in `dir`, its cost per row set to `row_cost` (measured at load, it would
    /// depend on the machine and the build).
    fn model(dir: &str, row_cost: Duration) -> LoadedModel {
        let mut model = package::load(&fixture(dir)).unwrap();
        assert!(model.row_cost > Duration::ZERO, "measured at load");
        model.row_cost = row_cost;
        model
    }

    fn golden(dir: &str) -> (Vec<Vec<f32>>, Vec<f32>) {
        let bytes = std::fs::read(fixture(dir).join("golden.json")).unwrap();
        let golden: Golden = serde_json::from_slice(&bytes).unwrap();
        (golden.inputs, golden.outputs)
    }

    fn serving(model: LoadedModel) -> ServingSet {
        ServingSet {
            serving: Arc::new(model),
            shadow: None,
        }
    }

    /// A scorer whose thread has stopped: only what is scored on the caller's thread answers.
    fn stopped() -> Scorer {
        Scorer {
            jobs: None,
            thread: None,
        }
    }

    /// Small requests are scored on the caller's thread — a scorer whose thread has stopped
    /// still answers them — and big ones on the thread; both give the rows' values to the
    /// bit, whatever the batch.
    #[tokio::test]
    async fn cheap_requests_score_here_and_big_ones_on_the_thread_alike() {
        // What a row of the published engine-rul costs (BENCHMARKS.md): 10 rows fit.
        let dir = "../models/engine-rul/1";
        let set = serving(model(dir, Duration::from_micros(5)));
        let (inputs, outputs) = golden(dir);
        let fits = (INLINE_COST.as_nanos() / set.serving.row_cost.as_nanos()) as usize;
        assert_eq!(fits, 10);
        assert!(here(&set, fits) && !here(&set, fits + 1));

        let mut alone = Vec::new();
        for row in &inputs {
            let output = stopped()
                .score(set.clone(), row.clone(), 1, None)
                .await
                .unwrap();
            alone.extend(output.predictions);
        }
        for (got, want) in alone.iter().zip(&outputs) {
            assert!((got - want).abs() <= 1e-3, "{got} vs golden {want}");
        }
        let big = fits + 1;
        let rows: Vec<f32> = inputs.iter().cycle().take(big).flatten().copied().collect();
        let refused = stopped().score(set.clone(), rows.clone(), big, None).await;
        assert!(refused.is_err(), "a big request is not scored here");

        let scorer = Scorer::start().unwrap();
        let batched = scorer
            .score(set, rows, big, None)
            .await
            .unwrap()
            .predictions;
        let want: Vec<u32> = alone
            .iter()
            .cycle()
            .take(big)
            .map(|v| v.to_bits())
            .collect();
        let got: Vec<u32> = batched.iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            got, want,
            "the thread's batch equals the rows scored one by one"
        );
    }

    /// A backend that takes turns (ONNX Runtime) gets even a cheap request on the thread,
    /// where what queues is batched; the answer is the same.
    #[tokio::test]
    async fn a_backend_that_takes_turns_scores_on_the_thread() {
        let dir = "tests/fixtures/models/engine-rul/2"; // ONNX Runtime
        let (inputs, outputs) = golden(dir);
        let set = serving(model(dir, Duration::from_nanos(1)));
        assert!(set.serving.backend.takes_turns());
        assert!(!here(&set, 1));
        let refused = stopped()
            .score(set.clone(), inputs[0].clone(), 1, None)
            .await;
        assert!(refused.is_err(), "not scored on the caller's thread");
        let scorer = Scorer::start().unwrap();
        let there = scorer.score(set, inputs[0].clone(), 1, None).await.unwrap();
        assert!((there.predictions[0] - outputs[0]).abs() <= 1e-3);
    }
}
