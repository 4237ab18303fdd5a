//! scan-gate under AWS faults (aws-smithy-mocks response sequences): Inspector `ListFindings`, ECR, DynamoDB
//! and SNS throttling and 5xx. The SDK's standard retries (millisecond backoff here) absorb transient faults
//! with each action taken once; past them the invocation fails with a retryable diagnostic and EventBridge's
//! retry completes the work without promoting, demoting or notifying twice.

use super::*;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_ecr::operation::batch_delete_image::{BatchDeleteImageError, BatchDeleteImageOutput};
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ecr::operation::put_image::{PutImageError, PutImageOutput};
use aws_sdk_ecr::types::error::ImageAlreadyExistsException;
use aws_sdk_ecr::types::{Image, ImageDetail};
use aws_sdk_inspector2::operation::list_coverage::ListCoverageError;
use aws_sdk_inspector2::operation::list_findings::{ListFindingsError, ListFindingsOutput};
use aws_sdk_inspector2::types::{FixAvailable, Severity as InspectorSeverity};
use aws_sdk_inspector2::types::{ScanStatusCode, ScanStatusReason};
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_smithy_mocks::{Rule, mock};
use warden::testing::rules::{coverage_active, coverage_output, image_with_tags, inspector_finding, transaction_ok};
use warden::testing::wire::{dynamodb_500, ecr_500, inspector_500, sns_500};
use warden::testing::{self, Retries, error_code as code, sample};

const DIGEST: &str = "sha256:6acea1b877bac2682db3652df3de9bf1930e81c9ffc7265cae361458643f1143";
const APPROVED: &str = "v1.5.0-approved";
const PROD: &str = "prod/payments-api";

fn gate(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule], inspector: &[&Rule]) -> ScanGate {
    let clients = testing::clients(ecr, dynamodb, sns, Retries::Deployed);
    let inspector = testing::inspector(inspector, &clients, Retries::Deployed);
    let policy = Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("policy");
    ScanGate::new(policy, testing::config(), clients, inspector).expect("gate")
}

fn finding(id: &str) -> aws_sdk_inspector2::types::Finding {
    inspector_finding(id, InspectorSeverity::High, FixAvailable::Yes)
}

fn tags(tags: &'static [&'static str]) -> impl Fn() -> DescribeImagesOutput + Send + Sync + 'static {
    move || {
        DescribeImagesOutput::builder()
            .image_details(
                ImageDetail::builder()
                    .image_digest(DIGEST)
                    .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
                    .build(),
            )
            .build()
    }
}

