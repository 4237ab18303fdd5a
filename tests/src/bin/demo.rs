//! The ecr-warden demo, run by `scripts/demo`: a registry on the local AWS stack, images pushed the way a CI
//! pipeline pushes them, and the EventBridge events ECR would send delivered to the functions running as
//! Lambdas under `cargo lambda watch`. Prints what happened and what subscribers received; exits non-zero if
//! any step did not behave as expected.
//!
//! `demo inspector-stand-in PORT` is the other half scripts/demo starts: Amazon Inspector's ListCoverage for the
//! functions, which moto does not implement (see `integration_tests::inspector`).

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::inspector::{CoverageStore, ImageCoverage};
use integration_tests::{Stack, envelope, image_action, inspector_finding, seed_basic_scan, seed_inspector_findings};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use warden::policy::{Classification, EMBEDDED_POLICY, NativePolicy, Policy};

/// Names the functions are configured with by scripts/demo.
#[path = "demo/org.rs"]
mod org;

const TABLE: &str = "ecr-warden-ledger";
const TOPIC: &str = "ecr-warden-notifications";

struct Demo {
    stack: Stack,
    /// The Lambda emulator serving the functions with warden.toml as shipped (lifecycle observes), and the one
    /// serving them with the policy at step two of the rollout (`demo enforcing-policy`: lifecycle acts).
    invoke_port: String,
    enforce_port: String,
    step: usize,
    failures: Vec<String>,
    sent: Vec<Value>,
    /// Notifications read off the subscriber's queue so far, and the ids of those a step already printed.
    received: Vec<Value>,
    shown: BTreeSet<String>,
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
        let port = self.invoke_port.clone();
        self.invoke_at(&port, function, event)
    }

    /// [`Demo::invoke`] on the deployment whose policy enforces lifecycle (step two of the rollout).
    fn invoke_enforcing(&mut self, function: &str, event: &Value) -> Value {
        let port = self.enforce_port.clone();
        self.invoke_at(&port, function, event)
    }

    fn invoke_at(&mut self, port: &str, function: &str, event: &Value) -> Value {
        self.sent.push(event.clone());
        let output = Command::new("cargo")
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", port])
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

    /// Every notification the subscriber has received so far (read off its queue once, kept here).
    async fn notifications(&mut self) -> &[Value] {
        let new = self.stack.messages().await;
        self.received.extend(new);
        &self.received
    }

    /// Runs the `warden` command built next to the demo (it talks to the local stack through AWS_ENDPOINT_URL).
    fn warden(&self, args: &[&str]) -> Result<(bool, String), String> {
        let warden =
            std::env::current_exe().map(|exe| exe.with_file_name("warden")).unwrap_or_else(|_| "warden".into());
        let out = Command::new(warden).args(args).output().map_err(|e| format!("warden could not run: {e}"))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }
}

