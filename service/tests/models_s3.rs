//! Model packages from object storage, against a real S3-compatible server (moto in server
//! mode, `tests/s3/requirements.txt`; `FLEETSCORE_MOTO_SERVER` names its executable, set by
//! scripts/test.sh): the built binary (`serve --no-kafka`, `[models] dir = "s3://..."`) serves
//! what is published to the bucket, swaps in a new version without a restart, leaves a
//! half-uploaded version alone, rejects a corrupted one while the old one serves, and when the
//! bucket goes away keeps serving its last good models while readiness and the metrics say the
//! source is failing.

mod common;
mod http_support;
mod kafka;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kafka::{Service, http_get_json, http_get_status, wait_until};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};

const BUCKET: &str = "fleet-models";
const PREFIX: &str = "prod";

/// moto's S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(server: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {server}: {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let addr = format!("127.0.0.1:{port}");
        wait_until(
            "moto listening",
            Duration::from_secs(60),
            || TcpStream::connect(&addr).map_err(|e| e.to_string()),
            String::new,
        );
        Self { child, endpoint }
    }

    /// `PUT /bucket` (moto takes it unsigned).
    fn create_bucket(&self, bucket: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap()
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uploads a local package as a data scientist would: every file, the manifest last (or
/// without it: a version still being uploaded).
async fn upload(s3: &AmazonS3, dir: &Path, name: &str, version: &str, manifest: bool) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|f| f != "manifest.json")
        .collect();
    files.sort();
    if manifest {
        files.push("manifest.json".to_owned());
    }
    for file in files {
        let location = ObjectPath::from(format!("{PREFIX}/{name}/{version}/{file}"));
        let bytes = std::fs::read(dir.join(&file)).unwrap();
        s3.put(&location, PutPayload::from(bytes)).await.unwrap();
    }
}

/// The state of `name/version` in `GET /models`, if listed.
fn state_of(models: &Value, name: &str, version: &str) -> Option<Value> {
    models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name && m["version"] == version)
        .cloned()
}

fn serving(models: &Value, name: &str) -> Option<String> {
    models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name && m["state"] == "serving")
        .map(|m| m["version"].as_str().unwrap().to_owned())
}

