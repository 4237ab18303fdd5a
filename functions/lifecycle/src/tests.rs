//! lifecycle against exact AWS responses (aws-smithy-mocks): native policy application and drift, pagination of
//! repositories and images, deletion batches of 100 with per-image failures, the protections (in use, index
//! children, promotion tags), dry run, safety caps, and sweeps that resume.

use super::*;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::operation::get_lifecycle_policy::{GetLifecyclePolicyError, GetLifecyclePolicyOutput};
use aws_sdk_ecr::operation::list_images::ListImagesOutput;
use aws_sdk_ecr::operation::put_lifecycle_policy::PutLifecyclePolicyOutput;
use aws_sdk_ecr::types::error::LifecyclePolicyNotFoundException;
use aws_sdk_ecr::types::{Image, ImageDetail, ImageFailure, ImageFailureCode, ImageIdentifier, Repository};
use aws_sdk_inspector2::operation::list_coverage::ListCoverageOutput;
use aws_sdk_inspector2::types::{
    CoverageResourceType, CoveredResource, EcrContainerImageMetadata, ResourceScanMetadata, ScanType,
};
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::DateTime;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use warden::testing::wire::{ecr_500, sns_500};
use warden::testing::{self, Retries, sample};

const DAY: i64 = 86_400;
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

const POLICY: &str = r#"
version = 1
default-class = "unmanaged"

[[class]]
name = "builds"
repositories = ["builds/*"]

[class.gate]
max = { critical = 0 }
promote = ["approved-{digest12}"]

[class.lifecycle]
apply = true

[[class.lifecycle.native]]
rulePriority = 1
selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 3 }
action = { type = "expire" }

[class.lifecycle.retention]
apply = true
max-images = 1000
max-fraction = 1.0
protect = ["v*"]
require-in-use-coverage = false

[[class.lifecycle.retention.rule]]
priority = 1
description = "newest build of each pull request"
tag-status = "tagged"
tags = ["regex:pr-[0-9]+-[0-9]+"]
group-by = "^(pr-[0-9]+)"
count-type = "image-count-more-than"
count = 1

[[class.lifecycle.retention.rule]]
priority = 2
tag-status = "any"
count-type = "since-image-pushed"
count = 30

[[class]]
name = "pushes"
repositories = ["pushes/*"]

[class.lifecycle]
apply = true

[[class.lifecycle.native]]
rulePriority = 1
selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 3 }
action = { type = "expire" }

[class.lifecycle.retention]
apply = true
after-push = true
max-images = 1000
max-fraction = 1.0
require-in-use-coverage = false

[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "any"
count-type = "since-image-pushed"
count = 30

[[class]]
name = "cautious"
repositories = ["cautious/*"]

[class.lifecycle.retention]
max-images = 2
require-in-use-coverage = false

[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "any"
count-type = "since-image-pushed"
count = 30
"#;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn digest(n: usize) -> String {
    format!("sha256:{n:064x}")
}

fn create_repository(name: &str) -> Value {
    let mut event = sample("cloudtrail-create-repository.json");
    event["detail"]["requestParameters"]["repositoryName"] = name.into();
    event["detail"]["responseElements"]["repository"]["repositoryName"] = name.into();
    event
}

fn sweep() -> Value {
    sample("scheduled-rule.json")
}

fn push(repository: &str) -> Value {
    let mut event = sample("ecr-image-push.json");
    event["detail"]["repository-name"] = repository.into();
    event
}

/// The lifecycle function over mocks. The ledger answers what the test's own rules leave unanswered (rules match
/// in order): "nothing parked, nothing journalled" to a Query, "no cursor" to a GetItem, and success to the
/// writes of the sweep cursor and the deletion journal.
fn lifecycle(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule], inspector: &[&Rule], dry_run: bool) -> Lifecycle {
    lifecycle_with(POLICY, ecr, dynamodb, sns, inspector, dry_run)
}

/// [`lifecycle`] with another policy.
fn lifecycle_with(
    policy: &str,
    ecr: &[&Rule],
    dynamodb: &[&Rule],
    sns: &[&Rule],
    inspector: &[&Rule],
    dry_run: bool,
) -> Lifecycle {
    let (nothing_parked, no_cursor, journal, cleared) =
        (nothing_parked(), no_cursor(), bookkeeping(), cursor_cleared());
    let dynamodb: Vec<&Rule> =
        dynamodb.iter().copied().chain([&nothing_parked, &no_cursor, &journal, &cleared]).collect();
    let dynamodb = dynamodb.as_slice();
    let clients = testing::clients(ecr, dynamodb, sns, Retries::Deployed);
    let inspector = testing::inspector(inspector, &clients, Retries::Deployed);
    let config = Config { dry_run, ..testing::config() };
    Lifecycle::new(Policy::from_toml(policy, "test.toml").expect("policy"), config, clients, inspector).expect("init")
}

fn calls(outcome: &Outcome) -> BTreeMap<&str, u32> {
    outcome.aws_calls.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

fn claim() -> Rule {
    warden::testing::rules::put_item_ok()
}

fn publish() -> Rule {
    mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().message_id("m-1").build())
}

/// The ledger with no notification parked for the event.
fn nothing_parked() -> Rule {
    mock!(aws_sdk_dynamodb::Client::query).then_output(|| QueryOutput::builder().build())
}

/// Writes of the sweep cursor, the deletion journal and the policy notes (PutItem on `SWEEP#`, `JOURNAL#`,
/// `INTENT#` items).
fn bookkeeping() -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item()
                .and_then(|i| i.get("pk"))
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| ["SWEEP#", "JOURNAL#", "INTENT#"].iter().any(|p| pk.starts_with(p)))
        })
        .then_output(|| PutItemOutput::builder().build())
}

fn no_cursor() -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build())
}

fn cursor_cleared() -> Rule {
    mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build())
}

/// An image `days` old with `tags`.
fn detail(n: usize, tags: &[&str], days: i64) -> ImageDetail {
    ImageDetail::builder()
        .image_digest(digest(n))
        .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
        .image_pushed_at(DateTime::from_secs(now() - days * DAY))
        .image_size_in_bytes(1_048_576)
        .image_manifest_media_type(MANIFEST)
        .build()
}

/// DescribeImages answering with `pages` (each page's next token is its index + 1).
fn inventory(pages: Vec<Vec<ImageDetail>>) -> Vec<Rule> {
    let count = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(i, page)| {
            let token = (i > 0).then(|| i.to_string());
            mock!(aws_sdk_ecr::Client::describe_images)
                .match_requests(move |r| r.next_token() == token.as_deref())
                .then_output(move || {
                    DescribeImagesOutput::builder()
                        .set_image_details(Some(page.clone()))
                        .set_next_token((i + 1 < count).then(|| (i + 1).to_string()))
                        .build()
                })
        })
        .collect()
}

/// ListImages answering with the images' current tags.
fn listing(images: &[ImageDetail]) -> Rule {
    let output = listing_of(images);
    mock!(aws_sdk_ecr::Client::list_images).then_output(move || output.clone())
}

fn listing_of(images: &[ImageDetail]) -> ListImagesOutput {
    let ids: Vec<ImageIdentifier> = images
        .iter()
        .flat_map(|d| {
            let digest = d.image_digest().unwrap_or_default().to_owned();
            let tags: Vec<Option<String>> =
                if d.image_tags().is_empty() { vec![None] } else { d.image_tags().iter().cloned().map(Some).collect() };
            tags.into_iter().map(move |tag| ImageIdentifier::builder().image_digest(&digest).set_image_tag(tag).build())
        })
        .collect();
    ListImagesOutput::builder().set_image_ids(Some(ids)).build()
}

