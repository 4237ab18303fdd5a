//! One hub governing member accounts in two regions (issue: org scale), against moto: each member's registry is
//! reached through its member role; an event acts on the registry it names and on no other; accounts and regions
//! outside the allow-list are skipped; a member whose role refuses the hub fails alone.

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::fault_proxy::{Fault, FaultPlan, FaultProxy, Trigger, sdk_config_via};
use integration_tests::org::{
    Delivery, FOREIGN, MEMBER_A, MEMBER_B, REGIONS, calls_the_member_role_denies, drain, from, hub_reach, push_to,
    registry_ecr, sweep_queue, tags_in,
};
use integration_tests::{Stack, image_action, invocation, unique};
use tag_guard::TagGuard;
use warden::aws::Clients;
use warden::config::Config;

const T1: &str = "2026-11-20T09:00:00Z";
const EAST: &str = REGIONS[0];
const WEST: &str = REGIONS[1];

fn hub_guard(stack: &Stack, sdk: &aws_config::SdkConfig, accounts: &[&str]) -> TagGuard {
    hub_guard_with_queue(stack, sdk, accounts, None)
}

fn hub_guard_with_queue(
    stack: &Stack,
    sdk: &aws_config::SdkConfig,
    accounts: &[&str],
    queue: Option<&str>,
) -> TagGuard {
    let policy = warden::policy::Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("policy");
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        reach: hub_reach(accounts),
        sweep_queue: queue.map(str::to_owned),
        ..Config::default()
    };
    TagGuard::new(policy, config, Clients::new(sdk)).expect("hub")
}

async fn mutability(ecr: &aws_sdk_ecr::Client, repository: &str) -> Option<ImageTagMutability> {
    let out = ecr.describe_repositories().repository_names(repository).send().await.expect("describe");
    out.repositories()[0].image_tag_mutability().cloned()
}

/// The same repository, holding the same image under the same tag, in each of `registries`.
async fn same_image_everywhere(registries: &[&aws_sdk_ecr::Client], repository: &str, tag: &str) -> String {
    let mut digest = String::new();
    for ecr in registries {
        ecr.create_repository()
            .repository_name(repository)
            .image_tag_mutability(ImageTagMutability::Mutable)
            .send()
            .await
            .expect("repository");
        digest = push_to(ecr, repository, "feature", Some(tag)).await;
    }
    digest
}

#[tokio::test]
async fn a_push_in_a_member_is_enforced_in_that_registry_only() {
    let stack = Stack::new().await;
    let hub = hub_guard(&stack, &stack.sdk, &[MEMBER_A, MEMBER_B]);
    let a_east = registry_ecr(&stack.sdk, MEMBER_A, EAST).await;
    let a_west = registry_ecr(&stack.sdk, MEMBER_A, WEST).await;
    let b_east = registry_ecr(&stack.sdk, MEMBER_B, EAST).await;
    let repo = unique("dev/web-");
    let digest = same_image_everywhere(&[&stack.ecr, &a_east, &a_west, &b_east], &repo, "feature-x").await;
    let quarantined = Some(vec![format!("quarantine-{}", &digest[7..19])]);
    let untouched = Some(vec!["feature-x".to_owned()]);

    let event = from(image_action("PUSH", &repo, &digest, Some("feature-x"), T1), MEMBER_A, EAST);
    let outcome = hub.handle(event, &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "not-allowed", "{outcome:?}");
    assert_eq!(tags_in(&a_east, &repo, &digest).await, quarantined, "enforced where the push happened");
    for (name, ecr) in [("member A in eu-west-1", &a_west), ("member B", &b_east), ("the hub", &stack.ecr)] {
        assert_eq!(tags_in(ecr, &repo, &digest).await, untouched, "{name}: same name, another registry");
    }
    assert_eq!(outcome.aws_calls.get("STS.AssumeRole"), Some(&1), "{:?}", outcome.aws_calls);
    assert_eq!(calls_the_member_role_denies(outcome.aws_calls.keys()), Vec::<String>::new(), "infra/spoke.yaml");
    assert_eq!(integration_tests::calls_its_role_denies("TagGuard", outcome.aws_calls.keys()), Vec::<String>::new());
    // The ledger keeps member A's records apart from every other registry's.
    let ledger = stack.ledger_items().await;
    let about_repo: Vec<&String> =
        ledger.iter().filter_map(|item| item.get("pk")).filter(|pk| pk.contains(&repo)).collect();
    assert!(!about_repo.is_empty());
    assert!(about_repo.iter().all(|pk| pk.starts_with(&format!("{MEMBER_A}:{EAST}#"))), "{about_repo:?}");
    // The notification names the registry.
    let messages = stack.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["MessageAttributes"]["account"]["Value"], MEMBER_A);
    assert_eq!(messages[0]["MessageAttributes"]["region"]["Value"], EAST);
    let body: serde_json::Value = serde_json::from_str(messages[0]["Message"].as_str().expect("text")).expect("json");
    assert_eq!((body["account"].as_str(), body["region"].as_str()), (Some(MEMBER_A), Some(EAST)));

    // The same account in the other region: its credentials are reused, its registry is the one acted on.
    let event = from(image_action("PUSH", &repo, &digest, Some("feature-x"), T1), MEMBER_A, WEST);
    let outcome = hub.handle(event, &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-allowed");
    assert_eq!(outcome.aws_calls.get("STS.AssumeRole"), None, "assumed once per account: {:?}", outcome.aws_calls);
    assert_eq!(tags_in(&a_west, &repo, &digest).await, quarantined);
    assert_eq!(tags_in(&b_east, &repo, &digest).await, untouched);
}

