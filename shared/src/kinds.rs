//! The words notifications are made of: their kinds, severities and topic formats. A leaf module: the policy
//! routes notifications by these words without depending on the notifications themselves.

use serde::Serialize;

/// Every notification kind the functions send (policy routes are checked against this list).
pub const KINDS: &[&str] = &[
    // tag-guard
    "tag-not-allowed",
    "protected-tag-moved",
    "protected-tag-orphaned",
    "tag-mutability-drift",
    "forged-approval",
    // scan-gate
    "promoted",
    "gate-failed",
    "demoted",
    "promotion-failed",
    "scan-failed",
    "not-scanned",
    // lifecycle
    "lifecycle-policy-applied",
    "lifecycle-policy-drift",
    "lifecycle-policy-refused",
    "lifecycle-sweep-incomplete",
    "retention",
    // notify
    "replication-failed",
    "replicated",
    "pull-through-cache-failed",
    "scanning-stopped",
    "scan-frequency-changed",
    "lifecycle-expired",
    "protected-tag-deleted",
    // audit
    "audit-findings",
    // any function: the published policy (WARDEN_POLICY_SOURCE) is not the one acted on
    "policy-invalid",
];

/// How a topic's messages are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `MessageStructure=json`: email subscribers get the text, every other protocol the JSON schema.
    #[default]
    Standard,
    /// The JSON schema for every protocol.
    Json,
    /// The plain text for every protocol.
    Text,
    /// An Amazon Q Developer in chat applications (AWS Chatbot) custom notification, for Slack / Teams.
    Chatbot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}
