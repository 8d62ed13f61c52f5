//! Where `/score` runs its model calls, by what a request's rows cost ([`INLINE_COST`], from
//! the models' cost per row measured at load) and whether its backend takes turns:
//!
//! - **here**, on the HTTP worker that holds the request, as a small body is parsed there: a
//!   cheap request for a backend that does not take turns (the native trees). A hand-off would
//!   cost more than the call.
//! - **the scoring task** ([`task`]): a cheap request for a backend that takes turns (ONNX
//!   Runtime's session takes one call at a time). One task on the HTTP runtime batches what
//!   queues to it into one backend call per model (dynamic batching, as Triton does), without
//!   a thread crossing: the two wake-ups of a hand-off to a thread and back, each exposed to
//!   the machine's scheduling, were the ONNX Runtime path's tail (issue #20; the `wait` and
//!   `resume` stages of `fleetscore_http_score_stage_seconds` show them).
//! - **the scoring thread** ([`thread`]): everything else, so inference never runs long on an
//!   async worker: big requests, and a task's batch whose session another thread holds.
//!
//! Batching is where ONNX Runtime's per-call cost is shared out (a row costs 3.2 µs alone and
//! 0.23 µs in a batch of 256); its one-row requests scored each on its worker instead cost
//! 16 % more CPU per request at 20,000 req/s (BENCHMARKS.md). A backend error fails the
//! requests of that batch only; a panic, on any path, is caught and answered as an error.

mod batch;
mod task;
mod thread;

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::limits::Permit;
use crate::model::LoadedModel;
use crate::model::ModelError;
use crate::model::ServingSet;
use batch::STAGES;

/// Rows scored in one backend call at most (one request's rows are never split).
pub const MAX_COALESCED_ROWS: usize = 256;

/// A request whose model calls are estimated to cost at most this much is scored without the
/// scoring thread: the order of what a worker already does for one (parsing a body of up to
/// `limits::INLINE_PARSE_BYTES` costs about 70 µs), so it delays the worker's other requests
/// no more than that. The published `engine-rul` (1,500 trees, 5 µs a row) scores up to 10
/// rows this way.
pub const INLINE_COST: Duration = Duration::from_micros(50);

/// What the scoring task takes into one batch at most, by the models' one-row cost (an upper
/// bound: a row costs less in a batch), so a batch holds its worker about as long as a few
/// cheap requests would.
pub const TASK_BATCH_COST: Duration = Duration::from_micros(200);

/// What a request gets back: its values, and the model that produced them.
#[derive(Debug)]
pub struct Output {
    pub predictions: Vec<f32>,
    pub model: Arc<LoadedModel>,
}

/// A request's answer from the scoring task or thread, and when it was sent.
type Answer = (Result<Output, ModelError>, Instant);

#[derive(Debug)]
struct Job {
    serving: ServingSet,
    rows: Vec<f32>,
    count: usize,
    /// What its rows are estimated to cost ([`route`]).
    cost: Duration,
    queued: Instant,
    reply: oneshot::Sender<Answer>,
    /// The request's concurrency permit: held until its rows are scored, even if the request
    /// timed out meanwhile.
    _permit: Option<Permit>,
}

/// Where a request is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Here,
    Task,
    Thread,
}

#[derive(Debug)]
pub struct Scorer {
    thread_jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The scoring task's queue, the task spawned on the runtime of the first request that
    /// needs it.
    task_jobs: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl Scorer {
    /// Starts the scoring thread; it stops when the scorer is dropped, as does the task.
    pub fn start() -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("http-scorer".to_owned())
            .spawn(move || thread::run(rx))?;
        Ok(Self {
            thread_jobs: Some(jobs),
            thread: Some(thread),
            task_jobs: OnceLock::new(),
        })
    }

    /// Scores `count` rows (row-major in `rows`) with `serving`, one value per row in order,
    /// where [`route`] says.
    pub async fn score(
        &self,
        serving: ServingSet,
        rows: Vec<f32>,
        count: usize,
        permit: Option<Permit>,
    ) -> Result<Output, ModelError> {
        let (route, cost) = route(&serving, count);
        if route == Route::Here {
            let mut out = Vec::with_capacity(count);
            let scored = batch::score_now(&serving, &rows, &mut out)?;
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
            cost,
            queued: Instant::now(),
            reply,
            _permit: permit,
        };
        let stopped = || ModelError::scoring_msg("the scoring thread has stopped");
        let job = match route {
            Route::Task => match self.task().send(job) {
                Ok(()) => None,
                Err(refused) => Some(refused.0), // its runtime has shut down
            },
            _ => Some(job),
        };
        if let Some(job) = job {
            self.thread_jobs
                .as_ref()
                .ok_or_else(stopped)?
                .send(job)
                .map_err(|_| stopped())?;
        }
        let (output, answered) = answer.await.map_err(|_| stopped())?;
        STAGES.resume.record(answered.elapsed());
        output
    }