#[tokio::test]
async fn accounts_and_regions_outside_the_allow_list_are_skipped_untouched() {
    let stack = Stack::new().await;
    let hub = hub_guard(&stack, &stack.sdk, &[MEMBER_A, MEMBER_B]);
    let foreign = registry_ecr(&stack.sdk, FOREIGN, EAST).await;
    let a_south = registry_ecr(&stack.sdk, MEMBER_A, "ap-south-1").await;
    let repo = unique("dev/web-");
    let digest = same_image_everywhere(&[&foreign, &a_south, &stack.ecr], &repo, "feature-x").await;
    let untouched = Some(vec!["feature-x".to_owned()]);

    let cases = [
        (FOREIGN, EAST, "not one this hub governs"),
        (MEMBER_A, "ap-south-1", "region ap-south-1 is not one this hub governs"),
        // The hub's own account is governed only when the allow-list names it.
        (integration_tests::ACCOUNT, EAST, "not one this hub governs"),
    ];
    for (account, region, reason) in cases {
        let event = from(image_action("PUSH", &repo, &digest, Some("feature-x"), T1), account, region);
        let outcome = hub.handle(event, &invocation()).await.expect("skipped, not failed");
        assert_eq!(outcome.decision, "skipped", "{account} {region}");
        assert!(outcome.reasons.iter().any(|r| r.contains(reason)), "{account} {region}: {:?}", outcome.reasons);
        assert_eq!(outcome.total_aws_calls(), 0, "nothing read, no role assumed: {:?}", outcome.aws_calls);
    }
    for ecr in [&foreign, &a_south, &stack.ecr] {
        assert_eq!(tags_in(ecr, &repo, &digest).await, untouched);
    }
    assert!(stack.messages().await.is_empty());
}

