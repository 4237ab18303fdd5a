//! Publishing the audit's findings to AWS Security Hub (ASFF): read what ecr-warden holds there (GetFindings,
//! paginated, filtered to its generator prefix, account, region and active state), then import the plan of
//! [`crate::audit::security_hub::plan`] in batches of 100. Updates and archives only ecr-warden's own findings.

use crate::WardenError;
use crate::audit::security_hub::{
    Asff, BATCH, CHECK_FIELD, DOCS, FINDING_TYPE, GENERATOR_PREFIX, RESOURCE_FIELD, SCHEMA_VERSION, Unseen, plan,
};
use crate::audit::{Check, Finding};
use crate::error::aws_error;
use aws_sdk_securityhub::Client;
use aws_sdk_securityhub::types::{
    AwsSecurityFinding, AwsSecurityFindingFilters, Compliance, ComplianceStatus, FindingProviderFields,
    FindingProviderSeverity, Recommendation, RecordState, Remediation, Resource, Severity, SeverityLabel, StringFilter,
    StringFilterComparison,
};

/// What one publication did in one account and region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Current findings created or updated.
    pub current: usize,
    pub archived: usize,
    /// Earlier findings not seen again whose checks could not run (left active).
    pub unjudged: usize,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Security Hub: {} findings imported, {} archived as resolved", self.current, self.archived)?;
        if self.unjudged > 0 {
            write!(f, ", {} left active (their checks could not run)", self.unjudged)?;
        }
        Ok(())
    }
}

/// Imports `findings` of `(account, region)` and archives what they resolve (see [`plan`]).
pub async fn publish(
    client: &Client,
    findings: &[Finding],
    blind: &[Unseen],
    (account, region): (&str, &str),
    now: &str,
) -> Result<Published, WardenError> {
    let held = held(client, account, region).await?;
    let plan = plan(findings, &held, blind, (account, region), now);
    for batch in plan.import.chunks(BATCH) {
        let sent = client
            .batch_import_findings()
            .set_findings(Some(batch.iter().map(to_asff).collect()))
            .send()
            .await
            .map_err(|e| aws_error("SecurityHub.BatchImportFindings", e))?;
        if let Some(first) = sent.failed_findings().first() {
            let message = format!(
                "{} of {} findings refused, first {}: {} {}",
                sent.failed_count().unwrap_or_default(),
                batch.len(),
                first.id().unwrap_or_default(),
                first.error_code().unwrap_or_default(),
                first.error_message().unwrap_or_default()
            );
            let code = first.error_code().unwrap_or("FailedFindings").to_owned();
            return Err(WardenError::Aws {
                operation: "SecurityHub.BatchImportFindings",
                code,
                message,
                retryable: false,
            });
        }
    }
    Ok(Published { current: plan.import.len() - plan.archived, archived: plan.archived, unjudged: plan.unjudged })
}

fn equals(value: &str) -> StringFilter {
    StringFilter::builder().comparison(StringFilterComparison::Equals).value(value).build()
}

/// ecr-warden's active findings of one account and region as Security Hub holds them.
pub async fn held(client: &Client, account: &str, region: &str) -> Result<Vec<Asff>, WardenError> {
    let filters = AwsSecurityFindingFilters::builder()
        .generator_id(
            StringFilter::builder().comparison(StringFilterComparison::Prefix).value(GENERATOR_PREFIX).build(),
        )
        .aws_account_id(equals(account))
        .region(equals(region))
        .record_state(equals(RecordState::Active.as_str()))
        .build();
    let mut pages = client.get_findings().filters(filters).max_results(100).into_paginator().send();
    let mut held = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("SecurityHub.GetFindings", e))?;
        // The filter already says so; checked again because archiving another product's finding must never
        // follow from a filter that was ignored.
        held.extend(
            page.findings().iter().filter_map(read_back).filter(|f| f.account == account && f.region == region),
        );
    }
    Ok(held)
}

/// One of ecr-warden's findings read back; `None` for anything else.
fn read_back(finding: &AwsSecurityFinding) -> Option<Asff> {
    let generator = finding.generator_id()?.strip_prefix(GENERATOR_PREFIX)?;
    let fields = finding.product_fields()?;
    let check = Check::from_id(fields.get(CHECK_FIELD)?).filter(|c| c.id() == generator)?;
    let label = finding.severity().and_then(Severity::label).map_or("INFORMATIONAL", SeverityLabel::as_str);
    Some(Asff {
        id: finding.id()?.to_owned(),
        check,
        account: finding.aws_account_id()?.to_owned(),
        region: finding.region()?.to_owned(),
        resource: fields.get(RESOURCE_FIELD)?.clone(),
        title: finding.title().unwrap_or_default().to_owned(),
        description: finding.description().unwrap_or_default().to_owned(),
        severity: ["CRITICAL", "HIGH", "MEDIUM", "LOW"].into_iter().find(|l| *l == label).unwrap_or("INFORMATIONAL"),
        remediation: finding
            .remediation()
            .and_then(Remediation::recommendation)
            .and_then(Recommendation::text)
            .unwrap_or_default()
            .to_owned(),
        created_at: finding.created_at()?.to_owned(),
        updated_at: finding.updated_at().unwrap_or_default().to_owned(),
        active: finding.record_state() != Some(&RecordState::Archived),
    })
}

/// The ASFF document of one finding: FindingProviderFields carry severity and type (what providers update).
fn to_asff(finding: &Asff) -> AwsSecurityFinding {
    let (resource_type, resource_id) = finding.resource();
    let label = SeverityLabel::from(finding.severity);
    let (state, compliance) = if finding.active {
        (RecordState::Active, ComplianceStatus::Failed)
    } else {
        (RecordState::Archived, ComplianceStatus::Passed)
    };
    let anchor = format!("{DOCS}#{}", finding.check.id());
    AwsSecurityFinding::builder()
        .schema_version(SCHEMA_VERSION)
        .id(&finding.id)
        .product_arn(finding.product_arn())
        .product_name("ecr-warden")
        .company_name("ecr-warden")
        .generator_id(finding.generator_id())
        .aws_account_id(&finding.account)
        .region(&finding.region)
        .types(FINDING_TYPE)
        .created_at(&finding.created_at)
        .updated_at(&finding.updated_at)
        .first_observed_at(&finding.created_at)
        .last_observed_at(&finding.updated_at)
        .severity(Severity::builder().label(label.clone()).original(finding.severity).build())
        .finding_provider_fields(
            FindingProviderFields::builder()
                .severity(FindingProviderSeverity::builder().label(label).original(finding.severity).build())
                .types(FINDING_TYPE)
                .build(),
        )
        .title(&finding.title)
        .description(&finding.description)
        .remediation(
            Remediation::builder()
                .recommendation(Recommendation::builder().text(&finding.remediation).url(anchor).build())
                .build(),
        )
        .resources(Resource::builder().r#type(resource_type).id(resource_id).region(&finding.region).build())
        .compliance(Compliance::builder().status(compliance).build())
        .record_state(state)
        .product_fields(CHECK_FIELD, finding.check.id())
        .product_fields(RESOURCE_FIELD, &finding.resource)
        .source_url(format!("{DOCS}#{}", finding.check.id()))
        .build()
}
