//! tag-guard against exact AWS responses (aws-smithy-mocks): the calls it makes, in which order, with which
//! arguments, and what it does with AWS's errors.

use super::*;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::operation::put_image::{PutImageError, PutImageOutput};
use aws_sdk_ecr::operation::put_image_tag_mutability::PutImageTagMutabilityOutput;
use aws_sdk_ecr::types::error::{
    ImageAlreadyExistsException, ImageTagAlreadyExistsException, RepositoryNotFoundException,
};
use aws_sdk_ecr::types::{Image, ImageDetail, ImageTagMutability, Repository};
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::error::ErrorMetadata;
use warden::testing::{self, Retries, rules, sample};

const REPO: &str = "prod/payments-api";
const A: &str = "sha256:7a6a95028731dbae7ab5e36a95ae1087234d240b81be3464060d7314b4c74d26";
const B: &str = "sha256:9879c546333f36f5d34063ebf385952ed69a10aac53e0e1c1da5066edd05012b";
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

/// A push event for `tag` at `digest` (based on the ecr-image-push.json sample).
fn push(repository: &str, tag: &str, digest: &str) -> Value {
    let mut event = sample("ecr-image-push.json");
    event["detail"]["repository-name"] = repository.into();
    event["detail"]["image-tag"] = tag.into();
    event["detail"]["image-digest"] = digest.into();
    event
}

fn guard(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule]) -> TagGuard {
    let clients = testing::clients(ecr, dynamodb, sns, Retries::None);
    TagGuard::new(embedded(), testing::config(), clients).expect("guard")
}

fn embedded() -> Policy {
    Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("valid policy")
}

fn ledger_new() -> Rule {
    mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| UpdateItemOutput::builder().build())
}

/// The ledger holds `digest` since `since` for the tag: the conditional write fails and returns it.
fn ledger_holds(digest: &'static str, since: &'static str) -> Rule {
    mock!(aws_sdk_dynamodb::Client::update_item).then_error(move || {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .item("digest", AttributeValue::S(digest.into()))
                .item("since", AttributeValue::S(since.into()))
                .build(),
        )
    })
}

fn any_put_item() -> Rule {
    warden::testing::rules::put_item_ok()
}

fn publish_ok() -> Rule {
    mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().message_id("m-1").build())
}

fn tag_points_at(tag: &'static str, digest: &'static str, tags: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(move |r| r.image_ids().first().and_then(|id| id.image_tag()) == Some(tag))
        .then_output(move || {
            let detail = ImageDetail::builder()
                .image_digest(digest)
                .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
                .build();
            DescribeImagesOutput::builder().image_details(detail).build()
        })
}

fn manifest_of(digest: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::batch_get_image)
        .match_requests(move |r| r.image_ids().first().and_then(|id| id.image_digest()) == Some(digest))
        .then_output(move || {
            BatchGetImageOutput::builder()
                .images(
                    Image::builder()
                        .image_manifest(MANIFEST)
                        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                        .build(),
                )
                .build()
        })
}

fn put_image_ok(tag: &'static str, digest: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(move |r| r.image_tag() == Some(tag) && r.image_digest() == Some(digest))
        .then_output(|| PutImageOutput::builder().build())
}

fn remove_ok(tag: &'static str, digest: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::batch_delete_image)
        .match_requests(move |r| {
            // Always the tag with the digest it must point at: a tag that moved meanwhile is left alone.
            r.image_ids().len() == 1
                && r.image_ids()[0].image_tag() == Some(tag)
                && r.image_ids()[0].image_digest() == Some(digest)
        })
        .then_output(|| BatchDeleteImageOutput::builder().build())
}

/// The registry holds one repository, `name`, its mutability as the production class requires.
fn one_repository(name: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_repositories).then_output(move || {
        let repository = Repository::builder()
            .repository_name(name)
            .image_tag_mutability(ImageTagMutability::MutableWithExclusion)
            .image_tag_mutability_exclusion_filters(
                aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
                    .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
                    .filter("v*.*.*")
                    .build()
                    .expect("filter"),
            )
            .build();
        DescribeRepositoriesOutput::builder().repositories(repository).build()
    })
}

