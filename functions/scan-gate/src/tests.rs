//! scan-gate against exact AWS responses (aws-smithy-mocks): which calls a decision costs, pagination of both
//! findings APIs, Inspector's filters, promotion idempotency and demotion safety.

use super::*;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_image_scan_findings::{
    DescribeImageScanFindingsError, DescribeImageScanFindingsOutput,
};
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::put_image::{PutImageError, PutImageOutput};
use aws_sdk_ecr::types::error::{ImageTagAlreadyExistsException, ScanNotFoundException};
use aws_sdk_ecr::types::{
    Attribute, FindingSeverity, Image, ImageDetail, ImageScanFinding, ImageScanFindings, ImageScanStatus, ScanStatus,
};
use aws_sdk_inspector2::operation::list_findings::{ListFindingsError, ListFindingsOutput};
use aws_sdk_inspector2::types::{FixAvailable, Severity as InspectorSeverity};
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::error::ErrorMetadata;
use warden::testing::rules::{coverage, coverage_active, image_with_tags, inspector_finding, transaction_ok};
use warden::testing::{self, Retries, sample};

const PROD: &str = "prod/payments-api";
const DEV: &str = "dev/web-frontend";
const DIGEST: &str = "sha256:6acea1b877bac2682db3652df3de9bf1930e81c9ffc7265cae361458643f1143";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A basic scan event for `repository` with the given counts and tags.
fn basic_scan(repository: &str, counts: Value, tags: &[&str]) -> Value {
    let mut event = sample("ecr-image-scan.json");
    event["detail"]["repository-name"] = repository.into();
    event["detail"]["image-digest"] = DIGEST.into();
    event["detail"]["finding-severity-counts"] = counts;
    event["detail"]["image-tags"] = tags.iter().map(|t| Value::from(*t)).collect();
    event
}

fn inspector_scan(tags: &[&str]) -> Value {
    let mut event = sample("inspector2-scan.json");
    event["detail"]["image-tags"] = tags.iter().map(|t| Value::from(*t)).collect();
    event
}

fn gate(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule], inspector: &[&Rule]) -> ScanGate {
    let clients = testing::clients(ecr, dynamodb, sns, Retries::None);
    let inspector = testing::inspector(inspector, &clients, Retries::None);
    let policy = Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("policy");
    ScanGate::new(policy, testing::config(), clients, inspector).expect("gate")
}

fn manifest(media_type: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::batch_get_image).then_output(move || {
        BatchGetImageOutput::builder()
            .images(
                Image::builder().image_manifest(r#"{"schemaVersion":2}"#).image_manifest_media_type(media_type).build(),
            )
            .build()
    })
}

fn put_ok(tag: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(move |r| r.image_tag() == Some(tag) && r.image_digest() == Some(DIGEST))
        .then_output(|| PutImageOutput::builder().build())
}

/// The ledger holds no notification parked by an earlier invocation of the event (the normal case).
fn nothing_parked() -> Rule {
    mock!(aws_sdk_dynamodb::Client::query)
        .then_output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build())
}

fn claim() -> Rule {
    warden::testing::rules::put_item_ok()
}

fn publish() -> Rule {
    warden::testing::rules::published()
}

fn image_tags(tags: &'static [&'static str]) -> Rule {
    warden::testing::rules::image_with_tags(DIGEST, tags)
}

/// The registry's basic scan of the image: complete, with these findings.
fn registry_scan(findings: Vec<ImageScanFinding>) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_image_scan_findings).then_output(move || scan_page(findings.clone(), None))
}

fn basic_finding(id: &str, severity: FindingSeverity) -> ImageScanFinding {
    ImageScanFinding::builder()
        .name(id)
        .severity(severity)
        .uri(format!("https://nvd.nist.gov/vuln/detail/{id}"))
        .attributes(Attribute::builder().key("package_name").value("openssl").build().expect("attribute"))
        .attributes(Attribute::builder().key("package_version").value("3.0.13").build().expect("attribute"))
        .build()
}

