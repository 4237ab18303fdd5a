//! The organization chapter: one hub (the functions with WARDEN_ACCOUNTS set, on their own Lambda emulator)
//! governing two member accounts in two regions of the local stack, through their member roles.

use super::{Demo, short};
use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::image_action;
use integration_tests::org::{FOREIGN, MEMBER_A, MEMBER_B, REGIONS, from, push_to, registry_ecr, tags_in};
use serde_json::{Value, json};

/// The hub's sweep queue, as the hub's functions are configured with it (`demo hub-queue` prints its URL).
pub async fn hub_queue() -> String {
    let stack_sdk = integration_tests::sdk_config().await;
    integration_tests::org::sweep_queue(&aws_sdk_sqs::Client::new(&stack_sdk), 3).await.0
}

async fn mutability(ecr: &aws_sdk_ecr::Client, repository: &str) -> String {
    let out = ecr.describe_repositories().repository_names(repository).send().await;
    out.ok()
        .and_then(|o| o.repositories().first().and_then(|r| r.image_tag_mutability().map(|m| m.as_str().to_owned())))
        .unwrap_or_else(|| "(none)".into())
}

pub async fn org_story(demo: &mut Demo, hub_port: &str, queue: &str) {
    let [east, west] = REGIONS;
    let sdk = demo.stack.sdk.clone();
    let (a_east, a_west) = (registry_ecr(&sdk, MEMBER_A, east).await, registry_ecr(&sdk, MEMBER_A, west).await);
    let (b_east, b_west) = (registry_ecr(&sdk, MEMBER_B, east).await, registry_ecr(&sdk, MEMBER_B, west).await);
    let foreign = registry_ecr(&sdk, FOREIGN, east).await;

    demo.title("An organization: one hub (account 123456789012) governs members 222222222222 and 333333333333 in us-east-1 and eu-west-1");
    let (web, store) = ("dev/mobile-api", "prod/storefront");
    for (name, ecr) in [("A us-east-1", &a_east), ("B us-east-1", &b_east), ("outsider 444444444444", &foreign)] {
        ecr.create_repository().repository_name(web).send().await.ok();
        println!("   {name}: created {web}");
    }
    for (name, ecr) in [("A us-east-1", &a_east), ("A eu-west-1", &a_west), ("B eu-west-1", &b_west)] {
        let mutable = ImageTagMutability::Mutable;
        ecr.create_repository().repository_name(store).image_tag_mutability(mutable).send().await.ok();
        println!("   {name}: created {store} (MUTABLE, by hand)");
    }

    demo.title(
        "A developer in member A (us-east-1) pushes dev/mobile-api:feature-x; the spoke forwards the event to the hub",
    );
    let mut digest = String::new();
    for ecr in [&a_east, &b_east, &foreign] {
        digest = push_to(ecr, web, "mobile", Some("feature-x")).await;
    }
    println!(
        "   the same image is tagged feature-x in A us-east-1, B us-east-1 and the outsider's registry ({})",
        short(&digest)
    );
    let event = from(image_action("PUSH", web, &digest, Some("feature-x"), "2026-12-07T09:00:00Z"), MEMBER_A, east);
    let outcome = demo.invoke_at(hub_port, "tag-guard", &event);
    let quarantine = format!("quarantine-{}", &digest[7..19]);
    demo.check(outcome["decision"] == "not-allowed", "the hub applied the dev class in member A's registry");
    let calls = &outcome["aws-calls"];
    demo.check(calls["STS.AssumeRole"] == 1, "through member A's role (assumed once, counted with the event's calls)");
    demo.check(tags_in(&a_east, web, &digest).await == Some(vec![quarantine]), "A's image kept, only under quarantine");
    let untouched = Some(vec!["feature-x".to_owned()]);
    demo.check(tags_in(&b_east, web, &digest).await == untouched, "member B's same-named repository untouched");

    demo.title("An event names account 444444444444, which the hub does not govern");
    let event = from(image_action("PUSH", web, &digest, Some("feature-x"), "2026-12-07T09:01:00Z"), FOREIGN, east);
    let outcome = demo.invoke_at(hub_port, "tag-guard", &event);
    demo.check(outcome["decision"] == "skipped", "skipped at the door, before any read or role");
    demo.check(tags_in(&foreign, web, &digest).await == untouched, "the outsider's registry untouched");

    demo.title("The hub's sweep schedule fires: one work item per governed account and region");
    let schedule = json!({
        "version": "0", "id": "demo-org-sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": integration_tests::ACCOUNT, "time": "2026-12-07T10:00:00Z", "region": east,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/ecr-warden-tag-guard-sweep"],
        "detail": {"repositories": [store]}
    });
    let planned = demo.invoke_at(hub_port, "tag-guard", &schedule);
    demo.check(planned["decision"] == "sweep-planned", "planned, not swept: 2 accounts × 2 regions queued");

    demo.title("The sweep queue hands the items back one at a time, as Lambda's event source mapping does");
    let swept = drain(demo, hub_port, queue).await;
    demo.check(swept.len() == 4 && swept.iter().all(|(_, ok)| *ok), "4 registries swept, each once, none failed");
    for (name, ecr) in [("A us-east-1", &a_east), ("A eu-west-1", &a_west), ("B eu-west-1", &b_west)] {
        let mode = mutability(ecr, store).await;
        demo.check(mode == "MUTABLE_WITH_EXCLUSION", &format!("{name}: {store} is now {mode}"));
    }
}

/// Receives the hub's work items one at a time and invokes tag-guard with each as an SQS batch of one, deleting
/// it unless the answer reports it failed: (registry, succeeded) per delivery.
async fn drain(demo: &mut Demo, hub_port: &str, queue: &str) -> Vec<(String, bool)> {
    let sqs = aws_sdk_sqs::Client::new(&demo.stack.sdk);
    let mut swept = Vec::new();
    while swept.len() < 20 {
        let Ok(received) = sqs.receive_message().queue_url(queue).max_number_of_messages(1).send().await else { break };
        let Some(message) = received.messages().first() else { break };
        let (id, body) = (message.message_id().unwrap_or_default(), message.body().unwrap_or_default());
        let item: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let registry =
            format!("{} {}", item["account"].as_str().unwrap_or("?"), item["region"].as_str().unwrap_or("?"));
        println!("   work item: sweep {registry}");
        let batch =
            json!({"Records": [{"messageId": id, "body": body, "eventSource": "aws:sqs", "awsRegion": "us-east-1"}]});
        let outcome = demo.invoke_at(hub_port, "tag-guard", &batch);
        let ok = outcome["decision"] == "batch" && outcome.get("batchItemFailures").is_none();
        if ok && let Some(receipt) = message.receipt_handle() {
            sqs.delete_message().queue_url(queue).receipt_handle(receipt).send().await.ok();
        }
        swept.push((registry, ok));
    }
    swept
}
