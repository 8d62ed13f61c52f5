//! Looking up what a request names, with the 404 a client can act on.

use super::error::ApiError;
use crate::app::AppContext;
use crate::model::{ModelState, ServingSet};

/// The serving models of `name`, or a 404 that lists what is serving.
pub fn serving(ctx: &AppContext, name: &str) -> Result<ServingSet, ApiError> {
    ctx.registry
        .serving_by_name(name)
        .ok_or_else(|| ApiError::UnknownModel {
            name: name.chars().take(100).collect(),
            serving: ctx
                .registry
                .statuses()
                .into_iter()
                .filter(|s| s.state == ModelState::Serving)
                .map(|s| s.name)
                .collect(),
        })
}
