//! Reading a registry for the posture audit ([`crate::audit`]): one [`Snapshot`] per account and region, with
//! the SDK's paginators and the fewest calls. Listing the repositories must succeed; every other read that
//! fails (denied, unsupported, failing past the SDK's retries) is kept as [`Read::Failed`] naming the call, so
//! the audit reports it instead of passing or crashing.

use super::ecr::{setting_from, settings_of};
use super::ledger::Ledger;
use crate::WardenError;
use crate::audit::{CreationTemplate, Read, ReplicationRule, Repository, ScanRule, Scanning, Snapshot, Untagged};
use crate::error::aws_error;
use crate::pattern::Pattern;
use crate::policy::{Classification, Policy};
use aws_sdk_ecr::Client;
use futures_util::future;
use futures_util::stream::{self, StreamExt};
use std::collections::BTreeSet;
use std::time::SystemTime;

/// The clients an audit reads with: Inspector only where enhanced scanning is on, the ledger for ecr-warden's
/// own-tag records.
#[derive(Debug, Clone, Copy)]
pub struct Readers<'a> {
    pub ecr: &'a Client,
    pub inspector: &'a aws_sdk_inspector2::Client,
    pub ledger: Option<&'a Ledger>,
}

/// How many repositories are read at once.
pub const CONCURRENT_REPOSITORIES: usize = 4;

fn failed<T>(call: &str, error: WardenError) -> Read<T> {
    let why = match error {
        WardenError::Aws { code, .. } => code,
        other => other.to_string(),
    };
    Read::Failed { call: call.to_owned(), why }
}

fn read<T>(call: &str, result: Result<T, WardenError>) -> Read<T> {
    result.map_or_else(|e| failed(call, e), Read::Got)
}

/// The registry of one account and region as the checks need it. `progress` hears each repository read; no
/// repository read starts at or after `stop_at` (the function's deadline less its margin): those left are named
/// in [`Snapshot::unread`], and reported, rather than the invocation timing out.
pub async fn snapshot(
    readers: Readers<'_>,
    policy: &Policy,
    (account, region): (&str, &str),
    stop_at: Option<SystemTime>,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<Snapshot, WardenError> {
    let listed = list_repositories(readers.ecr).await?;
    let scanning = read("ecr:GetRegistryScanningConfiguration", scanning(readers.ecr).await);
    let enhanced = scanning.got().is_some_and(|s| s.enhanced);
    // A few repositories read at once, in order, each with its reads at once; the SDK's retries absorb ECR's
    // throttling should the account's quotas be met.
    // By index: closures over borrowed items keep the compiler from proving the future `Send`.
    let mut reads = stream::iter(0..listed.len())
        .take_while(|_| future::ready(stop_at.is_none_or(|stop| SystemTime::now() < stop)))
        .map(|index| {
            let (raw, scan_on_push, encryption) = &listed[index];
            repository(readers, (policy, account), raw, (*scan_on_push, encryption), enhanced)
        })
        .buffered(CONCURRENT_REPOSITORIES);
    let mut repositories = Vec::with_capacity(listed.len());
    while let Some(read) = reads.next().await {
        repositories.push(read);
        progress(repositories.len(), listed.len());
    }
    Ok(Snapshot {
        account: account.to_owned(),
        region: region.to_owned(),
        unread: listed[repositories.len()..].iter().map(|(settings, ..)| settings.name.clone()).collect(),
        repositories,
        registry_policy: read("ecr:GetRegistryPolicy", registry_policy(readers.ecr).await),
        scanning,
        replication: read("ecr:DescribeRegistry", replication(readers.ecr).await),
        pull_through_cache: read("ecr:DescribePullThroughCacheRules", pull_through_cache(readers.ecr).await),
        creation_templates: read("ecr:DescribeRepositoryCreationTemplates", creation_templates(readers.ecr).await),
        inspector_ecr: match enhanced {
            true => Some(read("inspector2:BatchGetAccountStatus", inspector_ecr(readers.inspector, account).await)),
            false => None,
        },
    })
}

/// Every repository: its settings, whether it scans on push, its encryption (DescribeRepositories, all pages).
async fn list_repositories(
    ecr: &Client,
) -> Result<Vec<(crate::aws::ecr::RepositorySettings, bool, String)>, WardenError> {
    let mut pages = ecr.describe_repositories().max_results(1000).into_paginator().send();
    let mut repositories = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("ECR.DescribeRepositories", e))?;
        repositories.extend(page.repositories().iter().map(|r| {
            let scan_on_push = r.image_scanning_configuration().is_some_and(|c| c.scan_on_push());
            let encryption = r.encryption_configuration().map_or("AES256", |c| c.encryption_type().as_str());
            (settings_of(r), scan_on_push, encryption.to_owned())
        }));
    }
    Ok(repositories)
}