fn repositories(names: &[&str]) -> Rule {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    mock!(aws_sdk_ecr::Client::describe_repositories).then_output(move || {
        DescribeRepositoriesOutput::builder()
            .set_repositories(Some(names.iter().map(|n| Repository::builder().repository_name(n).build()).collect()))
            .build()
    })
}

/// BatchDeleteImage that fails for `failing` digests and deletes the rest.
fn deletes(failing: &'static [usize]) -> Rule {
    mock!(aws_sdk_ecr::Client::batch_delete_image).then_compute_response(move |request| {
        let failures = request
            .image_ids()
            .iter()
            .filter(|id| failing.iter().any(|n| id.image_digest() == Some(digest(*n).as_str())))
            .map(|id| {
                ImageFailure::builder()
                    .image_id(id.clone())
                    .failure_code(ImageFailureCode::InvalidImageDigest)
                    .failure_reason("simulated")
                    .build()
            })
            .collect();
        aws_smithy_mocks::MockResponse::Output(BatchDeleteImageOutput::builder().set_failures(Some(failures)).build())
    })
}

fn policy_missing() -> Rule {
    mock!(aws_sdk_ecr::Client::get_lifecycle_policy).then_error(|| {
        GetLifecyclePolicyError::LifecyclePolicyNotFoundException(
            LifecyclePolicyNotFoundException::builder().message("none").build(),
        )
    })
}

fn policy_is(text: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::get_lifecycle_policy)
        .then_output(move || GetLifecyclePolicyOutput::builder().lifecycle_policy_text(text).build())
}

/// A repository without images: what a new repository's native check reads (DescribeImages).
fn empty_inventory() -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images).then_output(|| DescribeImagesOutput::builder().build())
}

fn put_policy() -> Rule {
    mock!(aws_sdk_ecr::Client::put_lifecycle_policy).then_output(|| PutLifecyclePolicyOutput::builder().build())
}

fn deleted_digests(outcome: &Outcome) -> Vec<String> {
    outcome
        .actions
        .iter()
        .filter(|a| a.result == ActionResult::Done)
        .map(|a| a.action.split(' ').nth(1).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_new_repository_gets_its_class_policy_once() {
    let (missing, put, claim, publish, empty) = (policy_missing(), put_policy(), claim(), publish(), empty_inventory());
    let lc = lifecycle(&[&missing, &put, &empty], &[&claim], &[&publish], &[], false);
    let outcome = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "baseline-applied");
    assert!(outcome.notified);
    assert_eq!(
        calls(&outcome),
        // DescribeImages: what the policy would expire is checked first (nothing in a new repository). The
        // put is noted before it happens (PutItem) and the note removed once the news is out (DeleteItem).
        // The Query: news an earlier attempt of this event may have parked (none here). The notification: its
        // claim (PutItem), then marked sent (UpdateItem).
        BTreeMap::from([
            ("ECR.GetLifecyclePolicy", 1),
            ("ECR.DescribeImages", 1),
            ("ECR.PutLifecyclePolicy", 1),
            ("DynamoDB.Query", 1),
            ("DynamoDB.PutItem", 2),
            ("DynamoDB.DeleteItem", 1),
            ("DynamoDB.UpdateItem", 1),
            ("SNS.Publish", 1)
        ])
    );
    // What was put is the class's policy, and ECR's own validator accepts it.
    let text = &lc.base.policy.classes[0].lifecycle.as_ref().and_then(|l| l.native.as_ref()).expect("native").text;
    assert!(warden::lifecycle::LifecyclePolicy::parse(text).is_ok());
}

#[tokio::test]
async fn the_same_policy_written_differently_is_not_drift() {
    let same = policy_is(
        r#"{ "rules": [ { "action": {"type": "expire"}, "rulePriority": 1,
           "selection": {"countNumber": 3, "countType": "sinceImagePushed", "countUnit": "days", "tagStatus": "untagged"} } ] }"#,
    );
    let lc = lifecycle(&[&same], &[], &[], &[], false);
    let outcome = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "baseline-ok");
    // The Queries: whether an earlier attempt of this event put it (and was cut short before telling), and
    // what such an attempt may have parked (nothing here).
    assert_eq!(calls(&outcome), BTreeMap::from([("ECR.GetLifecyclePolicy", 1), ("DynamoDB.Query", 2)]));
}

#[tokio::test]
async fn a_drifted_policy_is_replaced_and_unmanaged_repositories_are_left_alone() {
    let drifted = policy_is(
        r#"{"rules": [{"rulePriority": 9, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}"#,
    );
    let (put, claim, publish, empty) = (put_policy(), claim(), publish(), empty_inventory());
    let lc = lifecycle(&[&drifted, &put, &empty], &[&claim], &[&publish], &[], false);
    let outcome = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.actions[0].action, "replace the drifted lifecycle policy");
    assert_eq!(outcome.actions[0].result, ActionResult::Done);
    let outcome = lc.handle(create_repository("somewhere/else"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.aws_calls.is_empty());
}

#[tokio::test]
async fn retention_pages_through_the_inventory_and_deletes_in_batches_of_100() {
    // 250 old untagged images over three pages, 3 recent ones: 250 deletions in 3 calls (100, 100, 50).
    let old: Vec<ImageDetail> = (0..250).map(|n| detail(n, &[], 40)).collect();
    let mut pages: Vec<Vec<ImageDetail>> = old.chunks(100).map(<[ImageDetail]>::to_vec).collect();
    pages[2].extend((250..253).map(|n| detail(n, &["main"], 1)));
    let list = listing(&pages.concat());
    let pages = inventory(pages);
    let page_refs: Vec<&Rule> = pages.iter().collect();
    let (delete, coverage, claim, publish) = (deletes(&[]), no_coverage(), claim(), publish());
    let mut ecr = page_refs.clone();
    ecr.extend([&delete, &list]);
    let lc = lifecycle(&ecr, &[&claim], &[&publish], &[&coverage], false);
    let outcome = lc.handle(push("builds/api"), &testing::invocation()).await;
    // Pushes only trigger retention with after-push; this class runs it on the sweep.
    assert_eq!(outcome.expect("ok").decision, "skipped");

    let (repos, get, clear, missing, put) =
        (repositories(&["builds/api"]), no_cursor(), cursor_cleared(), policy_missing(), put_policy());
    ecr.extend([&repos, &missing, &put]);
    let lc = lifecycle(&ecr, &[&claim, &get, &clear], &[&publish], &[&coverage], false);
    let outcome = lc.handle(sweep(), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "sweep-complete");
    let run = outcome.items.iter().find(|i| i.decision == "deleted").expect("retention ran");
    assert_eq!(deleted_digests(run).len(), 250);
    assert_eq!(outcome.aws_calls["ECR.DescribeImages"], 3);
    assert_eq!(outcome.aws_calls["ECR.BatchDeleteImage"], 3);
    assert!(run.reasons.iter().any(|r| r.contains("250 images deleted, 250.0 MiB reclaimed")), "{:?}", run.reasons);
}

fn no_coverage() -> Rule {
    mock!(aws_sdk_inspector2::Client::list_coverage).then_output(|| ListCoverageOutput::builder().build())
}

fn in_use(n: usize) -> Rule {
    mock!(aws_sdk_inspector2::Client::list_coverage).then_output(move || {
        let image = EcrContainerImageMetadata::builder().in_use_count(2).build();
        ListCoverageOutput::builder()
            .covered_resources(
                CoveredResource::builder()
                    .resource_type(CoverageResourceType::AwsEcrContainerImage)
                    .resource_id(format!("arn:aws:ecr:us-east-1:123456789012:repository/builds/api/{}", digest(n)))
                    .account_id("123456789012")
                    .scan_type(ScanType::Package)
                    .resource_metadata(ResourceScanMetadata::builder().ecr_image(image).build())
                    .build()
                    .expect("resource"),
            )
            .build()
    })
}