    /// The scoring task's queue, the task spawned on the current runtime the first time.
    fn task(&self) -> &mpsc::UnboundedSender<Job> {
        self.task_jobs.get_or_init(|| {
            let (jobs, rx) = mpsc::unbounded_channel();
            let thread = match &self.thread_jobs {
                Some(thread) => thread.downgrade(),
                None => mpsc::unbounded_channel().0.downgrade(),
            };
            tokio::spawn(task::run(rx, thread));
            jobs
        })
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        self.thread_jobs = None; // closes the channel: the thread ends after the jobs queued
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where `count` rows of `serving` are scored, and what they are estimated to cost: with
/// every model of the set costing at most [`INLINE_COST`] together, here if none takes turns
/// ([`crate::model::backend::Backend::takes_turns`]), else on the scoring task; otherwise on
/// the scoring thread.
fn route(serving: &ServingSet, count: usize) -> (Route, Duration) {
    let rows = u32::try_from(count).unwrap_or(u32::MAX);
    let mut cost = Duration::ZERO;
    let mut turns = false;
    for model in serving.models() {
        turns |= model.backend.takes_turns();
        cost = cost.saturating_add(model.row_cost.saturating_mul(rows));
    }
    let route = match (cost <= INLINE_COST, turns) {
        (true, false) => Route::Here,
        (true, true) => Route::Task,
        (false, _) => Route::Thread,
    };
    (route, cost)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use futures_util::future::join_all;

    use super::{INLINE_COST, Route, Scorer, route};
    use crate::model::backend::{Backend, BackendKind};
    use crate::model::package::Golden;
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

    /// A scorer whose thread has stopped: only what is scored on the caller's thread or the
    /// scoring task answers.
    fn stopped() -> Scorer {
        Scorer {
            thread_jobs: None,
            thread: None,
            task_jobs: OnceLock::new(),
        }
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
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
        assert_eq!(route(&set, fits).0, Route::Here);
        assert_eq!(route(&set, fits + 1).0, Route::Thread);

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
        let want: Vec<f32> = alone.iter().copied().cycle().take(big).collect();
        assert_eq!(
            bits(&batched),
            bits(&want),
            "the thread's batch equals the rows scored one by one"
        );
    }

    /// A backend that takes turns (ONNX Runtime) gets its cheap requests on the scoring task
    /// — a scorer whose thread has stopped still answers them — where requests queued
    /// together are one batch, and its big ones on the thread; the values are the same.
    #[tokio::test]
    async fn a_backend_that_takes_turns_scores_cheap_requests_on_the_task() {
        let dir = "tests/fixtures/models/engine-rul/2"; // ONNX Runtime
        let (inputs, outputs) = golden(dir);
        let set = serving(model(dir, Duration::from_nanos(1)));
        assert!(set.serving.backend.takes_turns());
        assert_eq!(route(&set, 1).0, Route::Task);

        let scorer = stopped();
        let requests = inputs
            .iter()
            .map(|row| scorer.score(set.clone(), row.clone(), 1, None));
        // All queued before the task runs (one thread here): one batch.
        let together: Vec<f32> = join_all(requests)
            .await
            .into_iter()
            .flat_map(|output| output.unwrap().predictions)
            .collect();
        for (got, want) in together.iter().zip(&outputs) {
            assert!((got - want).abs() <= 1e-3, "{got} vs golden {want}");
        }
        let mut alone = Vec::new();
        for row in &inputs {
            let output = scorer.score(set.clone(), row.clone(), 1, None).await;
            alone.extend(output.unwrap().predictions);
        }
        assert_eq!(
            bits(&together),
            bits(&alone),
            "a batch equals its rows alone"
        );

        let big = serving(model(dir, INLINE_COST));
        assert_eq!(route(&big, 2).0, Route::Thread);
        let rows: Vec<f32> = inputs[..2].concat();
        let refused = scorer.score(big.clone(), rows.clone(), 2, None).await;
        assert!(refused.is_err(), "a big request is not scored on the task");
        let there = Scorer::start().unwrap().score(big, rows, 2, None).await;
        assert_eq!(bits(&there.unwrap().predictions), bits(&alone[..2]));
    }

    /// A backend that takes turns and reports itself busy while `busy` is set, recording the
    /// thread of each call.
    #[derive(Debug)]
    struct Probe {
        inner: Box<dyn Backend>,
        busy: Arc<AtomicBool>,
        threads: Arc<Mutex<Vec<Option<String>>>>,
    }

    impl Backend for Probe {
        fn kind(&self) -> BackendKind {
            self.inner.kind()
        }

        fn score(&self, rows: &[f32], width: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
            let thread = std::thread::current().name().map(str::to_owned);
            self.threads.lock().unwrap().push(thread);
            self.inner.score(rows, width, out)
        }

        fn takes_turns(&self) -> bool {
            true
        }

        fn busy(&self) -> bool {
            self.busy.load(Ordering::Relaxed)
        }
    }

    /// The scoring task never waits for a session another thread holds: while the backend is
    /// busy, its batch is scored on the scoring thread instead; once free, on the task again.
    #[tokio::test]
    async fn the_task_leaves_a_busy_session_to_the_thread() {
        let dir = "tests/fixtures/models/engine-rul/2";
        let (inputs, outputs) = golden(dir);
        let busy = Arc::new(AtomicBool::new(true));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let mut loaded = model(dir, Duration::from_nanos(1));
        loaded.backend = Box::new(Probe {
            inner: model(dir, Duration::from_nanos(1)).backend,
            busy: Arc::clone(&busy),
            threads: Arc::clone(&threads),
        });
        let set = serving(loaded);
        let scorer = Scorer::start().unwrap();

        let held = scorer.score(set.clone(), inputs[0].clone(), 1, None).await;
        assert!((held.unwrap().predictions[0] - outputs[0]).abs() <= 1e-3);
        busy.store(false, Ordering::Relaxed);
        let free = scorer.score(set, inputs[0].clone(), 1, None).await;
        assert!((free.unwrap().predictions[0] - outputs[0]).abs() <= 1e-3);

        let threads = threads.lock().unwrap().clone();
        let here = std::thread::current().name().map(str::to_owned);
        assert_eq!(threads, vec![Some("http-scorer".to_owned()), here]);
    }
}
