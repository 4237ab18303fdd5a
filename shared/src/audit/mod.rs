//! The registry posture audit: what a registry looks like (a [`Snapshot`] per account and region, read by one
//! adapter) checked against the policy's classes and the ECR guide's practices. Pure: snapshots + policy +
//! today → findings, each with a stable check id, the resource, why, the practice it comes from and the fix.
//!
//! A read the audit could not make (denied, unsupported) is a finding of its own (`audit-incomplete`, naming the
//! call), never a silent pass: checks that need it say nothing about what they could not see.

mod checks;
mod documents;
mod registry;
pub mod render;
pub mod security_hub;
mod templates;

use crate::kinds::Severity;
use crate::pattern::Pattern;
use crate::policy::MutabilitySetting;
use serde::Serialize;
use std::collections::BTreeSet;

pub use checks::{UNTAGGED_BYTES_THRESHOLD, UNTAGGED_COUNT_THRESHOLD};

/// What one read found, or why there is nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<T> {
    Got(T),
    /// The call (`ecr:GetRepositoryPolicy`, ...) was denied or is not supported here: `why` says which.
    Failed {
        call: String,
        why: String,
    },
}

impl<T> Read<T> {
    pub fn got(&self) -> Option<&T> {
        match self {
            Read::Got(value) => Some(value),
            Read::Failed { .. } => None,
        }
    }

    /// The part of a read a check needs; a failed read stays failed, naming the same call.
    pub fn map<U>(&self, part: impl FnOnce(&T) -> U) -> Read<U> {
        match self {
            Read::Got(value) => Read::Got(part(value)),
            Read::Failed { call, why } => Read::Failed { call: call.clone(), why: why.clone() },
        }
    }
}

/// One account and region's registry, as the audit reads it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub account: String,
    pub region: String,
    pub repositories: Vec<Repository>,
    /// Repositories listed but not read before the function's deadline (the scheduled audit of a very large
    /// registry): reported, never judged.
    pub unread: Vec<String>,
    /// The registry policy document (`None`: there is none).
    pub registry_policy: Read<Option<serde_json::Value>>,
    pub scanning: Read<Scanning>,
    pub replication: Read<Vec<ReplicationRule>>,
    /// Pull-through cache rules: their repository prefixes.
    pub pull_through_cache: Read<Vec<String>>,
    /// Repository creation templates: the settings of repositories ECR creates itself.
    pub creation_templates: Read<Vec<CreationTemplate>>,
    /// Amazon Inspector's ECR scanning status in the account (`ENABLED`, `DISABLED`, ...): read only where the
    /// registry scans with Inspector (enhanced scanning), `None` elsewhere.
    pub inspector_ecr: Option<Read<String>>,
}

/// A repository creation template: what repositories under its prefix get when ECR creates them (on push,
/// through replication or a pull-through cache).
#[derive(Debug, Clone, PartialEq)]
pub struct CreationTemplate {
    /// The repository namespace it applies to; `ROOT` for every repository without a more specific template.
    pub prefix: String,
    pub mutability: MutabilitySetting,
    pub lifecycle_policy: Option<String>,
    pub repository_policy: Option<serde_json::Value>,
    /// `AES256`, `KMS` or `KMS_DSSE`.
    pub encryption: String,
}

/// One repository and what the checks need of it.
#[derive(Debug, Clone)]
pub struct Repository {
    pub name: String,
    pub mutability: MutabilitySetting,
    /// `AES256`, `KMS` or `KMS_DSSE`.
    pub encryption: String,
    pub scan_on_push: bool,
    /// The lifecycle policy text (`None`: there is none).
    pub lifecycle_policy: Read<Option<String>>,
    /// The repository policy document (`None`: there is none).
    pub policy: Read<Option<serde_json::Value>>,
    pub untagged: Read<Untagged>,
    /// Images of the repository Amazon Inspector does not scan actively (enhanced scanning only).
    pub inactive_coverage: Read<usize>,
    /// Images with an active critical finding.
    pub critical_images: Read<usize>,
    /// The ids of the active findings on the repository's images; `None`: not read (basic scanning keeps
    /// findings per image), so no allowlist entry is judged stale on it.
    pub finding_ids: Option<Read<BTreeSet<String>>>,
    /// Promotion- or quarantine-shaped tags the ledger holds no record of: (digest, tag).
    pub unrecorded_own_tags: Read<Vec<(String, String)>>,
}

/// Untagged images and the bytes they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Untagged {
    pub images: usize,
    pub bytes: u64,
}

/// The registry's scanning configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Scanning {
    /// Enhanced (Amazon Inspector) rather than basic scanning.
    pub enhanced: bool,
    pub rules: Vec<ScanRule>,
}

/// One registry scanning rule: the repositories its filters match are scanned on push or continuously.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRule {
    pub continuous: bool,
    pub filters: Vec<Pattern>,
}

/// One replication rule: where images go, and which repositories (prefix filters; empty: all).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationRule {
    /// (region, account) of each destination.
    pub destinations: Vec<(String, String)>,
    pub prefixes: Vec<String>,
}

