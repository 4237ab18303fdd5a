//! scan-gate end to end against moto: seeded ECR scan results and Inspector findings, the real handler,
//! promotion tags in ECR and the messages subscribers receive.

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::{
    Stack, envelope, inspector_finding, invocation, seed_basic_scan, seed_inspector_findings, unique,
};
use scan_gate::ScanGate;
use serde_json::json;
use warden::aws::Clients;
use warden::config::Config;
use warden::policy::{EMBEDDED_POLICY, Policy};

fn gate(stack: &Stack) -> ScanGate {
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("valid policy");
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        dry_run: false,
        ..Config::default()
    };
    let clients = Clients::new(&stack.sdk);
    let inspector = clients.inspector(&stack.inspector_sdk());
    ScanGate::new(policy, config, clients, inspector).expect("scan-gate")
}

fn basic_scan(repository: &str, digest: &str, tags: &[&str], counts: serde_json::Value) -> serde_json::Value {
    envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({
            "scan-status": "COMPLETE", "repository-name": repository, "image-digest": digest,
            "image-tags": tags, "finding-severity-counts": counts
        }),
    )
}

fn kinds(messages: &[serde_json::Value]) -> Vec<String> {
    messages.iter().filter_map(|m| m["MessageAttributes"]["kind"]["Value"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_passing_scan_is_confirmed_by_the_registry_and_promoted_with_its_approval_recorded() {
    let stack = Stack::new().await;
    let gate = gate(&stack);
    let repo = unique("dev/web-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let digest = stack.push(&repo, "clean", Some("pr-7")).await;
    let high = |id: &str| json!({"name": id, "severity": "HIGH", "uri": "https://nvd.nist.gov"});
    seed_basic_scan(&stack, &repo, &digest, json!([high("CVE-2026-1"), high("CVE-2026-2"), high("CVE-2026-3")])).await;
    let safety = stack.safety_snapshot(&repo).await.in_use(&digest);
    let event = basic_scan(&repo, &digest, &["pr-7"], json!({"HIGH": 3}));

    let outcome = gate.handle(event.clone(), &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "promoted");
    assert_eq!(
        outcome.total_aws_calls(),
        9,
        "Query (no index lists the image) + DescribeImageScanFindings (the registry's word) + DescribeImages (its \
         current tags) + TransactWriteItems (the approval) + BatchGetImage + \
         PutImage + PutItem (the notice's claim) + Publish + UpdateItem (claim marked sent): {:?}",
        outcome.aws_calls
    );
    let approved = format!("approved-{}", &digest[7..19]);
    assert_eq!(stack.tag_digest(&repo, &approved).await.as_deref(), Some(digest.as_str()));
    assert_eq!(kinds(&stack.messages().await), vec!["promoted"]);
    let ledger = stack.ledger_items().await;
    let approval = ledger
        .iter()
        .find(|i| i.get("sk").is_some_and(|sk| *sk == format!("{digest}#{approved}")))
        .expect("the approval is recorded");
    assert_eq!(approval.get("verdict").map(String::as_str), Some("pass"));
    assert_eq!(approval.get("scanner").map(String::as_str), Some("basic"));
    assert!(approval.get("policy").is_some_and(|p| p.len() == 16), "{approval:?}");

    let replay = gate.handle(event, &invocation()).await.expect("replayed");
    assert_eq!(replay.decision, "already-promoted");
    assert!(stack.messages().await.is_empty(), "a replay says nothing");
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn allowlisted_and_blocking_findings_from_a_basic_scan() {
    let stack = Stack::new().await;
    let gate = gate(&stack);
    // `prod/payments-*`: the allowlist's scope.
    let repo = unique("prod/payments-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let digest = stack.push(&repo, "release", Some("v3.1.0")).await;
    let safety = stack.safety_snapshot(&repo).await;
    let finding = |id: &str, severity: &str| {
        json!({
            "name": id, "severity": severity, "uri": format!("https://nvd.nist.gov/vuln/detail/{id}"),
            "attributes": [{"key": "package_name", "value": "openssl"}, {"key": "package_version", "value": "3.0.13"}]
        })
    };
    seed_basic_scan(
        &stack,
        &repo,
        &digest,
        json!([finding("CVE-2026-31337", "CRITICAL"), finding("CVE-2026-4242", "HIGH")]),
    )
    .await;

    let outcome = gate
        .handle(basic_scan(&repo, &digest, &["v3.1.0"], json!({"CRITICAL": 1, "HIGH": 1})), &invocation())
        .await
        .expect("handled");

    assert_eq!(outcome.decision, "blocked");
    let result = outcome.gate.as_ref().expect("gate result");
    assert_eq!(result.allowlisted.len(), 1, "{:?}", result);
    assert_eq!(result.blocking.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), vec!["CVE-2026-4242"]);
    assert_eq!(stack.tag_digest(&repo, "v3.1.0-approved").await, None, "not promoted");
    let messages = stack.messages().await;
    assert_eq!(kinds(&messages), vec!["gate-failed"]);
    let body: serde_json::Value =
        serde_json::from_str(messages[0]["Message"].as_str().expect("message")).expect("json");
    let reasons = body["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r.as_str().is_some_and(|r| r.starts_with("HIGH CVE-2026-4242 in openssl 3.0.13"))),
        "{reasons:?}"
    );
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

#[tokio::test]
async fn a_new_inspector_finding_demotes_a_promoted_image() {
    let stack = Stack::new().await;
    let gate = gate(&stack);
    let repo = unique("prod/orders-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let digest = stack.push(&repo, "orders", Some("v1.5.0")).await;
    stack.push(&repo, "orders", Some("v1.5.0-approved")).await;
    let safety = stack.safety_snapshot(&repo).await;
    let why = safety.guarded()[&digest].join(", ");
    assert!(why.contains("protected tag `v1.5.0`") && why.contains("promoted as `v1.5.0-approved`"), "{why}");
    let seeds = integration_tests::INSPECTOR_SEEDS.lock().await;
    seed_inspector_findings(json!([[inspector_finding(&repo, &digest, "v1.5.0", "CVE-2026-5555", "HIGH", "YES")]]));
    let finding = inspector_finding(&repo, &digest, "v1.5.0", "CVE-2026-5555", "HIGH", "YES");
    let mut detail = finding.clone();
    // EventBridge carries Inspector timestamps as strings.
    for key in ["firstObservedAt", "lastObservedAt", "updatedAt"] {
        detail[key] = "Sat Nov 28 09:00:00.000 UTC 2026".into();
    }
    detail["resources"][0]["details"]["awsEcrContainerImage"]["pushedAt"] = "Sat Nov 28 08:00:00.000 UTC 2026".into();

    let outcome =
        gate.handle(envelope("aws.inspector2", "Inspector2 Finding", detail), &invocation()).await.expect("handled");
    drop(seeds);

    assert_eq!(outcome.decision, "demoted", "{outcome:?}");
    assert_eq!(
        stack.tags_of(&repo, &digest).await,
        Some(vec!["v1.5.0".to_owned()]),
        "promotion tag removed, image kept"
    );
    // The removal ECR reports next: `v1.5.0-approved` matches the protected pattern `v*.*.*`, yet it is
    // ecr-warden's own removal, recorded before it was made; notify stays silent (the demotion said it).
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let deleted = integration_tests::image_action("DELETE", &repo, &digest, Some("v1.5.0-approved"), &now);
    let notified = notifier(&stack).handle(deleted, &invocation()).await.expect("handled");
    assert_eq!(notified.decision, "skipped", "{notified:?}");
    assert!(notified.reasons[0].starts_with("ecr-warden's scan-gate removed this tag"), "{:?}", notified.reasons);
    let denied = integration_tests::calls_its_role_denies("Notify", notified.aws_calls.keys());
    assert!(denied.is_empty(), "NotifyRole lacks {denied:?}");
    let messages = stack.messages().await;
    assert_eq!(kinds(&messages), vec!["demoted"], "one notification: the demotion");
    assert_eq!(messages[0]["MessageAttributes"]["severity"]["Value"], "critical");
    // A protected tag deleted by hand, with no removal of ecr-warden's on record, is told.
    let by_hand = integration_tests::image_action("DELETE", &repo, &digest, Some("v1.5.0"), &now);
    let told = notifier(&stack).handle(by_hand, &invocation()).await.expect("handled");
    assert_eq!(told.decision, "protected-tag-deleted", "{told:?}");
    safety.assert_nothing_unsafe_deleted(&stack).await;
}

fn notifier(stack: &Stack) -> notify::Notify {
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("valid policy");
    let config = Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        ..Config::default()
    };
    notify::Notify::new(policy, config, Clients::new(&stack.sdk)).expect("notify")
}

/// A two-platform image: its platform images' scans are read when the index is pushed, the promotion tag goes
/// on the index only, and a later critical finding in one platform image demotes the index.
#[tokio::test]
async fn a_multi_architecture_image_is_promoted_and_demoted_as_its_index() {
    let stack = Stack::new().await;
    let gate = gate(&stack);
    let repo = unique("prod/checkout-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let (index, children) = stack.push_index(&repo, "checkout", "v1.5.0").await;
    let safety = stack.safety_snapshot(&repo).await.in_use(&index);
    // The platform images were scanned on push, before the index's push event is handled: their own scan
    // events find no index yet and promote nothing (they carry no tag to render a promotion from).
    for child in &children {
        seed_basic_scan(&stack, &repo, child, json!([])).await;
        let early = gate.handle(basic_scan(&repo, child, &[], json!({})), &invocation()).await.expect("handled");
        assert_ne!(early.decision, "promoted", "{:?}", early.reasons);
    }
    let push = envelope(
        "aws.ecr",
        "ECR Image Action",
        json!({"result": "SUCCESS", "repository-name": repo, "image-digest": index, "action-type": "PUSH",
               "image-tag": "v1.5.0", "manifest-media-type": "application/vnd.oci.image.index.v1+json"}),
    );

    let outcome = gate.handle(push.clone(), &invocation()).await.expect("handled");

    assert_eq!(outcome.decision, "promoted", "{:?}", outcome.reasons);
    assert_eq!(stack.tag_digest(&repo, "v1.5.0-approved").await.as_deref(), Some(index.as_str()), "on the index");
    for child in &children {
        assert_eq!(stack.tags_of(&repo, child).await, Some(vec![]), "a platform image is never tagged");
    }
    assert_eq!(kinds(&stack.messages().await), vec!["promoted"]);
    let replay = gate.handle(push, &invocation()).await.expect("replayed");
    assert_eq!(replay.decision, "already-promoted");
    assert!(stack.messages().await.is_empty(), "a replay says nothing");

    // Amazon Inspector (the registry moved to enhanced scanning) finds a critical, fixable vulnerability in the
    // arm64 image: that one read fails the index, the clean amd64 image need not be read.
    let mut finding = inspector_finding(&repo, &children[1], "v1.5.0", "CVE-2026-9999", "CRITICAL", "YES");
    finding["resources"][0]["details"]["awsEcrContainerImage"]["imageTags"] = json!([]);
    let seeds = integration_tests::INSPECTOR_SEEDS.lock().await;
    seed_inspector_findings(json!([[finding.clone()]]));
    let event = integration_tests::finding_event(&finding, &[]);
    let outcome = gate.handle(event, &invocation()).await.expect("handled");
    drop(seeds);

    assert_eq!(outcome.decision, "demoted", "{:?}", outcome.reasons);
    assert_eq!(outcome.digest.as_deref(), Some(index.as_str()));
    assert_eq!(stack.tag_digest(&repo, "v1.5.0-approved").await, None, "the index lost its promotion tag");
    assert_eq!(stack.tag_digest(&repo, "v1.5.0").await.as_deref(), Some(index.as_str()), "and kept its release tag");
    assert_eq!(kinds(&stack.messages().await), vec!["demoted"]);
    let denied = integration_tests::calls_its_role_denies("ScanGate", outcome.aws_calls.keys());
    assert!(denied.is_empty(), "calls scan-gate's role does not allow: {denied:?}");
    safety.assert_nothing_unsafe_deleted(&stack).await;
}
