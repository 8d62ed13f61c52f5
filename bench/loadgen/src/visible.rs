//! The live read_committed reader of the end-to-end benchmark's "visible" latency
//! (`bench/e2e/run.sh`): it receives the predictions as a consumer of them would, and writes
//! one receipt per prediction, `partition offset received_ms` (its source record, from the
//! `fleet.source.partition` / `fleet.source.offset` headers, and the wall-clock time it
//! arrived), for `measure.py visible-match` to match with the source records' append times once
//! the run is over.
//!
//! It replaces the Python reader (`measure.py visible`) as run.sh's default because the reader
//! shares the two cores with the system under test and the broker: at 22,000 predictions/s
//! the Python one used about a quarter of a core (confluent-kafka's message objects, a header
//! dict per message), this one a small fraction of that (BENCHMARKS.md).
//!
//! Start it before the system. It writes `--ready-file` once it has received a first
//! prediction (run.sh's probe). run.sh writes `--done-file` when the load has ended
//! (`{"expect": predictions in all, ...}`); the reader stops on the first of: the expected
//! count received, `--idle-s` without a prediction after that, `--max-s` since it started.
//! The receipts are flushed as they come, so a reader killed by run.sh's last-resort SIGTERM
//! still leaves what it received. Prints one JSON object on stdout at the end.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use fleet_loadgen::cpu_seconds;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const SOURCE_PARTITION: &str = "fleet.source.partition";
const SOURCE_OFFSET: &str = "fleet.source.offset";
/// How often the receipts are flushed and the done file looked for.
const CHECK_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Parser)]
#[command(about = "Live read_committed reader of the predictions (end-to-end benchmark)")]
struct Args {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    pred_topic: String,
    /// Where the receipts go: one line `partition offset received_ms` per prediction.
    #[arg(long)]
    receipts: PathBuf,
    /// Written once a first prediction was received.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Written by the caller when the load ended: `{"expect": N, ...}`.
    #[arg(long)]
    done_file: PathBuf,
    /// Stop this long without a prediction after the load ended.
    #[arg(long, default_value_t = 10.0)]
    idle_s: f64,
    /// Hard deadline from the start.
    #[arg(long, default_value_t = 300.0)]
    max_s: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        // Required by the client; `assign` joins no group.
        .set("group.id", "bench-e2e-visible")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1")
        .create()
        .context("creating the consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&args.pred_topic), Duration::from_secs(30))
        .context("reading the predictions topic's metadata")?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len() as i32);
    if partitions == 0 {
        bail!("{} has no partitions", args.pred_topic);
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(&args.pred_topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let mut receipts = BufWriter::with_capacity(
        1 << 20,
        File::create(&args.receipts).context("creating the receipts file")?,
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.max_s);
    let idle = Duration::from_secs_f64(args.idle_s);
    let (mut received, mut unmatched) = (0u64, 0u64);
    let mut expect: Option<u64> = None;
    let mut last_new = start;
    let mut next_check = start;
    let stopped = loop {
        // Returns at once with a queued record, else on the first to arrive; then everything
        // queued is taken without waiting.
        let mut got = 0;
        let mut next = consumer.poll(Duration::from_millis(50));
        while let Some(message) = next {
            let message = message.context("reading the predictions")?;
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
            match source_of(&message) {
                Some((partition, offset)) => {
                    writeln!(receipts, "{partition} {offset} {now_ms}")?;
                    got += 1;
                }
                None => unmatched += 1,
            }
            next = consumer.poll(Duration::ZERO);
        }
        let now = Instant::now();
        if got > 0 {
            if received == 0
                && let Some(ready) = &args.ready_file
            {
                std::fs::write(ready, "ready\n")?;
            }
            received += got;
            last_new = now;
        }
        if now >= next_check {
            next_check = now + CHECK_EVERY;
            receipts.flush()?;
            if expect.is_none()
                && let Ok(text) = std::fs::read_to_string(&args.done_file)
            {
                let done: serde_json::Value = serde_json::from_str(&text)?;
                expect = done["expect"].as_u64();
                last_new = last_new.max(now);
            }
        }
        match expect {
            Some(n) if received + unmatched >= n => break "count",
            Some(_) if now.duration_since(last_new) > idle => break "idle",
            _ if now > deadline => break "deadline",
            _ => {}
        }
    };
    receipts.flush()?;
    let summary = serde_json::json!({
        "reader": "fleet-visible",
        "received": received + unmatched,
        "unmatched": unmatched,
        "stopped": stopped,
        "reader_s": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "reader_cpu_s": cpu_seconds().map(|s| (s * 100.0).round() / 100.0),
    });
    println!("{summary}");
    Ok(())
}

/// The prediction's source record, from its provenance headers.
fn source_of(message: &impl Message) -> Option<(i32, i64)> {
    let headers = message.headers()?;
    let value = |key: &str| -> Option<&str> {
        let header = headers.iter().find(|h| h.key == key)?;
        std::str::from_utf8(header.value?).ok()
    };
    Some((
        value(SOURCE_PARTITION)?.parse().ok()?,
        value(SOURCE_OFFSET)?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

    use super::*;

    fn message(headers: &[(&str, &str)]) -> OwnedMessage {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        });
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            None,
            "fs.pred".to_owned(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        )
    }

    #[test]
    fn the_source_comes_from_the_provenance_headers() {
        let m = message(&[
            ("fleet.model.name", "engine-rul"),
            (SOURCE_PARTITION, "2"),
            (SOURCE_OFFSET, "123456789012"),
        ]);
        assert_eq!(source_of(&m), Some((2, 123_456_789_012)));
    }

    #[test]
    fn a_prediction_without_both_headers_has_no_source() {
        assert_eq!(source_of(&message(&[(SOURCE_PARTITION, "2")])), None);
        assert_eq!(source_of(&message(&[(SOURCE_OFFSET, "5")])), None);
        assert_eq!(
            source_of(&message(&[(SOURCE_PARTITION, "x"), (SOURCE_OFFSET, "5")])),
            None
        );
    }
}
