//! The fault tests' input: the real NASA C-MAPSS FD001 trajectories, replicated under distinct
//! tail prefixes and event ids until there are enough events, interleaved at random across
//! aircraft (each aircraft's events stay in order), with a malformed event now and then for the
//! dead-letter topic. Deterministic: the same size gives the same stream.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::Topics;

/// One malformed event after every this many valid ones (offset by half, so even a short stream
/// has one).
pub const MALFORMED_EVERY: usize = 1000;

/// Events in one copy of C-MAPSS FD001 (100 engines, one aircraft each).
pub const FD001_EVENTS: usize = 20_631;

/// A generated stream, as files in `dir`.
#[derive(Debug)]
pub struct Workload {
    /// Every record to produce, in order, one per line: `telemetry`, `schedule` (the input
    /// topic) or `malformed` (to the telemetry topic), a tab, the key (the tail), a tab, the
    /// value.
    pub records: PathBuf,
    /// The valid events alone, in the same order: what `fleetscore replay` reads.
    pub valid: PathBuf,
    pub valid_count: usize,
    /// Distinct aircraft among the valid events.
    pub tails: usize,
    /// The malformed values (undecodable JSON), each produced once.
    pub malformed: Vec<String>,
}

impl Workload {
    /// `events` valid events over `ceil(events / 20,631) × 100` aircraft (copy r of the data
    /// gives tails `P{r}-1` ..= `P{r}-100` and event ids `cmapss:FD001-r{r}:u{unit}:c{cycle}`,
    /// both from `fleetscore import cmapss`), plus `events / 1000` malformed ones.
    pub fn generate(dir: &Path, events: usize) -> Self {
        assert!(events > 0);
        std::fs::create_dir_all(dir).unwrap();
        let copies = events.div_ceil(FD001_EVENTS);
        // Each tail's events in file (event-time) order, with the input topic each goes to.
        let mut names: Vec<String> = Vec::new();
        let mut by_tail: Vec<Vec<(&str, String)>> = Vec::new();
        for copy in 1..=copies {
            let mut index = std::collections::HashMap::new();
            let file = import_copy(dir, copy);
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::remove_file(file).unwrap();
            for line in text.lines() {
                let event = fleet_features::Event::decode(line.as_bytes()).unwrap();
                let topic = match event {
                    fleet_features::Event::Telemetry(_) => "telemetry",
                    fleet_features::Event::Schedule(_) => "schedule",
                };
                let i = *index.entry(event.tail().to_owned()).or_insert_with(|| {
                    names.push(event.tail().to_owned());
                    by_tail.push(Vec::new());
                    by_tail.len() - 1
                });
                by_tail[i].push((topic, line.to_owned()));
            }
        }
        // A uniformly random interleaving: one slot per event, naming its tail, shuffled; each
        // slot then takes that tail's next event.
        let mut slots: Vec<u32> = by_tail
            .iter()
            .enumerate()
            .flat_map(|(i, lines)| std::iter::repeat_n(i as u32, lines.len()))
            .collect();
        let mut rng = SplitMix64(0x5eed_f1ee_7500_0013);
        for i in (1..slots.len()).rev() {
            slots.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        slots.truncate(events);

        let records = dir.join("records.tsv");
        let valid = dir.join("valid.jsonl");
        let mut records_out = BufWriter::new(std::fs::File::create(&records).unwrap());
        let mut valid_out = BufWriter::new(std::fs::File::create(&valid).unwrap());
        let mut next = vec![0usize; by_tail.len()];
        let mut seen = vec![false; by_tail.len()];
        let mut malformed = Vec::new();
        for (n, &slot) in slots.iter().enumerate() {
            let slot = slot as usize;
            let (topic, line) = &by_tail[slot][next[slot]];
            let tail = &names[slot];
            next[slot] += 1;
            seen[slot] = true;
            writeln!(records_out, "{topic}\t{tail}\t{line}").unwrap();
            writeln!(valid_out, "{line}").unwrap();
            if n % MALFORMED_EVERY == MALFORMED_EVERY / 2 {
                // Cut short: `malformed_json`. Keyed by the tail it names, so it travels with
                // that aircraft's events.
                let value = format!(
                    "{{\"schema\":\"fleet.telemetry.v1\",\"event_id\":\"malformed:{}\",\"tail\":\"{tail}\",\"cycle\":",
                    malformed.len(),
                );
                writeln!(records_out, "malformed\t{tail}\t{value}").unwrap();
                malformed.push(value);
            }
        }
        records_out.flush().unwrap();
        valid_out.flush().unwrap();
        Self {
            records,
            valid,
            valid_count: slots.len(),
            tails: seen.iter().filter(|s| **s).count(),
            malformed,
        }
    }

    /// Produces every record, in order, onto the input topics (keyed, murmur2 like the Java
    /// client, idempotent, `acks=all`), as fast as the brokers take them and `release` lets
    /// it; panics on a failure.
    pub fn produce(&self, bootstrap: &str, topics: &Topics, release: &Release) {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("partitioner", "murmur2_random")
            .create()
            .unwrap();
        let input = BufReader::new(std::fs::File::open(&self.records).unwrap());
        let mut valid = 0;
        for line in input.lines() {
            let line = line.unwrap();
            let mut fields = line.splitn(3, '\t');
            let (Some(kind), Some(key), Some(value)) =
                (fields.next(), fields.next(), fields.next())
            else {
                panic!("bad workload line: {line}");
            };
            let topic = match kind {
                "schedule" => &topics.schedule,
                "telemetry" | "malformed" => &topics.telemetry,
                _ => panic!("bad workload line: {line}"),
            };
            if kind != "malformed" {
                valid += 1;
                release.wait_for(valid);
            }
            let mut record = Some(BaseRecord::to(topic).key(key).payload(value));
            while let Some(r) = record.take() {
                if let Err((e, back)) = producer.send(r) {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "producing the workload: {e}"
                    );
                    // The local queue is full: wait for deliveries to drain it.
                    producer.poll(Duration::from_millis(10));
                    record = Some(back);
                }
            }
        }
        producer.flush(Duration::from_secs(120)).unwrap();
    }
}

