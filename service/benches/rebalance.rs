//! Rebalance pauses: the classic protocol's eager `range` assignment against KIP-848's
//! incremental one (`[kafka] group_protocol`), on a real broker, exactly-once.
//!
//! ```sh
//! eval "$(scripts/kafka-broker.sh start)"
//! KAFKA_BOOTSTRAP=$BOOTSTRAP cargo bench -p fleetscore --bench rebalance
//! ```
//!
//! Each run: fresh topics (3 partitions) and group; instance `a` consumes alone; the C-MAPSS
//! FD001 events (20,631, 100 engines interleaved) are produced at RATE events/s (default 1,000);
//! JOIN_S seconds in (default 6) instance `b` joins, LEAVE_S seconds in (default 13) `a` leaves
//! (SIGTERM). When every event has its prediction, the predictions (read_committed) are read
//! back, and for each partition the longest gap between consecutive predictions (their
//! timestamps, set when produced) that begins between the join and the leave, and in the 10 s
//! after the leave, is taken (from half a second before each: the last prediction before it). A
//! partition that keeps its owner through a rebalance should not pause; one that moves pauses
//! while it changes hands. Prints, per protocol, the medians over RUNS runs (default 3) of the
//! longest gap of the partitions that stayed and of those that moved, and the gap between
//! predictions when nothing happens (the 3 s before the join), as the yardstick.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/kafka/mod.rs"]
mod kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka::{Service, Topics};
use rdkafka::Message;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The longest gaps of one run, in milliseconds.
#[derive(Debug, Default)]
struct Gaps {
    quiet: i64,
    join_stayed: i64,
    join_moved: i64,
    leave_stayed: i64,
    leave_moved: i64,
}

/// Longest gap between consecutive timestamps of `ts` (sorted) that starts in `[from, to)`.
fn longest_gap(ts: &[i64], from: i64, to: i64) -> i64 {
    ts.windows(2)
        .filter(|w| w[0] >= from && w[0] < to)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0)
}

/// A gap that begins this long before a change (the last prediction before it) is the change's.
const LEAD_MS: i64 = 500;

/// Input partition numbers `service` was assigned by its log (either input topic).
fn partitions_of(service: &Service) -> BTreeSet<i32> {
    service.assignment().into_iter().map(|(_, p)| p).collect()
}

fn run(bootstrap: &str, protocol: &str, events: &std::path::Path, run: u64) -> Gaps {
    let rate = env_or("RATE", 1000);
    let join = Duration::from_secs(env_or("JOIN_S", 6));
    let leave = Duration::from_secs(env_or("LEAVE_S", 13));
    let topics = Topics::new(&format!("rebalance-{protocol}-{run}"));
    kafka::create_topics_replicated(bootstrap, &topics, 1);
    let dir = tempfile::tempdir().unwrap();
    let start = |id: &str| {
        let d = dir.path().join(id);
        std::fs::create_dir_all(&d).unwrap();
        let config = kafka::config_with_kafka(
            &d,
            bootstrap,
            &topics,
            &common::fixtures(),
            "",
            &format!("group_protocol = \"{protocol}\"\ninstance_id = \"{id}\"\n"),
        );
        Service::start(&config, &d.join("serve.log"))
    };
    let mut a = start("a");
    a.wait_for_log("state restored", Duration::from_secs(60));
    let began = Instant::now();
    let mut producer = kafka::produce(bootstrap, &topics, events, Some(rate as u32));
    std::thread::sleep(join.saturating_sub(began.elapsed()));
    let joined_at = now_ms();
    let mut b = start("b");
    b.wait_for_log("partitions assigned", Duration::from_secs(60));
    let moved_at_join = partitions_of(&b);
    std::thread::sleep(leave.saturating_sub(began.elapsed()));
    let kept_by_b = partitions_of(&b);
    let left_at = now_ms();
    a.signal("-TERM");
    assert!(a.wait(Duration::from_secs(60)).success(), "a's stop");
    assert!(producer.wait().unwrap().success(), "the producer");
    let ids = kafka::event_ids(events);
    let all = kafka::wait_for_every_event(bootstrap, &topics, &ids, Duration::from_secs(180), &b);
    b.signal("-TERM");
    b.wait(Duration::from_secs(60));
    let changelog = topics.changelog();
    let mut names = topics.all().to_vec();
    names.push(&changelog);
    kafka::delete_topics(bootstrap, &names);

    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in &all {
        if let Some(ts) = m.timestamp().to_millis() {
            by_partition.entry(m.partition()).or_default().push(ts);
        }
    }
    let window = 10_000;
    let mut gaps = Gaps::default();
    for (p, ts) in &mut by_partition {
        ts.sort_unstable();
        gaps.quiet = gaps.quiet.max(longest_gap(
            ts,
            joined_at - 3_000 - LEAD_MS,
            joined_at - LEAD_MS,
        ));
        // Up to the leave: the windows must not overlap.
        let at_join = longest_gap(
            ts,
            joined_at - LEAD_MS,
            (joined_at + window).min(left_at - LEAD_MS),
        );
        if moved_at_join.contains(p) {
            gaps.join_moved = gaps.join_moved.max(at_join);
        } else {
            gaps.join_stayed = gaps.join_stayed.max(at_join);
        }
        // At the leave, `a`'s partitions move to `b`; `b`'s stay.
        let at_leave = longest_gap(ts, left_at - LEAD_MS, left_at + window);
        if kept_by_b.contains(p) {
            gaps.leave_stayed = gaps.leave_stayed.max(at_leave);
        } else {
            gaps.leave_moved = gaps.leave_moved.max(at_leave);
        }
    }
    eprintln!("rebalance: {protocol} run {run}: {gaps:?} (b got {moved_at_join:?})");
    gaps
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let Some(bootstrap) = std::env::var("KAFKA_BOOTSTRAP")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        eprintln!("rebalance: KAFKA_BOOTSTRAP is not set (scripts/kafka-broker.sh start)");
        return;
    };
    let runs = env_or("RUNS", 3);
    let dir = tempfile::tempdir().unwrap();
    let events = kafka::cmapss_events(dir.path(), None);
    println!("| protocol | quiet | join: stayed | join: moved | leave: stayed | leave: moved |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for protocol in ["classic", "consumer"] {
        let all: Vec<Gaps> = (0..runs)
            .map(|r| run(&bootstrap, protocol, &events, r))
            .collect();
        let m = |f: fn(&Gaps) -> i64| median(all.iter().map(f).collect());
        println!(
            "| {protocol} | {} ms | {} ms | {} ms | {} ms | {} ms |",
            m(|g| g.quiet),
            m(|g| g.join_stayed),
            m(|g| g.join_moved),
            m(|g| g.leave_stayed),
            m(|g| g.leave_moved),
        );
    }
}