/// Runs retention on `builds/api` (through a sweep) over `images`, with extra ECR and Inspector rules.
async fn retain(
    images: Vec<ImageDetail>,
    extra_ecr: &[&Rule],
    inspector: &[&Rule],
    failing: &'static [usize],
) -> Outcome {
    let list = listing(&images);
    let pages = inventory(vec![images]);
    let (repos, same, delete) = (repositories(&["builds/api"]), policy_is(NATIVE), deletes(failing));
    // The test's own rules first: the first matching rule answers.
    let ecr: Vec<&Rule> =
        extra_ecr.iter().copied().chain(pages.iter()).chain([&repos, &same, &delete, &list]).collect();
    let (claim, get, clear, publish) = (claim(), no_cursor(), cursor_cleared(), publish());
    let lc = lifecycle(&ecr, &[&claim, &get, &clear], &[&publish], inspector, false);
    let outcome = lc.handle(sweep(), &testing::invocation()).await.expect("ok");
    outcome.items.into_iter().find(|i| i.repository.as_deref() == Some("builds/api")).unwrap_or_default()
}

const NATIVE: &str = r#"{"rules":[{"action":{"type":"expire"},"rulePriority":1,"selection":{"countNumber":3,"countType":"sinceImagePushed","countUnit":"days","tagStatus":"untagged"}}]}"#;

#[tokio::test]
async fn keep_n_per_group_protections_and_the_rule_that_chose_each() {
    let images = vec![
        detail(1, &["pr-7-3"], 1),
        detail(2, &["pr-7-2"], 2),
        detail(3, &["pr-7-1"], 3),
        detail(4, &["pr-8-1"], 4),
        detail(5, &["v1.0.0"], 90),
        detail(6, &["approved-000000000000", "sha-1"], 90),
        detail(7, &["sha-2"], 90),
        detail(8, &["sha-3"], 90),
    ];
    let coverage = in_use(8);
    let outcome = retain(images, &[], &[&coverage], &[]).await;
    assert_eq!(outcome.decision, "deleted");
    let mut deleted = deleted_digests(&outcome);
    deleted.sort();
    // pr-7 keeps its newest build; pr-8 its only one; the release, the approved image and the one in use stay.
    assert_eq!(deleted, vec![digest(2), digest(3), digest(7)]);
    assert!(outcome.actions.iter().any(|a| a.action.contains(&digest(3)) && a.action.ends_with("by rule 1")));
    assert!(outcome.actions.iter().any(|a| a.action.contains(&digest(7)) && a.action.ends_with("by rule 2")));
    let reasons = outcome.reasons.join("\n");
    assert!(reasons.contains("protected tag v1.0.0"), "{reasons}");
    assert!(reasons.contains("promoted (approved-000000000000)"), "{reasons}");
    assert!(reasons.contains("in use (Amazon Inspector)"), "{reasons}");
    assert!(outcome.notified);
    assert_eq!(outcome.aws_calls.get("Inspector2.ListCoverage"), None, "calls are counted on the sweep");
}

#[tokio::test]
async fn children_of_a_kept_index_are_never_deleted() {
    let mut index = detail(10, &["v2.0.0"], 60);
    index.image_manifest_media_type = Some(INDEX.into());
    let images = vec![index, detail(11, &[], 60), detail(12, &[], 60), detail(13, &[], 60)];
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{{"digest":"{}"}},{{"digest":"{}"}}]}}"#,
        digest(11),
        digest(12)
    );
    let read_index = mock!(aws_sdk_ecr::Client::batch_get_image)
        .match_requests(|r| r.image_ids().len() == 1 && r.accepted_media_types().contains(&INDEX.to_owned()))
        .then_output(move || {
            BatchGetImageOutput::builder()
                .images(
                    Image::builder()
                        .image_id(ImageIdentifier::builder().image_digest(digest(10)).build())
                        .image_manifest(manifest.clone())
                        .image_manifest_media_type(INDEX)
                        .build(),
                )
                .build()
        });
    let coverage = no_coverage();
    let outcome = retain(images, &[&read_index], &[&coverage], &[]).await;
    assert_eq!(deleted_digests(&outcome), vec![digest(13)]);
    let reasons = outcome.reasons.join("\n");
    assert!(reasons.contains(&format!("referenced by kept index {}", digest(10))), "{reasons}");
}

#[tokio::test]
async fn per_image_failures_are_reported_and_the_rest_deleted() {
    let images = (20..25).map(|n| detail(n, &[], 60)).collect();
    let coverage = no_coverage();
    let outcome = retain(images, &[], &[&coverage], &[22]).await;
    assert_eq!(deleted_digests(&outcome).len(), 4);
    let failed: Vec<&Action> = outcome.actions.iter().filter(|a| a.result == ActionResult::Failed).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].action.contains(&digest(22)));
    assert!(failed[0].detail.as_deref().unwrap_or_default().contains("retried next run"));
}

#[tokio::test]
async fn nothing_to_delete_costs_one_listing_and_sends_nothing() {
    let images = vec![detail(30, &["main"], 1)];
    let outcome = retain(images, &[], &[], &[]).await;
    // Not reported as an item: nothing happened.
    assert!(outcome.repository.is_none());
}

#[tokio::test]
async fn a_class_without_apply_only_reports_and_a_cap_stops_everything() {
    // cautious/*: apply is off (dry run) and max-images is 2.
    let run = |images: Vec<ImageDetail>| async move {
        let pages = inventory(vec![images]);
        let repos = repositories(&["cautious/tools"]);
        let ecr: Vec<&Rule> = pages.iter().chain([&repos]).collect();
        let (claim, get, clear, publish, coverage) = (claim(), no_cursor(), cursor_cleared(), publish(), no_coverage());
        let lc = lifecycle(&ecr, &[&claim, &get, &clear], &[&publish], &[&coverage], false);
        lc.handle(sweep(), &testing::invocation()).await.expect("ok")
    };
    let recent = || (50..57).map(|n| detail(n, &[], 1));
    let outcome = run((40..42).map(|n| detail(n, &[], 60)).chain(recent()).collect()).await;
    let item = &outcome.items[0];
    assert_eq!(item.decision, "would-delete");
    assert!(item.actions.iter().all(|a| a.result == ActionResult::DryRun));
    assert_eq!(outcome.aws_calls.get("ECR.BatchDeleteImage"), None);

    let outcome = run((40..43).map(|n| detail(n, &[], 60)).chain(recent()).collect()).await;
    let item = &outcome.items[0];
    assert_eq!(item.decision, "over-cap");
    assert!(item.actions.is_empty());
    assert!(item.reasons[0].contains("more than max-images = 2"), "{:?}", item.reasons);
    assert!(item.notified);
}

