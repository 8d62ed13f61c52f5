//! Issue #13's fault tests: a prediction after any failure equals the prediction without it.
//!
//! Modelled on Apache Kafka's `tests/kafkatest/tests/core/transactions_test.py` (a 3-broker
//! cluster, topics on 3 replicas with `min.insync.replicas=2`, processes hard-killed mid-stream,
//! then a `read_committed` reader must see every input exactly once) and
//! `tests/kafkatest/tests/streams/streams_eos_test.py` (instances join, leave and die while the
//! stream runs; the result is recomputed independently and compared). Here the input is real
//! NASA C-MAPSS data over many aircraft with malformed events mixed in
//! (`kafka::workload`), the independent computation is `fleetscore replay` of the valid events
//! with the same models and no restart, and the comparison is record by record
//! (`kafka::verify`).
//!
//! Scenarios, each on the process's shared 3-node cluster with fresh topics and group:
//! kill -9 three times and restart; rebalance churn over three instances; a broker bounce
//! (the node leading the state changelog); a zombie (SIGSTOP until its partitions move,
//! then SIGCONT). Plus an uninterrupted control run, which must pass on any build.
//!
//! The scenarios run wherever the Kafka tests run (`FLEETSCORE_EOS=0` skips them); against a
//! build from before #13 (no transactions, no changelog) they fail. `FLEETSCORE_EOS_EVENTS`
//! sets the stream's size (default 200,000; `scripts/eos-check.sh` runs 1,000,000).

mod common;
mod kafka;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka::verify::{Expected, Guarantee, Tally};
use kafka::workload::{Release, Workload};
use kafka::{Cluster, Service, Topics};

/// Which service the scenarios configure. Each test names one; switching a test to the new keys
/// is changing `Today` to `Issue13` in its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceSide {
    /// The binary before #13: at-least-once, no changelog; it refuses the new keys (unknown
    /// keys are errors), so none is written. A shorter session (6 s, the broker's minimum)
    /// makes a dead instance's partitions move sooner. Kept to run these checks against an old
    /// build (`FLEETSCORE_BIN`-style experiments), which they must fail.
    #[allow(dead_code, reason = "for runs against a build from before #13")]
    Today,
    /// The `[kafka]` keys of #13: `guarantee`, a stable `instance_id` per instance (a restart
    /// fences its previous incarnation at once), the changelog's replication.
    Issue13,
}

impl ServiceSide {
    /// The `[kafka]` lines for instance `id` (may open sub-tables: they come last).
    fn kafka_lines(self, guarantee: Guarantee, id: &str, replication: i32) -> String {
        match self {
            ServiceSide::Today => "[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n".into(),
            ServiceSide::Issue13 => match guarantee {
                Guarantee::ExactlyOnce => format!(
                    "guarantee = \"exactly_once\"\ninstance_id = \"{id}\"\n\
                     changelog_replication = {replication}\n"
                ),
                Guarantee::AtLeastOnce => format!(
                    "guarantee = \"at_least_once\"\nchangelog_replication = {replication}\n"
                ),
            },
        }
    }
}

/// How far ahead of the next step the stream is released (a fraction of its events).
const LEAD: f64 = 0.1;

/// The stream's size: `FLEETSCORE_EOS_EVENTS`, default 200,000 (CI).
fn events() -> usize {
    std::env::var("FLEETSCORE_EOS_EVENTS")
        .ok()
        .map(|n| {
            n.replace(['_', ','], "")
                .parse()
                .expect("FLEETSCORE_EOS_EVENTS: a number")
        })
        .unwrap_or(200_000)
}

/// Whether the fault scenarios run: with `FLEETSCORE_EOS=1`, and by default wherever the Kafka
/// tests run (`KAFKA_BOOTSTRAP`: Java and the broker's jars are there), unless
/// `FLEETSCORE_EOS=0`; with a note when they do not.
fn scenarios_enabled(test: &str) -> bool {
    let on = match std::env::var("FLEETSCORE_EOS").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => kafka::bootstrap().is_some(),
    };
    if !on {
        eprintln!("{test}: not run (no KAFKA_BOOTSTRAP, or FLEETSCORE_EOS=0)");
    }
    on
}

