//! The fleet view's data on a real Apache Kafka broker with the built binary: the board
//! (`GET /fleet`) equals `GET /tails/{tail}` row for row and is ranked by risk as recomputed
//! here; each trend (`GET /tails/{tail}/history`) is the newest predictions of `fleetscore
//! replay` of the same events, value for value; the live stream (`GET /events`) delivers the
//! alerts raised in the stream and converges on the board; streams beyond the cap get a 503
//! and open streams end at shutdown. And, without a broker, the page and its assets.

mod common;
mod http_support;
mod kafka;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kafka::{Service, Topics, bootstrap, create_topics};
use serde_json::Value;

const HISTORY_POINTS: usize = 150;

fn shipped_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// One server-sent event: its type and data.
type Sse = (String, String);

/// Opens `GET /events` and forwards each event to the returned channel from a thread; the
/// channel closes when the server ends the stream. The status line comes back at once.
fn subscribe(addr: &str) -> (String, mpsc::Receiver<Sse>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    // HTTP/1.0: the body is the rest of the connection (no chunked encoding to undo).
    write!(stream, "GET /events HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut kind, mut data) = (String::new(), String::new());
        let mut in_body = false;
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if !in_body {
                in_body = line.is_empty();
                continue;
            }
            if line.is_empty() {
                if !kind.is_empty() && tx.send((kind.clone(), data.clone())).is_err() {
                    return;
                }
                kind.clear();
                data.clear();
            } else if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
    });
    (status, rx)
}

/// What a page holds: the board's rows by tail, from the snapshot and the updates so far.
#[derive(Default)]
struct Page {
    rows: BTreeMap<String, Value>,
    /// Every (tail, severity) a row arrived with in an update.
    severities_seen: Vec<(String, String)>,
}

impl Page {
    fn apply(&mut self, (kind, data): &Sse) {
        let message: Value = serde_json::from_str(data).unwrap();
        match kind.as_str() {
            "snapshot" => {
                self.rows.clear();
                for row in message["tails"].as_array().unwrap() {
                    self.rows
                        .insert(row["tail"].as_str().unwrap().to_owned(), row.clone());
                }
            }
            "board" => {
                for row in message["rows"].as_array().unwrap() {
                    let tail = row["tail"].as_str().unwrap().to_owned();
                    if let Some(severity) = row["severity"].as_str() {
                        self.severities_seen
                            .push((tail.clone(), severity.to_owned()));
                    }
                    self.rows.insert(tail, row.clone());
                }
                for tail in message["removed"].as_array().unwrap() {
                    self.rows.remove(tail.as_str().unwrap());
                }
            }
            "models" => {}
            other => panic!("unexpected event {other}: {data}"),
        }
    }
}

/// The board's risk, recomputed from a row's values, its open alerts and the columns' rules
/// as the README states it.
fn expected_risk(row: &Value, columns: &[Value]) -> f64 {
    let alerts = row["open_alerts"].as_array().unwrap();
    let worst = alerts.first().map(|a| a["severity"].as_str().unwrap());
    let rank = match worst {
        Some("critical") => 3.0,
        Some("warning") => 2.0,
        Some("info") => 1.0,
        _ => 0.0,
    };
    // The rules behind the worst alert (every rule, without an alert).
    let behind: Vec<&str> = alerts
        .iter()
        .filter(|a| a["severity"].as_str() == worst)
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    let mut toward: f64 = 0.0;
    for column in columns {
        let value = &row["values"][column["model"].as_str().unwrap()];
        if value.is_null() {
            continue;
        }
        let rules = column["rules"].as_array().unwrap();
        if worst.is_none() && rules.is_empty() && column["unit"] == "probability" {
            toward = toward.max(value["value"].as_f64().unwrap().min(0.999));
        }
        for rule in rules {
            if worst.is_some() && !behind.contains(&rule["name"].as_str().unwrap()) {
                continue;
            }
            let watched = match rule["on"].as_str().unwrap() {
                "lower" => value["lower"].as_f64(),
                "upper" => value["upper"].as_f64(),
                _ => value["value"].as_f64(),
            };
            let Some(x) = watched else { continue };
            let thresholds = rule["levels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["threshold"].as_f64().unwrap());
            let below = rule["direction"] == "below";
            let first = if below {
                thresholds.fold(f64::MIN, f64::max)
            } else {
                thresholds.fold(f64::MAX, f64::min)
            };
            let margin = (if below { first - x } else { x - first }) / first.abs();
            toward = toward.max(0.5 + 0.5 * margin / (1.0 + margin.abs()));
        }
    }
    rank + toward
}

/// `fleetscore replay` of `events` with the service's configuration: the predictions per
/// (tail, model), in event order.
fn replayed(events: &Path, config: &Path, dir: &Path) -> HashMap<(String, String), Vec<Value>> {
    let out = dir.join("replay.jsonl");
    let status = kafka::fleetscore()
        .args(["replay", "--config"])
        .arg(config)
        .arg("-i")
        .arg(events)
        .arg("-o")
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "fleetscore replay failed: {status}");
    let mut by_tail: HashMap<(String, String), Vec<Value>> = HashMap::new();
    for line in std::fs::read_to_string(out).unwrap().lines() {
        let p: Value = serde_json::from_str(line).unwrap();
        let key = (
            p["tail"].as_str().unwrap().to_owned(),
            p["model"].as_str().unwrap().to_owned(),
        );
        by_tail.entry(key).or_default().push(p);
    }
    by_tail
}

