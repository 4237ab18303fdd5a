//! The posture audit against moto: a registry seeded with one instance of each problem the local stack can
//! hold, next to clean repositories; the audit must report exactly those problems and nothing on the clean
//! ones. (moto lacks pull-through cache rules: that read is reported as incomplete, as any unsupported read is.)

use aws_sdk_ecr::types::{
    ImageScanningConfiguration, ImageTagMutability, ReplicationConfiguration, ReplicationDestination, ReplicationRule,
};
use integration_tests::{Stack, unique};
use std::collections::BTreeSet;
use warden::audit::{Check, evaluate, render};
use warden::aws::audit::{Readers, snapshot};
use warden::aws::ledger::Ledger;
use warden::policy::{Classification, Policy};

/// Both tests read the whole shared registry, and the first changes it: one at a time, so the second's two
/// audits see the same registry.
static REGISTRY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn policy(run: &str) -> Policy {
    let text = format!(
        r#"
version = 1
default-class = "unmanaged"

[[class]]
name = "production"
repositories = ["{run}/prod/*"]

[class.tags]
allowed = ["v*", "sha-*"]
protected = ["v*"]
remediation = "report"

[class.gate]
max = {{ critical = 0 }}
promote = ["{{tag}}-approved"]

[class.lifecycle]

[[class.lifecycle.native]]
rulePriority = 1
selection = {{ tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 14 }}
action = {{ type = "expire" }}

[[class]]
name = "development"
repositories = ["{run}/dev/*"]

[class.tags]
allowed = ["pr-*"]
remediation = "untag"

[class.lifecycle.retention]

[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "untagged"
count-type = "since-image-pushed"
count = 3
"#
    );
    Policy::from_toml(&text, "audit.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// A repository as its class wants it: tag mutability, the native policy, scan on push.
async fn clean(stack: &Stack, policy: &Policy, name: &str) {
    let scanning = ImageScanningConfiguration::builder().scan_on_push(true).build();
    let created = stack.ecr.create_repository().repository_name(name).image_scanning_configuration(scanning);
    created.image_tag_mutability(ImageTagMutability::Mutable).send().await.expect("repository");
    let Classification::Managed(class) = policy.classify(name) else { return };
    if let Some(rules) = &class.tags {
        warden::aws::ecr::put_mutability(&stack.ecr, name, &rules.mutability).await.expect("mutability");
    }
    if let Some(native) = class.lifecycle.as_ref().and_then(|l| l.native.as_ref()) {
        warden::aws::retention::put_policy(&stack.ecr, name, &native.text).await.expect("lifecycle policy");
    }
}

#[tokio::test]
async fn the_audit_finds_each_seeded_problem_and_nothing_on_the_clean_repositories() {
    let _registry = REGISTRY.lock().await;
    let stack = Stack::new().await;
    let run = unique("audit");
    let policy = policy(&run);
    let name = |path: &str| format!("{run}/{path}");
    for path in ["prod/api", "prod/public", "prod/forged", "dev/web"] {
        clean(&stack, &policy, &name(path)).await;
    }
    // Drifted: created mutable by hand, no lifecycle policy, no scan on push.
    stack.create_repository(&name("prod/drifted"), ImageTagMutability::Mutable).await;
    stack.create_repository(&name("misc/tools"), ImageTagMutability::Mutable).await;
    let open = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Everyone","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#;
    stack
        .ecr
        .set_repository_policy()
        .repository_name(name("prod/public"))
        .policy_text(open)
        .send()
        .await
        .expect("policy");
    // A hand-pushed approval: the tag exists, the ledger has no record of it.
    stack.push(&name("prod/forged"), "release", Some("v1.0.0")).await;
    stack.push(&name("prod/forged"), "release", Some("v1.0.0-approved")).await;
    stack.push(&name("prod/api"), "api", Some("v2.0.0")).await;
    let destination =
        ReplicationDestination::builder().region("eu-west-1").registry_id("123456789012").build().expect("destination");
    let everything = ReplicationRule::builder().destinations(destination).build().expect("rule");
    let replication = ReplicationConfiguration::builder().rules(everything).build().expect("configuration");
    stack.ecr.put_replication_configuration().replication_configuration(replication).send().await.expect("replication");

    let sdk = stack.inspector_sdk();
    let inspector = aws_sdk_inspector2::Client::new(&sdk);
    let ledger = Ledger::new(stack.dynamodb.clone(), stack.table.clone());
    let readers = Readers { ecr: &stack.ecr, inspector: &inspector, ledger: Some(&ledger) };
    let snapshot =
        snapshot(readers, &policy, ("123456789012", "us-east-1"), None, &mut |_, _| {}).await.expect("snapshot");
    let findings = evaluate(&[snapshot], &policy, chrono::Utc::now().date_naive());

    // Ours (and the registry's own settings): other tests share moto's registry.
    let ours: BTreeSet<(Check, String)> = findings
        .iter()
        .filter(|f| f.resource.starts_with(&run) || f.resource == "registry")
        .map(|f| (f.check, f.resource.clone()))
        .collect();
    let expected: BTreeSet<(Check, String)> = [
        (Check::TagMutabilityDrift, name("prod/drifted")),
        (Check::MutableReleaseTags, name("prod/drifted")),
        (Check::LifecyclePolicyDrift, name("prod/drifted")),
        (Check::ScanCoverageGap, name("prod/drifted")),
        (Check::RepositoryPolicyPublic, name("prod/public")),
        (Check::ForgedApproval, name("prod/forged")),
        (Check::UnmanagedRepository, name("misc/tools")),
        (Check::ReplicationUnscoped, "registry".to_owned()),
        (Check::AuditIncomplete, "registry".to_owned()),
    ]
    .into_iter()
    .collect();
    let reset = ReplicationConfiguration::builder().set_rules(Some(vec![])).build().expect("configuration");
    stack.ecr.put_replication_configuration().replication_configuration(reset).send().await.expect("reset");
    assert_eq!(ours, expected, "{}", render::table(&findings));
    // moto has neither pull-through cache rules nor creation templates: both reads are reported, not passed.
    let incomplete: Vec<&str> =
        findings.iter().filter(|f| f.check == Check::AuditIncomplete).map(|f| f.message.as_str()).collect();
    for call in ["ecr:DescribePullThroughCacheRules", "ecr:DescribeRepositoryCreationTemplates"] {
        assert!(incomplete.iter().any(|m| m.starts_with(&format!("{call} could not be read"))), "{incomplete:?}");
    }
    for clean in ["prod/api", "dev/web"] {
        assert!(!findings.iter().any(|f| f.resource == name(clean)), "{clean}: {}", render::table(&findings));
    }
    let json = render::json(&findings);
    assert_eq!(json["summary"]["total"], findings.len());
}

/// The scheduled function over the same shared registry, publishing to Security Hub: one summary, then silence
/// while the findings stand; every call it makes is one its role in infra/template.yaml allows.
#[test]
fn the_scheduled_audit_tells_once_and_calls_only_what_its_role_allows() {
    integration_tests::on_a_main_stack(scheduled_audit);
}

async fn scheduled_audit() {
    let _registry = REGISTRY.lock().await;
    let stack = Stack::new().await;
    let sdk = stack.inspector_sdk();
    let config = warden::config::Config {
        ledger_table: Some(stack.table.clone()),
        topic_arn: Some(stack.topic_arn.clone()),
        ..warden::config::Config::default()
    };
    let policy = Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("policy");
    let clients = warden::aws::Clients::new(&stack.sdk);
    let hub = Some(clients.security_hub(&stack.sdk));
    let audit = audit::Audit::new(policy, config, clients, aws_sdk_inspector2::Client::new(&sdk), hub).expect("audit");
    let schedule: serde_json::Value =
        serde_json::from_str(include_str!("../../events/scheduler.json")).expect("sample");

    let first = audit.handle(schedule.clone(), &integration_tests::invocation()).await.expect("audited");
    assert_eq!(first.decision, "audit-findings", "{:?}", first.reasons);
    assert!(first.aws_calls.contains_key("SecurityHub.BatchImportFindings"), "{:?}", first.aws_calls);
    let denied = integration_tests::calls_its_role_denies("Audit", first.aws_calls.keys());
    assert!(denied.is_empty(), "AuditRole in infra/template.yaml lacks {denied:?}");
    assert!(first.aws_calls.keys().all(|c| !c.starts_with("ECR.Put") && !c.starts_with("ECR.BatchDelete")));
    let messages = stack.messages().await;
    assert_eq!(messages.len(), 1, "one summary");
    let body: serde_json::Value =
        serde_json::from_str(messages[0]["Message"].as_str().expect("message")).expect("json");
    assert_eq!(body["kind"], "audit-findings");

    let again = audit.handle(schedule, &integration_tests::invocation()).await.expect("audited");
    assert!(!again.notified, "unchanged findings are not told again");
    assert!(stack.messages().await.is_empty());
}

/// Security Hub (moto's) holds exactly the audit's findings; the next audit archives what it no longer finds and
/// keeps when the rest were first seen; another product's finding is never touched. moto ignores GetFindings'
/// filters (it answers every finding), which the publication must survive: it checks each finding is its own.
#[test]
fn security_hub_holds_the_findings_and_archives_the_resolved_ones() {
    integration_tests::on_a_main_stack(security_hub_scenario);
}

async fn security_hub_scenario() {
    use aws_sdk_securityhub::types::{AwsSecurityFinding, Resource, Severity};
    use std::collections::BTreeMap;
    use warden::audit::security_hub::unseen;
    use warden::aws::security_hub::publish;

    let _registry = REGISTRY.lock().await;
    let stack = Stack::new().await;
    let hub = warden::aws::Clients::new(&stack.sdk).security_hub(&stack.sdk);
    let foreign = AwsSecurityFinding::builder()
        .schema_version("2018-10-08")
        .id(unique("foreign"))
        .product_arn("arn:aws:securityhub:us-east-1::product/aws/securityhub")
        .generator_id("aws-foundational-security-best-practices/v/1.0.0/ECR.3")
        .aws_account_id("123456789012")
        .region("us-east-1")
        .types("Software and Configuration Checks")
        .created_at("2026-11-01T00:00:00.000Z")
        .updated_at("2026-11-01T00:00:00.000Z")
        .severity(Severity::builder().label("LOW".into()).build())
        .title("ECR.3 lifecycle policy")
        .description("another product's finding")
        .resources(Resource::builder().r#type("AwsEcrRepository").id("x").build())
        .record_state("ACTIVE".into())
        .build();
    let foreign_id = foreign.id().expect("id").to_owned();
    hub.batch_import_findings().findings(foreign).send().await.expect("foreign finding");

    let run = unique("hub");
    let policy = policy(&run);
    let name = |path: &str| format!("{run}/{path}");
    stack.create_repository(&name("prod/drifted"), ImageTagMutability::Mutable).await;
    stack.create_repository(&name("misc/tools"), ImageTagMutability::Mutable).await;
    let audit = async |now: &str| {
        let sdk = stack.inspector_sdk();
        let inspector = aws_sdk_inspector2::Client::new(&sdk);
        let readers = Readers { ecr: &stack.ecr, inspector: &inspector, ledger: None };
        let read = snapshot(readers, &policy, ("123456789012", "us-east-1"), None, &mut |_, _| {}).await;
        let snapshots = [read.expect("read")];
        let findings = evaluate(&snapshots, &policy, chrono::Utc::now().date_naive());
        let published = publish(&hub, &findings, &unseen(&snapshots), ("123456789012", "us-east-1"), now).await;
        (findings, published.expect("published"))
    };
    let held = async || -> BTreeMap<String, (String, String, String)> {
        let mut pages = hub.get_findings().into_paginator().send();
        let mut held = BTreeMap::new();
        while let Some(page) = pages.next().await {
            for f in page.expect("findings").findings() {
                let state = f.record_state().map(|s| s.as_str().to_owned()).unwrap_or_default();
                let times =
                    (f.created_at().unwrap_or_default().to_owned(), f.updated_at().unwrap_or_default().to_owned());
                held.insert(f.id().unwrap_or_default().to_owned(), (state, times.0, times.1));
            }
        }
        held
    };

    let (first, _) = audit("2026-12-06T10:00:00.000Z").await;
    let ours: BTreeSet<String> =
        first.iter().filter(|f| f.resource.starts_with(&run)).map(warden::audit::security_hub::id).collect();
    assert!(ours.iter().any(|id| id.ends_with(&format!("/unmanaged-repository/{}", name("misc/tools")))), "{ours:?}");
    let after_first = held().await;
    for id in &ours {
        assert_eq!(after_first.get(id).map(|h| h.0.as_str()), Some("ACTIVE"), "{id}");
    }

    stack.ecr.delete_repository().repository_name(name("misc/tools")).force(true).send().await.expect("deleted");
    let (_, published) = audit("2026-12-06T11:00:00.000Z").await;
    assert!(published.archived >= 1, "{published}");
    let after = held().await;
    for id in &ours {
        let (state, created, updated) = &after[id];
        if id.contains(&name("misc/tools")) {
            assert_eq!((state.as_str(), updated.as_str()), ("ARCHIVED", "2026-12-06T11:00:00.000Z"), "{id}");
        } else {
            assert_eq!(state, "ACTIVE", "{id}");
            assert_eq!((created.as_str(), updated.as_str()), ("2026-12-06T10:00:00.000Z", "2026-12-06T11:00:00.000Z"));
        }
    }
    assert_eq!(
        after[&foreign_id],
        ("ACTIVE".into(), "2026-11-01T00:00:00.000Z".into(), "2026-11-01T00:00:00.000Z".into())
    );
}
