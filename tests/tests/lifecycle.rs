//! lifecycle end to end against moto: the class's native policy set on a new repository and restored after
//! drift by the sweep, and extended retention deleting for real (keep-N per pull request, untagged strays)
//! while the release and the children of its multi-architecture index stay; a dry-run plan reported once until
//! it changes.

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::{Stack, envelope, invocation, unique};
use lifecycle::Lifecycle;
use std::time::Duration;
use warden::aws::Clients;
use warden::config::Config;
use warden::outcome::ActionResult;
use warden::policy::Policy;

const POLICY: &str = r#"
version = 1
default-class = "unmanaged"

[[class]]
name = "ci"
repositories = ["ci/*"]

[class.tags]
allowed = ["v*.*.*", "regex:pr-[0-9]+-[0-9]+"]
protected = ["v*.*.*"]
remediation = "report"

[class.lifecycle]
apply = true

[[class.lifecycle.native]]
rulePriority = 1
description = "untagged after 7 days"
selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 7 }
action = { type = "expire" }

[class.lifecycle.retention]
apply = true
protect-in-use = false
# The images here are seconds old; the default holds back anything younger than a day.
protect-younger-than-days = 0
max-fraction = 0.9

[[class.lifecycle.retention.rule]]
priority = 1
description = "newest build of each pull request"
tag-status = "tagged"
tags = ["regex:pr-[0-9]+-[0-9]+"]
group-by = "^(pr-[0-9]+)-"
count-type = "image-count-more-than"
count = 1

[[class.lifecycle.retention.rule]]
priority = 2
description = "one untagged image at most"
tag-status = "untagged"
count-type = "image-count-more-than"
count = 1
"#;

/// A class whose retention only reports (no `apply`): one untagged image at most.
const PREVIEW: &str = r#"
[[class]]
name = "preview"
repositories = ["preview/*"]

[class.lifecycle.retention]
protect-in-use = false
protect-younger-than-days = 0
max-fraction = 1.0

[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "untagged"
count-type = "image-count-more-than"
count = 1
"#;

fn lifecycle(stack: &Stack) -> Lifecycle {
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        ..Config::default()
    };
    let clients = Clients::new(&stack.sdk);
    let inspector = clients.inspector(&stack.inspector_sdk());
    Lifecycle::new(policy(), config, clients, inspector).expect("init")
}

fn policy() -> Policy {
    Policy::from_toml(&format!("{POLICY}{PREVIEW}"), "test.toml").expect("policy")
}

fn create_repository_event(repository: &str) -> serde_json::Value {
    envelope(
        "aws.ecr",
        "AWS API Call via CloudTrail",
        serde_json::json!({
            "eventSource": "ecr.amazonaws.com", "eventName": "CreateRepository", "awsRegion": "us-east-1",
            "requestParameters": {"repositoryName": repository},
            "responseElements": {"repository": {"repositoryName": repository}}
        }),
    )
}

fn sweep_event(repository: &str) -> serde_json::Value {
    envelope("aws.scheduler", "Scheduled Event", serde_json::json!({ "repositories": [repository] }))
}

