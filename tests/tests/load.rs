//! Load: 1,000 pushes and 1,000 scans (`WARDEN_LOAD_EVENTS`) through tag-guard and scan-gate against moto, at
//! most 16 invocations in flight (`WARDEN_LOAD_CONCURRENCY`), each worker a Lambda instance of its own (its own
//! clients). Zero errors; every push recorded, every image promoted and announced once; throughput printed
//! (`--nocapture`) for BENCHMARKS.md. moto is a single Python process: the numbers say how the functions behave
//! under concurrency (no lost or doubled work), not how fast AWS is.

mod support;

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::{Stack, envelope, image_action, seed_basic_scan, unique};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use support::{Function, Functions};
use warden::outcome::Outcome;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Delivers every event to `function` with `concurrency` workers; returns the outcomes (in event order) and the
/// elapsed seconds. Any error fails the test.
async fn drive(stack: &Arc<Stack>, function: Function, events: Vec<Value>, concurrency: usize) -> (Vec<Outcome>, f64) {
    let events = Arc::new(events);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (stack, events, next) = (Arc::clone(stack), Arc::clone(&events), Arc::clone(&next));
        workers.spawn(async move {
            // A Lambda instance: its own clients, one event at a time.
            let functions = Functions::new(&stack, &stack.sdk);
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(event) = events.get(i) else { break };
                match functions.invoke(function, event).await {
                    Ok(outcome) => done.push((i, outcome)),
                    Err(error) => panic!("{function:?} event {i}: {error}"),
                }
            }
            done
        });
    }
    let mut outcomes = Vec::with_capacity(events.len());
    while let Some(done) = workers.join_next().await {
        outcomes.extend(done.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    outcomes.sort_by_key(|(i, _)| *i);
    (outcomes.into_iter().map(|(_, o)| o).collect(), elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pushes_and_a_thousand_scans_with_bounded_concurrency() {
    let count = setting("WARDEN_LOAD_EVENTS", 1_000);
    let concurrency = setting("WARDEN_LOAD_CONCURRENCY", 16);
    let stack = Arc::new(Stack::new().await);
    let repo = unique("dev/load-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;

    // The images CI pushed: `pr-<n>` each (development class; promoted from the scan's counts).
    let started = Instant::now();
    let mut digests = Vec::with_capacity(count);
    for n in 0..count {
        digests.push(stack.push(&repo, &format!("load-{n}"), Some(&format!("pr-{n}"))).await);
    }
    // What ECR's scan found, as scan-gate re-reads it before promoting: what the events will say.
    let finding = |id: &str, severity: &str| json!({"name": id, "severity": severity, "uri": "https://nvd.nist.gov"});
    let findings = json!([
        finding("CVE-2026-0001", "HIGH"),
        finding("CVE-2026-0002", "HIGH"),
        finding("CVE-2026-0003", "MEDIUM"),
        finding("CVE-2026-0004", "MEDIUM"),
        finding("CVE-2026-0005", "MEDIUM"),
        finding("CVE-2026-0006", "MEDIUM"),
        finding("CVE-2026-0007", "MEDIUM")
    ]);
    for digest in &digests {
        seed_basic_scan(&stack, &repo, digest, findings.clone()).await;
    }
    let setup = started.elapsed().as_secs_f64();
    let safety = stack.safety_snapshot(&repo).await;

    let pushes: Vec<Value> = digests
        .iter()
        .enumerate()
        .map(|(n, digest)| image_action("PUSH", &repo, digest, Some(&format!("pr-{n}")), "2026-11-28T09:00:00Z"))
        .collect();
    let (pushed, push_seconds) = drive(&stack, Function::TagGuard, pushes, concurrency).await;
    assert!(
        pushed.iter().all(|o| o.decision == "conforming"),
        "{:?}",
        pushed.iter().find(|o| o.decision != "conforming")
    );

    let scans: Vec<Value> = digests
        .iter()
        .enumerate()
        .map(|(n, digest)| {
            let detail = json!({"scan-status": "COMPLETE", "repository-name": repo, "image-digest": digest,
                "image-tags": [format!("pr-{n}")], "finding-severity-counts": {"HIGH": 2, "MEDIUM": 5}});
            envelope("aws.ecr", "ECR Image Scan", detail)
        })
        .collect();
    let (scanned, scan_seconds) = drive(&stack, Function::ScanGate, scans, concurrency).await;
    let promoted = scanned.iter().filter(|o| o.decision == "promoted" && o.notified).count();
    assert_eq!(
        promoted,
        count,
        "every image promoted and announced: {:?}",
        scanned.iter().find(|o| o.decision != "promoted")
    );

    // The end state: each tag in the ledger once, each image promoted once, nothing deleted.
    let images = stack.images(&repo).await;
    assert_eq!(images.len(), count);
    for (n, digest) in digests.iter().enumerate() {
        let approved = format!("approved-{}", &digest[7..19]);
        assert_eq!(images[digest], {
            let mut tags = vec![approved, format!("pr-{n}")];
            tags.sort();
            tags
        });
    }
    let ledger = stack.ledger_items().await;
    let tags = ledger.iter().filter(|i| i.get("sk").map(String::as_str) == Some("CURRENT")).count();
    let claims = ledger.iter().filter(|i| i.get("pk").is_some_and(|pk| pk.starts_with("NOTIFY#"))).count();
    assert_eq!((tags, claims), (count, count), "one ledger pointer per tag, one claim per promotion notice");
    safety.assert_nothing_unsafe_deleted(&stack).await;

    println!(
        "load: {count} images pushed in {setup:.1} s (setup); {count} push events in {push_seconds:.1} s = {:.0} events/s; \
         {count} scan events (promotion + notice) in {scan_seconds:.1} s = {:.0} events/s; concurrency {concurrency}; 0 errors",
        count as f64 / push_seconds,
        count as f64 / scan_seconds,
    );
}
