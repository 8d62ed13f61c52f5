//! `test-events` (feature `test-feature-set` only): a third feature set for tests, so they can
//! show that the service derives every per-set table from the one list of sets.

use crate::error::Result;
use crate::state::TailState;

pub(super) fn definitions() -> Vec<(String, String)> {
    vec![(
        "events_applied".to_owned(),
        "events applied to the aircraft's state".to_owned(),
    )]
}

pub(super) fn compute(state: &TailState, _engine: Option<u8>, out: &mut Vec<f32>) -> Result<()> {
    out.push(state.events_applied() as f32);
    Ok(())
}
