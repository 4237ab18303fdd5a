//! notify end to end against moto: events in, SNS messages out through SQS subscribers, in the default
//! format and through a chat route; replays stay silent; a huge lifecycle run is one message within limits.

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::{SafetyGuard, Stack, envelope, invocation, unique};
use notify::Notify;
use serde_json::{Value, json};
use warden::aws::Clients;
use warden::config::Config;
use warden::policy::{EMBEDDED_POLICY, Policy};

/// The stack, notify with a chat route, the chat queue, the production repository the events are about (a release
/// and a multi-platform release index in it) and its safety snapshot: notify never touches images.
async fn setup() -> (Stack, Notify, String, String, SafetyGuard) {
    let stack = Stack::new().await;
    let repo = unique("prod/notify-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    stack.push(&repo, "release", Some("v1.4.2")).await;
    stack.push_index(&repo, "multiarch", "v1.5.0").await;
    let safety = stack.safety_snapshot(&repo).await;
    assert_eq!(safety.guarded().len(), 4, "two releases and the index's two children");
    let (chat_arn, chat_queue) = stack.extra_topic(&unique("chat-")).await;
    let policy = Policy::from_toml(
        &format!(
            "{EMBEDDED_POLICY}\n[[notify.route]]\ntopic = \"chat\"\nformat = \"chatbot\"\nmin-severity = \"warning\"\n"
        ),
        "warden.toml",
    )
    .expect("policy");
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        dry_run: false,
        topics: [("chat".to_owned(), chat_arn)].into(),
        ..Config::default()
    };
    let notify = Notify::new(policy, config, Clients::new(&stack.sdk)).expect("notify");
    (stack, notify, chat_queue, repo, safety)
}

/// A sample event about `repo` instead of the sample's `prod/payments-api`, with an id of its own.
fn sample(name: &str, repo: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"))).expect("sample");
    let mut event: Value = serde_json::from_str(&text.replace("prod/payments-api", repo)).expect("json");
    event["id"] = unique("event-").into();
    event
}

#[tokio::test]
async fn failed_replication_reaches_both_topics_once() {
    let (stack, notify, chat_queue, repo, safety) = setup().await;
    let event = sample("ecr-replication-failed.json", &repo);

    let outcome = notify.handle(event.clone(), &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "replication-failed");
    let default = stack.messages().await;
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["MessageAttributes"]["kind"]["Value"], "replication-failed");
    assert_eq!(default[0]["MessageAttributes"]["repository"]["Value"], repo.as_str());
    let schema: Value = serde_json::from_str(default[0]["Message"].as_str().expect("message")).expect("json");
    assert_eq!(schema["schema"], warden::notify::SCHEMA);
    let chat = stack.messages_in(&chat_queue).await;
    assert_eq!(chat.len(), 1);
    let payload: Value = serde_json::from_str(chat[0]["Message"].as_str().expect("message")).expect("chatbot json");
    assert_eq!((payload["version"].as_str(), payload["source"].as_str()), (Some("1.0"), Some("custom")));

    let replay = notify.handle(event, &invocation()).await.expect("replayed");
    assert_eq!(replay.decision, "already-notified");
    assert!(stack.messages().await.is_empty() && stack.messages_in(&chat_queue).await.is_empty());
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn info_kinds_skip_the_warning_route() {
    let (stack, notify, chat_queue, repo, safety) = setup().await;
    notify.handle(sample("ecr-scan-resource-change.json", &repo), &invocation()).await.expect("handled");
    assert_eq!(stack.messages().await.len(), 1);
    assert!(stack.messages_in(&chat_queue).await.is_empty(), "scan-frequency-changed is info");
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn a_lifecycle_run_of_ten_thousand_images_is_one_message_within_limits() {
    let (stack, notify, _, repo, safety) = setup().await;
    let actions: Vec<Value> = (0..10_000)
        .map(|i| json!({"rulePriority": 1, "lifecycleEventImage": {
            "digest": format!("sha256:{i:064x}"), "tagStatus": "Tagged", "tagList": [format!("build-{i}")], "pushedAt": 1_760_000_000_000i64}}))
        .collect();
    let detail = json!({
        "eventName": "PolicyExecutionEvent", "eventType": "AwsServiceEvent", "eventSource": "ecr.amazonaws.com",
        "serviceEventDetails": {"repositoryName": repo,
            "lifecycleEventPolicy": {"policyVersion": 1, "lifecycleEventRules": [
                {"rulePriority": 1, "description": "keep 50 builds", "action": "expire"}]},
            "lifecycleEventImageActions": actions}
    });

    let outcome = notify
        .handle(envelope("aws.ecr", "AWS Service Event via CloudTrail", detail), &invocation())
        .await
        .expect("handled");

    assert_eq!(outcome.decision, "lifecycle-expired");
    let messages = stack.messages().await;
    assert_eq!(messages.len(), 1, "one summary, not 10,000 messages");
    let body = messages[0]["Message"].as_str().expect("message");
    assert!(body.len() < 256 * 1024);
    let schema: Value = serde_json::from_str(body).expect("json");
    assert!(
        schema["reasons"][0].as_str().is_some_and(|r| r.contains("expire 10000 images")),
        "{}",
        schema["reasons"][0]
    );
    let kept = schema["tags"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(kept + schema["tags-omitted"].as_u64().unwrap_or(0), 10_000, "truncated with a count");
    safety.assert_nothing_unsafe_deleted(&stack).await;
}
