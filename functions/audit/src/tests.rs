//! The scheduled audit over mocked reads: one summary when the findings are new or changed, silence while they
//! stand unchanged, nothing for another account's events; every read failure a finding, never a pass.

use super::*;
use aws_sdk_ecr::operation::get_registry_scanning_configuration::GetRegistryScanningConfigurationError;
use aws_sdk_ecr::types::{ImageTagMutability, Repository};
use aws_smithy_mocks::{Rule, mock};
use warden::policy::EMBEDDED_POLICY;
use warden::testing::{self, Retries, rules};

/// One production repository created mutable by hand: no lifecycle policy, no scanning.
fn registry() -> Vec<Rule> {
    let repository = Repository::builder()
        .repository_name("prod/payments-api")
        .image_tag_mutability(ImageTagMutability::Mutable)
        .build();
    rules::audited_registry(vec![repository])
}

/// The note of the standing findings (`STANDING#audit`): new (`true`) or told already (`false`).
fn standing_note(new: bool) -> Rule {
    rules::standing_note("STANDING#audit", KIND, new)
}

fn audit(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule]) -> Audit {
    audit_publishing(ecr, dynamodb, sns, None)
}

/// [`audit`] publishing to a Security Hub answering from `hub` (`None`: not enabled).
fn audit_publishing(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule], hub: Option<&[&Rule]>) -> Audit {
    let clients = testing::clients(ecr, dynamodb, sns, Retries::Deployed);
    let inspector = testing::inspector(&[], &clients, Retries::Deployed);
    let hub = hub.map(|rules| testing::security_hub(rules, &clients, Retries::Deployed));
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("policy");
    Audit::new(policy, testing::config(), clients, inspector, hub).expect("audit")
}

fn calls(outcome: &Outcome) -> u32 {
    outcome.aws_calls.get("SNS.Publish").copied().unwrap_or(0)
}

#[tokio::test]
async fn new_findings_are_told_in_one_summary() {
    let registry = registry();
    let ecr: Vec<&Rule> = registry.iter().collect();
    let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
    let audit = audit(&ecr, &[&note, &claim], &[&publish]);
    let outcome = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect("audited");
    assert_eq!(outcome.decision, "audit-findings");
    assert!(outcome.notified);
    assert_eq!(calls(&outcome), 1, "one summary: {:?}", outcome.aws_calls);
    assert!(outcome.reasons[0].starts_with("1 repositories audited:"), "{:?}", outcome.reasons);
    for check in ["tag-mutability-drift", "lifecycle-policy-drift", "scan-coverage-gap"] {
        assert!(outcome.reasons.iter().any(|r| r.contains(check)), "{check}: {:?}", outcome.reasons);
    }
    // Read-only: no ECR write among the calls.
    assert!(outcome.aws_calls.keys().all(|call| !call.starts_with("ECR.Put") && !call.starts_with("ECR.BatchDelete")));
}

#[tokio::test]
async fn unchanged_findings_stay_silent_until_they_change_or_a_week_passes() {
    let registry = registry();
    let ecr: Vec<&Rule> = registry.iter().collect();
    let (note, publish) = (standing_note(false), rules::published());
    let audit = audit(&ecr, &[&note], &[&publish]);
    let outcome = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect("audited");
    assert_eq!(outcome.decision, "audit-findings");
    assert!(!outcome.notified);
    assert_eq!(calls(&outcome), 0);
}

#[tokio::test]
async fn a_denied_read_is_reported_not_passed() {
    let mut registry = registry();
    registry[1] = mock!(aws_sdk_ecr::Client::get_registry_scanning_configuration)
        .then_error(|| GetRegistryScanningConfigurationError::generic(testing::error_code("AccessDeniedException")));
    let ecr: Vec<&Rule> = registry.iter().collect();
    let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
    let audit = audit(&ecr, &[&note, &claim], &[&publish]);
    let outcome = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect("audited");
    let incomplete = outcome.reasons.iter().find(|r| r.contains("audit-incomplete")).expect("incomplete");
    assert!(incomplete.contains("ecr:GetRegistryScanningConfiguration could not be read (AccessDeniedException)"));
    assert!(!outcome.reasons.iter().any(|r| r.contains("scan-coverage-gap")), "no data, no verdict");
}