fn calls(outcome: &Outcome) -> Vec<(&str, u32)> {
    outcome.aws_calls.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

#[tokio::test]
async fn conforming_push_costs_one_ledger_write() {
    let ledger = ledger_new();
    let guard = guard(&[], &[&ledger], &[]);
    let outcome = guard.handle(push(REPO, "v1.4.2", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "conforming");
    assert_eq!(calls(&outcome), vec![("DynamoDB.UpdateItem", 1)]);
    assert!(!outcome.notified && outcome.actions.is_empty());
    assert_eq!(outcome.class.as_deref(), Some("production"));
}

#[tokio::test]
async fn digest_only_push_is_never_a_violation_and_costs_no_call() {
    let guard = guard(&[], &[], &[]);
    let outcome =
        guard.handle(sample("ecr-image-push-digest-only.json"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert_eq!(outcome.reasons, vec!["pushed by digest only: no tag to check".to_owned()]);
    assert!(calls(&outcome).is_empty() && outcome.actions.is_empty() && !outcome.notified);
}

#[tokio::test]
async fn last_tag_not_allowed_is_quarantined_then_removed() {
    let describe = tag_points_at("feature-x", A, &["feature-x"]);
    let manifest = manifest_of(A);
    let quarantine = put_image_ok("quarantine-7a6a95028731", A);
    let remove = remove_ok("feature-x", A);
    let claim = any_put_item();
    let publish = publish_ok();
    let guard = guard(&[&describe, &manifest, &quarantine, &remove], &[&claim], &[&publish]);

    let outcome = guard.handle(push(REPO, "feature-x", A), &testing::invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "not-allowed");
    assert_eq!(outcome.actions.len(), 2, "{:?}", outcome.actions);
    assert!(outcome.actions.iter().all(|a| a.result == ActionResult::Done));
    assert!(outcome.actions[0].action.contains("quarantine-7a6a95028731"), "quarantine before removal");
    assert_eq!((quarantine.num_calls(), remove.num_calls(), publish.num_calls()), (1, 1, 1));
    assert!(outcome.notified);
    assert_eq!(
        calls(&outcome),
        vec![
            // The image's lease taken and given back; the quarantine record; the removal's record; the
            // notification claimed and marked sent.
            ("DynamoDB.DeleteItem", 1),
            ("DynamoDB.PutItem", 4),
            ("DynamoDB.UpdateItem", 1),
            ("ECR.BatchDeleteImage", 1),
            ("ECR.BatchGetImage", 1),
            ("ECR.DescribeImages", 1),
            ("ECR.PutImage", 1),
            ("SNS.Publish", 1)
        ]
    );
}

#[tokio::test]
async fn tag_not_allowed_with_other_tags_is_just_removed() {
    let describe = tag_points_at("feature-x", A, &["feature-x", "v1.4.2"]);
    let remove = remove_ok("feature-x", A);
    let (claim, publish) = (any_put_item(), publish_ok());
    let guard = guard(&[&describe, &remove], &[&claim], &[&publish]);
    let outcome = guard.handle(push(REPO, "feature-x", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.actions.len(), 1);
    assert_eq!(remove.num_calls(), 1);
}

/// The removal's record comes first: when it cannot be written, nothing is removed (the retry tries again),
/// so no deletion event ever goes out that notify could not tell from a hand-made one.
#[tokio::test]
async fn no_tag_is_removed_before_its_removal_is_recorded() {
    let describe = tag_points_at("feature-x", A, &["feature-x", "v1.4.2"]);
    let remove = remove_ok("feature-x", A);
    let unrecorded = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item().and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("REMOVAL#"))
        })
        .then_error(|| PutItemError::generic(testing::error_code("ValidationException")));
    let (claim, publish) = (any_put_item(), publish_ok());
    let guard = guard(&[&describe, &remove], &[&unrecorded, &claim], &[&publish]);
    let error = guard.handle(push(REPO, "feature-x", A), &testing::invocation()).await.expect_err("not recorded");
    assert!(error.to_string().contains("ValidationException"), "{error}");
    assert_eq!((unrecorded.num_calls(), remove.num_calls()), (1, 0), "recorded first, or not removed at all");
}

#[tokio::test]
async fn failed_quarantine_never_removes_the_last_tag() {
    let describe = tag_points_at("feature-x", A, &["feature-x"]);
    let manifest = manifest_of(A);
    // The quarantine tag exists, immutable, on another image.
    let taken = mock!(aws_sdk_ecr::Client::put_image).then_error(|| {
        PutImageError::ImageTagAlreadyExistsException(ImageTagAlreadyExistsException::builder().build())
    });
    let quarantine_elsewhere = tag_points_at("quarantine-7a6a95028731", B, &["quarantine-7a6a95028731"]);
    let remove = remove_ok("feature-x", A);
    let (claim, publish) = (any_put_item(), publish_ok());
    let guard = guard(&[&describe, &quarantine_elsewhere, &manifest, &taken, &remove], &[&claim], &[&publish]);

    let outcome = guard.handle(push(REPO, "feature-x", A), &testing::invocation()).await.expect("handled");

    assert_eq!(remove.num_calls(), 0, "the last tag must stay when the quarantine tag could not be added");
    assert_eq!(outcome.actions.len(), 1);
    assert_eq!(outcome.actions[0].result, ActionResult::Failed);
    assert!(outcome.notified);
}

#[tokio::test]
async fn protected_tag_move_is_reverted() {
    let ledger = ledger_holds(A, "2026-11-20T09:12:04Z");
    let describe = tag_points_at("v1.4.2", B, &["v1.4.2"]);
    let (manifest_a, manifest_b) = (manifest_of(A), manifest_of(B));
    let quarantine = put_image_ok("quarantine-9879c546333f", B);
    let point_back = put_image_ok("v1.4.2", A);
    let (history_and_claim, publish) = (any_put_item(), publish_ok());
    let guard = guard(
        &[&describe, &manifest_a, &manifest_b, &quarantine, &point_back],
        &[&ledger, &history_and_claim],
        &[&publish],
    );

    let mut event = push(REPO, "v1.4.2", B);
    event["time"] = "2026-11-20T11:00:00Z".into();
    let outcome = guard.handle(event, &testing::invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "protected-tag-moved");
    assert_eq!((quarantine.num_calls(), point_back.num_calls()), (1, 1));
    assert!(outcome.actions.iter().all(|a| a.result == ActionResult::Done), "{:?}", outcome.actions);
    assert_eq!(history_and_claim.num_calls(), 3, "quarantine record + history entry + notification claim");
    assert!(outcome.notified);
}

/// A protected tag moved away from an image deleted meanwhile (say, by a lifecycle rule): nothing to revert to.
/// Told once as a warning; the ledger follows the push, after the registry confirms the tag points there, so
/// the same push again is conforming instead of a revert failing on every push.
#[tokio::test]
async fn a_moved_protected_tag_whose_recorded_image_is_gone_is_told_once_and_followed() {
    let ledger = ledger_holds(A, "2026-11-20T09:12:04Z");
    let gone = mock!(aws_sdk_ecr::Client::batch_get_image)
        .match_requests(|r| r.image_ids().first().and_then(|id| id.image_digest()) == Some(A))
        .then_output(|| {
            let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(A).build();
            let code = aws_sdk_ecr::types::ImageFailureCode::ImageNotFound;
            let failure = aws_sdk_ecr::types::ImageFailure::builder().image_id(id).failure_code(code).build();
            BatchGetImageOutput::builder().failures(failure).build()
        });
    let describe = tag_points_at("v1.4.2", B, &["v1.4.2"]);
    let put = mock!(aws_sdk_ecr::Client::put_image).then_output(|| PutImageOutput::builder().build());
    let followed = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let (claim, publish) = (any_put_item(), publish_ok());
    let orphaned = guard(&[&gone, &describe, &put], &[&ledger, &followed, &claim], &[&publish]);
    let outcome = orphaned.handle(push(REPO, "v1.4.2", B), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "protected-tag-orphaned");
    assert!(outcome.reasons[0].contains("no longer exists: nothing to move it back to"), "{:?}", outcome.reasons);
    assert_eq!(put.num_calls(), 0, "nothing put back, nothing quarantined");
    assert_eq!(followed.num_calls(), 1, "the ledger follows the push");
    assert_eq!(publish.num_calls(), 1);
    // The event said B, but the registry says the tag points elsewhere now: the ledger does not follow it.
    let elsewhere = tag_points_at("v1.4.2", A, &["v1.4.2"]);
    let followed = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let ledger = ledger_holds(A, "2026-11-20T09:12:04Z");
    let moved_on = guard(&[&gone, &elsewhere], &[&ledger, &followed], &[]);
    let outcome = moved_on.handle(push(REPO, "v1.4.2", B), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert_eq!(followed.num_calls(), 0);
    // An answer that does not say `ImageNotFound` (here: empty) is no proof the image is gone: the move is
    // treated as a move (reverted; the revert finds nothing to put back and says so), the ledger stays.
    let unknown = mock!(aws_sdk_ecr::Client::batch_get_image)
        .match_requests(|r| r.image_ids().first().and_then(|id| id.image_digest()) == Some(A))
        .then_output(|| BatchGetImageOutput::builder().build());
    let (describe, manifest_b) = (tag_points_at("v1.4.2", B, &["v1.4.2"]), manifest_of(B));
    let quarantine = put_image_ok("quarantine-9879c546333f", B);
    let (ledger, claim, publish) = (ledger_holds(A, "2026-11-20T09:12:04Z"), any_put_item(), publish_ok());
    let undecided = guard(&[&unknown, &describe, &manifest_b, &quarantine], &[&ledger, &followed, &claim], &[&publish]);
    let outcome = undecided.handle(push(REPO, "v1.4.2", B), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "protected-tag-moved", "{:?}", outcome.reasons);
    assert_eq!(followed.num_calls(), 0, "the ledger still records A");
}

#[tokio::test]
async fn replayed_revert_is_a_no_op() {
    // The ledger still holds A (a revert never moves the ledger) and ECR already points the tag at A again.
    let ledger = ledger_holds(A, "2026-11-20T09:12:04Z");
    let describe = tag_points_at("v1.4.2", A, &["v1.4.2"]);
    let put = mock!(aws_sdk_ecr::Client::put_image).then_output(|| PutImageOutput::builder().build());
    let publish = publish_ok();
    // A replay rewrites the revert's history entry (unchanged; the invocation that reverted may have failed
    // before writing it), looks for a notification an earlier attempt parked (none here), and finds the
    // notification of this event claimed: sent when it reverted.
    let history = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item().and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).is_some_and(|k| k.starts_with("HIST#"))
        })
        .then_output(|| PutItemOutput::builder().build());
    let claimed = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    });
    let parked = mock!(aws_sdk_dynamodb::Client::query)
        .then_output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build());
    let manifest = manifest_of(A);
    let guard = guard(&[&describe, &put, &manifest], &[&ledger, &history, &claimed, &parked], &[&publish]);
    let outcome = guard.handle(push(REPO, "v1.4.2", B), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons.iter().any(|r| r.contains("reverted before")), "{:?}", outcome.reasons);
    assert_eq!((put.num_calls(), publish.num_calls()), (0, 0));
}

