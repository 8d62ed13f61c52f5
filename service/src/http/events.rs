//! `GET /events`: the fleet view's live updates as server-sent events, one stream per page
//! for every panel: `snapshot` (the board, as `GET /fleet`) first, then `board` (the rows that
//! changed, at most every `[fleet_view] update_interval_ms`), `models` (the models or their
//! drift changed: read `GET /models` again) and `resync` (the page fell behind: read
//! `GET /fleet` again). At most `[fleet_view] max_event_streams` at once (503
//! `too_many_streams` beyond); every stream ends at shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::ApiState;
use super::error::ApiError;
use crate::fleet::board;
use crate::fleet::feed::Message;
use crate::metrics::names;

/// The longest a quiet stream goes without a byte: well inside the server's idle timeout,
/// which closes a response that writes nothing for `[http] idle_timeout_ms`.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /events` (not in the OpenAPI document: a stream that does not end is no request to
/// fuzz).
pub async fn events(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let feed = &state.feed;
    let permit = Arc::clone(&feed.streams)
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams(state.ctx.config.fleet_view.max_event_streams))?;
    // Subscribed before the snapshot is taken: no change falls between them.
    let rx = feed.subscribe();
    let snapshot = serde_json::to_string(&board::snapshot(&state.ctx, feed.seq()))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let idle = Duration::from_millis(state.ctx.config.http.idle_timeout_ms);
    let stream = Stream {
        snapshot: Some(snapshot),
        rx,
        shutdown: feed.shutdown.clone(),
        _open: Open::new(permit),
    };
    let events = futures_util::stream::unfold(stream, Stream::next);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE.min(idle / 3)))
        .into_response())
}

/// One page's stream.
struct Stream {
    snapshot: Option<String>,
    rx: Receiver<Message>,
    shutdown: CancellationToken,
    _open: Open,
}

impl Stream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if let Some(snapshot) = self.snapshot.take() {
            let event = Event::default().event("snapshot").data(snapshot);
            return Some((Ok(event), self));
        }
        let event = tokio::select! {
            () = self.shutdown.cancelled() => return None,
            message = self.rx.recv() => match message {
                Ok(m) => Event::default().event(m.kind).id(m.seq.to_string()).data(&*m.data),
                Err(RecvError::Lagged(missed)) => {
                    Event::default().event("resync").data(format!(r#"{{"missed":{missed}}}"#))
                }
                Err(RecvError::Closed) => return None,
            },
        };
        Some((Ok(event), self))
    }
}

/// An open stream: holds its permit and counts itself in `fleetscore_http_event_streams`.
struct Open(#[expect(dead_code, reason = "held for the stream's life")] OwnedSemaphorePermit);

impl Open {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(names::HTTP_EVENT_STREAMS).increment(1.0);
        Self(permit)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(names::HTTP_EVENT_STREAMS).decrement(1.0);
    }
}
