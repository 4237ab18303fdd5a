//! The four functions against moto through the fault-injecting proxy (`integration_tests::fault_proxy`): the same
//! scenario runs once directly and once with ECR, DynamoDB, SNS and Inspector throttling, 5xx and lost
//! responses injected, each event delivered the way EventBridge does (a failed invocation is retried). The end
//! state must be the same: images and tags, tag mutability, lifecycle policies, the ledger, and exactly the same
//! notifications, each once.

mod support;

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::fault_proxy::{Fault, FaultPlan, FaultProxy, ProxyStats, Trigger, sdk_config_via};
use integration_tests::{
    SafetyGuard, Stack, envelope, image_action, inspector_finding, seed_basic_scan, seed_inspector_findings, unique,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::{ALL, Function, Functions, body};

/// Invocations EventBridge (here: the test) makes before giving up on an event: Lambda's asynchronous
/// invocation retries twice, EventBridge's retry policy more; 10 is plenty for the injected fault rates.
const ATTEMPTS: u32 = 10;

/// What one run of the scenario left behind, with run-specific names (repositories, event ids) replaced by
/// their role, so two runs compare.
#[derive(Debug, PartialEq, Eq)]
struct EndState {
    images: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    mutability: BTreeMap<String, String>,
    lifecycle_policies: BTreeMap<String, Option<String>>,
    ledger: Vec<BTreeMap<String, String>>,
    /// (event, kind) of every notification received, sorted.
    notifications: Vec<(String, String)>,
}

struct Run {
    prod: String,
    dev: String,
    prefix: String,
}

impl Run {
    fn new() -> Self {
        Self { prod: unique("prod/faults-"), dev: unique("dev/faults-"), prefix: unique("run-") }
    }

    fn normalise(&self, text: &str) -> String {
        text.replace(&self.prod, "<prod>").replace(&self.dev, "<dev>").replace(&format!("{}-", self.prefix), "")
    }

    /// An event with a run-specific id (`<run>-<name>`), so the ledger and messages can be compared by name.
    fn named(&self, name: &str, mut event: Value) -> Value {
        event["id"] = format!("{}-{name}", self.prefix).into();
        event
    }
}

/// The scenario's images: (repository role, seed, tags).
async fn set_up(stack: &Stack, run: &Run) -> Vec<SafetyGuard> {
    stack.create_repository(&run.prod, ImageTagMutability::Mutable).await;
    stack.create_repository(&run.dev, ImageTagMutability::Mutable).await;
    for tag in ["v1.0.0", "sha-aaaaaaa"] {
        stack.push(&run.prod, "release", Some(tag)).await;
    }
    stack.push(&run.prod, "feature", Some("feature-x")).await;
    stack.push(&run.prod, "candidate", Some("v2.0.0")).await;
    stack.push_index(&run.prod, "multiarch", "v3.0.0").await;
    stack.push(&run.dev, "pr", Some("pr-1")).await;
    stack.push(&run.dev, "wip", Some("wip")).await;
    vec![stack.safety_snapshot(&run.prod).await, stack.safety_snapshot(&run.dev).await]
}

/// The events, in order: pushes (conforming, not allowed, a protected tag moved), scans (promotion from counts
/// and from findings), a new Inspector finding (demotion), a new repository, a protected tag deleted, a failed
/// replication.
async fn scenario(stack: &Stack, functions: &Functions, run: &Run) -> u32 {
    let digest = |seed: &str| integration_tests::digest_of(&integration_tests::manifest(seed));
    let (release, feature, candidate) = (digest("release"), digest("feature"), digest("candidate"));
    let (pr, wip) = (digest("pr"), digest("wip"));
    let t = |minute: u32| format!("2026-11-28T09:{minute:02}:00Z");
    let mut failures = 0;
    let mut deliver = async |name: &str, event: Value| {
        let event = run.named(name, event);
        for function in ALL {
            failures += functions.deliver(function, &event, ATTEMPTS).await.1;
        }
    };

    deliver("push-release", image_action("PUSH", &run.prod, &release, Some("v1.0.0"), &t(0))).await;
    deliver("push-feature", image_action("PUSH", &run.prod, &feature, Some("feature-x"), &t(1))).await;
    // Someone moves the release tag (the repository predates ecr-warden: MUTABLE).
    let moved = stack.push(&run.prod, "hotfix", Some("v1.0.0")).await;
    deliver("push-moved", image_action("PUSH", &run.prod, &moved, Some("v1.0.0"), &t(2))).await;
    deliver("push-pr", image_action("PUSH", &run.dev, &pr, Some("pr-1"), &t(3))).await;
    deliver("push-wip", image_action("PUSH", &run.dev, &wip, Some("wip"), &t(4))).await;

    let scan = |repository: &str, digest: &str, tags: &[&str], counts: Value| {
        let detail = json!({"scan-status": "COMPLETE", "repository-name": repository, "image-digest": digest,
            "image-tags": tags, "finding-severity-counts": counts});
        envelope("aws.ecr", "ECR Image Scan", detail)
    };
    let high = |id: &str| json!({"name": id, "severity": "HIGH", "uri": "https://nvd.nist.gov"});
    seed_basic_scan(stack, &run.dev, &pr, json!([high("CVE-2026-0001"), high("CVE-2026-0002")])).await;
    deliver("scan-pr", scan(&run.dev, &pr, &["pr-1"], json!({"HIGH": 2}))).await;
    seed_basic_scan(stack, &run.prod, &candidate, json!([])).await;
    deliver("scan-candidate", scan(&run.prod, &candidate, &["v2.0.0"], json!({}))).await;

    let finding = inspector_finding(&run.prod, &candidate, "v2.0.0", "CVE-2026-7777", "CRITICAL", "YES");
    seed_inspector_findings(json!([[finding.clone()]]));
    let mut detail = finding;
    for key in ["firstObservedAt", "lastObservedAt", "updatedAt"] {
        detail[key] = "Sat Nov 28 09:30:00.000 UTC 2026".into();
    }
    let image = &mut detail["resources"][0]["details"]["awsEcrContainerImage"];
    image["pushedAt"] = "Sat Nov 28 08:00:00.000 UTC 2026".into();
    // Inspector lists the image's tags as it found them: promoted.
    image["imageTags"] = json!(["v2.0.0", "v2.0.0-approved"]);
    deliver("finding-candidate", envelope("aws.inspector2", "Inspector2 Finding", detail)).await;

    let mut create: Value =
        serde_json::from_str(include_str!("../../events/cloudtrail-create-repository.json")).expect("sample");
    create["detail"]["requestParameters"]["repositoryName"] = run.prod.clone().into();
    deliver("create-repository", create).await;
    deliver("delete-release", image_action("DELETE", &run.prod, &release, Some("v1.0.0"), &t(40))).await;
    let mut replication: Value =
        serde_json::from_str(include_str!("../../events/ecr-replication-failed.json")).expect("sample");
    replication["detail"]["repository-name"] = run.prod.clone().into();
    deliver("replication", replication).await;
    failures
}

async fn end_state(stack: &Stack, run: &Run) -> EndState {
    let mut images = BTreeMap::new();
    let mut mutability = BTreeMap::new();
    let mut lifecycle_policies = BTreeMap::new();
    for (role, repository) in [("prod", &run.prod), ("dev", &run.dev)] {
        lifecycle_policies.insert(role.to_owned(), stack.lifecycle_policy(repository).await);
        images.insert(role.to_owned(), stack.images(repository).await);
        let described = stack.ecr.describe_repositories().repository_names(repository).send().await.expect("describe");
        let repo = &described.repositories()[0];
        let filters: Vec<&str> = repo.image_tag_mutability_exclusion_filters().iter().map(|f| f.filter()).collect();
        mutability.insert(role.to_owned(), format!("{:?} {filters:?}", repo.image_tag_mutability()));
    }
    let ledger = stack
        .ledger_items()
        .await
        .into_iter()
        .map(|item| {
            item.into_iter()
                // When a claim was written, which token it carries and which request holds it differ between
                // runs by nature.
                .filter(|(k, _)| !["expires_at", "claim", "claimed_at", "holder"].contains(&k.as_str()))
                .map(|(k, v)| (k, run.normalise(&v)))
                .collect()
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut notifications: Vec<(String, String)> = stack
        .messages()
        .await
        .iter()
        .map(|m| {
            let event = run.normalise(body(m)["event-id"].as_str().unwrap_or_default());
            (event, m["MessageAttributes"]["kind"]["Value"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    notifications.sort();
    EndState { images, mutability, lifecycle_policies, ledger, notifications }
}

/// Runs the scenario on a stack of its own with the functions' clients going through a fault proxy with `plan`
/// (or straight to moto), and returns the end state, how many invocations failed (and were retried), and what
/// the proxy saw.
async fn run_scenario(plan: Option<FaultPlan>) -> (EndState, u32, Option<ProxyStats>) {
    let stack = Stack::new().await;
    let proxy = match plan {
        Some(plan) => Some(FaultProxy::in_front_of(&stack, plan).await),
        None => None,
    };
    let sdk = match &proxy {
        Some(proxy) => sdk_config_via(proxy).await,
        None => stack.sdk.clone(),
    };
    let functions = Functions::enforcing(&stack, &sdk);
    let run = Run::new();
    let safety = set_up(&stack, &run).await;
    let failures = scenario(&stack, &functions, &run).await;
    for guard in &safety {
        guard.assert_nothing_unsafe_deleted(&stack).await;
    }
    (end_state(&stack, &run).await, failures, proxy.map(|p| p.stats()))
}

/// Throttling, 5xx and (where a retry is safe to detect) lost responses on every service the functions call.
fn plan(seed: u64, rate: f64) -> FaultPlan {
    let mut plan = FaultPlan::new(seed);
    for service in ["ecr", "dynamodb", "sns", "inspector2"] {
        plan = plan
            .fail(service, None, Fault::Throttle, Trigger::Probability(rate))
            .fail(service, None, Fault::ServerError, Trigger::Probability(rate / 2.0))
            .fail(service, None, Fault::Unavailable, Trigger::Probability(rate / 4.0));
    }
    // Lost responses (the write happened, the caller saw a 503): every ECR write, the ledger's conditional
    // writes and the notification claims. Not SNS Publish: SNS cannot tell a retried publish from a new one
    // (standard topics are at-least-once), so a lost Publish response is a duplicate message by nature.
    for (service, operation) in [
        ("ecr", "PutImage"),
        ("ecr", "BatchDeleteImage"),
        ("ecr", "PutImageTagMutability"),
        ("ecr", "PutLifecyclePolicy"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "PutItem"),
        ("dynamodb", "TransactWriteItems"),
        ("dynamodb", "DeleteItem"),
    ] {
        plan = plan.fail(service, Some(operation), Fault::ResponseLost, Trigger::Probability(rate / 2.0));
    }
    plan
}

#[tokio::test]
async fn injected_faults_leave_the_same_end_state_with_no_lost_or_double_action() {
    let (expected, failures, _) = run_scenario(None).await;
    assert_eq!(failures, 0, "no faults, no failed invocation");
    // The scenario does what it says: one notification for each of the nine notifying events, two for the new
    // repository (tag mutability fixed, lifecycle policy set).
    let events: std::collections::BTreeSet<&String> = expected.notifications.iter().map(|(e, _)| e).collect();
    assert_eq!((expected.notifications.len(), events.len()), (10, 9), "{:?}", expected.notifications);
    assert!(expected.lifecycle_policies["prod"].is_some(), "lifecycle gave the new repository its class's policy");

    // More seeds or another rate: WARDEN_FAULT_SEEDS=1-50 WARDEN_FAULT_RATE=0.3 scripts/test (or cargo test).
    let seeds = std::env::var("WARDEN_FAULT_SEEDS").unwrap_or_else(|_| "1-3".into());
    let (first, last) = seeds.split_once('-').unwrap_or((&seeds, &seeds));
    let seeds = first.trim().parse::<u64>().expect("seed")..=last.trim().parse::<u64>().expect("seed");
    let rate = std::env::var("WARDEN_FAULT_RATE").map_or(0.2, |r| r.parse().expect("rate"));
    for seed in seeds {
        let (state, failures, stats) = run_scenario(Some(plan(seed, rate))).await;
        let stats = stats.expect("proxy stats");
        println!(
            "seed {seed}: {} requests, {} faults injected ({:?}), {failures} failed invocations retried",
            stats.requests.values().sum::<u32>(),
            stats.total_faults(),
            stats.faults
        );
        assert!(stats.total_faults() >= 5, "the plan injected faults: {stats:?}");
        assert_eq!(state.images, expected.images, "seed {seed}: images and tags");
        assert_eq!(state.mutability, expected.mutability, "seed {seed}: tag mutability");
        assert_eq!(state.lifecycle_policies, expected.lifecycle_policies, "seed {seed}: lifecycle policies");
        assert_eq!(state.notifications, expected.notifications, "seed {seed}: notifications (each exactly once)");
        let missing: Vec<_> = expected.ledger.iter().filter(|i| !state.ledger.contains(i)).collect();
        let extra: Vec<_> = state.ledger.iter().filter(|i| !expected.ledger.contains(i)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "seed {seed}: ledger differs: missing {missing:#?}\nextra {extra:#?}"
        );
    }
}

/// A service that stays down fails the invocation (retryably) every time, without a partial action: once it
/// comes back, EventBridge's next retry completes the work exactly once.
#[tokio::test]
async fn a_service_down_for_a_while_fails_invocations_until_it_recovers() {
    let stack = Stack::new().await;
    let down = FaultPlan::new(7).fail("sns", Some("Publish"), Fault::Unavailable, Trigger::Always);
    let proxy = FaultProxy::in_front_of(&stack, down).await;
    let functions = Functions::new(&stack, &sdk_config_via(&proxy).await);
    let mut event: Value =
        serde_json::from_str(include_str!("../../events/ecr-pull-through-cache-failed.json")).expect("sample");
    event["id"] = unique("event-").into();

    for _ in 0..3 {
        let error = functions.invoke(Function::Notify, &event).await.expect_err("SNS is down");
        assert!(error.is_retryable(), "{error}");
        assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "Retryable.AwsError");
    }
    assert_eq!(proxy.stats().faults_of("sns.Publish"), 9, "3 invocations x the SDK's 3 attempts");
    assert!(stack.messages().await.is_empty());

    proxy.set_plan(FaultPlan::new(0));
    let (outcome, _) = functions.deliver(Function::Notify, &event, ATTEMPTS).await;
    assert!(outcome.notified);
    assert_eq!(stack.messages().await.len(), 1, "exactly one message once SNS is back");
    let (replay, _) = functions.deliver(Function::Notify, &event, ATTEMPTS).await;
    assert_eq!(replay.decision, "already-notified");
    assert!(stack.messages().await.is_empty());

    // ECR down while tag-guard must untag: nothing half-done, then done once.
    let repo = unique("dev/down-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let digest = stack.push(&repo, "down", Some("not-allowed")).await;
    let safety = stack.safety_snapshot(&repo).await;
    proxy.set_plan(FaultPlan::new(8).fail("ecr", None, Fault::Throttle, Trigger::First(9)));
    let push = image_action("PUSH", &repo, &digest, Some("not-allowed"), "2026-11-28T10:00:00Z");
    let (outcome, failures) = functions.deliver(Function::TagGuard, &push, ATTEMPTS).await;
    assert_eq!(failures, 3, "three invocations throttled past the SDK's retries");
    assert_eq!(outcome.decision, "not-allowed");
    assert_eq!(stack.tags_of(&repo, &digest).await, Some(vec![format!("quarantine-{}", &digest[7..19])]));
    assert_eq!(support::kinds(&stack.messages().await), vec!["tag-not-allowed"]);
    safety.assert_nothing_unsafe_deleted(&stack).await;
}
