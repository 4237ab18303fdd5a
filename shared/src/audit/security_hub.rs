//! The audit's findings as AWS Security Hub findings (ASFF), and what one run changes there: each current
//! finding imported (created, or updated keeping its first-seen time), each earlier ecr-warden finding the run
//! no longer sees archived — but only where the run could see. A finding whose check could not run here (a read
//! failed: `audit-incomplete`) stays active: missing data never resolves anything.
//!
//! Pure: findings + what the snapshots could not read + the findings Security Hub holds → the findings to import.

use super::{Check, Finding, Read, Snapshot};
use crate::kinds::Severity;

/// Every ecr-warden audit finding's generator id starts so; the id of one is this + the check id.
pub const GENERATOR_PREFIX: &str = "ecr-warden/audit/";
/// The ASFF version the findings follow.
pub const SCHEMA_VERSION: &str = "2018-10-08";
/// The ASFF finding type of every check: configuration against practice.
pub const FINDING_TYPE: &str = "Software and Configuration Checks/AWS Security Best Practices";
/// BatchImportFindings takes at most 100 findings per request.
pub const BATCH: usize = 100;
/// ProductFields keys that carry the check and the resource, so a finding read back names both exactly.
pub const CHECK_FIELD: &str = "ecr-warden/check";
pub const RESOURCE_FIELD: &str = "ecr-warden/resource";
/// Where each check is explained.
pub const DOCS: &str = "https://github.com/ecr-warden/ecr-warden/blob/main/docs/audit.md";

/// One ecr-warden finding as Security Hub holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asff {
    pub id: String,
    pub check: Check,
    pub account: String,
    pub region: String,
    /// The audit's resource: a repository name, `registry`, or `class <name>`.
    pub resource: String,
    pub title: String,
    pub description: String,
    /// INFORMATIONAL, MEDIUM or HIGH.
    pub severity: &'static str,
    pub remediation: String,
    pub created_at: String,
    pub updated_at: String,
    pub active: bool,
}

impl Asff {
    /// The finding's product ARN: the account's default product in the finding's region.
    pub fn product_arn(&self) -> String {
        format!("arn:aws:securityhub:{}:{}:product/{}/default", self.region, self.account, self.account)
    }

    pub fn generator_id(&self) -> String {
        format!("{GENERATOR_PREFIX}{}", self.check.id())
    }

    /// The ASFF resource: (type, id). Repositories by ARN; the registry as the account; a policy class as Other.
    pub fn resource(&self) -> (&'static str, String) {
        match self.resource.as_str() {
            "registry" => ("AwsAccount", format!("AWS::::Account:{}", self.account)),
            name if name.starts_with("class ") => ("Other", format!("ecr-warden policy {name}")),
            name => ("AwsEcrRepository", format!("arn:aws:ecr:{}:{}:repository/{name}", self.region, self.account)),
        }
    }
}

/// The stable id of a finding: the same problem on the same resource is one Security Hub finding, updated.
pub fn id(finding: &Finding) -> String {
    format!("{GENERATOR_PREFIX}{}/{}/{}/{}", finding.account, finding.region, finding.check.id(), finding.resource)
}

/// ASFF's label for a severity: critical findings (public policies, forged approvals, movable release tags) are
/// HIGH; CRITICAL is left for active compromise, which a configuration audit cannot see.
pub fn label(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "HIGH",
        Severity::Warning => "MEDIUM",
        Severity::Info => "INFORMATIONAL",
    }
}

/// `text` cut to at most `max` bytes on a character boundary (ASFF limits titles, descriptions, texts).
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A current finding as it is imported now; `created_at` is when Security Hub first saw it.
pub fn active(finding: &Finding, created_at: &str, now: &str) -> Asff {
    Asff {
        id: id(finding),
        check: finding.check,
        account: finding.account.clone(),
        region: finding.region.clone(),
        resource: finding.resource.clone(),
        title: cut(&format!("{}: {}", finding.check.id(), finding.resource), 256),
        description: cut(&format!("{} (from: {})", finding.message, finding.source), 1024),
        severity: label(finding.severity),
        remediation: cut(&finding.remediation, 512),
        created_at: created_at.to_owned(),
        updated_at: now.to_owned(),
        active: true,
    }
}

/// What a run's failed reads keep it from judging: a check on a resource (`None`: on every resource of the
/// region), in an account and region (`None`: every audited region, for the checks that compare regions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unseen {
    pub account: String,
    pub region: Option<String>,
    pub resource: Option<String>,
    pub checks: &'static [Check],
}

/// Every creation template's findings (a resource ending in `*` covers every resource it begins).
const TEMPLATES: &str = "creation template *";
/// The checks a creation template's findings come from.
const TEMPLATE_CHECKS: &[Check] = &[
    Check::TagMutabilityDrift,
    Check::LifecyclePolicyDrift,
    Check::NoLifecyclePolicy,
    Check::EncryptionAes256,
    Check::RepositoryPolicyPublic,
    Check::RepositoryPolicyBroad,
];

