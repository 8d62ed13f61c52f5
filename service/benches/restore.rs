//! Restore time: how long an instance takes to rebuild the state of AIRCRAFT aircraft (default
//! 30,000, about the world's airline fleet) from their changelog, on a real broker.
//!
//! ```sh
//! eval "$(scripts/kafka-broker.sh start)"
//! KAFKA_BOOTSTRAP=$BOOTSTRAP cargo bench -p fleetscore --bench restore
//! ```
//!
//! The states are real: every C-MAPSS FD001 engine's state after its whole history (its
//! 20-cycle windows and early-life baseline full), aircraft i taking engine i mod 100's state.
//! They are written to a fresh changelog topic (3 partitions, compacted), RECORDS_PER_AIRCRAFT
//! times each (1: a compacted changelog; more: the uncompacted tail of a busy one), then
//! restored RUNS times (default 5) with the service's own restore into a fresh store. Prints
//! the median, minimum and maximum seconds, records and bytes, and checks that every aircraft
//! came back with the state that was written.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use fleet_features::import::cmapss::{self, CmapssOptions};
use fleet_features::{Event, TailState};
use fleetscore::config::KafkaConfig;
use fleetscore::kafka::changelog;
use fleetscore::store::StateStore;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const PARTITIONS: i32 = 3;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every FD001 engine's state after its whole history, by unit.
fn engine_states() -> Vec<TailState> {
    let mut states: Vec<(String, TailState)> = Vec::new();
    cmapss::import(
        &fleet_features::data::cmapss_fd001(),
        &CmapssOptions::default(),
        |event: &Event| {
            let tail = event.tail().to_owned();
            match states.iter_mut().find(|(t, _)| *t == tail) {
                Some((_, state)) => {
                    state.apply(event);
                }
                None => {
                    let mut state = TailState::new();
                    state.apply(event);
                    states.push((tail, state));
                }
            }
            Ok(())
        },
    )
    .expect("reading C-MAPSS FD001");
    states.into_iter().map(|(_, s)| s).collect()
}

fn main() {
    let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP") else {
        eprintln!("restore bench: set KAFKA_BOOTSTRAP (scripts/kafka-broker.sh start); skipped");
        return;
    };
    // `cargo bench` passes `--bench`; nothing else to parse.
    let aircraft = env_or("AIRCRAFT", 30_000);
    let copies = env_or("RECORDS_PER_AIRCRAFT", 1);
    let runs = env_or("RUNS", 5);
    let engines = engine_states();
    let snapshots: Vec<Vec<u8>> = engines.iter().map(TailState::to_snapshot).collect();

    let mut config = KafkaConfig {
        brokers: bootstrap.clone(),
        group_id: format!("restore-bench-{}", std::process::id()),
        ..KafkaConfig::default()
    };
    config.changelog_topic = format!("{}-state-changelog", config.group_id);
    let topic = config.changelog();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let new = NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    for r in runtime
        .block_on(admin.create_topics(&[new], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut bytes = 0usize;
    for _ in 0..copies {
        for i in 0..aircraft {
            let tail = format!("BENCH-{i:05}");
            let snapshot = &snapshots[i % snapshots.len()];
            bytes += tail.len() + snapshot.len();
            producer
                .send(
                    BaseRecord::to(&topic)
                        .key(&tail)
                        .payload(snapshot)
                        .partition(i as i32 % PARTITIONS),
                )
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    println!(
        "restore bench: {aircraft} aircraft x {copies} records = {} records, {:.1} MB, mean snapshot {} bytes",
        aircraft * copies,
        bytes as f64 / 1e6,
        snapshots.iter().map(Vec::len).sum::<usize>() / snapshots.len()
    );

    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let stop = AtomicBool::new(false);
    let mut seconds = Vec::new();
    for run in 0..runs {
        let store = StateStore::new();
        let started = Instant::now();
        let report = changelog::restore(&config, &store, &partitions, &stop).unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        let records: u64 = report.values().map(|r| r.records).sum();
        assert_eq!(records as usize, aircraft * copies, "every record read");
        assert_eq!(store.len(), aircraft, "every aircraft restored");
        for i in [0, aircraft / 2, aircraft - 1] {
            let tail = format!("BENCH-{i:05}");
            let restored = store.read(&tail, |e| e.state.to_snapshot()).unwrap();
            assert_eq!(restored, snapshots[i % snapshots.len()], "{tail}");
        }
        println!("run {}: {elapsed:.3} s", run + 1);
        seconds.push(elapsed);
    }
    seconds.sort_by(f64::total_cmp);
    println!(
        "restore of {aircraft} aircraft ({copies} record(s) each): median {:.3} s, min {:.3} s, max {:.3} s over {runs} runs",
        seconds[seconds.len() / 2],
        seconds[0],
        seconds[seconds.len() - 1]
    );
}