fn manifest() -> BatchGetImageOutput {
    BatchGetImageOutput::builder()
        .images(
            Image::builder()
                .image_manifest(r#"{"schemaVersion":2}"#)
                .image_manifest_media_type("application/vnd.oci.image.index.v1+json")
                .build(),
        )
        .build()
}

/// Both pages of Inspector findings, the image lookup, the demotion and the notification each meet throttling
/// or a 5xx first: one invocation, one demotion, one notification.
#[tokio::test]
async fn transient_faults_everywhere_end_in_one_demotion_and_one_notification() {
    let (s, body) = inspector_500();
    let page1 = mock!(aws_sdk_inspector2::Client::list_findings)
        .match_requests(|r| r.next_token().is_none())
        .sequence()
        .error(|| ListFindingsError::generic(code("ThrottlingException")))
        .http_status(s, body)
        .output(|| ListFindingsOutput::builder().findings(finding("CVE-2026-0001")).next_token("t2").build())
        .build();
    let page2 = mock!(aws_sdk_inspector2::Client::list_findings)
        .match_requests(|r| r.next_token() == Some("t2"))
        .sequence()
        .error(|| ListFindingsError::generic(code("ThrottlingException")))
        .output(|| ListFindingsOutput::builder().build())
        .build();
    let (s, body) = ecr_500();
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .error(|| DescribeImagesError::generic(code("ThrottlingException")))
        .http_status(s, body)
        .output(tags(&["v1.5.0", APPROVED]))
        .times(2)
        .build();
    let (s, body) = ecr_500();
    let remove = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .match_requests(|r| {
            r.image_ids().len() == 1
                && r.image_ids()[0].image_tag() == Some(APPROVED)
                && r.image_ids()[0].image_digest() == Some(DIGEST)
        })
        .sequence()
        .http_status(s, body)
        .output(|| BatchDeleteImageOutput::builder().build())
        .build();
    let claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item().and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("NOTIFY#"))
        })
        .sequence()
        .error(|| PutItemError::generic(code("ProvisionedThroughputExceededException")))
        .output(|| PutItemOutput::builder().build())
        .build();
    let (s, body) = dynamodb_500();
    let revoke = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .error(|| TransactWriteItemsError::generic(code("ThrottlingException")))
        .http_status(s, body)
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let (s, body) = sns_500();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .error(|| PublishError::generic(code("Throttling")))
        .http_status(s, body)
        .output(|| PublishOutput::builder().message_id("m").build())
        .build();
    let gate = gate(&[&describe, &remove], &[&revoke, &claim], &[&publish], &[&page1, &page2]);

    let outcome = gate
        .handle(sample("inspector2-finding.json"), &testing::invocation())
        .await
        .expect("retries absorb the faults");

    assert_eq!(outcome.decision, "demoted");
    assert!(outcome.notified);
    for (name, rule) in
        [("page1", &page1), ("page2", &page2), ("describe", &describe), ("revoke", &revoke), ("remove", &remove)]
    {
        assert!(rule.is_exhausted(), "{name}: {} calls", rule.num_calls());
    }
    assert!(claim.is_exhausted() && publish.is_exhausted());
    assert_eq!(outcome.aws_calls.get("Inspector2.ListFindings"), Some(&2), "two pages, each once");
    assert_eq!(outcome.aws_calls.get("ECR.BatchDeleteImage"), Some(&1));
}

