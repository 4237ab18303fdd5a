//! scan-gate as an adversary would try it (aws-smithy-mocks): events that claim more than the registry knows,
//! findings that close for the wrong reasons, late and replayed events, and events about other registries.
//! Each asserts what reached ECR: no PutImage of a promotion tag, no approval written.

use super::*;
use aws_sdk_inspector2::types::{ScanStatusCode, ScanStatusReason};
use warden::testing::rules::approval_superseded;

/// Every ECR write and the approval transaction, counted: a test that must not promote asserts they stay 0.
struct Writes {
    put: Rule,
    approve: Rule,
}

impl Writes {
    fn new() -> Self {
        Self {
            put: mock!(aws_sdk_ecr::Client::put_image).then_output(|| PutImageOutput::builder().build()),
            approve: transaction_ok(),
        }
    }

    fn assert_none(&self, case: &str) {
        assert_eq!(self.put.num_calls(), 0, "{case}: no tag may be added");
        assert_eq!(self.approve.num_calls(), 0, "{case}: no approval may be recorded");
    }
}

fn finding_event(status: &str) -> Value {
    let mut event = sample("inspector2-finding-closed.json");
    event["detail"]["status"] = status.into();
    event
}

#[tokio::test]
async fn a_closed_finding_on_an_image_inspector_does_not_cover_never_promotes() {
    let writes = Writes::new();
    let none = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    let uncovered = mock!(aws_sdk_inspector2::Client::list_coverage)
        .then_output(|| aws_sdk_inspector2::operation::list_coverage::ListCoverageOutput::builder().build());
    let gate = gate(&[&writes.put], &[&writes.approve], &[], &[&none, &uncovered]);
    let outcome = gate.handle(finding_event("CLOSED"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-promoted");
    assert!(outcome.reasons.iter().any(|r| r.contains("does not cover")), "{:?}", outcome.reasons);
    writes.assert_none("unscanned image");
}

#[tokio::test]
async fn a_finding_closed_because_scanning_stopped_never_promotes() {
    let writes = Writes::new();
    let none = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    let expired =
        coverage(PROD, DIGEST, ScanStatusCode::Inactive, ScanStatusReason::ScanEligibilityExpired, Some(1_760_000_000));
    let gate = gate(&[&writes.put], &[&writes.approve], &[], &[&none, &expired]);
    let outcome = gate.handle(finding_event("CLOSED"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-promoted");
    assert!(outcome.reasons.iter().any(|r| r.contains("SCAN_ELIGIBILITY_EXPIRED")), "{:?}", outcome.reasons);
    writes.assert_none("eligibility expired");
}

#[tokio::test]
async fn a_finding_whose_scan_is_not_complete_never_promotes() {
    let writes = Writes::new();
    let none = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    let pending = coverage(PROD, DIGEST, ScanStatusCode::Active, ScanStatusReason::PendingInitialScan, None);
    let gate = gate(&[&writes.put], &[&writes.approve], &[], &[&none, &pending]);
    let outcome = gate.handle(finding_event("CLOSED"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-promoted");
    writes.assert_none("initial scan pending");
}

#[tokio::test]
async fn a_suppressed_finding_on_a_scanned_image_never_promotes() {
    let writes = Writes::new();
    let none = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    let active = coverage_active(PROD, DIGEST);
    let gate = gate(&[&writes.put], &[&writes.approve], &[], &[&none, &active]);
    let outcome = gate.handle(finding_event("SUPPRESSED"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-promoted");
    assert!(outcome.reasons.iter().any(|r| r.contains("suppress")), "{:?}", outcome.reasons);
    writes.assert_none("suppressed");
}

/// The development class decides from counts alone: an event with no counts once promoted on its own word.
#[tokio::test]
async fn a_scan_event_for_an_image_the_registry_never_scanned_never_promotes() {
    let writes = Writes::new();
    let not_found = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .then_error(|| DescribeImageScanFindingsError::ScanNotFoundException(ScanNotFoundException::builder().build()));
    let (claimed, sent) = (claim(), publish());
    let gate = gate(&[&not_found, &writes.put], &[&writes.approve, &claimed], &[&sent], &[]);
    let outcome =
        gate.handle(basic_scan(DEV, serde_json::json!({}), &["pr-7"]), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-scanned");
    assert_eq!(not_found.num_calls(), 1, "the registry was asked");
    writes.assert_none("no registry scan");
}

#[tokio::test]
async fn a_scan_event_that_understates_the_registry_is_decided_by_the_registry() {
    let writes = Writes::new();
    let registry = registry_scan(vec![basic_finding("CVE-2026-9999", FindingSeverity::Critical)]);
    let (claimed, sent) = (claim(), publish());
    let gate = gate(&[&registry, &writes.put], &[&writes.approve, &claimed], &[&sent], &[]);
    let outcome = gate
        .handle(basic_scan(DEV, serde_json::json!({"LOW": 1}), &["pr-7"]), &testing::invocation())
        .await
        .expect("ok");
    assert_eq!(outcome.decision, "blocked");
    assert!(
        outcome.reasons.iter().any(|r| r.contains("CRITICAL 0 in the event, 1 in the registry")),
        "{:?}",
        outcome.reasons
    );
    writes.assert_none("understated counts");
}

#[tokio::test]
async fn a_replayed_passing_scan_after_a_demotion_does_not_promote_again() {
    let put = mock!(aws_sdk_ecr::Client::put_image).then_output(|| PutImageOutput::builder().build());
    let registry = registry_scan(vec![]);
    let later_failure = approval_superseded(1_795_500_000, "demoting-event");
    let tags = super::image_tags(&["pr-7"]);
    let gate = gate(&[&registry, &tags, &put], &[&later_failure], &[], &[]);
    let outcome =
        gate.handle(basic_scan(DEV, serde_json::json!({}), &["pr-7"]), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons.iter().any(|r| r.contains("demoting-event")), "{:?}", outcome.reasons);
    assert_eq!(later_failure.num_calls(), 1);
    assert_eq!(put.num_calls(), 0, "no promotion tag");
}

/// An allowlist entry that had not expired on the event's date but has today: a late or replayed event is
/// judged on today's date.
#[tokio::test]
async fn an_expired_allowlist_entry_does_not_apply_to_an_old_event() {
    let policy = r#"
version = 1
default-class = "c"
[[class]]
name = "c"
[class.gate]
max = { critical = 0 }
promote = ["approved-{digest12}"]
[[class.gate.allow]]
id = "CVE-2026-31337"
reason = "accepted until the end of January"
expires = 2026-01-31
"#;
    let writes = Writes::new();
    let registry = registry_scan(vec![basic_finding("CVE-2026-31337", FindingSeverity::Critical)]);
    let (claimed, sent) = (claim(), publish());
    let clients = testing::clients(&[&registry, &writes.put], &[&writes.approve, &claimed], &[&sent], Retries::None);
    let inspector = testing::inspector(&[], &clients, Retries::None);
    let policy = Policy::from_toml(policy, "test.toml").expect("policy");
    let gate = ScanGate::new(policy, testing::config(), clients, inspector).expect("gate");
    let mut event = basic_scan("team/api", serde_json::json!({"CRITICAL": 1}), &["build-1"]);
    event["time"] = "2026-01-15T10:00:00Z".into();
    let outcome = gate.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "blocked");
    let result = outcome.gate.expect("gate result");
    assert!(result.allowlisted.is_empty(), "{result:?}");
    assert_eq!(result.expired.len(), 1, "{result:?}");
    writes.assert_none("expired allowlist entry");
}

/// Removing tags is destructive: an event's counts alone never demote; the registry's scan decides.
#[tokio::test]
async fn failing_counts_alone_never_demote_a_promoted_image() {
    let policy = r#"
version = 1
default-class = "c"
[[class]]
name = "c"
[class.gate]
max = { critical = 0 }
promote = ["approved-{digest12}"]
on-failure = "demote"
"#;
    let current = image_tags(&["build-1", "approved-6acea1b877ba"]);
    let registry = registry_scan(vec![]);
    let remove =
        mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build());
    let revoke = transaction_ok();
    let clients = testing::clients(&[&current, &registry, &remove], &[&revoke], &[], Retries::None);
    let inspector = testing::inspector(&[], &clients, Retries::None);
    let gate =
        ScanGate::new(Policy::from_toml(policy, "t.toml").expect("policy"), testing::config(), clients, inspector)
            .expect("gate");
    let event = basic_scan("team/api", serde_json::json!({"CRITICAL": 3}), &["build-1", "approved-6acea1b877ba"]);
    let outcome = gate.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-demoted");
    assert_eq!(registry.num_calls(), 1, "the registry was read before removing anything");
    assert_eq!((remove.num_calls(), revoke.num_calls()), (0, 0), "nothing removed or revoked");
}

#[tokio::test]
async fn events_about_other_accounts_or_regions_are_refused_at_the_door() {
    let writes = Writes::new();
    let gate = gate(&[&writes.put], &[&writes.approve], &[], &[]);
    for (account, region) in [("999999999999", "us-east-1"), ("123456789012", "eu-west-1")] {
        let mut event = basic_scan(DEV, serde_json::json!({}), &["pr-7"]);
        event["account"] = account.into();
        event["region"] = region.into();
        let outcome = gate.handle(event, &testing::invocation()).await.expect("skipped");
        assert_eq!(outcome.decision, "skipped", "{account} {region}");
        assert!(outcome.aws_calls.is_empty(), "{account} {region}: {:?}", outcome.aws_calls);
    }
    writes.assert_none("foreign event");
}

/// Inspector's delegated administrator receives its members' finding events under its own account: such an event
/// passes the door (its account is the function's), but the image is another account's, and the same-named
/// repository here is not where it lives.
#[tokio::test]
async fn a_finding_about_another_accounts_image_is_not_acted_on_here() {
    let writes = Writes::new();
    let gate = gate(&[&writes.put], &[&writes.approve], &[], &[]);
    for field in ["registry", "awsAccountId"] {
        let mut event = finding_event("ACTIVE");
        if field == "registry" {
            event["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["registry"] = "999999999999".into();
        } else {
            event["detail"]["awsAccountId"] = "999999999999".into();
            event["detail"]["resources"][0]["details"]["awsEcrContainerImage"]
                .as_object_mut()
                .map(|image| image.remove("registry"));
        }
        let outcome = gate.handle(event, &testing::invocation()).await.expect("skipped");
        assert_eq!(outcome.decision, "skipped", "{field}");
        assert!(outcome.reasons[0].contains("account 999999999999's registry"), "{field}: {:?}", outcome.reasons);
        assert!(outcome.aws_calls.is_empty(), "{field}: {:?}", outcome.aws_calls);
    }
    writes.assert_none("another account's image");
}
