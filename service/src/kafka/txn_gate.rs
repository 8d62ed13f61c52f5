//! Which transaction a batch's outputs belong to, and when they may be produced.
//!
//! Under exactly-once a commit does not stop the pipeline ([`super::commit`]): while the
//! transaction of epoch k is being committed (its outputs acknowledged, its offsets sent, its
//! commit), the pipeline goes on polling, applying and scoring the batches of epoch k+1. Their
//! outputs cannot be produced before the next transaction begins (a record sent between two
//! transactions is refused), so the output thread waits here until epoch k+1 is open. When a
//! commit fails instead, every epoch handed over so far is abandoned: the waiting batches are
//! dropped unproduced (the pipeline rewinds to the committed state and does them again).
//!
//! Under at-least-once there are no transactions and the gate stays open: every batch is of
//! epoch 1.

use std::sync::{Condvar, Mutex};

/// What the output thread does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Its transaction is open: produce it.
    Produce,
    /// Its transaction was aborted: drop it unproduced.
    Abandoned,
}

#[derive(Debug)]
struct Epochs {
    /// The epoch of the batches handed over now.
    dispatch: u64,
    /// The epoch whose transaction is open.
    open: u64,
    /// Every epoch up to this one is abandoned (0: none).
    abandoned_through: u64,
}

/// Epochs of transactions, shared by the pipeline thread (hands batches over in the
/// [`TxnGate::dispatch_epoch`], moves on at each commit), the commit (opens the next) and the
/// output thread (waits).
#[derive(Debug)]
pub struct TxnGate {
    epochs: Mutex<Epochs>,
    changed: Condvar,
}

impl Default for TxnGate {
    fn default() -> Self {
        Self {
            epochs: Mutex::new(Epochs {
                dispatch: 1,
                open: 1,
                abandoned_through: 0,
            }),
            changed: Condvar::new(),
        }
    }
}

impl TxnGate {
    fn epochs(&self) -> std::sync::MutexGuard<'_, Epochs> {
        self.epochs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The epoch of the batches handed over now.
    pub fn dispatch_epoch(&self) -> u64 {
        self.epochs().dispatch
    }

    /// A commit of everything handed over so far starts: batches handed over from now on are
    /// of the next epoch, which is returned. The epoch committed is the one before it.
    pub fn next_epoch(&self) -> u64 {
        let mut epochs = self.epochs();
        epochs.dispatch += 1;
        epochs.dispatch
    }

    /// The transaction of `epoch` has begun: its batches may be produced. Never closes a later
    /// epoch already open.
    pub fn open(&self, epoch: u64) {
        let mut epochs = self.epochs();
        epochs.open = epochs.open.max(epoch);
        drop(epochs);
        self.changed.notify_all();
    }

    /// The open transaction is being aborted: every batch handed over so far and not produced
    /// yet is dropped. The next transaction's batches are of a new epoch ([`TxnGate::restart`]).
    pub fn abandon_handed_over(&self) {
        let mut epochs = self.epochs();
        epochs.abandoned_through = epochs.dispatch;
        drop(epochs);
        self.changed.notify_all();
    }

    /// After an abort, once the next transaction has begun: batches handed over from now on
    /// are of a new epoch, open at once.
    pub fn restart(&self) {
        let mut epochs = self.epochs();
        epochs.dispatch = epochs.dispatch.max(epochs.abandoned_through) + 1;
        epochs.open = epochs.dispatch;
        drop(epochs);
        self.changed.notify_all();
    }

    /// Waits until a batch of `epoch` may be produced, or is abandoned.
    pub fn wait(&self, epoch: u64) -> Pass {
        let epochs = self.epochs();
        let epochs = self
            .changed
            .wait_while(epochs, |e| e.abandoned_through < epoch && e.open < epoch)
            .unwrap_or_else(|p| p.into_inner());
        if epochs.abandoned_through >= epoch {
            Pass::Abandoned
        } else {
            Pass::Produce
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_batch_of_the_next_epoch_waits_for_its_transaction() {
        let gate = Arc::new(TxnGate::default());
        assert_eq!(gate.wait(gate.dispatch_epoch()), Pass::Produce);
        let next = gate.next_epoch();
        let (passed, pass) = std::sync::mpsc::channel();
        {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || passed.send(gate.wait(next)));
        }
        assert!(
            pass.recv_timeout(Duration::from_millis(50)).is_err(),
            "produced before its transaction began"
        );
        gate.open(next);
        assert_eq!(pass.recv().unwrap(), Pass::Produce);
        let later = gate.next_epoch();
        gate.open(later);
        gate.open(next); // late news of an earlier transaction
        let (passed, pass) = std::sync::mpsc::channel();
        std::thread::spawn(move || passed.send(gate.wait(later)));
        assert_eq!(
            pass.recv_timeout(Duration::from_secs(5)),
            Ok(Pass::Produce),
            "an earlier epoch's opening closed a later one"
        );
    }

    #[test]
    fn an_abort_drops_every_epoch_handed_over_and_the_next_opens_at_once() {
        let gate = Arc::new(TxnGate::default());
        let committing = gate.dispatch_epoch();
        let next = gate.next_epoch();
        let waiting = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || gate.wait(next))
        };
        gate.abandon_handed_over();
        assert_eq!(waiting.join().unwrap(), Pass::Abandoned);
        assert_eq!(gate.wait(committing), Pass::Abandoned);
        gate.restart();
        let fresh = gate.dispatch_epoch();
        assert!(fresh > next);
        assert_eq!(gate.wait(fresh), Pass::Produce);
    }
}
