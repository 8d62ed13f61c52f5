//! The HTTP API on real sockets: `http::serve` on 127.0.0.1:0 (requests in flight finish after
//! shutdown is requested), and the `fleetscore serve --no-kafka` binary end to end (it binds
//! `--http-addr`, loads and validates the fixture models in child processes, scores, and exits
//! cleanly on SIGTERM).

mod common;
mod http_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_support::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn score_body() -> (Vec<u8>, Vec<f32>) {
    let (rows, want) = golden_rows("engine-rul", "2");
    let body = serde_json::to_vec(&json!({"model": "engine-rul", "rows": rows})).unwrap();
    (body, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_on_a_socket_and_finishes_requests_in_flight_on_shutdown() {
    let service = Service::new(|c| c.http.max_body_bytes = 256 * 1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(fleetscore::http::serve(
        std::sync::Arc::clone(&service.ctx),
        listener,
        shutdown.clone(),
    ));

    let (body, want) = score_body();
    let (status, text) = blocking(move || http(addr, "POST", "/score", Some(&body))).await;
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_close(&reply["predictions"], &want);

    // A body over the limit is refused from its Content-Length, with a JSON error.
    let big = vec![b' '; 300 * 1024];
    let (status, text) = blocking(move || http(addr, "POST", "/score", Some(&big))).await;
    assert_eq!(status, 413, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["code"], "body_too_large");

    // Half a request is in flight when shutdown is requested: it still gets its answer.
    let (body, _) = score_body();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /score HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).unwrap();
    stream.flush().unwrap();
    // Wait until the handler holds the request (the in-flight gauge says so).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = blocking(move || http(addr, "GET", "/metrics", None)).await;
        if metrics.lines().any(|l| l == "fleetscore_http_in_flight 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request never got in flight:\n{metrics}"
        );
        tokio::task::yield_now().await;
    }
    shutdown.cancel();
    let response = blocking(move || {
        stream.write_all(&body[half..]).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await;
    let (status, text) = parse_response(&response);
    assert_eq!(status, 200, "{text}");

    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Kills the child if the test fails before it stops it.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_serves_http_only_and_stops_on_sigterm() {
    let models = tempfile::tempdir().unwrap();
    for (name, version) in [("engine-rul", "2"), ("delay-risk", "1"), ("nan-model", "1")] {
        common::publish(models.path(), name, version, name, version);
    }
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_fleetscore"))
            .args(["serve", "--no-kafka", "--http-addr", "127.0.0.1:0"])
            .env("FLEETSCORE_MODELS_DIR", models.path())
            .env("RUST_LOG", "info")
            .env_remove("FLEETSCORE_HTTP_ADDR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no 'HTTP listening' line:\n{}", log.join("\n")));
        if line.contains("HTTP listening")
            && let Some(addr) = line.split("addr=").nth(1)
        {
            break addr.split_whitespace().next().unwrap().parse().unwrap();
        }
        log.push(line);
    };

    // Ready once the models are validated (in child processes) and loaded.
    loop {
        let (status, text) = http(addr, "GET", "/readyz", None);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{text}");
        assert!(Instant::now() < deadline, "never ready: {text}");
        std::thread::yield_now();
    }
    let (body, want) = score_body();
    let (status, text) = http(addr, "POST", "/score", Some(&body));
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_close(&reply["predictions"], &want);
    let (status, text) = http(addr, "GET", "/models", None);
    assert_eq!(status, 200);
    assert!(text.contains("\"reason\":\"non_finite_output\""), "{text}");
    let (_, metrics) = http(addr, "GET", "/metrics", None);
    assert!(
        metrics.contains(
            "fleetscore_http_requests_total{method=\"POST\",route=\"/score\",status=\"200\"} 1"
        ),
        "{metrics}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        // Draining stderr is what lets the child finish logging and exit.
        let _ = rx.recv_timeout(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");
}