impl Unseen {
    fn covers(&self, finding: &Asff) -> bool {
        let resource = |r: &String| match r.strip_suffix('*') {
            Some(prefix) => finding.resource.starts_with(prefix),
            None => *r == finding.resource,
        };
        self.account == finding.account
            && self.region.as_ref().is_none_or(|r| *r == finding.region)
            && self.resource.as_ref().is_none_or(resource)
            && self.checks.contains(&finding.check)
    }
}

/// Every blind spot of the snapshots: which checks each failed read silenced, and where.
pub fn unseen(snapshots: &[Snapshot]) -> Vec<Unseen> {
    let mut blind = Vec::new();
    let mut add = |account: &str, region: Option<&str>, resource: Option<&str>, checks: &'static [Check]| {
        blind.push(Unseen {
            account: account.to_owned(),
            region: region.map(str::to_owned),
            resource: resource.map(str::to_owned),
            checks,
        });
    };
    for snapshot in snapshots {
        let (account, region) = (snapshot.account.as_str(), Some(snapshot.region.as_str()));
        for (failed, checks) in registry_reads(snapshot) {
            if failed {
                add(account, region, None, checks);
            }
        }
        if matches!(snapshot.inspector_ecr, Some(Read::Failed { .. })) {
            add(account, region, None, &[Check::ScanCoverageGap]);
        }
        if snapshot.creation_templates.got().is_none() {
            add(account, region, Some(TEMPLATES), TEMPLATE_CHECKS);
        }
        if snapshot.pull_through_cache.got().is_none() {
            add(account, None, Some("registry"), &[Check::PullThroughCacheRegions]);
        }
        for name in &snapshot.unread {
            add(account, region, Some(name), &Check::ALL);
        }
        if !snapshot.unread.is_empty() {
            add(account, None, None, &[Check::AllowlistStale]);
        }
        for repository in &snapshot.repositories {
            for (failed, checks) in repository_reads(repository) {
                if failed {
                    add(account, region, Some(&repository.name), checks);
                }
            }
            if matches!(repository.finding_ids, Some(Read::Failed { .. })) {
                // Allowlist staleness is judged over every repository of a class: one unread repository hides it.
                add(account, None, None, &[Check::AllowlistStale]);
            }
        }
    }
    blind
}

fn failed<T>(read: &Read<T>) -> bool {
    read.got().is_none()
}

/// The registry-wide reads and the checks each feeds, anywhere in the region.
fn registry_reads(snapshot: &Snapshot) -> [(bool, &'static [Check]); 3] {
    [
        (failed(&snapshot.registry_policy), &[Check::RegistryPolicyBroad]),
        (failed(&snapshot.scanning), &[Check::ScanCoverageGap]),
        (failed(&snapshot.replication), &[Check::ReplicationUnscoped]),
    ]
}

/// A repository's reads and the checks each feeds on it.
fn repository_reads(repository: &super::Repository) -> [(bool, &'static [Check]); 6] {
    [
        (failed(&repository.lifecycle_policy), &[Check::NoLifecyclePolicy, Check::LifecyclePolicyDrift]),
        (failed(&repository.policy), &[Check::RepositoryPolicyPublic, Check::RepositoryPolicyBroad]),
        (failed(&repository.untagged), &[Check::UntaggedAccumulation]),
        (failed(&repository.inactive_coverage), &[Check::ScanCoverageGap]),
        (failed(&repository.critical_images), &[Check::FindingsUnacted]),
        (failed(&repository.unrecorded_own_tags), &[Check::ForgedApproval]),
    ]
}

/// What one run writes to Security Hub in one account and region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Current findings (new or updated) and the resolved ones, archived; in batches of [`BATCH`].
    pub import: Vec<Asff>,
    pub archived: usize,
    /// Earlier findings the run did not see again but could not judge (a read failed): left active.
    pub unjudged: usize,
}

/// The run's writes: `findings` of this account and region imported (first-seen time kept from `held`), and
/// every active finding in `held` the run could judge and no longer finds archived. `held` is what Security Hub
/// returned for ecr-warden's generator prefix; anything else in it (another product's finding) is never touched.
pub fn plan(findings: &[Finding], held: &[Asff], blind: &[Unseen], (account, region): (&str, &str), now: &str) -> Plan {
    let ours = |f: &&Asff| f.account == account && f.region == region;
    let mut plan = Plan::default();
    let mut current = std::collections::BTreeSet::new();
    for finding in findings.iter().filter(|f| f.account == account && f.region == region) {
        let id = id(finding);
        let created_at = held.iter().find(|h| h.active && h.id == id).map_or(now, |h| h.created_at.as_str());
        plan.import.push(active(finding, created_at, now));
        current.insert(id);
    }
    for resolved in held.iter().filter(ours).filter(|h| h.active && !current.contains(&h.id)) {
        if blind.iter().any(|b| b.covers(resolved)) {
            plan.unjudged += 1;
            continue;
        }
        plan.archived += 1;
        plan.import.push(Asff { updated_at: now.to_owned(), active: false, ..resolved.clone() });
    }
    plan
}