#[tokio::test]
async fn repositories_left_unread_at_the_deadline_are_reported_not_passed() {
    let registry = registry();
    let ecr: Vec<&Rule> = registry.iter().collect();
    let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
    let audit = audit(&ecr, &[&note, &claim], &[&publish]);
    // Less than the margin left: no repository read starts, and the run still ends in time with its report.
    let deadline = std::time::SystemTime::now() + MARGIN / 2;
    let invocation = testing::invocation_until(Some(deadline));
    let outcome = audit.handle(testing::sample("scheduler.json"), &invocation).await.expect("audited");
    let incomplete = outcome.reasons.iter().find(|r| r.contains("audit-incomplete")).expect("incomplete");
    assert!(incomplete.contains("1 of 1 repositories were not read before the function's deadline"), "{incomplete}");
    assert!(!outcome.reasons.iter().any(|r| r.contains("tag-mutability-drift")), "unread is unjudged");
    assert_eq!(outcome.aws_calls.get("ECR.GetLifecyclePolicy"), None, "{:?}", outcome.aws_calls);
    assert!(outcome.notified);
}

/// What moto cannot hold, answered by mocks: a creation template that would create drifted repositories, a
/// registry scanning with Inspector while Inspector's ECR scanning is off, and an image Inspector stopped scanning.
#[tokio::test]
async fn a_drifted_creation_template_inspector_off_and_an_unscanned_image_are_found() {
    use aws_sdk_ecr::operation::describe_repository_creation_templates::DescribeRepositoryCreationTemplatesOutput;
    use aws_sdk_ecr::operation::get_registry_scanning_configuration::GetRegistryScanningConfigurationOutput;
    use aws_sdk_ecr::types::{
        RegistryScanningConfiguration, RegistryScanningRule, RepositoryCreationTemplate, ScanFrequency, ScanType,
        ScanningRepositoryFilter, ScanningRepositoryFilterType,
    };
    use aws_sdk_inspector2::operation::batch_get_account_status::BatchGetAccountStatusOutput;
    use aws_sdk_inspector2::operation::list_findings::ListFindingsOutput;
    use aws_sdk_inspector2::types::{
        AccountState, ErrorCode, ResourceState, ScanStatusCode, ScanStatusReason, State, Status,
    };
    let mut registry = registry();
    registry[1] = mock!(aws_sdk_ecr::Client::get_registry_scanning_configuration).then_output(|| {
        let filter = ScanningRepositoryFilter::builder()
            .filter("prod/*")
            .filter_type(ScanningRepositoryFilterType::Wildcard)
            .build()
            .expect("filter");
        let rule = RegistryScanningRule::builder()
            .scan_frequency(ScanFrequency::ContinuousScan)
            .repository_filters(filter)
            .build()
            .expect("rule");
        let enhanced = RegistryScanningConfiguration::builder().scan_type(ScanType::Enhanced).rules(rule).build();
        GetRegistryScanningConfigurationOutput::builder().scanning_configuration(enhanced).build()
    });
    registry.insert(
        0,
        mock!(aws_sdk_ecr::Client::describe_repository_creation_templates).then_output(|| {
            let template = RepositoryCreationTemplate::builder()
                .prefix("prod")
                .image_tag_mutability(ImageTagMutability::Mutable)
                .build();
            DescribeRepositoryCreationTemplatesOutput::builder().repository_creation_templates(template).build()
        }),
    );
    let ecr: Vec<&Rule> = registry.iter().collect();
    let state = |status| {
        State::builder().status(status).error_code(ErrorCode::AccessDenied).error_message("").build().expect("state")
    };
    let status = mock!(aws_sdk_inspector2::Client::batch_get_account_status).then_output(move || {
        let resources = ResourceState::builder().ec2(state(Status::Enabled)).ecr(state(Status::Disabled)).build();
        let account = AccountState::builder()
            .account_id(testing::ACCOUNT)
            .state(state(Status::Enabled))
            .resource_state(resources)
            .build();
        BatchGetAccountStatusOutput::builder().accounts(account.expect("account")).build().expect("output")
    });
    let findings =
        mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    // One image Inspector no longer scans (its scan eligibility expired).
    let coverage = mock!(aws_sdk_inspector2::Client::list_coverage).then_output(rules::coverage_output(
        "prod/payments-api",
        "sha256:0000000000000000000000000000000000000000000000000000000000000001",
        ScanStatusCode::Inactive,
        ScanStatusReason::ScanEligibilityExpired,
        None,
    ));
    let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
    let clients = testing::clients(&ecr, &[&note, &claim], &[&publish], Retries::Deployed);
    let inspector = testing::inspector(&[&status, &findings, &coverage], &clients, Retries::Deployed);
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("policy");
    let audit = Audit::new(policy, testing::config(), clients, inspector, None).expect("audit");
    let outcome = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect("audited");
    let template = outcome.reasons.iter().find(|r| r.contains("creation template prod")).expect("template");
    assert!(
        template.contains("tag-mutability-drift")
            && template.contains("creates repositories with tag mutability MUTABLE")
    );
    let off = outcome.reasons.iter().find(|r| r.contains("Inspector's ECR scanning is DISABLED")).expect("inspector");
    assert!(off.contains("scan-coverage-gap registry"), "{off}");
    assert_eq!(outcome.aws_calls.get("Inspector2.BatchGetAccountStatus"), Some(&1));
    let inactive = outcome.reasons.iter().find(|r| r.contains("does not actively scan")).expect("coverage");
    assert!(
        inactive
            .contains("scan-coverage-gap prod/payments-api: Amazon Inspector does not actively scan 1 of its images")
    );
}