#[tokio::test]
async fn a_sweep_records_where_it_is_stops_before_the_deadline_and_the_next_resumes_there() {
    let repos = repositories(&["builds/a", "builds/b", "builds/c"]);
    let same = policy_is(NATIVE);
    let pages = inventory(vec![vec![]]);
    let saved = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&saved);
    let cursor = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| {
            let item = r.item();
            let is_cursor = sk_of(item) == "CURSOR";
            if is_cursor {
                let field =
                    |k: &str| item.and_then(|i| i.get(k)).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                record.lock().expect("lock").push(format!("{} {}", field("repository"), field("phase")));
            }
            is_cursor
        })
        .then_output(|| PutItemOutput::builder().build());
    let (claim, get, publish) = (claim(), no_cursor(), publish());
    let ecr: Vec<&Rule> = pages.iter().chain([&repos, &same]).collect();
    let lc = lifecycle(&ecr, &[&cursor, &get, &claim], &[&publish], &[], false);
    // Less than the margin left: nothing is started; the next sweep starts at builds/a.
    let short = || Some(SystemTime::now() + Duration::from_secs(5));
    let outcome = lc.handle(sweep(), &testing::invocation_until(short())).await.expect("ok");
    assert_eq!(outcome.decision, "sweep-incomplete");
    assert!(
        outcome.reasons.iter().any(|r| r.contains("stopped before the deadline at builds/a")),
        "{:?}",
        outcome.reasons
    );
    assert_eq!(*saved.lock().expect("lock"), vec!["builds/a native"]);
    assert_eq!(outcome.aws_calls.get("ECR.GetLifecyclePolicy"), None);

    // With time, a sweep resuming at builds/b's retention skips builds/a and builds/b's native policy, records
    // each repository and phase before it works on it, and clears the cursor at the end.
    saved.lock().expect("lock").clear();
    let resume = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .item("repository", AttributeValue::S("builds/b".into()))
            .item("phase", AttributeValue::S("retention".into()))
            .build()
    });
    let clear = cursor_cleared();
    let lc = lifecycle(&ecr, &[&cursor, &resume, &clear, &claim], &[&publish], &[], false);
    let outcome = lc
        .handle(sweep(), &testing::invocation_until(Some(SystemTime::now() + Duration::from_secs(900))))
        .await
        .expect("ok");
    assert_eq!(outcome.decision, "sweep-complete");
    assert_eq!(outcome.aws_calls["ECR.GetLifecyclePolicy"], 1, "builds/c only");
    assert_eq!(*saved.lock().expect("lock"), vec!["builds/b retention", "builds/c native", "builds/c retention"]);
    assert_eq!(clear.num_calls(), 1);
    assert!(outcome.reasons[0].contains("resumed at builds/b (retention)"), "{:?}", outcome.reasons);
}

#[tokio::test]
async fn a_sweep_naming_its_repositories_keeps_a_cursor_of_its_own() {
    // The scheduled sweep of the whole registry stopped at builds/z: a sweep naming builds/a must neither skip
    // builds/a (it sorts before the cursor) nor clear the scheduled sweep's place when it finishes.
    let pk_of = |key: Option<&std::collections::HashMap<String, AttributeValue>>| {
        key.and_then(|k| k.get("pk")).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
    };
    let registry_cursor = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(move |r| pk_of(r.key()) == "SWEEP#lifecycle")
        .then_output(|| {
            GetItemOutput::builder()
                .item("repository", AttributeValue::S("builds/z".into()))
                .item("phase", AttributeValue::S("native".into()))
                .build()
        });
    let scoped_clear = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(move |r| pk_of(r.key()).starts_with("SWEEP#lifecycle#"))
        .then_output(|| DeleteItemOutput::builder().build());
    let registry_clear = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(move |r| pk_of(r.key()) == "SWEEP#lifecycle")
        .then_output(|| DeleteItemOutput::builder().build());
    let (same, pages, claim) = (policy_is(NATIVE), inventory(vec![vec![]]), claim());
    let ecr: Vec<&Rule> = pages.iter().chain([&same]).collect();
    let lc = lifecycle(&ecr, &[&registry_cursor, &scoped_clear, &registry_clear, &claim], &[], &[], false);
    let mut named = sample("scheduler-repositories.json");
    named["detail"]["repositories"] = serde_json::json!(["builds/a"]);
    let outcome = lc.handle(named, &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "sweep-complete");
    assert_eq!(outcome.aws_calls["ECR.GetLifecyclePolicy"], 1, "builds/a is swept: {:?}", outcome.reasons);
    assert!(!outcome.reasons.iter().any(|r| r.contains("resumed")), "{:?}", outcome.reasons);
    assert_eq!((scoped_clear.num_calls(), registry_clear.num_calls()), (1, 0));
}

