//! Every sample in `events/` delivered twice to every function, against moto: the second delivery changes
//! nothing (ECR images and tags, repository settings and lifecycle policies, the whole ledger) and says nothing (each notifying sample
//! produces exactly one notification in all).
//!
//! Each sample gets repositories of its own (its names with a unique suffix, so the classes stay the same) and
//! the images it talks about (pushed for real; the sample's digests replaced with theirs), scan results seeded
//! to match its counts, and sweeps limited to its repositories.

mod support;

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::inspector::ImageCoverage;
use integration_tests::{SafetyGuard, Stack, inspector_finding, seed_basic_scan, seed_inspector_findings, unique};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::{ALL, Functions, event_ids, kinds};
use warden::event::{EventKind, ImageActionType};

/// Repository names the samples use; each sample gets its own copies.
const REPOSITORIES: &[&str] = &[
    "prod/payments-api",
    "prod/billing-worker",
    "dev/web-frontend",
    "sandbox/experiments",
    "ecr-public/library/nginx",
];

/// The notifications each sample must produce, each exactly once over both deliveries (samples not listed:
/// none). Its repositories are new, so sweeps and CreateRepository find them without the class's native
/// lifecycle policy (warden.toml observes it: lifecycle reports the drift, once) and, for production, with the
/// wrong tag mutability (tag-guard fixes it).
const NOTIFYING: &[(&str, &str)] = &[
    ("cloudtrail-create-repository.json", "lifecycle-policy-drift"),
    ("cloudtrail-create-repository.json", "tag-mutability-drift"),
    ("cloudtrail-lifecycle-policy-execution.json", "lifecycle-expired"),
    ("ecr-image-delete.json", "protected-tag-deleted"),
    ("ecr-image-push-nonconforming.json", "tag-not-allowed"),
    ("ecr-image-scan-clean.json", "promoted"),
    ("ecr-image-scan-failed.json", "scan-failed"),
    ("ecr-image-scan.json", "gate-failed"),
    ("ecr-pull-through-cache-failed.json", "pull-through-cache-failed"),
    ("ecr-replication-failed.json", "replication-failed"),
    ("ecr-replication-success.json", "replicated"),
    ("ecr-scan-resource-change.json", "scan-frequency-changed"),
    ("inspector2-coverage.json", "scanning-stopped"),
    ("inspector2-finding-closed.json", "promoted"),
    ("inspector2-finding.json", "demoted"),
    ("inspector2-scan.json", "gate-failed"),
    ("scheduled-rule.json", "lifecycle-policy-drift"),
    ("scheduled-rule.json", "tag-mutability-drift"),
    ("scheduler-repositories.json", "lifecycle-policy-drift"),
    ("scheduler-repositories.json", "tag-mutability-drift"),
    ("scheduler.json", "lifecycle-policy-drift"),
    ("scheduler.json", "tag-mutability-drift"),
];

/// A sample made ready for the stack.
struct Prepared {
    name: String,
    event: Value,
    repositories: Vec<String>,
    safety: Vec<SafetyGuard>,
}

fn samples() -> Vec<(String, String)> {
    let dir = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("events/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
            (name, std::fs::read_to_string(&path).expect("sample"))
        })
        .collect();
    files.sort();
    files
}

/// Findings whose severities add up to an event's counts (`TOTAL` aside), one per severity unit. The first
/// CRITICAL is the allowlisted CVE-2026-31337; everything has a fix.
fn basic_findings(counts: &Value) -> Value {
    let mut findings = Vec::new();
    for (severity, n) in counts.as_object().into_iter().flatten() {
        if severity == "TOTAL" {
            continue;
        }
        for i in 0..n.as_u64().unwrap_or(0) {
            let id = if severity == "CRITICAL" && i == 0 {
                "CVE-2026-31337".to_owned()
            } else {
                format!("CVE-2026-{}{i:03}", severity.len())
            };
            findings.push(json!({
                "name": id, "severity": severity, "uri": format!("https://nvd.nist.gov/vuln/detail/{id}"),
                "attributes": [{"key": "package_name", "value": "openssl"}, {"key": "package_version", "value": "3.0.13"}]
            }));
        }
    }
    Value::Array(findings)
}

async fn create(stack: &Stack, repository: &str, created: &mut Vec<String>) {
    if !created.iter().any(|r| r == repository) {
        stack.create_repository(repository, ImageTagMutability::Mutable).await;
        created.push(repository.to_owned());
    }
}