/// Inspector throttles past the SDK's retries: nothing is decided on missing findings; the invocation fails
/// retryably and EventBridge's retry promotes once.
#[tokio::test]
async fn inspector_throttled_past_retries_fails_retryably_then_the_retry_promotes_once() {
    let findings = mock!(aws_sdk_inspector2::Client::list_findings)
        .sequence()
        .error(|| ListFindingsError::generic(code("ThrottlingException")))
        .times(3)
        .output(|| ListFindingsOutput::builder().build())
        .build();
    let get = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(manifest);
    let put = mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(|r| r.image_tag() == Some(APPROVED))
        .then_output(|| PutImageOutput::builder().build());
    let publish = warden::testing::rules::published();
    let claim = warden::testing::rules::put_item_ok();
    let (covered, current, approval) =
        (coverage_active(PROD, DIGEST), image_with_tags(DIGEST, &["v1.5.0"]), transaction_ok());
    let gate = gate(&[&current, &get, &put], &[&approval, &claim], &[&publish], &[&findings, &covered]);
    let event = sample("inspector2-finding-closed.json");

    let error = gate.handle(event.clone(), &testing::invocation()).await.expect_err("throttled past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "Retryable.AwsError");
    assert_eq!((put.num_calls(), publish.num_calls()), (0, 0), "no decision without the findings");

    let outcome = gate.handle(event, &testing::invocation()).await.expect("EventBridge's retry");
    assert_eq!(outcome.decision, "promoted");
    assert_eq!((put.num_calls(), publish.num_calls()), (1, 1));
}

/// Promotion meets throttling and 5xx on every call and still adds the tag once and says so once.
#[tokio::test]
async fn promotion_through_transient_faults_adds_the_tag_once() {
    let (s, body) = ecr_500();
    let get = mock!(aws_sdk_ecr::Client::batch_get_image).sequence().http_status(s, body).output(manifest).build();
    let put = mock!(aws_sdk_ecr::Client::put_image)
        .sequence()
        .error(|| PutImageError::generic(code("ThrottlingException")))
        .output(|| PutImageOutput::builder().build())
        .build();
    let none = mock!(aws_sdk_inspector2::Client::list_findings)
        .sequence()
        .error(|| ListFindingsError::generic(code("ThrottlingException")))
        .output(|| ListFindingsOutput::builder().build())
        .build();
    let (s, body) = sns_500();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .http_status(s, body)
        .output(|| PublishOutput::builder().message_id("m").build())
        .build();
    let claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .sequence()
        .error(|| PutItemError::generic(code("ProvisionedThroughputExceededException")))
        .output(|| PutItemOutput::builder().build())
        .build();
    let (s, body) = inspector_500();
    let covered = mock!(aws_sdk_inspector2::Client::list_coverage)
        .sequence()
        .http_status(s, body)
        .error(|| ListCoverageError::generic(code("ThrottlingException")))
        .output(coverage_output(
            PROD,
            DIGEST,
            ScanStatusCode::Active,
            ScanStatusReason::Successful,
            Some(1_764_000_000),
        ))
        .build();
    let approval = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .error(|| TransactWriteItemsError::generic(code("ProvisionedThroughputExceededException")))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let current = image_with_tags(DIGEST, &["v1.5.0"]);
    let gate = gate(&[&current, &get, &put], &[&approval, &claim], &[&publish], &[&none, &covered]);
    let outcome =
        gate.handle(sample("inspector2-finding-closed.json"), &testing::invocation()).await.expect("promoted");
    assert_eq!(outcome.decision, "promoted");
    assert!(get.is_exhausted() && put.is_exhausted() && none.is_exhausted() && publish.is_exhausted());
    assert!(covered.is_exhausted() && approval.is_exhausted());
    assert_eq!(outcome.aws_calls.get("Inspector2.ListCoverage"), Some(&1));
    assert_eq!(outcome.aws_calls.get("ECR.PutImage"), Some(&1));
}

/// The demotion's tag removal fails past the SDK's retries: nothing is notified; the retry removes the tag once
/// and notifies once.
#[tokio::test]
async fn demotion_interrupted_by_throttling_completes_on_retry_once() {
    let findings = mock!(aws_sdk_inspector2::Client::list_findings)
        .then_output(|| ListFindingsOutput::builder().findings(finding("CVE-2026-0001")).build());
    let describe = mock!(aws_sdk_ecr::Client::describe_images).then_output(tags(&["v1.5.0", APPROVED]));
    let remove = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .sequence()
        .error(|| BatchDeleteImageError::generic(code("ThrottlingException")))
        .times(3)
        .output(|| BatchDeleteImageOutput::builder().build())
        .build();
    let claim = warden::testing::rules::put_item_ok();
    let publish = warden::testing::rules::published();
    let revoke = transaction_ok();
    let gate = gate(&[&describe, &remove], &[&revoke, &claim], &[&publish], &[&findings]);
    let event = sample("inspector2-finding.json");

    let error = gate.handle(event.clone(), &testing::invocation()).await.expect_err("throttled past the SDK's retries");
    assert!(error.is_retryable());
    assert_eq!(publish.num_calls(), 0);
    let outcome = gate.handle(event, &testing::invocation()).await.expect("retried");
    assert_eq!(outcome.decision, "demoted");
    assert_eq!((remove.num_calls(), publish.num_calls()), (4, 1));
}

/// A replay of the event that demoted an image finds it no longer promoted, so it decides `blocked`: that
/// verdict shares the demotion's claim and stays silent (one notification per event, whatever it decided).
#[tokio::test]
async fn replayed_demotion_is_not_reported_again_as_a_gate_failure() {
    let findings = mock!(aws_sdk_inspector2::Client::list_findings)
        .then_output(|| ListFindingsOutput::builder().findings(finding("CVE-2026-0001")).build());
    // Read, re-read under the image's lease, then the replay's read.
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .output(tags(&["v1.5.0", APPROVED]))
        .times(2)
        .output(tags(&["v1.5.0"]))
        .build();
    let remove =
        mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build());
    let first_claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item().and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).is_some_and(|k| k == "gate-failed")
        })
        .sequence()
        .output(|| PutItemOutput::builder().build())
        .error(|| PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build()))
        .build();
    let parked = mock!(aws_sdk_dynamodb::Client::query).then_output(|| QueryOutput::builder().build());
    let publish = warden::testing::rules::published();
    let revoke = transaction_ok();
    let gate = gate(&[&describe, &remove], &[&revoke, &first_claim, &parked], &[&publish], &[&findings]);
    let event = sample("inspector2-finding.json");

    assert_eq!(gate.handle(event.clone(), &testing::invocation()).await.expect("demoted").decision, "demoted");
    let replay = gate.handle(event, &testing::invocation()).await.expect("replayed");
    assert_eq!(replay.decision, "blocked");
    assert!(!replay.notified);
    assert_eq!((remove.num_calls(), publish.num_calls(), first_claim.num_calls()), (1, 1, 2));
    assert_eq!(revoke.num_calls(), 1, "the replay finds nothing to revoke");
}

