//! Scheduled sweeps: an EventBridge scheduled rule (`aws.events`, `detail: {}`) or EventBridge Scheduler
//! (`aws.scheduler`, whose default payload carries `detail` as the *string* `"{}"`).

use serde::Deserialize;

/// A sweep request. The optional `repositories` narrows a sweep (handy for `cargo lambda invoke`); the default
/// is every repository of the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScheduledSweep {
    /// The schedule or rule that fired (first entry of `resources`).
    #[serde(skip)]
    pub schedule_arn: Option<String>,
    #[serde(default)]
    pub repositories: Vec<String>,
}

/// Scheduler sends the detail as JSON text, a rule as an object: both become an object here.
pub(super) fn normalise_detail(detail: &serde_json::Value) -> serde_json::Value {
    match detail {
        serde_json::Value::String(text) if text.trim().is_empty() => serde_json::json!({}),
        serde_json::Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| detail.clone()),
        serde_json::Value::Null => serde_json::json!({}),
        other => other.clone(),
    }
}
