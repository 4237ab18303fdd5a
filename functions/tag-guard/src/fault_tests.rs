//! tag-guard under AWS faults (aws-smithy-mocks response sequences): throttling and 5xx from ECR, DynamoDB and
//! SNS. With the SDK's standard retries (here with millisecond backoff) a transient fault ends in success with
//! every action taken exactly once; when the retries are exhausted the invocation fails with a retryable
//! diagnostic, and EventBridge's retry (a second invocation) completes the work without doing anything twice.

use super::*;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_ecr::operation::batch_delete_image::{BatchDeleteImageError, BatchDeleteImageOutput};
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ecr::operation::put_image::{PutImageError, PutImageOutput};
use aws_sdk_ecr::types::{Image, ImageDetail};
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_smithy_mocks::{Rule, mock};
use std::sync::{Arc, Mutex};
use warden::testing::wire::{dynamodb_500, ecr_500, ecr_503, sns_500};
use warden::testing::{self, Retries, error_code};

const A: &str = "sha256:7a6a95028731dbae7ab5e36a95ae1087234d240b81be3464060d7314b4c74d26";
const B: &str = "sha256:9879c546333f36f5d34063ebf385952ed69a10aac53e0e1c1da5066edd05012b";
const QUARANTINE_A: &str = "quarantine-7a6a95028731";
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

fn guard(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule]) -> TagGuard {
    let clients = testing::clients(ecr, dynamodb, sns, Retries::Deployed);
    let policy = Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("valid policy");
    TagGuard::new(policy, testing::config(), clients).expect("guard")
}

fn push(tag: &str, digest: &str) -> Value {
    let mut event = testing::sample("ecr-image-push.json");
    event["detail"]["image-tag"] = tag.into();
    event["detail"]["image-digest"] = digest.into();
    event
}

fn image(tags: &[&str]) -> DescribeImagesOutput {
    let detail = ImageDetail::builder()
        .image_digest(A)
        .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
        .build();
    DescribeImagesOutput::builder().image_details(detail).build()
}

fn manifest() -> BatchGetImageOutput {
    BatchGetImageOutput::builder()
        .images(
            Image::builder()
                .image_manifest(MANIFEST)
                .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                .build(),
        )
        .build()
}

fn publish_ok() -> PublishOutput {
    PublishOutput::builder().message_id("m-1").build()
}

/// Every call of the untag path meets a transient fault first (throttling or 5xx); the SDK's retries absorb
/// them all: one invocation, each action done once, one notification.
#[tokio::test]
async fn transient_faults_on_every_call_end_in_one_untag_and_one_notification() {
    let (s, body) = ecr_503();
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .error(|| DescribeImagesError::generic(error_code("ThrottlingException")))
        .http_status(s, body)
        .output(|| image(&["feature-x"]))
        .build();
    let (s, body) = ecr_500();
    let manifest = mock!(aws_sdk_ecr::Client::batch_get_image).sequence().http_status(s, body).output(manifest).build();
    let quarantine = mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(|r| r.image_tag() == Some(QUARANTINE_A))
        .sequence()
        .error(|| PutImageError::generic(error_code("ThrottlingException")))
        .output(|| PutImageOutput::builder().build())
        .build();
    let (s, body) = ecr_500();
    let remove = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .sequence()
        .http_status(s, body)
        .output(|| BatchDeleteImageOutput::builder().build())
        .build();
    let (s, body) = dynamodb_500();
    let record = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item().and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("OWN#"))
        })
        .sequence()
        .http_status(s, body)
        .output(|| PutItemOutput::builder().build())
        .build();
    let claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item().and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("NOTIFY#"))
        })
        .sequence()
        .error(|| PutItemError::generic(error_code("ProvisionedThroughputExceededException")))
        .output(|| PutItemOutput::builder().build())
        .build();
    let (s, body) = sns_500();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .error(|| PublishError::generic(error_code("Throttling")))
        .http_status(s, body)
        .output(publish_ok)
        .build();
    let guard = guard(&[&describe, &manifest, &quarantine, &remove], &[&record, &claim], &[&publish]);

    let outcome = guard
        .handle(push("feature-x", A), &testing::invocation())
        .await
        .expect("the SDK's retries absorb transient faults");

    assert_eq!(outcome.decision, "not-allowed");
    assert!(outcome.actions.iter().all(|a| a.result == ActionResult::Done), "{:?}", outcome.actions);
    assert!(outcome.notified);
    // Each rule is a fault sequence ending in one success: every call went through exactly once.
    for (name, rule) in [("describe", &describe), ("manifest", &manifest), ("quarantine", &quarantine)] {
        assert!(rule.is_exhausted(), "{name}: {} calls", rule.num_calls());
    }
    for (name, rule) in [("remove", &remove), ("record", &record), ("claim", &claim), ("publish", &publish)] {
        assert!(rule.is_exhausted(), "{name}: {} calls", rule.num_calls());
    }
    assert_eq!((describe.num_calls(), publish.num_calls()), (3, 3));
    // Outcomes count operations, not attempts.
    assert_eq!(outcome.aws_calls.get("SNS.Publish"), Some(&1));
    assert_eq!(outcome.aws_calls.get("ECR.PutImage"), Some(&1));
}

