//! The Kafka side never leaves the service dark: the built binary with no broker to talk to
//! fails start-up within `startup_timeout_ms` naming the brokers, stops on SIGTERM while it is
//! still connecting, refuses an empty `brokers`, and stops within `shutdown_timeout_ms` (plus
//! the documented margin) when its broker died under it. Only the last test needs Kafka (a
//! one-node cluster of its own, killed); the others run anywhere.

mod common;
mod kafka;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafka::{Cluster, Service, Topics};

/// `shutdown_timeout_ms` + this is the documented bound on a stop (README, "Limits and failure
/// behaviour"); the test allows one more second for the process to start and the log to flush.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// A config whose `[kafka]` table is `kafka` (plus topic names and `http.addr` port 0).
fn config(dir: &Path, models: &Path, topics: &Topics, kafka: &str) -> PathBuf {
    kafka::write_config(dir, topics, models, "", kafka)
}

fn start(dir: &Path, config: &Path) -> Service {
    Service::start(config, &dir.join("serve.log"))
}

#[test]
fn an_unreachable_broker_fails_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let topics = Topics::new("unreachable");
    let config = config(
        dir.path(),
        models.path(),
        &topics,
        "brokers = \"127.0.0.1:1\"\nstartup_timeout_ms = 1500\n",
    );
    let started = Instant::now();
    let mut service = start(dir.path(), &config);
    // Generous for the process start; the point is that it ends at all (it used to run forever).
    let status = service.wait(Duration::from_secs(20));
    let elapsed = started.elapsed();
    let log = service.log_text();
    assert!(!status.success(), "exit status {status}; log:\n{log}");
    assert!(
        elapsed >= Duration::from_millis(1500),
        "gave up after {elapsed:?}, before startup_timeout_ms"
    );
    assert!(
        log.contains("no Kafka broker answered at 127.0.0.1:1 within 1500 ms"),
        "the error names the brokers and the timeout:\n{log}"
    );
    assert!(
        log.contains(r#"task="kafka""#),
        "the failed task is named:\n{log}"
    );
}

#[test]
fn sigterm_while_connecting_stops_within_the_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let topics = Topics::new("connecting");
    let config = config(
        dir.path(),
        models.path(),
        &topics,
        "brokers = \"127.0.0.1:1\"\nstartup_timeout_ms = 600000\nshutdown_timeout_ms = 2000\n",
    );
    let mut service = start(dir.path(), &config);
    service.wait_for_log("connecting to Kafka", Duration::from_secs(30));
    // Readiness says why it is not ready.
    let (status, response) = kafka::http_get_status(&service, "/readyz");
    assert_eq!(status, 503, "{response}");
    assert!(
        response.contains("connecting to Kafka at 127.0.0.1:1"),
        "{response}"
    );

    service.signal("-TERM");
    let signalled = Instant::now();
    let status = service.wait(Duration::from_millis(2000) + STOP_MARGIN + Duration::from_secs(1));
    let elapsed = signalled.elapsed();
    let log = service.log_text();
    assert!(
        elapsed <= Duration::from_millis(2000) + STOP_MARGIN,
        "stopped after {elapsed:?}:\n{log}"
    );
    assert!(
        status.success(),
        "a requested stop: exit status {status}; log:\n{log}"
    );
}

#[test]
fn empty_brokers_are_refused_at_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let topics = Topics::new("empty");
    let config = config(dir.path(), models.path(), &topics, "brokers = \"\"\n");
    let mut service = start(dir.path(), &config);
    let status = service.wait(Duration::from_secs(20));
    let log = service.log_text();
    assert!(!status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("[kafka] brokers is empty"), "{log}");
    assert!(
        !log.contains("HTTP listening"),
        "refused before anything starts:\n{log}"
    );
}

/// The `fleetscore_consumer_errors_total` value on `/metrics`.
fn consumer_errors(service: &Service) -> u64 {
    kafka::http_get(service, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("fleetscore_consumer_errors_total "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[test]
fn a_dead_broker_neither_floods_the_log_nor_holds_up_sigterm() {
    // Only where the end-to-end tests run (Java and the broker's jars are there).
    if kafka::bootstrap().is_none() {
        return;
    }
    let cluster = Cluster::start(1);
    let topics = Topics::new("dead-broker");
    kafka::create_topics(&cluster.bootstrap, &topics);
    let dir = tempfile::tempdir().unwrap();
    let events = kafka::cmapss_events(dir.path(), Some(300));
    // Offsets are committed only by the final commit, so it has work to do (against a dead
    // coordinator, librdkafka's synchronous commit waits for the session timeout or longer).
    let config = config(
        dir.path(),
        &common::fixtures(),
        &topics,
        &format!(
            "brokers = \"{}\"\nshutdown_timeout_ms = 3000\n\
             [kafka.consumer]\n\"auto.commit.interval.ms\" = \"600000\"\n",
            cluster.bootstrap
        ),
    );
    let mut service = start(dir.path(), &config);
    service.wait_for_log("partitions assigned", Duration::from_secs(120));
    kafka::produce_all(&cluster.bootstrap, &topics, &events);
    kafka::wait_for_count(
        &cluster.bootstrap,
        &topics.predictions,
        300,
        Duration::from_secs(60),
        &service,
    );

    cluster.kill_node(1);
    // The consumer reports the dead broker, repeatedly: every error is counted, few are logged.
    let deadline = Instant::now() + Duration::from_secs(60);
    let counted = loop {
        let counted = consumer_errors(&service);
        if counted >= 20 {
            break counted;
        }
        assert!(
            Instant::now() < deadline,
            "{counted} consumer errors counted after 60 s:\n{}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = service.log_text();
    let logged = log.matches("consumer error").count() + log.matches("Kafka client error").count();
    assert!(
        logged <= 12 && (logged as u64) * 2 <= counted,
        "{logged} error lines for {counted} errors:\n{log}"
    );

    service.signal("-TERM");
    let signalled = Instant::now();
    let status = service.wait(Duration::from_millis(3000) + STOP_MARGIN + Duration::from_secs(5));
    let elapsed = signalled.elapsed();
    let log = service.log_text();
    assert!(
        elapsed <= Duration::from_millis(3000) + STOP_MARGIN,
        "stopped after {elapsed:?} ({status}):\n{log}"
    );
    eprintln!("stopped in {elapsed:?} with {status}; {logged} lines for {counted} consumer errors");
}
