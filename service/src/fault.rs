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
}

impl Fault {
    const ALL: [Fault; 2] = [Fault::HttpAcceptPanic, Fault::HttpHandlerPanic];

    /// Its `FLEETSCORE_FAULT` value.
    pub fn name(self) -> &'static str {
        match self {
            Fault::HttpAcceptPanic => "http-accept-panic",
            Fault::HttpHandlerPanic => "http-handler-panic",
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