#[tokio::test]
async fn ledger_throttling_and_5xx_are_retried_by_the_sdk() {
    let (s, body) = dynamodb_500();
    let ledger = mock!(aws_sdk_dynamodb::Client::update_item)
        .sequence()
        .error(|| UpdateItemError::generic(error_code("ProvisionedThroughputExceededException")))
        .http_status(s, body)
        .output(|| UpdateItemOutput::builder().build())
        .build();
    let guard = guard(&[], &[&ledger], &[]);
    let outcome = guard.handle(push("v1.4.2", A), &testing::invocation()).await.expect("recorded");
    assert_eq!(outcome.decision, "conforming");
    assert_eq!(ledger.num_calls(), 3);
}

/// Removing the tag keeps failing (throttled past the SDK's retries) after the quarantine tag was added: the
/// invocation fails with `Retryable.AwsError`, nothing is notified, and EventBridge's retry finds the quarantine
/// tag in place, only removes the tag and notifies once. The image is never left without a tag.
#[tokio::test]
async fn exhausted_retries_fail_retryably_and_the_eventbridge_retry_finishes_without_double_action() {
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .output(|| image(&["feature-x"]))
        .output(|| image(&["feature-x", QUARANTINE_A]))
        .build();
    let manifest = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(manifest);
    let quarantine = mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(|r| r.image_tag() == Some(QUARANTINE_A))
        .sequence()
        .output(|| PutImageOutput::builder().build())
        .build();
    let remove = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .match_requests(|r| r.image_ids().len() == 1 && r.image_ids()[0].image_tag() == Some("feature-x"))
        .sequence()
        .error(|| BatchDeleteImageError::generic(error_code("ThrottlingException")))
        .times(3)
        .output(|| BatchDeleteImageOutput::builder().build())
        .build();
    let claim = warden::testing::rules::put_item_ok();
    let publish = mock!(aws_sdk_sns::Client::publish).then_output(publish_ok);
    let guard = guard(&[&describe, &manifest, &quarantine, &remove], &[&claim], &[&publish]);
    let event = push("feature-x", A);

    let error =
        guard.handle(event.clone(), &testing::invocation()).await.expect_err("throttled past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "Retryable.AwsError");
    assert_eq!((quarantine.num_calls(), remove.num_calls(), publish.num_calls()), (1, 3, 0));

    let retried = guard.handle(event, &testing::invocation()).await.expect("EventBridge's retry");
    assert_eq!(retried.decision, "not-allowed");
    assert_eq!(retried.actions.len(), 1, "only the removal is left: {:?}", retried.actions);
    assert_eq!(retried.actions[0].result, ActionResult::Done);
    assert_eq!(quarantine.num_calls(), 1, "the quarantine tag is not added twice");
    assert_eq!(remove.num_calls(), 4, "3 throttled attempts, then one removal");
    assert_eq!(publish.num_calls(), 1, "one notification");
}

/// The ledger write of a protected tag's first push keeps failing with 5xx: no decision is made on a guess.
/// The retry records it; nothing else happens either time.
#[tokio::test]
async fn exhausted_ledger_5xx_fails_retryably_then_the_retry_records_once() {
    let (s, body) = dynamodb_500();
    let ledger = mock!(aws_sdk_dynamodb::Client::update_item)
        .sequence()
        .http_status(s, body)
        .times(3)
        .output(|| UpdateItemOutput::builder().build())
        .build();
    let guard = guard(&[], &[&ledger], &[]);
    let error = guard.handle(push("v1.4.2", A), &testing::invocation()).await.expect_err("5xx past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "Retryable.AwsError");
    let outcome = guard.handle(push("v1.4.2", A), &testing::invocation()).await.expect("retried");
    assert_eq!(outcome.decision, "conforming");
    assert_eq!(ledger.num_calls(), 4);
}

/// A protected tag moved; reverting it meets a 5xx on PutImage past the SDK's retries after the pushed image
/// got its quarantine tag. The retry sees the quarantine in place, points the tag back once, and notifies once.
#[tokio::test]
async fn revert_interrupted_by_5xx_completes_on_retry_without_double_action() {
    let ledger = mock!(aws_sdk_dynamodb::Client::update_item).then_error(move || {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .item("digest", AttributeValue::S(A.into()))
                .item("since", AttributeValue::S("2026-11-20T09:12:04Z".into()))
                .build(),
        )
    });
    let moved = |tags: &'static [&'static str]| {
        move || {
            let detail = ImageDetail::builder()
                .image_digest(B)
                .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
                .build();
            DescribeImagesOutput::builder().image_details(detail).build()
        }
    };
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .output(moved(&["v1.4.2"]))
        .output(moved(&["v1.4.2", "quarantine-9879c546333f"]))
        .build();
    let manifest = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(manifest);
    let quarantine = mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(|r| r.image_tag() == Some("quarantine-9879c546333f"))
        .then_output(|| PutImageOutput::builder().build());
    let (s, body) = ecr_500();
    let point_back = mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(|r| r.image_tag() == Some("v1.4.2"))
        .sequence()
        .http_status(s, body)
        .times(3)
        .output(|| PutImageOutput::builder().build())
        .build();
    let puts = warden::testing::rules::put_item_ok();
    let release = mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let publish = mock!(aws_sdk_sns::Client::publish).then_output(publish_ok);
    let guard = guard(&[&describe, &manifest, &quarantine, &point_back], &[&ledger, &puts, &release], &[&publish]);
    let mut event = push("v1.4.2", B);
    event["time"] = "2026-11-20T11:00:00Z".into();

    let error = guard.handle(event.clone(), &testing::invocation()).await.expect_err("5xx past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!((quarantine.num_calls(), point_back.num_calls(), publish.num_calls()), (1, 3, 0));

    let outcome = guard.handle(event, &testing::invocation()).await.expect("EventBridge's retry");
    assert_eq!(outcome.decision, "protected-tag-moved");
    assert!(outcome.actions.iter().all(|a| a.result == ActionResult::Done), "{:?}", outcome.actions);
    assert_eq!(outcome.actions.len(), 1, "the quarantine tag is already there: {:?}", outcome.actions);
    assert_eq!((quarantine.num_calls(), point_back.num_calls(), publish.num_calls()), (1, 4, 1));
}

/// SNS keeps throttling past the SDK's retries in report mode (nothing changed in ECR): the claim is given
/// back, the invocation fails retryably, and the retry notifies exactly once.
#[tokio::test]
async fn publish_throttled_past_retries_releases_the_claim_and_the_retry_notifies_once() {
    let describe = mock!(aws_sdk_ecr::Client::describe_images).then_output(|| image(&["weird"]));
    let claim = warden::testing::rules::put_item_ok();
    let release = mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .error(|| PublishError::generic(error_code("Throttling")))
        .times(3)
        .output(publish_ok)
        .build();
    let guard = guard(&[&describe], &[&claim, &release], &[&publish]);
    let mut event = push("weird", A);
    event["detail"]["repository-name"] = "misc/tool".into();

    let error =
        guard.handle(event.clone(), &testing::invocation()).await.expect_err("throttled past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!((claim.num_calls(), release.num_calls()), (1, 1));

    let outcome = guard.handle(event, &testing::invocation()).await.expect("retried");
    assert!(outcome.notified);
    assert_eq!((claim.num_calls(), release.num_calls(), publish.num_calls()), (2, 1, 4));
}

/// The tag was removed, then SNS failed past the SDK's retries: the notification is parked in the ledger and the
/// invocation fails retryably. EventBridge's retry finds the tag gone (nothing left to do) and sends the parked
/// notification, once, instead of losing it.
#[tokio::test]
async fn notification_failing_after_the_untag_is_parked_and_sent_by_the_retry() {
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .output(|| image(&["feature-x", "v1.4.2"]))
        .output(|| DescribeImagesOutput::builder().build())
        .build();
    let remove =
        mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build());
    let claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| sk_of(r.item()) == "tag-not-allowed")
        .then_output(|| PutItemOutput::builder().build());
    let release = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| sk_of(r.key()) == "tag-not-allowed")
        .then_output(|| DeleteItemOutput::builder().build());
    let stored = Arc::new(Mutex::new(String::new()));
    let keep = Arc::clone(&stored);
    let park = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| {
            let parked = sk_of(r.item()) == "PARKED#tag-not-allowed";
            if let Some(json) = r.item().and_then(|i| i.get("notification")).and_then(|v| v.as_s().ok()) {
                *keep.lock().expect("lock") = json.clone();
            }
            parked
        })
        .then_output(|| PutItemOutput::builder().build());
    let found = Arc::clone(&stored);
    let parked = mock!(aws_sdk_dynamodb::Client::query).then_output(move || {
        let item = [
            ("sk".to_owned(), AttributeValue::S("PARKED#tag-not-allowed".into())),
            ("notification".to_owned(), AttributeValue::S(found.lock().expect("lock").clone())),
        ];
        QueryOutput::builder().items(item.into_iter().collect()).build()
    });
    let unpark = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| sk_of(r.key()) == "PARKED#tag-not-allowed")
        .then_output(|| DeleteItemOutput::builder().build());
    let (s, body) = sns_500();
    let publish =
        mock!(aws_sdk_sns::Client::publish).sequence().http_status(s, body).times(3).output(publish_ok).build();
    let guard = guard(&[&describe, &remove], &[&claim, &release, &park, &parked, &unpark], &[&publish]);
    let event = push("feature-x", A);

    let error =
        guard.handle(event.clone(), &testing::invocation()).await.expect_err("SNS failing past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!((remove.num_calls(), release.num_calls(), park.num_calls()), (1, 1, 1));

    let retried = guard.handle(event, &testing::invocation()).await.expect("EventBridge's retry");
    assert_eq!(retried.decision, "skipped", "the tag is gone: nothing left to do");
    assert!(retried.notified, "but the parked notification is sent");
    assert_eq!((remove.num_calls(), publish.num_calls(), unpark.num_calls()), (1, 4, 1));
    let sent: Value = serde_json::from_str(&stored.lock().expect("lock")).expect("parked JSON");
    assert_eq!((sent["kind"].as_str(), sent["outcome"].as_str()), (Some("tag-not-allowed"), Some("untagged")));
}

fn sk_of(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> String {
    item.and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}