#[tokio::test]
async fn a_member_role_that_refuses_the_hub_fails_that_account_alone() {
    let stack = Stack::new().await;
    // Member B's role does not trust the hub (its spoke stack is missing or stale): STS says AccessDenied.
    let plan = FaultPlan::new(7).fail_if("sts", "AssumeRole", MEMBER_B, Fault::Denied, Trigger::Always);
    let proxy = FaultProxy::in_front_of_moto(plan).await;
    let hub = hub_guard(&stack, &sdk_config_via(&proxy).await, &[MEMBER_A, MEMBER_B]);
    let a_east = registry_ecr(&stack.sdk, MEMBER_A, EAST).await;
    let b_east = registry_ecr(&stack.sdk, MEMBER_B, EAST).await;
    let repo = unique("dev/web-");
    let digest = same_image_everywhere(&[&a_east, &b_east], &repo, "feature-x").await;

    let event = from(image_action("PUSH", &repo, &digest, Some("feature-x"), T1), MEMBER_B, EAST);
    let error = hub.handle(event, &invocation()).await.expect_err("B's role refuses");
    let text = error.to_string();
    assert!(!error.is_retryable(), "a refused role is a deployment to fix, not a retry: {text}");
    assert!(text.contains(MEMBER_B) && text.contains("ecr-warden-member") && text.contains("AccessDenied"), "{text}");
    assert_eq!(tags_in(&b_east, &repo, &digest).await, Some(vec!["feature-x".to_owned()]), "nothing done in B");

    // The same hub instance goes on governing A.
    let event = from(image_action("PUSH", &repo, &digest, Some("feature-x"), T1), MEMBER_A, EAST);
    let outcome = hub.handle(event, &invocation()).await.expect("A is governed");
    assert_eq!(outcome.decision, "not-allowed");
    assert_eq!(tags_in(&a_east, &repo, &digest).await, Some(vec![format!("quarantine-{}", &digest[7..19])]));
    assert_eq!(proxy.stats().faults_of("sts.AssumeRole"), 1, "one refusal, for B");
}

