//! Helpers for the HTTP tests: a service context over copies of the fixture models, requests
//! through `tower::ServiceExt::oneshot`, a tiny HTTP/1.1 client for real sockets, and
//! real-shaped events.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use fleet_features::{Event, FeatureSet};
use fleetscore::app::{AppContext, Readiness};
use fleetscore::config::Config;
use fleetscore::drift::DriftMonitor;
use fleetscore::http::App;
use fleetscore::model::{Registry, RegistryConfig};
use fleetscore::store::StateStore;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common;

pub const TOKEN: &str = "s3cret-admin-token";

/// A service over a temporary models directory holding copies of the fixtures.
pub struct Service {
    pub dir: tempfile::TempDir,
    pub ctx: Arc<AppContext>,
}

impl Service {
    /// engine-rul 1 and 2, delay-risk 1, engine-rul-mlp 1, nan-on-real-rows 1 (valid) and
    /// nan-model 1 (rejected); `edit` adjusts the configuration.
    pub fn new(edit: impl FnOnce(&mut Config)) -> Self {
        Self::with_models(
            &[
                ("engine-rul", "1"),
                ("engine-rul", "2"),
                ("delay-risk", "1"),
                ("engine-rul-mlp", "1"),
                ("nan-on-real-rows", "1"),
                ("nan-model", "1"),
            ],
            false,
            edit,
        )
    }

    pub fn with_models(
        models: &[(&str, &str)],
        streaming: bool,
        edit: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, version) in models {
            common::publish(dir.path(), name, version, name, version);
        }
        let mut config = Config::default();
        config.models.dir = dir.path().to_owned();
        config.models.validate_in_child = false;
        edit(&mut config);
        let registry = Arc::new(Registry::new(RegistryConfig::new(dir.path())));
        registry.rescan();
        let ctx = Arc::new(AppContext {
            drift: Arc::new(DriftMonitor::new(config.drift.clone())),
            config,
            registry,
            store: Arc::new(StateStore::new()),
            readiness: Arc::new(Readiness::new(streaming)),
        });
        Self { dir, ctx }
    }

    pub fn app(&self) -> App {
        fleetscore::http::app(Arc::clone(&self.ctx)).unwrap()
    }

    /// Rescans the models directory (after publishing into it).
    pub fn rescan(&self) {
        self.ctx.registry.rescan();
    }
}

/// A response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }
}

pub async fn send(app: &App, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let is_json = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
    let json = if is_json {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    } else {
        Value::Null
    };
    if status.is_client_error() || status.is_server_error() {
        assert!(is_json, "error without a JSON body: {status} {text}");
        let readiness = json.get("ready").is_some();
        assert!(
            readiness || (json["error"].is_string() && json["code"].is_string()),
            "{text}"
        );
    }
    Reply {
        status,
        headers,
        text,
        json,
    }
}

pub async fn get(app: &App, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub async fn post(app: &App, uri: &str, body: &Value) -> Reply {
    request(app, Method::POST, uri, Some(body), None).await
}

pub async fn request(
    app: &App,
    method: Method,
    uri: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(value) => {
            builder = builder.header("content-type", "application/json");
            Body::from(serde_json::to_vec(value).unwrap())
        }
        None => Body::empty(),
    };
    send(app, builder.body(body).unwrap()).await
}

/// The golden rows of a fixture as named-feature objects, and the expected outputs.
pub fn golden_rows(name: &str, version: &str) -> (Vec<Value>, Vec<f32>) {
    let manifest = common::read_json(
        &common::fixtures()
            .join(name)
            .join(version)
            .join("manifest.json"),
    );
    let names: Vec<String> = serde_json::from_value(manifest["input"]["features"].clone()).unwrap();
    let (flat, outputs) = common::golden(name, version);
    let rows = flat
        .chunks(names.len())
        .map(|row| {
            Value::Object(
                names
                    .iter()
                    .zip(row)
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect(),
            )
        })
        .collect();
    (rows, outputs)
}

/// The golden rows of a fixture as a flat row-major vector (for `infer`).
pub fn golden_flat(name: &str, version: &str) -> (Vec<f32>, Vec<f32>) {
    common::golden(name, version)
}

/// Predictions as the f32 they were (JSON carries their shortest decimal form).
pub fn f32s(value: &Value) -> Vec<f32> {
    serde_json::from_value(value.clone()).unwrap()
}

