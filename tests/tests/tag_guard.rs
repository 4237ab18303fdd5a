//! tag-guard end to end against moto: real repositories, images, ledger table and SNS → SQS delivery,
//! driven through the real handler with EventBridge events.

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::{self as common, Stack, image_action, invocation, unique};
use tag_guard::TagGuard;
use warden::aws::Clients;
use warden::aws::ledger::Ledger;
use warden::config::Config;
use warden::outcome::ActionResult;
use warden::policy::{EMBEDDED_POLICY, Policy};

const T1: &str = "2026-11-20T09:00:00Z";
const T2: &str = "2026-11-20T10:00:00Z";

fn guard(stack: &Stack) -> TagGuard {
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("valid policy");
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        dry_run: false,
        ..Config::default()
    };
    TagGuard::new(policy, config, Clients::new(&stack.sdk)).expect("guard")
}

fn attribute<'a>(message: &'a serde_json::Value, name: &str) -> &'a str {
    message["MessageAttributes"][name]["Value"].as_str().unwrap_or_default()
}

fn body(message: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(message["Message"].as_str().expect("Message")).expect("schema JSON")
}

#[tokio::test]
async fn conforming_push_is_recorded_quietly() {
    let stack = Stack::new().await;
    let guard = guard(&stack);
    let repo = unique("prod/api-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let digest = stack.push(&repo, "conforming", Some("v1.0.0")).await;
    let safety = stack.safety_snapshot(&repo).await;
    assert!(safety.guarded().contains_key(&digest), "a release is protected");

    let outcome =
        guard.handle(image_action("PUSH", &repo, &digest, Some("v1.0.0"), T1), &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "conforming");
    assert_eq!(outcome.total_aws_calls(), 1, "{:?}", outcome.aws_calls);
    let history = Ledger::new(aws_sdk_dynamodb::Client::new(&stack.sdk), &stack.table)
        .history(&repo, "v1.0.0")
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].what.as_str(), history[0].digest.as_str()), ("current", digest.as_str()));
    assert!(stack.messages().await.is_empty());
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn tag_not_allowed_is_removed_but_the_image_stays_reachable() {
    let stack = Stack::new().await;
    let guard = guard(&stack);
    let repo = unique("dev/web-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let digest = stack.push(&repo, "feature", Some("feature-x")).await;
    // Someone runs it: removing its only tag must never delete it.
    let safety = stack.safety_snapshot(&repo).await.in_use(&digest);
    let event = image_action("PUSH", &repo, &digest, Some("feature-x"), T1);

    let outcome = guard.handle(event.clone(), &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "not-allowed");
    assert!(outcome.actions.iter().all(|a| a.result == ActionResult::Done), "{:?}", outcome.actions);
    let quarantine = format!("quarantine-{}", &digest[7..19]);
    assert_eq!(
        stack.tags_of(&repo, &digest).await,
        Some(vec![quarantine.clone()]),
        "image kept, only under quarantine"
    );
    let messages = stack.messages().await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(attribute(message, "kind"), "tag-not-allowed");
    assert_eq!(attribute(message, "repository"), repo);
    assert_eq!(attribute(message, "outcome"), "untagged");
    assert_eq!(attribute(message, "severity"), "warning");
    assert!(message["Subject"].as_str().is_some_and(|s| s.len() < 100 && s.contains("tag not allowed")));
    let schema = body(message);
    assert_eq!(schema["schema"], warden::notify::SCHEMA);
    assert_eq!(schema["tags"][0], "feature-x");
    assert_eq!(schema["digest"], digest);

    // EventBridge delivers again: same state, no second message.
    let replay = guard.handle(event, &invocation()).await.expect("replayed");
    assert_eq!(replay.decision, "skipped");
    assert_eq!(stack.tags_of(&repo, &digest).await, Some(vec![quarantine]));
    assert!(stack.messages().await.is_empty(), "no duplicate notification");
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn protected_tag_move_in_a_mutable_repository_is_reverted() {
    let stack = Stack::new().await;
    let guard = guard(&stack);
    let repo = unique("prod/payments-");
    // Created before ecr-warden was deployed: mutable, so ECR lets the tag move.
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let original = stack.push(&repo, "release", Some("v1.4.2")).await;
    // CI tags releases with the commit too. (It also keeps moto from deleting the image when `v1.4.2` moves:
    // moto drops an image whose only tag moves away, where ECR keeps it untagged. The untagged case against
    // real ECR behaviour is tag-guard's aws-smithy-mocks test `protected_tag_move_is_reverted`.)
    stack.push(&repo, "release", Some("sha-1a2b3c4")).await;
    guard.handle(image_action("PUSH", &repo, &original, Some("v1.4.2"), T1), &invocation()).await.expect("first push");
    let moved = stack.push(&repo, "hotfix", Some("v1.4.2")).await;
    assert_eq!(stack.tag_digest(&repo, "v1.4.2").await.as_deref(), Some(moved.as_str()), "moto let the tag move");
    // Both images matter: the original release, and the pushed one (it holds the protected tag now).
    let safety = stack.safety_snapshot(&repo).await.in_use(&original);
    assert!(safety.guarded().contains_key(&moved));
    let event = image_action("PUSH", &repo, &moved, Some("v1.4.2"), T2);

    let outcome = guard.handle(event.clone(), &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "protected-tag-moved");
    assert!(outcome.actions.iter().all(|a| a.result == ActionResult::Done), "{:?}", outcome.actions);
    assert_eq!(stack.tag_digest(&repo, "v1.4.2").await.as_deref(), Some(original.as_str()), "tag moved back");
    let quarantine = format!("quarantine-{}", &moved[7..19]);
    assert_eq!(stack.tags_of(&repo, &moved).await, Some(vec![quarantine]), "pushed image kept for inspection");
    let messages = stack.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(attribute(&messages[0], "kind"), "protected-tag-moved");
    assert_eq!(attribute(&messages[0], "severity"), "critical");
    assert_eq!(attribute(&messages[0], "outcome"), "reverted");

    let history = Ledger::new(aws_sdk_dynamodb::Client::new(&stack.sdk), &stack.table)
        .history(&repo, "v1.4.2")
        .await
        .expect("history");
    let kinds: Vec<&str> = history.iter().map(|h| h.what.as_str()).collect();
    assert_eq!(kinds, vec!["reverted", "current"]);
    assert_eq!(history[1].digest, original);

    // The revert's own PUSH event, and a replay of the move, change nothing and say nothing.
    let echo = guard
        .handle(image_action("PUSH", &repo, &original, Some("v1.4.2"), "2026-11-20T10:00:01Z"), &invocation())
        .await
        .expect("echo");
    assert_eq!(echo.decision, "conforming");
    let replay = guard.handle(event, &invocation()).await.expect("replay");
    assert_eq!(replay.decision, "skipped");
    assert_eq!(stack.tag_digest(&repo, "v1.4.2").await.as_deref(), Some(original.as_str()));
    assert!(stack.messages().await.is_empty());
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn new_repository_gets_its_class_tag_mutability() {
    let stack = Stack::new().await;
    let guard = guard(&stack);
    let repo = unique("prod/worker-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    stack.push(&repo, "worker", Some("v0.9.0")).await;
    let safety = stack.safety_snapshot(&repo).await;
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../events/cloudtrail-create-repository.json")).expect("sample");
    event["detail"]["requestParameters"]["repositoryName"] = repo.clone().into();
    event["id"] = unique("event-").into();

    let outcome = guard.handle(event.clone(), &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "settings-drift");
    let described = stack.ecr.describe_repositories().repository_names(&repo).send().await.expect("describe");
    let repository = &described.repositories()[0];
    assert_eq!(repository.image_tag_mutability(), Some(&ImageTagMutability::MutableWithExclusion));
    let filters: Vec<&str> = repository.image_tag_mutability_exclusion_filters().iter().map(|f| f.filter()).collect();
    assert_eq!(filters, vec!["v*.*.*"]);
    assert_eq!(stack.messages().await.len(), 1);

    let again = guard.handle(event, &invocation()).await.expect("replay");
    assert_eq!(again.decision, "settings-ok");
    assert!(stack.messages().await.is_empty());
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn sweep_fixes_drift_with_one_summary() {
    let stack = Stack::new().await;
    let guard = guard(&stack);
    let (a, b, sandbox) = (unique("prod/a-"), unique("misc/b-"), unique("sandbox/c-"));
    let mut safety = Vec::new();
    for repo in [&a, &b, &sandbox] {
        stack.create_repository(repo, ImageTagMutability::Mutable).await;
        stack.push(repo, "release", Some("v2.0.0")).await;
        safety.push(stack.safety_snapshot(repo).await);
    }
    let sweep = serde_json::json!({
        "version": "0", "id": unique("sweep-"), "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "account": common::ACCOUNT, "time": T1, "region": "us-east-1",
        "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/ecr-warden-sweep"],
        "detail": serde_json::json!({"repositories": [a, b, sandbox]}).to_string()
    });

    let outcome = guard.handle(sweep, &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "settings-drift");
    assert_eq!(outcome.items.len(), 2, "{:?}", outcome.items);
    assert_eq!(outcome.actions.len(), 1, "only the `revert` class is fixed: {:?}", outcome.actions);
    let mode = |repo: String| {
        let ecr = stack.ecr.clone();
        async move {
            let out = ecr.describe_repositories().repository_names(repo).send().await.expect("describe");
            out.repositories()[0].image_tag_mutability().cloned()
        }
    };
    assert_eq!(mode(a).await, Some(ImageTagMutability::MutableWithExclusion));
    assert_eq!(mode(b).await, Some(ImageTagMutability::Mutable), "default class `standard` only reports");
    assert_eq!(mode(sandbox).await, Some(ImageTagMutability::Mutable), "unmanaged: untouched");
    let messages = stack.messages().await;
    assert_eq!(messages.len(), 1, "one summary, not one message per repository");
    assert_eq!(body(&messages[0])["reasons"].as_array().map(Vec::len), Some(2));
    for guard in &safety {
        guard.assert_nothing_unsafe_deleted(&stack).await;
    }
}

#[tokio::test]
async fn events_for_deleted_repositories_are_skipped() {
    let stack = Stack::new().await;
    let guard = guard(&stack);
    let repo = unique("dev/gone-");
    let digest = common::digest_of(&common::manifest("gone"));
    let safety = stack.safety_snapshot(&repo).await;
    let outcome =
        guard.handle(image_action("PUSH", &repo, &digest, Some("bad-tag"), T1), &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons[0].contains("no longer exists"), "{:?}", outcome.reasons);
    assert!(stack.messages().await.is_empty());
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

/// A legitimate move (a botched release replaced under change control) accepted with `warden tags accept`:
/// the ledger records the new image, naming who and why, and tag-guard no longer reverts the move.
#[tokio::test]
async fn an_accepted_move_is_recorded_with_who_and_why_and_not_reverted() {
    use warden::aws::accept::{Accepted, accept};
    let stack = Stack::new().await;
    let guard = guard(&stack);
    let repo = unique("prod/billing-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let original = stack.push(&repo, "release", Some("v2.0.0")).await;
    stack.push(&repo, "release", Some("sha-0a0b0c0")).await;
    guard.handle(image_action("PUSH", &repo, &original, Some("v2.0.0"), T1), &invocation()).await.expect("first push");
    let replaced = stack.push(&repo, "release-fixed", Some("v2.0.0")).await;
    stack.push(&repo, "release-fixed", Some("sha-0d0e0f0")).await;
    let ledger = Ledger::new(aws_sdk_dynamodb::Client::new(&stack.sdk), &stack.table);
    let who = ("arn:aws:iam::123456789012:user/release-manager", "CHG-42: v2.0.0 rebuilt with the signed base image");

    let accepted = accept(&stack.ecr, &ledger, (&repo, "v2.0.0", None), who, "2026-11-20T09:30:00Z").await;

    let Ok(Accepted::Moved { previous, digest }) = accepted else { panic!("{accepted:?}") };
    assert_eq!((previous.map(|p| p.digest), digest.as_str()), (Some(original.clone()), replaced.as_str()));
    let outcome = guard.handle(image_action("PUSH", &repo, &replaced, Some("v2.0.0"), T2), &invocation()).await;
    assert_eq!(outcome.expect("handled").decision, "conforming", "the accepted image is the recorded one");
    assert_eq!(stack.tag_digest(&repo, "v2.0.0").await.as_deref(), Some(replaced.as_str()), "not reverted");
    assert!(stack.messages().await.is_empty(), "nothing to tell");
    let history = ledger.history(&repo, "v2.0.0").await.expect("history");
    let accepted = history.iter().find(|h| h.what == "accepted").expect("accepted entry");
    assert_eq!(accepted.digest, replaced);
    assert!(accepted.detail.contains("user/release-manager") && accepted.detail.contains("CHG-42"), "{accepted:?}");
    assert!(accepted.detail.contains(&format!("was {original}")));

    let again = accept(&stack.ecr, &ledger, (&repo, "v2.0.0", None), who, "2026-11-20T11:00:00Z").await;
    assert_eq!(again.expect("again"), Accepted::AlreadyRecorded { digest: replaced });
    let missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let nowhere = accept(&stack.ecr, &ledger, (&repo, "v2.0.0", Some(missing)), who, "2026-11-20T11:00:00Z").await;
    assert!(nowhere.expect_err("no such image").to_string().contains("nothing to accept"));
}

/// Day one: release tags that existed before ecr-warden (no push event ever reached it) are unknown to the
/// ledger, so the first move of one would pass as a first sighting. One sweep records every one of them where it
/// points; the later move is then reverted. The class protects its tags with a regular expression, which ECR's
/// tag mutability cannot express: the ledger is the only protection.
#[tokio::test]
async fn one_sweep_makes_pre_existing_release_tags_known_and_a_later_move_is_reverted() {
    let stack = Stack::new().await;
    let legacy = "[[class]]\nname = \"legacy\"\nrepositories = [\"legacy/*\"]\n[class.tags]\n\
        allowed = [\"regex:v[0-9]+\\\\.[0-9]+\\\\.[0-9]+\", \"sha-*\", \"latest\"]\n\
        protected = [\"regex:v[0-9]+\\\\.[0-9]+\\\\.[0-9]+\"]\nmutable = [\"latest\"]\nremediation = \"revert\"\n";
    let policy = Policy::from_toml(&format!("{EMBEDDED_POLICY}\n{legacy}"), "warden.toml").expect("valid policy");
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        ..Config::default()
    };
    let guard = TagGuard::new(policy.clone(), config, Clients::new(&stack.sdk)).expect("guard");
    let (repo, other) = (unique("legacy/api-"), unique("legacy/worker-"));
    let mut released = Vec::new();
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    for (n, version) in ["v1.0.0", "v1.1.0", "v2.0.0"].into_iter().enumerate() {
        let digest = stack.push(&repo, version, Some(version)).await;
        stack.push(&repo, version, Some(&format!("sha-00{n}"))).await;
        released.push((version, digest));
    }
    stack.create_repository(&other, ImageTagMutability::Mutable).await;
    let worker = stack.push(&other, "worker", Some("v3.0.0")).await;
    let safety = stack.safety_snapshot_with(&repo, &policy).await;
    let ledger = Ledger::new(aws_sdk_dynamodb::Client::new(&stack.sdk), &stack.table);
    assert_eq!(ledger.current(&repo, "v1.0.0").await.expect("read"), None, "unknown before the sweep");
    let sweep = |id: &str| {
        serde_json::json!({
            "version": "0", "id": unique(id), "detail-type": "Scheduled Event", "source": "aws.scheduler",
            "account": common::ACCOUNT, "time": T1, "region": "us-east-1",
            "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/ecr-warden-sweep"],
            "detail": serde_json::json!({"repositories": [repo]}).to_string()
        })
    };

    let outcome = guard.handle(sweep("sweep-"), &invocation()).await.expect("handled");

    assert!(outcome.reasons.iter().any(|r| r.contains("backfill: 3 of 3 protected tags")), "{:?}", outcome.reasons);
    let denied = integration_tests::calls_its_role_denies("TagGuard", outcome.aws_calls.keys());
    assert!(denied.is_empty(), "the sweep's calls its role does not allow: {denied:?}");
    for (version, digest) in &released {
        let current = ledger.current(&repo, version).await.expect("read").expect("known after one sweep");
        assert_eq!(&current.digest, digest, "{version}");
        let history = ledger.history(&repo, version).await.expect("history");
        assert_eq!(history.iter().map(|h| h.what.as_str()).collect::<Vec<_>>(), ["backfilled", "current"]);
    }
    assert!(stack.messages().await.is_empty(), "a backfill is not news");
    let again = guard.handle(sweep("sweep-again-"), &invocation()).await.expect("handled");
    assert!(!again.reasons.iter().any(|r| r.contains("backfill:")), "known: nothing written {:?}", again.reasons);
    assert_eq!(again.aws_calls.get("DynamoDB.TransactWriteItems"), None, "{:?}", again.aws_calls);

    let moved = stack.push(&repo, "hotfix", Some("v1.0.0")).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let outcome =
        guard.handle(image_action("PUSH", &repo, &moved, Some("v1.0.0"), &now), &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "protected-tag-moved", "{:?}", outcome.reasons);
    assert_eq!(stack.tag_digest(&repo, "v1.0.0").await.as_deref(), Some(released[0].1.as_str()), "moved back");

    // `warden tags backfill` on its own does the same for a repository the sweep did not name.
    let rules = match policy.classify(&other) {
        warden::policy::Classification::Managed(class) => class.tags.clone().expect("tag rules"),
        warden::policy::Classification::Unmanaged(_) => panic!("legacy is managed"),
    };
    let done = warden::aws::backfill::backfill_repository(&stack.ecr, &ledger, (&other, &rules), (T2, "cli"), None)
        .await
        .expect("backfilled");
    let warden::aws::Found::Yes(done) = done else { panic!("{done:?}") };
    assert_eq!(done.recorded, [("v3.0.0".to_owned(), worker.clone())]);
    assert_eq!(ledger.current(&other, "v3.0.0").await.expect("read").map(|p| p.digest), Some(worker));
    safety.assert_nothing_unsafe_deleted(&stack).await;
}