/// The workload and replay's predictions for it, made once per test process.
struct Input {
    workload: Workload,
    expected: Expected,
}

fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(|| {
        let started = Instant::now();
        // Under the target directory, replaced on each run (a million events take ~1.3 GB).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("eos-workload");
        let _ = std::fs::remove_dir_all(&dir);
        let workload = Workload::generate(&dir, events());
        let expected = Expected::replay(&workload, &common::fixtures(), &dir);
        eprintln!(
            "workload: {} valid events over {} aircraft, {} malformed; replay: {} predictions; \
             {:.1} s",
            workload.valid_count,
            workload.tails,
            workload.malformed.len(),
            expected.predictions(),
            started.elapsed().as_secs_f64()
        );
        Input { workload, expected }
    })
}

/// One scenario's run: fresh topics and group, the instances it starts (by id), the producer,
/// and what went wrong along the way (reported with the counts at the end).
struct Scenario {
    name: String,
    guarantee: Guarantee,
    side: ServiceSide,
    bootstrap: String,
    cluster: Option<&'static Cluster>,
    replication: i32,
    topics: Topics,
    dir: tempfile::TempDir,
    input: &'static Input,
    live: BTreeMap<String, Service>,
    /// Instances stopped with SIGSTOP: not expected to own anything.
    paused: HashSet<String>,
    incarnations: usize,
    producer: Option<JoinHandle<()>>,
    release: Arc<Release>,
    problems: Vec<String>,
    /// More `[kafka]` lines for every instance (before any sub-table).
    extra: String,
    /// More environment variables for every instance.
    env: Vec<(String, String)>,
    started: Instant,
    // One scenario at a time: they share the cluster and two cores.
    _serial: MutexGuard<'static, ()>,
}

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scenario {
    /// A fault scenario on the shared 3-node cluster; `None` when scenarios do not run here.
    fn new(name: &str, guarantee: Guarantee, side: ServiceSide) -> Option<Self> {
        if !scenarios_enabled(name) {
            return None;
        }
        let serial = serial();
        let cluster = Cluster::shared(3, "eos-kafka-");
        Some(Self::on(
            name,
            guarantee,
            side,
            cluster.bootstrap.clone(),
            Some(cluster),
            serial,
        ))
    }

    fn on(
        name: &str,
        guarantee: Guarantee,
        side: ServiceSide,
        bootstrap: String,
        cluster: Option<&'static Cluster>,
        serial: MutexGuard<'static, ()>,
    ) -> Self {
        let input = input();
        let replication = if cluster.is_some() { 3 } else { 1 };
        let topics = Topics::new(name);
        kafka::create_topics_replicated(&bootstrap, &topics, replication);
        eprintln!("{name}: {guarantee:?}, {side:?}, group {}", topics.group);
        Self {
            name: name.to_owned(),
            guarantee,
            side,
            bootstrap,
            cluster,
            replication,
            topics,
            dir: tempfile::Builder::new().prefix("eos-").tempdir().unwrap(),
            input,
            live: BTreeMap::new(),
            paused: HashSet::new(),
            incarnations: 0,
            producer: None,
            release: Arc::default(),
            problems: Vec::new(),
            extra: String::new(),
            env: Vec::new(),
            started: Instant::now(),
            _serial: serial,
        }
    }

    /// Deadline for anything that waits on the stream's progress.
    fn budget(&self) -> Duration {
        Duration::from_secs(180) + Duration::from_millis(self.input.workload.valid_count as u64 / 2)
    }

    /// Starts (or restarts) instance `id`: its own config (same group), a new log.
    fn start(&mut self, id: &str) {
        assert!(!self.live.contains_key(id), "{id} is running");
        let dir = self.dir.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let config = kafka::config_with_kafka(
            &dir,
            &self.bootstrap,
            &self.topics,
            &common::fixtures(),
            "",
            &(self.extra.clone() + &self.side.kafka_lines(self.guarantee, id, self.replication)),
        );
        self.incarnations += 1;
        let log = self
            .dir
            .path()
            .join(format!("{:02}-{id}.log", self.incarnations));
        self.live.insert(
            id.to_owned(),
            Service::start_with_env(&config, &log, &self.env),
        );
    }

    /// `kill -9` instance `id`.
    fn kill(&mut self, id: &str) {
        let mut service = self.live.remove(id).expect("a running instance");
        service.signal("-KILL");
        service.wait(Duration::from_secs(30));
    }

    /// SIGTERM instance `id`: it must drain, commit and exit 0.
    fn stop(&mut self, id: &str) {
        let mut service = self.live.remove(id).expect("a running instance");
        service.signal("-TERM");
        let status = service.wait(Duration::from_secs(60));
        if !status.success() {
            self.problems.push(format!(
                "{id} exited {status} on SIGTERM; log:\n{}",
                tail(&service.log_text())
            ));
        }
    }

    /// Waits until the running, unpaused instances own every input partition between them, each
    /// partition once, each instance at least one (by their logs): the group has rebalanced.
    fn settle(&self) {
        let mut inputs = BTreeSet::new();
        for topic in [&self.topics.telemetry, &self.topics.schedule] {
            for p in kafka::partitions(&self.bootstrap, topic) {
                inputs.insert((topic.clone(), p));
            }
        }
        kafka::wait_until(
            "the group to settle",
            self.budget(),
            || {
                let owners: Vec<(&String, BTreeSet<_>)> = self
                    .live
                    .iter()
                    .filter(|(id, _)| !self.paused.contains(*id))
                    .map(|(id, s)| (id, s.assignment().intersection(&inputs).cloned().collect()))
                    .collect();
                let total: usize = owners.iter().map(|(_, o)| o.len()).sum();
                let union: BTreeSet<_> = owners.iter().flat_map(|(_, o)| o.clone()).collect();
                if union == inputs
                    && total == inputs.len()
                    && owners.iter().all(|(_, o)| !o.is_empty())
                {
                    Ok(())
                } else {
                    Err(format!("owners: {owners:?}"))
                }
            },
            || self.logs(),
        );
        eprintln!(
            "{}: settled at {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Starts the producer (in the background): it produces the workload as fast as it goes,
    /// as far as [`Scenario::wait_progress`] and [`Scenario::finish`] release it.
    fn produce(&mut self) {
        let (bootstrap, topics, input) = (self.bootstrap.clone(), self.topics.clone(), self.input);
        let release = Arc::clone(&self.release);
        self.producer = Some(std::thread::spawn(move || {
            input.workload.produce(&bootstrap, &topics, &release);
        }));
    }

    /// Releases the stream up to `fraction` + [`LEAD`] of its valid events and waits until the
    /// predictions topic holds `fraction` of the expected predictions (counting what is there,
    /// committed or not: a measure of progress, not a check). What comes next (a kill, a join)
    /// therefore happens with a tenth of the stream still arriving or in flight.
    fn wait_progress(&self, fraction: f64) {
        let valid = self.input.workload.valid_count as f64;
        self.release
            .up_to((valid * (fraction + LEAD).min(1.0)).ceil() as usize);
        let want = (self.input.expected.predictions() as f64 * fraction) as i64;
        let have = kafka::wait_until(
            &format!("{want} predictions"),
            self.budget(),
            || {
                // Errors while a broker is down (the bounce): try again.
                let have = kafka::try_count(&self.bootstrap, &self.topics.predictions)?;
                if have >= want {
                    Ok(have)
                } else {
                    Err(format!("{have} predictions"))
                }
            },
            || self.logs(),
        );
        eprintln!(
            "{}: {have} predictions at {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }

    fn signal(&mut self, id: &str, signal: &str) {
        self.live[id].signal(signal);
        match signal {
            "-STOP" => self.paused.insert(id.to_owned()),
            _ => self.paused.remove(id),
        };
    }

    /// The last lines of every running instance's log.
    fn logs(&self) -> String {
        self.live
            .iter()
            .map(|(id, s)| format!("--- {id} ({})\n{}", s.log.display(), tail(&s.log_text())))
            .collect()
    }

    /// Lets the stream end, stops every instance (SIGTERM), reads the output topics as a
    /// `read_committed` consumer and checks them against replay; prints the counts either way.
    fn finish(mut self) {
        self.release.up_to(self.input.workload.valid_count);
        if let Some(producer) = self.producer.take() {
            producer.join().expect("the producer failed");
        }
        kafka::wait_for_group_to_consume_all(
            &self.bootstrap,
            &self.topics.group,
            &[&self.topics.telemetry, &self.topics.schedule],
            self.budget(),
            || self.logs(),
        );
        for id in self.live.keys().cloned().collect::<Vec<_>>() {
            self.stop(&id);
        }
        let tally = Tally::read(
            &self.bootstrap,
            &self.topics,
            &self.input.expected,
            self.budget(),
        );
        eprintln!(
            "{} ({:?}, {:?}): {}; {:.1} s",
            self.name,
            self.guarantee,
            self.side,
            tally.summary(),
            self.started.elapsed().as_secs_f64()
        );
        let mut problems = std::mem::take(&mut self.problems);
        problems.extend(tally.violations(self.guarantee));
        if !problems.is_empty() {
            self.dir.disable_cleanup(true);
        }
        assert!(
            problems.is_empty(),
            "{}: {}\n{}\nexamples:\n{}\nlogs in {}",
            self.name,
            problems.join("; "),
            tally.summary(),
            tally
                .examples
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
            self.dir.path().display()
        );
    }
}

impl Drop for Scenario {
    /// Kills what still runs, then deletes the scenario's topics (the changelog too): at full
    /// scale each scenario leaves about a gigabyte per broker otherwise.
    fn drop(&mut self) {
        self.live.clear();
        let changelog = format!("{}-state-changelog", self.topics.group);
        let mut names = self.topics.all().to_vec();
        names.push(&changelog);
        kafka::delete_topics(&self.bootstrap, &names);
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n") + "\n"
}

/// The control: one instance, no failure. Every check must pass on any build (it shows the
/// checks do not fail for nothing). On the shared 3-node cluster when the scenarios run, else
/// wherever the Kafka tests run (`KAFKA_BOOTSTRAP`).
#[test]
fn an_uninterrupted_run_equals_replay_exactly_once() {
    let (bootstrap, cluster) = if scenarios_enabled("control (3 nodes)") {
        let c = Cluster::shared(3, "eos-kafka-");
        (c.bootstrap.clone(), Some(c))
    } else {
        let Some(b) = kafka::bootstrap() else {
            return;
        };
        (b, None)
    };
    let serial = serial();
    let mut s = Scenario::on(
        "control",
        Guarantee::ExactlyOnce,
        ServiceSide::Issue13,
        bootstrap,
        cluster,
        serial,
    );
    s.start("a");
    s.settle();
    s.produce();
    s.finish();
}

/// KIP-848's consumer group protocol (`group_protocol = "consumer"`, incremental, assigned by
/// the broker): a second instance joins mid-stream and the first leaves (SIGTERM), the group
/// settling each time; a `read_committed` reader sees exactly one prediction per valid event,
/// equal to replay's. On the single broker (Kafka 4's protocol is on there), at the size
/// `FLEETSCORE_EOS_EVENTS` sets.
#[test]
fn a_join_and_a_leave_under_kip_848_exactly_once() {
    if !scenarios_enabled("KIP-848") {
        return;
    }
    let Some(bootstrap) = kafka::bootstrap() else {
        return;
    };
    let serial = serial();
    let mut s = Scenario::on(
        "kip848",
        Guarantee::ExactlyOnce,
        ServiceSide::Issue13,
        bootstrap,
        None,
        serial,
    );
    s.extra = "group_protocol = \"consumer\"\n".to_owned();
    s.start("a");
    s.settle();
    s.produce();
    s.wait_progress(0.3);
    s.start("b");
    s.settle();
    // Incremental: `a` gave up only the partitions that moved to `b` (the classic protocol
    // revokes all six of them, then hands back the ones `a` keeps).
    let revocations: Vec<String> = s.live["a"]
        .log_text()
        .lines()
        .filter(|l| l.contains("partitions revoked"))
        .map(str::to_owned)
        .collect();
    assert!(
        !revocations.is_empty() && revocations.iter().all(|l| l.matches("(\"").count() < 6),
        "expected only partial revocations under KIP-848:\n{}",
        revocations.join("\n")
    );
    s.wait_progress(0.6);
    s.stop("a");
    s.settle();
    s.finish();
}

/// (a) `kill -9` three times mid-stream (at a quarter, half and three quarters of the
/// predictions), restarting the instance each time.
fn kill_9_three_times(guarantee: Guarantee, side: ServiceSide) {
    let Some(mut s) = Scenario::new("kill-9", guarantee, side) else {
        return;
    };
    s.start("a");
    s.settle();
    s.produce();
    for quarter in 1..=3 {
        s.wait_progress(f64::from(quarter) / 4.0);
        s.kill("a");
        s.start("a");
    }
    s.finish();
}

#[test]
fn kill_9_three_times_exactly_once() {
    kill_9_three_times(Guarantee::ExactlyOnce, ServiceSide::Issue13);
}

#[test]
fn kill_9_three_times_at_least_once() {
    kill_9_three_times(Guarantee::AtLeastOnce, ServiceSide::Issue13);
}

/// (b) Rebalance churn, as `streams_eos_test.py`: three instances of one group join, leave
/// (SIGTERM) and die (`kill -9`) while the stream runs; after each change the group settles
/// and the stream moves on before the next.
fn rebalance_churn(guarantee: Guarantee, side: ServiceSide) {
    let Some(mut s) = Scenario::new("churn", guarantee, side) else {
        return;
    };
    s.start("a");
    s.settle();
    s.produce();
    s.wait_progress(0.1);
    s.start("b");
    s.settle();
    s.wait_progress(0.2);
    s.start("c");
    s.settle();
    s.wait_progress(0.3);
    s.stop("b");
    s.settle();
    s.wait_progress(0.4);
    s.kill("c");
    s.settle();
    s.wait_progress(0.5);
    s.start("b");
    s.start("c");
    s.settle();
    s.wait_progress(0.6);
    s.kill("a");
    s.settle();
    s.wait_progress(0.7);
    s.stop("c");
    s.start("a");
    s.settle();
    s.wait_progress(0.8);
    s.kill("b");
    s.settle();
    s.finish();
}

#[test]
fn rebalance_churn_exactly_once() {
    rebalance_churn(Guarantee::ExactlyOnce, ServiceSide::Issue13);
}

#[test]
fn rebalance_churn_at_least_once() {
    rebalance_churn(Guarantee::AtLeastOnce, ServiceSide::Issue13);
}

/// A killed node, started again when dropped (so a failed test leaves the shared cluster whole).
struct NodeDown {
    cluster: &'static Cluster,
    node: Option<u32>,
}

impl NodeDown {
    fn kill(cluster: &'static Cluster, node: u32) -> Self {
        cluster.kill_node(node);
        Self {
            cluster,
            node: Some(node),
        }
    }

    fn restart(mut self) {
        if let Some(node) = self.node.take() {
            self.cluster.start_node(node);
        }
    }
}

impl Drop for NodeDown {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            self.cluster.try_node_command("start-node", node);
        }
    }
}

/// (c) Broker bounce: `kill -9` the node leading (most of) the state changelog's partitions
/// mid-stream, let the stream go on without it, start it again.
#[test]
fn broker_bounce_exactly_once() {
    let side = ServiceSide::Issue13;
    let Some(mut s) = Scenario::new("bounce", Guarantee::ExactlyOnce, side) else {
        return;
    };
    let cluster = s.cluster.expect("the shared cluster");
    // A node's death is noticed after the controller's broker session (9 s): the transactions
    // caught in it must outlive that, or their producer is fenced and the instance exits
    // (README: riding through a broker loss).
    if side == ServiceSide::Issue13 {
        s.extra = "transaction_timeout_ms = 60000\n".to_owned();
    }
    s.start("a");
    s.start("b");
    s.settle();
    s.produce();
    s.wait_progress(0.3);
    // Today's service writes no changelog: then the inputs' leader is bounced instead.
    let topic = match side {
        ServiceSide::Issue13 => format!("{}-state-changelog", s.topics.group),
        ServiceSide::Today => s.topics.telemetry.clone(),
    };
    let leaders = cluster.leaders(&topic, Duration::from_secs(60));
    let node = (1..=3)
        .max_by_key(|n| (leaders.iter().filter(|l| *l == n).count(), -i64::from(*n)))
        .unwrap();
    eprintln!("bounce: killing node {node}, leader of {topic} partitions: {leaders:?}");
    let down = NodeDown::kill(cluster, node);
    s.wait_progress(0.6);
    down.restart();
    s.finish();
}

/// (d) Zombie: SIGSTOP one instance until its partitions have moved to the other (by the
/// other's log), then SIGCONT. Woken, it either tries to commit first and is fenced (exits
/// non-zero), or librdkafka first notices the expired session: the instance aborts its
/// transaction as a lost assignment and rejoins as a fresh member, given partitions again
/// (which of the two is a race between the pipeline thread and librdkafka's; CI saw both).
/// Either must happen within 30 s; a rejoined zombie is then stopped like any instance,
/// and a `read_committed` reader must see nothing the zombie wrote (the checks of `finish`).
/// What the service logs when it is given partitions (`kafka::rebalance`).
const ASSIGNED: &str = "partitions assigned";

#[test]
fn zombie_is_fenced_exactly_once() {
    let Some(mut s) = Scenario::new("zombie", Guarantee::ExactlyOnce, ServiceSide::Issue13) else {
        return;
    };
    s.start("a");
    s.start("b");
    s.settle();
    s.produce();
    s.wait_progress(0.3);
    s.signal("a", "-STOP");
    s.settle();
    // The new owner processes (and commits) what the zombie had in hand.
    s.wait_progress(0.5);
    let assigned_before = s.live["a"].log_text().matches(ASSIGNED).count();
    s.signal("a", "-CONT");
    let mut zombie = s.live.remove("a").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = zombie.try_wait_for(Duration::from_millis(100)) {
            if status.success() {
                s.problems.push(format!(
                    "the zombie exited successfully after SIGCONT; log:\n{}",
                    tail(&zombie.log_text())
                ));
            } else {
                eprintln!("zombie: fenced, exited {status} after SIGCONT");
            }
            break;
        }
        if zombie.log_text().matches(ASSIGNED).count() > assigned_before {
            eprintln!("zombie: found its assignment lost after SIGCONT, aborted and rejoined");
            s.live.insert("a".to_string(), zombie);
            break;
        }
        if Instant::now() > deadline {
            s.problems.push(format!(
                "the zombie neither exited non-zero nor rejoined the group within 30 s of \
                 SIGCONT; log:\n{}",
                tail(&zombie.log_text())
            ));
            zombie.signal("-KILL");
            zombie.wait(Duration::from_secs(30));
            break;
        }
    }
    s.finish();
}

/// (feature `fault-injection`) A `send_offsets_to_transaction` call that never returns, as
/// librdkafka's can once the coordinator's broker is gone (librdkafka #5456 and #5511; seen
/// here as a service gone quiet for good after a broker was killed): the instance gives up on
/// it past its timeout, replaces the producer (which fences the stuck one; the broker aborts
/// its transaction) and rewinds, without a restart. A `read_committed` reader still sees
/// exactly one prediction per event, equal to replay's. On the single broker: the fault is
/// injected, no broker needs to die.
#[cfg(feature = "fault-injection")]
#[test]
fn a_transaction_call_that_never_returns_is_left_behind_exactly_once() {
    if !scenarios_enabled("hung call") {
        return;
    }
    let Some(bootstrap) = kafka::bootstrap() else {
        return;
    };
    let serial = serial();
    let mut s = Scenario::on(
        "hung-call",
        Guarantee::ExactlyOnce,
        ServiceSide::Issue13,
        bootstrap,
        None,
        serial,
    );
    s.env.push((
        "FLEETSCORE_FAULT".to_owned(),
        "kafka-offsets-hang".to_owned(),
    ));
    s.start("a");
    s.settle();
    s.produce();
    // The fault fires a few commits in (a commit every 20 ms): well before half the stream,
    // whose release waits for this progress.
    s.wait_progress(0.5);
    s.live["a"].wait_for_log("replacing the Kafka producer", s.budget());
    s.finish();
}
