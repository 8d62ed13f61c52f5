//! Where `/score` runs its model calls. A request whose rows cost little ([`INLINE_COST`],
//! from the model's cost per row measured at load) is scored on the HTTP worker that holds it,
//! as a small body is parsed there, if the backend is free right now: a hand-off would cost
//! more than the call, and it puts two thread wake-ups on the request's path (to the scoring
//! thread and back), each exposed to the machine's scheduling jitter (issue #20; the `wait`
//! and `resume` stages of `fleetscore_http_score_stage_seconds` show them).
//!
//! Everything else goes to the scoring thread, so inference never runs long on an async
//! worker: big requests, and cheap ones whose backend is busy (ONNX Runtime's session takes
//! one call at a time). Requests hand their rows over a channel; the thread takes everything
//! that has queued (up to [`MAX_COALESCED_ROWS`]), scores it as one batch per model —
//! requests that arrive together share one backend call (dynamic batching, as Triton does) —
//! and answers each request with its own rows' values. So batching starts by itself when
//! requests contend for a backend, which is where ONNX Runtime's per-call cost is shared out
//! (a row costs 3.2 µs alone and 0.23 µs in a batch of 256): scoring every cheap request on
//! the workers, waiting for the session, cost 12 % of peak throughput; handing over only
//! when it is busy costs none (BENCHMARKS.md). A backend error fails the requests of that
//! batch only; a panic, on either path, is caught and answered as an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
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
    arrivals: Arrivals,
}

/// When requests come, to tell whether they come fast ([`LINGER`] apart or less).
#[derive(Debug)]
struct Arrivals {
    since: Instant,
    /// The previous request's arrival, in ns after `since`; 0: none yet.
    previous: AtomicU64,
}

