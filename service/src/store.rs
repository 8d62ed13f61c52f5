//! The live per-aircraft state, shared by the streaming path (which owns the writes) and the
//! HTTP API (which reads, and scores hypotheticals on copies).
//!
//! Sharded by tail so that readers and the writer rarely meet on one lock; each lock is held
//! for one `apply` (tens of nanoseconds) or one clone of a state (a few KiB).

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use fleet_features::TailState;
use serde::Serialize;

use crate::alerts::OpenEpisodes;
use crate::fleet::history::Recent;
use crate::prediction::Prediction;

pub mod state_info;

const SHARDS: usize = 64;

/// Where the newest event applied to a tail came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One aircraft: its state, where its last event came from, its latest predictions.
#[derive(Debug, Clone, Default)]
pub struct TailEntry {
    pub state: TailState,
    /// The input partition that owns this tail (both input topics are co-partitioned).
    pub partition: Option<i32>,
    pub last_source: Option<SourceRef>,
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Latest prediction per model, in the order the models first scored this tail.
    pub predictions: Vec<Prediction>,
    /// Open alert episodes, by rule (durable: the changelog holds them).
    pub alerts: OpenEpisodes,
    /// `alerts` changed since the changelog last got them.
    pub alerts_changed: bool,
    /// Bumped by every change of `predictions`, `alerts` or `partition` (with the state's
    /// event count and `last_applied_at`, it tells the fleet view which rows changed).
    pub revision: u64,
}

impl TailEntry {
    /// Keeps `prediction` as its model's latest for this tail.
    pub fn set_latest(&mut self, prediction: Prediction) {
        self.revision += 1;
        match self
            .predictions
            .iter_mut()
            .find(|p| p.model == prediction.model)
        {
            Some(latest) => *latest = prediction,
            None => self.predictions.push(prediction),
        }
    }

    /// The latest prediction from a feature set (of the first model that scored the tail
    /// from it).
    pub fn latest_of(&self, feature_set: &str) -> Option<&Prediction> {
        self.predictions
            .iter()
            .find(|p| *p.feature_set == *feature_set)
    }
}

/// What a reader finds for a tail.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<TailEntry>),
    /// The tail's partition (or, for a tail not held, possibly its partition) is being restored
    /// from the changelog: its state is not complete yet.
    Restoring,
    Unknown,
}

/// What the store holds per tail: the entry, and apart from it (a reader's copy of the entry
/// does not copy it) the recent predictions of the fleet view's trends.
#[derive(Debug, Default)]
struct Slot {
    entry: TailEntry,
    recent: Recent,
}

#[derive(Debug)]
pub struct StateStore {
    shards: Vec<Mutex<HashMap<String, Slot>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Partitions whose aircraft are being restored from the changelog.
    restoring: Mutex<BTreeSet<i32>>,
}

