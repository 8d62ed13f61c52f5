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

/// Spawns `command` (a `fleetscore serve`) with its stderr captured, and reads the stderr
/// lines until "HTTP listening": the child, the rest of its stderr lines, its address, and the
/// lines read so far.
fn spawn_until_listening(
    mut command: Command,
) -> (
    Child,
    std::sync::mpsc::Receiver<String>,
    SocketAddr,
    Vec<String>,
) {
    let mut child = Child(
        command
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
        let listening = line.contains("HTTP listening");
        let addr = line
            .split("addr=")
            .nth(1)
            .map(|addr| addr.split_whitespace().next().unwrap().parse().unwrap());
        log.push(line);
        if listening && let Some(addr) = addr {
            break addr;
        }
    };
    (child, rx, addr, log)
}

#[test]
fn the_binary_serves_http_only_and_stops_on_sigterm() {
    let models = tempfile::tempdir().unwrap();
    for (name, version) in [("engine-rul", "2"), ("delay-risk", "1"), ("nan-model", "1")] {
        common::publish(models.path(), name, version, name, version);
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetscore"));
    command
        .args(["serve", "--no-kafka", "--http-addr", "127.0.0.1:0"])
        .env("FLEETSCORE_MODELS_DIR", models.path());
    let (mut child, rx, addr, _) = spawn_until_listening(command);
    let deadline = Instant::now() + Duration::from_secs(60);

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

/// A model file that is not ONNX at all: `GET /models` says why in a sentence naming the
/// file relative to its package — no absolute path, none of the protobuf decoder's words —
/// and the service's log has the whole error (validated in a child process, as in production).
#[test]
fn a_rejection_tells_clients_why_without_paths_and_the_log_the_whole_error() {
    let models = tempfile::tempdir().unwrap();
    for (name, version) in [("engine-rul", "2"), ("delay-risk", "1")] {
        common::publish(models.path(), name, version, name, version);
    }
    let bad = common::publish(models.path(), "engine-rul", "2", "engine-rul", "3");
    let noise: Vec<u8> = (0..4096).map(|i| (i * 7919 % 251) as u8).collect();
    common::replace_model(&bad, &noise);
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetscore"));
    command
        .args(["serve", "--no-kafka", "--http-addr", "127.0.0.1:0"])
        .env("FLEETSCORE_MODELS_DIR", models.path());
    let (child, rx, addr, mut log) = spawn_until_listening(command);
    let deadline = Instant::now() + Duration::from_secs(60);
    let rejected = loop {
        let (status, text) = http(addr, "GET", "/models", None);
        assert_eq!(status, 200, "{text}");
        let reply: Value = serde_json::from_str(&text).unwrap();
        let found = reply["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["version"] == "3" && m["state"] == "rejected")
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "never rejected: {text}");
        std::thread::yield_now();
    };
    assert_eq!(rejected["reason"], "load_failed", "{rejected}");
    assert_eq!(
        rejected["message"], "the model does not load: model.onnx: not a valid ONNX model",
        "{rejected}"
    );
    let text = rejected.to_string();
    let dir = models.path().to_str().unwrap();
    let canonical = models.path().canonicalize().unwrap();
    assert!(!text.contains(dir), "{text}");
    assert!(!text.contains(canonical.to_str().unwrap()), "{text}");
    assert!(!text.to_lowercase().contains("protobuf"), "{text}");

    log.extend(stop_binary(child, rx));
    let line = log
        .iter()
        .find(|l| l.contains("model version rejected") && l.contains("version=3"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{}", log.join("\n")));
    assert!(line.contains(dir), "{line}");
    assert!(line.to_lowercase().contains("protobuf"), "{line}");
}

// ------------------------------------------------------------------ connection limits

/// `http::serve` on 127.0.0.1:0 with the configuration `edit` makes; stops when dropped.
struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    _service: Service,
}

impl Server {
    async fn start(edit: impl FnOnce(&mut fleetscore::config::Config)) -> Self {
        let service = Service::new(edit);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(fleetscore::http::serve(
            std::sync::Arc::clone(&service.ctx),
            listener,
            shutdown.clone(),
        ));
        Self {
            addr,
            shutdown,
            _service: service,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_or_never_is_cut_off_at_the_header_timeout() {
    let server = Server::start(|c| {
        c.http.header_read_timeout_ms = 300;
        c.http.idle_timeout_ms = 30_000;
    })
    .await;
    let addr = server.addr;
    blocking(move || {
        // Slowloris: one byte of a head that never ends, then a short wait for the close.
        let mut stream = TcpStream::connect(addr).unwrap();
        let head = format!(
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}",
            "a".repeat(100_000)
        );
        let start = Instant::now();
        let mut closed = None;
        for byte in head.bytes() {
            if stream.write_all(&[byte]).is_err() {
                closed = Some(start.elapsed());
                break;
            }
            if wait_closed(&mut stream, Duration::from_millis(20)).is_some() {
                closed = Some(start.elapsed());
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "slowloris holds the connection"
            );
        }
        let closed = closed.expect("the connection is closed");
        assert!(
            closed >= Duration::from_millis(280),
            "closed after {closed:?}"
        );
        assert!(closed < Duration::from_secs(3), "closed after {closed:?}");

        // A connection that sends nothing at all.
        let mut silent = TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        let closed = wait_closed(&mut silent, Duration::from_secs(10))
            .expect("a silent connection is closed");
        assert!(start.elapsed() >= Duration::from_millis(280), "{closed:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(|c| {
        c.http.header_read_timeout_ms = 300;
        c.http.idle_timeout_ms = 1_000;
    })
    .await;
    let addr = server.addr;
    blocking(move || {
        let mut conn = KeepAlive::connect(addr);
        assert_eq!(conn.request("GET", "/healthz").unwrap().0, 200);
        let answered = Instant::now();
        // Idle for longer than the header timeout: still open (the idle timeout applies).
        assert!(
            wait_closed(&mut conn.stream, Duration::from_millis(600)).is_none(),
            "closed at the header timeout"
        );
        assert_eq!(conn.request("GET", "/healthz").unwrap().0, 200);
        let answered_again = Instant::now();
        assert!(answered.elapsed() < Duration::from_millis(1_000));
        conn.wait_closed(Duration::from_secs(10))
            .expect("an idle connection is closed");
        let idle = answered_again.elapsed();
        assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");
        assert!(idle < Duration::from_secs(5), "closed after {idle:?}");
    })
    .await;
}

/// At the connection cap with no connection idle (each is in the middle of a request head),
/// a new connection is closed at once, unanswered; the open ones keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_connections_with_none_idle_new_connections_are_closed() {
    let server = Server::start(|c| c.http.max_connections = 4).await;
    let addr = server.addr;
    blocking(move || {
        let mut open: Vec<KeepAlive> = (0..4)
            .map(|_| {
                let mut conn = KeepAlive::connect(addr);
                write!(conn.stream, "GET /healthz HTTP/1.1\r\n").unwrap();
                conn
            })
            .collect();
        for _ in 0..3 {
            let mut extra = TcpStream::connect(addr).unwrap();
            let _ = write!(extra, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            let mut reply = Vec::new();
            extra
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            match extra.read_to_end(&mut reply) {
                Ok(_) => assert!(reply.is_empty(), "answered over the limit"),
                Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "not closed"),
            }
        }
        for conn in &mut open {
            write!(conn.stream, "Host: localhost\r\nContent-Length: 0\r\n\r\n").unwrap();
            assert_eq!(conn.response().unwrap().0, 200);
        }
        let (status, _, metrics) = open[0].request("GET", "/metrics").unwrap();
        assert_eq!(status, 200);
        let refused: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("fleetscore_http_connections_refused_total "))
            .expect("the refusals are counted")
            .parse()
            .unwrap();
        assert!(refused >= 3.0, "{metrics}");
    })
    .await;
}

/// At the connection cap with idle keep-alive connections, a new client is answered at once:
/// the connection idle the longest is closed to make room, then the next longest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_connections_a_new_client_takes_the_place_of_the_longest_idle_connection() {
    let server = Server::start(|c| {
        c.http.max_connections = 2;
        // Neither timeout may close anything during the test.
        c.http.header_read_timeout_ms = 60_000;
        c.http.idle_timeout_ms = 60_000;
    })
    .await;
    let addr = server.addr;
    blocking(move || {
        let mut a = KeepAlive::connect(addr);
        assert_eq!(a.request("GET", "/healthz").unwrap().0, 200);
        let mut b = KeepAlive::connect(addr);
        assert_eq!(b.request("GET", "/healthz").unwrap().0, 200);
        // The cap is full of idle connections; `a` has been idle the longest.
        let mut c = KeepAlive::connect(addr);
        assert_eq!(
            c.request("GET", "/healthz").unwrap().0,
            200,
            "a new client waits for an idle connection to time out"
        );
        assert!(
            a.wait_closed(Duration::from_secs(10)).is_some(),
            "the longest-idle connection is closed"
        );
        // Now `b` has been idle the longest (`c` was answered after it).
        let mut d = KeepAlive::connect(addr);
        assert_eq!(d.request("GET", "/healthz").unwrap().0, 200);
        assert!(
            b.wait_closed(Duration::from_secs(10)).is_some(),
            "the next longest-idle connection is closed"
        );
        let (status, _, metrics) = c.request("GET", "/metrics").unwrap();
        assert_eq!(status, 200, "the newer connection is still open");
        let count = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or(0.0)
        };
        // (The recorder is shared by the tests of this binary: at least these two.)
        assert!(
            count("fleetscore_http_connections_evicted_total") >= 2.0,
            "{metrics}"
        );
        assert_eq!(d.request("GET", "/healthz").unwrap().0, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_gets_a_408_and_its_connection_is_closed() {
    let server = Server::start(|c| c.http.request_timeout_ms = 300).await;
    let addr = server.addr;
    let response = blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "POST /score HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\": "
        )
        .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await;
    let (status, text) = parse_response(&response);
    assert_eq!(status, 408, "{response}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["code"], "request_timeout");
    assert_eq!(reply["limit"], 300);
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
}

/// A response to a request hyper refuses before the router sees it: `status`, the JSON error
/// body of every other error with `code`, and `connection: close`; the body.
fn assert_json_error(response: (u16, String, String), status: u16, code: &str) -> Value {
    let (got, head, body) = response;
    let head = head.to_ascii_lowercase();
    assert_eq!(got, status, "{head}\n\n{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let reply: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(reply["code"], code, "{body}");
    assert!(
        reply["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    reply
}

/// Requests hyper refuses before the router sees them get hyper's status with the JSON error
/// body (`http::parse_errors`), then the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_the_json_error_body() {
    let server = Server::start(|_| {}).await;
    let addr = server.addr;
    let head_limit = fleetscore::http::server::READ_BUFFER_BYTES;
    let cases = [
        (
            "a garbage request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "two Content-Lengths that disagree",
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_vec(),
            400,
            "bad_request",
        ),
        (
            "a header section over the head limit",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(head_limit + 1024)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        // hyper's URI limit (65,534 bytes, 414) is above the head limit: a URI that long
        // makes the head too large first.
        (
            "a URI over hyper's URI limit",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            431,
            "headers_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        let (response, closed) = blocking(move || {
            let mut conn = KeepAlive::connect(addr);
            conn.stream.write_all(&request).unwrap();
            let response = conn.response().unwrap_or_else(|e| panic!("{what}: {e}"));
            (response, conn.wait_closed(Duration::from_secs(10)))
        })
        .await;
        let reply = assert_json_error(response, status, code);
        if status == 431 {
            assert_eq!(reply["limit"], head_limit, "{what}: {reply}");
        }
        assert!(closed.is_some(), "{what}: the connection stays open");
    }
}

/// On a keep-alive connection, a request answered normally, then one hyper cannot parse: the
/// normal response, then the JSON error — sent one after the other, and pipelined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparseable_request_after_a_good_one_on_a_keep_alive_connection_gets_the_json_error() {
    let server = Server::start(|_| {}).await;
    let addr = server.addr;
    let good = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    let bad = "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n";
    for pipelined in [false, true] {
        let (first, second, closed) = blocking(move || {
            let mut conn = KeepAlive::connect(addr);
            if pipelined {
                conn.stream
                    .write_all(format!("{good}{bad}").as_bytes())
                    .unwrap();
            } else {
                conn.stream.write_all(good.as_bytes()).unwrap();
            }
            let first = conn.response().unwrap();
            if !pipelined {
                conn.stream.write_all(bad.as_bytes()).unwrap();
            }
            let second = conn.response().unwrap();
            (first, second, conn.wait_closed(Duration::from_secs(10)))
        })
        .await;
        assert_eq!(first.0, 200, "pipelined: {pipelined}: {first:?}");
        assert!(
            !first.1.to_ascii_lowercase().contains("connection: close"),
            "{first:?}"
        );
        assert_json_error(second, 400, "bad_request");
        assert!(
            closed.is_some(),
            "pipelined: {pipelined}: the connection stays open"
        );
    }
}

/// Starts the binary (`serve --no-kafka` on a free port) under `prlimit --nofile=NOFILE` with
/// `config`; returns it, its stderr lines and its address once it is ready.
fn start_binary(
    models: &std::path::Path,
    config: &std::path::Path,
    nofile: u64,
) -> (Child, std::sync::mpsc::Receiver<String>, SocketAddr) {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg(env!("CARGO_BIN_EXE_fleetscore"))
        .args([
            "serve",
            "--no-kafka",
            "--http-addr",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(config)
        .env("FLEETSCORE_MODELS_DIR", models);
    let (child, rx, addr, _) = spawn_until_listening(command);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = http(addr, "GET", "/readyz", None);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {text}");
        std::thread::yield_now();
    }
    (child, rx, addr)
}

/// Stops the binary with SIGTERM; its remaining stderr lines.
fn stop_binary(mut child: Child, rx: std::sync::mpsc::Receiver<String>) -> Vec<String> {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            log.push(line);
        }
    };
    log.extend(rx.try_iter());
    assert!(exit.success(), "exit status {exit}:\n{}", log.join("\n"));
    log
}

#[test]
fn more_idle_connections_than_file_descriptors_never_exhaust_them() {
    let models = tempfile::tempdir().unwrap();
    for (name, version) in [("engine-rul", "2"), ("delay-risk", "1")] {
        common::publish(models.path(), name, version, name, version);
    }
    let config = models.path().join("fleetscore.toml");
    std::fs::write(
        &config,
        "[http]\nheader_read_timeout_ms = 300\nidle_timeout_ms = 1000\n",
    )
    .unwrap();
    let (child, rx, addr) = start_binary(models.path(), &config, 256);
    let mut log: Vec<String> = rx.try_iter().collect();

    // 300 connections that send nothing, more than the process has fds for.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // The service answers its probe (at once if a slot is free, else as soon as the header
    // timeout frees one), and scores.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, _)) = try_http(addr, "GET", "/readyz", None) {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never answered");
    }
    drop(idle);
    let (body, want) = score_body();
    let (status, text) = http(addr, "POST", "/score", Some(&body));
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_close(&reply["predictions"], &want);
    let (_, metrics) = http(addr, "GET", "/metrics", None);
    let max: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fleetscore_http_max_connections "))
        .expect("the limit is a metric")
        .parse()
        .unwrap();
    assert!(
        max > 0.0 && max < 256.0,
        "max_connections {max} within the fd limit"
    );
    assert!(
        metrics.contains("fleetscore_http_connections_refused_total"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("fleetscore_http_accept_errors_total"),
        "accept failed:\n{metrics}"
    );

    log.extend(stop_binary(child, rx));
    let log = log.join("\n");
    assert!(log.contains("capped by the file-descriptor limit"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    let warnings = log.matches("HTTP connection limit reached").count();
    assert!(
        (1..=2).contains(&warnings),
        "a storm of {warnings} warnings:\n{log}"
    );
}

#[test]
fn the_binary_refuses_nonsense_http_settings_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (line, key) in [
        (
            "concurrency_limit = 2305843009213693952",
            "http.concurrency_limit",
        ),
        ("max_body_bytes = 0", "http.max_body_bytes"),
        ("request_timeout_ms = 0", "http.request_timeout_ms"),
    ] {
        let config = dir.path().join("fleetscore.toml");
        std::fs::write(&config, format!("[http]\n{line}\n")).unwrap();
        let mut child = Child(
            Command::new(env!("CARGO_BIN_EXE_fleetscore"))
                .args([
                    "serve",
                    "--no-kafka",
                    "--http-addr",
                    "127.0.0.1:0",
                    "--config",
                ])
                .arg(&config)
                .env("FLEETSCORE_MODELS_DIR", dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let exit = wait_timeout::ChildExt::wait_timeout(&mut child.0, Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| panic!("{line}: still running (accepted)"));
        let mut stderr = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(!exit.success(), "{line}: {stderr}");
        assert!(stderr.contains(key), "{line}: {stderr}");
        assert!(!stderr.contains("HTTP listening"), "{stderr}");
    }
}

// ------------------------------------------------------------------ injected faults

/// Starts the binary (`serve --no-kafka`, no models) with the fault `fault` armed.
#[cfg(feature = "fault-injection")]
fn start_with_fault(
    fault: &str,
    models: &std::path::Path,
) -> (
    Child,
    std::sync::mpsc::Receiver<String>,
    SocketAddr,
    Vec<String>,
) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetscore"));
    command
        .args(["serve", "--no-kafka", "--http-addr", "127.0.0.1:0"])
        .env("FLEETSCORE_MODELS_DIR", models)
        .env("FLEETSCORE_FAULT", fault);
    spawn_until_listening(command)
}

/// (feature `fault-injection`) The real binary's HTTP accept loop panics: the process exits
/// non-zero, its log naming the task and the panic.
#[cfg(feature = "fault-injection")]
#[test]
fn a_panicking_http_accept_loop_ends_the_process_non_zero_with_the_reason() {
    let models = tempfile::tempdir().unwrap();
    let (mut child, rx, addr, mut log) = start_with_fault("http-accept-panic", models.path());
    // Accepted, then the loop panics (the connection may or may not be answered).
    let _ = try_http(addr, "GET", "/healthz", None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running with its accept loop gone:\n{}",
            log.join("\n")
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            log.push(line);
        }
    };
    log.extend(rx.iter());
    let log = log.join("\n");
    assert_eq!(exit.code(), Some(1), "{log}");
    let failed = log
        .lines()
        .find(|l| l.contains("essential task failed"))
        .unwrap_or_else(|| panic!("no supervisor error:\n{log}"));
    assert!(failed.contains("task=\"http\""), "{failed}");
    assert!(
        failed.contains("panicked: injected fault: the HTTP accept loop panics"),
        "{failed}"
    );
    assert!(
        log.contains("Error: essential task `http`"),
        "no error on stderr:\n{log}"
    );
}

/// (feature `fault-injection`) A handler of the real binary panics: that request gets a 500
/// with the JSON error body (the panic's message only in the log), counted; the connection
/// and the server carry on, and SIGTERM still ends the process cleanly.
#[cfg(feature = "fault-injection")]
#[test]
fn a_panicking_handler_gets_a_json_500_and_the_server_carries_on() {
    let models = tempfile::tempdir().unwrap();
    let (child, rx, addr, mut log) = start_with_fault("http-handler-panic", models.path());
    let mut conn = KeepAlive::connect(addr);
    let (status, head, body) = conn.request("GET", "/fault/panic").unwrap();
    assert_eq!(status, 500, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["code"], "internal", "{body}");
    assert!(
        !body.contains("injected"),
        "the panic's message leaked: {body}"
    );
    // The same connection, and a new one, are still served.
    assert_eq!(conn.request("GET", "/healthz").unwrap().0, 200);
    let (status, metrics) = http(addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "fleetscore_http_requests_total{method=\"GET\",route=\"/fault/panic\",status=\"500\"} 1"
        ),
        "{metrics}"
    );
    log.extend(stop_binary(child, rx));
    let log = log.join("\n");
    assert!(
        log.contains("injected fault: a handler panics"),
        "the panic is not in the log:\n{log}"
    );
}
