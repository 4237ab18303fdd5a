//! The gate's and the door's guarantees, tried as an adversary would against moto: approval and quarantine tags
//! pushed by hand, findings closed for the wrong reasons, scan events claiming more than the registry knows, late
//! and replayed events, and events about other accounts and regions. Every test reads the registry back: the tags
//! an image carries at the end are what a deploy pipeline would trust.

mod support;

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::inspector::ImageCoverage;
use integration_tests::{
    Stack, envelope, image_action, inspector_finding, invocation, seed_basic_scan, seed_basic_scan_completed,
    seed_inspector_findings, unique,
};
use scan_gate::ScanGate;
use serde_json::{Value, json};
use support::{ALL, Function, Functions, body, kinds};
use warden::aws::Clients;
use warden::config::Config;
use warden::policy::Policy;

fn d12(digest: &str) -> &str {
    &digest[7..19]
}

/// A repository of `class_prefix` (`prod/`, `dev/`) with its own name.
async fn repository(stack: &Stack, prefix: &str) -> String {
    let name = unique(prefix);
    stack.create_repository(&name, ImageTagMutability::Mutable).await;
    name
}

fn basic_scan(repository: &str, digest: &str, tags: &[&str], counts: Value, time: &str) -> Value {
    let mut event = envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({"scan-status": "COMPLETE", "repository-name": repository, "image-digest": digest,
            "image-tags": tags, "finding-severity-counts": counts}),
    );
    event["time"] = time.into();
    event
}

/// An `Inspector2 Finding` event about `digest` with `status`, as EventBridge carries it (string timestamps).
fn finding_event(repository: &str, digest: &str, tag: &str, id: &str, status: &str) -> Value {
    let mut finding = inspector_finding(repository, digest, tag, id, "HIGH", "YES");
    finding["status"] = status.into();
    integration_tests::finding_event(&finding, &[tag])
}

fn coverage<'a>(repository: &'a str, digest: &'a str, status: &'a str, reason: &'a str) -> ImageCoverage<'a> {
    ImageCoverage { repository, digest, tags: &[], status, reason, last_scanned_at: Some(1_764_320_000), in_use: None }
}

#[tokio::test]
async fn promotion_tags_pushed_by_hand_are_removed_whatever_their_template() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let (prod, dev) = (repository(&stack, "prod/forge-").await, repository(&stack, "dev/forge-").await);
    // `{tag}-approved` (production) and `approved-{digest12}` (development), each on an image no scan passed.
    let release = stack.push(&prod, "forged-release", Some("v1.2.3")).await;
    stack.push(&prod, "forged-release", Some("v1.2.3-approved")).await;
    let build = stack.push(&dev, "forged-build", Some("pr-9")).await;
    let forged_dev = format!("approved-{}", d12(&build));
    stack.push(&dev, "forged-build", Some(&forged_dev)).await;
    let safety = [stack.safety_snapshot(&prod).await, stack.safety_snapshot(&dev).await];

    for (repo, digest, tag) in [(&prod, &release, "v1.2.3-approved"), (&dev, &build, forged_dev.as_str())] {
        let event = image_action("PUSH", repo, digest, Some(tag), "2026-11-28T09:00:00Z");
        let outcome = functions.tag_guard.handle(event, &invocation()).await.expect("handled");
        assert_eq!(outcome.decision, "forged-approval", "{tag}: {outcome:?}");
    }

    assert_eq!(stack.tags_of(&prod, &release).await, Some(vec!["v1.2.3".to_owned()]), "forged approval gone");
    assert_eq!(stack.tags_of(&dev, &build).await, Some(vec!["pr-9".to_owned()]), "forged approval gone");
    let messages = stack.messages().await;
    assert_eq!(kinds(&messages), vec!["forged-approval", "forged-approval"]);
    assert!(messages.iter().all(|m| body(m)["severity"] == "critical"));
    for guard in &safety {
        guard.assert_nothing_unsafe_deleted(&stack).await;
    }
}