#[tokio::test]
async fn a_sweep_covers_every_governed_registry_once_through_the_queue() {
    let stack = Stack::new().await;
    let (queue, dead_letters) = sweep_queue(&stack.sqs, 3).await;
    // Member B's role refuses the hub: its work items fail, A's are swept all the same.
    let plan = FaultPlan::new(11).fail_if("sts", "AssumeRole", MEMBER_B, Fault::Denied, Trigger::Always);
    let proxy = FaultProxy::in_front_of_moto(plan).await;
    let hub = hub_guard_with_queue(&stack, &sdk_config_via(&proxy).await, &[MEMBER_A, MEMBER_B], Some(&queue));
    let mut registries = vec![];
    for account in [MEMBER_A, MEMBER_B] {
        for region in REGIONS {
            registries.push(((account, region), registry_ecr(&stack.sdk, account, region).await));
        }
    }
    let repo = unique("prod/org-");
    for ecr in registries.iter().map(|(_, ecr)| ecr).chain([&stack.ecr]) {
        ecr.create_repository()
            .repository_name(&repo)
            .image_tag_mutability(ImageTagMutability::Mutable)
            .send()
            .await
            .expect("repo");
    }
    let schedule = serde_json::json!({
        "version": "0", "id": unique("sweep-"), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": integration_tests::ACCOUNT, "time": T1, "region": EAST,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/ecr-warden-tag-guard-sweep"],
        "detail": {"repositories": [repo]}
    });

    let planned = hub.handle(schedule.clone(), &invocation()).await.expect("planned");
    assert_eq!(planned.decision, "sweep-planned", "{planned:?}");
    assert!(planned.reasons[0].starts_with("4 work items queued: 2 accounts × 2 regions"), "{:?}", planned.reasons);
    assert_eq!(planned.aws_calls, [("SQS.SendMessageBatch".to_owned(), 1)].into(), "planning reads no registry");
    // EventBridge delivers at least once: the same schedule again queues nothing new.
    hub.handle(schedule, &invocation()).await.expect("planned again");

    let lambda = invocation();
    let deliveries = drain(&stack.sqs, &queue, 20, |batch| hub.handle(batch, &lambda)).await;

    let registry = |d: &Delivery| {
        (
            d.event["account"].as_str().unwrap_or_default().to_owned(),
            d.event["region"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let swept: Vec<_> = deliveries
        .iter()
        .filter(|d| d.outcome.as_ref().is_ok_and(|o| o.batch_item_failures.is_empty()))
        .map(registry)
        .collect();
    let mut expected_swept = vec![(MEMBER_A.to_owned(), EAST.to_owned()), (MEMBER_A.to_owned(), WEST.to_owned())];
    let mut got = swept.clone();
    got.sort();
    expected_swept.sort();
    assert_eq!(got, expected_swept, "each of A's registries swept exactly once");
    let failed: Vec<_> =
        deliveries.iter().filter(|d| !d.outcome.as_ref().is_ok_and(|o| o.batch_item_failures.is_empty())).collect();
    assert_eq!(failed.len(), 6, "B's two items, three attempts each (the deployed redrive): {deliveries:?}");
    for delivery in &failed {
        let outcome = delivery.outcome.as_ref().expect("a batch answer, not an invocation error");
        assert_eq!(registry(delivery).0, MEMBER_B);
        assert!(
            outcome.reasons.iter().any(|r| r.contains(MEMBER_B) && r.contains("AccessDenied")),
            "{:?}",
            outcome.reasons
        );
    }
    let parked =
        stack.sqs.receive_message().queue_url(&dead_letters).max_number_of_messages(10).send().await.expect("dlq");
    assert_eq!(parked.messages().len(), 2, "B's items wait in the dead-letter queue");
    // The registries read back: A's fixed, B's untouched, the hub's own (not governed) untouched.
    for ((account, region), ecr) in &registries {
        let want =
            if *account == MEMBER_A { ImageTagMutability::MutableWithExclusion } else { ImageTagMutability::Mutable };
        assert_eq!(mutability(ecr, &repo).await, Some(want), "{account} {region}");
    }
    assert_eq!(mutability(&stack.ecr, &repo).await, Some(ImageTagMutability::Mutable), "the hub's own registry");
    let messages = stack.messages().await;
    let mut told: Vec<_> = messages
        .iter()
        .map(|m| {
            (
                m["MessageAttributes"]["account"]["Value"].as_str().unwrap_or_default().to_owned(),
                m["MessageAttributes"]["region"]["Value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(told, expected_swept, "one summary per swept registry, naming it");
}

#[tokio::test]
async fn an_organization_wide_hub_sweeps_every_active_account_of_the_organization() {
    let stack = Stack::new().await;
    let organizations = aws_sdk_organizations::Client::new(&stack.sdk);
    // moto keeps one organization per server: the first test to ask creates it, the others find it.
    let organization = match organizations.describe_organization().send().await {
        Ok(found) => found.organization().and_then(|o| o.id()).expect("id").to_owned(),
        Err(_) => {
            let created = organizations
                .create_organization()
                .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
                .send()
                .await
                .expect("organization");
            created.organization().and_then(|o| o.id()).expect("id").to_owned()
        }
    };
    let name = unique("member-");
    organizations
        .create_account()
        .account_name(&name)
        .email(format!("{name}@example.com"))
        .send()
        .await
        .expect("account");
    let listed = organizations.list_accounts().send().await.expect("accounts");
    let mut accounts: Vec<String> = listed.accounts().iter().filter_map(|a| a.id().map(str::to_owned)).collect();
    accounts.push(MEMBER_A.to_owned()); // listed by id as well: swept once
    accounts.sort();
    accounts.dedup();
    let (queue, _) = sweep_queue(&stack.sqs, 3).await;
    let hub = hub_guard_with_queue(&stack, &stack.sdk, &[organization.as_str(), MEMBER_A], Some(&queue));
    let schedule = serde_json::json!({
        "version": "0", "id": unique("sweep-"), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": integration_tests::ACCOUNT, "time": T1, "region": EAST, "resources": [], "detail": {}
    });

    let planned = hub.handle(schedule, &invocation()).await.expect("planned");

    assert_eq!(planned.decision, "sweep-planned");
    assert_eq!(planned.aws_calls.get("Organizations.ListAccounts"), Some(&1), "{:?}", planned.aws_calls);
    let mut queued = Vec::new();
    loop {
        let received =
            stack.sqs.receive_message().queue_url(&queue).max_number_of_messages(10).send().await.expect("receive");
        if received.messages().is_empty() {
            break;
        }
        for message in received.messages() {
            let event: serde_json::Value = serde_json::from_str(message.body().expect("body")).expect("json");
            queued.push(format!(
                "{} {}",
                event["account"].as_str().expect("account"),
                event["region"].as_str().expect("region")
            ));
            let receipt = message.receipt_handle().expect("receipt");
            stack.sqs.delete_message().queue_url(&queue).receipt_handle(receipt).send().await.expect("delete");
        }
    }
    queued.sort();
    let expected: Vec<String> = accounts.iter().flat_map(|a| REGIONS.map(|r| format!("{a} {r}"))).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(queued, expected, "every active account of the organization in every region, once");
}
