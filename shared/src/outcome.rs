//! What a handler returns for every invocation (and logs): what was decided, what was done, why, and the
//! AWS calls it cost.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Outcome {
    pub function: &'static str,
    pub event_id: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// `skipped`, or the decision's verdict (`conforming`, `not-allowed`, ...).
    pub decision: String,
    pub reasons: Vec<String>,
    /// What was changed (or, in a dry run, would have been).
    pub actions: Vec<Action>,
    pub notified: bool,
    pub dry_run: bool,
    /// AWS operations made, by `Service.Operation`.
    pub aws_calls: BTreeMap<String, u32>,
    /// scan-gate: the gate's verdict, counts before and after the allowlist and filters, blocking findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::GateResult>,
    /// Sweeps: one entry per repository.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Outcome>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Action {
    pub action: String,
    pub result: ActionResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ActionResult {
    Done,
    AlreadyDone,
    DryRun,
    Failed,
    /// The image or repository no longer exists (deleted since the event was sent).
    Gone,
    /// The tag points at another image now (moved since it was read): left alone.
    Moved,
}

impl ActionResult {
    /// Whether the step did not happen: later steps must not run.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Gone | Self::Moved)
    }
}

impl Outcome {
    pub fn skipped(function: &'static str, event_id: &str, event: &str, reason: impl Into<String>) -> Self {
        Self {
            function,
            event_id: event_id.to_owned(),
            event: event.to_owned(),
            decision: "skipped".into(),
            reasons: vec![reason.into()],
            ..Self::default()
        }
    }

    pub fn total_aws_calls(&self) -> u32 {
        self.aws_calls.values().sum()
    }
}
