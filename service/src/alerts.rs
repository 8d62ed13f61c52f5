//! Alerts for fleet planners (issue #14), the part built so far: rules with severity levels
//! and a hysteresis margin ([`rule`]), and the episode each aircraft has under each rule
//! ([`episode`]: raised once, escalated, cleared once). Not wired into the pipeline, the
//! config file, replay or the HTTP API yet (see the README's status table).

pub mod episode;
pub mod rule;
