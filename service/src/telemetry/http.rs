//! The HTTP API's server spans (semantic conventions for HTTP servers: `{method} {route}`,
//! `http.request.method`, `http.route`, `url.path`, `http.response.status_code`), children of
//! the caller's `traceparent` when it sends one.

use axum::http::{HeaderMap, Method};
use tracing::Span;
use tracing::field::Empty;

use super::TARGET;

/// A request's server span, or a disabled one when tracing is off.
pub(crate) fn server(
    method: &Method,
    route: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> Span {
    if !super::enabled() {
        return Span::none();
    }
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(target: TARGET, "request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = Empty,
        url.path = %path,
        http.response.status_code = Empty,
    );
    if let Some(route) = route {
        span.record("http.route", route);
    }
    super::propagation::continue_http(&span, headers);
    span
}

/// Records the response's status on a request's span.
pub(crate) fn responded(span: &Span, status: u16) {
    span.record("http.response.status_code", i64::from(status));
}