fn scan_page(findings: Vec<ImageScanFinding>, next: Option<&str>) -> DescribeImageScanFindingsOutput {
    DescribeImageScanFindingsOutput::builder()
        .image_scan_status(ImageScanStatus::builder().status(ScanStatus::Complete).build())
        .image_scan_findings(ImageScanFindings::builder().set_findings(Some(findings)).build())
        .set_next_token(next.map(str::to_owned))
        .build()
}

fn calls(outcome: &Outcome) -> Vec<(&str, u32)> {
    outcome.aws_calls.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

#[tokio::test]
async fn passing_counts_are_confirmed_by_the_registry_then_promoted() {
    let (get, put, sent) =
        (manifest("application/vnd.oci.image.manifest.v1+json"), put_ok("approved-6acea1b877ba"), publish());
    let (registry, approval, claimed) = (registry_scan(vec![]), transaction_ok(), claim());
    let tags = image_tags(&["pr-1284"]);
    let gate = gate(&[&registry, &tags, &get, &put], &[&approval, &claimed], &[&sent], &[]);
    let outcome = gate
        .handle(basic_scan(DEV, serde_json::json!({"HIGH": 4, "LOW": 2}), &["pr-1284"]), &testing::invocation())
        .await
        .expect("ok");
    assert_eq!(outcome.decision, "promoted");
    assert_eq!(
        calls(&outcome),
        vec![
            ("DynamoDB.PutItem", 1),
            ("DynamoDB.Query", 1),
            ("DynamoDB.TransactWriteItems", 1),
            ("DynamoDB.UpdateItem", 1),
            ("ECR.BatchGetImage", 1),
            ("ECR.DescribeImageScanFindings", 1),
            ("ECR.DescribeImages", 1),
            ("ECR.PutImage", 1),
            ("SNS.Publish", 1)
        ],
        "index lookup + registry re-read + current tags + approval + BatchGetImage + PutImage + claim + publish + \
         marked sent"
    );
    assert_eq!(outcome.gate.as_ref().map(|g| g.evidence), Some("findings"), "decided on the registry's scan");
    assert!(outcome.reasons.iter().any(|r| r.contains("disagree")), "{:?}", outcome.reasons);
    assert!(outcome.notified);
}

#[tokio::test]
async fn replayed_promotion_is_quiet() {
    // The tag is already there: PutImage answers ImageTagAlreadyExistsException (immutable) for the same digest.
    let get = manifest("application/vnd.oci.image.manifest.v1+json");
    let exists = mock!(aws_sdk_ecr::Client::put_image).then_error(|| {
        PutImageError::ImageTagAlreadyExistsException(ImageTagAlreadyExistsException::builder().build())
    });
    // Read without the tag (added by another delivery just after the read): PutImage finds it there.
    let same = image_tags(&["pr-1284"]);
    // The event saw the image without the tag: this event promoted it, and the notice was claimed then.
    let sent = publish();
    let told = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    });
    let (registry, approval) = (registry_scan(vec![]), transaction_ok());
    let gate = gate(&[&registry, &get, &exists, &same], &[&approval, &told], &[&sent], &[]);
    let outcome =
        gate.handle(basic_scan(DEV, serde_json::json!({}), &["pr-1284"]), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "already-promoted");
    assert_eq!(outcome.actions[0].result, ActionResult::AlreadyDone);
    assert_eq!(sent.num_calls(), 0, "nothing changed, nothing to say");
}

#[tokio::test]
async fn promotion_tag_held_by_another_image_is_a_clear_failure() {
    let get = manifest("application/vnd.oci.image.manifest.v1+json");
    let exists = mock!(aws_sdk_ecr::Client::put_image).then_error(|| {
        PutImageError::ImageTagAlreadyExistsException(ImageTagAlreadyExistsException::builder().build())
    });
    let elsewhere = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| r.image_ids().first().and_then(|i| i.image_tag()).is_some())
        .then_output(|| {
            DescribeImagesOutput::builder()
                .image_details(
                    ImageDetail::builder().image_digest("sha256:other").image_tags("approved-6acea1b877ba").build(),
                )
                .build()
        });
    let (claimed, sent, registry, approval) = (claim(), publish(), registry_scan(vec![]), transaction_ok());
    let own = image_tags(&["pr-1284"]);
    let gate = gate(&[&registry, &get, &exists, &elsewhere, &own], &[&approval, &claimed], &[&sent], &[]);
    let outcome = gate
        .handle(basic_scan(DEV, serde_json::json!({}), &["pr-1284"]), &testing::invocation())
        .await
        .expect("no retry loop");
    assert_eq!(outcome.decision, "promotion-failed");
    assert!(outcome.actions[0].detail.as_deref().is_some_and(|d| d.contains("sha256:other")));
    assert_eq!(sent.num_calls(), 1);
}

