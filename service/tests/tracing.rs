//! OpenTelemetry traces and JSON logs, exported by the built binary to an OTLP receiver in the
//! test process (`otlp`).
//!
//! - Kafka (real broker): telemetry events produced with a `traceparent` (four in five sampled
//!   upstream) yield, per micro-batch holding a sampled one, a `process` span linking to each
//!   sampled event's context (with its partition and offset), `score` and `send` spans inside
//!   that trace, and predictions whose `traceparent` names the `send` span; attributes after the
//!   messaging conventions. The root sampling ratio is 0: only the producer's sampling
//!   decision, followed through the links, samples a batch.
//! - HTTP (no broker): a request with a `traceparent` gets a server span continuing that trace;
//!   requests without one are not sampled (ratio 0); `--log-format json` writes only JSON lines,
//!   and the one logged inside the request names its trace and span.

mod common;
mod kafka;
mod otlp;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka::{Service, Topics, bootstrap, create_topics};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use otlp::{Receiver, attr, hex};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

/// The environment that turns tracing on, exporting to `receiver`, sampling no trace that
/// starts here.
fn otel_env(receiver: &Receiver) -> Vec<(String, String)> {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_SERVICE_NAME", "fleetscore-under-test".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", "0".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// An upstream context, sampled or not: (trace id, span id, traceparent).
fn context(i: u64, sampled: bool) -> (String, String, String) {
    let trace = format!("{:032x}", 0x00f1_ee75_0000_0000_u64 + i);
    let span = format!("{:016x}", 0x5eed_0000_u64 + i);
    let flags = if sampled { "01" } else { "00" };
    let traceparent = format!("00-{trace}-{span}-{flags}");
    (trace, span, traceparent)
}

/// A sampled upstream context.
fn upstream(i: u64) -> (String, String, String) {
    context(i, true)
}

#[test]
fn a_traced_event_is_followed_through_the_pipeline_to_its_prediction() {
    let Some(bootstrap) = bootstrap() else {
        return;
    };
    let receiver = Receiver::start();
    let topics = Topics::new("tracing");
    create_topics(&bootstrap, &topics);
    let dir = tempfile::tempdir().unwrap();
    let config = kafka::config(dir.path(), &bootstrap, &topics, &common::fixtures(), "");
    let service = Service::start_with_env(
        &config,
        &dir.path().join("service.log"),
        &otel_env(&receiver),
    );

    // Forty engine cycles, each produced with a context of its own; every fifth one was not
    // sampled upstream.
    let events = kafka::cmapss_events(dir.path(), Some(40));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Upstream span id -> (trace id, partition, offset, event id, sampled).
    let mut produced: HashMap<String, (String, i32, i64, String, bool)> = HashMap::new();
    for (i, line) in std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .enumerate()
    {
        let event: Value = serde_json::from_str(line).unwrap();
        let tail = event["tail"].as_str().unwrap().to_owned();
        let sampled = i % 5 != 4;
        let (trace, span, traceparent) = context(i as u64, sampled);
        let headers = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(traceparent.as_bytes()),
        });
        let record = FutureRecord::to(&topics.telemetry)
            .key(&tail)
            .payload(line)
            .headers(headers);
        let delivery = runtime
            .block_on(producer.send(record, Duration::from_secs(30)))
            .unwrap();
        let event_id = event["event_id"].as_str().unwrap().to_owned();
        produced.insert(
            span,
            (
                trace,
                delivery.partition,
                delivery.offset,
                event_id,
                sampled,
            ),
        );
    }
    let ids: HashSet<String> = produced.values().map(|p| p.3.clone()).collect();
    let predictions = kafka::wait_for_every_event(
        &bootstrap,
        &topics,
        &ids,
        Duration::from_secs(120),
        &service,
    );

    // Spans are flushed at shutdown.
    let mut service = service;
    service.signal("-TERM");
    assert!(service.wait(Duration::from_secs(60)).success());
    let spans = receiver.spans();
    assert!(
        !spans.is_empty(),
        "no span exported; log:\n{}",
        service.log_text()
    );
    assert!(spans.iter().all(|s| s.service == "fleetscore-under-test"));

    // Every produced context is linked from exactly one `process` span, with its record's
    // partition and offset.
    let process: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == format!("process {}", topics.telemetry))
        .collect();
    assert!(!process.is_empty(), "no process span among {spans:#?}");
    let mut linked = HashSet::new();
    for p in &process {
        assert_eq!(p.span.kind, SpanKind::Consumer as i32);
        assert_eq!(p.parent_span_id(), "", "a batch starts its own trace");
        assert_eq!(p.attr("messaging.system").as_deref(), Some("kafka"));
        assert_eq!(
            p.attr("messaging.operation.type").as_deref(),
            Some("process")
        );
        assert_eq!(
            p.attr("messaging.operation.name").as_deref(),
            Some("process")
        );
        assert_eq!(
            p.attr("messaging.destination.name"),
            Some(topics.telemetry.clone())
        );
        assert_eq!(
            p.attr("messaging.consumer.group.name"),
            Some(topics.group.clone())
        );
        let count: usize = p
            .attr("messaging.batch.message_count")
            .unwrap()
            .parse()
            .unwrap();
        assert!(count >= p.span.links.len().max(1), "{count} records");
        for link in &p.span.links {
            let span_id = hex(&link.span_id);
            let (trace, partition, offset, _, sampled) = &produced[&span_id];
            assert!(sampled, "a link to a context not sampled upstream");
            assert_eq!(&hex(&link.trace_id), trace);
            assert_eq!(
                attr(&link.attributes, "messaging.destination.partition.id"),
                Some(partition.to_string())
            );
            assert_eq!(
                attr(&link.attributes, "messaging.kafka.offset"),
                Some(offset.to_string())
            );
            assert!(linked.insert(span_id), "a record linked twice");
        }
    }
    let sampled_upstream = produced.values().filter(|p| p.4).count();
    assert_eq!(
        linked.len(),
        sampled_upstream,
        "sampled records not linked from any batch"
    );

    // Each batch's score and send spans belong to its trace.
    let by_id: HashMap<String, &otlp::Received> = spans.iter().map(|s| (s.span_id(), s)).collect();
    let child_of = |s: &otlp::Received| {
        let parent = by_id
            .get(&s.parent_span_id())
            .unwrap_or_else(|| panic!("{s:?} has no exported parent"));
        assert_eq!(parent.trace_id(), s.trace_id());
        *parent
    };
    let sends: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == format!("send {}", topics.predictions))
        .collect();
    for s in spans.iter().filter(|s| s.span.name == "score") {
        assert!(process.iter().any(|p| p.span_id() == child_of(s).span_id()));
    }
    let scored = spans.iter().filter(|s| s.span.name == "score").count();
    assert_eq!(scored, process.len(), "one score span per batch");
    assert_eq!(sends.len(), process.len(), "one send span per batch");
    let mut sent = 0;
    for s in &sends {
        assert!(process.iter().any(|p| p.span_id() == child_of(s).span_id()));
        assert_eq!(s.span.kind, SpanKind::Producer as i32);
        assert_eq!(s.attr("messaging.operation.type").as_deref(), Some("send"));
        assert_eq!(
            s.attr("messaging.destination.name"),
            Some(topics.predictions.clone())
        );
        sent += s
            .attr("messaging.batch.message_count")
            .unwrap()
            .parse::<usize>()
            .unwrap();
    }
    let traced = predictions
        .iter()
        .filter(|p| kafka::header(*p, "traceparent").is_some_and(|t| t.ends_with("-01")))
        .count();
    assert_eq!(
        sent, traced,
        "the send spans count every prediction they traced"
    );

    // Every prediction's traceparent names the send span of its batch, and a batch links to
    // each of its sampled source events; a prediction whose batch holds no sampled event
    // names a span that was not exported (not sampled: ratio 0).
    let send_ids: HashMap<String, &otlp::Received> =
        sends.iter().map(|s| (s.span_id(), *s)).collect();
    let source_sampled: HashMap<&str, bool> =
        produced.values().map(|p| (p.3.as_str(), p.4)).collect();
    for prediction in &predictions {
        let traceparent = kafka::header(prediction, "traceparent").expect("a traceparent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        let value: Value =
            serde_json::from_slice(rdkafka::Message::payload(prediction).unwrap()).unwrap();
        let source = value["source_event_id"].as_str().unwrap();
        assert_eq!(parts[0], "00", "{traceparent}");
        if parts[3] == "00" {
            assert!(
                !source_sampled[source],
                "{traceparent}: event {source} was sampled"
            );
            assert!(
                !by_id.contains_key(parts[2]),
                "{traceparent} names an exported span"
            );
            continue;
        }
        assert_eq!(parts[3], "01", "{traceparent}");
        let send = send_ids
            .get(parts[2])
            .unwrap_or_else(|| panic!("{traceparent} names no send span"));
        assert_eq!(send.trace_id(), parts[1]);
        let batch = child_of(send);
        let links_source = batch
            .span
            .links
            .iter()
            .any(|l| produced[&hex(&l.span_id)].3 == source);
        assert_eq!(
            links_source, source_sampled[source],
            "the batch of {traceparent} and event {source}"
        );
    }
}

