//! Reading scan findings: ECR `DescribeImageScanFindings` (basic, and enhanced as ECR reports it) and
//! Amazon Inspector `ListFindings` (enhanced). Both read every page.

use super::Found;
use crate::WardenError;
use crate::error::aws_error;
use crate::gate::{
    Coverage, Finding, GateResult, ScanState, Scanner, Trigger, evaluate_findings, may_promote, scan_state,
};
use crate::invocation::Home;
use crate::outcome::GateDecision;
use crate::policy::FindingSeverity;
use crate::policy::GateRules;
use aws_sdk_ecr::types::{EnhancedImageScanFinding, ImageIdentifier, ImageScanFinding};
use aws_sdk_inspector2::types::{ExploitAvailable, FilterCriteria, FixAvailable, StringComparison, StringFilter};

/// A scan's status and all its findings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanResults {
    pub status: String,
    pub description: Option<String>,
    /// When the scan completed (epoch seconds), when ECR says.
    pub completed_at: Option<i64>,
    pub findings: Vec<Finding>,
}

/// What `DescribeImageScanFindings` came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanLookup {
    Results(ScanResults),
    /// No scan exists for the image (scanning off, filter not matched, not scanned yet).
    NotScanned,
    Gone(Found<()>),
}

fn yes_no(value: Option<&str>) -> Option<bool> {
    match value? {
        "YES" | "PARTIAL" => Some(true),
        "NO" => Some(false),
        _ => None,
    }
}

fn from_basic(finding: &ImageScanFinding) -> Finding {
    let attribute =
        |key: &str| finding.attributes().iter().find(|a| a.key() == key).and_then(|a| a.value()).map(str::to_owned);
    let mut out = Finding::new(
        finding.name().unwrap_or("unnamed finding"),
        finding.severity().map_or(FindingSeverity::Undefined, |s| FindingSeverity::parse(s.as_str())),
    );
    out.package = attribute("package_name");
    out.installed_version = attribute("package_version");
    out.link = finding.uri().map(str::to_owned);
    out
}

fn from_enhanced(finding: &EnhancedImageScanFinding) -> Finding {
    let details = finding.package_vulnerability_details();
    let package = details.and_then(|d| d.vulnerable_packages().first());
    let mut out = Finding::new(
        details.and_then(|d| d.vulnerability_id()).or(finding.title()).unwrap_or("unnamed finding"),
        FindingSeverity::parse(finding.severity().unwrap_or("UNDEFINED")),
    );
    out.package = package.and_then(|p| p.name()).map(str::to_owned);
    out.installed_version = package.and_then(|p| p.version()).map(str::to_owned);
    out.fixed_version = package.and_then(|p| p.fixed_in_version()).map(str::to_owned);
    out.fix_available = yes_no(finding.fix_available());
    out.exploit_available = yes_no(finding.exploit_available());
    out.link = details.and_then(|d| d.source_url()).map(str::to_owned);
    out
}

/// An image's scan status and findings from ECR (all pages).
pub async fn scan_findings(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    digest: &str,
) -> Result<ScanLookup, WardenError> {
    let mut pages = ecr
        .describe_image_scan_findings()
        .repository_name(repository)
        .image_id(ImageIdentifier::builder().image_digest(digest).build())
        .max_results(1000)
        .into_paginator()
        .send();
    let mut results =
        ScanResults { status: String::new(), description: None, completed_at: None, findings: Vec::new() };
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                return match e.as_service_error() {
                    Some(se) if se.is_scan_not_found_exception() => Ok(ScanLookup::NotScanned),
                    Some(se) if se.is_repository_not_found_exception() => Ok(ScanLookup::Gone(Found::NoRepository)),
                    Some(se) if se.is_image_not_found_exception() => Ok(ScanLookup::Gone(Found::NoImage)),
                    _ => Err(aws_error("ECR.DescribeImageScanFindings", e)),
                };
            }
        };
        if let Some(status) = page.image_scan_status() {
            results.status = status.status().map(|s| s.as_str().to_owned()).unwrap_or_default();
            results.description = status.description().map(str::to_owned);
        }
        if let Some(findings) = page.image_scan_findings() {
            results.completed_at = findings.image_scan_completed_at().map(aws_smithy_types::DateTime::secs);
            results.findings.extend(findings.findings().iter().map(from_basic));
            results.findings.extend(findings.enhanced_findings().iter().map(from_enhanced));
        }
    }
    Ok(ScanLookup::Results(results))
}

