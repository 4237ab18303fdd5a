use super::documents::{broad_statements, public_statements, writes};
use super::*;
use crate::policy::{EcrMutability, Policy};
use chrono::NaiveDate;
use serde_json::json;

const POLICY: &str = r#"
version = 1
default-class = "unmanaged"

[[class]]
name = "production"
repositories = ["prod/*"]

[class.tags]
allowed = ["v*", "sha-*"]
protected = ["v*"]
remediation = "report"

[class.gate]
max = { critical = 0 }
promote = ["{tag}-approved"]

[[class.gate.allow]]
id = "CVE-2026-1"
reason = "expired long ago"
expires = 2026-01-31

[[class.gate.allow]]
id = "CVE-2026-2"
reason = "still present"
expires = 2027-01-31

[[class.gate.allow]]
id = "CVE-2026-3"
reason = "fixed since"
expires = 2027-01-31

[class.lifecycle]

[[class.lifecycle.native]]
rulePriority = 1
selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 14 }
action = { type = "expire" }

[[class]]
name = "development"
repositories = ["dev/*"]
encryption = "kms"

[class.tags]
allowed = ["pr-*"]
remediation = "untag"
"#;

const NATIVE: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 6).expect("date")
}

fn policy() -> Policy {
    Policy::from_toml(POLICY, "audit.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// A production repository in order: release tags immutable, the class's native policy, scanned, no findings.
fn clean(name: &str) -> Repository {
    let rules = policy();
    let mutability = match rules.classify(name) {
        crate::policy::Classification::Managed(class) => class.tags.as_ref().map(|t| t.mutability.clone()),
        _ => None,
    };
    Repository {
        name: name.into(),
        mutability: mutability.unwrap_or_else(|| MutabilitySetting::new(EcrMutability::Immutable, vec![])),
        encryption: if name.starts_with("dev/") { "KMS".into() } else { "AES256".into() },
        scan_on_push: true,
        lifecycle_policy: Read::Got(Some(NATIVE.into())),
        policy: Read::Got(None),
        untagged: Read::Got(Untagged { images: 3, bytes: 1 << 20 }),
        inactive_coverage: Read::Got(0),
        critical_images: Read::Got(0),
        finding_ids: Some(Read::Got(["CVE-2026-2".to_owned()].into())),
        unrecorded_own_tags: Read::Got(vec![]),
    }
}

fn snapshot(region: &str, repositories: Vec<Repository>) -> Snapshot {
    Snapshot {
        account: "111111111111".into(),
        region: region.into(),
        repositories,
        unread: vec![],
        registry_policy: Read::Got(None),
        scanning: Read::Got(Scanning { enhanced: false, rules: vec![] }),
        replication: Read::Got(vec![]),
        pull_through_cache: Read::Got(vec!["docker-hub".into()]),
        creation_templates: Read::Got(vec![]),
        inspector_ecr: None,
    }
}

fn checks(findings: &[Finding]) -> Vec<(Check, String)> {
    findings.iter().map(|f| (f.check, f.resource.clone())).collect()
}

#[test]
fn a_clean_registry_has_no_finding_but_the_stale_allowlist_entries() {
    let findings = evaluate(&[snapshot("us-east-1", vec![clean("prod/api"), clean("dev/web")])], &policy(), today());
    let dev_lifecycle = (Check::NoLifecyclePolicy, "dev/web".to_owned());
    let expected: Vec<(Check, String)> =
        vec![(Check::AllowlistExpired, "class production".into()), (Check::AllowlistStale, "class production".into())];
    // dev/web carries a lifecycle policy (the clean fixture's), so its class without lifecycle rules is fine.
    assert!(!checks(&findings).contains(&dev_lifecycle));
    let mut got = checks(&findings);
    got.sort();
    assert_eq!(got, expected, "{findings:#?}");
}

type Spoil = fn(&mut Repository);

/// One repository per repository-level problem: its name, what is wrong with it, the check that must fire.
fn spoils() -> [(&'static str, Spoil, Check); 12] {
    [
        ("dev/k", |r| r.encryption = "AES256".into(), Check::EncryptionAes256),
        (
            "prod/a",
            |r| r.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]),
            Check::TagMutabilityDrift,
        ),
        (
            "prod/b",
            |r| r.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]),
            Check::MutableReleaseTags,
        ),
        ("dev/c", |r| r.lifecycle_policy = Read::Got(None), Check::NoLifecyclePolicy),
        ("prod/d", |r| r.lifecycle_policy = Read::Got(Some(r#"{"rules":[]}"#.into())), Check::LifecyclePolicyDrift),
        ("prod/e", |r| r.scan_on_push = false, Check::ScanCoverageGap),
        ("dev/f", |r| r.critical_images = Read::Got(2), Check::FindingsUnacted),
        (
            "prod/g",
            |r| {
                r.policy = Read::Got(Some(
                    json!({"Statement": [{"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}]}),
                ))
            },
            Check::RepositoryPolicyPublic,
        ),
        (
            "prod/l",
            |r| {
                r.policy = Read::Got(Some(
                    json!({"Statement": [{"Sid": "CiPush", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:role/ci"}, "Action": ["ecr:PutImage"]}]}),
                ))
            },
            Check::RepositoryPolicyBroad,
        ),
        ("prod/h", |r| r.untagged = Read::Got(Untagged { images: 500, bytes: 1 }), Check::UntaggedAccumulation),
        (
            "prod/i",
            |r| r.unrecorded_own_tags = Read::Got(vec![("sha256:1".into(), "v1-approved".into())]),
            Check::ForgedApproval,
        ),
        ("sandbox/j", |_| {}, Check::UnmanagedRepository),
    ]
}

fn spoiled(name: &str, spoil: Spoil) -> Repository {
    let mut repository = clean(name);
    spoil(&mut repository);
    repository
}

#[test]
fn each_repository_check_fires_on_its_problem_and_only_there() {
    let table = spoils();
    for (name, spoil, check) in table {
        let findings = evaluate(&[snapshot("us-east-1", vec![spoiled(name, spoil)])], &policy(), today());
        let here: Vec<Check> = findings.iter().filter(|f| f.resource == name).map(|f| f.check).collect();
        assert!(here.contains(&check), "{name}: expected {check:?}, got {here:?}");
        // The clean fixture's own findings are registry- or class-wide, never about the repository.
        let unrelated: Vec<Check> = here.iter().copied().filter(|c| *c != check && !related(check, *c)).collect();
        assert!(unrelated.is_empty(), "{name}: {check:?} came with {unrelated:?}");
    }
}

/// Checks one problem legitimately raises together (a mutable production repository both drifted and lets
/// release tags move).
fn related(a: Check, b: Check) -> bool {
    let pair = [Check::TagMutabilityDrift, Check::MutableReleaseTags];
    pair.contains(&a) && pair.contains(&b)
}

#[test]
fn release_tags_tag_guard_reverts_are_not_flagged_as_movable() {
    let text = POLICY.replacen("remediation = \"report\"", "remediation = \"revert\"", 1);
    let policy = Policy::from_toml(&text, "audit.toml").expect("policy");
    let mut repository = clean("prod/api");
    repository.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]);
    let findings = evaluate(&[snapshot("us-east-1", vec![repository])], &policy, today());
    assert!(findings.iter().any(|f| f.check == Check::TagMutabilityDrift));
    assert!(!findings.iter().any(|f| f.check == Check::MutableReleaseTags), "{findings:#?}");
}

#[test]
fn a_read_that_failed_is_a_finding_and_its_checks_stay_silent() {
    let mut repository = clean("prod/api");
    repository.policy = Read::Failed { call: "ecr:GetRepositoryPolicy".into(), why: "AccessDenied".into() };
    repository.critical_images = Read::Failed { call: "inspector2:ListFindings".into(), why: "not enabled".into() };
    let mut registry = snapshot("us-east-1", vec![repository]);
    registry.scanning =
        Read::Failed { call: "ecr:GetRegistryScanningConfiguration".into(), why: "AccessDenied".into() };
    let findings = evaluate(&[registry], &policy(), today());
    let incomplete: Vec<&str> =
        findings.iter().filter(|f| f.check == Check::AuditIncomplete).map(|f| f.message.as_str()).collect();
    assert_eq!(incomplete.len(), 3, "{incomplete:?}");
    assert!(incomplete.iter().any(|m| m.starts_with("ecr:GetRepositoryPolicy could not be read (AccessDenied)")));
    assert!(!findings.iter().any(|f| f.check == Check::ScanCoverageGap), "no scanning data is no verdict");
}

#[test]
fn registry_settings_replication_and_regions() {
    let mut east = snapshot("us-east-1", vec![]);
    east.replication = Read::Got(vec![
        ReplicationRule { destinations: vec![("eu-west-1".into(), "111111111111".into())], prefixes: vec![] },
        ReplicationRule {
            destinations: vec![("eu-west-1".into(), "111111111111".into())],
            prefixes: vec!["prod".into()],
        },
    ]);
    east.registry_policy = Read::Got(Some(
        json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": ["ecr:*"]}}),
    ));
    let mut west = snapshot("eu-west-1", vec![]);
    west.pull_through_cache = Read::Got(vec![]);
    let findings = evaluate(&[east, west], &policy(), today());
    let got: Vec<(Check, &str)> =
        findings.iter().filter(|f| f.resource == "registry").map(|f| (f.check, f.region.as_str())).collect();
    assert_eq!(
        got.iter().filter(|(c, _)| *c == Check::ReplicationUnscoped).count(),
        1,
        "only the rule without a filter: {got:?}"
    );
    assert!(got.contains(&(Check::RegistryPolicyBroad, "us-east-1")));
    assert!(got.contains(&(Check::PullThroughCacheRegions, "eu-west-1")));
    assert!(!got.contains(&(Check::PullThroughCacheRegions, "us-east-1")));
}

fn template(prefix: &str, spoil: fn(&mut CreationTemplate)) -> CreationTemplate {
    let mut template = CreationTemplate {
        prefix: prefix.into(),
        mutability: MutabilitySetting::new(EcrMutability::MutableWithExclusion, vec!["v*".into()]),
        lifecycle_policy: Some(NATIVE.into()),
        repository_policy: None,
        encryption: "AES256".into(),
    };
    spoil(&mut template);
    template
}

#[test]
fn creation_templates_that_would_create_drifted_repositories() {
    type Spoil = fn(&mut CreationTemplate);
    let table: [(&str, Spoil, Option<Check>); 7] = [
        ("prod", |_| {}, None),
        (
            "prod",
            |t| t.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]),
            Some(Check::TagMutabilityDrift),
        ),
        ("prod", |t| t.lifecycle_policy = None, Some(Check::LifecyclePolicyDrift)),
        (
            "prod",
            |t| {
                t.repository_policy =
                    Some(json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}]}))
            },
            Some(Check::RepositoryPolicyPublic),
        ),
        // dev: no native policy and no retention, KMS expected; its tag rules say nothing of mutability.
        (
            "dev",
            |t| {
                t.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]);
                (t.encryption, t.lifecycle_policy) = ("KMS".into(), None);
            },
            Some(Check::NoLifecyclePolicy),
        ),
        (
            "dev",
            |t| t.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]),
            Some(Check::EncryptionAes256),
        ),
        // ROOT: no one class; mutable and without lifecycle is for the classes of the repositories to judge.
        ("ROOT", |t| t.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]), None),
    ];
    for (prefix, spoil, expected) in table {
        let mut registry = snapshot("us-east-1", vec![]);
        registry.creation_templates = Read::Got(vec![template(prefix, spoil)]);
        let findings = evaluate(&[registry], &policy(), today());
        let resource = format!("creation template {prefix}");
        let got: Vec<Check> = findings.iter().filter(|f| f.resource == resource).map(|f| f.check).collect();
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{prefix}: {findings:#?}");
        if let Some(drift) = findings.iter().find(|f| f.check == Check::TagMutabilityDrift) {
            assert!(drift.remediation.starts_with("aws ecr update-repository-creation-template --prefix prod --image-tag-mutability MUTABLE_WITH_EXCLUSION"), "{}", drift.remediation);
        }
    }
    let mut unreadable = snapshot("us-east-1", vec![]);
    unreadable.creation_templates =
        Read::Failed { call: "ecr:DescribeRepositoryCreationTemplates".into(), why: "AccessDeniedException".into() };
    let findings = evaluate(&[unreadable], &policy(), today());
    assert!(findings.iter().any(|f| f.check == Check::AuditIncomplete
        && f.message.starts_with("ecr:DescribeRepositoryCreationTemplates could not be read")));
}