#[tokio::test]
async fn revert_answered_image_already_exists_is_success() {
    let ledger = ledger_holds(A, "2026-11-20T09:12:04Z");
    let describe = tag_points_at("v1.4.2", B, &["v1.4.2", "sha-9879c54"]);
    let manifest = manifest_of(A);
    let exists = mock!(aws_sdk_ecr::Client::put_image)
        .then_error(|| PutImageError::ImageAlreadyExistsException(ImageAlreadyExistsException::builder().build()));
    let (puts, publish) = (any_put_item(), publish_ok());
    let guard = guard(&[&describe, &manifest, &exists], &[&ledger, &puts], &[&publish]);
    let outcome = guard.handle(push(REPO, "v1.4.2", B), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.actions.len(), 1, "other tags: no quarantine needed");
    assert_eq!(outcome.actions[0].result, ActionResult::AlreadyDone);
}

#[tokio::test]
async fn mutable_tag_move_updates_the_ledger_quietly() {
    let ledger = ledger_holds(A, "2026-11-20T09:12:04Z");
    let transact = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let guard = guard(&[], &[&ledger, &transact], &[]);
    let outcome = guard.handle(push(REPO, "latest", B), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "tag-moved");
    assert_eq!(transact.num_calls(), 1);
    assert!(!outcome.notified);
}