#[tokio::test]
async fn failing_counts_block_without_reading_findings() {
    let (claimed, sent) = (claim(), publish());
    let gate = gate(&[], &[&claimed], &[&sent], &[]);
    let outcome = gate
        .handle(basic_scan(DEV, serde_json::json!({"CRITICAL": 1}), &["pr-1284"]), &testing::invocation())
        .await
        .expect("ok");
    assert_eq!(outcome.decision, "blocked");
    assert!(outcome.actions.is_empty());
    // The Query: is the image a platform image of an index (whose gate it would then fail)?
    assert_eq!(
        calls(&outcome),
        vec![("DynamoDB.PutItem", 1), ("DynamoDB.Query", 1), ("DynamoDB.UpdateItem", 1), ("SNS.Publish", 1)]
    );
}

#[tokio::test]
async fn allowlist_reads_every_page_of_basic_findings() {
    let page1 = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| scan_page(vec![basic_finding("CVE-2026-31337", FindingSeverity::Critical)], Some("p2")));
    let page2 = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .match_requests(|r| r.next_token() == Some("p2"))
        .then_output(|| scan_page(vec![basic_finding("CVE-2026-1111", FindingSeverity::Medium)], None));
    let (get, put, sent) =
        (manifest("application/vnd.oci.image.manifest.v1+json"), put_ok("v1.4.2-approved"), publish());
    let (claimed, current, approval) = (claim(), image_with_tags(DIGEST, &["v1.4.2"]), transaction_ok());
    let gate = gate(&[&page1, &page2, &current, &get, &put], &[&approval, &claimed], &[&sent], &[]);
    let outcome = gate
        .handle(basic_scan(PROD, serde_json::json!({"CRITICAL": 1, "MEDIUM": 1}), &["v1.4.2"]), &testing::invocation())
        .await
        .expect("ok");
    assert_eq!((page1.num_calls(), page2.num_calls()), (1, 1));
    assert_eq!(outcome.decision, "promoted");
    let result = outcome.gate.expect("gate result");
    assert_eq!(result.evidence, "findings");
    assert_eq!(result.allowlisted.len(), 1, "CVE-2026-31337 is allowlisted for prod/payments-*");
    assert_eq!(result.counts_before[&warden::policy::FindingSeverity::Critical], 1);
    assert_eq!(result.counts_after[&warden::policy::FindingSeverity::Critical], 0);
}

#[tokio::test]
async fn the_allowlist_is_scoped() {
    let findings = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .then_output(|| scan_page(vec![basic_finding("CVE-2026-31337", FindingSeverity::Critical)], None));
    // on-failure = demote: scan-gate looks at the image's current tags (not promoted here).
    let current = image_tags(&["v2.0.0"]);
    let (claimed, sent, parked) = (claim(), publish(), nothing_parked());
    let gate = gate(&[&findings, &current], &[&claimed, &parked], &[&sent], &[]);
    let outcome = gate
        .handle(
            basic_scan("prod/billing-worker", serde_json::json!({"CRITICAL": 1}), &["v2.0.0"]),
            &testing::invocation(),
        )
        .await
        .expect("ok");
    assert_eq!(outcome.decision, "blocked");
    assert!(outcome.actions.is_empty());
    let result = outcome.gate.expect("gate");
    assert_eq!(result.blocking[0].id, "CVE-2026-31337");
    assert_eq!(result.stale, Vec::<String>::new(), "out of scope entries are not stale here");
}