#[tokio::test]
async fn another_accounts_schedule_is_refused_at_the_door_without_a_call() {
    let audit = audit(&[], &[], &[]);
    let mut event = testing::sample("scheduler.json");
    event["account"] = "999999999999".into();
    let outcome = audit.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.aws_calls.is_empty());
}

#[tokio::test]
async fn a_thousand_repositories_cost_three_reads_each_and_seven_for_the_registry() {
    let registry = rules::audited_registry(rules::repositories(1000));
    let ecr: Vec<&Rule> = registry.iter().collect();
    let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
    let audit = audit(&ecr, &[&note, &claim], &[&publish]);
    let outcome = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect("audited");
    let ecr_calls: Vec<(&str, u32)> = outcome
        .aws_calls
        .iter()
        .filter(|(call, _)| call.starts_with("ECR."))
        .map(|(call, n)| (call.as_str(), *n))
        .collect();
    assert_eq!(
        ecr_calls,
        [
            ("ECR.DescribeImages", 1000),
            ("ECR.DescribePullThroughCacheRules", 1),
            ("ECR.DescribeRegistry", 1),
            ("ECR.DescribeRepositories", 1),
            ("ECR.DescribeRepositoryCreationTemplates", 1),
            ("ECR.GetLifecyclePolicy", 1000),
            ("ECR.GetRegistryPolicy", 1),
            ("ECR.GetRegistryScanningConfiguration", 1),
            ("ECR.GetRepositoryPolicy", 1000),
        ]
    );
    assert!(outcome.reasons[0].starts_with("1000 repositories audited:"), "{}", outcome.reasons[0]);
}

mod security_hub {
    use super::*;
    use aws_sdk_securityhub::operation::batch_import_findings::BatchImportFindingsOutput;
    use aws_sdk_securityhub::operation::get_findings::GetFindingsOutput;
    use aws_sdk_securityhub::types::{AwsSecurityFinding, ImportFindingsError, RecordState};
    use std::sync::{Arc, Mutex};

    const ACCOUNT: &str = testing::ACCOUNT;

    /// A finding Security Hub holds: `generator` and the ProductFields ecr-warden writes.
    fn held(id: &str, generator: &str, check: &str, resource: &str, region: &str) -> AwsSecurityFinding {
        AwsSecurityFinding::builder()
            .id(id)
            .generator_id(generator)
            .aws_account_id(ACCOUNT)
            .region(region)
            .created_at("2026-11-01T00:00:00.000Z")
            .updated_at("2026-11-01T00:00:00.000Z")
            .title(format!("{check}: {resource}"))
            .record_state(RecordState::Active)
            .product_fields("ecr-warden/check", check)
            .product_fields("ecr-warden/resource", resource)
            .build()
    }

    /// What Security Hub holds before the run: a resolved ecr-warden finding, a current one, another
    /// product's finding and one of another region (the last two returned as if a filter were ignored).
    fn holdings() -> Rule {
        let prefix = "ecr-warden/audit/123456789012/us-east-1";
        let findings = vec![
            held(
                &format!("{prefix}/repository-policy-public/prod/payments-api"),
                "ecr-warden/audit/repository-policy-public",
                "repository-policy-public",
                "prod/payments-api",
                "us-east-1",
            ),
            held(
                &format!("{prefix}/scan-coverage-gap/prod/payments-api"),
                "ecr-warden/audit/scan-coverage-gap",
                "scan-coverage-gap",
                "prod/payments-api",
                "us-east-1",
            ),
            held("arn:other:1", "aws-foundational-security-best-practices/v/1.0.0/ECR.1", "", "", "us-east-1"),
            held(
                "ecr-warden/audit/123456789012/eu-west-1/no-lifecycle-policy/prod/x",
                "ecr-warden/audit/no-lifecycle-policy",
                "no-lifecycle-policy",
                "prod/x",
                "eu-west-1",
            ),
        ];
        mock!(aws_sdk_securityhub::Client::get_findings)
            .then_output(move || GetFindingsOutput::builder().set_findings(Some(findings.clone())).build())
    }