#[tokio::test]
async fn replayed_report_is_not_notified_twice() {
    // `standard` class, report mode: the tag stays, so a replay would report again without the claim.
    let describe = tag_points_at("weird", A, &["weird"]);
    let claimed = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    });
    let publish = publish_ok();
    let guard = guard(&[&describe], &[&claimed], &[&publish]);
    let outcome = guard.handle(push("misc/tool", "weird", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-allowed");
    assert!(outcome.actions.is_empty());
    assert_eq!(publish.num_calls(), 0);
    assert!(!outcome.notified);
}

#[tokio::test]
async fn deleted_repository_is_skipped() {
    let gone = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
        DescribeImagesError::RepositoryNotFoundException(RepositoryNotFoundException::builder().build())
    });
    let guard = guard(&[&gone], &[], &[]);
    let outcome = guard.handle(push(REPO, "feature-x", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons[0].contains("no longer exists"));
}

#[tokio::test]
async fn throttled_publish_fails_the_invocation_and_releases_the_claim() {
    let describe = tag_points_at("weird", A, &["weird"]);
    let claim = any_put_item();
    let release = mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let throttled = mock!(aws_sdk_sns::Client::publish).then_error(|| {
        PublishError::generic(ErrorMetadata::builder().code("Throttling").message("Rate exceeded").build())
    });
    let guard = guard(&[&describe], &[&claim, &release], &[&throttled]);
    let error = guard.handle(push("misc/tool", "weird", A), &testing::invocation()).await.expect_err("publish failed");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(release.num_calls(), 1, "the retry must be able to send it");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "Retryable.AwsError");
}

