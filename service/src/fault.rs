//! Faults injected on demand, for the tests that show what the service does about them
//! (feature `fault-injection`, never in a shipped build). `FLEETSCORE_FAULT` names the fault;
//! it is read once, the first time a part of the service asks.

use std::sync::LazyLock;

/// The faults there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `http-accept-panic`: the HTTP accept loop panics when it accepts a connection.
    HttpAcceptPanic,
    /// `http-handler-panic`: `GET /fault/panic` exists, and its handler panics.
    HttpHandlerPanic,
    /// `kafka-offsets-hang`: one `send_offsets_to_transaction` call, the
    /// [`HANG_AT`]th of the process, never returns (as librdkafka's can when the group
    /// coordinator's broker is gone; see `kafka::producer`).
    KafkaOffsetsHang,
}

impl Fault {
    const ALL: [Fault; 3] = [
        Fault::HttpAcceptPanic,
        Fault::HttpHandlerPanic,
        Fault::KafkaOffsetsHang,
    ];

    /// Its `FLEETSCORE_FAULT` value.
    pub fn name(self) -> &'static str {
        match self {
            Fault::HttpAcceptPanic => "http-accept-panic",
            Fault::HttpHandlerPanic => "http-handler-panic",
            Fault::KafkaOffsetsHang => "kafka-offsets-hang",
        }
    }
}

static ARMED: LazyLock<Option<Fault>> = LazyLock::new(|| {
    let name = std::env::var("FLEETSCORE_FAULT").ok()?;
    let fault = Fault::ALL.into_iter().find(|f| f.name() == name);
    match fault {
        Some(fault) => tracing::warn!(fault = fault.name(), "fault injection armed"),
        None => tracing::warn!(%name, "FLEETSCORE_FAULT names no fault; nothing injected"),
    }
    fault
});

/// Whether `fault` is to be injected.
pub fn armed(fault: Fault) -> bool {
    *ARMED == Some(fault)
}

/// Which `send_offsets_to_transaction` call hangs under `kafka-offsets-hang`: one of the first
/// (a call every commit interval with work to commit), with the stream under way and most of
/// it still to come.
pub const HANG_AT: u64 = 3;

/// Under `kafka-offsets-hang`, blocks the calling thread for good on the [`HANG_AT`]th call.
pub fn maybe_hang_offsets_call() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    if armed(Fault::KafkaOffsetsHang) && CALLS.fetch_add(1, Ordering::Relaxed) + 1 == HANG_AT {
        tracing::warn!("fault: this send_offsets_to_transaction call never returns");
        loop {
            std::thread::park();
        }
    }
}
