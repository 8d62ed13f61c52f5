//! Harness for end-to-end tests against the real Apache Kafka broker started by
//! `scripts/kafka-broker.sh` (the test command exports `KAFKA_BOOTSTRAP`), with the built
//! `fleetscore` binary. Every test uses fresh topics and a fresh consumer group.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub mod verify;
pub mod workload;

pub const PARTITIONS: i32 = 3;

/// The broker, or `None` (with a note) when none was started and none is required.
pub fn bootstrap() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var("FLEETSCORE_REQUIRE_KAFKA").as_deref() != Ok("1"),
                "KAFKA_BOOTSTRAP is not set (scripts/kafka-broker.sh start)"
            );
            eprintln!("KAFKA_BOOTSTRAP not set: Kafka end-to-end test not run");
            None
        }
    }
}

/// Topic names unique to one test run.
#[derive(Debug, Clone)]
pub struct Topics {
    pub telemetry: String,
    pub schedule: String,
    pub predictions: String,
    pub deadletter: String,
    pub alerts: String,
    pub group: String,
}

impl Topics {
    pub fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{test}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        Self {
            telemetry: format!("t.{id}"),
            schedule: format!("s.{id}"),
            predictions: format!("p.{id}"),
            deadletter: format!("d.{id}"),
            alerts: format!("a.{id}"),
            group: format!("g.{id}"),
        }
    }

    /// The state changelog the service creates for this group (the default name).
    pub fn changelog(&self) -> String {
        format!("{}-state-changelog", self.group)
    }

    pub fn all(&self) -> [&str; 5] {
        [
            &self.telemetry,
            &self.schedule,
            &self.predictions,
            &self.deadletter,
            &self.alerts,
        ]
    }
}

pub fn create_topics(bootstrap: &str, topics: &Topics) {
    create_topics_replicated(bootstrap, topics, 1);
}