#[tokio::test]
async fn throttled_ledger_is_retryable() {
    let throttled = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::generic(ErrorMetadata::builder().code("ProvisionedThroughputExceededException").build())
    });
    let guard = guard(&[], &[&throttled], &[]);
    let error = guard.handle(push(REPO, "v1.4.2", A), &testing::invocation()).await.expect_err("throttled");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn create_repository_fixes_tag_mutability() {
    let describe = mock!(aws_sdk_ecr::Client::describe_repositories).then_output(|| {
        DescribeRepositoriesOutput::builder()
            .repositories(
                Repository::builder()
                    .repository_name("prod/billing-worker")
                    .image_tag_mutability(ImageTagMutability::Mutable)
                    .build(),
            )
            .build()
    });
    let fix = mock!(aws_sdk_ecr::Client::put_image_tag_mutability)
        .match_requests(|r| {
            r.image_tag_mutability() == Some(&ImageTagMutability::MutableWithExclusion)
                && r.image_tag_mutability_exclusion_filters().len() == 1
                && r.image_tag_mutability_exclusion_filters()[0].filter() == "v*.*.*"
        })
        .then_output(|| PutImageTagMutabilityOutput::builder().build());
    let (claim, publish) = (any_put_item(), publish_ok());
    let guard = guard(&[&describe, &fix], &[&claim], &[&publish]);
    let outcome =
        guard.handle(sample("cloudtrail-create-repository.json"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "settings-drift");
    assert_eq!(fix.num_calls(), 1);
    assert!(outcome.notified);
}

#[tokio::test]
async fn sweep_reads_every_page_and_sends_one_summary() {
    let repo = |name: &str, mode: ImageTagMutability| {
        Repository::builder().repository_name(name).image_tag_mutability(mode).build()
    };
    let page1 = repo("prod/a", ImageTagMutability::Mutable);
    let page1b = repo("sandbox/x", ImageTagMutability::Mutable);
    let page2 = repo("prod/b", ImageTagMutability::Immutable);
    let first = mock!(aws_sdk_ecr::Client::describe_repositories)
        .match_requests(|r| r.next_token().is_none())
        .then_output(move || {
            DescribeRepositoriesOutput::builder()
                .repositories(page1.clone())
                .repositories(page1b.clone())
                .next_token("page-2")
                .build()
        });
    let second = mock!(aws_sdk_ecr::Client::describe_repositories)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || DescribeRepositoriesOutput::builder().repositories(page2.clone()).build());
    let fix = mock!(aws_sdk_ecr::Client::put_image_tag_mutability)
        .then_output(|| PutImageTagMutabilityOutput::builder().build());
    let (no_own_tags, no_cursor) = (rules::images_listed(&[]), rules::no_sweep_cursor());
    let (claim, publish) = (any_put_item(), publish_ok());
    let guard = guard(&[&first, &second, &fix, &no_own_tags], &[&claim, &no_cursor], &[&publish]);
    let outcome = guard.handle(sample("scheduled-rule.json"), &testing::invocation()).await.expect("handled");
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(fix.num_calls(), 2, "both prod repositories drifted; sandbox is unmanaged");
    assert_eq!(publish.num_calls(), 1, "one summary per sweep");
    assert_eq!(outcome.items.len(), 2);
    assert_eq!(no_own_tags.num_calls(), 2, "each managed repository's images listed once");
    assert_eq!(no_cursor.num_calls(), 1, "where the last sweep stopped: read once");
}

