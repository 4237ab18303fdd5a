//! `aws.ecr` event details (kebab-case keys).

use super::{RepositoryName, open_string_enum};
use serde::Deserialize;
use std::collections::BTreeMap;

open_string_enum!(
    /// `action-type` of `ECR Image Action` / `ECR Referrer Action`.
    ImageActionType {
        Push = "PUSH",
        Delete = "DELETE",
        UpdateStorageClass = "UPDATE_STORAGE_CLASS",
    }
);

/// `ECR Image Action` and `ECR Referrer Action` (same fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageAction {
    pub action_type: ImageActionType,
    pub result: String,
    pub repository_name: RepositoryName,
    pub image_digest: String,
    #[serde(default)]
    pub image_tag: Option<String>,
    #[serde(default)]
    pub manifest_media_type: Option<String>,
    #[serde(default)]
    pub artifact_media_type: Option<String>,
    #[serde(default)]
    pub target_storage_class: Option<String>,
    #[serde(default)]
    pub last_activated_at: Option<String>,
}

impl ImageAction {
    pub fn succeeded(&self) -> bool {
        self.result == "SUCCESS"
    }

    /// An image index (multi-architecture image) rather than a single-platform manifest.
    pub fn is_index(&self) -> bool {
        self.manifest_media_type.as_deref().is_some_and(|m| {
            m == "application/vnd.oci.image.index.v1+json"
                || m == "application/vnd.docker.distribution.manifest.list.v2+json"
        })
    }
}

/// Severity counts as ECR and Inspector report them: a severity is omitted when its count is zero, and
/// Inspector adds `TOTAL`, which is never derived from or gated on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct SeverityCounts(pub BTreeMap<String, u64>);

impl SeverityCounts {
    /// The count for a severity; a missing key means zero.
    pub fn get(&self, severity: &str) -> u64 {
        self.0.get(severity).copied().unwrap_or(0)
    }
}

/// `ECR Image Scan`: a basic scan finished.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BasicScan {
    pub scan_status: String,
    pub repository_name: RepositoryName,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tags: Vec<String>,
    #[serde(default)]
    pub finding_severity_counts: SeverityCounts,
}

/// `ECR Scan Resource Change` (enhanced scanning configuration changed).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScanResourceChange {
    pub action_type: String,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub scan_type: Option<String>,
    #[serde(default)]
    pub repositories: Vec<ScanFrequencyChange>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScanFrequencyChange {
    pub repository_name: RepositoryName,
    #[serde(default)]
    pub repository_arn: Option<String>,
    #[serde(default)]
    pub scan_frequency: Option<String>,
    #[serde(default)]
    pub previous_scan_frequency: Option<String>,
}

/// `ECR Replication Action`. `repository-name` and the envelope's region describe the destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReplicationAction {
    pub action_type: String,
    pub result: String,
    pub repository_name: RepositoryName,
    pub image_digest: String,
    #[serde(default)]
    pub image_tag: Option<String>,
    #[serde(default)]
    pub source_account: Option<String>,
    #[serde(default)]
    pub source_region: Option<String>,
}

/// `ECR Pull Through Cache Action`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PullThroughCacheAction {
    pub sync_status: String,
    pub repository_name: RepositoryName,
    #[serde(default)]
    pub ecr_repository_prefix: Option<String>,
    #[serde(default)]
    pub upstream_registry_url: Option<String>,
    #[serde(default)]
    pub image_tag: Option<String>,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub rule_version: Option<String>,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_reason: Option<String>,
}
