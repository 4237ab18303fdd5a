//! Deletion and change safety (aws-smithy-mocks): native policies only where a class says `apply`, and never one
//! that would expire what the class protects; retention that keeps what nobody can vouch is unused, keeps
//! referrers and recent pulls; the sweep's own caps; deletion bounded by the deadline batch by batch; expiry by
//! last pull with archived and never-pulled images.

use super::*;
use aws_sdk_ecr::types::ImageStatus;
use aws_sdk_inspector2::operation::list_coverage::ListCoverageError;

const SAFETY: &str = r#"
version = 1
default-class = "unmanaged"

[[class]]
name = "observed"
repositories = ["observed/*"]

[[class.lifecycle.native]]
rulePriority = 1
selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 3 }
action = { type = "expire" }

[[class]]
name = "risky"
repositories = ["risky/*"]

[class.tags]
allowed = ["v*", "sha-*"]
protected = ["v*"]
remediation = "report"

[class.lifecycle]
apply = true

[[class.lifecycle.native]]
rulePriority = 1
description = "the classic mistake"
selection = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 2 }
action = { type = "expire" }

[[class]]
name = "covered"
repositories = ["covered/*"]

[class.lifecycle.retention]
apply = true
max-images = 1000
max-fraction = 1.0

[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "untagged"
count-type = "since-image-pushed"
count = 3

[[class]]
name = "pulled"
repositories = ["pulled/*"]

[class.lifecycle.retention]
apply = true
max-images = 1000
max-fraction = 1.0
require-in-use-coverage = false

[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "any"
count-type = "since-image-pulled"
count = 30

[limits]
sweep-max-deleted-images = 120
"#;

fn kinds_published(messages: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    messages
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter_map(|m| serde_json::from_str::<Value>(m["sqs"].as_str()?).ok())
        .filter_map(|body| body["kind"].as_str().map(str::to_owned))
        .collect()
}

fn recording_publish() -> (Rule, Arc<Mutex<Vec<String>>>) {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&messages);
    let rule = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            seen.lock().expect("lock").push(r.message().unwrap_or_default().to_owned());
            true
        })
        .then_output(|| PublishOutput::builder().message_id("m").build());
    (rule, messages)
}