/// Drift a sweep only reports (here: a dry run) stands until someone acts: told when the set changes, not on
/// every sweep; once the drift is gone its note is forgotten, so its return is told at once.
#[tokio::test]
async fn standing_drift_is_told_once_not_every_sweep() {
    let drifted =
        Repository::builder().repository_name("prod/a").image_tag_mutability(ImageTagMutability::Mutable).build();
    let list = mock!(aws_sdk_ecr::Client::describe_repositories)
        .then_output(move || DescribeRepositoriesOutput::builder().repositories(drifted.clone()).build());
    let (no_own_tags, no_cursor) = (rules::images_listed(&[]), rules::no_sweep_cursor());
    let sweep = async |new: bool| {
        let note = rules::standing_note("STANDING#tag-guard", "tag-mutability-drift", new);
        let (claim, publish) = (any_put_item(), publish_ok());
        let clients =
            testing::clients(&[&list, &no_own_tags], &[&note, &claim, &no_cursor], &[&publish], Retries::None);
        let config = warden::config::Config { dry_run: true, ..testing::config() };
        let guard = TagGuard::new(embedded(), config, clients).expect("guard");
        let outcome = guard.handle(sample("scheduled-rule.json"), &testing::invocation()).await.expect("handled");
        assert_eq!(outcome.decision, "settings-drift");
        (note.num_calls(), publish.num_calls())
    };
    assert_eq!(sweep(true).await, (1, 1), "new drift: noted and told");
    assert_eq!(sweep(false).await, (1, 0), "the same drift on the next sweep: silent");

    let filter = aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
        .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
        .filter("v*.*.*")
        .build()
        .expect("filter");
    let fixed = Repository::builder()
        .repository_name("prod/a")
        .image_tag_mutability(ImageTagMutability::MutableWithExclusion)
        .image_tag_mutability_exclusion_filters(filter)
        .build();
    let list = mock!(aws_sdk_ecr::Client::describe_repositories)
        .then_output(move || DescribeRepositoriesOutput::builder().repositories(fixed.clone()).build());
    let forgotten = rules::standing_forgotten();
    let nothing_parked = mock!(aws_sdk_dynamodb::Client::query)
        .then_output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build());
    let clients =
        testing::clients(&[&list, &no_own_tags], &[&forgotten, &nothing_parked, &no_cursor], &[], Retries::None);
    let guard = TagGuard::new(embedded(), testing::config(), clients).expect("guard");
    let outcome = guard.handle(sample("scheduled-rule.json"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "settings-ok");
    assert_eq!(forgotten.num_calls(), 2, "both kinds' notes forgotten: a return is news");
}

#[tokio::test]
async fn the_mutability_sweep_changes_no_more_repositories_than_its_limit() {
    let drifted: Vec<Repository> = ["prod/a", "prod/b", "prod/c"]
        .into_iter()
        .map(|name| {
            Repository::builder().repository_name(name).image_tag_mutability(ImageTagMutability::Mutable).build()
        })
        .collect();
    let list = mock!(aws_sdk_ecr::Client::describe_repositories)
        .then_output(move || DescribeRepositoriesOutput::builder().set_repositories(Some(drifted.clone())).build());
    let fix = mock!(aws_sdk_ecr::Client::put_image_tag_mutability)
        .then_output(|| PutImageTagMutabilityOutput::builder().build());
    let (no_own_tags, no_cursor) = (rules::images_listed(&[]), rules::no_sweep_cursor());
    let (claim, publish) = (any_put_item(), publish_ok());
    let clients = testing::clients(&[&list, &fix, &no_own_tags], &[&claim, &no_cursor], &[&publish], Retries::None);
    let text = format!("{}\n[limits]\nsweep-max-changed-repositories = 1\n", warden::policy::EMBEDDED_POLICY);
    let policy = Policy::from_toml(&text, "warden.toml").expect("valid policy");
    let guard = TagGuard::new(policy, testing::config(), clients).expect("guard");
    let outcome = guard.handle(sample("scheduled-rule.json"), &testing::invocation()).await.expect("handled");
    assert_eq!(fix.num_calls(), 1, "one repository changed: the limit");
    assert_eq!(outcome.items.len(), 3, "all three reported");
    let left: Vec<&Outcome> = outcome.items.iter().filter(|i| i.actions.is_empty()).collect();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|i| i.reasons.iter().any(|r| r.contains("(its limit): left for the next"))), "{left:?}");
}

