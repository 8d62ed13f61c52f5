//! Alerts for fleet planners: rules in the config file (`[[alerts]]`: a model's prediction
//! against thresholds by severity, with a hysteresis margin; [`rule`]), the episode each
//! aircraft has under each rule ([`episode`]: raised once, escalated, cleared once), their
//! evaluation on every prediction ([`evaluate`], shared by the stream and replay) and the alert
//! record ([`event`], topic `fleet.alerts.v1`), and the open episodes as planners see them
//! ([`listing`]).

pub mod episode;
pub mod evaluate;
pub mod event;
pub mod listing;
pub mod rule;

pub use evaluate::{Alerting, OpenEpisodes};
pub use event::AlertEvent;
