//! The live updates of the fleet view: one task compares the board with what it last sent,
//! every `[fleet_view] update_interval_ms`, and broadcasts the rows that changed (and a signal
//! when the models or their drift changed) to every open `/events` stream — one message per
//! interval however many pages are open, and no work at all while none is. The streaming path
//! is not involved: it only bumps a row's revision, as it did before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use super::board;
use crate::app::AppContext;

/// Messages a slow page may fall behind by before it is told to start again (`resync`).
const BACKLOG: usize = 64;

/// One message to every page.
#[derive(Debug, Clone)]
pub struct Message {
    /// `board`, `models`.
    pub kind: &'static str,
    pub seq: u64,
    /// JSON, serialized once for every page.
    pub data: Arc<str>,
}

/// The pages' live updates: the broadcast, and the cap on open streams.
#[derive(Debug)]
pub struct Feed {
    tx: broadcast::Sender<Message>,
    seq: AtomicU64,
    /// One permit per open stream (`[fleet_view] max_event_streams`).
    pub streams: Arc<Semaphore>,
    /// Cancelled at shutdown: open streams end, so the server's drain does not wait for them.
    pub shutdown: CancellationToken,
}

/// What a row was when last sent.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    revision: u64,
    events_applied: u64,
    last_applied_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Feed {
    pub fn new(max_streams: usize, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            tx: broadcast::channel(BACKLOG).0,
            seq: AtomicU64::new(0),
            streams: Arc::new(Semaphore::new(max_streams)),
            shutdown,
        })
    }

    /// A page's receiver: subscribe before taking the snapshot, so that no change falls
    /// between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.tx.subscribe()
    }

    /// The number of the last message sent.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    fn send(&self, kind: &'static str, data: impl FnOnce(u64) -> String) {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        // No receiver left meanwhile: nothing to do.
        let _ = self.tx.send(Message {
            kind,
            seq,
            data: Arc::from(data(seq)),
        });
    }

    /// Compares and broadcasts every `interval` until shutdown.
    pub async fn run(self: Arc<Self>, ctx: Arc<AppContext>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = Sent::default();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if self.tx.receiver_count() == 0 {
                // A page that opens later starts from its snapshot.
                sent = Sent::default();
                continue;
            }
            let ctx = Arc::clone(&ctx);
            let feed = Arc::clone(&self);
            // Building rows locks the store's shards: off the async workers.
            sent = match tokio::task::spawn_blocking(move || {
                feed.compare(&ctx, &mut sent);
                sent
            })
            .await
            {
                Ok(sent) => sent,
                Err(e) => {
                    tracing::error!(error = %e, "fleet view update failed");
                    Sent::default()
                }
            };
        }
    }

    /// Broadcasts what changed since `sent`, and remembers it.
    fn compare(&self, ctx: &AppContext, sent: &mut Sent) {
        let columns = board::columns(ctx);
        let mut changed: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::with_capacity(sent.rows.len());
        ctx.store.for_each(|tail, entry| {
            seen.insert(tail.to_owned());
            let print = Fingerprint {
                revision: entry.revision,
                events_applied: entry.state.events_applied(),
                last_applied_at: entry.last_applied_at,
            };
            if sent.rows.get(tail) == Some(&print) {
                return;
            }
            let row = board::row(tail, entry, &ctx.config.alerts, &columns);
            changed.push(serde_json::to_string(&row).expect("rows serialize"));
            sent.rows.insert(tail.to_owned(), print);
        });
        let removed: Vec<String> = sent
            .rows
            .keys()
            .filter(|t| !seen.contains(*t))
            .cloned()
            .collect();
        for tail in &removed {
            sent.rows.remove(tail);
        }
        if !changed.is_empty() || !removed.is_empty() {
            let removed = serde_json::to_string(&removed).expect("names serialize");
            self.send("board", |seq| {
                format!(
                    r#"{{"seq":{seq},"rows":[{}],"removed":{removed}}}"#,
                    changed.join(",")
                )
            });
        }
        let models = models_signature(ctx);
        if sent.models.as_ref() != Some(&models) {
            if sent.models.is_some() {
                self.send("models", |seq| format!(r#"{{"seq":{seq}}}"#));
            }
            sent.models = Some(models);
        }
    }
}

/// What the feed last sent.
#[derive(Debug, Default)]
struct Sent {
    rows: HashMap<String, Fingerprint>,
    /// The models' states and their drift when last compared.
    models: Option<String>,
}

/// Changes whenever the models panel would: a version's state, the pins, the versions
/// serving each route, a drift evaluation.
fn models_signature(ctx: &AppContext) -> String {
    let mut signature = serde_json::to_string(&(ctx.registry.statuses(), ctx.registry.pins()))
        .expect("statuses serialize");
    for set in fleet_features::FeatureSet::all() {
        for serving in ctx.registry.routed(set.id()).iter() {
            signature.push_str(&format!(
                "|{}:{}",
                serving.serving.name(),
                serving.serving.version()
            ));
        }
    }
    for drift in ctx.drift.serving(&ctx.registry) {
        signature.push_str(&format!(
            "|{}:{}:{:?}:{:?}",
            drift.model,
            drift.version,
            drift.status,
            drift.evaluation.as_ref().map(Arc::as_ptr)
        ));
    }
    signature
}
