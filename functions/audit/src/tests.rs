//! The scheduled audit over mocked reads: one summary when the findings are new or changed, silence while they
//! stand unchanged, nothing for another account's events; every read failure a finding, never a pass.

use super::*;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::describe_pull_through_cache_rules::DescribePullThroughCacheRulesOutput;
use aws_sdk_ecr::operation::describe_registry::DescribeRegistryOutput;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::operation::get_lifecycle_policy::GetLifecyclePolicyError;
use aws_sdk_ecr::operation::get_registry_policy::GetRegistryPolicyError;
use aws_sdk_ecr::operation::get_registry_scanning_configuration::{
    GetRegistryScanningConfigurationError, GetRegistryScanningConfigurationOutput,
};
use aws_sdk_ecr::operation::get_repository_policy::GetRepositoryPolicyError;
use aws_sdk_ecr::types::error::{
    LifecyclePolicyNotFoundException, RegistryPolicyNotFoundException, RepositoryPolicyNotFoundException,
};
use aws_sdk_ecr::types::{ImageTagMutability, RegistryScanningConfiguration, Repository, ScanType};
use aws_smithy_mocks::{Rule, mock};
use warden::policy::EMBEDDED_POLICY;
use warden::testing::{self, Retries, rules};

/// One production repository created mutable by hand: no lifecycle policy, no scanning.
fn registry() -> Vec<Rule> {
    let repository = Repository::builder()
        .repository_name("prod/payments-api")
        .image_tag_mutability(ImageTagMutability::Mutable)
        .build();
    vec![
        mock!(aws_sdk_ecr::Client::describe_repositories)
            .then_output(move || DescribeRepositoriesOutput::builder().repositories(repository.clone()).build()),
        mock!(aws_sdk_ecr::Client::get_registry_scanning_configuration).then_output(|| {
            let basic = RegistryScanningConfiguration::builder().scan_type(ScanType::Basic).build();
            GetRegistryScanningConfigurationOutput::builder().scanning_configuration(basic).build()
        }),
        mock!(aws_sdk_ecr::Client::get_registry_policy).then_error(|| {
            GetRegistryPolicyError::RegistryPolicyNotFoundException(RegistryPolicyNotFoundException::builder().build())
        }),
        mock!(aws_sdk_ecr::Client::describe_registry).then_output(|| DescribeRegistryOutput::builder().build()),
        mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules)
            .then_output(|| DescribePullThroughCacheRulesOutput::builder().build()),
        mock!(aws_sdk_ecr::Client::describe_images).then_output(|| DescribeImagesOutput::builder().build()),
        mock!(aws_sdk_ecr::Client::get_lifecycle_policy).then_error(|| {
            GetLifecyclePolicyError::LifecyclePolicyNotFoundException(
                LifecyclePolicyNotFoundException::builder().build(),
            )
        }),
        mock!(aws_sdk_ecr::Client::get_repository_policy).then_error(|| {
            GetRepositoryPolicyError::RepositoryPolicyNotFoundException(
                RepositoryPolicyNotFoundException::builder().build(),
            )
        }),
    ]
}

/// The note of the standing findings (`STANDING#audit`): new (`true`) or told already (`false`).
fn standing_note(new: bool) -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            let pk = r.item().and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok());
            let sk = r.item().and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok());
            pk.is_some_and(|pk| pk == "STANDING#audit") && sk.is_some_and(|sk| sk == KIND)
        })
        .then_compute_response(move |_| {
            if new {
                aws_smithy_mocks::MockResponse::Output(PutItemOutput::builder().build())
            } else {
                let failed = ConditionalCheckFailedException::builder().message("unchanged").build();
                aws_smithy_mocks::MockResponse::Error(PutItemError::ConditionalCheckFailedException(failed))
            }
        })
}

fn audit(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule]) -> Audit {
    let clients = testing::clients(ecr, dynamodb, sns, Retries::Deployed);
    let inspector = testing::inspector(&[], &clients, Retries::Deployed);
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("policy");
    Audit::new(policy, testing::config(), clients, inspector).expect("audit")
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
async fn another_accounts_schedule_is_refused_at_the_door_without_a_call() {
    let audit = audit(&[], &[], &[]);
    let mut event = testing::sample("scheduler.json");
    event["account"] = "999999999999".into();
    let outcome = audit.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.aws_calls.is_empty());
}

#[tokio::test]
async fn a_thousand_repositories_cost_three_reads_each_and_six_for_the_registry() {
    let mut registry = registry();
    let many: Vec<Repository> = (0..1000)
        .map(|n| {
            Repository::builder()
                .repository_name(format!("dev/app-{n:04}"))
                .image_tag_mutability(ImageTagMutability::Mutable)
                .build()
        })
        .collect();
    registry[0] = mock!(aws_sdk_ecr::Client::describe_repositories)
        .then_output(move || DescribeRepositoriesOutput::builder().set_repositories(Some(many.clone())).build());
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
            ("ECR.GetLifecyclePolicy", 1000),
            ("ECR.GetRegistryPolicy", 1),
            ("ECR.GetRegistryScanningConfiguration", 1),
            ("ECR.GetRepositoryPolicy", 1000),
        ]
    );
    assert!(outcome.reasons[0].starts_with("1000 repositories audited:"), "{}", outcome.reasons[0]);
}