/// `fleetscore --log-format json serve --no-kafka` with tracing on; returns it, its stderr
/// lines as they come and its HTTP address.
fn serve_http(
    receiver: &Receiver,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    SocketAddr,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--no-kafka",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("FLEETSCORE_MODELS_DIR", common::fixtures())
        .env_remove("FLEETSCORE_HTTP_ADDR")
        .env("RUST_LOG", "info,fleetscore::http=debug")
        .envs(otel_env(receiver))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("an 'HTTP listening' line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["fields"]["message"] == "HTTP listening" {
            break v["fields"]["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    (child, rx, addr)
}

/// One request with headers; the status.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_http_request_continues_its_callers_trace_and_json_logs_name_it() {
    let receiver = Receiver::start();
    let (mut child, lines, addr) = serve_http(&receiver);
    let deadline = Instant::now() + Duration::from_secs(60);
    while request(addr, "GET", "/readyz", "", b"") != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::yield_now();
    }
    let (bad_trace, bad_parent, bad) = upstream(1);
    let (ok_trace, ok_parent, ok) = upstream(2);
    let status = request(
        addr,
        "POST",
        "/score",
        &format!("traceparent: {bad}\r\n"),
        b"{\"model\": 1}",
    );
    assert_eq!(status, 422);
    let status = request(
        addr,
        "GET",
        "/models",
        &format!("traceparent: {ok}\r\n"),
        b"",
    );
    assert_eq!(status, 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let logged: Vec<Value> = lines
        .try_iter()
        .map(|line| {
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .collect();

    let spans = receiver.spans();
    // Only the two requests that came with a sampled context: none of the /readyz polls.
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let bad_span = spans
        .iter()
        .find(|s| s.trace_id() == bad_trace)
        .expect("the POST's span");
    assert_eq!(bad_span.span.name, "POST /score");
    assert_eq!(bad_span.span.kind, SpanKind::Server as i32);
    assert_eq!(bad_span.parent_span_id(), bad_parent);
    assert_eq!(
        bad_span.attr("http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(bad_span.attr("http.route").as_deref(), Some("/score"));
    assert_eq!(bad_span.attr("url.path").as_deref(), Some("/score"));
    assert_eq!(
        bad_span.attr("http.response.status_code").as_deref(),
        Some("422")
    );
    let ok_span = spans
        .iter()
        .find(|s| s.trace_id() == ok_trace)
        .expect("the GET's span");
    assert_eq!(ok_span.span.name, "GET /models");
    assert_eq!(ok_span.parent_span_id(), ok_parent);
    assert_eq!(
        ok_span.attr("http.response.status_code").as_deref(),
        Some("200")
    );

    // The refusal is logged inside the POST's span: its line names that trace and span.
    let refusal = logged
        .iter()
        .find(|v| v["trace_id"] == bad_trace.as_str())
        .unwrap_or_else(|| panic!("no log line in the POST's trace: {logged:#?}"));
    assert_eq!(refusal["span_id"], bad_span.span_id().as_str());
    assert_eq!(refusal["level"], "DEBUG");
    // Lines outside the requests' spans (shutdown, say) carry no ids.
    assert!(
        logged.iter().any(|v| v.get("trace_id").is_none()),
        "{logged:#?}"
    );
    assert!(logged.iter().all(|v| v.get("trace_id").is_none()
        || v["trace_id"] == bad_trace.as_str()
        || v["trace_id"] == ok_trace.as_str()));
}