#[tokio::test]
async fn a_repository_deleted_mid_sweep_is_skipped_and_the_sweep_goes_on() {
    use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
    use aws_sdk_ecr::types::error::RepositoryNotFoundException;
    let repos = repositories(&["builds/gone", "builds/kept"]);
    let gone = || RepositoryNotFoundException::builder().message("deleted").build();
    let policy_gone = mock!(aws_sdk_ecr::Client::get_lifecycle_policy)
        .match_requests(|r| r.repository_name() == Some("builds/gone"))
        .then_error(move || GetLifecyclePolicyError::RepositoryNotFoundException(gone()));
    let images_gone = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| r.repository_name() == Some("builds/gone"))
        .then_error(move || DescribeImagesError::RepositoryNotFoundException(gone()));
    let same = policy_is(NATIVE);
    let pages = inventory(vec![vec![detail(1, &["main"], 1)]]);
    let ecr: Vec<&Rule> = [&repos, &policy_gone, &images_gone, &same].into_iter().chain(pages.iter()).collect();
    let (get, clear) = (no_cursor(), cursor_cleared());
    let lc = lifecycle(&ecr, &[&get, &clear], &[], &[], false);
    let outcome = lc.handle(sweep(), &testing::invocation()).await.expect("a vanished repository is not an error");
    assert_eq!(outcome.decision, "sweep-complete");
    assert_eq!(outcome.aws_calls["ECR.DescribeImages"], 2);
    assert!(outcome.items.is_empty(), "{:?}", outcome.items);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_by_the_sdk_and_nothing_is_deleted_twice() {
    use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageError;
    use aws_sdk_inspector2::operation::list_coverage::ListCoverageError;
    use aws_smithy_types::error::ErrorMetadata;
    let throttled = |code: &str| ErrorMetadata::builder().code(code).message("Rate exceeded").build();
    let delete = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .sequence()
        .error(move || BatchDeleteImageError::generic(throttled("ThrottlingException")))
        .http_status(500, Some(r#"{"__type":"ServerException","message":"internal failure"}"#.to_owned()))
        .output(|| BatchDeleteImageOutput::builder().build())
        .build();
    let coverage = mock!(aws_sdk_inspector2::Client::list_coverage)
        .sequence()
        .error(move || ListCoverageError::generic(throttled("ThrottlingException")))
        .output(|| ListCoverageOutput::builder().build())
        .build();
    let images = (60..63).map(|n| detail(n, &[], 60)).collect();
    let outcome = retain(images, &[&delete], &[&coverage], &[]).await;
    assert_eq!(deleted_digests(&outcome).len(), 3);
    assert_eq!(delete.num_calls(), 3, "one BatchDeleteImage, two retries");

    // Retries exhausted: the invocation fails with a retryable error (EventBridge retries it) with the batch in
    // the journal and nothing reported. The retry reads the journal back (nothing was deleted: nothing to
    // report), clears it, and deletes each image once.
    let flaky = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .sequence()
        .error(move || BatchDeleteImageError::generic(throttled("ThrottlingException")))
        .times(3)
        .output(|| BatchDeleteImageOutput::builder().build())
        .build();
    let images: Vec<ImageDetail> = (60..63).map(|n| detail(n, &[], 60)).collect();
    let list = listing(&images);
    let pages = inventory(vec![images]);
    let (repos, same, coverage) = (repositories(&["builds/api"]), policy_is(NATIVE), no_coverage());
    let ecr: Vec<&Rule> = pages.iter().chain([&repos, &same, &flaky, &list]).collect();
    let (journal, claims, report) = (JournalStore::new(), ClaimStore::new(), publish());
    let dynamodb: Vec<&Rule> = journal.rules().into_iter().chain(claims.rules()).collect();
    let lc = lifecycle(&ecr, &dynamodb, &[&report], &[&coverage], false);
    let error = lc.handle(sweep(), &testing::invocation()).await.expect_err("retries exhausted");
    assert!(error.is_retryable(), "{error}");
    assert_eq!((flaky.num_calls(), journal.len(), report.num_calls()), (3, 1, 0));
    let retried = lc.handle(sweep(), &testing::invocation()).await.expect("the retry");
    let run = retried.items.iter().find(|i| i.decision == "deleted").expect("deleted");
    assert_eq!(deleted_digests(run).len(), 3);
    assert_eq!((flaky.num_calls(), journal.len(), report.num_calls()), (4, 0, 1), "one report: the retry's own");
}

/// The deletion journal as DynamoDB keeps it: batches written before their deletion, returned by the next run's
/// Query, removed once reported.
struct JournalStore {
    items: Arc<Mutex<Vec<HashMap<String, AttributeValue>>>>,
    write: Rule,
    read: Rule,
    clear: Rule,
}

impl JournalStore {
    fn new() -> Self {
        let items: Arc<Mutex<Vec<HashMap<String, AttributeValue>>>> = Arc::default();
        let is_journal =
            |pk: Option<&AttributeValue>| pk.and_then(|v| v.as_s().ok()).is_some_and(|pk| pk == "JOURNAL#lifecycle");
        let store = Arc::clone(&items);
        let write = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |r| {
                let journal = is_journal(r.item().and_then(|i| i.get("pk")));
                if journal {
                    store.lock().expect("lock").push(r.item().cloned().unwrap_or_default());
                }
                journal
            })
            .then_output(|| PutItemOutput::builder().build());
        let found = Arc::clone(&items);
        let read = mock!(aws_sdk_dynamodb::Client::query)
            .match_requests(|r| {
                r.expression_attribute_values()
                    .and_then(|v| v.get(":pk"))
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("JOURNAL#lifecycle")
            })
            .then_compute_response(move |r| {
                let prefix = r
                    .expression_attribute_values()
                    .and_then(|v| v.get(":repository"))
                    .and_then(|v| v.as_s().ok())
                    .cloned();
                let items: Vec<_> = found
                    .lock()
                    .expect("lock")
                    .iter()
                    .filter(|i| prefix.as_ref().is_none_or(|p| sk_of(Some(i)).starts_with(p.as_str())))
                    .cloned()
                    .collect();
                aws_smithy_mocks::MockResponse::Output(QueryOutput::builder().set_items(Some(items)).build())
            });
        let gone = Arc::clone(&items);
        let clear = mock!(aws_sdk_dynamodb::Client::delete_item)
            .match_requests(move |r| {
                let journal = is_journal(r.key().and_then(|k| k.get("pk")));
                if journal {
                    let sk = sk_of(r.key());
                    gone.lock().expect("lock").retain(|i| sk_of(Some(i)) != sk);
                }
                journal
            })
            .then_output(|| DeleteItemOutput::builder().build());
        Self { items, write, read, clear }
    }

    fn rules(&self) -> [&Rule; 3] {
        [&self.write, &self.read, &self.clear]
    }

    fn len(&self) -> usize {
        self.items.lock().expect("lock").len()
    }

    /// Adds an entry as a run that was cut short left it.
    fn holds(&self, repository: &str, run: &str, event: &str, digests: &[String]) {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("JOURNAL#lifecycle".into())),
            ("sk".to_owned(), AttributeValue::S(format!("{repository}#{run}#0000"))),
            ("repository".to_owned(), AttributeValue::S(repository.into())),
            ("run".to_owned(), AttributeValue::S(run.into())),
            ("batch".to_owned(), AttributeValue::N("0".into())),
            ("event_id".to_owned(), AttributeValue::S(event.into())),
            ("digests".to_owned(), AttributeValue::Ss(digests.iter().map(|d| format!("{d} 1")).collect())),
        ]);
        self.items.lock().expect("lock").push(item);
    }
}

/// Notification claims as DynamoDB's conditional writes answer them: each taken once, refused until given back.
struct ClaimStore {
    taken: Arc<Mutex<std::collections::HashSet<String>>>,
    claim: Rule,
    release: Rule,
}

impl ClaimStore {
    fn new() -> Self {
        let taken: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let notify =
            |pk: Option<&AttributeValue>| pk.and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("NOTIFY#"));
        let key = |item: Option<&HashMap<String, AttributeValue>>| {
            let pk = item.and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            format!("{pk}/{}", sk_of(item))
        };
        let take = Arc::clone(&taken);
        let claim = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |r| notify(r.item().and_then(|i| i.get("pk"))))
            .then_compute_response(move |r| {
                if take.lock().expect("lock").insert(key(r.item())) {
                    aws_smithy_mocks::MockResponse::Output(PutItemOutput::builder().build())
                } else {
                    let taken = aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder().build();
                    aws_smithy_mocks::MockResponse::Error(
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(taken),
                    )
                }
            });
        let give_back = Arc::clone(&taken);
        let release = mock!(aws_sdk_dynamodb::Client::delete_item)
            .match_requests(move |r| {
                let claim = notify(r.key().and_then(|k| k.get("pk")));
                if claim {
                    give_back.lock().expect("lock").remove(&key(r.key()));
                }
                claim
            })
            .then_output(|| DeleteItemOutput::builder().build());
        Self { taken, claim, release }
    }

    fn rules(&self) -> [&Rule; 2] {
        [&self.claim, &self.release]
    }

    fn take(&self, event: &str, kind: &str) {
        self.taken.lock().expect("lock").insert(format!("NOTIFY#{event}/{kind}"));
    }
}

#[tokio::test]
async fn a_deletion_interrupted_part_way_is_reported_by_the_retry_which_deletes_the_rest() {
    // 150 old untagged images: the first batch of 100 goes, the second fails past the SDK's retries.
    let all: Vec<ImageDetail> = (0..150).map(|n| detail(n, &[], 60)).chain([detail(999, &["main"], 1)]).collect();
    let rest: Vec<ImageDetail> = all[100..].to_vec();
    let (before, after) = (all.clone(), rest.clone());
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .output(move || DescribeImagesOutput::builder().set_image_details(Some(before.clone())).build())
        .output(move || DescribeImagesOutput::builder().set_image_details(Some(after.clone())).build())
        .build();
    let list = mock!(aws_sdk_ecr::Client::list_images)
        .sequence()
        .output(move || listing_of(&all))
        .output(move || listing_of(&rest))
        .times(2)
        .build();
    let delete = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .sequence()
        .output(|| BatchDeleteImageOutput::builder().build())
        .http_status(ecr_500().0, ecr_500().1)
        .times(3)
        .output(|| BatchDeleteImageOutput::builder().build())
        .build();
    let (repos, same, coverage) = (repositories(&["builds/api"]), policy_is(NATIVE), no_coverage());
    let (journal, claims) = (JournalStore::new(), ClaimStore::new());
    let messages = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&messages);
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            seen.lock().expect("lock").push(r.message().unwrap_or_default().to_owned());
            true
        })
        .then_output(|| PublishOutput::builder().message_id("m").build());
    let dynamodb: Vec<&Rule> = journal.rules().into_iter().chain(claims.rules()).collect();
    let lc = lifecycle(&[&describe, &list, &delete, &repos, &same], &dynamodb, &[&publish], &[&coverage], false);

    let error = lc.handle(sweep(), &testing::invocation()).await.expect_err("interrupted");
    assert!(error.is_retryable(), "{error}");
    assert_eq!((journal.len(), messages.lock().expect("lock").len()), (2, 0), "both batches journalled");

    // EventBridge's retry: the journal says what the cut-short run deleted (100, read back now); then the 50
    // left are deleted and reported under the retry's own claim.
    let retried = lc.handle(sweep(), &testing::invocation()).await.expect("the retry");
    let run = retried.items.iter().find(|i| i.decision == "deleted").expect("deleted");
    assert_eq!(deleted_digests(run).len(), 50);
    let messages = messages.lock().expect("lock").clone();
    assert_eq!(messages.len(), 2, "the cut-short run's report and the retry's");
    let first: Value = serde_json::from_str(&messages[0]).expect("json");
    let text = first["default"].as_str().unwrap_or_default();
    assert!(text.contains("100 images deleted by a retention run that was cut short"), "{text}");
    assert_eq!(journal.len(), 0, "the journal is cleared once reported");
    assert_eq!(delete.num_calls(), 5, "1 + 3 attempts, then the retry's one batch");
}

