//! notify under AWS faults (aws-smithy-mocks response sequences): DynamoDB (the dedup claim) and SNS throttling
//! and 5xx. Transient faults end in exactly one message; past the SDK's retries the invocation fails with a
//! retryable diagnostic and EventBridge's retry sends the message once.

use super::*;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_smithy_mocks::{Rule, mock};
use warden::testing::wire::{dynamodb_500, sns_500};
use warden::testing::{self, Retries, error_code as code, sample};

fn notify(dynamodb: &[&Rule], sns: &[&Rule]) -> Notify {
    let clients = testing::clients(&[], dynamodb, sns, Retries::Deployed);
    let policy = Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("policy");
    Notify::new(policy, testing::config(), clients).expect("notify")
}

#[tokio::test]
async fn throttled_and_failing_claim_and_publish_end_in_one_message() {
    let (s, body) = dynamodb_500();
    let claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .sequence()
        .error(|| PutItemError::generic(code("ProvisionedThroughputExceededException")))
        .http_status(s, body)
        .output(|| PutItemOutput::builder().build())
        .build();
    let (s, body) = sns_500();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .http_status(s, body)
        .error(|| PublishError::generic(code("Throttling")))
        .output(|| PublishOutput::builder().message_id("m").build())
        .build();
    let notify = notify(&[&claim], &[&publish]);
    let outcome = notify
        .handle(sample("ecr-replication-failed.json"), &testing::invocation())
        .await
        .expect("retries absorb the faults");
    assert_eq!(outcome.decision, "replication-failed");
    assert!(outcome.notified);
    assert_eq!((claim.num_calls(), publish.num_calls()), (3, 3));
    assert!(claim.is_exhausted() && publish.is_exhausted(), "exactly one successful claim and publish");
}

#[tokio::test]
async fn claim_failing_past_retries_sends_nothing_and_the_retry_sends_once() {
    let (s, body) = dynamodb_500();
    let claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .sequence()
        .http_status(s, body)
        .times(3)
        .output(|| PutItemOutput::builder().build())
        .build();
    // After a failed claim, notify takes back the claim in case one attempt was written with its answer lost.
    let unclaim = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| r.condition_expression() == Some("claim = :token"))
        .then_output(|| DeleteItemOutput::builder().build());
    let publish = warden::testing::rules::published();
    let notify = notify(&[&claim, &unclaim], &[&publish]);
    let event = sample("ecr-pull-through-cache-failed.json");
    let error = notify.handle(event.clone(), &testing::invocation()).await.expect_err("5xx past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "Retryable.AwsError");
    assert_eq!(publish.num_calls(), 0, "never published without the claim");
    assert_eq!(unclaim.num_calls(), 1);
    let outcome = notify.handle(event, &testing::invocation()).await.expect("retried");
    assert!(outcome.notified);
    assert_eq!(publish.num_calls(), 1);
}

#[tokio::test]
async fn publish_failing_past_retries_gives_the_claim_back_and_the_retry_sends_once() {
    let claim = warden::testing::rules::put_item_ok();
    let release = mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let (s, body) = sns_500();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .error(|| PublishError::generic(code("Throttling")))
        .times(2)
        .http_status(s, body)
        .output(|| PublishOutput::builder().message_id("m").build())
        .build();
    let notify = notify(&[&claim, &release], &[&publish]);
    let event = sample("inspector2-coverage.json");
    let error =
        notify.handle(event.clone(), &testing::invocation()).await.expect_err("SNS failing past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(release.num_calls(), 1, "the claim is given back");
    let outcome = notify.handle(event, &testing::invocation()).await.expect("retried");
    assert!(outcome.notified);
    assert_eq!((claim.num_calls(), publish.num_calls()), (2, 4));
    assert!(publish.is_exhausted(), "one message reached SNS");
}