#[tokio::test]
async fn a_forged_approval_that_is_the_images_only_tag_leaves_it_quarantined_not_deleted() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let dev = repository(&stack, "dev/forge-only-").await;
    let digest = integration_tests::digest_of(&integration_tests::manifest("only-forged"));
    let forged = format!("approved-{}", d12(&digest));
    stack.push(&dev, "only-forged", Some(&forged)).await;

    let event = image_action("PUSH", &dev, &digest, Some(&forged), "2026-11-28T09:00:00Z");
    let outcome = functions.tag_guard.handle(event, &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    let quarantine = format!("quarantine-{}", d12(&digest));
    assert_eq!(stack.tags_of(&dev, &digest).await, Some(vec![quarantine.clone()]), "kept reachable, approval gone");

    // ECR reports the quarantine tag's push: recorded by tag-guard before it was added, so it is its own.
    let echo = image_action("PUSH", &dev, &digest, Some(&quarantine), "2026-11-28T09:00:01Z");
    let outcome = functions.tag_guard.handle(echo, &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "recorded", "{outcome:?}");
    assert_eq!(stack.tags_of(&dev, &digest).await, Some(vec![quarantine]));
}

#[tokio::test]
async fn a_quarantine_tag_pushed_by_hand_is_removed() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let prod = repository(&stack, "prod/forge-q-").await;
    let digest = stack.push(&prod, "q", Some("v2.0.0")).await;
    let forged = format!("quarantine-{}", d12(&digest));
    stack.push(&prod, "q", Some(&forged)).await;

    let event = image_action("PUSH", &prod, &digest, Some(&forged), "2026-11-28T09:00:00Z");
    let outcome = functions.tag_guard.handle(event, &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    assert_eq!(stack.tags_of(&prod, &digest).await, Some(vec!["v2.0.0".to_owned()]));
}

#[tokio::test]
async fn an_earned_approval_stays_and_the_sweep_removes_only_what_nobody_recorded() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let prod = repository(&stack, "prod/earned-").await;
    let earned = stack.push(&prod, "earned", Some("v3.0.0")).await;
    seed_basic_scan(&stack, &prod, &earned, json!([])).await;
    let scan = basic_scan(&prod, &earned, &["v3.0.0"], json!({}), "2026-11-28T09:00:00Z");
    assert_eq!(functions.scan_gate.handle(scan, &invocation()).await.expect("gate").decision, "promoted");
    // Its push event reaches tag-guard: the approval is on record.
    let echo = image_action("PUSH", &prod, &earned, Some("v3.0.0-approved"), "2026-11-28T09:00:01Z");
    assert_eq!(functions.tag_guard.handle(echo, &invocation()).await.expect("guard").decision, "recorded");
    // Pushed by hand while tag-guard was down: no event ever reached it.
    let sneaked = stack.push(&prod, "sneaked", Some("v3.0.1")).await;
    stack.push(&prod, "sneaked", Some("v3.0.1-approved")).await;
    stack.messages().await;

    let sweep = envelope("aws.events", "Scheduled Event", json!({"repositories": [prod]}));
    let outcome = functions.tag_guard.handle(sweep, &invocation()).await.expect("sweep");

    assert_eq!(outcome.decision, "forged-approval", "{outcome:?}");
    let mut earned_tags = vec!["v3.0.0".to_owned(), "v3.0.0-approved".to_owned()];
    earned_tags.sort();
    assert_eq!(stack.tags_of(&prod, &earned).await, Some(earned_tags), "the earned approval stays");
    assert_eq!(stack.tags_of(&prod, &sneaked).await, Some(vec!["v3.0.1".to_owned()]), "the sneaked one goes");
    assert!(kinds(&stack.messages().await).contains(&"forged-approval".to_owned()));
}

/// The scan-gate of the embedded policy with Inspector's ListCoverage from the stack's stand-in.
fn gate_with(stack: &Stack, policy: &str) -> ScanGate {
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        ..Config::default()
    };
    let clients = Clients::new(&stack.sdk);
    let inspector = clients.inspector(&stack.inspector_sdk());
    ScanGate::new(Policy::from_toml(policy, "test.toml").expect("policy"), config, clients, inspector).expect("gate")
}