#[tokio::test]
async fn an_image_tagged_since_the_inventory_is_not_deleted() {
    // The plan chose three untagged images; meanwhile one got a release tag and one was deleted by someone.
    let images: Vec<ImageDetail> = (70..73).map(|n| detail(n, &[], 60)).collect();
    let now_listed = vec![detail(70, &[], 60), detail(71, &["v9.0.0"], 60)];
    let list = listing(&now_listed);
    let coverage = no_coverage();
    let outcome = retain(images, &[&list], &[&coverage], &[]).await;
    assert_eq!(deleted_digests(&outcome), vec![digest(70)]);
    let kept = outcome.actions.iter().find(|a| a.action.contains(&digest(71))).expect("reported");
    assert_eq!(kept.result, ActionResult::Failed);
    assert!(kept.detail.as_deref().unwrap_or_default().contains("tags changed since the inventory"));
    let gone = outcome.actions.iter().find(|a| a.action.contains(&digest(72))).expect("reported");
    assert_eq!(gone.result, ActionResult::AlreadyDone);
}

#[tokio::test]
async fn a_sweep_naming_its_repositories_lists_nothing() {
    let mut event = sweep();
    event["detail"] = serde_json::json!({"repositories": ["builds/api", "builds/api"]});
    let same = policy_is(NATIVE);
    let pages = inventory(vec![vec![detail(1, &["main"], 1)]]);
    let ecr: Vec<&Rule> = pages.iter().chain([&same]).collect();
    let get = no_cursor();
    let lc = lifecycle(&ecr, &[&get], &[], &[], false);
    let outcome = lc.handle(event, &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "sweep-complete");
    assert_eq!(outcome.aws_calls.get("ECR.DescribeRepositories"), None);
    assert_eq!(outcome.aws_calls["ECR.DescribeImages"], 1, "named twice, swept once");
}

/// The ledger as an attempt that failed to notify leaves it and its retry reads it: parking a notification
/// under `claim_kind` stores it, the Query returns what was stored, and unparking removes it.
struct Parking {
    stored: Arc<Mutex<Option<String>>>,
    park: Rule,
    parked: Rule,
    unpark: Rule,
    claim: Rule,
    release: Rule,
}

fn parking_lot(claim_kind: &'static str) -> Parking {
    let stored = Arc::new(Mutex::new(None));
    let keep = Arc::clone(&stored);
    let park = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| {
            let parked = sk_of(r.item()) == format!("PARKED#{claim_kind}");
            if parked {
                *keep.lock().expect("lock") = r.item().and_then(|i| i.get("notification")?.as_s().ok().cloned());
            }
            parked
        })
        .then_output(|| PutItemOutput::builder().build());
    let found = Arc::clone(&stored);
    let parked = mock!(aws_sdk_dynamodb::Client::query).then_output(move || {
        let json = found.lock().expect("lock").clone();
        let items = json.into_iter().map(|json| {
            HashMap::from([
                ("sk".to_owned(), AttributeValue::S(format!("PARKED#{claim_kind}"))),
                ("notification".to_owned(), AttributeValue::S(json)),
            ])
        });
        QueryOutput::builder().set_items(Some(items.collect())).build()
    });
    let gone = Arc::clone(&stored);
    let unpark = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(move |r| {
            let unparked = sk_of(r.key()) == format!("PARKED#{claim_kind}");
            if unparked {
                gone.lock().expect("lock").take();
            }
            unparked
        })
        .then_output(|| DeleteItemOutput::builder().build());
    // The claim as DynamoDB's conditional write answers it: taken once, refused until given back.
    let claimed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (take, give_back) = (Arc::clone(&claimed), claimed);
    let claim = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| sk_of(r.item()) == claim_kind)
        .then_compute_response(move |_| {
            if take.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let taken = aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder().build();
                aws_smithy_mocks::MockResponse::Error(
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(taken),
                )
            } else {
                aws_smithy_mocks::MockResponse::Output(PutItemOutput::builder().build())
            }
        });
    let release = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(move |r| sk_of(r.key()) == claim_kind)
        .then_output(move || {
            give_back.store(false, std::sync::atomic::Ordering::SeqCst);
            DeleteItemOutput::builder().build()
        });
    Parking { stored, park, parked, unpark, claim, release }
}

impl Parking {
    fn rules(&self) -> [&Rule; 5] {
        [&self.park, &self.parked, &self.unpark, &self.claim, &self.release]
    }

    /// The parked notification's kind and result, if one is parked.
    fn holds(&self) -> Option<(String, String)> {
        let json: Value = serde_json::from_str(self.stored.lock().expect("lock").as_deref()?).expect("parked JSON");
        Some((json["kind"].as_str()?.to_owned(), json["outcome"].as_str()?.to_owned()))
    }
}

fn sk_of(item: Option<&HashMap<String, AttributeValue>>) -> String {
    item.and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// SNS failing with 500 through all of the SDK's attempts, then answering.
fn publish_fails_then_works() -> Rule {
    mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .http_status(sns_500().0, sns_500().1)
        .times(3)
        .output(|| PublishOutput::builder().message_id("m-1").build())
        .build()
}

#[tokio::test]
async fn deletions_whose_notification_fails_are_reported_by_the_retry() {
    // An after-push run deletes one old image, then SNS fails past the SDK's retries.
    let (old, recent) = (detail(40, &[], 60), detail(41, &["main"], 1));
    let before = vec![old.clone(), recent.clone()];
    let after = vec![recent.clone()];
    let describe = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .output(move || DescribeImagesOutput::builder().set_image_details(Some(before.clone())).build())
        .output(move || DescribeImagesOutput::builder().set_image_details(Some(after.clone())).build())
        .build();
    let (listed, left) = (vec![old, recent.clone()], vec![recent]);
    let list = mock!(aws_sdk_ecr::Client::list_images)
        .sequence()
        .output(move || listing_of(&listed))
        .output(move || listing_of(&left))
        .times(2)
        .build();
    let (delete, coverage, journal, claims) = (deletes(&[]), no_coverage(), JournalStore::new(), ClaimStore::new());
    let publish = publish_fails_then_works();
    let dynamodb: Vec<&Rule> = journal.rules().into_iter().chain(claims.rules()).collect();
    let lc = lifecycle(&[&describe, &list, &delete], &dynamodb, &[&publish], &[&coverage], false);

    let error =
        lc.handle(push("pushes/api"), &testing::invocation()).await.expect_err("SNS failing past the SDK's retries");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(
        (delete.num_calls(), journal.len(), claims.release.num_calls()),
        (1, 1, 1),
        "journalled, claim given back"
    );

    // EventBridge's retry reads the journal back, reports the deletion once, and finds nothing left to delete.
    let retried = lc.handle(push("pushes/api"), &testing::invocation()).await.expect("the retry");
    assert_eq!(retried.decision, "nothing-to-delete");
    assert!(retried.notified);
    assert_eq!((delete.num_calls(), publish.num_calls(), journal.len()), (1, 4, 0));
}

#[tokio::test]
async fn a_policy_set_whose_notification_fails_is_reported_by_the_retry() {
    let policy = mock!(aws_sdk_ecr::Client::get_lifecycle_policy)
        .sequence()
        .error(|| {
            GetLifecyclePolicyError::LifecyclePolicyNotFoundException(
                LifecyclePolicyNotFoundException::builder().message("none").build(),
            )
        })
        .output(|| GetLifecyclePolicyOutput::builder().lifecycle_policy_text(NATIVE).build())
        .times(2)
        .build();
    let (put, empty) = (put_policy(), empty_inventory());
    let lot = parking_lot("lifecycle-policy-applied");
    let publish = publish_fails_then_works();
    let lc = lifecycle(&[&policy, &put, &empty], &lot.rules(), &[&publish], &[], false);

    let error = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect_err("SNS failing");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(lot.holds(), Some(("lifecycle-policy-applied".into(), "fixed".into())));

    let retried = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("the retry");
    assert_eq!(retried.decision, "baseline-ok");
    assert!(retried.notified);
    assert_eq!((put.num_calls(), publish.num_calls(), lot.unpark.num_calls()), (1, 4, 1));
    // A later replay finds nothing parked and sends nothing.
    let replay = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("a replay");
    assert!(!replay.notified);
    assert_eq!(publish.num_calls(), 4);
}

#[tokio::test]
async fn a_sweep_out_of_time_warns_under_its_own_kind() {
    let repos = repositories(&["builds/a"]);
    let incomplete = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| sk_of(r.item()) == "lifecycle-sweep-incomplete")
        .then_output(|| PutItemOutput::builder().build());
    let (get, publish) = (no_cursor(), publish());
    let lc = lifecycle(&[&repos], &[&incomplete, &get], &[&publish], &[], false);
    let outcome = lc
        .handle(sweep(), &testing::invocation_until(Some(SystemTime::now() + Duration::from_secs(5))))
        .await
        .expect("ok");
    assert_eq!(outcome.decision, "sweep-incomplete");
    assert!(outcome.notified);
    assert_eq!((incomplete.num_calls(), publish.num_calls()), (1, 1));
    assert!(warden::notify::KINDS.contains(&"lifecycle-sweep-incomplete"));
}