#[tokio::test]
async fn native_policy_on_creation_and_after_drift() {
    let stack = Stack::new().await;
    let lifecycle = lifecycle(&stack);
    let repo = unique("ci/api-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;

    let outcome = lifecycle.handle(create_repository_event(&repo), &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "baseline-applied", "{outcome:?}");
    let applied = stack.lifecycle_policy(&repo).await.expect("policy set");
    let document: serde_json::Value = serde_json::from_str(&applied).expect("json");
    assert_eq!(document["rules"][0]["selection"]["countNumber"], 7);

    // Replayed: nothing to do, nothing sent again.
    let again = lifecycle.handle(create_repository_event(&repo), &invocation()).await.expect("handled");
    assert_eq!(again.decision, "baseline-ok");
    assert_eq!(stack.messages().await.len(), 1);

    // Someone changes it; the sweep puts it back and says so once.
    stack
        .ecr
        .put_lifecycle_policy()
        .repository_name(&repo)
        .lifecycle_policy_text(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#)
        .send()
        .await
        .expect("drift");
    let outcome = lifecycle.handle(sweep_event(&repo), &invocation()).await.expect("swept");
    assert_eq!(outcome.decision, "sweep-complete");
    assert!(outcome.actions.iter().any(|a| a.action.contains("replace the drifted lifecycle policy")));
    let restored: serde_json::Value =
        serde_json::from_str(&stack.lifecycle_policy(&repo).await.expect("policy")).expect("json");
    assert_eq!(restored, document);
    assert_eq!(stack.messages().await.len(), 1);
}

#[tokio::test]
async fn retention_deletes_old_builds_but_never_a_release_or_its_children() {
    let stack = Stack::new().await;
    let lifecycle = lifecycle(&stack);
    let repo = unique("ci/web-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let (index, children) = stack.push_index(&repo, "release", "v1.0.0").await;
    let mut builds = Vec::new();
    for build in 1..=3 {
        // ECR ranks by push time; whole seconds apart so the order is unambiguous.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        builds.push(stack.push(&repo, &format!("pr-7-{build}"), Some(&format!("pr-7-{build}"))).await);
    }
    let other_pr = stack.push(&repo, "pr-8-1", Some("pr-8-1")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stray_old = stack.push(&repo, "stray-1", None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stray_new = stack.push(&repo, "stray-2", None).await;
    let safety = stack.safety_snapshot_with(&repo, &policy()).await;
    assert!(safety.guarded().contains_key(&index) && children.iter().all(|c| safety.guarded().contains_key(c)));

    let outcome = lifecycle.handle(sweep_event(&repo), &invocation()).await.expect("swept");
    let run = outcome.items.iter().find(|i| i.decision == "deleted").expect("retention deleted");
    let deleted: Vec<&str> = run
        .actions
        .iter()
        .filter(|a| a.result == ActionResult::Done)
        .map(|a| a.action.split(' ').nth(1).unwrap_or_default())
        .collect();
    let mut expected = vec![builds[0].as_str(), builds[1].as_str(), stray_old.as_str()];
    let mut got = deleted.clone();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected, "{run:#?}");
    let left = stack.images(&repo).await;
    for kept in [&index, &children[0], &children[1], &builds[2], &other_pr, &stray_new] {
        assert!(left.contains_key(kept), "{kept} must stay");
    }
    assert!(run.reasons.iter().any(|r| r.contains("referenced by kept index")), "{:?}", run.reasons);
    safety.assert_nothing_unsafe_deleted(&stack).await;

    // One notification for the repository's run (and one for the native policy the sweep set); a replay of the
    // sweep finds nothing more to do and sends nothing.
    let kinds = kinds(&stack.messages().await);
    assert_eq!(kinds.iter().filter(|k| *k == "retention").count(), 1, "{kinds:?}");
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let again = lifecycle.handle(sweep_event(&repo), &invocation()).await.expect("swept");
    assert!(again.items.iter().all(|i| i.decision != "deleted"));
    assert!(stack.messages().await.is_empty());
}

fn kinds(messages: &[serde_json::Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let body: serde_json::Value =
                serde_json::from_str(m["Message"].as_str().unwrap_or_default()).expect("json");
            body["kind"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_dry_run_plan_is_reported_once_until_it_changes() {
    let stack = Stack::new().await;
    let lifecycle = lifecycle(&stack);
    let repo = unique("preview/tool-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let mut images = Vec::new();
    for n in 1..=3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        images.push(stack.push(&repo, &format!("untagged-{n}"), None).await);
    }
    let safety = stack.safety_snapshot_with(&repo, &policy()).await;
    // Daily sweeps (a new event each): the first reports the plan, the second finds it unchanged.
    let first = lifecycle.handle(sweep_event(&repo), &invocation()).await.expect("swept");
    assert_eq!(first.items[0].decision, "would-delete", "{first:#?}");
    assert_eq!(kinds(&stack.messages().await), vec!["retention"]);
    let second = lifecycle.handle(sweep_event(&repo), &invocation()).await.expect("swept");
    assert_eq!(second.items[0].decision, "would-delete");
    assert!(!second.items[0].notified);
    assert!(stack.messages().await.is_empty(), "an unchanged dry-run plan is not sent again");

    // Another image joins the plan: reported again. Nothing was ever deleted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    images.push(stack.push(&repo, "untagged-4", None).await);
    let third = lifecycle.handle(sweep_event(&repo), &invocation()).await.expect("swept");
    assert!(third.items[0].notified);
    assert_eq!(kinds(&stack.messages().await), vec!["retention"]);
    let left = stack.images(&repo).await;
    assert!(images.iter().all(|digest| left.contains_key(digest)));
    safety.assert_nothing_unsafe_deleted(&stack).await;
}
