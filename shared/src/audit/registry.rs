//! The checks of registry-wide settings: the registry policy, replication, pull-through cache across regions,
//! and the policy's allowlists.

use super::documents::broad_statements;
use super::{At, Check, Finding, Read, Snapshot, incomplete};
use crate::kinds::Severity;
use crate::policy::Policy;
use chrono::NaiveDate;
use std::collections::BTreeSet;

/// The registry's own settings in one account and region.
pub fn settings(snapshot: &Snapshot) -> Vec<Finding> {
    let at = At { account: &snapshot.account, region: &snapshot.region, resource: "registry" };
    let mut findings: Vec<Finding> = [
        incomplete(&at, &snapshot.registry_policy),
        incomplete(&at, &snapshot.scanning),
        incomplete(&at, &snapshot.replication),
        incomplete(&at, &snapshot.pull_through_cache),
    ]
    .into_iter()
    .flatten()
    .collect();
    findings.extend(unread(&at, snapshot));
    findings.extend(snapshot.inspector_ecr.as_ref().and_then(|status| inspector_disabled(&at, status)));
    if let Some(Some(document)) = snapshot.registry_policy.got()
        && let Some(sid) = broad_statements(document, &snapshot.account).first()
    {
        let message = format!(
            "registry policy statement {sid} grants ecr:* or write actions to other accounts without a condition"
        );
        let fix = "aws ecr get-registry-policy; grant only ecr:ReplicateImage / ecr:CreateRepository to the accounts that replicate here".to_owned();
        let source = "ECR guide: overly broad permissions".to_owned();
        findings.push(at.finding(Check::RegistryPolicyBroad, Severity::Warning, message, (fix, source)));
    }
    for rule in snapshot.replication.got().into_iter().flatten().filter(|r| r.prefixes.is_empty()) {
        let to: Vec<String> = rule.destinations.iter().map(|(region, account)| format!("{account}/{region}")).collect();
        let message = format!("a replication rule copies every repository to {} (no repository filter)", to.join(", "));
        let fix =
            "aws ecr put-replication-configuration with repositoryFilters (PREFIX_MATCH) naming what must replicate"
                .to_owned();
        let source = "ECR guide: replicating images without understanding regional scope, prefix filters".to_owned();
        findings.push(at.finding(Check::ReplicationUnscoped, Severity::Warning, message, (fix, source)));
    }
    findings
}

/// Enhanced scanning configured while Amazon Inspector does not scan ECR in the account: nothing is scanned.
fn inspector_disabled(at: &At<'_>, status: &Read<String>) -> Option<Finding> {
    let status = match status {
        Read::Got(status) if status == "ENABLED" => return None,
        Read::Got(status) => status,
        failed => return incomplete(at, failed),
    };
    let message = format!(
        "the registry scans with Amazon Inspector (enhanced scanning), but Inspector's ECR scanning is {status} in this account: no image is scanned"
    );
    let fix = "aws inspector2 enable --resource-types ECR (or switch the registry back to basic scanning)".to_owned();
    let source = "ECR guide: skipping image scanning".to_owned();
    Some(at.finding(Check::ScanCoverageGap, Severity::Warning, message, (fix, source)))
}

/// Repositories the audit listed but had no time to read: `audit-incomplete`, naming how many and the first.
fn unread(at: &At<'_>, snapshot: &Snapshot) -> Option<Finding> {
    let first = snapshot.unread.first()?;
    let total = snapshot.unread.len() + snapshot.repositories.len();
    let message = format!(
        "{} of {total} repositories were not read before the function's deadline (from {first} on): their checks did not run",
        snapshot.unread.len()
    );
    let fix = "run `warden audit` (no deadline), or raise the audit function's Timeout / audit fewer regions per run"
        .to_owned();
    Some(at.finding(Check::AuditIncomplete, Severity::Warning, message, (fix, "audit coverage".into())))
}

