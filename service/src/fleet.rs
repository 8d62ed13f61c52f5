//! The fleet view: the page planners look at, served at `/` by the service itself.
//!
//! - [`board`]: the board's rows (one per aircraft held: latest values, open alerts,
//!   freshness) ranked by risk, and its columns (the routed models).
//! - [`history`]: each aircraft's recent predictions per model, for the tail page's trends.
//! - [`feed`]: the live updates, coalesced and broadcast to the open pages.
//!
//! The HTTP side is `crate::http::fleet` (`GET /fleet`, `GET /tails/{tail}/history`),
//! `crate::http::events` (`GET /events`) and `crate::http::assets` (the page itself, embedded
//! in the binary from `service/web/`).

pub mod board;
pub mod feed;
pub mod history;