/// Pushes the image a sample talks about (under `tags`, or by digest only) and returns its real digest.
async fn push(stack: &Stack, repository: &str, seed: &str, tags: &[String], index: bool) -> String {
    let first = tags.first().map(String::as_str);
    let digest = if index {
        stack.push_index(repository, seed, first.unwrap_or("v0.0.0")).await.0
    } else {
        stack.push(repository, seed, first).await
    };
    for tag in tags.iter().skip(1) {
        stack.push(repository, seed, Some(tag)).await;
    }
    digest
}

async fn prepare(stack: &Stack, name: &str, text: &str) -> Prepared {
    let suffix = unique("-");
    let mut text = text.to_owned();
    for repository in REPOSITORIES {
        text = text.replace(repository, &format!("{repository}{suffix}"));
    }
    let event = warden::event::parse_str(&text).expect("every sample parses");
    let mut repositories = Vec::new();
    // (sample digest, real digest) pairs to rewrite in the event.
    let mut digests = Vec::new();
    let mut value: Value = serde_json::from_str(&text).expect("json");
    match &event.kind {
        EventKind::ImageAction(action) if action.action_type == ImageActionType::Push && action.succeeded() => {
            let repository = action.repository_name.as_str();
            create(stack, repository, &mut repositories).await;
            let index = action.manifest_media_type.as_deref().is_some_and(|m| m.contains("index"));
            let tags: Vec<String> = action.image_tag.iter().cloned().collect();
            digests
                .push((action.image_digest.clone(), push(stack, repository, &action.image_digest, &tags, index).await));
        }
        EventKind::ImageAction(action) => create(stack, action.repository_name.as_str(), &mut repositories).await,
        EventKind::BasicScan(scan) => {
            let repository = scan.repository_name.as_str();
            create(stack, repository, &mut repositories).await;
            if let Some(sample) = &scan.image_digest {
                let digest = push(stack, repository, sample, &scan.image_tags, false).await;
                if scan.scan_status == "COMPLETE" {
                    let counts = &value["detail"]["finding-severity-counts"];
                    seed_basic_scan(stack, repository, &digest, basic_findings(counts)).await;
                }
                digests.push((sample.clone(), digest));
            }
        }
        EventKind::InspectorScan(scan) => {
            let repository = scan.repository_name.as_str();
            create(stack, repository, &mut repositories).await;
            if let Some(sample) = &scan.image_digest {
                let digest = push(stack, repository, sample, &scan.image_tags, false).await;
                let tag = scan.image_tags.first().cloned().unwrap_or_default();
                let findings: Vec<Value> = (0..2)
                    .map(|i| inspector_finding(repository, &digest, &tag, &format!("CVE-2026-90{i:02}"), "HIGH", "YES"))
                    .collect();
                seed_inspector_findings(json!([findings]));
                digests.push((sample.clone(), digest));
            }
        }
        EventKind::InspectorFinding(finding) => {
            if let Some(image) = finding.ecr_image() {
                let repository = image.repository_name.as_str();
                create(stack, repository, &mut repositories).await;
                let active = value["detail"]["status"] == "ACTIVE";
                let mut tags = image.image_tags.clone();
                if active {
                    // Promoted earlier: the new finding demotes it.
                    tags.extend(image.image_tags.iter().map(|t| format!("{t}-approved")));
                }
                let digest = push(stack, repository, &image.image_hash, &tags, false).await;
                let tag = image.image_tags.first().cloned().unwrap_or_default();
                let findings = if active {
                    vec![inspector_finding(repository, &digest, &tag, "CVE-2026-5555", "HIGH", "YES")]
                } else {
                    Vec::new()
                };
                seed_inspector_findings(json!([findings]));
                // Inspector scans the image actively: a finding that closes may promote it.
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                stack.inspector.cover(&ImageCoverage {
                    repository,
                    digest: &digest,
                    tags: &tags,
                    status: "ACTIVE",
                    reason: "SUCCESSFUL",
                    last_scanned_at: Some(1_795_000_000),
                    in_use: Some((3, 1_795_000_000)),
                });
                digests.push((image.image_hash.clone(), digest));
            }
        }
        EventKind::CreateRepository(call) if call.error_code.is_none() => {
            create(stack, call.repository_name.as_str(), &mut repositories).await;
        }
        EventKind::Scheduled(sweep) => {
            // A sweep over the whole registry would reach other tests' repositories: name this sample's own.
            let names: Vec<String> = if sweep.repositories.is_empty() {
                vec![format!("prod/payments-api{suffix}")]
            } else {
                sweep.repositories.clone()
            };
            for repository in &names {
                create(stack, repository, &mut repositories).await;
            }
            let detail = json!({"repositories": names});
            value["detail"] = if value["detail"].is_string() { detail.to_string().into() } else { detail };
        }
        _ => {}
    }
    let mut text = value.to_string();
    for (sample, real) in &digests {
        text = text.replace(sample.as_str(), real);
    }
    let event: Value = serde_json::from_str(&text).expect("json");
    let mut safety = Vec::new();
    for repository in &repositories {
        let mut guard = stack.safety_snapshot(repository).await;
        // The Inspector samples say the image runs in three places.
        if text.contains("\"inUseCount\":3") {
            for (_, digest) in &digests {
                guard = guard.in_use(digest);
            }
        }
        safety.push(guard);
    }
    Prepared { name: name.to_owned(), event, repositories, safety }
}