/// [`create_topics`] with `replicas` copies of each partition. With 3 or more, a write also
/// needs `min.insync.replicas=2` copies (as in Apache Kafka's `transactions_test.py`): one
/// broker may die without an acknowledged record being lost or writes stopping.
pub fn create_topics_replicated(bootstrap: &str, topics: &Topics, replicas: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new: Vec<NewTopic<'_>> = topics
        .all()
        .iter()
        .map(|t| {
            let topic = NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(replicas));
            if replicas >= 3 {
                topic.set("min.insync.replicas", "2")
            } else {
                topic
            }
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .unwrap();
    for r in results {
        r.unwrap();
    }
    // Wait until every partition has a leader, so the first requests do not race the election.
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for topic in topics.all() {
        loop {
            let ready = client
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == PARTITIONS as usize
                            && t.partitions()
                                .iter()
                                .all(|p| p.error().is_none() && p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "{topic}: no leaders after 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Deletes topics (those that exist; errors are ignored): a large test would otherwise leave
/// gigabytes on the brokers' disks.
pub fn delete_topics(bootstrap: &str, names: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let _ = runtime.block_on(admin.delete_topics(names, &options));
}

/// Writes a service config for these topics and models; `extra` goes into `[models]`.
pub fn config(dir: &Path, bootstrap: &str, topics: &Topics, models: &Path, extra: &str) -> PathBuf {
    config_with_kafka(dir, bootstrap, topics, models, extra, "")
}

/// [`config`], with `kafka_extra` appended to the `[kafka]` table (it may open sub-tables such
/// as `[kafka.producer]`).
pub fn config_with_kafka(
    dir: &Path,
    bootstrap: &str,
    topics: &Topics,
    models: &Path,
    extra: &str,
    kafka_extra: &str,
) -> PathBuf {
    let kafka = format!("brokers = \"{bootstrap}\"\nshutdown_timeout_ms = 15000\n{kafka_extra}");
    write_config(dir, topics, models, extra, &kafka)
}

/// Writes `fleetscore.toml` in `dir`: these models (`models_extra` goes into `[models]`), HTTP
/// on port 0, and a `[kafka]` table of these topic names followed by `kafka` (brokers and the
/// rest, as the test needs).
pub fn write_config(
    dir: &Path,
    topics: &Topics,
    models: &Path,
    models_extra: &str,
    kafka: &str,
) -> PathBuf {
    let path = dir.join("fleetscore.toml");
    let text = format!(
        r#"
[models]
dir = "{models}"
{models_extra}

[http]
addr = "127.0.0.1:0"

[kafka]
group_id = "{group}"
telemetry_topic = "{t}"
schedule_topic = "{s}"
predictions_topic = "{p}"
deadletter_topic = "{d}"
alerts_topic = "{a}"
{kafka}
"#,
        models = models.display(),
        group = topics.group,
        t = topics.telemetry,
        s = topics.schedule,
        p = topics.predictions,
        d = topics.deadletter,
        a = topics.alerts,
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub fn fleetscore() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetscore"));
    // FLEETSCORE_TEST_LOG: another filter for the services under test (debugging a test).
    let filter = std::env::var("FLEETSCORE_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
    c.env("RUST_LOG", filter);
    c
}

/// `fleetscore produce` of an event file onto the test's input topics.
pub fn produce(bootstrap: &str, topics: &Topics, events: &Path, rate: Option<u32>) -> Child {
    let mut c = fleetscore();
    c.args(["produce", "--brokers", bootstrap, "-i"])
        .arg(events)
        .args([
            "--telemetry-topic",
            &topics.telemetry,
            "--schedule-topic",
            &topics.schedule,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(rate) = rate {
        c.args(["--rate", &rate.to_string()]);
    }
    c.spawn().unwrap()
}

/// [`produce`] of the whole file, as fast as it goes; asserts it succeeded.
pub fn produce_all(bootstrap: &str, topics: &Topics, events: &Path) {
    let status = produce(bootstrap, topics, events, None).wait().unwrap();
    assert!(status.success(), "fleetscore produce failed: {status}");
}

/// A running `fleetscore serve`, logging to a file.
pub struct Service {
    pub child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn start(config: &Path, log: &Path) -> Self {
        Self::start_with_env(config, log, &[])
    }

    /// [`Service::start`] with more environment variables (`FLEETSCORE_FAULT`, say).
    pub fn start_with_env(config: &Path, log: &Path, env: &[(String, String)]) -> Self {
        Self::start_with(config, log, env, &[])
    }

    /// [`Service::start_with_env`] with more `serve` arguments (`--no-kafka`).
    pub fn start_with(config: &Path, log: &Path, env: &[(String, String)], args: &[&str]) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let child = fleetscore()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--config"])
            .arg(config)
            .args(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self {
            child,
            log: log.to_owned(),
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        self.try_wait_for(timeout).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!(
                "fleetscore did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            )
        })
    }

    /// The exit status if the process exits within `timeout`; `None` if it is still running.
    pub fn try_wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle`, at most `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_for_log_count(needle, 1, timeout);
    }

    /// Waits until the log contains `needle` at least `n` times, at most `timeout`.
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_text().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} `{needle}` in the log after {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The partitions this instance owns now, by its log: the `partitions assigned`,
    /// `partitions revoked` and `partitions lost` lines (`assigned=[("topic", 0), ...]`,
    /// `revoked=[...]`, `lost=[...]`) applied in order, which works for eager rebalances
    /// (everything revoked, the new set assigned) and incremental ones (only what moves) alike.
    pub fn assignment(&self) -> std::collections::BTreeSet<(String, i32)> {
        let mut owned = std::collections::BTreeSet::new();
        for line in self.log_text().lines() {
            if let Some(list) = list_after(line, "partitions assigned", "assigned=[") {
                owned.extend(list);
            } else if let Some(list) = list_after(line, "partitions revoked", "revoked=[")
                .or_else(|| list_after(line, "partitions lost", "lost=["))
            {
                for p in list {
                    owned.remove(&p);
                }
            }
        }
        owned
    }
}

/// The `(topic, partition)` list of a log line `... {message} ... {field}("t", 0), ...]`.
fn list_after(line: &str, message: &str, field: &str) -> Option<Vec<(String, i32)>> {
    if !line.contains(message) {
        return None;
    }
    let list = line.split_once(field)?.1.split(']').next()?;
    Some(
        list.split("(\"")
            .skip(1)
            .filter_map(|item| {
                let (topic, rest) = item.split_once("\", ")?;
                let partition = rest.split(')').next()?.trim().parse().ok()?;
                Some((topic.to_owned(), partition))
            })
            .collect(),
    )
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` from the running service's HTTP API (its address is in its log); the body.
pub fn http_get(service: &Service, path: &str) -> String {
    let (status, response) = http_get_status(service, path);
    assert_eq!(status, 200, "{response}");
    response
}

/// `GET path` from the running service's HTTP API: the JSON body (sent with a length, as the
/// API sends JSON).
pub fn http_get_json(service: &Service, path: &str) -> serde_json::Value {
    let response = http_get(service, path);
    let (_, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no body in {response}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The address the running service's HTTP API listens on (from its log).
pub fn http_addr(service: &Service) -> String {
    service.wait_for_log("HTTP listening addr=", Duration::from_secs(30));
    service
        .log_text()
        .split("HTTP listening addr=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect()
}

/// `GET path`: the status code and the whole response.
pub fn http_get_status(service: &Service, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = http_addr(service);
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    (status, response)
}

/// Offsets in a topic (sum of high watermarks of a fresh topic): its messages, and the markers
/// of the transactions that wrote to it.
pub fn count(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fleetscore-test-watermarks")
        .create()
        .unwrap();
    (0..PARTITIONS)
        .map(|p| {
            // A fresh topic's leaders take a moment to be known everywhere: retry transient
            // metadata errors (NotLeaderForPartition, UnknownTopicOrPartition) until a deadline.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                    Ok((low, high)) => break high - low,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("watermarks of {topic}/{p}: {e}; retrying");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => panic!("watermarks of {topic}/{p}: {e}"),
                }
            }
        })
        .sum()
}

/// [`count`] without retries: an error while a partition has no reachable leader (a broker
/// just died), for callers that poll anyway.
pub fn try_count(bootstrap: &str, topic: &str) -> Result<i64, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(2))
                .map(|(low, high)| high - low)
                .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))
        })
        .sum()
}

/// Waits until `topic` holds at least `n` messages, at most `timeout`.
pub fn wait_for_count(bootstrap: &str, topic: &str, n: i64, timeout: Duration, service: &Service) {
    let deadline = Instant::now() + timeout;
    loop {
        let have = count(bootstrap, topic);
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {have} of {n} messages after {timeout:?}; service log:\n{}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every committed message of a topic, read from the beginning (read_committed: what an
/// aborted transaction wrote is not there), up to the end the topic had when called.
pub fn read_all(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    let watermarks: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fleetscore-test-watermarks")
        .create()
        .unwrap();
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            watermarks
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fleetscore-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    // A partition is read when the consumer reached its end (its last stable offset) at or
    // past the end it had at the start (transaction markers take offsets too).
    let reached = |p: i32| {
        consumer.position().ok().is_some_and(|tpl| {
            tpl.find_partition(topic, p)
                .and_then(|e| e.offset().to_raw())
                .is_some_and(|pos| pos >= ends[p as usize])
        })
    };
    let mut done = vec![false; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.iter().any(|d| !d) {
        assert!(
            Instant::now() < deadline,
            "read {} from {topic}, partitions done {done:?}, ends {ends:?}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                done[p as usize] = ends[p as usize] == 0 || reached(p);
            }
            // A dead cluster node (the failover test) is reported as a consumer error while
            // the others keep serving: the reader carries on, within the deadline.
            Some(Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure,
            ))) => {}
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {
                for p in 0..PARTITIONS {
                    if !done[p as usize] && reached(p) {
                        done[p as usize] = true;
                    }
                }
            }
        }
    }
    out
}

pub fn header<'m, M: Message>(message: &'m M, key: &str) -> Option<&'m str> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Imports C-MAPSS FD001 (optionally only the first `limit` events) into `dir`.
pub fn cmapss_events(dir: &Path, limit: Option<usize>) -> PathBuf {
    let data = fleet_features::data::cmapss_fd001();
    let out = dir.join("cmapss.jsonl");
    let status = fleetscore()
        .args(["import", "cmapss"])
        .arg(&data)
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    if let Some(limit) = limit {
        let text = std::fs::read_to_string(&out).unwrap();
        let head: Vec<&str> = text.lines().take(limit).collect();
        std::fs::write(&out, head.join("\n") + "\n").unwrap();
    }
    out
}

/// The C-MAPSS events in event-time order (all engines interleaved, each engine's cycles in
/// order), so that halfway through many engines are near the end of their life at once.
pub fn interleaved(dir: &Path) -> PathBuf {
    let events = cmapss_events(dir, None);
    let text = std::fs::read_to_string(&events).unwrap();
    let mut lines: Vec<(String, &str)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["event_time"].as_str().unwrap().to_owned(), l)
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0)); // stable: each engine's cycles keep their order
    let out = dir.join("interleaved.jsonl");
    let body: Vec<&str> = lines.iter().map(|(_, l)| *l).collect();
    std::fs::write(&out, body.join("\n") + "\n").unwrap();
    out
}

/// `fleetscore replay` of `events` with the models in `models`, no Kafka: the uninterrupted
/// computation the streaming results are compared with. Writes `output`, and the alert events
/// of the default rules to [`alerts_of`]`(output)`.
pub fn replay(events: &Path, output: &Path, models: &Path) {
    let status = fleetscore()
        .args(["replay", "-i"])
        .arg(events)
        .arg("-o")
        .arg(output)
        .arg("--alerts")
        .arg(alerts_of(output))
        .arg("--models-dir")
        .arg(models)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "fleetscore replay failed: {status}");
}

/// Where [`replay`] writes the alert events of its `output`.
pub fn alerts_of(output: &Path) -> PathBuf {
    output.with_extension("alerts.jsonl")
}

/// Predictions keyed by source event id.
pub fn by_event(messages: &[OwnedMessage]) -> HashMap<String, Vec<serde_json::Value>> {
    let mut map: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for m in messages {
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        map.entry(v["source_event_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(v);
    }
    map
}

/// Event ids of an event file.
pub fn event_ids(events: &Path) -> std::collections::HashSet<String> {
    std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| {
            fleet_features::Event::decode(l.as_bytes())
                .unwrap()
                .event_id()
                .to_owned()
        })
        .collect()
}

/// Waits until every id in `ids` has at least one prediction in the predictions topic (at
/// most `timeout`); returns all the predictions then. On a timeout the failure says how far
/// the service got ([`progress`]) and shows its log.
pub fn wait_for_every_event(
    bootstrap: &str,
    topics: &Topics,
    ids: &std::collections::HashSet<String>,
    timeout: Duration,
    service: &Service,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut missing = ids.len();
    loop {
        if count(bootstrap, &topics.predictions) >= ids.len() as i64 {
            let all = read_all(bootstrap, &topics.predictions);
            let covered = by_event(&all);
            missing = ids.iter().filter(|id| !covered.contains_key(*id)).count();
            if missing == 0 {
                return all;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not every event predicted after {timeout:?} ({missing} of {} missing when last \
             read); {}\nlog:\n{}",
            ids.len(),
            progress(bootstrap, topics),
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How far the service got, for a failure message: per input partition its end offset and
/// the group's committed offset, per predictions partition its end offset.
pub fn progress(bootstrap: &str, topics: &Topics) -> String {
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &topics.group)
        .create()
    {
        Ok(c) => c,
        Err(e) => return format!("progress unknown: {e}"),
    };
    let timeout = Duration::from_secs(10);
    let mut out = String::from("progress (partition: end offset / committed offset):");
    for topic in [&topics.telemetry, &topics.schedule, &topics.predictions] {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(topic, p);
        }
        let committed = consumer.committed_offsets(tpl, timeout).ok();
        out.push_str(&format!("\n  {topic}:"));
        for p in 0..PARTITIONS {
            let end = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_or_else(|e| e.to_string(), |(_, high)| high.to_string());
            let at = committed
                .as_ref()
                .and_then(|c| c.find_partition(topic, p))
                .map_or_else(|| "?".to_owned(), |e| format!("{:?}", e.offset()));
            out.push_str(&format!(" [{p}] {end} / {at}"));
        }
    }
    out
}

/// The partitions of `topic` (from the cluster's metadata).
pub fn partitions(bootstrap: &str, topic: &str) -> Vec<i32> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(rdkafka::metadata::MetadataPartition::id)
        .collect()
}

/// Each partition's end offset as a reader at `isolation` (`read_committed`: the last stable
/// offset, before any transaction still open; `read_uncommitted`: the high watermark).
/// `(partition, offset)` in partition order; `None` while a partition does not answer.
fn end_offsets(bootstrap: &str, topic: &str, isolation: &str) -> Option<Vec<(i32, i64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let mut partitions = partitions(bootstrap, topic);
    partitions.sort_unstable();
    partitions
        .into_iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| (p, high))
        })
        .collect()
}

/// Waits until consumer group `group` has committed, on every partition of `inputs`, the
/// offset at the partition's end: everything in the inputs was processed and its outputs
/// committed (or acknowledged, at-least-once). The producer must have finished.
pub fn wait_for_group_to_consume_all(
    bootstrap: &str,
    group: &str,
    inputs: &[&str],
    timeout: Duration,
    context: impl Fn() -> String,
) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut ends = Vec::new();
    for topic in inputs {
        let offsets = end_offsets(bootstrap, topic, "read_uncommitted")
            .unwrap_or_else(|| panic!("{topic}: a partition's end offset is unknown"));
        ends.extend(
            offsets
                .into_iter()
                .map(|(p, end)| (topic.to_string(), p, end)),
        );
    }
    wait_until(
        &format!("group {group} to commit the end of {inputs:?}"),
        timeout,
        || {
            let mut tpl = TopicPartitionList::new();
            for (topic, p, _) in &ends {
                tpl.add_partition(topic, *p);
            }
            let committed = consumer
                .committed_offsets(tpl, Duration::from_secs(5))
                .map_err(|e| format!("committed offsets: {e}"))?;
            let behind: String = ends
                .iter()
                .filter_map(|(topic, p, end)| {
                    let at = match committed.find_partition(topic, *p)?.offset() {
                        Offset::Offset(o) => o,
                        _ => 0,
                    };
                    (at < *end).then(|| format!("{topic}/{p}: {at} of {end}; "))
                })
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!("behind: {behind}"))
            }
        },
        context,
    );
}

/// Every record of `topic` that a `read_committed` consumer sees, in each partition's order,
/// handed to `each`. First waits (at most `timeout`) until no transaction is open on the topic
/// (its last stable offset is its high watermark: the writers are gone and the broker has
/// aborted what they left open), then reads every partition to its end. Returns how many.
pub fn read_committed(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> usize {
    wait_until(
        &format!("no transaction open on {topic}"),
        timeout,
        || {
            let stable = end_offsets(bootstrap, topic, "read_committed");
            let high = end_offsets(bootstrap, topic, "read_uncommitted");
            if stable.is_some() && stable == high {
                Ok(())
            } else {
                Err(format!(
                    "last stable offsets {stable:?}, high watermarks {high:?}"
                ))
            }
        },
        String::new,
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fleetscore-test-read-committed")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let partitions = partitions(bootstrap, topic);
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end = std::collections::HashSet::new();
    let mut read = 0;
    let deadline = Instant::now() + timeout;
    while at_end.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "read {read} records of {topic} in {timeout:?}; at the end of {at_end:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                read += 1;
                each(&m);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            // A node restarted moments ago (the bounce test): the client reconnects.
            Some(Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure,
            ))) => {}
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    read
}

/// A Kafka cluster of its own (`scripts/kafka-broker.sh start --brokers N`), stopped on drop;
/// or the one a whole test process shares ([`Cluster::shared`]).
pub struct Cluster {
    pub bootstrap: String,
    /// The script's `--dir`: the nodes' configs, data and logs.
    run_dir: PathBuf,
    /// `Some` for a test's own cluster: stopped (and deleted) on drop.
    own: Option<tempfile::TempDir>,
    /// The shared cluster's watchdog's stdin (see [`Cluster::shared`]).
    _watchdog: Option<std::process::ChildStdin>,
}

impl Cluster {
    pub fn start(brokers: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("kafka");
        Self {
            bootstrap: Self::launch(brokers, &run_dir),
            run_dir,
            own: Some(dir),
            _watchdog: None,
        }
    }

    /// One cluster of `brokers` nodes for every test of this process that asks, started by the
    /// first one in a fresh `/tmp/{prefix}XXXXXX`. A static is never dropped, so a watchdog
    /// (`sh`, in a process group of its own so Ctrl-C does not take it down) blocks reading a
    /// pipe only this process holds, and stops the cluster when the pipe closes: when the test
    /// process exits, however it exits.
    pub fn shared(brokers: u32, prefix: &str) -> &'static Cluster {
        static SHARED: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let run_dir = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .unwrap()
                .keep();
            let mut watchdog = Command::new("sh");
            watchdog
                .arg("-c")
                .arg(r#"read -r line; exec "$0" stop --dir "$1""#)
                .arg(Self::script())
                .arg(&run_dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut watchdog, 0);
            #[allow(
                clippy::zombie_processes,
                reason = "the watchdog outlives this process on purpose"
            )]
            let watchdog = watchdog.spawn().unwrap();
            Self {
                bootstrap: Self::launch(brokers, &run_dir),
                run_dir,
                own: None,
                _watchdog: watchdog.stdin,
            }
        })
    }

    fn launch(brokers: u32, run_dir: &Path) -> String {
        let out = Command::new(Self::script())
            .args(["start", "--brokers", &brokers.to_string(), "--dir"])
            .arg(run_dir)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "kafka-broker.sh start failed");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("BOOTSTRAP=").map(str::to_owned))
            .expect("kafka-broker.sh printed no BOOTSTRAP=")
    }

    /// `kill -9` node `i` (1-based; also its broker id).
    pub fn kill_node(&self, i: u32) {
        self.node_command("kill-node", i);
    }

    /// Starts node `i` again after [`Cluster::kill_node`]; returns once it listens.
    pub fn start_node(&self, i: u32) {
        self.node_command("start-node", i);
    }

    fn node_command(&self, command: &str, i: u32) {
        assert!(
            self.try_node_command(command, i),
            "kafka-broker.sh {command} {i} failed"
        );
    }

    /// Runs `kafka-broker.sh COMMAND I`; whether it succeeded (never panics: also for drops).
    pub fn try_node_command(&self, command: &str, i: u32) -> bool {
        Command::new(Self::script())
            .args([command, &i.to_string(), "--dir"])
            .arg(&self.run_dir)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The broker id (= node number) leading each partition of `topic`, waiting (at most
    /// `timeout`) for the topic to exist and every partition to have a leader.
    pub fn leaders(&self, topic: &str, timeout: Duration) -> Vec<u32> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        wait_until(
            &format!("a leader for every partition of {topic}"),
            timeout,
            || {
                client
                    .fetch_metadata(Some(topic), Duration::from_secs(5))
                    .ok()
                    .and_then(|m| {
                        let t = m.topics().first()?;
                        if t.error().is_some() || t.partitions().is_empty() {
                            return None;
                        }
                        let mut leaders = t
                            .partitions()
                            .iter()
                            .map(|p| Some((p.id(), u32::try_from(p.leader()).ok()?)))
                            .collect::<Option<Vec<(i32, u32)>>>()?;
                        leaders.sort_unstable();
                        Some(leaders.into_iter().map(|(_, l)| l).collect::<Vec<u32>>())
                    })
                    .ok_or_else(|| "not yet".to_owned())
            },
            String::new,
        )
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-broker.sh")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.own.is_some() {
            let _ = Command::new(Self::script())
                .args(["stop", "--dir"])
                .arg(&self.run_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Polls `check` every 50 ms until it is `Ok`; after `timeout`, panics naming `what`, with
/// what the last check said (`Err`: the state so far) and `context()` (logs).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(done) => return done,
            Err(state) => assert!(
                Instant::now() < deadline,
                "not done after {timeout:?}: {what}; {state}\n{}",
                context()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the first and the second half of an event file (in file order) beside it.
pub fn halves(events: &Path, dir: &Path) -> (PathBuf, PathBuf, usize) {
    split(events, dir, 0.5)
}

/// Writes the first `fraction` of an event file's lines (in file order) and the rest beside it;
/// the paths and the first part's length.
pub fn split(events: &Path, dir: &Path, fraction: f64) -> (PathBuf, PathBuf, usize) {
    let text = std::fs::read_to_string(events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (head, rest) = lines.split_at((lines.len() as f64 * fraction) as usize);
    let first = dir.join("first-half.jsonl");
    let second = dir.join("second-half.jsonl");
    std::fs::write(&first, head.join("\n") + "\n").unwrap();
    std::fs::write(&second, rest.join("\n") + "\n").unwrap();
    (first, second, head.len())
}
