//! The OTLP/HTTP client the span exporter posts with.
//!
//! Written here rather than taken from `opentelemetry-otlp`'s features: its blocking `reqwest`
//! client adds 42 crates to the build (a second `reqwest`, `url`/ICU, `tower-http`), and its
//! async clients panic on the SDK's batch-export thread, which has no Tokio runtime
//! (opentelemetry-rust#2673). This one is a plain HTTP/1.1 POST on `hyper` (already a
//! dependency), driven by a one-thread runtime of its own, so it works from that thread and
//! for the last flush after the service's runtime has stopped. Plain `http://` only: the
//! endpoint is a collector or a sidecar next to the service.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use opentelemetry_http::{HttpClient, HttpError};

/// Posts OTLP requests from any thread.
#[derive(Debug)]
pub(super) struct HyperExportClient {
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
}

impl HyperExportClient {
    pub(super) fn new(timeout: Duration) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otel-export")
            .enable_io()
            .enable_time()
            .build()?;
        Ok(Self { runtime, timeout })
    }
}

#[async_trait::async_trait]
impl HttpClient for HyperExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let timeout = self.timeout;
        self.runtime
            .spawn(async move { tokio::time::timeout(timeout, post(request)).await? })
            .await?
    }
}

/// One request on a fresh connection (an export every few seconds needs no pool).
async fn post(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("http") {
        return Err(format!("OTLP endpoint {uri}: only http:// is supported").into());
    }
    let authority = uri.authority().ok_or("the OTLP endpoint has no host")?;
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    parts
        .headers
        .insert(header::HOST, authority.as_str().parse()?);
    parts.uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        body.collect().await?.to_bytes(),
    ))
}