/// One repository's reads: lifecycle and repository policies, its images, Inspector's view (enhanced
/// scanning), and the ledger's records of the own-shaped tags it carries.
async fn repository(
    readers: Readers<'_>,
    (policy, account): (&Policy, &str),
    settings: &crate::aws::ecr::RepositorySettings,
    (scan_on_push, encryption): (bool, &str),
    enhanced: bool,
) -> Repository {
    let name = settings.name.as_str();
    let (images, lifecycle_policy, repository_policy) = future::join3(
        images(readers.ecr, name),
        lifecycle_policy(readers.ecr, name),
        repository_policy(readers.ecr, name),
    )
    .await;
    let images = read("ecr:DescribeImages", images);
    let (inactive_coverage, critical_images, finding_ids) = if enhanced {
        let findings = read("inspector2:ListFindings", inspector_findings(readers.inspector, name).await);
        let coverage = read("inspector2:ListCoverage", inactive_coverage(readers.inspector, name).await);
        (coverage, findings.map(|(critical, _)| *critical), Some(findings.map(|(_, ids)| ids.clone())))
    } else {
        // Basic scanning: DescribeImages carries each image's severity counts; the finding ids are per image.
        (Read::Got(0), images.map(|i| i.critical), None)
    };
    let unrecorded_own_tags = match &images {
        Read::Got(images) => {
            read("dynamodb:Query", unrecorded(readers.ledger, (policy, account), name, &images.tags).await)
        }
        Read::Failed { call, why } => Read::Failed { call: call.clone(), why: why.clone() },
    };
    Repository {
        name: name.to_owned(),
        mutability: settings.mutability.clone(),
        encryption: encryption.to_owned(),
        scan_on_push,
        lifecycle_policy: read("ecr:GetLifecyclePolicy", lifecycle_policy),
        policy: read("ecr:GetRepositoryPolicy", repository_policy),
        untagged: images.map(|i| i.untagged),
        inactive_coverage,
        critical_images,
        finding_ids,
        unrecorded_own_tags,
    }
}

/// What the audit needs of a repository's images (DescribeImages, all pages, every status).
#[derive(Debug, Clone, Default)]
struct Images {
    untagged: Untagged,
    /// Images whose basic scan found something critical.
    critical: usize,
    /// (digest, tag) of every tagged image.
    tags: Vec<(String, String)>,
}

async fn images(ecr: &Client, repository: &str) -> Result<Images, WardenError> {
    use aws_sdk_ecr::types::{DescribeImagesFilter, FindingSeverity, ImageStatusFilter};
    let filter = DescribeImagesFilter::builder().image_status(ImageStatusFilter::Any).build();
    let mut pages =
        ecr.describe_images().repository_name(repository).filter(filter).max_results(1000).into_paginator().send();
    let mut images = Images::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("ECR.DescribeImages", e))?;
        for image in page.image_details() {
            let digest = image.image_digest().unwrap_or_default();
            if image.image_tags().is_empty() {
                images.untagged.images += 1;
                images.untagged.bytes += u64::try_from(image.image_size_in_bytes().unwrap_or(0)).unwrap_or(0);
            }
            images.tags.extend(image.image_tags().iter().map(|t| (digest.to_owned(), t.clone())));
            let counts = image.image_scan_findings_summary().and_then(|s| s.finding_severity_counts());
            images.critical +=
                usize::from(counts.and_then(|c| c.get(&FindingSeverity::Critical)).is_some_and(|n| *n > 0));
        }
    }
    Ok(images)
}

/// The repository's promotion- or quarantine-shaped tags without an approval record in the ledger (one Query,
/// only where such tags exist). Without a ledger the records cannot be read: an error, so the audit reports the
/// read as incomplete instead of calling every such tag forged.
async fn unrecorded(
    ledger: Option<&Ledger>,
    (policy, account): (&Policy, &str),
    repository: &str,
    tags: &[(String, String)],
) -> Result<Vec<(String, String)>, WardenError> {
    let Classification::Managed(class) = policy.classify_in(Some(account), repository) else { return Ok(vec![]) };
    let shaped: Vec<&(String, String)> = tags.iter().filter(|(_, tag)| class.own_tag_kind(tag).is_some()).collect();
    if shaped.is_empty() {
        return Ok(vec![]);
    }
    let Some(ledger) = ledger else {
        return Err(WardenError::Config("no ledger table given (--table or WARDEN_LEDGER_TABLE)".into()));
    };
    let recorded: BTreeSet<(String, String)> =
        ledger.own_tags(repository).await?.into_iter().map(|r| (r.digest, r.tag)).collect();
    Ok(shaped.into_iter().filter(|pair| !recorded.contains(*pair)).cloned().collect())
}

