//! `aws.inspector2` event details. `Inspector2 Scan` uses kebab-case keys; Finding and Coverage use camelCase.
//! Timestamps inside these details come in several non-RFC-3339 formats and stay strings.

use super::{RepositoryName, SeverityCounts};
use serde::Deserialize;

/// `Inspector2 Scan`: the initial enhanced scan of an image finished. `repository-name` is an ARN.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct InspectorScan {
    pub scan_status: String,
    pub repository_name: RepositoryName,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tags: Vec<String>,
    #[serde(default)]
    pub finding_severity_counts: SeverityCounts,
    #[serde(default)]
    pub version: Option<String>,
}

/// `Inspector2 Finding`: one finding was created, updated or closed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectorFinding {
    pub finding_arn: String,
    #[serde(default)]
    pub aws_account_id: Option<String>,
    #[serde(rename = "type")]
    pub finding_type: String,
    pub severity: String,
    pub status: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub first_observed_at: Option<String>,
    #[serde(default)]
    pub last_observed_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub fix_available: Option<String>,
    #[serde(default)]
    pub exploit_available: Option<String>,
    #[serde(default)]
    pub epss: Option<Epss>,
    #[serde(default)]
    pub inspector_score: Option<f64>,
    #[serde(default)]
    pub package_vulnerability_details: Option<PackageVulnerability>,
    #[serde(default)]
    pub remediation: Option<serde_json::Value>,
    pub resources: Vec<FindingResource>,
}

impl InspectorFinding {
    /// The ECR image this finding is about; `None` for EC2, Lambda and other resources.
    pub fn ecr_image(&self) -> Option<&EcrImageDetails> {
        self.resources
            .iter()
            .filter(|r| r.resource_type == "AWS_ECR_CONTAINER_IMAGE")
            .find_map(|r| r.details.as_ref()?.aws_ecr_container_image.as_ref())
    }

    /// The account whose registry holds the image: the image's `registry`, else the finding's account. Inspector's
    /// delegated administrator receives its members' finding events too, under its own account.
    pub fn image_account(&self) -> Option<&str> {
        self.ecr_image().and_then(|image| image.registry.as_deref()).or(self.aws_account_id.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Epss {
    pub score: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageVulnerability {
    pub vulnerability_id: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default)]
    pub vendor_severity: Option<String>,
    #[serde(default)]
    pub vulnerable_packages: Vec<VulnerablePackage>,
    #[serde(default)]
    pub reference_urls: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VulnerablePackage {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub fixed_in_version: Option<String>,
    #[serde(default)]
    pub package_manager: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FindingResource {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub id: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub details: Option<FindingResourceDetails>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingResourceDetails {
    #[serde(default)]
    pub aws_ecr_container_image: Option<EcrImageDetails>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcrImageDetails {
    pub repository_name: RepositoryName,
    pub image_hash: String,
    #[serde(default)]
    pub image_tags: Vec<String>,
    #[serde(default)]
    pub registry: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub pushed_at: Option<String>,
    #[serde(default)]
    pub in_use_count: Option<u64>,
    #[serde(default)]
    pub last_in_use_at: Option<String>,
}

/// `Inspector2 Coverage`: scanning of a resource started, stopped or changed status.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectorCoverage {
    pub scan_status: ScanStatus,
    #[serde(default)]
    pub scan_type: Option<String>,
    #[serde(default)]
    pub event_timestamp: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanStatus {
    pub status_code_value: String,
    pub reason: String,
}