/// Everything a delivery may change: each repository's images, tags, tag mutability and lifecycle policy, and
/// the whole ledger.
async fn end_state(stack: &Stack, prepared: &[Prepared]) -> (BTreeMap<String, String>, Vec<BTreeMap<String, String>>) {
    let mut registry = BTreeMap::new();
    for repository in prepared.iter().flat_map(|p| &p.repositories) {
        let described = stack.ecr.describe_repositories().repository_names(repository).send().await.expect("describe");
        let settings = described.repositories().first().map(|r| {
            let filters: Vec<&str> = r.image_tag_mutability_exclusion_filters().iter().map(|f| f.filter()).collect();
            format!("{:?} {filters:?}", r.image_tag_mutability())
        });
        let lifecycle_policy = stack.lifecycle_policy(repository).await;
        registry.insert(
            repository.clone(),
            format!("{settings:?} {lifecycle_policy:?} {:?}", stack.images(repository).await),
        );
    }
    (registry, stack.ledger_items().await)
}

/// Every sample to every function, in order; each must handle it (act or skip) without an error, and call
/// only what the function's role in `infra/template.yaml` allows.
async fn deliver_all(functions: &Functions, prepared: &[Prepared], what: &str) {
    for sample in prepared {
        for function in ALL {
            let outcome = match functions.invoke(function, &sample.event).await {
                Ok(outcome) => outcome,
                Err(error) => panic!("{what}: {} to {function:?}: {error}", sample.name),
            };
            let denied = integration_tests::calls_its_role_denies(&format!("{function:?}"), outcome.aws_calls.keys());
            assert!(denied.is_empty(), "{what}: {} to {function:?}: its role lacks {denied:?}", sample.name);
        }
    }
}

#[tokio::test]
async fn every_sample_twice_changes_nothing_the_second_time_and_notifies_once() {
    let stack = Stack::new().await;
    let functions = Functions::new(&stack, &stack.sdk);
    let mut prepared = Vec::new();
    for (name, text) in samples() {
        prepared.push(prepare(&stack, &name, &text).await);
    }

    deliver_all(&functions, &prepared, "first delivery").await;
    let (registry, ledger) = end_state(&stack, &prepared).await;
    let messages = stack.messages().await;
    let (ids, kinds) = (event_ids(&messages), kinds(&messages));
    let mut problems = Vec::new();
    for sample in &prepared {
        let id = sample.event["id"].as_str().unwrap_or_default();
        let mut got: Vec<&str> =
            ids.iter().zip(&kinds).filter(|(i, _)| i.as_str() == id).map(|(_, kind)| kind.as_str()).collect();
        got.sort_unstable();
        let want: Vec<&str> = NOTIFYING.iter().filter(|(n, _)| *n == sample.name).map(|(_, k)| *k).collect();
        if got != want {
            problems.push(format!("{}: notified {got:?}, expected {want:?}", sample.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(messages.len(), NOTIFYING.len());

    deliver_all(&functions, &prepared, "replay").await;
    let (registry2, ledger2) = end_state(&stack, &prepared).await;
    for (repository, state) in &registry {
        assert_eq!(Some(state), registry2.get(repository), "{repository} changed on replay");
    }
    let added: Vec<_> = ledger2.iter().filter(|item| !ledger.contains(item)).collect();
    let removed: Vec<_> = ledger.iter().filter(|item| !ledger2.contains(item)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the replay changed the ledger: added {added:#?}, removed {removed:#?}"
    );
    assert!(stack.messages().await.is_empty(), "a replay never notifies again");
    for sample in &prepared {
        for guard in &sample.safety {
            guard.assert_nothing_unsafe_deleted(&stack).await;
        }
    }
}
