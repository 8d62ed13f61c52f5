//! The state of each model version as `GET /models`, `/metrics` and `fleetscore model list`
//! show it.

use serde::Serialize;
use utoipa::ToSchema;

use super::manifest::Stage;

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    /// Scores the name's requests and events.
    Serving,
    /// Scored alongside the serving version; its outputs go to logs and metrics only.
    Shadow,
    /// Valid, not chosen (an older version, or a newer one while a pin holds an older).
    Standby,
    /// Failed a check; `reason` and `message` say which.
    Rejected,
    /// Files still changing; considered once they settle.
    Pending,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Serving => "serving",
            ModelState::Shadow => "shadow",
            ModelState::Standby => "standby",
            ModelState::Rejected => "rejected",
            ModelState::Pending => "pending",
        }
    }

    /// Serving, shadow or standby: the version loaded and passed every check.
    pub fn is_valid(self) -> bool {
        matches!(
            self,
            ModelState::Serving | ModelState::Shadow | ModelState::Standby
        )
    }
}

impl std::fmt::Display for ModelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ModelState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One model version as the registry sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelStatus {
    pub name: String,
    pub version: String,
    pub state: ModelState,
    /// The manifest's stage, for valid versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "ort")]
    pub backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `name@version` of the feature set the model was trained on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_set: Option<String>,
    /// Rejection class (`checksum_mismatch`, `golden_mismatch`...) or why it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, in a sentence naming files relative to the package; the service's log has the
    /// whole error (paths, the backend's own words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub pinned: bool,
}
