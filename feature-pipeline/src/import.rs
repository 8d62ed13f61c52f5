//! Importers that turn public data sets into event streams (JSON lines, event-time order).

pub mod cmapss;
pub mod nycflights;