#[tokio::test]
async fn irrelevant_and_unknown_events_are_skipped_without_calls() {
    let guard = guard(&[], &[], &[]);
    for name in [
        "ecr-image-scan.json",
        "unknown-detail-type.json",
        "other-source.json",
        "ecr-image-archive.json",
        "ecr-image-push-failed.json",
        "cloudtrail-delete-repository.json",
        "cloudtrail-create-repository-failed.json",
        "inspector2-finding.json",
    ] {
        let outcome = guard.handle(sample(name), &testing::invocation()).await.expect("skipped, not an error");
        assert_eq!(outcome.decision, "skipped", "{name}");
        assert!(outcome.aws_calls.is_empty(), "{name}: {:?}", outcome.aws_calls);
    }
    let mut sandbox = push("sandbox/experiments", "whatever", A);
    sandbox["id"] = "x".into();
    assert_eq!(guard.handle(sandbox, &testing::invocation()).await.expect("skipped").decision, "skipped");
}

#[tokio::test]
async fn malformed_events_are_non_retryable_errors() {
    let guard = guard(&[], &[], &[]);
    let error = guard
        .handle(sample("invalid/ecr-image-push-missing-repository.json"), &testing::invocation())
        .await
        .expect_err("invalid");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("repository-name"), "{error}");
    assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "NonRetryable.InvalidEvent");
}

#[tokio::test]
async fn dry_run_decides_but_changes_nothing() {
    let describe = tag_points_at("feature-x", A, &["feature-x"]);
    let (claim, publish) = (any_put_item(), publish_ok());
    let mut guard = guard(&[&describe], &[&claim], &[&publish]);
    guard.base.config.dry_run = true;
    let outcome = guard.handle(push(REPO, "feature-x", A), &testing::invocation()).await.expect("handled");
    assert!(outcome.dry_run);
    assert_eq!(outcome.actions.len(), 2);
    assert!(outcome.actions.iter().all(|a| a.result == ActionResult::DryRun));
    assert!(!outcome.aws_calls.keys().any(|op| op.contains("Put") && op.starts_with("ECR")));
    assert!(outcome.notified, "a dry run still tells operators what it would do");
}

mod backfill;
mod races;
mod threats;

/// A batch from a hub's sweep queue (Lambda's SQS event source mapping): each record is run as its own event,
/// and once one fails, it and every record after it are reported for SQS to deliver again, unrun (a FIFO queue
/// keeps an account's items in order).
#[tokio::test]
async fn a_sweep_queue_batch_reports_the_failed_item_and_everything_after_it() {
    use serde_json::json;
    let guard = guard(&[], &[], &[]);
    let record = |id: &str, body: String| json!({"messageId": id, "body": body, "eventSource": "aws:sqs"});
    let skipped = || sample("unknown-detail-type.json").to_string();

    let fine = json!({"Records": [record("m-1", skipped()), record("m-2", skipped())]});
    let outcome = guard.handle(fine, &testing::invocation()).await.expect("a batch answer");
    assert_eq!(outcome.decision, "batch");
    assert_eq!(outcome.items.len(), 2);
    assert!(outcome.batch_item_failures.is_empty());
    assert!(serde_json::to_value(&outcome).expect("json").get("batchItemFailures").is_none());

    let broken = json!({"Records": [
        record("m-1", skipped()), record("m-2", "not json".into()), record("m-3", skipped())
    ]});
    let outcome = guard.handle(broken, &testing::invocation()).await.expect("a batch answer, not an error");
    assert_eq!(outcome.items.len(), 1, "m-3 is not run after m-2 failed");
    let failed: Vec<&str> = outcome.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["m-2", "m-3"]);
    let answer = serde_json::to_value(&outcome).expect("json");
    assert_eq!(answer["batchItemFailures"], json!([{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-3"}]));
    assert!(outcome.reasons.iter().any(|r| r.starts_with("m-3: not run")), "{:?}", outcome.reasons);
}