#[tokio::test]
async fn findings_that_close_promote_only_an_image_inspector_actively_scans() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let prod = repository(&stack, "prod/closed-").await;
    let cases = [
        ("unscanned", "CLOSED", None, "does not cover"),
        ("expired", "CLOSED", Some(("INACTIVE", "SCAN_ELIGIBILITY_EXPIRED")), "SCAN_ELIGIBILITY_EXPIRED"),
        ("pending", "CLOSED", Some(("ACTIVE", "PENDING_INITIAL_SCAN")), "not complete"),
        ("suppressed", "SUPPRESSED", Some(("ACTIVE", "SUCCESSFUL")), "suppress"),
        ("scanned", "CLOSED", Some(("ACTIVE", "SUCCESSFUL")), ""),
    ];
    for (n, (name, status, covered, why)) in cases.iter().enumerate() {
        let tag = format!("v4.0.{n}");
        let digest = stack.push(&prod, name, Some(&tag)).await;
        if let Some((code, reason)) = covered {
            stack.inspector.cover(&coverage(&prod, &digest, code, reason));
        }
        // No ACTIVE finding is left on the image.
        seed_inspector_findings(json!([[]]));
        let event = finding_event(&prod, &digest, &tag, &format!("CVE-2026-70{n:02}"), status);
        let outcome = functions.scan_gate.handle(event, &invocation()).await.expect("handled");
        let approved = format!("{tag}-approved");
        let tags = stack.tags_of(&prod, &digest).await.unwrap_or_default();
        if why.is_empty() {
            assert_eq!(outcome.decision, "promoted", "{name}: {outcome:?}");
            assert!(tags.contains(&approved), "{name}: {tags:?}");
        } else {
            assert_eq!(outcome.decision, "not-promoted", "{name}: {outcome:?}");
            assert!(outcome.reasons.iter().any(|r| r.contains(why)), "{name}: {:?}", outcome.reasons);
            assert_eq!(tags, vec![tag.clone()], "{name}: no promotion tag");
        }
    }
}

#[tokio::test]
async fn a_scan_event_is_never_taken_at_its_word() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let dev = repository(&stack, "dev/word-").await;
    // No scan in the registry at all (DescribeImageScanFindings: ScanNotFoundException), empty counts.
    let unscanned = stack.push(&dev, "unscanned", Some("pr-1")).await;
    let event = basic_scan(&dev, &unscanned, &["pr-1"], json!({}), "2026-11-28T09:00:00Z");
    let outcome = functions.scan_gate.handle(event, &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-scanned");
    assert_eq!(stack.tags_of(&dev, &unscanned).await, Some(vec!["pr-1".to_owned()]));

    // The registry's scan found a CRITICAL the event does not mention.
    let understated = stack.push(&dev, "understated", Some("pr-2")).await;
    let critical = json!({"name": "CVE-2026-9001", "severity": "CRITICAL", "uri": "https://nvd.nist.gov"});
    seed_basic_scan(&stack, &dev, &understated, json!([critical])).await;
    let event = basic_scan(&dev, &understated, &["pr-2"], json!({"LOW": 1}), "2026-11-28T09:00:00Z");
    let outcome = functions.scan_gate.handle(event, &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "blocked");
    assert!(outcome.reasons.iter().any(|r| r.contains("disagree")), "{:?}", outcome.reasons);
    assert_eq!(stack.tags_of(&dev, &understated).await, Some(vec!["pr-2".to_owned()]));
}