#[tokio::test]
async fn enhanced_findings_fail_and_a_promoted_image_is_demoted() {
    let first = mock!(aws_sdk_inspector2::Client::list_findings)
        .match_requests(|r| {
            let criteria = r.filter_criteria().expect("filters");
            r.next_token().is_none()
                && criteria.ecr_image_repository_name()[0].value() == PROD
                && criteria.ecr_image_hash()[0].value() == DIGEST
                && criteria.finding_status()[0].value() == "ACTIVE"
        })
        .then_output(|| {
            ListFindingsOutput::builder()
                .findings(inspector_finding("CVE-2026-0001", InspectorSeverity::High, FixAvailable::Yes))
                .next_token("t2")
                .build()
        });
    let second = mock!(aws_sdk_inspector2::Client::list_findings)
        .match_requests(|r| r.next_token() == Some("t2"))
        .then_output(|| {
            ListFindingsOutput::builder()
                .findings(inspector_finding("CVE-2026-0002", InspectorSeverity::High, FixAvailable::No))
                .build()
        });
    let current = image_tags(&["v1.5.0", "v1.5.0-approved"]);
    let removed = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .match_requests(|r| {
            r.image_ids().len() == 1
                && r.image_ids()[0].image_tag() == Some("v1.5.0-approved")
                && r.image_ids()[0].image_digest() == Some(DIGEST)
        })
        .then_output(|| BatchDeleteImageOutput::builder().build());
    let revoked = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(|r| {
            // The failing verdict and the deletion of the approval, before the tag goes.
            r.transact_items().len() == 2
                && r.transact_items()[1].delete().is_some_and(|d| {
                    d.key().get("sk").and_then(|v| v.as_s().ok()).map(String::as_str)
                        == Some(&format!("{DIGEST}#v1.5.0-approved"))
                })
        })
        .then_output(|| aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder().build());
    let (claimed, sent) = (claim(), publish());
    let gate = gate(&[&current, &removed], &[&revoked, &claimed], &[&sent], &[&first, &second]);
    let outcome =
        gate.handle(inspector_scan(&["v1.5.0", "v1.5.0-approved"]), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "demoted");
    assert_eq!((revoked.num_calls(), removed.num_calls()), (1, 1));
    let result = outcome.gate.expect("gate");
    assert_eq!(result.counts_after[&warden::policy::FindingSeverity::High], 1, "the unfixable finding does not count");
    assert_eq!(result.blocking[0].id, "CVE-2026-0001");
    assert!(outcome.notified);
}

#[tokio::test]
async fn demotion_keeps_an_image_whose_only_tag_is_the_promotion_tag() {
    let findings = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| {
        ListFindingsOutput::builder()
            .findings(inspector_finding("CVE-2026-0001", InspectorSeverity::Critical, FixAvailable::Yes))
            .build()
    });
    let current = image_tags(&["v1.5.0-approved"]);
    let get = manifest("application/vnd.oci.image.manifest.v1+json");
    let quarantine = put_ok("quarantine-6acea1b877ba");
    let removed =
        mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build());
    let (claimed, sent, revoked) = (claim(), publish(), transaction_ok());
    let gate = gate(&[&current, &get, &quarantine, &removed], &[&revoked, &claimed], &[&sent], &[&findings]);
    let outcome = gate.handle(sample("inspector2-finding.json"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "demoted");
    assert_eq!((quarantine.num_calls(), removed.num_calls()), (1, 1), "quarantine first, then remove");
}