/// Images with an active critical Inspector finding, and every active finding's vulnerability id (ListFindings
/// filtered by repository, all pages).
async fn inspector_findings(
    inspector: &aws_sdk_inspector2::Client,
    repository: &str,
) -> Result<(usize, BTreeSet<String>), WardenError> {
    use aws_sdk_inspector2::types::{FilterCriteria, Severity, StringComparison, StringFilter};
    let equals = |value: &str| StringFilter::builder().comparison(StringComparison::Equals).value(value).build();
    let criteria = FilterCriteria::builder()
        .ecr_image_repository_name(equals(repository).map_err(|e| WardenError::Config(e.to_string()))?)
        .finding_status(equals("ACTIVE").map_err(|e| WardenError::Config(e.to_string()))?)
        .build();
    let mut pages = inspector.list_findings().filter_criteria(criteria).into_paginator().send();
    let (mut critical, mut ids) = (BTreeSet::new(), BTreeSet::new());
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("Inspector2.ListFindings", e))?;
        for finding in page.findings() {
            let image = finding.resources().first().map(|r| r.id().to_owned()).unwrap_or_default();
            if *finding.severity() == Severity::Critical {
                critical.insert(image);
            }
            if let Some(id) = finding.package_vulnerability_details().map(|d| d.vulnerability_id()) {
                ids.insert(id.to_owned());
            }
        }
    }
    Ok((critical.len(), ids))
}

/// Images of the repository Inspector does not scan actively (ListCoverage filtered by repository).
async fn inactive_coverage(inspector: &aws_sdk_inspector2::Client, repository: &str) -> Result<usize, WardenError> {
    use aws_sdk_inspector2::types::{
        CoverageFilterCriteria, CoverageStringComparison, CoverageStringFilter, ScanStatusCode,
    };
    let filter = CoverageStringFilter::builder()
        .comparison(CoverageStringComparison::Equals)
        .value(repository)
        .build()
        .map_err(|e| WardenError::Config(e.to_string()))?;
    let criteria = CoverageFilterCriteria::builder().ecr_repository_name(filter).build();
    let mut pages = inspector.list_coverage().filter_criteria(criteria).into_paginator().send();
    let mut inactive = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("Inspector2.ListCoverage", e))?;
        inactive += page
            .covered_resources()
            .iter()
            .filter(|r| r.scan_status().is_none_or(|s| *s.status_code() != ScanStatusCode::Active))
            .count();
    }
    Ok(inactive)
}

async fn lifecycle_policy(ecr: &Client, repository: &str) -> Result<Option<String>, WardenError> {
    match super::retention::current_policy(ecr, repository).await? {
        super::Found::Yes(policy) => Ok(policy),
        _ => Ok(None),
    }
}

async fn repository_policy(ecr: &Client, repository: &str) -> Result<Option<serde_json::Value>, WardenError> {
    match ecr.get_repository_policy().repository_name(repository).send().await {
        Ok(output) => Ok(output.policy_text().and_then(|t| serde_json::from_str(t).ok())),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_policy_not_found_exception()) => Ok(None),
        Err(e) => Err(aws_error("ECR.GetRepositoryPolicy", e)),
    }
}

async fn registry_policy(ecr: &Client) -> Result<Option<serde_json::Value>, WardenError> {
    match ecr.get_registry_policy().send().await {
        Ok(output) => Ok(output.policy_text().and_then(|t| serde_json::from_str(t).ok())),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_registry_policy_not_found_exception()) => Ok(None),
        Err(e) => Err(aws_error("ECR.GetRegistryPolicy", e)),
    }
}