    type Imported = Arc<Mutex<Vec<AwsSecurityFinding>>>;

    /// BatchImportFindings accepting everything, keeping what it was sent in `imported`.
    fn importing(imported: &Imported) -> Rule {
        let imported = imported.clone();
        mock!(aws_sdk_securityhub::Client::batch_import_findings)
            .match_requests(move |input| {
                imported.lock().expect("lock").extend(input.findings().iter().cloned());
                true
            })
            .then_output(|| BatchImportFindingsOutput::builder().failed_count(0).success_count(1).build())
    }

    #[tokio::test]
    async fn findings_are_imported_and_the_resolved_one_archived_nothing_else_touched() {
        let registry = registry();
        let ecr: Vec<&Rule> = registry.iter().collect();
        let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
        let imported = Imported::default();
        let (holdings, importing) = (holdings(), importing(&imported));
        let audit = audit_publishing(&ecr, &[&note, &claim], &[&publish], Some(&[&holdings, &importing]));
        let outcome = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect("audited");
        let imported = imported.lock().expect("lock").clone();
        let states: Vec<(&str, &str)> = imported
            .iter()
            .map(|f| (f.id().unwrap_or_default(), f.record_state().map_or("", RecordState::as_str)))
            .collect();
        let archived: Vec<&str> = states.iter().filter(|(_, s)| *s == "ARCHIVED").map(|(id, _)| *id).collect();
        assert_eq!(archived, ["ecr-warden/audit/123456789012/us-east-1/repository-policy-public/prod/payments-api"]);
        assert!(states.iter().all(|(id, _)| id.starts_with("ecr-warden/audit/123456789012/us-east-1/")), "{states:?}");
        let findings = outcome.reasons.len() - 2;
        assert_eq!(states.len(), findings + 1, "every finding once, and the archived one: {states:?}");
        let kept =
            imported.iter().find(|f| f.id().is_some_and(|id| id.ends_with("/scan-coverage-gap/prod/payments-api")));
        let kept = kept.expect("the standing finding is updated");
        assert_eq!(kept.created_at(), Some("2026-11-01T00:00:00.000Z"), "first seen is kept");
        assert_eq!(kept.record_state(), Some(&RecordState::Active));
        assert_eq!(kept.product_arn(), Some("arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default"));
        assert_eq!(kept.resources()[0].id(), Some("arn:aws:ecr:us-east-1:123456789012:repository/prod/payments-api"));
        assert!(outcome.reasons[1].starts_with("Security Hub: "), "{:?}", outcome.reasons);
        assert!(outcome.reasons[1].contains("1 archived as resolved"), "{}", outcome.reasons[1]);
        assert_eq!(outcome.aws_calls.get("SecurityHub.GetFindings"), Some(&1));
        assert_eq!(outcome.aws_calls.get("SecurityHub.BatchImportFindings"), Some(&1));
    }

    #[tokio::test]
    async fn a_refused_finding_fails_the_run_naming_it() {
        let registry = registry();
        let ecr: Vec<&Rule> = registry.iter().collect();
        let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
        let holdings = holdings();
        let refusing = mock!(aws_sdk_securityhub::Client::batch_import_findings).then_output(|| {
            let error = ImportFindingsError::builder()
                .id("ecr-warden/audit/x")
                .error_code("InvalidInput")
                .error_message("Finding does not adhere to ASFF")
                .build();
            BatchImportFindingsOutput::builder().failed_count(1).success_count(0).failed_findings(error).build()
        });
        let audit = audit_publishing(&ecr, &[&note, &claim], &[&publish], Some(&[&holdings, &refusing]));
        let error = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("InvalidInput") && text.contains("ecr-warden/audit/x"), "{text}");
    }

    #[tokio::test]
    async fn without_security_hub_enabled_nothing_is_published() {
        let registry = registry();
        let ecr: Vec<&Rule> = registry.iter().collect();
        let (note, claim, publish) = (standing_note(true), rules::put_item_ok(), rules::published());
        let audit = audit(&ecr, &[&note, &claim], &[&publish]);
        let outcome = audit.handle(testing::sample("scheduler.json"), &testing::invocation()).await.expect("audited");
        assert!(outcome.aws_calls.keys().all(|call| !call.starts_with("SecurityHub.")), "{:?}", outcome.aws_calls);
    }
}