#[tokio::test]
async fn a_class_without_apply_reports_native_drift_and_puts_nothing() {
    let (missing, put, claim) = (policy_missing(), put_policy(), claim());
    let (publish, messages) = recording_publish();
    let lc = lifecycle_with(SAFETY, &[&missing, &put], &[&claim], &[&publish], &[], false);
    let outcome = lc.handle(create_repository("observed/api"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "baseline-drift");
    assert_eq!(outcome.actions[0].result, ActionResult::DryRun);
    assert_eq!(put.num_calls(), 0, "nothing put");
    assert_eq!(kinds_published(&messages), vec!["lifecycle-policy-drift"]);
    assert!(warden::notify::KINDS.contains(&"lifecycle-policy-drift"));
}

#[tokio::test]
async fn dry_run_puts_no_native_policy_either() {
    let (missing, put, claim, publish) = (policy_missing(), put_policy(), claim(), publish());
    let lc = lifecycle(&[&missing, &put], &[&claim], &[&publish], &[], true);
    let outcome = lc.handle(create_repository("builds/api"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.actions[0].result, ActionResult::DryRun);
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn a_native_policy_that_would_expire_protected_images_is_refused() {
    // Four images: a release, a commit build, and two untagged leftovers; "keep 2 of anything" would expire the
    // release and the build. The release is protected: the policy is not put, and operators hear why.
    let images = vec![detail(1, &["sha-1"], 40), detail(2, &["v1.0.0"], 30), detail(3, &[], 20), detail(4, &[], 10)];
    let pages = inventory(vec![images]);
    let (missing, put, claim, coverage) = (policy_missing(), put_policy(), claim(), no_coverage());
    let (publish, messages) = recording_publish();
    let ecr: Vec<&Rule> = pages.iter().chain([&missing, &put]).collect();
    let lc = lifecycle_with(SAFETY, &ecr, &[&claim], &[&publish], &[&coverage], false);
    let outcome = lc.handle(create_repository("risky/api"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "baseline-refused");
    assert_eq!(put.num_calls(), 0, "ECR never gets the policy");
    let refusal = outcome.reasons.iter().find(|r| r.contains(&digest(2))).expect("the release is named");
    assert!(refusal.contains("rule 1 would expire") && refusal.contains("protected tag v1.0.0"), "{refusal}");
    assert!(!outcome.reasons.iter().any(|r| r.contains(&digest(1))), "sha-1 is not protected: {:?}", outcome.reasons);
    assert_eq!(kinds_published(&messages), vec!["lifecycle-policy-refused"]);
    // The policy check says so at load, too.
    assert!(
        lc.base.policy.warnings.iter().any(|w| w.message.contains("tagStatus any")),
        "{:?}",
        lc.base.policy.warnings
    );
}

fn covering(digests: &'static [usize]) -> Rule {
    mock!(aws_sdk_inspector2::Client::list_coverage).then_output(move || {
        let resources = digests.iter().map(|n| {
            CoveredResource::builder()
                .resource_type(CoverageResourceType::AwsEcrContainerImage)
                .resource_id(format!("arn:aws:ecr:us-east-1:123456789012:repository/covered/api/{}", digest(*n)))
                .account_id("123456789012")
                .scan_type(ScanType::Package)
                .resource_metadata(
                    ResourceScanMetadata::builder()
                        .ecr_image(EcrContainerImageMetadata::builder().in_use_count(0).build())
                        .build(),
                )
                .build()
                .expect("resource")
        });
        ListCoverageOutput::builder().set_covered_resources(Some(resources.collect())).build()
    })
}

#[tokio::test]
async fn retention_keeps_what_inspector_cannot_vouch_is_unused() {
    let images: Vec<ImageDetail> = (10..14).map(|n| detail(n, &[], 30)).collect();
    let run = |coverage: Rule| {
        let images = images.clone();
        async move {
            let (pages, list, repos, delete) =
                (inventory(vec![images.clone()]), listing(&images), repositories(&["covered/api"]), deletes(&[]));
            let ecr: Vec<&Rule> = pages.iter().chain([&list, &repos, &delete]).collect();
            let (claim, publish) = (claim(), publish());
            let lc = lifecycle_with(SAFETY, &ecr, &[&claim], &[&publish], &[&coverage], false);
            let outcome = lc.handle(sweep(), &testing::invocation()).await.expect("ok");
            let item = outcome.items.into_iter().find(|i| i.repository.as_deref() == Some("covered/api"));
            (item.unwrap_or_default(), delete.num_calls())
        }
    };
    // Inspector covers two of the four: only those can be known unused.
    let (item, _) = run(covering(&[10, 11])).await;
    let mut deleted = deleted_digests(&item);
    deleted.sort();
    assert_eq!(deleted, vec![digest(10), digest(11)]);
    assert!(item.reasons.iter().any(|r| r.contains("not known to be unused")), "{:?}", item.reasons);
    // Inspector's coverage cannot be read (access denied): nothing is deleted, nothing fails.
    let denied = mock!(aws_sdk_inspector2::Client::list_coverage)
        .then_error(|| ListCoverageError::generic(testing::error_code("AccessDeniedException")));
    let (item, deletes) = run(denied).await;
    assert_eq!(deletes, 0, "a denied read never counts as unused");
    assert_eq!(item.decision, "held-back", "operators hear that retention is held back, and why");
    assert!(item.reasons.iter().any(|r| r.contains("could not be read")), "{:?}", item.reasons);
    assert!(item.notified);
}

/// An image of `pulled/api` pushed `days` ago, last pulled `pulled` days ago, archived `archived` days ago.
fn pulled_detail(n: usize, days: i64, pulled: Option<i64>, archived: Option<i64>) -> ImageDetail {
    let mut builder = ImageDetail::builder()
        .image_digest(digest(n))
        .image_tags(format!("build-{n}"))
        .image_pushed_at(DateTime::from_secs(now() - days * DAY))
        .image_manifest_media_type(MANIFEST)
        .set_last_recorded_pull_time(pulled.map(|p| DateTime::from_secs(now() - p * DAY)));
    if let Some(at) = archived {
        builder = builder.image_status(ImageStatus::Archived).last_archived_at(DateTime::from_secs(now() - at * DAY));
    }
    builder.build()
}

#[tokio::test]
async fn retention_deletes_by_last_pull_including_archived_and_never_pulled_images() {
    let images = vec![
        pulled_detail(1, 200, Some(5), None), // pulled last week: kept (in use, and within 30 days)
        pulled_detail(2, 200, Some(60), None), // last pulled two months ago: goes
        pulled_detail(3, 200, None, None),    // never pulled, pushed long ago: counts from the push: goes
        pulled_detail(4, 10, None, None),     // never pulled, pushed 10 days ago: kept
        pulled_detail(5, 400, Some(200), Some(120)), // archived 120 days ago (billed minimum over): goes
        pulled_detail(6, 400, Some(200), Some(30)), // archived a month ago: kept (90-day minimum)
    ];
    let output = listing_of(&images);
    let list = mock!(aws_sdk_ecr::Client::list_images)
        .match_requests(|r| {
            r.filter().and_then(|f| f.image_status()) == Some(&aws_sdk_ecr::types::ImageStatusFilter::Any)
        })
        .then_output(move || output.clone());
    let (pages, repos, delete) = (inventory(vec![images.clone()]), repositories(&["pulled/api"]), deletes(&[]));
    let ecr: Vec<&Rule> = pages.iter().chain([&list, &repos, &delete]).collect();
    let (claim, publish, coverage) = (claim(), publish(), no_coverage());
    let lc = lifecycle_with(SAFETY, &ecr, &[&claim], &[&publish], &[&coverage], false);
    let outcome = lc.handle(sweep(), &testing::invocation()).await.expect("ok");
    let item = outcome.items.iter().find(|i| i.repository.as_deref() == Some("pulled/api")).expect("ran");
    let mut deleted = deleted_digests(item);
    deleted.sort();
    assert_eq!(deleted, vec![digest(2), digest(3), digest(5)], "{:?}", item.reasons);
    assert!(
        item.reasons.iter().any(|r| r.contains(&digest(6)) && r.contains("archived less than 90 days")),
        "{:?}",
        item.reasons
    );
    // The archived image is deleted although ListImages (ACTIVE by default) would not list it: the re-read before
    // deleting asks for every storage class.
    assert!(item.actions.iter().any(|a| a.action.contains(&digest(5)) && a.result == ActionResult::Done));
}

#[tokio::test]
async fn a_sweep_deletes_no_more_than_its_limit() {
    // 150 untagged images older than the rule in covered/api (all covered, none in use); the sweep's limit is 120.
    let images: Vec<ImageDetail> = (0..150).map(|n| detail(n, &[], 30)).collect();
    let all: &'static [usize] = Box::leak((0..150).collect::<Vec<usize>>().into_boxed_slice());
    let (pages, list, repos, delete, coverage) = (
        inventory(vec![images.clone()]),
        listing(&images),
        repositories(&["covered/api"]),
        deletes(&[]),
        covering(all),
    );
    let ecr: Vec<&Rule> = pages.iter().chain([&list, &repos, &delete]).collect();
    let (claim, publish) = (claim(), publish());
    let lc = lifecycle_with(SAFETY, &ecr, &[&claim], &[&publish], &[&coverage], false);
    let outcome = lc.handle(sweep(), &testing::invocation()).await.expect("ok");
    let item = outcome.items.iter().find(|i| i.repository.as_deref() == Some("covered/api")).expect("ran");
    assert_eq!(deleted_digests(item).len(), 120);
    assert!(item.reasons.iter().any(|r| r.contains("sweep-max-deleted-images")), "{:?}", item.reasons);
}

#[tokio::test]
async fn deletion_stops_between_batches_when_the_deadline_nears_and_reports_what_it_did() {
    // 250 old untagged images in builds/api; the deadline comes during the first batch: that batch is finished
    // and reported, the other two are left, and the sweep records builds/api's retention as where to resume.
    let images: Vec<ImageDetail> = (0..250).map(|n| detail(n, &[], 40)).collect();
    let (pages, list, repos, same, coverage) = (
        inventory(vec![images.clone()]),
        listing(&images),
        repositories(&["builds/api"]),
        policy_is(NATIVE),
        no_coverage(),
    );
    // The first BatchDeleteImage takes until the deadline is close.
    let slow = mock!(aws_sdk_ecr::Client::batch_delete_image).then_compute_response(|_| {
        std::thread::sleep(Duration::from_millis(1_200));
        aws_smithy_mocks::MockResponse::Output(BatchDeleteImageOutput::builder().build())
    });
    let saved = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&saved);
    let cursor = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| {
            let is_cursor = sk_of(r.item()) == "CURSOR";
            if is_cursor {
                let phase = r.item().and_then(|i| i.get("phase")).and_then(|v| v.as_s().ok()).cloned();
                record.lock().expect("lock").push(phase.unwrap_or_default());
            }
            is_cursor
        })
        .then_output(|| PutItemOutput::builder().build());
    let ecr: Vec<&Rule> = pages.iter().chain([&list, &repos, &same, &slow]).collect();
    let (claim, publish) = (claim(), publish());
    let lc = lifecycle(&ecr, &[&cursor, &claim], &[&publish], &[&coverage], false);
    // The margin is 60 s: a deadline 61 s away leaves one second of work.
    let deadline = Some(SystemTime::now() + SWEEP_MARGIN + Duration::from_secs(1));
    let outcome = lc.handle(sweep(), &testing::invocation_until(deadline)).await.expect("ok");
    assert_eq!(outcome.decision, "sweep-incomplete");
    let run = outcome.items.iter().find(|i| i.decision == "deleted").expect("the first batch");
    assert_eq!(deleted_digests(run).len(), 100);
    assert_eq!(slow.num_calls(), 1, "no batch starts after the deadline nears");
    assert!(run.reasons.iter().any(|r| r.contains("150 images (2 batches) left")), "{:?}", run.reasons);
    assert!(run.notified, "what was deleted is reported");
    assert_eq!(saved.lock().expect("lock").last().map(String::as_str), Some("retention"), "resume at its retention");
}

#[tokio::test]
async fn a_policy_put_by_an_attempt_killed_before_it_told_is_reported_by_the_retry() {
    // The attempt noted the put, put the policy, and died before claiming its news: the retry finds the
    // policy in place and, by the note of this event, knows it was this event's change.
    let event = create_repository("builds/api");
    let event_id = event["id"].as_str().expect("id").to_owned();
    let current = policy_is(NATIVE);
    let noted = mock!(aws_sdk_dynamodb::Client::query)
        .match_requests(|r| {
            r.expression_attribute_values().and_then(|v| v.get(":pk")).and_then(|v| v.as_s().ok())
                == Some(&"INTENT#lifecycle".to_owned())
        })
        .then_output(move || {
            QueryOutput::builder()
                .items(HashMap::from([("sk".to_owned(), AttributeValue::S(format!("{event_id}#builds/api")))]))
                .build()
        });
    let cleared = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| {
            r.key().and_then(|k| k.get("pk")).and_then(|v| v.as_s().ok()) == Some(&"INTENT#lifecycle".to_owned())
        })
        .then_output(|| DeleteItemOutput::builder().build());
    let (claimed, (publish, kinds)) = (claim(), recording_publish());
    let lc = lifecycle(&[&current], &[&noted, &cleared, &claimed], &[&publish], &[], false);
    let outcome = lc.handle(event.clone(), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "baseline-applied", "{outcome:?}");
    assert_eq!(kinds_published(&kinds), vec!["lifecycle-policy-applied"]);
    assert_eq!(cleared.num_calls(), 1, "the note is removed once the news is out");

    // Without the note (the policy was there before this event), nothing is claimed for it.
    let (current, (publish, kinds)) = (policy_is(NATIVE), recording_publish());
    let lc = lifecycle(&[&current], &[], &[&publish], &[], false);
    let outcome = lc.handle(event, &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "baseline-ok");
    assert!(kinds_published(&kinds).is_empty());
}

#[tokio::test]
async fn a_sweep_another_request_is_running_is_left_to_it() {
    // A duplicate delivery of the schedule, or an overlapping one: the sweep's lease is held by another request.
    let held = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item()
                .and_then(|i| i.get("pk"))
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("LEASE#sweep#"))
        })
        .then_error(|| {
            use aws_sdk_dynamodb::operation::put_item::PutItemError;
            use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
            let other = ConditionalCheckFailedException::builder().item("claim", AttributeValue::S("theirs".into()));
            PutItemError::ConditionalCheckFailedException(other.build())
        });
    let clients = testing::clients_with_leases(&[], &[], &[], Retries::None, &[&held]);
    let inspector = testing::inspector(&[], &clients, Retries::None);
    let policy = Policy::from_toml(POLICY, "test.toml").expect("policy");
    let lc = Lifecycle::new(policy, testing::config(), clients, inspector).expect("init");
    let outcome = lc.handle(sweep(), &testing::invocation()).await.expect("not an error: the other sweep works");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons[0].contains("another sweep"), "{:?}", outcome.reasons);
    assert_eq!(calls(&outcome), BTreeMap::from([("DynamoDB.PutItem", 1)]), "nothing read, nothing moved");
}
