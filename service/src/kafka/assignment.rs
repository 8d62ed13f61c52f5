//! Which input partitions this consumer owns, and which records are still its to process.
//!
//! A record polled before a revocation of its partition must not be processed after it: the
//! revocation committed what was processed, and the partition's next owner (or this consumer,
//! when it comes back, from the committed offset) reads the record again. Each revocation
//! bumps an epoch; a record carries the epoch it was polled in.

use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Default)]
pub struct Assignment {
    assigned: HashSet<(String, i32)>,
    epoch: u64,
    /// The epoch of the latest revocation of each `(topic, partition)`.
    revoked_at: HashMap<(String, i32), u64>,
}

impl Assignment {
    /// The epoch to tag a record polled now with.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.assigned
            .iter()
            .any(|(t, p)| *p == partition && t == topic)
    }

    /// Whether a record of `(topic, partition)` polled in `epoch` may still be processed: the
    /// partition is assigned and was not revoked since.
    pub fn still_ours(&self, topic: &str, partition: i32, epoch: u64) -> bool {
        self.owns(topic, partition)
            && self
                .revoked_at
                .iter()
                .find(|((t, p), _)| *p == partition && t == topic)
                .is_none_or(|(_, revoked)| *revoked <= epoch)
    }

    pub fn assign(&mut self, partitions: &[(String, i32)]) {
        self.assigned.extend(partitions.iter().cloned());
    }

    pub fn revoke(&mut self, partitions: &[(String, i32)]) {
        self.epoch += 1;
        for tp in partitions {
            self.assigned.remove(tp);
            self.revoked_at.insert(tp.clone(), self.epoch);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.assigned.is_empty()
    }

    /// The partition numbers assigned (of either input topic: they are co-partitioned).
    pub fn numbers(&self) -> BTreeSet<i32> {
        self.assigned.iter().map(|(_, p)| *p).collect()
    }

    pub fn contains(&self, tp: &(String, i32)) -> bool {
        self.assigned.contains(tp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_polled_before_its_partition_was_revoked_is_not_ours() {
        let mut a = Assignment::default();
        let t0 = ("t".to_owned(), 0);
        let t1 = ("t".to_owned(), 1);
        a.assign(&[t0.clone(), t1.clone()]);
        let before = a.epoch();
        a.revoke(std::slice::from_ref(&t0));
        a.assign(std::slice::from_ref(&t0)); // came back
        assert!(
            !a.still_ours("t", 0, before),
            "polled before the revocation"
        );
        assert!(a.still_ours("t", 0, a.epoch()), "polled after it");
        assert!(
            a.still_ours("t", 1, before),
            "partition 1 was never revoked"
        );
        a.revoke(std::slice::from_ref(&t1));
        assert!(!a.still_ours("t", 1, a.epoch()), "not assigned");
        assert_eq!(a.numbers().into_iter().collect::<Vec<_>>(), vec![0]);
    }
}