/// How much of the stream may be produced so far, in valid events: the test moves it ahead
/// step by step, so each fault lands while events are still arriving, whatever the speed of
/// the machine.
#[derive(Debug, Default)]
pub struct Release {
    allowed: Mutex<usize>,
    raised: Condvar,
}

impl Release {
    /// Lets the first `n` valid events (and the malformed ones among them) go.
    pub fn up_to(&self, n: usize) {
        let mut allowed = self.allowed.lock().unwrap();
        *allowed = (*allowed).max(n);
        self.raised.notify_all();
    }

    /// Blocks until the first `n` valid events may go.
    fn wait_for(&self, n: usize) {
        let mut allowed = self.allowed.lock().unwrap();
        while *allowed < n {
            allowed = self.raised.wait(allowed).unwrap();
        }
    }
}

/// `fleetscore import cmapss` of FD001 as copy `copy`: a link to the data file named
/// `FD001-r{copy}` (the importer names event ids after the file) and tail prefix `P{copy}-`.
fn import_copy(dir: &Path, copy: usize) -> PathBuf {
    let data = fleet_features::data::cmapss_fd001();
    let name = data.file_name().unwrap().to_str().unwrap();
    let suffix = name
        .strip_prefix("train_FD001")
        .expect("the data file is train_FD001.txt[.gz]");
    let link = dir.join(format!("FD001-r{copy}{suffix}"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let out = dir.join(format!("copy-{copy}.jsonl"));
    let status = super::fleetscore()
        .args(["import", "cmapss"])
        .arg(&link)
        .args(["--tail-prefix", &format!("P{copy}-"), "-o"])
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "fleetscore import cmapss failed");
    out
}

/// A small deterministic generator (Steele, Lea and Flood's SplitMix64), so the workload does
/// not depend on a random-number crate's version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
