//! `fleetscore produce`: an event file onto the input topics, keyed by tail, at a chosen rate.
//! For demos, tests and benchmarks; lines that do not decode go to the telemetry topic as they
//! are (so dead-letter handling can be exercised end to end).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fleet_features::Event;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Events, one JSON object per line; `-` for stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Bootstrap servers.
    #[arg(long, env = "FLEETSCORE_KAFKA_BROKERS")]
    pub brokers: String,
    #[arg(long, default_value = "fleet.telemetry.v1")]
    pub telemetry_topic: String,
    #[arg(long, default_value = "fleet.schedule.v1")]
    pub schedule_topic: String,
    /// Events per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop after this many lines.
    #[arg(long)]
    pub limit: Option<u64>,
}

impl ProduceArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("partitioner", "murmur2_random")
            .create()
            .context("creating the producer")?;
        let input: Box<dyn BufRead> = if self.input.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(BufReader::new(
                File::open(&self.input)
                    .with_context(|| format!("opening {}", self.input.display()))?,
            ))
        };
        let started = Instant::now();
        let (mut sent, mut undecodable) = (0u64, 0u64);
        for line in input.lines() {
            if self.limit.is_some_and(|l| sent >= l) {
                break;
            }
            let line = line.context("reading events")?;
            if self.rate > 0.0 {
                let due = started + Duration::from_secs_f64(sent as f64 / self.rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let (topic, key) = match Event::decode(line.as_bytes()) {
                Ok(Event::Telemetry(t)) => (&self.telemetry_topic, Some(t.tail)),
                Ok(Event::Schedule(s)) => (&self.schedule_topic, Some(s.tail)),
                Err(_) => {
                    undecodable += 1;
                    (&self.telemetry_topic, None)
                }
            };
            let mut record = BaseRecord::to(topic).payload(line.as_bytes());
            if let Some(key) = &key {
                record = record.key(key.as_bytes());
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                if let Err((e, back)) = producer.send(r) {
                    if matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        std::thread::sleep(Duration::from_millis(1));
                        record = Some(back);
                    } else {
                        anyhow::bail!("producing: {e}");
                    }
                }
            }
            sent += 1;
        }
        producer
            .flush(Duration::from_secs(60))
            .context("flushing the producer")?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "produced {sent} events ({undecodable} undecodable, sent as they are) in {secs:.2} s ({:.0}/s)",
            sent as f64 / secs.max(1e-9)
        );
        Ok(())
    }
}
