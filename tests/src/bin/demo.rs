//! The ecr-warden demo, run by `scripts/demo`: a registry on the local AWS stack, images pushed the way a CI
//! pipeline pushes them, and the EventBridge events ECR would send delivered to the functions running as
//! Lambdas under `cargo lambda watch`. Prints what happened and what subscribers received; exits non-zero if
//! any step did not behave as expected.

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::{Stack, envelope, image_action, inspector_finding, seed_basic_scan, seed_inspector_findings};
use serde_json::{Value, json};
use std::process::{Command, ExitCode};

/// Names the functions are configured with by scripts/demo.
const TABLE: &str = "ecr-warden-ledger";
const TOPIC: &str = "ecr-warden-notifications";

struct Demo {
    stack: Stack,
    invoke_port: String,
    step: usize,
    failures: Vec<String>,
    sent: Vec<Value>,
}

impl Demo {
    fn title(&mut self, text: &str) {
        self.step += 1;
        println!("\n\x1b[1m{}. {text}\x1b[0m", self.step);
    }

    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            println!("   \x1b[32m✓\x1b[0m {what}");
        } else {
            println!("   \x1b[31m✗ {what}\x1b[0m");
            self.failures.push(format!("step {}: {what}", self.step));
        }
    }

    /// Invokes a function through the local Lambda emulator, as EventBridge would, and prints its outcome.
    fn invoke(&mut self, function: &str, event: &Value) -> Value {
        self.sent.push(event.clone());
        let output = Command::new("cargo")
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", &self.invoke_port])
            .args([function, "--output-format", "json", "--data-ascii", &event.to_string()])
            .output();
        let outcome = match output {
            Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
            Ok(out) => json!({"decision": "error", "reasons": [String::from_utf8_lossy(&out.stderr).trim()]}),
            Err(e) => json!({"decision": "error", "reasons": [format!("cannot run cargo lambda: {e}")]}),
        };
        let calls: Vec<String> = outcome["aws-calls"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}×{v}")).collect())
            .unwrap_or_default();
        println!("   {function} → {}", outcome["decision"].as_str().unwrap_or("?"));
        for reason in outcome["reasons"].as_array().into_iter().flatten() {
            println!("     why: {}", reason.as_str().unwrap_or_default());
        }
        for action in outcome["actions"].as_array().into_iter().flatten() {
            println!(
                "     did: {} ({})",
                action["action"].as_str().unwrap_or_default(),
                action["result"].as_str().unwrap_or_default()
            );
        }
        println!("     AWS calls: {}", if calls.is_empty() { "none".to_owned() } else { calls.join(", ") });
        outcome
    }

    async fn push(&self, repository: &str, seed: &str, tags: &[&str]) -> String {
        let mut digest = String::new();
        for tag in tags {
            digest = self.stack.push(repository, seed, Some(tag)).await;
        }
        println!("   pushed {repository}@{} as {}", short(&digest), tags.join(", "));
        digest
    }
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn at(minute: u32) -> String {
    format!("2026-11-28T09:{minute:02}:00Z")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let invoke_port = std::env::var("WARDEN_INVOKE_PORT").unwrap_or_else(|_| "9000".into());
    let stack = Stack::with_names(TABLE, TOPIC).await;
    let mut demo = Demo { stack, invoke_port, step: 0, failures: Vec::new(), sent: Vec::new() };
    run(&mut demo).await;

    println!("\n\x1b[1mNotifications, as an SQS subscriber of the topic received them\x1b[0m");
    let messages = demo.stack.messages().await;
    for message in &messages {
        let body: Value = serde_json::from_str(message["Message"].as_str().unwrap_or("{}")).unwrap_or_default();
        let attributes: Vec<String> = message["MessageAttributes"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v["Value"].as_str().unwrap_or_default())).collect())
            .unwrap_or_default();
        println!("\n   Subject: {}", message["Subject"].as_str().unwrap_or_default());
        println!("   Attributes: {}", attributes.join(" "));
        println!("   Message: {}", serde_json::to_string_pretty(&body).unwrap_or_default().replace('\n', "\n   "));
    }
    let kinds: Vec<&str> = messages.iter().filter_map(|m| m["MessageAttributes"]["kind"]["Value"].as_str()).collect();
    let mut expected = vec![
        "tag-mutability-drift",
        "tag-not-allowed",
        "protected-tag-moved",
        "tag-not-allowed",
        "promoted",
        "gate-failed",
        "promoted",
        "demoted",
        "replication-failed",
        "lifecycle-expired",
        "tag-mutability-drift",
    ];
    let mut got = kinds.clone();
    expected.sort_unstable();
    got.sort_unstable();
    let what = if got == expected {
        format!("{} received", kinds.len())
    } else {
        format!("received {got:?}, expected {expected:?}")
    };
    demo.check(got == expected, &format!("exactly one notification per finding, none for replays ({what})"));

    if demo.failures.is_empty() {
        println!("\n\x1b[32mAll {} steps behaved as expected.\x1b[0m", demo.step);
        ExitCode::SUCCESS
    } else {
        println!("\n\x1b[31m{} expectation(s) failed:\x1b[0m", demo.failures.len());
        for failure in &demo.failures {
            println!("  - {failure}");
        }
        ExitCode::FAILURE
    }
}