/// Prints one notification as the SQS subscriber received it (the SNS envelope around the JSON schema).
fn print_notification(message: &Value) {
    let body: Value = serde_json::from_str(message["Message"].as_str().unwrap_or("{}")).unwrap_or_default();
    let attributes: Vec<String> = message["MessageAttributes"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v["Value"].as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    println!("\n   Subject: {}", message["Subject"].as_str().unwrap_or_default());
    println!("   Attributes: {}", attributes.join(" "));
    println!("   Message: {}", serde_json::to_string_pretty(&body).unwrap_or_default().replace('\n', "\n   "));
}

fn kind_of(message: &Value) -> &str {
    message["MessageAttributes"]["kind"]["Value"].as_str().unwrap_or_default()
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn at(minute: u32) -> String {
    format!("2026-11-28T09:{minute:02}:00Z")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("inspector-stand-in") => return inspector_stand_in(args.get(2).map_or("0", String::as_str)),
        Some("hub-queue") => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            return match runtime {
                Ok(runtime) => {
                    println!("{}", runtime.block_on(org::hub_queue()));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some("enforcing-policy") => {
            // The demo's images are minutes old: the age protection would keep them all.
            println!("{}", integration_tests::enforcing(EMBEDDED_POLICY, Some(0)));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(demo()),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> ExitCode {
    let started = Instant::now();
    let invoke_port = std::env::var("WARDEN_INVOKE_PORT").unwrap_or_else(|_| "9000".into());
    let enforce_port = std::env::var("WARDEN_ENFORCE_PORT").unwrap_or_else(|_| "9001".into());
    let stack = Stack::with_names(TABLE, TOPIC).await;
    let mut demo = Demo {
        stack,
        invoke_port,
        enforce_port,
        step: 0,
        failures: Vec::new(),
        sent: Vec::new(),
        received: Vec::new(),
        shown: BTreeSet::new(),
    };
    // `scripts/demo --org`: the organization chapter alone.
    let org_only = std::env::var("WARDEN_DEMO_ORG_ONLY").is_ok_and(|v| v == "1");
    if !org_only {
        run(&mut demo).await;
        multi_arch_story(&mut demo).await;
        lifecycle_story(&mut demo).await;
        audit_story(&mut demo);
    }
    let hub_port = std::env::var("WARDEN_HUB_PORT").unwrap_or_else(|_| "9002".into());
    let hub_queue = std::env::var("WARDEN_HUB_QUEUE").unwrap_or_default();
    org::org_story(&mut demo, &hub_port, &hub_queue).await;

    println!("\n\x1b[1mNotifications, as an SQS subscriber of the topic received them\x1b[0m");
    let messages = demo.notifications().await.to_vec();
    for message in &messages {
        if demo.shown.contains(message["MessageId"].as_str().unwrap_or_default()) {
            println!("\n   Subject: {} (shown above)", message["Subject"].as_str().unwrap_or_default());
        } else {
            print_notification(message);
        }
    }
    let kinds: Vec<&str> = messages.iter().map(kind_of).collect();
    let mut expected = vec![
        "tag-mutability-drift",
        "tag-not-allowed",
        "protected-tag-moved",
        "tag-not-allowed",
        "promoted",
        "gate-failed",
        "forged-approval",
        "promoted",
        "demoted",
        "promoted",
        "demoted",
        "replication-failed",
        "lifecycle-expired",
        "tag-mutability-drift",
        "lifecycle-policy-drift",
        "retention",
        "lifecycle-policy-applied",
    ];
    if org_only {
        expected.clear();
    }
    // The organization chapter: member A's disallowed tag, and the sweep's drift in three member registries.
    expected.extend(["tag-not-allowed", "tag-mutability-drift", "tag-mutability-drift", "tag-mutability-drift"]);
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
        println!("\n\x1b[32mAll {} steps behaved as expected ({} s).\x1b[0m", demo.step, started.elapsed().as_secs());
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
    let high =
        |id: &str| json!({"name": id, "severity": "HIGH", "uri": format!("https://nvd.nist.gov/vuln/detail/{id}")});
    seed_basic_scan(&demo.stack, web, &pr, json!([high("CVE-2026-1001"), high("CVE-2026-1002")])).await;
    let scan = envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({"scan-status": "COMPLETE", "repository-name": web,
        "image-digest": pr, "image-tags": ["pr-1284"], "finding-severity-counts": {"HIGH": 2}}),
    );
    let outcome = demo.invoke("scan-gate", &scan);
    let approved = format!("approved-{}", &pr[7..19]);
    demo.check(outcome["decision"] == "promoted", "development allows HIGH findings: promoted");
    let calls = &outcome["aws-calls"];
    demo.check(
        calls["ECR.DescribeImageScanFindings"] == 1 && calls["DynamoDB.TransactWriteItems"] == 1,
        "not on the event's word: the registry's own scan is read, and the approval recorded before the tag",
    );
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
    demo.check(
        total_calls(&outcome) == 4,
        "blocking reads no findings: is it a platform image of an index (one Query), then the notification's claim, \
         its publish, and the claim marked sent",
    );
    let critical = json!({"name": "CVE-2026-1290", "severity": "CRITICAL", "uri": "https://nvd.nist.gov/vuln/detail/CVE-2026-1290"});
    let highs: Vec<Value> = (1..=4).map(|i| high(&format!("CVE-2026-129{i}"))).collect();
    let mut found = vec![critical];
    found.extend(highs);
    seed_basic_scan(&demo.stack, web, &risky, Value::Array(found)).await;
    println!("   `warden gate evaluate {web} pr-1290` reads what scan-gate reads before promoting:");
    match demo.warden(&["gate", "evaluate", web, "pr-1290"]) {
        Ok((ok, text)) => {
            print!("{}", indent(&text));
            demo.check(ok && text.contains("FAIL"), "the registry's scan fails the gate too");
        }
        Err(e) => demo.check(false, &e),
    }

    demo.title("Someone approves the blocked build by hand: dev/web-frontend:approved-<digest12>");
    let forged = format!("approved-{}", &risky[7..19]);
    demo.push(web, "pr-1290", &[&forged]).await;
    let outcome = demo.invoke("tag-guard", &image_action("PUSH", web, &risky, Some(&forged), &at(8)));
    let tags = demo.stack.tags_of(web, &risky).await.unwrap_or_default();
    demo.check(outcome["decision"] == "forged-approval", "the ledger holds no approval of this image: forged");
    demo.check(tags == vec!["pr-1290".to_owned()], &format!("the forged tag is removed; the build keeps {tags:?}"));

    demo.title("The same pull request's events, sent from another account, reach tag-guard and scan-gate");
    let mut foreign = image_action("PUSH", web, &pr, Some("pr-1284"), &at(9));
    foreign["account"] = "999999999999".into();
    let pushed = demo.invoke("tag-guard", &foreign);
    let mut foreign_scan = scan.clone();
    foreign_scan["account"] = "999999999999".into();
    let scanned = demo.invoke("scan-gate", &foreign_scan);
    demo.check(
        pushed["decision"] == "skipped" && scanned["decision"] == "skipped" && total_calls(&scanned) == 0,
        "skipped at the door: this deployment acts on its own account's registry only",
    );

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

    demo.title("Inspector closes a finding on v1.4.0, an image it stopped scanning long ago");
    let old_release = demo.push(payments, "release-1.4.0", &["v1.4.0"]).await;
    seed_coverage(payments, &old_release, "v1.4.0", ("INACTIVE", "SCAN_ELIGIBILITY_EXPIRED"), false);
    seed_inspector_findings(json!([[]]));
    let mut closed = inspector_finding(payments, &old_release, "v1.4.0", "CVE-2026-6001", "HIGH", "YES");
    closed["status"] = "CLOSED".into();
    for key in ["firstObservedAt", "lastObservedAt", "updatedAt"] {
        closed[key] = "Sat Nov 28 09:40:00.000 UTC 2026".into();
    }
    closed["resources"][0]["details"]["awsEcrContainerImage"]["pushedAt"] = "Sat Feb 28 09:00:00.000 UTC 2026".into();
    let outcome = demo.invoke("scan-gate", &envelope("aws.inspector2", "Inspector2 Finding", closed));
    let tags = demo.stack.tags_of(payments, &old_release).await.unwrap_or_default();
    demo.check(
        outcome["decision"] == "not-promoted",
        "no ACTIVE findings, but Inspector's coverage is INACTIVE (SCAN_ELIGIBILITY_EXPIRED): not evidence of a clean image",
    );
    demo.check(tags == vec!["v1.4.0".to_owned()], "v1.4.0 is not promoted");

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
    match demo.warden(&["tags", "history", payments, "v1.4.2", "--table", TABLE]) {
        Ok((ok, text)) => {
            print!("{}", indent(&text));
            demo.check(ok && text.contains("reverted") && text.contains("current"), "history shows the revert");
        }
        Err(e) => demo.check(false, &e),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
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

/// The lifecycle chapter, in the two steps of a rollout. With warden.toml as shipped (`apply = false`),
/// lifecycle observes: a new development repository is reported as lacking its class's native policy, and a
/// push's retention run deletes nothing (the builds are younger than the default day). `warden lifecycle
/// preview` shows what ECR's own policy would (and could) do. With the policy at step two (`apply = true`),
/// a push runs retention for real, which keeps the newest 3 builds of each pull request, the build a preview
/// environment still runs, and the multi-architecture index with its children; the daily sweep then sets the
/// native policies and finds nothing more to delete.
/// A two-platform release: the index is promoted only once both platform images' scans pass, never a
/// platform image, and a critical finding in one platform demotes the index.
async fn multi_arch_story(demo: &mut Demo) {
    let checkout = "prod/checkout";
    demo.title("A two-platform release: prod/checkout:v2.0.0 is an index of linux/amd64 and linux/arm64");
    demo.stack.create_repository(checkout, ImageTagMutability::Mutable).await;
    let (index, children) = demo.stack.push_index(checkout, "checkout-2.0.0", "v2.0.0").await;
    println!(
        "   pushed {checkout}@{} (index) listing {} and {}",
        short(&index),
        short(&children[0]),
        short(&children[1])
    );
    // Then set as the production class wants it (moto cannot take a digest-only push into such a repository):
    // release tags immutable, promotion tags free to come and go.
    let releases = aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
        .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
        .filter("v*.*.*")
        .build();
    let set = demo
        .stack
        .ecr
        .put_image_tag_mutability()
        .repository_name(checkout)
        .image_tag_mutability(ImageTagMutability::MutableWithExclusion)
        .set_image_tag_mutability_exclusion_filters(releases.ok().map(|f| vec![f]))
        .send()
        .await;
    demo.check(set.is_ok(), &format!("{checkout} is MUTABLE_WITH_EXCLUSION [v*.*.*], as its class requires"));
    let push = envelope(
        "aws.ecr",
        "ECR Image Action",
        json!({"result": "SUCCESS", "repository-name": checkout, "image-digest": index, "action-type": "PUSH",
               "image-tag": "v2.0.0", "manifest-media-type": "application/vnd.oci.image.index.v1+json"}),
    );
    let outcome = demo.invoke("scan-gate", &push);
    demo.check(outcome["decision"] == "skipped", "the index is recorded; its platform images are not scanned yet");
    let scan_of = |digest: &str| {
        envelope(
            "aws.ecr",
            "ECR Image Scan",
            json!({"scan-status": "COMPLETE", "repository-name": checkout, "image-digest": digest,
                   "image-tags": [], "finding-severity-counts": {}}),
        )
    };
    seed_basic_scan(&demo.stack, checkout, &children[0], json!([])).await;
    let first = demo.invoke("scan-gate", &scan_of(&children[0]));
    demo.check(
        first["decision"] == "skipped" && total_calls(&first) == 3,
        "linux/amd64 scanned: its scan read and counted on the index (3 calls), nothing promoted yet",
    );
    seed_basic_scan(&demo.stack, checkout, &children[1], json!([])).await;
    let last = demo.invoke("scan-gate", &scan_of(&children[1]));
    demo.check(last["decision"] == "promoted", "linux/arm64 scanned last: both pass, the index is promoted");
    demo.check(
        demo.stack.tag_digest(checkout, "v2.0.0-approved").await.as_deref() == Some(index.as_str()),
        "v2.0.0-approved points at the index, which deploy pipelines pull",
    );
    let untagged = [&children[0], &children[1]];
    let mut platforms_untagged = true;
    for child in untagged {
        platforms_untagged &= demo.stack.tags_of(checkout, child).await == Some(vec![]);
    }
    demo.check(platforms_untagged, "no platform image carries a promotion tag");
    println!("   `warden gate evaluate {checkout} v2.0.0` judges the index on each platform image's scan:");
    match demo.warden(&["gate", "evaluate", checkout, "v2.0.0"]) {
        Ok((ok, text)) => {
            print!("{}", indent(&text));
            demo.check(ok && text.contains("all 2 platform images pass"), "the same verdict, per platform");
        }
        Err(e) => demo.check(false, &e),
    }
    println!(
        "   (require-signature / require-referrers read DescribeImageSigningStatus and ListImageReferrers, which \
         moto 5.2.5 does not implement: the SBOM criterion is shown by scan-gate's mock tests, not here)"
    );

    demo.title("Amazon Inspector finds a CRITICAL vulnerability in the linux/arm64 image only");
    let mut finding = inspector_finding(checkout, &children[1], "v2.0.0", "CVE-2026-7777", "CRITICAL", "YES");
    finding["resources"][0]["details"]["awsEcrContainerImage"]["imageTags"] = json!([]);
    seed_inspector_findings(json!([[finding.clone()]]));
    let mut detail = finding;
    for key in ["firstObservedAt", "lastObservedAt", "updatedAt"] {
        detail[key] = "Sat Nov 28 09:50:00.000 UTC 2026".into();
    }
    detail["resources"][0]["details"]["awsEcrContainerImage"]["pushedAt"] = "Sat Nov 28 09:45:00.000 UTC 2026".into();
    let outcome = demo.invoke("scan-gate", &envelope("aws.inspector2", "Inspector2 Finding", detail));
    demo.check(outcome["decision"] == "demoted", "one failing platform fails the index: demoted");
    demo.check(
        demo.stack.tag_digest(checkout, "v2.0.0-approved").await.is_none()
            && demo.stack.tag_digest(checkout, "v2.0.0").await.as_deref() == Some(index.as_str()),
        "the index lost v2.0.0-approved and keeps v2.0.0",
    );
}

async fn lifecycle_story(demo: &mut Demo) {
    let checkout = "dev/checkout-ui";
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").ok();
    let native = |repository: &str| -> Option<NativePolicy> {
        match policy.as_ref()?.classify(repository) {
            Classification::Managed(class) => class.lifecycle.as_ref()?.native.clone(),
            Classification::Unmanaged(_) => None,
        }
    };

    demo.title(
        "A team creates dev/checkout-ui: CloudTrail CreateRepository reaches lifecycle (warden.toml as shipped)",
    );
    demo.stack.create_repository(checkout, ImageTagMutability::Mutable).await;
    let mut created: Value =
        serde_json::from_str(include_str!("../../../events/cloudtrail-create-repository.json")).unwrap_or_default();
    created["id"] = "5b0e1c2d-7f3a-4e58-9a61-0c4d2b8e7f10".into();
    created["time"] = at(30).into();
    created["detail"]["requestParameters"]["repositoryName"] = checkout.into();
    created["detail"]["responseElements"]["repository"]["repositoryName"] = checkout.into();
    let outcome = demo.invoke("lifecycle", &created);
    demo.check(
        outcome["decision"] == "baseline-drift" && lifecycle_policy(&demo.stack, checkout).await.is_none(),
        "step one of the rollout (`apply = false`): the missing native policy is reported, nothing is set",
    );

    demo.title("CI pushes builds of pull requests 1300 and 1301, and a multi-architecture `main`");
    let (mut pr1300, mut pr1301) = (Vec::new(), Vec::new());
    for build in 1..=6 {
        // ECR ranks builds by push time (whole seconds in moto): one second apart, the order is unambiguous.
        if build > 1 {
            tokio::time::sleep(Duration::from_millis(1050)).await;
        }
        pr1300.push(
            demo.stack.push(checkout, &format!("checkout-pr-1300-{build}"), Some(&format!("pr-1300-{build}"))).await,
        );
        if build <= 4 {
            pr1301.push(
                demo.stack
                    .push(checkout, &format!("checkout-pr-1301-{build}"), Some(&format!("pr-1301-{build}")))
                    .await,
            );
        }
    }
    println!("   pushed pr-1300-1 … pr-1300-6 and pr-1301-1 … pr-1301-4, one second apart");
    let (index, children) = demo.stack.push_index(checkout, "checkout-main", "main").await;
    println!(
        "   pushed {checkout}@{} as main: an image index of linux/amd64 {} and linux/arm64 {} (pushed by digest)",
        short(&index),
        short(&children[0]),
        short(&children[1])
    );
    // Enhanced scanning covers every build; retention deletes only what Inspector's coverage vouches is unused.
    let builds = pr1300.iter().enumerate().map(|(n, d)| (d, format!("pr-1300-{}", n + 1)));
    for (digest, tag) in builds.chain(pr1301.iter().enumerate().map(|(n, d)| (d, format!("pr-1301-{}", n + 1)))) {
        seed_coverage(checkout, digest, &tag, ("ACTIVE", "SUCCESSFUL"), *digest == pr1300[0]);
    }
    println!("   Amazon Inspector (enhanced scanning) covers every build and sees pr-1300-1 running: the preview");
    println!("   environment of pull request 1300 still uses it");
    let safety = demo.stack.safety_snapshot(checkout).await.in_use(&pr1300[0]);
    let before = demo.stack.images(checkout).await;
    demo.check(
        before.len() == 13 && children.iter().all(|c| safety.guarded().contains_key(c)),
        &format!("{} images; the index's children and the running build must survive any deletion", before.len()),
    );

    demo.title(
        "What the class's native policy would do: `warden lifecycle preview --repository dev/checkout-ui --class`",
    );
    match demo.warden(&["lifecycle", "preview", "--repository", checkout, "--class"]) {
        Ok((ok, text)) => {
            print!("{}", indent(&text));
            let preview: Value = serde_json::from_str(&text).unwrap_or_default();
            demo.check(
                ok && preview["summary"]["expiringImageTotalCount"] == 0,
                "nothing, evaluated exactly as ECR would: its one rule takes untagged images after 3 days, and \
                 everything here is minutes old",
            );
        }
        Err(e) => demo.check(false, &e),
    }
    // The closest ECR itself can express: keep the newest 3 pull-request builds, across all pull requests.
    let what_if = json!({"rules": [{"rulePriority": 1, "description": "keep the newest 3 pull-request builds",
        "selection": {"tagStatus": "tagged", "tagPatternList": ["pr-*"], "countType": "imageCountMoreThan", "countNumber": 3},
        "action": {"type": "expire"}}]});
    let what_if_file = state_dir().join("what-if-lifecycle-policy.json");
    let written = std::fs::write(&what_if_file, what_if.to_string());
    println!("   and with the closest rule ECR can express (tagPatternList [\"pr-*\"], imageCountMoreThan 3):");
    let file = what_if_file.to_string_lossy().into_owned();
    match (written, demo.warden(&["lifecycle", "preview", "--repository", checkout, "--policy", &file])) {
        (Ok(()), Ok((ok, text))) => {
            let preview: Value = serde_json::from_str(&text).unwrap_or_default();
            let expiring: Vec<String> = preview["previewResults"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    r["imageTags"].as_array().and_then(|t| t.first()).and_then(Value::as_str).unwrap_or("?").to_owned()
                })
                .collect();
            println!("   expire: {}", expiring.join(", "));
            demo.check(
                ok && expiring.len() == 7 && expiring.iter().any(|t| t == "pr-1300-1"),
                "7 builds, across both pull requests, including pr-1300-1 that is running: ECR cannot count per pull request",
            );
        }
        (Err(e), _) => demo.check(false, &format!("cannot write {}: {e}", what_if_file.display())),
        (_, Err(e)) => demo.check(false, &e),
    }

    demo.title("The push of `main` reaches lifecycle: the development class runs retention after every push");
    let mut pushed = image_action("PUSH", checkout, &index, Some("main"), &at(40));
    pushed["detail"]["manifest-media-type"] = "application/vnd.oci.image.index.v1+json".into();
    let observed = demo.invoke("lifecycle", &pushed);
    demo.check(
        observed["decision"] == "nothing-to-delete" && demo.stack.images(checkout).await == before,
        "nothing is deleted: every build is younger than a day (protect-younger-than-days, default 1)",
    );

    demo.title("Step two of the rollout: apply = true for the class; CI pushes `main` again");
    match std::fs::read_to_string(state_dir().join("warden-enforce.toml")) {
        Ok(text) => {
            let count = |line: &str| text.lines().filter(|l| *l == line).count();
            println!(
                "   the functions redeployed with warden.toml changed: `apply = true` in {} places (native policies and \
                 retention), `protect-younger-than-days = 0` in {} (the demo's builds are minutes old)",
                count("apply = true"),
                count("protect-younger-than-days = 0")
            );
        }
        Err(e) => demo.check(false, &format!("the enforcing policy scripts/demo writes is missing: {e}")),
    }
    pushed["id"] = "e1d2c3b4-a596-4788-9a0b-1c2d3e4f5a6b".into();
    pushed["time"] = at(41).into();
    let outcome = demo.invoke_enforcing("lifecycle", &pushed);
    let deleted: BTreeSet<&str> = outcome["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["result"] == "done")
        .filter_map(|a| a["action"].as_str()?.split(' ').nth(1))
        .collect();
    let expected: BTreeSet<&str> = [&pr1300[1], &pr1300[2], &pr1301[0]].into_iter().map(String::as_str).collect();
    let after = demo.stack.images(checkout).await;
    let gone: Vec<&String> = before.keys().filter(|d| !after.contains_key(*d)).collect();
    let kept_newest = [&pr1300[3], &pr1300[4], &pr1300[5], &pr1301[1], &pr1301[2], &pr1301[3]];
    let lost: Vec<&String> = safety.guarded().keys().filter(|d| !after.contains_key(*d)).collect();
    demo.check(
        outcome["decision"] == "deleted" && deleted == expected && gone.len() == 3,
        "deleted pr-1300-2, pr-1300-3 and pr-1301-1: beyond the newest 3 of their pull request",
    );
    demo.check(
        after.contains_key(&pr1300[0])
            && outcome["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r.as_str().is_some_and(|r| r.contains(pr1300[0].as_str()) && r.contains("in use"))),
        "pr-1300-1 stays: Inspector reports it in use",
    );
    demo.check(
        kept_newest.iter().all(|d| after.contains_key(*d))
            && after.contains_key(&index)
            && children.iter().all(|c| after.contains_key(c))
            && lost.is_empty(),
        "the newest 3 builds of each pull request, the index and both its children stay",
    );

    demo.title("The retention notification, as an SQS subscriber of the topic receives it");
    let retention = demo.notifications().await.iter().find(|m| kind_of(m) == "retention").cloned();
    match retention {
        Some(message) => {
            print_notification(&message);
            demo.shown.insert(message["MessageId"].as_str().unwrap_or_default().to_owned());
            let body: Value = serde_json::from_str(message["Message"].as_str().unwrap_or("{}")).unwrap_or_default();
            let listed: BTreeSet<&str> = body["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["action"].as_str()?.split(' ').nth(1))
                .collect();
            demo.check(
                body["repository"] == checkout && body["outcome"] == "deleted" && listed == expected,
                "one message for the run: what was deleted, by which rule, and what was kept and why",
            );
        }
        None => demo.check(false, "no retention notification reached the subscriber"),
    }

    demo.title("The daily sweep reaches lifecycle: every repository's lifecycle policy and retention");
    let mut sweep: Value = serde_json::from_str(include_str!("../../../events/scheduler.json")).unwrap_or_default();
    sweep["id"] = "c4f1e2a9-3b7d-4c6e-8f05-9d2a1b6e4c37".into();
    sweep["time"] = "2026-11-29T03:00:00Z".into();
    sweep["resources"] =
        json!(["arn:aws:scheduler:us-east-1:123456789012:schedule/default/ecr-warden-lifecycle-sweep"]);
    let outcome = demo.invoke_enforcing("lifecycle", &sweep);
    let mut policies_set = Vec::new();
    for repository in ["prod/billing-worker", "prod/payments-api", "dev/web-frontend", checkout] {
        let text = lifecycle_policy(&demo.stack, repository).await;
        if native(repository).is_some_and(|n| n.is_current(text.as_deref())) {
            policies_set.push(repository);
        }
    }
    let unchanged = demo.stack.images(checkout).await == after;
    let stopped_at_once = outcome["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r.as_str().is_some_and(|r| r.contains(" 0 with lifecycle rules checked")));
    demo.check(
        outcome["decision"] == "sweep-complete",
        if stopped_at_once {
            "every repository checked in one run (it stopped before the first: the emulator's deadline, \
             Lambda-Runtime-Deadline-Ms 600000, lies in 1970)"
        } else {
            "every repository checked in one run"
        },
    );
    demo.check(
        policies_set.len() == 4,
        "every managed repository now carries exactly its class's native policy, checked first against what it \
         would expire (one summary sent)",
    );
    demo.check(unchanged, "dev/checkout-ui: nothing more to delete, pr-1300-1 is still running");
}

/// The registry's posture after the story: `warden audit` over every repository, the ledger's approvals
/// included. What the functions keep right must not show up; what no function manages must.
fn audit_story(demo: &mut Demo) {
    demo.title("Where the registry stands now: `warden audit --json --table ecr-warden-ledger --security-hub`");
    let (report, text) = match demo.warden(&["audit", "--json", "--table", TABLE, "--security-hub"]) {
        // The JSON on stdout, then the progress lines of stderr.
        Ok((true, text)) => {
            (serde_json::Deserializer::from_str(&text).into_iter::<Value>().next().and_then(Result::ok), text)
        }
        Ok((false, text)) | Err(text) => {
            println!("   {}", text.trim().replace('\n', "\n   "));
            (None, text)
        }
    };
    let Some(report) = report else {
        demo.check(false, "the audit ran");
        return;
    };
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    for finding in &findings {
        println!(
            "   {:<8} {:<26} {}: {}",
            finding["severity"].as_str().unwrap_or_default(),
            finding["check"].as_str().unwrap_or_default(),
            finding["resource"].as_str().unwrap_or_default(),
            finding["message"].as_str().unwrap_or_default()
        );
    }
    let found = |check: &str| findings.iter().filter(|f| f["check"] == check).count();
    demo.check(report["schema"] == "ecr-warden.audit/v1", "one report of every repository and the registry's settings");
    demo.check(
        found("forged-approval") == 0 && found("tag-mutability-drift") == 0 && found("lifecycle-policy-drift") == 0,
        "nothing the functions keep right is flagged: every promotion tag has its approval, every mutability and native policy is its class's",
    );
    let sandbox =
        findings.iter().any(|f| f["check"] == "unmanaged-repository" && f["resource"] == "sandbox/experiments");
    demo.check(sandbox, "what no class manages is named: sandbox/experiments");
    let published = format!("Security Hub: {} findings imported", findings.len());
    demo.check(text.contains(&published), &format!("the same findings in Security Hub (ASFF): {published}"));
}

/// The current lifecycle policy text of a repository (GetLifecyclePolicy), or None.
async fn lifecycle_policy(stack: &Stack, repository: &str) -> Option<String> {
    let out = stack.ecr.get_lifecycle_policy().repository_name(repository).send().await.ok()?;
    out.lifecycle_policy_text().map(str::to_owned)
}

/// Where scripts/demo keeps the local stack's files (`.local-stack/`).
fn state_dir() -> PathBuf {
    std::env::var_os("WARDEN_DEMO_STATE").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// The file the Inspector stand-in answers ListCoverage from: Inspector's `coveredResources`.
fn coverage() -> CoverageStore {
    CoverageStore::File(state_dir().join("inspector-coverage.json"))
}

/// Records what Amazon Inspector would report about an image: scanned (its last scan complete, or not), and
/// whether it runs somewhere (ListCoverage `ecrImage.inUseCount`, `lastInUseAt`).
fn seed_coverage(repository: &str, digest: &str, tag: &str, status: (&str, &str), in_use: bool) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    coverage().record(
        ImageCoverage {
            repository,
            digest,
            tags: &[tag],
            status: status.0,
            reason: status.1,
            last_scanned_at: Some(now),
            in_use: in_use.then_some((1, now)),
        }
        .resource(),
    );
}

/// Amazon Inspector for the functions, as far as moto cannot be (see `integration_tests::inspector`):
/// scripts/demo points the functions' Inspector client here (`AWS_ENDPOINT_URL_INSPECTOR2`); ListCoverage is
/// answered from the coverage file the demo writes, every other request goes to moto unchanged.
fn inspector_stand_in(port: &str) -> ExitCode {
    let upstream = std::env::var("WARDEN_TEST_ENDPOINT").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build();
    let served = runtime.map(|runtime| {
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
            integration_tests::inspector::serve(listener, upstream, coverage()).await;
            Ok::<(), std::io::Error>(())
        })
    });
    match served {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) | Err(e) => {
            eprintln!("inspector stand-in on 127.0.0.1:{port}: {e}");
            ExitCode::FAILURE
        }
    }
}
