//! Load generator of the end-to-end benchmark (`bench/e2e/run.sh`): real C-MAPSS telemetry
//! events into a Kafka topic, keyed by tail, as fast as possible or at a fixed rate.
//!
//! The events are the lines of an event file (`fleetscore import cmapss`), repeated with a
//! distinct tail prefix per copy (`{tag}{copy:03}-`), exactly as `measure.py produce` makes
//! them. At a fixed rate, event `n` is due `n / rate` seconds after the start; the generator
//! sends whatever is due, then sleeps until the next event is due (1 ms at least), so the load
//! it offers stays on schedule to within a millisecond and costs little CPU (the Python
//! generator it replaces needed a third of a core at 30k events/s and fell behind by up to
//! 25 ms, then caught up in a burst that the system under test had to absorb).
//!
//! Prints one JSON object on stdout, the same as `measure.py produce`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use fleet_loadgen::cpu_seconds;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

const BASE_TAIL: &str = "\"tail\":\"CMAPSS-";
/// Tails are at most 16 characters; the unit number takes up to 3.
const MAX_PREFIX: usize = 13;
/// The shortest sleep between sends at a fixed rate.
const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Parser)]
#[command(about = "Real C-MAPSS events into Kafka at a fixed rate (end-to-end benchmark)")]
struct Args {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// C-MAPSS event file (JSON lines from `fleetscore import cmapss`).
    #[arg(long)]
    events: PathBuf,
    /// Tail prefix stem: copy k of the file gets tails `{tag}{k:03}-{unit}`.
    #[arg(long)]
    tag: String,
    /// Stop after this many events (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Stop after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// Events per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, default_value = "1")]
    linger_ms: String,
    /// Give every event a W3C `traceparent` header (a trace of its own), sampled (flags 01)
    /// on every Nth event and not sampled on the others, as a traced producer would; 0: no
    /// header.
    #[arg(long, default_value_t = 0)]
    traceparent_sampled_every: u64,
}

/// One line of the base file: the text around its tail's unit number.
#[derive(Debug)]
struct BaseEvent {
    unit: String,
    /// The line up to and including `"tail":"` ...
    head: String,
    /// ... and from the unit number on.
    tail: String,
}

/// The base file's events, repeated with a tail prefix per copy.
#[derive(Debug)]
struct Events {
    base: Vec<BaseEvent>,
    tag: String,
    copy: usize,
    next: usize,
    prefix: String,
}

impl Events {
    fn open(path: &Path, tag: &str) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let mut base = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some(at) = line.find(BASE_TAIL) else {
                bail!(
                    "{}: expected C-MAPSS telemetry with tails CMAPSS-N",
                    path.display()
                );
            };
            let value: serde_json::Value = serde_json::from_str(line)?;
            let unit = value["tail"]
                .as_str()
                .and_then(|t| t.strip_prefix("CMAPSS-"))
                .context("an event without a CMAPSS-N tail")?
                .to_owned();
            let split = at + "\"tail\":\"".len();
            base.push(BaseEvent {
                unit,
                head: line[..split].to_owned(),
                tail: line[split + "CMAPSS-".len()..].to_owned(),
            });
        }
        if base.is_empty() {
            bail!("{}: no events", path.display());
        }
        let mut events = Self {
            base,
            tag: tag.to_owned(),
            copy: 0,
            next: 0,
            prefix: String::new(),
        };
        events.set_prefix()?;
        Ok(events)
    }

    fn set_prefix(&mut self) -> anyhow::Result<()> {
        self.prefix = format!("{}{:03}-", self.tag, self.copy);
        if self.prefix.len() > MAX_PREFIX {
            bail!(
                "tail prefix `{}` too long for 16-character tails",
                self.prefix
            );
        }
        Ok(())
    }

    /// The next (key, value), written into the two buffers.
    fn next_into(&mut self, key: &mut String, value: &mut String) -> anyhow::Result<()> {
        if self.next == self.base.len() {
            self.next = 0;
            self.copy += 1;
            self.set_prefix()?;
        }
        let e = &self.base[self.next];
        self.next += 1;
        key.clear();
        key.push_str(&self.prefix);
        key.push_str(&e.unit);
        value.clear();
        value.push_str(&e.head);
        value.push_str(&self.prefix);
        value.push_str(&e.tail);
        Ok(())
    }
}

