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
    /// One registry's share of a hub's sweep ([`WORK_ITEM_SOURCE`]), not a schedule: swept, not planned.
    #[serde(skip)]
    pub work_item: bool,
}

/// The source of a hub's sweep work items: one per governed registry, queued by the hub when its schedule fires
/// and delivered back to the same function through SQS (see the fanout module).
pub const WORK_ITEM_SOURCE: &str = "ecr-warden";
pub const WORK_ITEM_DETAIL_TYPE: &str = "Sweep Work Item";

/// Scheduler sends the detail as JSON text, a rule as an object: both become an object here.
pub(super) fn normalise_detail(detail: &serde_json::Value) -> serde_json::Value {
    match detail {
        serde_json::Value::String(text) if text.trim().is_empty() => serde_json::json!({}),
        serde_json::Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| detail.clone()),
        serde_json::Value::Null => serde_json::json!({}),
        other => other.clone(),
    }
}
