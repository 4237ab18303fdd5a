//! notify: golden renderings of every sample event in all formats, and delivery against exact AWS responses.

use super::*;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::error::ErrorMetadata;
use std::path::{Path, PathBuf};
use warden::golden;
use warden::notify::Format;
use warden::testing::{self, Retries, TOPIC_ARN as TOPIC, sample};

const CHAT: &str = "arn:aws:sns:us-east-1:123456789012:ecr-warden-chat";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn policy(extra: &str) -> Policy {
    Policy::from_toml(&format!("{}\n{extra}", warden::policy::EMBEDDED_POLICY), "warden.toml").expect("policy")
}

/// Every sample event rendered in every format, compared with `tests/golden/` (regenerate with
/// `UPDATE_GOLDEN=1 cargo test -p notify`, then review the diff).
#[test]
fn golden_notifications_for_every_sample() {
    let policy = policy("");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir())
        .expect("events")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut skipped = String::new();
    let mut mismatches = Vec::new();
    for path in files {
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("name").to_owned();
        let event = warden::event::parse_str(&std::fs::read_to_string(&path).expect("read")).expect("sample parses");
        let at = event.time.clone().unwrap_or_default();
        match warden::notify::events::for_event(&event, &policy, &at) {
            Err(reason) => skipped.push_str(&format!("{stem}: {reason}\n")),
            Ok(notification) => {
                for (extension, format) in
                    [("txt", Format::Text), ("json", Format::Json), ("chatbot.json", Format::Chatbot)]
                {
                    let rendered = notification.render(format);
                    let body = if extension == "txt" {
                        format!("Subject: {}\n\n{}", rendered.subject, rendered.message)
                    } else {
                        let value: Value = serde_json::from_str(&rendered.message).expect("valid JSON");
                        serde_json::to_string_pretty(&value).expect("pretty") + "\n"
                    };
                    let file = golden.join(format!("{stem}.{extension}"));
                    golden::compare(&file, &body, &mut mismatches);
                }
            }
        }
    }
    golden::compare(&golden.join("skipped.txt"), &skipped, &mut mismatches);
    golden::assert_none(&mismatches);
}

#[test]
fn chatbot_payload_follows_the_custom_notification_schema() {
    let event = warden::event::parse(sample("ecr-replication-failed.json")).expect("event");
    let notification =
        warden::notify::events::for_event(&event, &policy(""), "2026-11-20T10:00:00Z").expect("notification");
    let payload: Value = serde_json::from_str(&notification.render(Format::Chatbot).message).expect("json");
    assert_eq!(payload["version"], "1.0");
    assert_eq!(payload["source"], "custom");
    assert_eq!(payload["content"]["textType"], "client-markdown");
    assert!(
        payload["content"]["title"].as_str().is_some_and(|t| t.starts_with(":warning: notify: replication failed"))
    );
    assert!(payload["content"]["nextSteps"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(payload["metadata"]["eventType"], "replication-failed");
}

fn notify(dynamodb: &[&Rule], sns: &[&Rule], policy: Policy, topics: &[(&str, &str)]) -> Result<Notify, WardenError> {
    let clients = testing::clients(&[], dynamodb, sns, Retries::None);
    let topics = topics.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Notify::new(policy, Config { topics, ..testing::config() }, clients)
}

fn claim() -> Rule {
    warden::testing::rules::put_item_ok()
}

#[tokio::test]
async fn a_failed_replication_is_notified_once() {
    let (claimed, published) = (claim(), warden::testing::rules::published());
    let notify = notify(&[&claimed], &[&published], policy(""), &[]).expect("notify");
    let outcome = notify.handle(sample("ecr-replication-failed.json"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "replication-failed");
    assert!(outcome.notified);
    assert_eq!(published.num_calls(), 1);

    let taken = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    });
    let again = mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().build());
    let notify = self::notify(&[&taken], &[&again], policy(""), &[]).expect("notify");
    let replay = notify.handle(sample("ecr-replication-failed.json"), &testing::invocation()).await.expect("ok");
    assert_eq!(replay.decision, "already-notified");
    assert_eq!(again.num_calls(), 0, "the same event id never produces two notifications");
}

#[tokio::test]
async fn sns_failure_fails_the_invocation_so_eventbridge_retries() {
    let claimed = claim();
    let release = mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let broken = mock!(aws_sdk_sns::Client::publish)
        .then_error(|| PublishError::generic(ErrorMetadata::builder().code("InternalError").message("boom").build()));
    let notify = notify(&[&claimed, &release], &[&broken], policy(""), &[]).expect("notify");
    let error = notify
        .handle(sample("ecr-pull-through-cache-failed.json"), &testing::invocation())
        .await
        .expect_err("no silent loss");
    assert!(error.is_retryable());
    assert_eq!(release.num_calls(), 1);
}

