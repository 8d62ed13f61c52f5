//! What the pipeline thread is doing, and a watchdog that says so when one step takes long.
//!
//! The pipeline thread marks each step it enters ([`Step`]); a watchdog thread looks once a
//! second and, when a step other than polling has lasted [`STALL_AFTER`], logs a warning
//! naming it (again every [`STALL_AFTER`] while it lasts) and counts it in
//! `fleetscore_pipeline_stalls_total{step}`. A service that stops producing without an error
//! (waiting on a broker that does not answer, say) then says where it waits, instead of
//! going quiet.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::metrics::names;

/// A step of the pipeline thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// Waiting for records (bounded by the batch window): never a stall.
    Polling = 0,
    /// Waiting for the scoring thread to take a batch.
    HandingOver = 1,
    /// Waiting for acknowledgements: too many batches in flight.
    BackPressure = 2,
    /// Committing: acknowledgements, changelog, offsets, transaction.
    Committing = 3,
    /// Aborting and rewinding to the committed offsets.
    Rewinding = 4,
    /// Restoring partitions' aircraft from the changelog.
    Restoring = 5,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Polling => "polling",
            Step::HandingOver => "handing_over",
            Step::BackPressure => "back_pressure",
            Step::Committing => "committing",
            Step::Rewinding => "rewinding",
            Step::Restoring => "restoring",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Step::HandingOver,
            2 => Step::BackPressure,
            3 => Step::Committing,
            4 => Step::Rewinding,
            5 => Step::Restoring,
            _ => Step::Polling,
        }
    }
}

/// How long a step may last before the watchdog warns.
pub const STALL_AFTER: Duration = Duration::from_secs(15);

/// The step the pipeline thread is in, and since when; shared with the rebalance callbacks.
#[derive(Debug)]
pub struct Steps {
    origin: Instant,
    step: AtomicU8,
    /// Milliseconds from `origin` to when `step` was entered.
    since_ms: AtomicU64,
    /// Bumped on every entry, so that the watchdog tells one long step from two in a row.
    entries: AtomicU64,
}

impl Default for Steps {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            step: AtomicU8::new(Step::Polling as u8),
            since_ms: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        }
    }
}

impl Steps {
    /// Enters `step`; the returned guard goes back to the step it replaced when dropped.
    pub fn enter(&self, step: Step) -> StepGuard<'_> {
        let previous = Step::from_u8(self.step.load(Ordering::Relaxed));
        self.set(step);
        StepGuard {
            steps: self,
            previous,
        }
    }

    fn set(&self, step: Step) {
        self.since_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.step.store(step as u8, Ordering::Release);
    }

    /// The current step, how long it has lasted, and its entry number.
    fn current(&self) -> (Step, Duration, u64) {
        let step = Step::from_u8(self.step.load(Ordering::Acquire));
        let since = Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        let entry = self.entries.load(Ordering::Relaxed);
        (step, self.origin.elapsed().saturating_sub(since), entry)
    }
}

/// Leaves a step (see [`Steps::enter`]).
#[derive(Debug)]
pub struct StepGuard<'a> {
    steps: &'a Steps,
    previous: Step,
}

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        self.steps.set(self.previous);
    }
}

/// Starts the watchdog thread; it ends when `steps` is dropped or `stop` is set.
pub fn start(steps: &Arc<Steps>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let steps = Arc::downgrade(steps);
    std::thread::Builder::new()
        .name("kafka-watchdog".to_owned())
        .spawn(move || watch(&steps, &stop))
        .map(drop)
}

fn watch(steps: &Weak<Steps>, stop: &AtomicBool) {
    let mut warned = None;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_secs(1));
        let Some(steps) = steps.upgrade() else {
            return;
        };
        let (step, lasted, entry) = steps.current();
        let Some(new) = warning(warned, step, lasted, entry) else {
            continue;
        };
        if new {
            metrics::counter!(names::PIPELINE_STALLS, "step" => step.name()).increment(1);
        }
        tracing::warn!(
            step = step.name(),
            seconds = lasted.as_secs(),
            "the Kafka pipeline has been in one step for long (waiting on the brokers?)"
        );
        warned = Some((entry, lasted));
    }
}

/// Whether to warn about `step` (entered as `entry`, lasting `lasted`) given the last warning
/// (`warned`: its entry, and how long the step had lasted then): `Some(true)` for a new stall,
/// `Some(false)` for one that goes on [`STALL_AFTER`] after its last warning.
fn warning(
    warned: Option<(u64, Duration)>,
    step: Step,
    lasted: Duration,
    entry: u64,
) -> Option<bool> {
    if step == Step::Polling || lasted < STALL_AFTER {
        return None;
    }
    match warned {
        Some((e, at)) if e == entry => (lasted >= at + STALL_AFTER).then_some(false),
        _ => Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_returns_to_the_step_it_replaced() {
        let steps = Steps::default();
        {
            let _commit = steps.enter(Step::Committing);
            assert_eq!(steps.current().0, Step::Committing);
            {
                let _restore = steps.enter(Step::Restoring);
                assert_eq!(steps.current().0, Step::Restoring);
            }
            assert_eq!(steps.current().0, Step::Committing);
        }
        assert_eq!(steps.current().0, Step::Polling);
    }

    #[test]
    fn a_long_step_is_warned_about_once_per_stall_after() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(warning(None, Step::Committing, s(14), 7), None);
        assert_eq!(warning(None, Step::Polling, s(600), 7), None);
        assert_eq!(warning(None, Step::Committing, s(15), 7), Some(true));
        assert_eq!(warning(Some((7, s(15))), Step::Committing, s(29), 7), None);
        assert_eq!(
            warning(Some((7, s(15))), Step::Committing, s(30), 7),
            Some(false)
        );
        // Another entry is another stall, even of the same step.
        assert_eq!(
            warning(Some((7, s(15))), Step::Committing, s(16), 8),
            Some(true)
        );
    }

    #[test]
    fn every_entry_is_a_new_step_even_of_the_same_kind() {
        let steps = Steps::default();
        let first = {
            let _g = steps.enter(Step::Committing);
            steps.current().2
        };
        let _g = steps.enter(Step::Committing);
        assert_ne!(steps.current().2, first);
    }
}