pub fn assert_close(got: &Value, want: &[f32]) {
    let got: Vec<f32> = serde_json::from_value(got.clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

/// A telemetry event shaped like C-MAPSS FD001 unit 1 (its first cycle's readings, drifting
/// with the cycle); cycle 1 at 2026-01-01T00:00:00Z, one cycle an hour.
pub fn telemetry(tail: &str, cycle: u32) -> Value {
    const FIRST: [f64; 21] = [
        518.67, 641.82, 1589.70, 1400.60, 14.62, 21.61, 554.36, 2388.06, 9046.19, 1.30, 47.47,
        521.66, 2388.02, 8138.62, 8.4195, 0.03, 392.0, 2388.0, 100.0, 39.06, 23.4190,
    ];
    let sensors: serde_json::Map<String, Value> = fleet_features::event::SENSOR_NAMES
        .iter()
        .zip(FIRST)
        .enumerate()
        .map(|(i, (name, v))| {
            let drift = 1.0 + 1e-4 * f64::from(cycle) * ((i % 3) as f64 - 1.0);
            (name.to_string(), json!((v * drift * 1e4).round() / 1e4))
        })
        .collect();
    json!({
        "schema": "fleet.telemetry.v1",
        "event_id": format!("test:{tail}:c{cycle}"),
        "tail": tail,
        "engine": 1,
        "event_time": (chrono::DateTime::UNIX_EPOCH
            + chrono::Duration::days(20_454)
            + chrono::Duration::hours(i64::from(cycle) - 1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "cycle": cycle,
        "settings": [-0.0007, -0.0004, 100.0],
        "sensors": sensors,
    })
}

pub fn decode(event: &Value) -> Event {
    Event::decode(&serde_json::to_vec(event).unwrap()).unwrap()
}

/// Applies `cycles` telemetry events to the tail's live state, as the streaming path would.
pub fn stream_telemetry(ctx: &AppContext, tail: &str, cycles: std::ops::RangeInclusive<u32>) {
    for cycle in cycles {
        let event = decode(&telemetry(tail, cycle));
        ctx.store.with_entry(tail, |entry| {
            entry.state.apply(&event);
            entry.partition = Some(3);
            entry.last_source = Some(fleetscore::store::SourceRef {
                topic: "fleet.telemetry.v1".to_owned(),
                partition: 3,
                offset: i64::from(cycle) + 99,
            });
            entry.last_applied_at = Some(chrono::Utc::now());
        });
    }
}

/// What the registry's serving model says for `state`, computed in-process.
pub fn in_process_score(ctx: &AppContext, model: &str, state: &fleet_features::TailState) -> f32 {
    let serving = ctx.registry.serving_by_name(model).unwrap();
    let set: &FeatureSet = serving.serving.feature_set;
    let mut features = Vec::new();
    set.compute(state, &mut features).unwrap();
    let mut out = Vec::new();
    serving.score(&features, &mut out).unwrap();
    out[0]
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    try_http(addr, method, path, body).unwrap()
}

/// [`http`], failing instead of panicking when the server closes the connection unanswered.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if response.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(parse_response(&response))
}

/// A keep-alive HTTP/1.1 connection: several requests, one after the other.
pub struct KeepAlive {
    pub stream: TcpStream,
    /// Bytes read past the last response (pipelined responses): the start of the next.
    received: Vec<u8>,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self {
            stream,
            received: Vec::new(),
        }
    }

    /// Sends a request and reads its response (by `Content-Length`): status, headers, body.
    pub fn request(&mut self, method: &str, path: &str) -> std::io::Result<(u16, String, String)> {
        write!(
            self.stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
        )?;
        self.response()
    }

    /// Reads a response (by `Content-Length`): status, headers, body. Bytes read past it are
    /// kept for the next call.
    pub fn response(&mut self) -> std::io::Result<(u16, String, String)> {
        let received = &mut self.received;
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let body =
                        String::from_utf8_lossy(&received[end + 4..end + 4 + length]).into_owned();
                    received.drain(..end + 4 + length);
                    return Ok((status, head, body));
                }
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            received.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits (up to `limit`) for the server to close the connection; how long that took, or
    /// `None` if it stayed open.
    pub fn wait_closed(&mut self, limit: Duration) -> Option<Duration> {
        wait_closed(&mut self.stream, limit)
    }
}

/// Waits (up to `limit`) for the peer to close `stream` (end of stream or reset), discarding
/// what it sends; how long that took, or `None` if it stayed open.
pub fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(start.elapsed()),
        }
        if start.elapsed() >= limit {
            return None;
        }
        stream
            .set_read_timeout(Some(
                limit
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
    }
}

pub fn parse_response(response: &str) -> (u16, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