/// Pull-through cache rules are per region: a prefix some audited regions of an account have and others lack.
pub fn pull_through_cache_regions(snapshots: &[Snapshot]) -> Vec<Finding> {
    let accounts: BTreeSet<&str> = snapshots.iter().map(|s| s.account.as_str()).collect();
    let mut findings = Vec::new();
    for account in accounts {
        let regions: Vec<(&str, BTreeSet<&str>)> = snapshots
            .iter()
            .filter(|s| s.account == account)
            .filter_map(|s| Some((s.region.as_str(), s.pull_through_cache.got()?.iter().map(String::as_str).collect())))
            .collect();
        let everywhere: BTreeSet<&str> = regions.iter().flat_map(|(_, prefixes)| prefixes.iter().copied()).collect();
        for (region, prefixes) in regions.iter().filter(|_| regions.len() > 1) {
            let missing: Vec<&str> = everywhere.difference(prefixes).copied().collect();
            if missing.is_empty() {
                continue;
            }
            let at = At { account, region, resource: "registry" };
            let message = format!(
                "pull-through cache rules [{}] exist in other audited regions but not here",
                missing.join(", ")
            );
            let fix = format!(
                "aws ecr create-pull-through-cache-rule --region {region} for each, or pull through the region that has it"
            );
            let source = "ECR guide: assuming pull through cache is global rather than Region-specific".to_owned();
            findings.push(at.finding(Check::PullThroughCacheRegions, Severity::Warning, message, (fix, source)));
        }
    }
    findings
}

/// The policy's allowlist entries: past their expiry, or matching no active finding in their scope.
pub fn allowlists(snapshots: &[Snapshot], policy: &Policy, today: NaiveDate) -> Vec<Finding> {
    let (account, region) = snapshots.first().map_or(("", ""), |s| (s.account.as_str(), s.region.as_str()));
    let mut findings = Vec::new();
    for class in &policy.classes {
        let Some(gate) = &class.gate else { continue };
        let resource = format!("class {}", class.name);
        let at = At { account, region, resource: &resource };
        for entry in &gate.allow {
            if entry.expires < today {
                let message =
                    format!("allowlist entry {} expired on {}: it no longer excuses anything", entry.id, entry.expires);
                let fix =
                    format!("remove {} from class `{}`'s allow list, or renew it with a reason", entry.id, class.name);
                findings.push(at.finding(
                    Check::AllowlistExpired,
                    Severity::Warning,
                    message,
                    (fix, "warden.toml gate.allow".into()),
                ));
            } else if is_stale(snapshots, policy, &class.name, entry) {
                let message =
                    format!("allowlist entry {} matches no active finding on any repository of its scope", entry.id);
                let fix =
                    format!("remove {} from class `{}`'s allow list: what it excused is gone", entry.id, class.name);
                findings.push(at.finding(
                    Check::AllowlistStale,
                    Severity::Info,
                    message,
                    (fix, "warden.toml gate.allow".into()),
                ));
            }
        }
    }
    findings
}

/// Whether no repository of the entry's class and scope carries its finding; unknown (a read failed, a
/// repository was left unread, or no repository of the class was audited) is not stale.
fn is_stale(snapshots: &[Snapshot], policy: &Policy, class: &str, entry: &crate::policy::AllowEntry) -> bool {
    if snapshots.iter().any(|s| !s.unread.is_empty()) {
        return false;
    }
    let in_scope = snapshots.iter().flat_map(|s| s.repositories.iter().map(move |r| (s.account.as_str(), r))).filter(|(account, r)| {
        entry.in_scope(&r.name)
            && matches!(policy.classify_in(Some(account), &r.name), crate::policy::Classification::Managed(c) if c.name == class)
    }).map(|(_, r)| r);
    let mut seen = false;
    for repository in in_scope {
        match repository.finding_ids.as_ref().and_then(Read::got) {
            Some(ids) if ids.iter().any(|id| id.eq_ignore_ascii_case(&entry.id)) => return false,
            Some(_) => seen = true,
            None => return false,
        }
    }
    seen
}
