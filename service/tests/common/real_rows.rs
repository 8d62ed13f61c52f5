//! Feature rows of real data, computed by the online feature code: C-MAPSS FD001 telemetry
//! (`engine-health`) and nycflights13 flights (`delay-risk`, when `NYCFLIGHTS_DIR` is set).
//! Shared by the tree-backend parity test and its benchmark (`#[path]`-included there).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;

use fleet_features::import::cmapss::{self, CmapssOptions};
use fleet_features::import::nycflights::{self, NycflightsOptions};
use fleet_features::{Event, FeatureSet, FeatureSetId, TailState};

/// Up to `limit` rows of `set`, one per event of that set in event-time order, row-major.
fn rows_of(events: &[Event], set: FeatureSetId, limit: usize) -> Vec<f32> {
    let features = FeatureSet::get(set);
    let mut states: HashMap<String, TailState> = HashMap::new();
    let mut rows = Vec::with_capacity(limit * features.len());
    let mut row = Vec::new();
    for event in events {
        let state = states.entry(event.tail().to_owned()).or_default();
        state.apply(event);
        if FeatureSet::for_event(event).map(FeatureSet::id) == Some(set)
            && features.compute(state, &mut row).is_ok()
        {
            rows.extend_from_slice(&row);
            if rows.len() / features.len() == limit {
                break;
            }
        }
    }
    rows
}

/// `engine-health` rows of the C-MAPSS FD001 training engines.
pub fn engine_health(limit: usize) -> Vec<f32> {
    let mut events = Vec::new();
    cmapss::import(
        &fleet_features::data::cmapss_fd001(),
        &CmapssOptions::default(),
        |e| {
            events.push(e.clone());
            Ok(())
        },
    )
    .expect("C-MAPSS imports");
    rows_of(&events, FeatureSetId::EngineHealth, limit)
}

/// `delay-risk` rows of nycflights13, or `None` without `NYCFLIGHTS_DIR`.
pub fn delay_risk(limit: usize) -> Option<Vec<f32>> {
    let dir = PathBuf::from(std::env::var_os("NYCFLIGHTS_DIR")?);
    let mut events = Vec::new();
    nycflights::import(
        &dir.join("flights.csv.zip"),
        &NycflightsOptions::default(),
        |e| {
            events.push(e.clone());
            Ok(())
        },
    )
    .expect("nycflights13 imports");
    Some(rows_of(&events, FeatureSetId::DelayRisk, limit))
}