/// Successful syncs so far (`fleetscore_model_syncs_total{outcome="ok"}`).
fn syncs_ok(service: &Service) -> u64 {
    let (_, text) = http_get_status(service, "/metrics");
    text.lines()
        .find(|l| l.starts_with("fleetscore_model_syncs_total{outcome=\"ok\"}"))
        .and_then(|l| l.split_whitespace().last())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

/// `POST /score` of the golden rows of fixture `engine-rul/version`: they must come back.
fn score(service: &Service, version: &str) -> Value {
    let (rows, want) = http_support::golden_rows("engine-rul", version);
    let body = serde_json::to_vec(&json!({"model": "engine-rul", "rows": rows})).unwrap();
    let addr: std::net::SocketAddr = kafka::http_addr(service).parse().unwrap();
    let (status, text) = http_support::http(addr, "POST", "/score", Some(&body));
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    http_support::assert_close(&reply["predictions"], &want);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_from_object_storage_publish_swap_reject_and_outlive_the_bucket() {
    let Ok(server) = std::env::var("FLEETSCORE_MOTO_SERVER") else {
        assert!(
            std::env::var_os("FLEETSCORE_REQUIRE_S3").is_none(),
            "FLEETSCORE_MOTO_SERVER is not set (scripts/test.sh installs moto)"
        );
        eprintln!("skipped: FLEETSCORE_MOTO_SERVER is not set");
        return;
    };
    let mut moto = Moto::start(&server);
    moto.create_bucket(BUCKET);
    let s3 = moto.client();
    let local = tempfile::tempdir().unwrap();
    let publish = |name: &str, version: &str, as_version: &str| {
        common::publish(local.path(), name, version, name, as_version)
    };

    // Version 1 of each routed model, then the service.
    upload(
        &s3,
        &publish("engine-rul", "1", "1"),
        "engine-rul",
        "1",
        true,
    )
    .await;
    upload(
        &s3,
        &publish("delay-risk", "1", "1"),
        "delay-risk",
        "1",
        true,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetscore.toml");
    std::fs::write(
        &config,
        format!(
            "[models]\ndir = \"s3://{BUCKET}/{PREFIX}\"\ncache_dir = \"{}\"\nrescan_seconds = 1\n\
             settle_ms = 200\n\n[http]\naddr = \"127.0.0.1:0\"\n",
            dir.path().join("cache").display()
        ),
    )
    .unwrap();
    let service = Service::start_with(
        &config,
        &dir.path().join("serve.log"),
        &moto.env(),
        &["--no-kafka"],
    );
    let log = || service.log_text();
    wait_until(
        "ready, serving version 1 from the bucket",
        Duration::from_secs(90),
        || {
            let (status, text) = http_get_status(&service, "/readyz");
            (status == 200).then_some(()).ok_or(text)
        },
        log,
    );
    let ready = http_get_json(&service, "/readyz");
    assert_eq!(ready["models_source"]["ok"], true, "{ready}");
    assert_eq!(
        ready["models_source"]["url"],
        format!("s3://{BUCKET}/{PREFIX}")
    );
    let models = http_get_json(&service, "/models");
    assert_eq!(serving(&models, "engine-rul").as_deref(), Some("1"));
    score(&service, "1");

    // A new version, published to the bucket, serves without a restart.
    upload(
        &s3,
        &publish("engine-rul", "2", "2"),
        "engine-rul",
        "2",
        true,
    )
    .await;
    wait_until(
        "engine-rul 2 serving",
        Duration::from_secs(60),
        || {
            let models = http_get_json(&service, "/models");
            match serving(&models, "engine-rul").as_deref() {
                Some("2") => Ok(()),
                other => Err(format!("serving {other:?}")),
            }
        },
        log,
    );
    let reply = score(&service, "2");
    assert_eq!(reply["model_version"], "2");

    // A version still being uploaded (no manifest yet) is left alone.
    upload(
        &s3,
        &publish("engine-rul", "2", "3"),
        "engine-rul",
        "3",
        false,
    )
    .await;
    // A version whose model file is damaged (the manifest's checksum no longer matches).
    let bad = publish("engine-rul", "2", "4");
    let mut bytes = std::fs::read(bad.join("model.onnx")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(bad.join("model.onnx"), bytes).unwrap();
    upload(&s3, &bad, "engine-rul", "4", true).await;
    let rejected = wait_until(
        "engine-rul 4 rejected",
        Duration::from_secs(60),
        || {
            let models = http_get_json(&service, "/models");
            match state_of(&models, "engine-rul", "4") {
                Some(m) if m["state"] == "rejected" => Ok(m),
                other => Err(format!("{other:?}")),
            }
        },
        log,
    );
    assert_eq!(rejected["reason"], "checksum_mismatch", "{rejected}");
    // Two more syncs: the incomplete version was seen, and still left alone.
    let seen = syncs_ok(&service);
    wait_until(
        "two more syncs",
        Duration::from_secs(30),
        || {
            let n = syncs_ok(&service);
            (n >= seen + 2).then_some(()).ok_or(format!("{n} syncs"))
        },
        log,
    );
    let models = http_get_json(&service, "/models");
    assert!(state_of(&models, "engine-rul", "3").is_none(), "{models}");
    assert!(!dir.path().join("cache/packages/engine-rul/3").exists());
    assert_eq!(serving(&models, "engine-rul").as_deref(), Some("2"));
    assert_eq!(score(&service, "2")["model_version"], "2");

    // The bucket goes away: the cached models keep serving, readiness and metrics say so.
    moto.child.kill().unwrap();
    moto.child.wait().unwrap();
    let ready = wait_until(
        "the source reported failing",
        Duration::from_secs(60),
        || {
            let ready = http_get_json(&service, "/readyz");
            (ready["models_source"]["ok"] == false)
                .then_some(ready.clone())
                .ok_or(ready.to_string())
        },
        log,
    );
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(ready["models_source"]["error"].is_string(), "{ready}");
    let (_, metrics) = http_get_status(&service, "/metrics");
    assert!(metrics.contains("fleetscore_model_sync_ok 0"), "{metrics}");
    assert!(metrics.contains("fleetscore_model_syncs_total{outcome=\"error\"}"));
    assert_eq!(score(&service, "2")["model_version"], "2");
    let models = http_get_json(&service, "/models");
    assert_eq!(serving(&models, "engine-rul").as_deref(), Some("2"));
}
