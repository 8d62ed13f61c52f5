//! The scoring thread: big requests, and what the scoring task leaves to it. It takes
//! everything that has queued (up to [`super::MAX_COALESCED_ROWS`] rows) and scores it as one batch
//! per model.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use super::Job;
use super::batch::{self, Buffers};
use crate::metrics::names;

pub(super) fn run(mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut pending: Vec<Job> = Vec::new();
    let mut buffers = Buffers::default();
    let batch_rows = metrics::histogram!(names::HTTP_BATCH_ROWS);
    let mut busy = false;
    while let Some(first) = next_job(&mut rx, &mut busy) {
        batch::gather(first, &mut rx, &mut pending, Duration::MAX);
        batch::by_model(&mut pending, |group| {
            batch::score(group, &mut buffers, &batch_rows);
        });
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