#[tokio::test]
async fn routes_send_chosen_kinds_to_other_topics_in_their_format() {
    let routed = policy("[[notify.route]]\ntopic = \"chat\"\nformat = \"chatbot\"\nmin-severity = \"critical\"");
    let claimed = claim();
    let standard = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| r.topic_arn() == Some(TOPIC) && r.message_structure() == Some("json"))
        .then_output(|| PublishOutput::builder().message_id("a").build());
    let chat = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| {
            r.topic_arn() == Some(CHAT)
                && r.message_structure().is_none()
                && r.message().is_some_and(|m| m.contains("\"source\":\"custom\""))
        })
        .then_output(|| PublishOutput::builder().message_id("b").build());
    let notify = notify(&[&claimed], &[&standard, &chat], routed, &[("chat", CHAT)]).expect("notify");
    // A deleted protected tag is critical: both topics.
    let outcome = notify.handle(sample("ecr-image-delete.json"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "protected-tag-deleted");
    assert_eq!((standard.num_calls(), chat.num_calls()), (1, 1));
    // A failed replication is a warning: the default topic only.
    notify.handle(sample("ecr-replication-failed.json"), &testing::invocation()).await.expect("ok");
    assert_eq!((standard.num_calls(), chat.num_calls()), (2, 1));
}

#[tokio::test]
async fn a_route_to_an_unconfigured_topic_fails_at_init() {
    let routed = policy("[[notify.route]]\ntopic = \"security\"");
    let error = notify(&[], &[], routed, &[]).expect_err("misconfigured");
    assert!(error.to_string().contains("WARDEN_TOPICS"), "{error}");
}