#[tokio::test]
async fn a_passing_scan_replayed_after_a_demotion_does_not_promote_again() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let prod = repository(&stack, "prod/replayed-").await;
    let digest = stack.push(&prod, "replayed", Some("v5.0.0")).await;
    // Scanned clean at 09:00 (basic scanning knows nothing of what Inspector finds later).
    seed_basic_scan_completed(&stack, &prod, &digest, json!([]), Some(1_764_320_400)).await;
    let scan = basic_scan(&prod, &digest, &["v5.0.0"], json!({}), "2026-11-28T09:00:00Z");
    assert_eq!(functions.scan_gate.handle(scan.clone(), &invocation()).await.expect("gate").decision, "promoted");
    // 09:30: a new HIGH finding with a fix demotes it.
    let finding = inspector_finding(&prod, &digest, "v5.0.0", "CVE-2026-8000", "HIGH", "YES");
    seed_inspector_findings(json!([[finding]]));
    let event = finding_event(&prod, &digest, "v5.0.0", "CVE-2026-8000", "ACTIVE");
    assert_eq!(functions.scan_gate.handle(event, &invocation()).await.expect("demote").decision, "demoted");
    assert_eq!(stack.tags_of(&prod, &digest).await, Some(vec!["v5.0.0".to_owned()]));

    // EventBridge delivers the 09:00 scan again (or someone replays it).
    let replay = functions.scan_gate.handle(scan, &invocation()).await.expect("replay");

    assert_eq!(replay.decision, "skipped", "{replay:?}");
    assert_eq!(stack.tags_of(&prod, &digest).await, Some(vec!["v5.0.0".to_owned()]), "still demoted");
}

#[tokio::test]
async fn an_allowlist_entry_that_expired_since_the_event_no_longer_applies() {
    let stack = Stack::new().await;
    let gate = gate_with(
        &stack,
        r#"
version = 1
default-class = "c"
[[class]]
name = "c"
[class.gate]
max = { critical = 0 }
promote = ["approved-{digest12}"]
[[class.gate.allow]]
id = "CVE-2026-31337"
reason = "accepted until the end of January"
expires = 2026-01-31
"#,
    );
    let repo = repository(&stack, "team/allow-").await;
    let digest = stack.push(&repo, "allow", Some("build-1")).await;
    let critical = json!({"name": "CVE-2026-31337", "severity": "CRITICAL", "uri": "https://nvd.nist.gov"});
    seed_basic_scan(&stack, &repo, &digest, json!([critical])).await;
    // An event from mid-January, delivered late (or replayed) now.
    let event = basic_scan(&repo, &digest, &["build-1"], json!({"CRITICAL": 1}), "2026-01-15T10:00:00Z");
    let outcome = gate.handle(event, &invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "blocked");
    assert_eq!(outcome.gate.as_ref().map(|g| g.expired.len()), Some(1));
    assert_eq!(stack.tags_of(&repo, &digest).await, Some(vec!["build-1".to_owned()]));
}

#[tokio::test]
async fn events_of_other_accounts_and_regions_change_nothing_in_any_function() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let prod = repository(&stack, "prod/foreign-").await;
    let digest = stack.push(&prod, "foreign", Some("feature-x")).await;
    seed_basic_scan(&stack, &prod, &digest, json!([])).await;
    let before = stack.images(&prod).await;
    let events = [
        image_action("PUSH", &prod, &digest, Some("feature-x"), "2026-11-28T09:00:00Z"),
        basic_scan(&prod, &digest, &["feature-x"], json!({}), "2026-11-28T09:00:00Z"),
        envelope("aws.events", "Scheduled Event", json!({"repositories": [prod]})),
    ];
    for (account, region) in [("999999999999", "us-east-1"), ("123456789012", "eu-west-1")] {
        for event in &events {
            let mut event = event.clone();
            event["account"] = account.into();
            event["region"] = region.into();
            for function in ALL {
                let outcome = functions.invoke(function, &event).await.expect("skipped, not an error");
                assert_eq!(outcome.decision, "skipped", "{function:?} {account} {region}: {outcome:?}");
                assert!(outcome.aws_calls.is_empty(), "{function:?}: {:?}", outcome.aws_calls);
            }
        }
    }
    assert_eq!(stack.images(&prod).await, before, "the not-allowed tag of the foreign push is still there");
    assert!(stack.messages().await.is_empty());
    // The same push from this account is acted on.
    let home = image_action("PUSH", &prod, &digest, Some("feature-x"), "2026-11-28T09:00:00Z");
    let outcome = functions.invoke(Function::TagGuard, &home).await.expect("handled");
    assert_eq!(outcome.decision, "not-allowed");
}