/// Counts failed deliveries (librdkafka's own thread).
#[derive(Debug, Default)]
struct Failures(Arc<AtomicU64>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.count == 0 && args.seconds <= 0.0 {
        bail!("give --count or --seconds (or both)");
    }
    let mut events = Events::open(&args.events, &args.tag)?;
    let failed = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Failures> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", &args.linger_ms)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        // Retried batches (a topic created a moment ago has no leader yet) must not land after
        // later ones: a tail's events out of order are ignored by the systems under test (seen
        // once: 4,109 events of a throughput run never scored, the run waited for them).
        .set("enable.idempotence", "true")
        .create_with_context(Failures(failed.clone()))
        .context("creating the producer")?;

    let limit = (args.count > 0).then_some(args.count);
    let deadline = (args.seconds > 0.0).then(|| Duration::from_secs_f64(args.seconds));
    let (mut key, mut value, mut traceparent) = (String::new(), String::new(), String::new());
    let mut sent: u64 = 0;
    let mut behind_max = Duration::ZERO;
    let cpu_start = cpu_seconds().unwrap_or(0.0);
    let wall_start = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let start = Instant::now();
    'run: loop {
        let elapsed = start.elapsed();
        if deadline.is_some_and(|d| elapsed >= d) {
            break;
        }
        // Everything due by now (all of it when there is no rate), then sleep to the next.
        let due_by_now = if args.rate > 0.0 {
            (elapsed.as_secs_f64() * args.rate).floor() as u64 + 1
        } else {
            u64::MAX
        };
        while sent < due_by_now {
            if limit.is_some_and(|l| sent >= l) {
                break 'run;
            }
            if args.rate > 0.0 {
                let due = Duration::from_secs_f64(sent as f64 / args.rate);
                behind_max = behind_max.max(start.elapsed().saturating_sub(due));
            }
            events.next_into(&mut key, &mut value)?;
            let mut record = BaseRecord::to(&args.topic).key(&key).payload(&value);
            if args.traceparent_sampled_every > 0 {
                let flags = if sent.is_multiple_of(args.traceparent_sampled_every) {
                    "01"
                } else {
                    "00"
                };
                traceparent.clear();
                // Trace and span ids must not be all zero.
                let _ = write!(
                    traceparent,
                    "00-{:032x}-{:016x}-{flags}",
                    u128::from(sent) + (1 << 64),
                    sent + 1
                );
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "traceparent",
                    value: Some(traceparent.as_bytes()),
                }));
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => bail!("produce: {e}"),
                }
            }
            sent += 1;
            if args.rate <= 0.0 && deadline.is_some_and(|d| start.elapsed() >= d) {
                break 'run;
            }
        }
        if args.rate > 0.0 {
            // At least a tick: at high rates the events of a millisecond go out together
            // (the producer's linger batches them anyway), at a thousandth of the wake-ups.
            let next_due = Duration::from_secs_f64(sent as f64 / args.rate);
            std::thread::sleep(next_due.saturating_sub(start.elapsed()).max(TICK));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let left = match producer.flush(Duration::from_secs(60)) {
        Ok(()) => 0,
        Err(_) => producer.in_flight_count().max(0) as u64,
    };
    let failed = failed.load(Ordering::Relaxed) + left;
    let round = |v: f64, places: i32| (v * 10f64.powi(places)).round() / 10f64.powi(places);
    let out = serde_json::json!({
        "what": "produce",
        "topic": args.topic,
        "sent": sent,
        "failed": failed,
        "seconds": round(elapsed, 3),
        "rate_target": args.rate,
        "rate_achieved": (elapsed > 0.0).then(|| round(sent as f64 / elapsed, 1)),
        "max_behind_schedule_ms": round(behind_max.as_secs_f64() * 1000.0, 1),
        "start_ms": wall_start.as_millis() as u64,
        "cpu_s": round(cpu_seconds().unwrap_or(0.0) - cpu_start, 3),
        "generator": "fleet-loadgen",
    });
    println!("{out}");
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    const TWO: &str = concat!(
        r#"{"type":"telemetry","tail":"CMAPSS-1","cycle":1}"#,
        "\n\n",
        r#"{"type":"telemetry","tail":"CMAPSS-27","cycle":1}"#,
        "\n"
    );

    #[test]
    fn copies_get_their_own_tails_in_key_and_value() {
        let f = file(TWO);
        let mut events = Events::open(f.path(), "L1").unwrap();
        let (mut key, mut value) = (String::new(), String::new());
        let mut seen = Vec::new();
        for _ in 0..3 {
            events.next_into(&mut key, &mut value).unwrap();
            seen.push((key.clone(), value.clone()));
        }
        assert_eq!(seen[0].0, "L1000-1");
        assert_eq!(
            seen[0].1,
            r#"{"type":"telemetry","tail":"L1000-1","cycle":1}"#
        );
        assert_eq!(seen[1].0, "L1000-27");
        assert_eq!(
            seen[1].1,
            r#"{"type":"telemetry","tail":"L1000-27","cycle":1}"#
        );
        // The file is repeated with the next copy's prefix.
        assert_eq!(seen[2].0, "L1001-1");
        assert_eq!(
            seen[2].1,
            r#"{"type":"telemetry","tail":"L1001-1","cycle":1}"#
        );
    }

    #[test]
    fn a_prefix_that_would_overflow_a_tail_is_refused() {
        let f = file(TWO);
        let err = Events::open(f.path(), "a-very-long-tag").unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
    }

    #[test]
    fn a_file_without_cmapss_tails_is_refused() {
        let f = file("{\"type\":\"telemetry\",\"tail\":\"N123\"}\n");
        let err = Events::open(f.path(), "L").unwrap_err();
        assert!(err.to_string().contains("CMAPSS-N"), "{err}");
    }
}