fn equals(value: &str) -> Result<StringFilter, WardenError> {
    StringFilter::builder()
        .comparison(StringComparison::Equals)
        .value(value)
        .build()
        .map_err(|e| WardenError::Config(e.to_string()))
}

fn from_inspector(finding: &aws_sdk_inspector2::types::Finding) -> Finding {
    let details = finding.package_vulnerability_details();
    let package = details.and_then(|d| d.vulnerable_packages().first());
    let severity = finding.severity().as_str();
    let mut out = Finding::new(
        details.map(|d| d.vulnerability_id()).or(finding.title()).unwrap_or(finding.finding_arn()),
        if severity == "UNTRIAGED" { FindingSeverity::Undefined } else { FindingSeverity::parse(severity) },
    );
    out.package = package.map(|p| p.name().to_owned());
    out.installed_version = package.map(|p| p.version().to_owned()).filter(|v| !v.is_empty());
    out.fixed_version = package.and_then(|p| p.fixed_in_version()).map(str::to_owned).filter(|v| !v.is_empty());
    out.fix_available = finding.fix_available().map(|f| !matches!(f, FixAvailable::No));
    out.exploit_available = finding.exploit_available().map(|e| matches!(e, ExploitAvailable::Yes));
    out.epss = finding.epss().map(|e| e.score());
    out.link = details.and_then(|d| d.source_url()).map(str::to_owned);
    out
}

/// An image's ACTIVE Amazon Inspector findings (ListFindings filtered by repository name, image digest and
/// status, all pages: Inspector pages hold at most 25 findings whatever `maxResults` says).
pub async fn inspector_findings(
    inspector: &aws_sdk_inspector2::Client,
    repository: &str,
    digest: &str,
) -> Result<Vec<Finding>, WardenError> {
    let criteria = FilterCriteria::builder()
        .ecr_image_repository_name(equals(repository)?)
        .ecr_image_hash(equals(digest)?)
        .finding_status(equals("ACTIVE")?)
        .build();
    let mut pages = inspector.list_findings().filter_criteria(criteria).max_results(100).into_paginator().send();
    let mut findings = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("Inspector2.ListFindings", e))?;
        findings.extend(page.findings().iter().map(from_inspector));
    }
    Ok(findings)
}

/// Whether an image whose findings pass may be promoted, read as scan-gate reads it before it promotes and as
/// `warden gate evaluate` reports it: with enhanced scanning, Inspector must cover the digest actively and its
/// last scan be complete (one ListCoverage), and a closed finding promotes only on that evidence
/// ([`may_promote`]). `Ok(Ok(coverage))`: nothing stands in the way (the coverage, when read, dates the
/// approval); `Ok(Err(why))`: not promoted. `home`: the registry's account and region.
pub async fn promotion_evidence(
    inspector: &aws_sdk_inspector2::Client,
    (scanner, trigger): (Scanner, &Trigger),
    home: Option<&Home>,
    repository: &str,
    digest: &str,
) -> Result<Result<Option<Coverage>, String>, WardenError> {
    let coverage = match (scanner, home) {
        (Scanner::Enhanced, Some(home)) => Some(coverage(inspector, home, repository, digest).await?),
        _ => None,
    };
    Ok(may_promote(trigger, coverage.as_ref()).map(|()| coverage))
}