/// The audit's checks, each with its stable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    TagMutabilityDrift,
    MutableReleaseTags,
    NoLifecyclePolicy,
    LifecyclePolicyDrift,
    ScanCoverageGap,
    FindingsUnacted,
    RepositoryPolicyPublic,
    RepositoryPolicyBroad,
    RegistryPolicyBroad,
    ReplicationUnscoped,
    PullThroughCacheRegions,
    UntaggedAccumulation,
    EncryptionAes256,
    AllowlistExpired,
    AllowlistStale,
    ForgedApproval,
    UnmanagedRepository,
    AuditIncomplete,
}

impl Check {
    pub const ALL: [Check; 18] = [
        Check::TagMutabilityDrift,
        Check::MutableReleaseTags,
        Check::NoLifecyclePolicy,
        Check::LifecyclePolicyDrift,
        Check::ScanCoverageGap,
        Check::FindingsUnacted,
        Check::RepositoryPolicyPublic,
        Check::RepositoryPolicyBroad,
        Check::RegistryPolicyBroad,
        Check::ReplicationUnscoped,
        Check::PullThroughCacheRegions,
        Check::UntaggedAccumulation,
        Check::EncryptionAes256,
        Check::AllowlistExpired,
        Check::AllowlistStale,
        Check::ForgedApproval,
        Check::UnmanagedRepository,
        Check::AuditIncomplete,
    ];

    /// The check of a stable id (as written in JSON, SARIF and Security Hub).
    pub fn from_id(id: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|check| check.id() == id)
    }

    pub fn id(self) -> &'static str {
        match self {
            Check::TagMutabilityDrift => "tag-mutability-drift",
            Check::MutableReleaseTags => "mutable-release-tags",
            Check::NoLifecyclePolicy => "no-lifecycle-policy",
            Check::LifecyclePolicyDrift => "lifecycle-policy-drift",
            Check::ScanCoverageGap => "scan-coverage-gap",
            Check::FindingsUnacted => "findings-unacted",
            Check::RepositoryPolicyPublic => "repository-policy-public",
            Check::RepositoryPolicyBroad => "repository-policy-broad",
            Check::RegistryPolicyBroad => "registry-policy-broad",
            Check::ReplicationUnscoped => "replication-unscoped",
            Check::PullThroughCacheRegions => "pull-through-cache-regions",
            Check::UntaggedAccumulation => "untagged-accumulation",
            Check::EncryptionAes256 => "encryption-aes256",
            Check::AllowlistExpired => "allowlist-expired",
            Check::AllowlistStale => "allowlist-stale",
            Check::ForgedApproval => "forged-approval",
            Check::UnmanagedRepository => "unmanaged-repository",
            Check::AuditIncomplete => "audit-incomplete",
        }
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// One thing the audit found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Finding {
    pub severity: Severity,
    pub check: Check,
    pub account: String,
    pub region: String,
    /// The repository, or `registry` for registry-wide settings, or the policy's class for its allowlist.
    pub resource: String,
    pub message: String,
    /// How to fix it: the `aws` command or the policy change.
    pub remediation: String,
    /// The class rule or the ECR guide practice the check enforces.
    pub source: String,
}

/// Where a finding is: the account, region and resource.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub resource: &'a str,
}

impl At<'_> {
    /// A finding of `check` here.
    pub fn finding(
        &self,
        check: Check,
        severity: Severity,
        message: String,
        (remediation, source): (String, String),
    ) -> Finding {
        Finding {
            severity,
            check,
            account: self.account.to_owned(),
            region: self.region.to_owned(),
            resource: self.resource.to_owned(),
            message,
            remediation,
            source,
        }
    }
}

/// Every finding of the snapshots against the policy, most severe first, then by check and resource.
pub fn evaluate(snapshots: &[Snapshot], policy: &crate::policy::Policy, today: chrono::NaiveDate) -> Vec<Finding> {
    let mut findings = Vec::new();
    for snapshot in snapshots {
        for repository in &snapshot.repositories {
            findings.extend(checks::repository(snapshot, repository, policy));
        }
        findings.extend(registry::settings(snapshot));
        findings.extend(templates::templates(snapshot, policy));
    }
    findings.extend(registry::pull_through_cache_regions(snapshots));
    findings.extend(registry::allowlists(snapshots, policy, today));
    findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| (a.check, &a.resource).cmp(&(b.check, &b.resource))));
    findings.dedup();
    findings
}

/// The `audit-incomplete` finding of a read that failed.
fn incomplete<T>(at: &At<'_>, read: &Read<T>) -> Option<Finding> {
    let Read::Failed { call, why } = read else { return None };
    let message = format!("{call} could not be read ({why}): the checks that need it did not run here");
    let remediation = format!("grant the audit's role {call} (read-only), or run the audit where the call exists");
    Some(at.finding(Check::AuditIncomplete, Severity::Warning, message, (remediation, "audit coverage".into())))
}

#[cfg(test)]
mod tests;
