//! What a handler returns for every invocation (and logs): what was decided, what was done, why, and the
//! AWS calls it cost.

use crate::tags::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;

/// A closed set of decision words: the enum, and each variant's kebab-case word.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }
    };
}

words! {
    /// What scan-gate decided about an image.
    GateDecision {
        Promoted => "promoted",
        AlreadyPromoted => "already-promoted",
        PromotionFailed => "promotion-failed",
        /// The findings pass, but the evidence does not allow promoting (coverage, suppression, a later failure).
        NotPromoted => "not-promoted",
        Blocked => "blocked",
        Demoted => "demoted",
        /// The gate fails a promoted image, but it cannot lose its promotion (e.g. it would be left untagged).
        NotDemoted => "not-demoted",
        ScanFailed => "scan-failed",
        NotScanned => "not-scanned",
    }
}

words! {
    /// What lifecycle decided about a repository or a sweep.
    LifecycleDecision {
        BaselineOk => "baseline-ok",
        BaselineDrift => "baseline-drift",
        BaselineRefused => "baseline-refused",
        BaselineApplied => "baseline-applied",
        SweepComplete => "sweep-complete",
        SweepIncomplete => "sweep-incomplete",
        NothingToDelete => "nothing-to-delete",
        WouldDelete => "would-delete",
        Deleted => "deleted",
        /// Everything the plan chose was gone before this run's batches reached it.
        AlreadyDeleted => "already-deleted",
        /// Chosen images kept because nobody can vouch that they are unused.
        HeldBack => "held-back",
        OverCap => "over-cap",
        /// Stopped before the deadline; the next run resumes.
        Stopped => "stopped",
        /// Another run is deleting in the repository now.
        Busy => "busy",
    }
}

words! {
    /// What the scheduled audit found.
    AuditDecision {
        Clean => "audit-clean",
        Findings => "audit-findings",
    }
}

/// What a function decided about an event: one word in the outcome's JSON, from the function's own set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Decision {
    /// Any function: nothing to do (stale, irrelevant, refused at the door, left alone by the policy).
    #[default]
    Skipped,
    TagGuard(Verdict),
    ScanGate(GateDecision),
    Lifecycle(LifecycleDecision),
    Audit(AuditDecision),
    /// notify: the kind of the notification the event became.
    Notified(&'static str),
    /// notify: the event's notification was sent before (a replay).
    AlreadyNotified,
    /// A hub's schedule: one sweep work item queued per governed registry (`crate::fanout`).
    Planned,
    /// A batch of work items from the sweep queue: each item's outcome in `items`.
    Batch,
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Skipped => "skipped",
            Decision::TagGuard(verdict) => verdict.as_str(),
            Decision::ScanGate(decision) => decision.as_str(),
            Decision::Lifecycle(decision) => decision.as_str(),
            Decision::Audit(decision) => decision.as_str(),
            Decision::Notified(kind) => kind,
            Decision::AlreadyNotified => "already-notified",
            Decision::Planned => "sweep-planned",
            Decision::Batch => "batch",
        }
    }
}

impl Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and logs compare a decision with its word.
impl PartialEq<&str> for Decision {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Self {
        Decision::TagGuard(verdict)
    }
}

impl From<GateDecision> for Decision {
    fn from(decision: GateDecision) -> Self {
        Decision::ScanGate(decision)
    }
}

impl From<AuditDecision> for Decision {
    fn from(decision: AuditDecision) -> Self {
        Decision::Audit(decision)
    }
}

impl From<LifecycleDecision> for Decision {
    fn from(decision: LifecycleDecision) -> Self {
        Decision::Lifecycle(decision)
    }
}

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
    /// `skipped`, or the function's own word for what it decided (`conforming`, `promoted`, `deleted`, ...).
    pub decision: Decision,
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
    /// scan-gate: the gate's supply-chain criteria (signature, referrers), each met, unmet or waiting.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<crate::gate::supply_chain::Criterion>,
    /// Sweeps: one entry per repository; batches: one per work item.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Outcome>,
    /// Batches from the sweep queue: the work items that failed, for SQS to deliver again (Lambda's partial batch
    /// response reads this very field).
    #[serde(rename = "batchItemFailures", skip_serializing_if = "Vec::is_empty")]
    pub batch_item_failures: Vec<crate::fanout::BatchItemFailure>,
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
            decision: Decision::Skipped,
            reasons: vec![reason.into()],
            ..Self::default()
        }
    }

    pub fn total_aws_calls(&self) -> u32 {
        self.aws_calls.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decision_is_one_kebab_case_word_in_the_json() {
        let table: [(Decision, &str); 8] = [
            (Decision::Skipped, "skipped"),
            (Verdict::ProtectedTagMoved.into(), "protected-tag-moved"),
            (GateDecision::AlreadyPromoted.into(), "already-promoted"),
            (GateDecision::NotScanned.into(), "not-scanned"),
            (LifecycleDecision::NothingToDelete.into(), "nothing-to-delete"),
            (LifecycleDecision::SweepIncomplete.into(), "sweep-incomplete"),
            (Decision::Notified("tag-not-allowed"), "tag-not-allowed"),
            (Decision::AlreadyNotified, "already-notified"),
        ];
        for (decision, word) in table {
            let outcome = Outcome { decision: decision.clone(), ..Outcome::default() };
            let json = serde_json::to_value(&outcome).expect("json");
            assert_eq!(json["decision"], word);
            assert_eq!(decision.to_string(), word);
            assert!(decision == word);
        }
    }

    #[test]
    fn each_verdict_keeps_its_word_in_the_json() {
        use Verdict::*;
        let table = [
            (Conforming, "conforming"),
            (Recorded, "recorded"),
            (Skipped, "skipped"),
            (NotAllowed, "not-allowed"),
            (ProtectedTagMoved, "protected-tag-moved"),
            (ProtectedTagOrphaned, "protected-tag-orphaned"),
            (TagMoved, "tag-moved"),
            (SettingsDrift, "settings-drift"),
            (SettingsOk, "settings-ok"),
            (ForgedApproval, "forged-approval"),
        ];
        for (verdict, word) in table {
            assert_eq!(serde_json::to_value(verdict).expect("json"), word);
            assert_eq!(Decision::from(verdict), word);
        }
    }
}
