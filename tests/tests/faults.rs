//! The four functions against moto as production runs them at its worst (`support::chaos`): every delivery
//! has the deployed budget of three invocations, invocations are killed at a request (before it leaves, or
//! after it took effect and before the answer) or time out, events reach a function twice at once, and every
//! request may meet throttling, 5xx and lost answers. The scenario ends with a retention sweep that deletes.
//! It runs once without chaos and once per seed with it; the end state must be the same: images and tags,
//! tag mutability, lifecycle policies, the ledger, the notifications (each once, but for the messages SNS
//! itself cannot tell apart: published by an invocation that died before marking them sent), nothing
//! protected deleted, and every deletion reported exactly once.

mod support;

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::fault_proxy::{Fault, FaultPlan, FaultProxy, Trigger, sdk_config_via};
use integration_tests::inspector::ImageCoverage;
use integration_tests::{
    SafetyGuard, Stack, envelope, image_action, inspector_finding, seed_basic_scan, seed_inspector_findings, unique,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use support::chaos::{self, ATTEMPTS, Chaos, Figures};
use support::{ALL, Function, Functions, body};

/// What one run of the scenario left behind, with run-specific names (repositories, event ids) replaced by
/// their role, so two runs compare.
#[derive(Debug, PartialEq, Eq)]
struct EndState {
    images: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    mutability: BTreeMap<String, String>,
    lifecycle_policies: BTreeMap<String, Option<String>>,
    ledger: Vec<BTreeMap<String, String>>,
    /// (event, kind) of every notification received, each once.
    notifications: BTreeSet<(String, String)>,
    /// Messages received more than once (SNS delivers what was published twice).
    repeated: u32,
    repeats: Vec<(String, String)>,
    /// Digests each retention notification reported deleted, and how often.
    reported_deleted: BTreeMap<String, u32>,
    deleted: BTreeSet<String>,
}

struct Run {
    prod: String,
    dev: String,
    prefix: String,
    policy: String,
}

impl Run {
    fn new() -> Self {
        Self {
            prod: unique("prod/faults-"),
            dev: unique("dev/faults-"),
            prefix: unique("run-"),
            // Step two of the rollout, with no minimum age: the scenario's images are seconds old.
            policy: integration_tests::enforcing(warden::policy::EMBEDDED_POLICY, Some(0)),
        }
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

/// Five builds of pull request 2, one second apart (ECR ranks by push time), which Inspector scans and sees
/// running nowhere: the development class keeps the newest 3 of each pull request, so the sweep deletes two.
async fn pull_request_builds(stack: &Stack, run: &Run) {
    for build in 1..=5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let tag = format!("pr-2-{build}");
        let digest = stack.push(&run.dev, &tag, Some(&tag)).await;
        let tags = [tag.as_str()];
        let coverage = ImageCoverage {
            repository: &run.dev,
            digest: &digest,
            tags: &tags,
            status: "ACTIVE",
            reason: "SUCCESSFUL",
            last_scanned_at: Some(1_764_320_000),
            in_use: None,
        };
        stack.inspector.cover(&coverage);
    }
}

/// The events, in order: pushes (conforming, not allowed, a protected tag moved), scans (promotion from counts
/// and from findings), a new Inspector finding (demotion), a new repository, a protected tag deleted, a failed
/// replication, and the sweep of both repositories (native policies, and retention that deletes).
/// Returns the development repository's images just before the sweep.
async fn scenario(
    stack: &Stack,
    run: &Run,
    chaos: Option<Chaos>,
    figures: &Mutex<Figures>,
) -> BTreeMap<String, Vec<String>> {
    let digest = |seed: &str| integration_tests::digest_of(&integration_tests::manifest(seed));
    let (release, feature, candidate) = (digest("release"), digest("feature"), digest("candidate"));
    let (pr, wip) = (digest("pr"), digest("wip"));
    let t = |minute: u32| format!("2026-11-28T09:{minute:02}:00Z");
    let deliver = async |name: &str, event: Value| {
        let event = run.named(name, event);
        for function in ALL {
            chaos::deliver(stack, &run.policy, function, (name, &event), chaos, figures).await;
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
    // Inspector lists the image's tags as it found them: promoted.
    deliver("finding-candidate", integration_tests::finding_event(&finding, &["v2.0.0", "v2.0.0-approved"])).await;

    let mut create: Value =
        serde_json::from_str(include_str!("../../events/cloudtrail-create-repository.json")).expect("sample");
    create["detail"]["requestParameters"]["repositoryName"] = run.prod.clone().into();
    deliver("create-repository", create).await;
    deliver("delete-release", image_action("DELETE", &run.prod, &release, Some("v1.0.0"), &t(40))).await;
    let mut replication: Value =
        serde_json::from_str(include_str!("../../events/ecr-replication-failed.json")).expect("sample");
    replication["detail"]["repository-name"] = run.prod.clone().into();
    deliver("replication", replication).await;

    pull_request_builds(stack, run).await;
    let before_sweep = stack.images(&run.dev).await;
    let sweep = envelope("aws.scheduler", "Scheduled Event", json!({"repositories": [run.prod, run.dev]}));
    deliver("sweep", sweep).await;
    before_sweep
}

async fn end_state(stack: &Stack, run: &Run, before_sweep: &BTreeMap<String, Vec<String>>) -> EndState {
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
    // Who held a claim or a lease, when, with which token, and when it expires differ between runs by nature.
    let varying = ["expires_at", "claim", "claimed_at", "holder"];
    let ledger = stack
        .ledger_items()
        .await
        .into_iter()
        .map(|item| {
            // When a removal was recorded is the wall clock's, not the event's.
            let removal = item.get("pk").is_some_and(|pk| pk.starts_with("REMOVAL#"));
            // A backfill records the image's push time, which is moto's wall clock too.
            let backfilled = item.get("what").is_some_and(|w| w == "backfilled")
                || item.get("last_event").is_some_and(|e| run.normalise(e) == "sweep");
            let clock = |k: &str| removal && k == "at" || backfilled && (k == "since" || k == "detail");
            item.into_iter()
                .filter(|(k, _)| !(varying.contains(&k.as_str()) || clock(k)))
                .map(|(k, v)| {
                    let v = run.normalise(&v);
                    // A retention run's claim names the run (a token of its own).
                    let v = match v.split_once('#') {
                        Some((claim, _)) if k == "sk" && claim.starts_with("retention@") => format!("{claim}#<run>"),
                        _ => v,
                    };
                    (k, v)
                })
                .collect()
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let messages = stack.messages().await;
    let all: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            let event = run.normalise(body(m)["event-id"].as_str().unwrap_or_default());
            (event, m["MessageAttributes"]["kind"]["Value"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let notifications: BTreeSet<(String, String)> = all.iter().cloned().collect();
    // A message published twice by nature arrives twice, identical: counted once here (and in `repeated`).
    let distinct: BTreeSet<String> =
        messages.iter().filter(|m| body(m)["kind"] == "retention").map(|m| body(m).to_string()).collect();
    let mut reported_deleted = BTreeMap::new();
    for message in distinct.iter().map(|m| serde_json::json!({"Message": m})) {
        for action in body(&message)["actions"].as_array().into_iter().flatten().filter(|a| a["result"] == "done") {
            let digest = action["action"].as_str().unwrap_or_default().split(' ').nth(1).unwrap_or_default();
            *reported_deleted.entry(digest.to_owned()).or_insert(0) += 1;
        }
    }
    let deleted = before_sweep.keys().filter(|d| !images["dev"].contains_key(*d)).cloned().collect();
    let repeated = u32::try_from(all.len() - notifications.len()).unwrap_or(u32::MAX);
    let mut repeats = all.clone();
    repeats.sort();
    repeats.dedup_by(|a, b| a != b);
    let repeats: Vec<(String, String)> =
        all.iter().filter(|n| all.iter().filter(|m| m == n).count() > 1).cloned().collect();
    EndState {
        images,
        mutability,
        lifecycle_policies,
        ledger,
        notifications,
        repeated,
        repeats,
        reported_deleted,
        deleted,
    }
}

/// Runs the scenario on a stack of its own, with `chaos` or without; returns its end state and figures.
async fn run_scenario(chaos: Option<Chaos>) -> (EndState, Figures) {
    let stack = Stack::new().await;
    let run = Run::new();
    let safety = set_up(&stack, &run).await;
    let figures = Mutex::new(Figures::default());
    let before_sweep = scenario(&stack, &run, chaos, &figures).await;
    for guard in &safety {
        guard.assert_nothing_unsafe_deleted(&stack).await;
    }
    let state = end_state(&stack, &run, &before_sweep).await;
    (state, figures.into_inner().expect("figures"))
}

fn seeds() -> std::ops::RangeInclusive<u64> {
    // More seeds or rates: WARDEN_FAULT_SEEDS=1-50 WARDEN_FAULT_RATE=0.1 WARDEN_DEATH_RATE=0.5 cargo test ...
    let seeds = std::env::var("WARDEN_FAULT_SEEDS").unwrap_or_else(|_| "1-3".into());
    let (first, last) = seeds.split_once('-').unwrap_or((&seeds, &seeds));
    first.trim().parse::<u64>().expect("seed")..=last.trim().parse::<u64>().expect("seed")
}

fn rate(variable: &str, default: f64) -> f64 {
    std::env::var(variable).map_or(default, |r| r.parse().expect("a rate"))
}

#[tokio::test]
async fn kills_timeouts_duplicates_and_faults_leave_the_same_end_state_with_nothing_lost_or_doubled() {
    let (expected, clean) = run_scenario(None).await;
    // The scenario does what it says: every notifying event told once, and the sweep deleted two builds.
    let events: BTreeSet<&String> = expected.notifications.iter().map(|(e, _)| e).collect();
    assert_eq!(
        (expected.notifications.len(), events.len(), expected.repeated),
        (12, 10, 0),
        "{:?}",
        expected.notifications
    );
    assert_eq!(expected.deleted.len(), 2, "the sweep deleted the two oldest builds of pull request 2");
    assert!(expected.lifecycle_policies.values().all(Option::is_some), "both repositories carry their policy");
    // Every call a function made is one its role in the template allows.
    for (function, calls) in &clean.calls {
        let denied = integration_tests::calls_its_role_denies(function, calls);
        assert!(denied.is_empty(), "{function}Role in infra/template.yaml lacks {denied:?}");
    }

    let (fault_rate, death_rate, duplicate_rate) =
        (rate("WARDEN_FAULT_RATE", 0.05), rate("WARDEN_DEATH_RATE", 0.4), rate("WARDEN_DUPLICATE_RATE", 0.3));
    for seed in seeds() {
        let chaos = Chaos { seed, fault_rate, death_rate, duplicate_rate };
        let (state, figures) = run_scenario(Some(chaos)).await;
        println!(
            "seed {seed}: {} events, {} deliveries ({} duplicated), {} invocations (budget {ATTEMPTS} each), {} deaths \
             ({} killed before a request, {} after, {} timed out), {} errors retried, {} faults injected; lost \
             actions 0, double actions 0, notifications {} of {} ({} published twice by nature, {} received twice), \
             {} deletions each reported once",
            events.len() + 3,
            figures.deliveries,
            figures.duplicated,
            figures.invocations,
            figures.deaths(),
            figures.killed_before,
            figures.killed_after,
            figures.timed_out,
            figures.errors_retried,
            figures.faults,
            state.notifications.len(),
            expected.notifications.len(),
            figures.published_twice_by_nature,
            state.repeated,
            state.deleted.len(),
        );
        assert_eq!(state.images, expected.images, "seed {seed}: images and tags");
        assert_eq!(state.mutability, expected.mutability, "seed {seed}: tag mutability");
        assert_eq!(state.lifecycle_policies, expected.lifecycle_policies, "seed {seed}: lifecycle policies");
        assert_eq!(state.notifications, expected.notifications, "seed {seed}: every notification, none lost");
        assert!(
            state.repeated <= figures.published_twice_by_nature,
            "seed {seed}: {} messages received twice, {} published twice by nature: {:?}\ndeaths:\n{}",
            state.repeated,
            figures.published_twice_by_nature,
            state.repeats,
            figures.deaths_seen.join("\n")
        );
        assert_eq!(state.deleted, expected.deleted, "seed {seed}: the same deletions");
        let reported: BTreeSet<&String> = state.reported_deleted.keys().collect();
        assert_eq!(reported, state.deleted.iter().collect(), "seed {seed}: every deletion reported");
        let twice: Vec<_> = state.reported_deleted.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "seed {seed}: deletions reported in two different messages: {twice:?}");
        // A lease an invocation was killed holding stays until it runs out: that is what it is for. The
        // fault-free run leaves none.
        let lease = |i: &&BTreeMap<String, String>| i.get("pk").is_some_and(|pk| pk.starts_with("LEASE#"));
        assert!(!expected.ledger.iter().any(|i| lease(&i)), "the fault-free run released every lease");
        let missing: Vec<_> = expected.ledger.iter().filter(|i| !state.ledger.contains(i)).collect();
        let unexpected: Vec<_> =
            state.ledger.iter().filter(|i| !expected.ledger.contains(i)).filter(|i| !lease(i)).collect();
        assert!(
            missing.is_empty() && unexpected.is_empty(),
            "seed {seed}: ledger differs: missing {missing:#?}\nextra {unexpected:#?}"
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
    proxy.set_plan(FaultPlan::new(8).fail("ecr", None, Fault::Throttle, Trigger::First(6)));
    let push = image_action("PUSH", &repo, &digest, Some("not-allowed"), "2026-11-28T10:00:00Z");
    let (outcome, failures) = functions.deliver(Function::TagGuard, &push, ATTEMPTS).await;
    assert_eq!(failures, 2, "two invocations throttled past the SDK's retries, the third of the budget succeeds");
    assert_eq!(outcome.decision, "not-allowed");
    assert_eq!(stack.tags_of(&repo, &digest).await, Some(vec![format!("quarantine-{}", &digest[7..19])]));
    assert_eq!(support::kinds(&stack.messages().await), vec!["tag-not-allowed"]);
    safety.assert_nothing_unsafe_deleted(&stack).await;
}