impl Arrivals {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            previous: AtomicU64::new(0),
        }
    }

    /// Records a request arriving now; whether it came [`LINGER`] or less after the previous.
    fn fast(&self) -> bool {
        let now = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.came_at(now.max(1))
    }

    /// [`Arrivals::fast`] for a request arriving `now` ns after `since` (> 0).
    fn came_at(&self, now: u64) -> bool {
        let previous = self.previous.swap(now, Ordering::Relaxed);
        previous != 0 && now.saturating_sub(previous) <= LINGER.as_nanos() as u64
    }
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
            arrivals: Arrivals::new(),
        })
    }

    /// Scores `count` rows (row-major in `rows`) with `serving`, one value per row in order: on
    /// this thread if the rows are [`cheap`] and the backend free — unless it takes turns
    /// and requests come fast, when batching pays — else on the scoring thread.
    pub async fn score(
        &self,
        serving: ServingSet,
        rows: Vec<f32>,
        count: usize,
        permit: Option<Permit>,
    ) -> Result<Output, ModelError> {
        let fast = self.arrivals.fast();
        if cheap(&serving, count) && !(fast && serving.serving.backend.takes_turns()) {
            let mut out = Vec::with_capacity(count);
            if let Some(scored) = try_score_here(&serving, &rows, &mut out) {
                return scored.map(|scored| Output {
                    predictions: out,
                    model: scored.model,
                });
            }
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

/// Whether `count` rows of `serving` may be scored on the caller's thread: their calls (the
/// serving model's and the shadow's) are estimated to cost at most [`INLINE_COST`].
fn cheap(serving: &ServingSet, count: usize) -> bool {
    let rows = u32::try_from(count).unwrap_or(u32::MAX);
    let cost: Duration = std::iter::once(&serving.serving)
        .chain(&serving.shadow)
        .map(|model| model.row_cost.saturating_mul(rows))
        .sum();
    cost <= INLINE_COST
}

/// Scores on this thread if the serving model's backend is free ([`ServingSet::try_score`]),
/// else `None`.
fn try_score_here(
    serving: &ServingSet,
    rows: &[f32],
    out: &mut Vec<f32>,
) -> Option<Result<ModelScores, ModelError>> {
    timed(serving, || serving.try_score(rows, out).transpose()).transpose()
}

/// Scores `rows` with `serving` into `out` on this thread, waiting for the backend.
fn score_now(
    serving: &ServingSet,
    rows: &[f32],
    out: &mut Vec<f32>,
) -> Result<ModelScores, ModelError> {
    timed(serving, || serving.score(rows, out).map(Some))
        .map(|scored| scored.expect("a call that waits for the backend always runs"))
}

/// Runs `call` (a backend call of `serving`, `Ok(None)` if it did not run): timed as the
/// stage `model` when it ran, a panic caught as an error, a failing shadow logged.
fn timed(
    serving: &ServingSet,
    call: impl FnOnce() -> Result<Option<ModelScores>, ModelError>,
) -> Result<Option<ModelScores>, ModelError> {
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| {
        tracing::error!(model = %serving.serving.name(), "scoring panicked");
        Err(ModelError::scoring_msg("the backend panicked"))
    });
    if !matches!(result, Ok(None)) {
        STAGES.model.record(started.elapsed());
    }
    if let Ok(Some(scored)) = &result
        && let Some(shadow) = &scored.shadow
        && let Err(e) = &shadow.result
    {
        tracing::warn!(model = %shadow.model.name(), version = %shadow.model.version(),
            error = %e, "shadow model failed");
    }
    result
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
    match result {
        Ok(scored) => {
            let mut values = out.iter().copied();
            for job in batch {
                let predictions: Vec<f32> = values.by_ref().take(job.count).collect();
                let output = Output {
                    predictions,
                    model: Arc::clone(&scored.model),
                };
                let _ = job.reply.send((Ok(output), Instant::now()));
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.reply.send((Err(e.clone()), Instant::now()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Arrivals, INLINE_COST, LINGER, Scorer, cheap};
    use crate::model::backend::{Backend, BackendKind};
    use crate::model::{LoadedModel, ModelError, ServingSet, package};

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
        let golden: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture(dir).join("golden.json")).unwrap())
                .unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let inputs = golden["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        (inputs, floats(&golden["outputs"]))
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
            arrivals: Arrivals::new(),
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
        assert!(cheap(&set, fits) && !cheap(&set, fits + 1));

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

    /// A backend that is always busy, as ONNX Runtime's session is while another call runs.
    #[derive(Debug)]
    struct Busy(Box<dyn Backend>);

    impl Backend for Busy {
        fn kind(&self) -> BackendKind {
            self.0.kind()
        }

        fn score(&self, rows: &[f32], width: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
            self.0.score(rows, width, out)
        }

        fn try_score(
            &self,
            _: &[f32],
            _: usize,
            _: &mut Vec<f32>,
        ) -> Option<Result<(), ModelError>> {
            None
        }
    }

    /// A cheap request whose backend is busy goes to the thread (which batches what queues)
    /// rather than waiting on the worker; a free one is scored here.
    #[tokio::test]
    async fn a_busy_backend_hands_the_request_to_the_thread() {
        let dir = "tests/fixtures/models/engine-rul/2"; // ONNX Runtime
        let (inputs, outputs) = golden(dir);
        let free = serving(model(dir, Duration::from_nanos(1)));
        let here = stopped()
            .score(free, inputs[0].clone(), 1, None)
            .await
            .unwrap();
        assert!((here.predictions[0] - outputs[0]).abs() <= 1e-3);

        let mut busy = model(dir, Duration::from_nanos(1));
        busy.backend = Box::new(Busy(package::load(&fixture(dir)).unwrap().backend));
        let busy = serving(busy);
        assert!(cheap(&busy, 1));
        let refused = stopped()
            .score(busy.clone(), inputs[0].clone(), 1, None)
            .await;
        assert!(refused.is_err(), "not scored here while busy");
        let scorer = Scorer::start().unwrap();
        let there = scorer
            .score(busy, inputs[0].clone(), 1, None)
            .await
            .unwrap();
        assert_eq!(
            there.predictions[0].to_bits(),
            here.predictions[0].to_bits()
        );
    }

    /// While requests come fast, a backend that takes turns (ONNX Runtime) gets them batched
    /// on the thread even when it is free; the native trees keep scoring them here.
    #[tokio::test]
    async fn requests_coming_fast_are_batched_for_a_backend_that_takes_turns() {
        let coming_fast = || {
            let scorer = stopped();
            scorer.arrivals.came_at(u64::MAX); // "just now", whenever the next one comes
            scorer
        };
        let ort = "tests/fixtures/models/engine-rul/2";
        let set = serving(model(ort, Duration::from_nanos(1)));
        assert!(set.serving.backend.takes_turns());
        let row = golden(ort).0.swap_remove(0);
        let refused = coming_fast().score(set, row, 1, None).await;
        assert!(refused.is_err(), "handed to the thread");

        let trees = "../models/engine-rul/1";
        let set = serving(model(trees, Duration::from_nanos(1)));
        assert!(!set.serving.backend.takes_turns());
        let row = golden(trees).0.swap_remove(0);
        coming_fast().score(set, row, 1, None).await.unwrap();
    }

    /// Requests come fast when one comes at most [`LINGER`] after the previous; the first
    /// never does.
    #[test]
    fn arrivals_are_fast_within_the_linger() {
        let arrivals = Arrivals::new();
        let linger = LINGER.as_nanos() as u64;
        assert!(!arrivals.came_at(1), "the first request");
        assert!(arrivals.came_at(1 + linger));
        assert!(!arrivals.came_at(2 + 2 * linger));
        assert!(arrivals.came_at(2 + 2 * linger), "two at once");
    }
}