async fn scanning(ecr: &Client) -> Result<Scanning, WardenError> {
    use aws_sdk_ecr::types::{ScanFrequency, ScanType};
    let output = ecr.get_registry_scanning_configuration().send().await;
    let output = output.map_err(|e| aws_error("ECR.GetRegistryScanningConfiguration", e))?;
    let configuration = output.scanning_configuration();
    let rules = configuration.map(|c| c.rules()).unwrap_or_default();
    Ok(Scanning {
        enhanced: configuration.and_then(|c| c.scan_type()) == Some(&ScanType::Enhanced),
        rules: rules
            .iter()
            .map(|rule| ScanRule {
                continuous: *rule.scan_frequency() == ScanFrequency::ContinuousScan,
                filters: rule.repository_filters().iter().filter_map(|f| Pattern::wildcard(f.filter()).ok()).collect(),
            })
            .collect(),
    })
}

async fn replication(ecr: &Client) -> Result<Vec<ReplicationRule>, WardenError> {
    let output = ecr.describe_registry().send().await.map_err(|e| aws_error("ECR.DescribeRegistry", e))?;
    let rules = output.replication_configuration().map(|c| c.rules()).unwrap_or_default();
    Ok(rules
        .iter()
        .map(|rule| ReplicationRule {
            destinations: rule
                .destinations()
                .iter()
                .map(|d| (d.region().to_owned(), d.registry_id().to_owned()))
                .collect(),
            prefixes: rule.repository_filters().iter().map(|f| f.filter().to_owned()).collect(),
        })
        .collect())
}

async fn pull_through_cache(ecr: &Client) -> Result<Vec<String>, WardenError> {
    let mut pages = ecr.describe_pull_through_cache_rules().into_paginator().send();
    let mut prefixes = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("ECR.DescribePullThroughCacheRules", e))?;
        prefixes.extend(
            page.pull_through_cache_rules().iter().filter_map(|r| r.ecr_repository_prefix().map(str::to_owned)),
        );
    }
    Ok(prefixes)
}

async fn creation_templates(ecr: &Client) -> Result<Vec<CreationTemplate>, WardenError> {
    let mut pages = ecr.describe_repository_creation_templates().into_paginator().send();
    let mut templates = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("ECR.DescribeRepositoryCreationTemplates", e))?;
        templates.extend(page.repository_creation_templates().iter().map(|t| CreationTemplate {
            prefix: t.prefix().unwrap_or_default().to_owned(),
            mutability: setting_from(t.image_tag_mutability(), t.image_tag_mutability_exclusion_filters()),
            lifecycle_policy: t.lifecycle_policy().filter(|p| !p.is_empty()).map(str::to_owned),
            repository_policy: t.repository_policy().and_then(|p| serde_json::from_str(p).ok()),
            encryption: t.encryption_configuration().map_or("AES256", |e| e.encryption_type().as_str()).to_owned(),
        }));
    }
    Ok(templates)
}

/// Amazon Inspector's ECR scanning status in the account (BatchGetAccountStatus).
async fn inspector_ecr(inspector: &aws_sdk_inspector2::Client, account: &str) -> Result<String, WardenError> {
    let output = inspector.batch_get_account_status().account_ids(account).send().await;
    let output = output.map_err(|e| aws_error("Inspector2.BatchGetAccountStatus", e))?;
    let ecr = output.accounts().iter().find(|a| a.account_id() == account).and_then(|a| a.resource_state()?.ecr());
    // No state for ECR is no scanning: never read as enabled.
    Ok(ecr.map_or_else(|| "UNKNOWN".to_owned(), |state| state.status().as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
version = 1
default-class = "unmanaged"

[[class]]
name = "production"
repositories = ["prod/*"]

[class.gate]
max = { critical = 0 }
promote = ["{tag}-approved"]
"#;

    #[tokio::test]
    async fn without_a_ledger_own_shaped_tags_are_unknown_not_forged() {
        let policy = Policy::from_toml(POLICY, "audit.toml").expect("policy");
        let shaped = vec![("sha256:1".to_owned(), "v1-approved".to_owned())];
        let error = unrecorded(None, (&policy, "123456789012"), "prod/api", &shaped).await.expect_err("unknown");
        let Read::Failed { call, why } = failed::<()>("dynamodb:Query", error) else { panic!("failed") };
        assert_eq!(call, "dynamodb:Query");
        assert!(why.contains("no ledger table"), "{why}");
        // Nothing shaped like ecr-warden's own: nothing to read, so no ledger is needed.
        let plain = vec![("sha256:1".to_owned(), "v1".to_owned())];
        assert_eq!(unrecorded(None, (&policy, "123456789012"), "prod/api", &plain).await.expect("none"), vec![]);
        assert_eq!(unrecorded(None, (&policy, "123456789012"), "other/api", &shaped).await.expect("unmanaged"), vec![]);
    }
}