#[tokio::test]
async fn events_nobody_needs_to_hear_about_are_skipped_without_calls() {
    let notify = notify(&[], &[], policy(""), &[]).expect("notify");
    for name in
        ["ecr-image-push.json", "inspector2-scan.json", "ecr-pull-through-cache-success.json", "ecr-image-scan.json"]
    {
        let outcome = notify.handle(sample(name), &testing::invocation()).await.expect("skipped");
        assert_eq!(outcome.decision, "skipped", "{name}");
        assert!(outcome.aws_calls.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn events_about_other_accounts_or_regions_are_refused_at_the_door() {
    let (claimed, published) = (claim(), warden::testing::rules::published());
    let notify = notify(&[&claimed], &[&published], policy(""), &[]).expect("notify");
    for (account, region) in [("999999999999", "us-east-1"), ("123456789012", "eu-west-1")] {
        let mut event = sample("ecr-replication-failed.json");
        event["account"] = account.into();
        event["region"] = region.into();
        let outcome = notify.handle(event, &testing::invocation()).await.expect("skipped");
        assert_eq!(outcome.decision, "skipped", "{account} {region}");
        assert!(outcome.aws_calls.is_empty());
    }
    assert_eq!(published.num_calls(), 0);
}

/// Two-phase claims (`warden::aws::claims`): a claim is `pending` with its message until published, then
/// `sent`; what a retry or a duplicate finds decides whether it publishes.
mod claims {
    use super::*;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::AttributeValue;

    /// A claim on the failed replication's notification as an earlier attempt left it.
    fn held(state: &'static str, holder: &'static str, claimed_at: i64, message: Option<String>) -> Rule {
        mock!(aws_sdk_dynamodb::Client::put_item).then_error(move || {
            let mut held = ConditionalCheckFailedException::builder()
                .item("claim", AttributeValue::S("their-token".into()))
                .item("state", AttributeValue::S(state.into()))
                .item("holder", AttributeValue::S(holder.into()))
                .item("claimed_at", AttributeValue::N(claimed_at.to_string()));
            if let Some(message) = &message {
                held = held.item("notification", AttributeValue::S(message.clone()));
            }
            PutItemError::ConditionalCheckFailedException(held.build())
        })
    }

    /// The notification an earlier attempt stored with its claim, recognisable by its reason.
    fn stored() -> String {
        let event = warden::event::parse(sample("ecr-replication-failed.json")).expect("event");
        let mut notification =
            warden::notify::events::for_event(&event, &policy(""), "2026-11-20T10:00:00Z").expect("notification");
        notification.reasons = vec!["as the first attempt wrote it".into()];
        serde_json::to_string(&notification).expect("json")
    }

    fn taken_over() -> Rule {
        mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                r.condition_expression() == Some("claim = :old AND #state = :pending")
                    && r.expression_attribute_values().and_then(|v| v.get(":old")).and_then(|v| v.as_s().ok())
                        == Some(&"their-token".to_owned())
            })
            .then_output(|| UpdateItemOutput::builder().build())
    }

    fn published() -> Rule {
        warden::testing::rules::published()
    }

    async fn deliver(claim: &Rule, takeover: &Rule, publish: &Rule) -> Outcome {
        let notify = notify(&[claim, takeover], &[publish], policy(""), &[]).expect("notify");
        notify.handle(sample("ecr-replication-failed.json"), &testing::invocation()).await.expect("ok")
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs().cast_signed())
    }

    #[tokio::test]
    async fn a_claim_its_own_earlier_attempt_died_holding_is_sent_with_the_stored_message() {
        // Killed between claim and publish: Lambda retries under the same request id ("local" in tests).
        let (claim, takeover, publish) =
            (held("pending", "local", now() - 5, Some(stored())), taken_over(), published());
        let outcome = deliver(&claim, &takeover, &publish).await;
        assert!(outcome.notified);
        assert_eq!((takeover.num_calls(), publish.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn the_stored_message_is_what_a_taken_over_claim_publishes() {
        let (claim, takeover) = (held("pending", "local", now() - 5, Some(stored())), taken_over());
        let publish = mock!(aws_sdk_sns::Client::publish)
            .match_requests(|r| r.message().is_some_and(|m| m.contains("as the first attempt wrote it")))
            .then_output(|| PublishOutput::builder().message_id("m").build());
        assert!(deliver(&claim, &takeover, &publish).await.notified);
        assert_eq!(publish.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_claim_another_live_invocation_holds_is_left_to_it() {
        // A duplicate delivery of the same event, claimed a moment ago by another request.
        let (claim, takeover, publish) =
            (held("pending", "other", now() - 5, Some(stored())), taken_over(), published());
        let outcome = deliver(&claim, &takeover, &publish).await;
        assert!(!outcome.notified);
        assert_eq!((takeover.num_calls(), publish.num_calls()), (0, 0));
    }

    #[tokio::test]
    async fn a_claim_whose_holder_outlived_any_invocation_is_taken_over() {
        let stale = now() - warden::aws::claims::PENDING_STALE_SECONDS - 1;
        let (claim, takeover, publish) = (held("pending", "other", stale, Some(stored())), taken_over(), published());
        assert!(deliver(&claim, &takeover, &publish).await.notified);
        assert_eq!((takeover.num_calls(), publish.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_sent_claim_is_never_sent_again_whoever_asks() {
        for holder in ["local", "other"] {
            let (claim, takeover, publish) = (held("sent", holder, now() - 5, None), taken_over(), published());
            assert!(!deliver(&claim, &takeover, &publish).await.notified);
            assert_eq!(publish.num_calls(), 0, "{holder}");
        }
    }

    #[tokio::test]
    async fn a_claim_is_written_pending_with_its_message_and_marked_sent_after_the_publish() {
        let claim = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|r| {
                let item = r.item().expect("item");
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                text("state") == "pending" && text("holder") == "local" && text("notification").contains("\"kind\"")
            })
            .then_output(|| PutItemOutput::builder().build());
        let marked = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| r.update_expression() == Some("SET #state = :sent REMOVE notification, holder"))
            .then_output(|| UpdateItemOutput::builder().build());
        let publish = published();
        let outcome = deliver(&claim, &marked, &publish).await;
        assert!(outcome.notified);
        assert_eq!((claim.num_calls(), publish.num_calls(), marked.num_calls()), (1, 1, 1));
    }
}

/// A deleted protected tag that ecr-warden removed itself (a demotion's promotion tag, a disallowed or forged
/// tag): the ledger holds the removal, recorded just before it; nothing is told, the remover told it. A record
/// far older than the deletion explains nothing: that deletion is told.
#[tokio::test]
async fn a_protected_tag_ecr_warden_removed_itself_is_not_told_again() {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::types::AttributeValue;
    let recorded = |at: &'static str| {
        mock!(aws_sdk_dynamodb::Client::get_item)
            .match_requests(|r| {
                let key = r.key().expect("key");
                key["pk"].as_s().is_ok_and(|pk| pk == "REMOVAL#prod/payments-api")
                    && key["sk"].as_s().is_ok_and(|sk| sk.ends_with("#v1.4.2"))
                    && r.consistent_read() == Some(true)
            })
            .then_output(move || {
                let item = [
                    ("at", AttributeValue::N(at.to_owned())),
                    ("function", AttributeValue::S("scan-gate".into())),
                    ("event_id", AttributeValue::S("demotion-1".into())),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                GetItemOutput::builder().set_item(Some(item)).build()
            })
    };
    // The sample's deletion happened at 2026-11-20T11:48:13Z (epoch 1795175293).
    let (just_before, last_week) = (recorded("1795175292"), recorded("1794570000"));
    let (claimed, publish) =
        (claim(), mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().build()));
    let quiet = notify(&[&just_before, &claimed], &[&publish], policy(""), &[]).expect("notify");
    let outcome = quiet.handle(sample("ecr-image-delete.json"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons[0].starts_with("ecr-warden's scan-gate removed this tag (event demotion-1)"));
    assert_eq!(publish.num_calls(), 0);
    let told = notify(&[&last_week, &claimed], &[&publish], policy(""), &[]).expect("notify");
    let outcome = told.handle(sample("ecr-image-delete.json"), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "protected-tag-deleted");
    assert_eq!(publish.num_calls(), 1);
}