#[test]
fn enhanced_scanning_needs_inspector_scanning_ecr() {
    let table = [
        (Some(Read::Got("ENABLED".to_owned())), None),
        (Some(Read::Got("DISABLED".to_owned())), Some(Check::ScanCoverageGap)),
        (Some(Read::Got("UNKNOWN".to_owned())), Some(Check::ScanCoverageGap)),
        (
            Some(Read::Failed { call: "inspector2:BatchGetAccountStatus".into(), why: "x".into() }),
            Some(Check::AuditIncomplete),
        ),
        (None, None),
    ];
    for (status, expected) in table {
        let mut registry = snapshot("us-east-1", vec![]);
        registry.inspector_ecr = status.clone();
        let findings = evaluate(&[registry], &policy(), today());
        let got: Vec<Check> = findings.iter().filter(|f| f.resource == "registry").map(|f| f.check).collect();
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{status:?}");
    }
}

#[test]
fn policy_documents_public_and_broad() {
    let account = "111111111111";
    let table = [
        (json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}]}), true, false),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "ecr:BatchGetImage", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}]}),
            false,
            false,
        ),
        (json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "ecr:*"}]}), false, false),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:role/ci"}, "Action": ["ecr:PutImage", "ecr:BatchGetImage"]}]}),
            false,
            true,
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/ci"}, "Action": ["ecr:PutImage"]}]}),
            false,
            false,
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}),
            false,
            false,
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "ecr:*"}]}),
            false,
            true,
        ),
    ];
    for (document, public, broad) in table {
        assert_eq!(!public_statements(&document).is_empty(), public, "{document}");
        assert_eq!(!broad_statements(&document, account).is_empty(), broad, "{document}");
    }
    for (action, write) in [
        ("ecr:PutImage", true),
        ("ecr:BatchDeleteImage", true),
        ("ecr:Batch*", true),
        ("*", true),
        ("ecr:BatchGetImage", false),
        ("ecr:DescribeImages", false),
    ] {
        assert_eq!(writes(action), write, "{action}");
    }
}

