//! Built with `test-feature-set` only: fleet-features then declares a third feature set
//! (`test-events`), and these tests show that every per-set table of the service (routes,
//! readiness, micro-batches, the HTTP row index, the latest predictions) has a place for it
//! without any other change, as adding a real set would need.

use std::sync::Arc;

use fleet_features::{Event, FeatureSet, FeatureSetId, TailState};

use crate::app::Readiness;
use crate::model::{Registry, RegistryConfig};
use crate::scoring::{Batcher, RowInfo};

fn telemetry(cycle: u32) -> Event {
    let sensors: Vec<String> = [
        "T2",
        "T24",
        "T30",
        "T50",
        "P2",
        "P15",
        "P30",
        "Nf",
        "Nc",
        "epr",
        "Ps30",
        "phi",
        "NRf",
        "NRc",
        "BPR",
        "farB",
        "htBleed",
        "Nf_dmd",
        "PCNfR_dmd",
        "W31",
        "W32",
    ]
    .iter()
    .map(|name| format!("\"{name}\": 1.0"))
    .collect();
    let json = format!(
        r#"{{"schema":"fleet.telemetry.v1","event_id":"t:{cycle}","tail":"N1","engine":1,
        "event_time":"2026-01-01T{:02}:00:00Z","cycle":{cycle},"settings":[0.0,0.0,100.0],
        "sensors":{{{}}}}}"#,
        cycle % 24,
        sensors.join(",")
    );
    Event::decode(json.as_bytes()).unwrap()
}

#[test]
fn a_third_feature_set_has_a_route_a_batch_and_a_row_index() {
    assert_eq!(FeatureSetId::COUNT, 3);
    let third = FeatureSet::get(FeatureSetId::TestEvents);
    assert_eq!(FeatureSet::by_name("test-events").unwrap().id(), third.id());

    // No models: every set's default route is unserved, the third one included, by name.
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::new(RegistryConfig::new(dir.path())));
    registry.rescan();
    let unserved = registry.unserved_routes();
    assert_eq!(unserved.len(), 3, "{unserved:?}");
    assert!(unserved.contains(&(FeatureSetId::TestEvents, "test-events".to_owned())));
    let why = Readiness::new(false).models_missing(&registry).unwrap();
    assert!(why.contains("test-events (test-events)"), "{why}");
    assert!(registry.routed(FeatureSetId::TestEvents).is_empty());

    // The third set's vector, through the same code as the others.
    let mut state = TailState::new();
    for cycle in 1..=3 {
        state.apply(&telemetry(cycle));
    }
    let mut vector = Vec::new();
    third.compute(&state, &mut vector).unwrap();
    assert_eq!(vector, [3.0]);

    // Rows of all three sets come back in push order, each without a verdict (no model).
    let mut batcher: Batcher<usize> = Batcher::new(Arc::clone(&registry));
    let info = RowInfo::of(&telemetry(1));
    for (i, &id) in FeatureSetId::ALL.iter().cycle().take(7).enumerate() {
        let width = FeatureSet::get(id).len();
        batcher.push(id, &vec![0.5; width], info.clone(), i);
    }
    let mut seen = Vec::new();
    batcher.flush(chrono::Utc::now(), |outcome| {
        assert!(outcome.verdicts.is_empty());
        seen.push(outcome.meta);
    });
    assert_eq!(seen, (0..7).collect::<Vec<_>>());

    // HTTP rows of the third set parse into its feature order.
    let mut out = [0.0f32];
    crate::http::score::parse_row(third, r#"{"events_applied": 4}"#, 0, &mut out).unwrap();
    assert_eq!(out, [4.0]);
}