/// Amazon Inspector's coverage of one image (ListCoverage filtered by repository name and the image's ARN,
/// all pages): whether Inspector scans it continuously, why (not), and when it last scanned it.
pub async fn coverage(
    inspector: &aws_sdk_inspector2::Client,
    home: &Home,
    repository: &str,
    digest: &str,
) -> Result<Coverage, WardenError> {
    use aws_sdk_inspector2::types::{CoverageFilterCriteria, CoverageStringComparison, CoverageStringFilter};
    let filter = |value: &str| {
        CoverageStringFilter::builder()
            .comparison(CoverageStringComparison::Equals)
            .value(value)
            .build()
            .map_err(|e| WardenError::Unexpected(format!("coverage filter: {e}")))
    };
    let arn = home.image_arn(repository, digest);
    let criteria =
        CoverageFilterCriteria::builder().ecr_repository_name(filter(repository)?).resource_id(filter(&arn)?).build();
    let mut pages = inspector.list_coverage().filter_criteria(criteria).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("Inspector2.ListCoverage", e))?;
        // Filters are Inspector's; the resource id is checked here too, so only this digest's entry counts.
        if let Some(resource) = page.covered_resources().iter().find(|r| r.resource_id() == arn) {
            let status = resource.scan_status();
            return Ok(Coverage::Covered {
                status: status.map_or_else(|| "UNKNOWN".to_owned(), |s| s.status_code().as_str().to_owned()),
                reason: status.map_or_else(|| "UNKNOWN".to_owned(), |s| s.reason().as_str().to_owned()),
                last_scanned_at: resource.last_scanned_at().map(aws_smithy_types::DateTime::secs),
            });
        }
    }
    Ok(Coverage::NotCovered)
}

/// Which scanner the registry uses (GetRegistryScanningConfiguration): Amazon Inspector when its scan type is
/// ENHANCED, ECR's basic scanning otherwise.
pub async fn registry_scanner(ecr: &aws_sdk_ecr::Client) -> Result<Scanner, WardenError> {
    let output = ecr.get_registry_scanning_configuration().send().await;
    let output = output.map_err(|e| aws_error("ECR.GetRegistryScanningConfiguration", e))?;
    let enhanced =
        output.scanning_configuration().and_then(|c| c.scan_type()) == Some(&aws_sdk_ecr::types::ScanType::Enhanced);
    Ok(if enhanced { Scanner::Enhanced } else { Scanner::Basic })
}

/// What the registry says about an image's scan, read right before a decision (never an event's word).
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryScan {
    /// A complete scan, judged by the gate on `today`; `scanned_at`: when the scan completed (basic).
    Judged { result: GateResult, scanned_at: Option<i64> },
    /// No usable scan: `not-scanned` or `scan-failed`, and why.
    NoScan { kind: GateDecision, reason: String },
    /// Still running: its completion decides.
    Pending(String),
    /// The image or repository is gone.
    Gone,
}

/// The registry's own scan state of a digest: ECR's scan findings (basic; status, completion time, every
/// page) or Amazon Inspector's ACTIVE findings (enhanced; every page), judged by the gate on `today`.
pub async fn registry_scan(
    ecr: &aws_sdk_ecr::Client,
    inspector: &aws_sdk_inspector2::Client,
    scanner: Scanner,
    gate: &GateRules,
    repository: &str,
    digest: &str,
    today: chrono::NaiveDate,
) -> Result<RegistryScan, WardenError> {
    let (findings, scanned_at) = match scanner {
        Scanner::Enhanced => (inspector_findings(inspector, repository, digest).await?, None),
        Scanner::Basic => match scan_findings(ecr, repository, digest).await? {
            ScanLookup::Results(results) => match scan_state(&results.status, results.description.as_deref()) {
                ScanState::Complete => (results.findings, results.completed_at),
                ScanState::Failed(reason) => {
                    return Ok(RegistryScan::NoScan { kind: GateDecision::ScanFailed, reason });
                }
                ScanState::Pending => {
                    let reason = "the registry's scan is still running: its completion event gates the image";
                    return Ok(RegistryScan::Pending(reason.into()));
                }
            },
            ScanLookup::NotScanned => {
                let reason = "the registry holds no scan of the image".into();
                return Ok(RegistryScan::NoScan { kind: GateDecision::NotScanned, reason });
            }
            ScanLookup::Gone(_) => return Ok(RegistryScan::Gone),
        },
    };
    Ok(RegistryScan::Judged { result: evaluate_findings(gate, repository, &findings, today), scanned_at })
}