async fn run(demo: &mut Demo) {
    let payments = "prod/payments-api";
    let billing = "prod/billing-worker";
    let web = "dev/web-frontend";
    let sandbox = "sandbox/experiments";

    demo.title("The registry before ecr-warden: prod/payments-api was created mutable, by hand");
    for (repo, mode) in [
        (payments, ImageTagMutability::Mutable),
        (web, ImageTagMutability::Mutable),
        (sandbox, ImageTagMutability::Mutable),
    ] {
        demo.stack.create_repository(repo, mode.clone()).await;
        println!("   created {repo} ({})", mode.as_str());
    }

    demo.title("A team creates prod/billing-worker: CloudTrail CreateRepository reaches tag-guard");
    demo.stack.create_repository(billing, ImageTagMutability::Mutable).await;
    let mut created: Value =
        serde_json::from_str(include_str!("../../../events/cloudtrail-create-repository.json")).unwrap_or_default();
    created["detail"]["requestParameters"]["repositoryName"] = billing.into();
    let outcome = demo.invoke("tag-guard", &created);
    let mode = repository_mode(&demo.stack, billing).await;
    demo.check(outcome["decision"] == "settings-drift", "drift from the production class found");
    demo.check(
        mode == "MUTABLE_WITH_EXCLUSION [v*.*.*]",
        &format!("tag mutability is now {mode}: ECR itself rejects moves of release tags"),
    );

    demo.title("CI releases prod/payments-api v1.4.2 (tagged v1.4.2 and sha-7a6a950)");
    let release = demo.push(payments, "release-1.4.2", &["v1.4.2", "sha-7a6a950"]).await;
    let outcome = demo.invoke("tag-guard", &image_action("PUSH", payments, &release, Some("v1.4.2"), &at(1)));
    demo.check(outcome["decision"] == "conforming", "v1.4.2 conforms to the production class");
    demo.check(total_calls(&outcome) == 1, "a conforming push costs one AWS call (the ledger write)");

    demo.title("Someone pushes a branch build to production: prod/payments-api:feature-login-fix");
    let feature = demo.push(payments, "feature-login-fix", &["feature-login-fix"]).await;
    let outcome =
        demo.invoke("tag-guard", &image_action("PUSH", payments, &feature, Some("feature-login-fix"), &at(2)));
    let tags = demo.stack.tags_of(payments, &feature).await.unwrap_or_default();
    demo.check(outcome["decision"] == "not-allowed", "the tag is not allowed in production");
    demo.check(
        tags == vec![format!("quarantine-{}", &feature[7..19])],
        &format!("tag removed, image kept reachable as {tags:?}"),
    );

    demo.title("A hotfix is pushed under the existing release tag v1.4.2 (the repository is still mutable)");
    let hotfix = demo.push(payments, "hotfix", &["v1.4.2"]).await;
    let move_event = image_action("PUSH", payments, &hotfix, Some("v1.4.2"), &at(3));
    let outcome = demo.invoke("tag-guard", &move_event);
    let now = demo.stack.tag_digest(payments, "v1.4.2").await.unwrap_or_default();
    demo.check(outcome["decision"] == "protected-tag-moved", "the move of a protected tag is detected");
    demo.check(now == release, &format!("v1.4.2 points at {} again", short(&now)));

    demo.title("ECR reports tag-guard's own revert, and EventBridge delivers the move event a second time");
    let echo = demo.invoke("tag-guard", &image_action("PUSH", payments, &release, Some("v1.4.2"), &at(4)));
    let replay = demo.invoke("tag-guard", &move_event);
    demo.check(
        echo["decision"] == "conforming" && replay["decision"] == "skipped",
        "both change nothing and notify nobody",
    );

    demo.title("A pull-request build and a stray branch tag in dev/web-frontend");
    let pr = demo.push(web, "pr-1284", &["pr-1284", "my-branch"]).await;
    let ok = demo.invoke("tag-guard", &image_action("PUSH", web, &pr, Some("pr-1284"), &at(5)));
    let stray = demo.invoke("tag-guard", &image_action("PUSH", web, &pr, Some("my-branch"), &at(6)));
    let tags = demo.stack.tags_of(web, &pr).await.unwrap_or_default();
    demo.check(
        ok["decision"] == "conforming" && stray["decision"] == "not-allowed",
        "pr-1284 conforms, my-branch does not",
    );
    demo.check(tags == vec!["pr-1284".to_owned()], "my-branch removed; the image keeps pr-1284");

    demo.title("Anything goes in sandbox/experiments (unmanaged)");
    let toy = demo.push(sandbox, "toy", &["whatever"]).await;
    let outcome = demo.invoke("tag-guard", &image_action("PUSH", sandbox, &toy, Some("whatever"), &at(7)));
    demo.check(outcome["decision"] == "skipped" && total_calls(&outcome) == 0, "skipped without a single AWS call");

    demo.title("Basic scanning finishes for dev/web-frontend pr-1284: two HIGH findings, no CRITICAL");
    let scan = envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({"scan-status": "COMPLETE", "repository-name": web,
        "image-digest": pr, "image-tags": ["pr-1284"], "finding-severity-counts": {"HIGH": 2}}),
    );
    let outcome = demo.invoke("scan-gate", &scan);
    let approved = format!("approved-{}", &pr[7..19]);
    demo.check(outcome["decision"] == "promoted", "development allows HIGH findings: decided from the event's counts");
    demo.check(total_calls(&outcome) == 3, "three AWS calls: BatchGetImage, PutImage, Publish");
    demo.check(
        demo.stack.tag_digest(web, &approved).await.as_deref() == Some(pr.as_str()),
        &format!("{approved} now points at the image"),
    );

    demo.title("A CRITICAL finding in another pull-request build");
    let risky = demo.push(web, "pr-1290", &["pr-1290"]).await;
    let scan = envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({"scan-status": "COMPLETE", "repository-name": web,
        "image-digest": risky, "image-tags": ["pr-1290"], "finding-severity-counts": {"CRITICAL": 1, "HIGH": 4}}),
    );
    let outcome = demo.invoke("scan-gate", &scan);
    demo.check(outcome["decision"] == "blocked", "blocked: not promoted, operators told");

    demo.title("Basic scanning finishes for prod/payments-api v1.4.2: production reads the findings (allowlist)");
    let finding = |id: &str, severity: &str| {
        json!({"name": id, "severity": severity,
        "uri": format!("https://nvd.nist.gov/vuln/detail/{id}"),
        "attributes": [{"key": "package_name", "value": "openssl"}, {"key": "package_version", "value": "3.0.13"}]})
    };
    seed_basic_scan(
        &demo.stack,
        payments,
        &release,
        json!([finding("CVE-2026-31337", "CRITICAL"), finding("CVE-2026-2020", "MEDIUM")]),
    )
    .await;
    let scan = envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({"scan-status": "COMPLETE", "repository-name": payments,
        "image-digest": release, "image-tags": ["v1.4.2", "sha-7a6a950"], "finding-severity-counts": {"CRITICAL": 1, "MEDIUM": 1}}),
    );
    let outcome = demo.invoke("scan-gate", &scan);
    let promoted = demo.stack.tag_digest(payments, "v1.4.2-approved").await;
    demo.check(
        outcome["decision"] == "promoted",
        "the CRITICAL finding is allowlisted for prod/payments-* until 2027-03-31",
    );
    demo.check(promoted.as_deref() == Some(release.as_str()), "v1.4.2-approved now points at the release");

    demo.title("Amazon Inspector reports a new HIGH finding with a fix for the promoted release");
    let new_finding = inspector_finding(payments, &release, "v1.4.2", "CVE-2026-6000", "HIGH", "YES");
    seed_inspector_findings(json!([[new_finding.clone()]]));
    let mut detail = new_finding;
    for key in ["firstObservedAt", "lastObservedAt", "updatedAt"] {
        detail[key] = "Sat Nov 28 09:30:00.000 UTC 2026".into();
    }
    detail["resources"][0]["details"]["awsEcrContainerImage"]["pushedAt"] = "Sat Nov 28 09:01:00.000 UTC 2026".into();
    let outcome = demo.invoke("scan-gate", &envelope("aws.inspector2", "Inspector2 Finding", detail));
    let tags = demo.stack.tags_of(payments, &release).await.unwrap_or_default();
    demo.check(outcome["decision"] == "demoted", "the release no longer passes: demoted");
    demo.check(
        !tags.iter().any(|t| t.ends_with("-approved")) && tags.contains(&"v1.4.2".to_owned()),
        &format!("promotion tags removed, the image keeps {tags:?}"),
    );

    demo.title("Replication into this region fails, and ECR's own lifecycle policy expires images: notify");
    let failed: Value =
        serde_json::from_str(include_str!("../../../events/ecr-replication-failed.json")).unwrap_or_default();
    let outcome = demo.invoke("notify", &failed);
    demo.check(outcome["decision"] == "replication-failed", "operators hear about the failed replication");
    let again = demo.invoke("notify", &failed);
    demo.check(again["decision"] == "already-notified", "EventBridge's second delivery of the same event stays silent");
    let expired: Value =
        serde_json::from_str(include_str!("../../../events/cloudtrail-lifecycle-policy-execution.json"))
            .unwrap_or_default();
    let outcome = demo.invoke("notify", &expired);
    demo.check(outcome["decision"] == "lifecycle-expired", "one summary of what the lifecycle run expired");

    demo.title("The scheduled sweep checks every repository's tag mutability");
    let sweep: Value = serde_json::from_str(include_str!("../../../events/scheduler.json")).unwrap_or_default();
    let outcome = demo.invoke("tag-guard", &sweep);
    let mode = repository_mode(&demo.stack, payments).await;
    demo.check(outcome["decision"] == "settings-drift", "prod/payments-api drifted from its class");
    demo.check(mode == "MUTABLE_WITH_EXCLUSION [v*.*.*]", &format!("prod/payments-api is now {mode}"));

    demo.title("What v1.4.2 pointed to over time: `warden tags history prod/payments-api v1.4.2`");
    let warden = std::env::current_exe().map(|exe| exe.with_file_name("warden")).unwrap_or_else(|_| "warden".into());
    let history = Command::new(warden).args(["tags", "history", payments, "v1.4.2", "--table", TABLE]).output();
    match history {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{}", text.lines().map(|l| format!("   {l}\n")).collect::<String>());
            demo.check(
                out.status.success() && text.contains("reverted") && text.contains("current"),
                "history shows the revert",
            );
        }
        Err(e) => demo.check(false, &format!("warden tags history could not run: {e}")),
    }
}

fn total_calls(outcome: &Value) -> u64 {
    outcome["aws-calls"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

async fn repository_mode(stack: &Stack, repository: &str) -> String {
    let Ok(out) = stack.ecr.describe_repositories().repository_names(repository).send().await else {
        return "unknown".into();
    };
    let Some(repo) = out.repositories().first() else { return "unknown".into() };
    let filters: Vec<&str> = repo.image_tag_mutability_exclusion_filters().iter().map(|f| f.filter()).collect();
    let mode = repo.image_tag_mutability().map_or("?", |m| m.as_str());
    if filters.is_empty() { mode.to_owned() } else { format!("{mode} [{}]", filters.join(", ")) }
}
