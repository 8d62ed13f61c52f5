//! The scoring task: cheap requests for a backend that takes turns (ONNX Runtime), batched on
//! the HTTP runtime itself. It is one task: requests queue to it while it is scoring or
//! waiting for a worker, and it takes what has queued (up to [`TASK_BATCH_COST`] by the
//! models' one-row cost, at most [`MAX_COALESCED_ROWS`] rows) as one backend call per model,
//! so the session still takes one call at a time and its per-call cost is still shared out.
//! A request reaches it without leaving the runtime: the request's task wakes it on the same
//! worker (tokio runs a task woken from a worker next on that worker), and its answer wakes the
//! request's task the same way; no thread sleeps or is woken on the way, where a hand-off to
//! the scoring thread and back puts two wake-ups on the request's path, each exposed to the
//! machine's scheduling (issue #20).
//!
//! It never waits for a session another thread holds (the scoring thread's big batch, the
//! streaming path's): such a batch goes to the scoring thread instead.

use tokio::sync::mpsc;

use super::batch::{self, Buffers};
use super::{Job, TASK_BATCH_COST};
use crate::metrics::names;
use crate::model::ModelError;

pub(super) async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    thread: mpsc::WeakUnboundedSender<Job>,
) {
    let mut pending: Vec<Job> = Vec::new();
    let mut buffers = Buffers::default();
    let batch_rows = metrics::histogram!(names::HTTP_BATCH_ROWS);
    while let Some(first) = rx.recv().await {
        batch::gather(first, &mut rx, &mut pending, TASK_BATCH_COST);
        batch::by_model(&mut pending, |group| {
            if group[0].serving.busy() {
                to_thread(group, &thread);
            } else {
                batch::score(group, &mut buffers, &batch_rows);
            }
        });
    }
}

/// Queues `jobs` to the scoring thread, or answers them with an error if it has stopped.
fn to_thread(jobs: Vec<Job>, thread: &mpsc::WeakUnboundedSender<Job>) {
    let thread = thread.upgrade();
    for job in jobs {
        let refused = match &thread {
            Some(thread) => thread.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            let stopped = ModelError::scoring_msg("the scoring thread has stopped");
            let _ = job.reply.send((Err(stopped), std::time::Instant::now()));
        }
    }
}