#[test]
fn every_check_has_a_stable_kebab_case_id() {
    let ids: std::collections::BTreeSet<&str> = Check::ALL.iter().map(|c| c.id()).collect();
    assert_eq!(ids.len(), Check::ALL.len());
    assert!(Check::ALL.iter().all(|c| Check::from_id(c.id()) == Some(*c)));
    assert_eq!(Check::from_id("no-such-check"), None);
    assert!(ids.iter().all(|id| id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')));
    let finding = At { account: "1", region: "r", resource: "x" }.finding(
        Check::ScanCoverageGap,
        Severity::Warning,
        "m".into(),
        ("fix".into(), "src".into()),
    );
    let json = serde_json::to_value(&finding).expect("json");
    assert_eq!(json["check"], "scan-coverage-gap");
    assert_eq!(json["severity"], "warning");
}

fn two_findings() -> Vec<Finding> {
    let at = At { account: "111111111111", region: "us-east-1", resource: "prod/api" };
    vec![
        at.finding(
            Check::MutableReleaseTags,
            Severity::Critical,
            "release tags move".into(),
            ("make them immutable".into(), "guide".into()),
        ),
        at.finding(
            Check::UnmanagedRepository,
            Severity::Info,
            "no class".into(),
            ("add a class".into(), "warden.toml".into()),
        ),
    ]
}

#[test]
fn the_table_groups_by_severity_with_each_fix_and_the_counts() {
    let expected = "\
CRITICAL (1)
  mutable-release-tags        111111111111/us-east-1 prod/api
    release tags move
    fix: make them immutable
INFO (1)
  unmanaged-repository        111111111111/us-east-1 prod/api
    no class
    fix: add a class
2 findings: 1 critical, 0 warning, 1 info
";
    assert_eq!(render::table(&two_findings()), expected);
    assert_eq!(render::table(&[]), "0 findings: 0 critical, 0 warning, 0 info\n");
}

#[test]
fn the_json_carries_the_schema_every_field_and_a_summary() {
    let json = render::json(&two_findings());
    assert_eq!(json["schema"], "ecr-warden.audit/v1");
    assert_eq!(json["summary"], json!({"critical": 1, "warning": 0, "info": 1, "total": 2}));
    let first = &json["findings"][0];
    for field in ["check", "severity", "account", "region", "resource", "message", "remediation", "source"] {
        assert!(first[field].is_string(), "{field} in {first}");
    }
}

#[test]
fn sarif_has_a_rule_per_check_and_a_located_result_per_finding() {
    let sarif = render::sarif(&two_findings());
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(rules, ["mutable-release-tags", "unmanaged-repository"]);
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["level"], "error");
    assert_eq!(results[1]["level"], "note");
    assert_eq!(results[1]["ruleIndex"], 1);
    assert_eq!(
        results[0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "111111111111/us-east-1/prod/api"
    );
}

#[test]
fn fail_on_sets_the_exit_code_at_or_above_its_severity() {
    let findings = two_findings();
    assert_eq!(render::exit_code(&findings, None), 0);
    assert_eq!(render::exit_code(&findings, Some(Severity::Critical)), 1);
    assert_eq!(render::exit_code(&findings[1..], Some(Severity::Warning)), 0);
    assert_eq!(render::exit_code(&findings[1..], Some(Severity::Info)), 1);
}

#[test]
fn a_class_says_which_encryption_it_expects() {
    let bad = POLICY.replacen("encryption = \"kms\"", "encryption = \"rot13\"", 1);
    let error = Policy::from_toml(&bad, "audit.toml").expect_err("invalid").to_string();
    assert!(error.contains("encryption") && error.contains("`rot13` is not one of aes256, kms"), "{error}");
    let policy = policy();
    let crate::policy::Classification::Managed(dev) = policy.classify("dev/web") else { panic!("managed") };
    assert_eq!(dev.encryption, Some(crate::policy::Encryption::Kms));
    let crate::policy::Classification::Managed(prod) = policy.classify("prod/api") else { panic!("managed") };
    assert_eq!(prod.encryption, None);
}

/// A registry in two regions with one instance of every problem the audit knows, beside a clean repository.
fn every_problem() -> Vec<Snapshot> {
    let mut repositories: Vec<Repository> = spoils().into_iter().map(|(name, spoil, _)| spoiled(name, spoil)).collect();
    repositories.push(clean("prod/clean"));
    let mut unreadable = clean("prod/m");
    unreadable.policy = Read::Failed { call: "ecr:GetRepositoryPolicy".into(), why: "AccessDeniedException".into() };
    repositories.push(unreadable);
    let mut east = snapshot("us-east-1", repositories);
    east.replication = Read::Got(vec![ReplicationRule {
        destinations: vec![("eu-west-1".into(), "111111111111".into())],
        prefixes: vec![],
    }]);
    east.registry_policy = Read::Got(Some(
        json!({"Statement": {"Sid": "Everything", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": ["ecr:*"]}}),
    ));
    east.creation_templates = Read::Got(vec![template("prod", |t| {
        t.mutability = MutabilitySetting::new(EcrMutability::Mutable, vec![]);
    })]);
    let mut west = snapshot("eu-west-1", vec![clean("prod/clean")]);
    west.pull_through_cache = Read::Got(vec![]);
    vec![east, west]
}

/// The three renderings of a registry with every problem, compared with `shared/tests/golden/` (regenerate with
/// `UPDATE_GOLDEN=1 cargo test -p warden-shared audit`, then review the diff). `scripts/test` validates the
/// SARIF file against the SARIF 2.1.0 schema (`shared/tests/sarif/validate.py`).
#[test]
fn golden_table_json_and_sarif_of_every_check() {
    let findings = evaluate(&every_problem(), &policy(), today());
    let fired: BTreeSet<Check> = findings.iter().map(|f| f.check).collect();
    let missing: Vec<Check> = Check::ALL.iter().copied().filter(|c| !fired.contains(c)).collect();
    assert!(missing.is_empty(), "the golden registry must show every check; missing {missing:?}");
    assert!(!findings.iter().any(|f| f.resource == "prod/clean"), "nothing on the clean repository: {findings:#?}");
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let pretty = |value: serde_json::Value| serde_json::to_string_pretty(&value).expect("pretty") + "\n";
    let mut mismatches = Vec::new();
    crate::golden::compare(&directory.join("audit.txt"), &render::table(&findings), &mut mismatches);
    crate::golden::compare(&directory.join("audit.json"), &pretty(render::json(&findings)), &mut mismatches);
    crate::golden::compare(&directory.join("audit.sarif"), &pretty(render::sarif(&findings)), &mut mismatches);
    crate::golden::assert_none(&mismatches);
}

mod security_hub_plan {
    use super::*;
    use crate::audit::security_hub::{Asff, active, id, plan, unseen};

    const NOW: &str = "2026-12-06T12:00:00Z";
    const BEFORE: &str = "2026-12-01T00:00:00Z";
    const HERE: (&str, &str) = ("111111111111", "us-east-1");

    /// Security Hub's copy of a finding first seen `BEFORE`.
    fn held(finding: &Finding) -> Asff {
        active(finding, BEFORE, BEFORE)
    }

    fn finding_on(check: Check, resource: &str) -> Finding {
        At { account: HERE.0, region: HERE.1, resource }.finding(
            check,
            Severity::Warning,
            "m".into(),
            ("fix".into(), "src".into()),
        )
    }

    #[test]
    fn current_findings_are_imported_keeping_when_they_were_first_seen() {
        let old = finding_on(Check::ScanCoverageGap, "prod/a");
        let new = finding_on(Check::NoLifecyclePolicy, "prod/b");
        let plan = plan(&[old.clone(), new.clone()], &[held(&old)], &[], HERE, NOW);
        assert_eq!(plan.archived, 0);
        let times: Vec<(&str, &str, bool)> =
            plan.import.iter().map(|a| (a.created_at.as_str(), a.updated_at.as_str(), a.active)).collect();
        assert_eq!(times, [(BEFORE, NOW, true), (NOW, NOW, true)]);
        assert_eq!(plan.import[0].id, "ecr-warden/audit/111111111111/us-east-1/scan-coverage-gap/prod/a");
        assert_eq!(plan.import[0].generator_id(), "ecr-warden/audit/scan-coverage-gap");
        assert_eq!(plan.import[0].severity, "MEDIUM");
    }

    #[test]
    fn a_resolved_finding_is_archived_only_where_the_run_could_see() {
        let resolved = [
            finding_on(Check::RepositoryPolicyPublic, "prod/seen"),
            finding_on(Check::RepositoryPolicyPublic, "prod/unread"),
            finding_on(Check::ScanCoverageGap, "prod/seen"),
            finding_on(Check::PullThroughCacheRegions, "registry"),
        ];
        let held: Vec<Asff> = resolved.iter().map(held).collect();
        let mut unread = clean("prod/unread");
        unread.policy = Read::Failed { call: "ecr:GetRepositoryPolicy".into(), why: "AccessDenied".into() };
        let mut registry = snapshot(HERE.1, vec![clean("prod/seen"), unread]);
        registry.scanning = Read::Failed { call: "ecr:GetRegistryScanningConfiguration".into(), why: "x".into() };
        let mut west = snapshot("eu-west-1", vec![]);
        west.pull_through_cache = Read::Failed { call: "ecr:DescribePullThroughCacheRules".into(), why: "x".into() };
        let plan = plan(&[], &held, &unseen(&[registry, west]), HERE, NOW);
        // Only the public policy on the repository whose policy was read is known to be gone; scanning was not
        // read (every repository's coverage unknown), nor another region's pull-through cache rules.
        let archived: Vec<&str> = plan.import.iter().filter(|a| !a.active).map(|a| a.id.as_str()).collect();
        assert_eq!(archived, [id(&resolved[0]).as_str()]);
        assert_eq!((plan.archived, plan.unjudged), (1, 3));
        assert_eq!(plan.import[0].created_at, BEFORE, "an archived finding keeps its history");
        assert_eq!(plan.import[0].updated_at, NOW);
    }

    #[test]
    fn repositories_left_unread_are_incomplete_and_their_findings_stay_active() {
        let mut registry = snapshot(HERE.1, vec![clean("prod/read")]);
        registry.unread = vec!["prod/late".into(), "prod/later".into()];
        let findings = evaluate(std::slice::from_ref(&registry), &policy(), today());
        let incomplete = findings.iter().find(|f| f.check == Check::AuditIncomplete).expect("incomplete");
        assert!(
            incomplete
                .message
                .starts_with("2 of 3 repositories were not read before the function's deadline (from prod/late on)"),
            "{}",
            incomplete.message
        );
        assert!(!findings.iter().any(|f| f.resource.starts_with("prod/late")), "unread is never judged");
        assert!(!findings.iter().any(|f| f.check == Check::AllowlistStale), "an unread repository may hold it");
        let earlier =
            [finding_on(Check::TagMutabilityDrift, "prod/late"), finding_on(Check::AllowlistStale, "class production")];
        let held: Vec<Asff> = earlier.iter().map(held).collect();
        let plan = plan(&findings, &held, &unseen(&[registry]), HERE, NOW);
        assert_eq!((plan.archived, plan.unjudged), (0, 2), "what was not read resolves nothing");
    }

    #[test]
    fn other_regions_accounts_and_archived_findings_are_left_alone() {
        let elsewhere = At { account: HERE.0, region: "eu-west-1", resource: "prod/a" }.finding(
            Check::ScanCoverageGap,
            Severity::Warning,
            "m".into(),
            ("f".into(), "s".into()),
        );
        let other_account = At { account: "222222222222", region: HERE.1, resource: "prod/a" }.finding(
            Check::ScanCoverageGap,
            Severity::Warning,
            "m".into(),
            ("f".into(), "s".into()),
        );
        let mut archived = held(&finding_on(Check::NoLifecyclePolicy, "prod/a"));
        archived.active = false;
        let held = [held(&elsewhere), held(&other_account), archived];
        let plan = plan(std::slice::from_ref(&elsewhere), &held, &[], HERE, NOW);
        assert_eq!(plan, crate::audit::security_hub::Plan::default(), "nothing of this account and region changed");
    }

    #[test]
    fn texts_are_cut_to_asff_limits_on_a_character_boundary() {
        let mut long = finding_on(Check::ForgedApproval, "prod/a");
        long.message = "é".repeat(700);
        long.remediation = "ü".repeat(400);
        let asff = active(&long, NOW, NOW);
        assert!(asff.description.len() <= 1024 && asff.description.ends_with('…'), "{}", asff.description.len());
        assert!(asff.remediation.len() <= 512 && asff.remediation.ends_with('…'));
        let registry = active(&finding_on(Check::RegistryPolicyBroad, "registry"), NOW, NOW);
        assert_eq!(registry.resource(), ("AwsAccount", "AWS::::Account:111111111111".to_owned()));
        let repository = active(&long, NOW, NOW);
        assert_eq!(
            repository.resource(),
            ("AwsEcrRepository", "arn:aws:ecr:us-east-1:111111111111:repository/prod/a".to_owned())
        );
        assert_eq!(repository.product_arn(), "arn:aws:securityhub:us-east-1:111111111111:product/111111111111/default");
    }
}