impl Default for StateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl StateStore {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            restoring: Mutex::new(BTreeSet::new()),
        }
    }

    /// Marks `partitions` as restoring (their tails answer [`Lookup::Restoring`]) or restored.
    pub fn set_restoring(&self, partitions: &[i32], restoring: bool) {
        let mut set = self.restoring.lock().unwrap_or_else(|p| p.into_inner());
        for p in partitions {
            if restoring {
                set.insert(*p);
            } else {
                set.remove(p);
            }
        }
    }

    /// The partitions being restored now.
    pub fn restoring(&self) -> Vec<i32> {
        let set = self.restoring.lock().unwrap_or_else(|p| p.into_inner());
        set.iter().copied().collect()
    }

    /// A copy of the tail's entry for a reader: [`Lookup::Restoring`] while its partition is
    /// being restored, and for a tail not held while any partition is (it may be one of them:
    /// the partition of a tail is the producer's choice, not known here).
    pub fn lookup(&self, tail: &str) -> Lookup {
        let entry = self.get(tail);
        let restoring = self.restoring.lock().unwrap_or_else(|p| p.into_inner());
        match entry {
            Some(entry) if entry.partition.is_some_and(|p| restoring.contains(&p)) => {
                Lookup::Restoring
            }
            Some(entry) => Lookup::Found(Box::new(entry)),
            None if restoring.is_empty() => Lookup::Unknown,
            None => Lookup::Restoring,
        }
    }

    /// Replaces the tail's state and open alert episodes with those read from the changelog of
    /// `partition` (its latest predictions are kept, if the tail was held).
    pub fn restore(&self, tail: &str, state: TailState, alerts: OpenEpisodes, partition: i32) {
        self.with_entry(tail, |entry| {
            entry.state = state;
            entry.alerts = alerts;
            entry.alerts_changed = false;
            entry.partition = Some(partition);
            entry.revision += 1;
        });
    }

    /// Forgets a tail (a changelog tombstone).
    pub fn remove(&self, tail: &str) {
        let mut shard = self.shard(tail).lock().unwrap_or_else(|p| p.into_inner());
        shard.remove(tail);
    }

    fn shard(&self, tail: &str) -> &Mutex<HashMap<String, Slot>> {
        &self.shards[(self.hasher.hash_one(tail) as usize) % SHARDS]
    }

    /// Runs `f` on the tail's entry, creating it if needed.
    pub fn with_entry<R>(&self, tail: &str, f: impl FnOnce(&mut TailEntry) -> R) -> R {
        self.with_recent(tail, |entry, _| f(entry))
    }

    /// Runs `f` on the tail's entry and its recent predictions, creating them if needed.
    pub fn with_recent<R>(
        &self,
        tail: &str,
        f: impl FnOnce(&mut TailEntry, &mut Recent) -> R,
    ) -> R {
        let mut shard = self.shard(tail).lock().unwrap_or_else(|p| p.into_inner());
        let slot = match shard.get_mut(tail) {
            Some(slot) => slot,
            None => shard.entry(tail.to_owned()).or_default(),
        };
        f(&mut slot.entry, &mut slot.recent)
    }

    /// Runs `f` on the tail's recent predictions if the tail is known.
    pub fn read_recent<R>(&self, tail: &str, f: impl FnOnce(&Recent) -> R) -> Option<R> {
        let shard = self.shard(tail).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(tail).map(|slot| f(&slot.recent))
    }

    /// Runs `f` on the tail's entry, for a change, if the tail is known.
    pub fn update<R>(&self, tail: &str, f: impl FnOnce(&mut TailEntry) -> R) -> Option<R> {
        let mut shard = self.shard(tail).lock().unwrap_or_else(|p| p.into_inner());
        shard.get_mut(tail).map(|slot| f(&mut slot.entry))
    }

    /// Runs `f` on the tail's entry if the tail is known.
    pub fn read<R>(&self, tail: &str, f: impl FnOnce(&TailEntry) -> R) -> Option<R> {
        let shard = self.shard(tail).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(tail).map(|slot| f(&slot.entry))
    }

    /// A copy of the tail's entry, if the tail is known.
    pub fn get(&self, tail: &str) -> Option<TailEntry> {
        let shard = self.shard(tail).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(tail).map(|slot| slot.entry.clone())
    }

    /// Forgets every tail owned by one of `partitions` (after they were revoked).
    pub fn drop_partitions(&self, partitions: &[i32]) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = shard.len();
            shard.retain(|_, s| s.entry.partition.is_none_or(|p| !partitions.contains(&p)));
            dropped += before - shard.len();
        }
        dropped
    }

    /// Number of tails held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every entry (one shard locked at a time); for summaries, not hot paths.
    pub fn for_each(&self, mut f: impl FnMut(&str, &TailEntry)) {
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (tail, slot) in shard.iter() {
                f(tail, &slot.entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restoring_partition_hides_its_tails_and_unknown_ones() {
        let store = StateStore::new();
        store.restore("N1", TailState::new(), OpenEpisodes::new(), 1);
        store.restore("N2", TailState::new(), OpenEpisodes::new(), 2);
        assert!(matches!(store.lookup("N1"), Lookup::Found(_)));
        assert!(matches!(store.lookup("N9"), Lookup::Unknown));

        store.set_restoring(&[2], true);
        assert!(matches!(store.lookup("N1"), Lookup::Found(_)));
        assert!(matches!(store.lookup("N2"), Lookup::Restoring));
        assert!(matches!(store.lookup("N9"), Lookup::Restoring));
        assert_eq!(store.restoring(), vec![2]);

        store.set_restoring(&[2], false);
        assert!(matches!(store.lookup("N2"), Lookup::Found(_)));
        assert!(matches!(store.lookup("N9"), Lookup::Unknown));
        store.remove("N2");
        assert!(matches!(store.lookup("N2"), Lookup::Unknown));
    }
}