#[tokio::test]
async fn a_finding_that_closes_promotes_again_when_inspector_scans_the_image() {
    let none = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    let active = coverage_active(PROD, DIGEST);
    let get = manifest(INDEX);
    let put = mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(|r| r.image_tag() == Some("v1.5.0-approved") && r.image_manifest_media_type() == Some(INDEX))
        .then_output(|| PutImageOutput::builder().build());
    let (sent, claimed, approval, current) = (publish(), claim(), transaction_ok(), image_tags(&["v1.5.0"]));
    let gate = gate(&[&current, &get, &put], &[&approval, &claimed], &[&sent], &[&none, &active]);
    let outcome = gate.handle(sample("inspector2-finding-closed.json"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "promoted");
    assert_eq!(put.num_calls(), 1, "an image index is promoted as the index");
    assert_eq!(active.num_calls(), 1, "Inspector's coverage of the digest confirms the scan");
}

#[tokio::test]
async fn failed_or_missing_scans_never_promote() {
    let (claimed, sent) = (claim(), publish());
    let gate = gate(&[], &[&claimed], &[&sent], &[]);
    let mut failed = sample("ecr-image-scan-failed.json");
    failed["detail"]["repository-name"] = DEV.into();
    failed["detail"]["image-digest"] = DIGEST.into();
    let outcome = gate.handle(failed, &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "scan-failed");
    assert!(outcome.actions.is_empty() && outcome.notified);

    let not_found = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .then_error(|| DescribeImageScanFindingsError::ScanNotFoundException(ScanNotFoundException::builder().build()));
    let (claimed, sent) = (claim(), publish());
    let gate = self::gate(&[&not_found], &[&claimed], &[&sent], &[]);
    let outcome =
        gate.handle(basic_scan(PROD, serde_json::json!({}), &["v1.4.2"]), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "not-scanned");
}

#[tokio::test]
async fn an_image_deleted_since_its_scan_is_skipped() {
    let gone = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(|| BatchGetImageOutput::builder().build());
    let (sent, registry, approval) = (publish(), registry_scan(vec![]), transaction_ok());
    let tags = image_tags(&["pr-9"]);
    let gate = gate(&[&registry, &tags, &gone], &[&approval], &[&sent], &[]);
    let outcome =
        gate.handle(basic_scan(DEV, serde_json::json!({}), &["pr-9"]), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "skipped");
    assert_eq!(outcome.actions[0].result, ActionResult::Gone);
    assert_eq!(sent.num_calls(), 0, "no retry loop, no noise");
}

#[tokio::test]
async fn irrelevant_events_are_skipped_without_calls() {
    let gate = gate(&[], &[], &[], &[]);
    for name in
        ["inspector2-finding-ec2.json", "ecr-image-push.json", "other-source.json", "ecr-replication-failed.json"]
    {
        let outcome = gate.handle(sample(name), &testing::invocation()).await.expect("skipped");
        assert_eq!(outcome.decision, "skipped", "{name}");
        assert!(outcome.aws_calls.is_empty(), "{name}");
    }
    let sandbox = basic_scan("sandbox/experiments", serde_json::json!({"CRITICAL": 9}), &[]);
    assert_eq!(gate.handle(sandbox, &testing::invocation()).await.expect("skipped").decision, "skipped");
}

#[tokio::test]
async fn throttled_inspector_is_retryable() {
    let throttled = mock!(aws_sdk_inspector2::Client::list_findings)
        .then_error(|| ListFindingsError::generic(ErrorMetadata::builder().code("ThrottlingException").build()));
    let gate = gate(&[], &[], &[], &[&throttled]);
    let error = gate.handle(inspector_scan(&["v1.5.0"]), &testing::invocation()).await.expect_err("throttled");
    assert!(error.is_retryable(), "{error}");
}

#[tokio::test]
async fn a_rescan_of_an_image_the_event_shows_promoted_refreshes_its_approval_and_says_nothing() {
    let get = manifest("application/vnd.oci.image.manifest.v1+json");
    let exists = mock!(aws_sdk_ecr::Client::put_image).then_error(|| {
        PutImageError::ImageTagAlreadyExistsException(ImageTagAlreadyExistsException::builder().build())
    });
    let same = image_tags(&["pr-1284", "approved-6acea1b877ba"]);
    let (sent, registry, approval) = (publish(), registry_scan(vec![]), transaction_ok());
    let gate = gate(&[&registry, &get, &exists, &same], &[&approval], &[&sent], &[]);
    let outcome = gate
        .handle(basic_scan(DEV, serde_json::json!({}), &["pr-1284", "approved-6acea1b877ba"]), &testing::invocation())
        .await
        .expect("ok");
    assert_eq!(outcome.decision, "already-promoted");
    assert_eq!(sent.num_calls(), 0);
    assert_eq!(approval.num_calls(), 1, "the approval is recorded again (a tag pushed before it gets its record)");
    assert!(!outcome.aws_calls.contains_key("DynamoDB.PutItem"), "no notification claim");
}

mod index;
mod supply_chain;
mod threats;