#[tokio::test]
async fn a_standing_dry_run_is_reported_when_it_changes_not_on_every_sweep() {
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    // cautious/tools is in dry run: 2 old images it would delete, 7 recent ones.
    let inventory: Vec<ImageDetail> =
        (40..42).map(|n| detail(n, &[], 60)).chain((50..57).map(|n| detail(n, &[], 1))).collect();
    let images = Arc::new(Mutex::new(inventory));
    let current = Arc::clone(&images);
    let describe = mock!(aws_sdk_ecr::Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder().set_image_details(Some(current.lock().expect("lock").clone())).build()
    });
    // The ledger's record of the plan last reported, with DynamoDB's conditional semantics.
    let reported: Arc<Mutex<Option<String>>> = Arc::default();
    let (seen, cleared) = (Arc::clone(&reported), Arc::clone(&reported));
    let is_plan = |pk: Option<&AttributeValue>| pk.and_then(|v| v.as_s().ok()).is_some_and(|k| k.starts_with("PLAN#"));
    let note = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| is_plan(r.item().and_then(|i| i.get("pk"))))
        .then_compute_response(move |r| {
            let fingerprint = r.item().and_then(|i| i.get("fingerprint")).and_then(|v| v.as_s().ok()).cloned();
            let mut last = seen.lock().expect("lock");
            if *last == fingerprint {
                let failed =
                    ConditionalCheckFailedException::builder().message("The conditional request failed").build();
                return aws_smithy_mocks::MockResponse::Error(PutItemError::ConditionalCheckFailedException(failed));
            }
            *last = fingerprint;
            aws_smithy_mocks::MockResponse::Output(PutItemOutput::builder().build())
        });
    let forget = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(move |r| is_plan(r.key().and_then(|k| k.get("pk"))))
        .then_output(move || {
            cleared.lock().expect("lock").take();
            DeleteItemOutput::builder().build()
        });
    let publish = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .output(|| PublishOutput::builder().message_id("m-1").build())
        .times(2)
        .http_status(sns_500().0, sns_500().1)
        .times(3)
        .output(|| PublishOutput::builder().message_id("m-2").build())
        .build();
    let repos = repositories(&["cautious/tools"]);
    let (claim, get, clear, coverage) = (claim(), no_cursor(), cursor_cleared(), no_coverage());
    let lc = lifecycle(&[&describe, &repos], &[&note, &forget, &claim, &get, &clear], &[&publish], &[&coverage], false);
    let sweep_item = || async {
        lc.handle(sweep(), &testing::invocation()).await.map(|o| o.items.into_iter().next().expect("an item"))
    };

    let first = sweep_item().await.expect("ok");
    assert_eq!((first.decision.as_str(), first.notified), ("would-delete", true));

    // The next day: the same plan. Nothing sent; the outcome says why.
    let again = sweep_item().await.expect("ok");
    assert_eq!((again.decision.as_str(), again.notified), ("would-delete", false));
    assert!(again.reasons.iter().any(|r| r.contains("reported within the last 7 days")), "{:?}", again.reasons);
    assert_eq!(publish.num_calls(), 1);

    // Another image ages into the plan in place of one that was deleted by hand: a different plan, reported.
    images.lock().expect("lock")[1] = detail(42, &[], 60);
    let changed = sweep_item().await.expect("ok");
    assert!(changed.notified);
    assert_eq!(publish.num_calls(), 2);

    // A report that fails is forgotten, so the retry reports it.
    images.lock().expect("lock")[1] = detail(43, &[], 60);
    let error = sweep_item().await.expect_err("SNS failing past the SDK's retries");
    assert!(error.is_retryable());
    assert_eq!((forget.num_calls(), reported.lock().expect("lock").clone()), (1, None));
    let retried = sweep_item().await.expect("the retry");
    assert!(retried.notified);
    assert_eq!(publish.num_calls(), 6);
}

#[tokio::test]
async fn a_policy_put_whose_answer_is_lost_is_reported_by_the_retry_that_finds_it() {
    // PutLifecyclePolicy lands but its answers are lost (500 each time): the invocation fails; the retry
    // finds the policy in place and sends what the first attempt parked.
    let policy = mock!(aws_sdk_ecr::Client::get_lifecycle_policy)
        .sequence()
        .error(|| {
            GetLifecyclePolicyError::LifecyclePolicyNotFoundException(
                LifecyclePolicyNotFoundException::builder().message("none").build(),
            )
        })
        .output(|| GetLifecyclePolicyOutput::builder().lifecycle_policy_text(NATIVE).build())
        .build();
    let put = mock!(aws_sdk_ecr::Client::put_lifecycle_policy)
        .sequence()
        .http_status(ecr_500().0, ecr_500().1)
        .times(3)
        .build();
    let lot = parking_lot("lifecycle-policy-applied");
    let (publish, empty) = (publish(), empty_inventory());
    let lc = lifecycle(&[&policy, &put, &empty], &lot.rules(), &[&publish], &[], false);

    let error = lc
        .handle(create_repository("builds/api"), &testing::invocation())
        .await
        .expect_err("the put's answers are lost");
    assert!(error.is_retryable(), "{error}");
    assert_eq!((put.num_calls(), publish.num_calls()), (3, 0));
    assert_eq!(lot.holds(), Some(("lifecycle-policy-applied".into(), "fixed".into())));

    let retried = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("the retry");
    assert_eq!(retried.decision, "baseline-ok");
    assert!(retried.notified);
    assert_eq!((put.num_calls(), publish.num_calls(), lot.unpark.num_calls()), (3, 1, 1));
}