/// SNS fails past the SDK's retries after the promotion tag was added: the claim is given back and the
/// invocation fails retryably. The retry finds the tag there (no second promotion), and since the event saw the
/// image unpromoted, it sends the notice, once.
#[tokio::test]
async fn publish_failure_after_promotion_is_sent_by_the_retry_without_promoting_twice() {
    let none = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    let get = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(manifest);
    let put = mock!(aws_sdk_ecr::Client::put_image)
        .sequence()
        .output(|| PutImageOutput::builder().build())
        .error(|| PutImageError::ImageAlreadyExistsException(ImageAlreadyExistsException::builder().build()))
        .build();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .error(|| PublishError::generic(code("Throttling")))
        .times(3)
        .output(|| PublishOutput::builder().message_id("m").build())
        .build();
    let claim = warden::testing::rules::put_item_ok();
    let release = mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let (covered, approval) = (coverage_active(PROD, DIGEST), transaction_ok());
    let current = image_with_tags(DIGEST, &["v1.5.0"]);
    let gate = gate(&[&current, &get, &put], &[&approval, &claim, &release], &[&publish], &[&none, &covered]);
    let event = sample("inspector2-finding-closed.json");

    let error =
        gate.handle(event.clone(), &testing::invocation()).await.expect_err("SNS throttled past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(release.num_calls(), 1, "the claim is given back");
    let retried = gate.handle(event, &testing::invocation()).await.expect("retried");
    assert_eq!(retried.decision, "already-promoted");
    assert!(retried.notified, "the notice of this event's promotion is sent by the retry");
    assert_eq!(put.num_calls(), 2, "the second PutImage finds the tag there");
    assert_eq!(publish.num_calls(), 4);
}

/// ECR added the promotion tag but its answer was lost: the SDK's retry is told the image already has it. The
/// event saw the image unpromoted, so the promotion is this event's and is announced (once, claimed).
#[tokio::test]
async fn a_lost_put_image_answer_still_announces_the_promotion() {
    let none = mock!(aws_sdk_inspector2::Client::list_findings).then_output(|| ListFindingsOutput::builder().build());
    let get = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(manifest);
    let put = mock!(aws_sdk_ecr::Client::put_image)
        .sequence()
        .http_status(503, None)
        .error(|| PutImageError::ImageAlreadyExistsException(ImageAlreadyExistsException::builder().build()))
        .build();
    let claim = warden::testing::rules::put_item_ok();
    let publish = warden::testing::rules::published();
    let (covered, approval) = (coverage_active(PROD, DIGEST), transaction_ok());
    let current = image_with_tags(DIGEST, &["v1.5.0"]);
    let gate = gate(&[&current, &get, &put], &[&approval, &claim], &[&publish], &[&none, &covered]);
    let outcome = gate.handle(sample("inspector2-finding-closed.json"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "already-promoted");
    assert!(outcome.notified);
    assert_eq!((put.num_calls(), publish.num_calls()), (2, 1));
}