#[test]
fn the_board_trends_and_live_updates_follow_the_stream() {
    let Some(bootstrap) = bootstrap() else {
        return;
    };
    let topics = Topics::new("fleet-view");
    create_topics(&bootstrap, &topics);
    let dir = tempfile::tempdir().unwrap();
    let events = kafka::interleaved(dir.path());
    let extra = format!(
        "[models.routes]\n\"engine-health\" = [\"engine-rul\", \"engine-anomaly\"]\n\n\
         [fleet_view]\nhistory_points = {HISTORY_POINTS}\nupdate_interval_ms = 100\n\
         max_event_streams = 2\n"
    );
    let config = kafka::config(dir.path(), &bootstrap, &topics, &shipped_models(), &extra);
    let mut service = Service::start(&config, &dir.path().join("serve.log"));
    service.wait_for_log("partitions assigned", Duration::from_secs(60));
    let addr = kafka::http_addr(&service);

    // Two pages open before the stream starts; a third is one too many.
    let (status, page_events) = subscribe(&addr);
    assert!(
        status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"),
        "{status}"
    );
    let (_, _second) = subscribe(&addr);
    let (status, refused) = kafka::http_get_status(&service, "/events");
    assert_eq!(status, 503, "{refused}");
    assert!(refused.contains("too_many_streams"), "{refused}");
    assert!(
        refused.to_lowercase().contains("retry-after: 1"),
        "{refused}"
    );

    let mut page = Page::default();
    let first = page_events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first.0, "snapshot");
    page.apply(&first);
    assert!(page.rows.is_empty(), "nothing was produced yet");

    let ids = kafka::event_ids(&events);
    kafka::produce_all(&bootstrap, &topics, &events);
    kafka::wait_for_every_event(
        &bootstrap,
        &topics,
        &ids,
        Duration::from_secs(240),
        &service,
    );

    // The board against the tails, row for row.
    let fleet = kafka::http_get_json(&service, "/fleet");
    let columns = fleet["columns"].as_array().unwrap().clone();
    let models: Vec<&str> = columns
        .iter()
        .map(|c| c["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["engine-rul", "engine-anomaly", "delay-risk"]);
    assert_eq!(columns[0]["unit"], "cycles");
    assert_eq!(columns[0]["interval"], true);
    assert_eq!(fleet["instance"]["partitions"].as_array().unwrap().len(), 3);
    let rows = fleet["tails"].as_array().unwrap();
    assert_eq!(rows.len(), 100, "one row per engine");
    let mut critical = 0;
    for row in rows {
        let tail = row["tail"].as_str().unwrap();
        let summary = kafka::http_get_json(&service, &format!("/tails/{tail}"));
        for p in summary["predictions"].as_array().unwrap() {
            let value = &row["values"][p["model"].as_str().unwrap()];
            assert_eq!(value["value"], p["prediction"], "{tail}");
            assert_eq!(value["model_version"], p["model_version"], "{tail}");
            assert_eq!(value["event_time"], p["event_time"], "{tail}");
            assert_eq!(value["lower"], p["interval"]["lower"], "{tail}");
            assert_eq!(value["upper"], p["interval"]["upper"], "{tail}");
        }
        assert_eq!(
            row["values"].as_object().unwrap().len(),
            summary["predictions"].as_array().unwrap().len()
        );
        assert_eq!(row["open_alerts"], summary["alerts"], "{tail}");
        assert_eq!(row["severity"], summary["alerts"][0]["severity"], "{tail}");
        assert_eq!(
            row["state"]["events_applied"],
            summary["state"]["events_applied"]
        );
        let risk = row["risk"].as_f64().unwrap();
        let expected = expected_risk(row, &columns);
        // The service computes in f64 from f32 values, JSON carries their shortest decimal form.
        assert!(
            (risk - expected).abs() < 1e-6,
            "{tail}: {risk} vs {expected}"
        );
        critical += usize::from(row["severity"] == "critical");
    }
    assert!(
        critical >= 50,
        "only {critical} engines critical at their end of life"
    );
    let risks: Vec<f64> = rows.iter().map(|r| r["risk"].as_f64().unwrap()).collect();
    assert!(
        risks.windows(2).all(|w| w[0] >= w[1]),
        "not riskiest first: {risks:?}"
    );

    // Each trend is the newest predictions of the same events replayed without Kafka.
    let replay = replayed(&events, &config, dir.path());
    for row in rows {
        let tail = row["tail"].as_str().unwrap();
        let history = kafka::http_get_json(&service, &format!("/tails/{tail}/history"));
        assert_eq!(history["capacity"], HISTORY_POINTS);
        let series = history["series"].as_array().unwrap();
        assert_eq!(series.len(), 2, "{tail}: {history}");
        for s in series {
            let model = s["model"].as_str().unwrap();
            let all = &replay[&(tail.to_owned(), model.to_owned())];
            let newest = &all[all.len().saturating_sub(HISTORY_POINTS)..];
            let points = s["points"].as_array().unwrap();
            assert_eq!(points.len(), newest.len(), "{tail} {model}");
            assert_eq!(points.len(), all.len().min(HISTORY_POINTS));
            for (point, p) in points.iter().zip(newest) {
                assert_eq!(point["value"], p["prediction"], "{tail} {model}");
                assert_eq!(point["event_time"], p["event_time"], "{tail} {model}");
                assert_eq!(point["model_version"], p["model_version"]);
                assert_eq!(point["lower"], p["interval"]["lower"]);
                assert_eq!(point["upper"], p["interval"]["upper"]);
            }
        }
    }

    // The page saw the alerts raised in the stream, and converges on the board.
    let want: BTreeMap<String, Value> = rows
        .iter()
        .map(|r| (r["tail"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while page.rows != want {
        let left = deadline.saturating_duration_since(Instant::now());
        match page_events.recv_timeout(left) {
            Ok(event) => page.apply(&event),
            Err(e) => panic!(
                "the page did not converge on the board ({e}): {} rows of {}",
                page.rows.len(),
                want.len()
            ),
        }
    }
    let raised: Vec<&(String, String)> = page
        .severities_seen
        .iter()
        .filter(|(_, s)| s == "critical")
        .collect();
    assert!(
        raised.len() >= critical,
        "{} critical rows arrived live",
        raised.len()
    );

    // Shutdown ends the open streams: the service exits at once, not after its drain timeout.
    let stopping = Instant::now();
    service.signal("-TERM");
    let status = service.wait(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", service.log_text());
    assert!(
        stopping.elapsed() < Duration::from_secs(9),
        "shutdown waited {:?} for the open streams",
        stopping.elapsed()
    );
    // The stream ended (the reader saw the end of it), rather than being left hanging.
    loop {
        match page_events.recv_timeout(Duration::from_secs(10)) {
            Ok(event) => page.apply(&event),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the stream did not end at shutdown: {e}"),
        }
    }
}

#[tokio::test]
async fn the_page_and_its_assets_are_embedded_with_etags_and_a_strict_policy() {
    let service = http_support::Service::new(|_| {});
    let app = service.app();
    let page = http_support::get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert!(!page.text.contains("{{v}}"));
    for asset in ["/assets/app.js?v=", "/assets/app.css?v="] {
        assert!(page.text.contains(asset), "{asset} not in the page");
    }
    for (path, mime) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let reply = http_support::get(&app, path).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(mime)
        );
        assert!(
            reply.headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        let etag = reply.headers["etag"].clone();
        let again = http_support::send(
            &app,
            Request::get(path)
                .header("if-none-match", etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.text.is_empty());
    }

    // An empty board still says what it would show.
    let fleet = http_support::get(&app, "/fleet").await;
    assert_eq!(fleet.status, StatusCode::OK);
    assert_eq!(fleet.json["tails"].as_array().unwrap().len(), 0);
    assert_eq!(fleet.json["columns"][0]["model"], "engine-rul");
    let unknown = http_support::get(&app, "/tails/N00000/history").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "unknown_tail")
    );
}