#[tokio::test]
async fn a_sweep_failing_part_way_parks_the_policies_it_set() {
    // builds/a gets its policy; reading builds/b's fails past the SDK's retries. The retry finds builds/a in
    // order, so the parked summary is the only report of it.
    let missing_a = mock!(aws_sdk_ecr::Client::get_lifecycle_policy)
        .match_requests(|r| r.repository_name() == Some("builds/a"))
        .sequence()
        .error(|| {
            GetLifecyclePolicyError::LifecyclePolicyNotFoundException(
                LifecyclePolicyNotFoundException::builder().message("none").build(),
            )
        })
        .output(|| GetLifecyclePolicyOutput::builder().lifecycle_policy_text(NATIVE).build())
        .build();
    let failing_b = mock!(aws_sdk_ecr::Client::get_lifecycle_policy)
        .match_requests(|r| r.repository_name() == Some("builds/b"))
        .sequence()
        .http_status(ecr_500().0, ecr_500().1)
        .times(3)
        .output(|| GetLifecyclePolicyOutput::builder().lifecycle_policy_text(NATIVE).build())
        .build();
    let (repos, put, pages) = (repositories(&["builds/a", "builds/b"]), put_policy(), inventory(vec![vec![]]));
    let ecr: Vec<&Rule> = [&repos, &missing_a, &failing_b, &put].into_iter().chain(pages.iter()).collect();
    let lot = parking_lot("lifecycle-policy-applied:interrupted");
    let (get, publish) = (no_cursor(), publish());
    let dynamodb: Vec<&Rule> = lot.rules().into_iter().chain([&get]).collect();
    let lc = lifecycle(&ecr, &dynamodb, &[&publish], &[], false);

    let error = lc.handle(sweep(), &testing::invocation()).await.expect_err("builds/b unreadable");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(lot.holds(), Some(("lifecycle-policy-applied".into(), "fixed".into())));
    assert_eq!(publish.num_calls(), 0);

    let retried = lc.handle(sweep(), &testing::invocation()).await.expect("the retry");
    assert_eq!(retried.decision, "sweep-complete");
    assert!(retried.notified, "the parked summary of builds/a");
    assert_eq!((put.num_calls(), publish.num_calls(), lot.unpark.num_calls()), (1, 1, 1));
}

#[tokio::test]
async fn a_retry_that_puts_the_policy_itself_sends_the_news_once_and_leaves_nothing_parked() {
    use aws_sdk_ecr::operation::put_lifecycle_policy::PutLifecyclePolicyError;
    // Throttled past the SDK's retries: the put did not land. The retry puts it and finds the parked news.
    let missing = policy_missing();
    let put = mock!(aws_sdk_ecr::Client::put_lifecycle_policy)
        .sequence()
        .error(|| PutLifecyclePolicyError::generic(testing::error_code("ThrottlingException")))
        .times(3)
        .output(|| PutLifecyclePolicyOutput::builder().build())
        .build();
    let lot = parking_lot("lifecycle-policy-applied");
    let (publish, empty) = (publish(), empty_inventory());
    let lc = lifecycle(&[&missing, &put, &empty], &lot.rules(), &[&publish], &[], false);

    let error = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect_err("throttled");
    assert!(error.is_retryable(), "{error}");
    assert!(lot.holds().is_some());
    let retried = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("the retry");
    assert_eq!(retried.decision, "baseline-applied");
    assert!(retried.notified);
    assert_eq!((put.num_calls(), publish.num_calls(), lot.unpark.num_calls()), (4, 1, 1));
    assert_eq!(lot.holds(), None, "nothing left parked");
}

#[tokio::test]
async fn a_failed_push_or_an_unmanaged_repository_costs_nothing() {
    let lc = lifecycle(&[], &[], &[], &[], false);
    let mut failed = push("pushes/api");
    failed["detail"]["result"] = "FAILURE".into();
    let outcome = lc.handle(failed, &testing::invocation()).await.expect("skipped");
    assert_eq!(outcome.decision, "skipped");
    assert!(
        outcome.reasons.iter().any(|r| r.contains("push result is `FAILURE`, not SUCCESS")),
        "{:?}",
        outcome.reasons
    );
    let outcome = lc.handle(push("elsewhere/api"), &testing::invocation()).await.expect("skipped");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.aws_calls.is_empty());
}

#[tokio::test]
async fn what_a_killed_run_deleted_is_reported_once_by_the_next_run_and_only_what_is_gone() {
    // A run (event e-0, run r-1) journalled two images and was killed: one of them is gone, the other is not.
    let (gone, still_there, recent) = (digest(40), detail(41, &[], 60), detail(42, &["main"], 1));
    let journal = JournalStore::new();
    journal.holds("pushes/api", "r-1", "e-0", &[gone.clone(), digest(41)]);
    let images = vec![still_there, recent];
    let (describe, list, coverage) = (inventory(vec![images.clone()]), listing(&images), no_coverage());
    let claims = ClaimStore::new();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&messages);
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            seen.lock().expect("lock").push(r.message().unwrap_or_default().to_owned());
            true
        })
        .then_output(|| PublishOutput::builder().message_id("m").build());
    let delete = deletes(&[]);
    let ecr: Vec<&Rule> = describe.iter().chain([&list, &delete]).collect();
    let dynamodb: Vec<&Rule> = journal.rules().into_iter().chain(claims.rules()).collect();
    let lc = lifecycle(&ecr, &dynamodb, &[&publish], &[&coverage], false);

    let outcome = lc.handle(push("pushes/api"), &testing::invocation()).await.expect("ok");
    assert!(outcome.notified);
    let messages = messages.lock().expect("lock").clone();
    assert_eq!(messages.len(), 2, "the killed run's report, then this run's (it deletes the image still there)");
    let report: Value = serde_json::from_str(&messages[0]).expect("json");
    let text = report["default"].as_str().unwrap_or_default();
    assert!(text.contains(&gone) && text.contains("1 image deleted by a retention run that was cut short"), "{text}");
    assert!(!text.contains(&digest(41)), "what is still there is not reported as deleted: {text}");
    let json: Value = serde_json::from_str(report["sqs"].as_str().unwrap_or("{}")).unwrap_or_default();
    assert_eq!(json["event-id"], "e-0", "reported as the killed run's event: {json}");
    assert_eq!(journal.len(), 0);

    // Had the killed run published before it died, its claim would stand: the journal is cleared in silence.
    journal.holds("pushes/api", "r-2", "e-1", std::slice::from_ref(&gone));
    claims.take("e-1", "retention@pushes/api#r-2");
    let before = publish.num_calls();
    lc.handle(push("pushes/api"), &testing::invocation()).await.expect("ok");
    assert_eq!(publish.num_calls(), before + 1, "only this run's own report (it deletes again what is there)");
    assert_eq!(journal.len(), 0);
}

#[tokio::test]
async fn events_about_other_accounts_or_regions_are_refused_at_the_door() {
    let delete = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .then_output(|| aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput::builder().build());
    let lc = lifecycle(&[&delete], &[], &[], &[], false);
    for (account, region) in [("999999999999", "us-east-1"), ("123456789012", "eu-west-1")] {
        for mut event in [sweep(), push("pushes/api"), create_repository("builds/api")] {
            event["account"] = account.into();
            event["region"] = region.into();
            let outcome = lc.handle(event, &testing::invocation()).await.expect("skipped");
            assert_eq!(outcome.decision, "skipped", "{account} {region}");
            assert!(outcome.aws_calls.is_empty(), "{:?}", outcome.aws_calls);
        }
    }
    assert_eq!(delete.num_calls(), 0);
}

mod safety;
