//! The notify function's decisions: which operational events operators must hear about, and what the
//! notification says. Pure: (event, policy, time) → notification or the reason there is none.

use super::{Notification, SCHEMA, Severity};
use crate::event::{
    Event, EventKind, ImageAction, ImageActionType, InspectorCoverage, LifecyclePolicyExecution,
    PullThroughCacheAction, ReplicationAction, RepositoryName, ScanResourceChange,
};
use crate::gate::{ScanState, scan_state};
use crate::policy::{Classification, Policy};

pub const FUNCTION: &str = "notify";

/// Images listed by name in a lifecycle summary before the rest are counted.
const LISTED_IMAGES: usize = 20;

struct Draft {
    kind: &'static str,
    severity: Severity,
    repository: Option<String>,
    digest: Option<String>,
    tags: Vec<String>,
    outcome: &'static str,
    reasons: Vec<String>,
}

/// The notification `event` deserves, or why it deserves none.
pub fn for_event(event: &Event, policy: &Policy, at: &str) -> Result<Notification, String> {
    let draft = draft(event, policy)?;
    let class = draft.repository.as_deref().and_then(|repo| match policy.classify_in(event.account.as_deref(), repo) {
        Classification::Managed(class) => Some(class.name.clone()),
        Classification::Unmanaged(_) => None,
    });
    Ok(Notification {
        schema: SCHEMA,
        kind: draft.kind.to_owned(),
        severity: draft.severity,
        function: FUNCTION.to_owned(),
        repository: draft.repository,
        digest: draft.digest,
        tags: draft.tags,
        tags_omitted: 0,
        outcome: draft.outcome.to_owned(),
        reasons: draft.reasons,
        reasons_omitted: 0,
        actions: vec![],
        actions_omitted: 0,
        class,
        dry_run: false,
        event_id: event.id.clone(),
        time: at.to_owned(),
        account: None,
        region: None,
    })
}

fn draft(event: &Event, policy: &Policy) -> Result<Draft, String> {
    let region = event.region.as_deref().unwrap_or("this region");
    match &event.kind {
        EventKind::Replication(r) => replication(r, policy, region),
        EventKind::PullThroughCache(p) if p.sync_status != "SUCCESS" => Ok(pull_through_cache_failed(p)),
        EventKind::PullThroughCache(_) => Err("pull-through cache sync succeeded".into()),
        EventKind::BasicScan(scan) => {
            scan_failure(&scan.repository_name, scan.image_digest.as_deref(), &scan.image_tags, &scan.scan_status)
        }
        EventKind::InspectorScan(scan) => {
            scan_failure(&scan.repository_name, scan.image_digest.as_deref(), &scan.image_tags, &scan.scan_status)
        }
        EventKind::InspectorCoverage(coverage) if coverage.scan_status.status_code_value == "INACTIVE" => {
            Ok(scanning_stopped(event, coverage))
        }
        EventKind::InspectorCoverage(_) => Err("scanning is active".into()),
        EventKind::ScanResourceChange(change) => Ok(scan_frequency_changed(change)),
        EventKind::LifecyclePolicyExecution(run) => Ok(lifecycle_expired(run)),
        EventKind::ImageAction(action) if action.action_type == ImageActionType::Delete => {
            protected_tag_deleted(action, policy, event.account.as_deref())
        }
        other => Err(format!("notify does not report {} events", other.name())),
    }
}

fn replication(r: &ReplicationAction, policy: &Policy, region: &str) -> Result<Draft, String> {
    let from = match (&r.source_account, &r.source_region) {
        (Some(account), Some(source)) => format!(" from {account} in {source}"),
        (None, Some(source)) => format!(" from {source}"),
        _ => String::new(),
    };
    let image = format!("{}{}", r.image_digest, r.image_tag.as_deref().map_or(String::new(), |t| format!(" ({t})")));
    if r.result == "SUCCESS" {
        if !policy.notify.replication_successes.iter().any(|p| p.is_match(r.repository_name.as_str())) {
            return Err(format!("successful replications into {} are not reported", r.repository_name));
        }
        return Ok(Draft {
            kind: "replicated",
            severity: Severity::Info,
            repository: Some(r.repository_name.to_string()),
            digest: Some(r.image_digest.clone()),
            tags: r.image_tag.iter().cloned().collect(),
            outcome: "replicated",
            reasons: vec![format!("{image} replicated{from} into {region}")],
        });
    }
    Ok(Draft {
        kind: "replication-failed",
        severity: Severity::Warning,
        repository: Some(r.repository_name.to_string()),
        digest: Some(r.image_digest.clone()),
        tags: r.image_tag.iter().cloned().collect(),
        outcome: "failed",
        reasons: vec![format!("replicating {image}{from} into {region} ended with result {}", r.result)],
    })
}

fn pull_through_cache_failed(p: &PullThroughCacheAction) -> Draft {
    let mut reasons = vec![format!(
        "sync of {}{} from {} (rule prefix `{}`) ended with {}",
        p.repository_name,
        p.image_tag.as_deref().map_or(String::new(), |t| format!(":{t}")),
        p.upstream_registry_url.as_deref().unwrap_or("the upstream registry"),
        p.ecr_repository_prefix.as_deref().unwrap_or("?"),
        p.sync_status
    )];
    if let Some(code) = &p.failure_code {
        reasons.push(format!("{code}: {}", p.failure_reason.as_deref().unwrap_or("no reason given")));
    }
    Draft {
        kind: "pull-through-cache-failed",
        severity: Severity::Warning,
        repository: Some(p.repository_name.to_string()),
        digest: p.image_digest.clone(),
        tags: p.image_tag.iter().cloned().collect(),
        outcome: "failed",
        reasons,
    }
}

fn scanning_stopped(event: &Event, coverage: &InspectorCoverage) -> Draft {
    let resource = event.resources.first().cloned().unwrap_or_default();
    let (repository, digest) = image_from_arn(&resource);
    Draft {
        kind: "scanning-stopped",
        severity: Severity::Warning,
        repository,
        digest,
        tags: vec![],
        outcome: "not-scanned",
        reasons: vec![format!(
            "Amazon Inspector stopped {} scanning of {}: {}",
            coverage.scan_type.as_deref().unwrap_or("enhanced").to_lowercase(),
            if resource.is_empty() { "a resource" } else { &resource },
            coverage.scan_status.reason
        )],
    }
}

fn scan_frequency_changed(change: &ScanResourceChange) -> Draft {
    Draft {
        kind: "scan-frequency-changed",
        severity: Severity::Info,
        repository: (change.repositories.len() == 1).then(|| change.repositories[0].repository_name.to_string()),
        digest: None,
        tags: vec![],
        outcome: "changed",
        reasons: change
            .repositories
            .iter()
            .map(|r| {
                format!(
                    "{}: {} scanning {} → {}",
                    r.repository_name,
                    change.scan_type.as_deref().unwrap_or("enhanced").to_lowercase(),
                    r.previous_scan_frequency.as_deref().unwrap_or("?"),
                    r.scan_frequency.as_deref().unwrap_or("?")
                )
            })
            .collect(),
    }
}

fn lifecycle_expired(run: &LifecyclePolicyExecution) -> Draft {
    let details = &run.service_event_details;
    let actions = &details.lifecycle_event_image_actions;
    let rules = &details.lifecycle_event_policy.lifecycle_event_rules;
    let mut reasons: Vec<String> = rules
        .iter()
        .map(|rule| {
            let count = actions.iter().filter(|a| a.rule_priority == rule.rule_priority).count();
            let description = rule.description.as_deref().map_or(String::new(), |d| format!(" ({d})"));
            format!(
                "rule {}{description}: {} {count} image{}",
                rule.rule_priority,
                rule.action,
                if count == 1 { "" } else { "s" }
            )
        })
        .collect();
    let failures: Vec<String> = actions
        .iter()
        .filter_map(|a| {
            let code = a.failure_code.as_ref()?;
            Some(format!("{}: {code} {}", a.lifecycle_event_image.digest, a.failure_reason.as_deref().unwrap_or("")))
        })
        .collect();
    reasons.extend(actions.iter().take(LISTED_IMAGES).map(|a| {
        let image = &a.lifecycle_event_image;
        let tags = if image.tag_list.is_empty() { "untagged".to_owned() } else { image.tag_list.join(", ") };
        format!("{} ({tags}) by rule {}", image.digest, a.rule_priority)
    }));
    if actions.len() > LISTED_IMAGES {
        reasons.push(format!("and {} more images", actions.len() - LISTED_IMAGES));
    }
    reasons.extend(failures.iter().cloned());
    Draft {
        kind: "lifecycle-expired",
        severity: if failures.is_empty() { Severity::Info } else { Severity::Warning },
        repository: Some(details.repository_name.to_string()),
        digest: None,
        tags: actions.iter().flat_map(|a| a.lifecycle_event_image.tag_list.iter().cloned()).collect(),
        outcome: if failures.is_empty() { "expired" } else { "partly-failed" },
        reasons,
    }
}

fn protected_tag_deleted(action: &ImageAction, policy: &Policy, account: Option<&str>) -> Result<Draft, String> {
    let tag = action.image_tag.as_deref().ok_or("image deleted by digest: no tag involved")?;
    let protected = match policy.classify_in(account, action.repository_name.as_str()) {
        Classification::Managed(class) => class.tags.as_ref().is_some_and(|t| t.is_protected(tag)),
        Classification::Unmanaged(_) => false,
    };
    if !protected {
        return Err(format!("`{tag}` is not a protected tag"));
    }
    Ok(Draft {
        kind: "protected-tag-deleted",
        severity: Severity::Critical,
        repository: Some(action.repository_name.to_string()),
        digest: Some(action.image_digest.clone()),
        tags: vec![tag.to_owned()],
        outcome: "deleted",
        reasons: vec![format!("protected tag `{tag}` ({}) was deleted", action.image_digest)],
    })
}

fn scan_failure(
    repository: &RepositoryName,
    digest: Option<&str>,
    tags: &[String],
    status: &str,
) -> Result<Draft, String> {
    match scan_state(status, None) {
        ScanState::Failed(reason) => Ok(Draft {
            kind: "scan-failed",
            severity: Severity::Warning,
            repository: Some(repository.to_string()),
            digest: digest.map(str::to_owned),
            tags: tags.to_vec(),
            outcome: "not-scanned",
            reasons: vec![format!("{reason}: the image has no usable scan results")],
        }),
        _ => Err(format!("scan status {status}")),
    }
}

/// `arn:aws:ecr:<region>:<account>:repository/<name>/sha256:<hex>` → (name, digest).
fn image_from_arn(arn: &str) -> (Option<String>, Option<String>) {
    let Some((_, path)) = arn.split_once(":repository/") else { return (None, None) };
    match path.rsplit_once("/sha256:") {
        Some((name, hex)) => (Some(name.to_owned()), Some(format!("sha256:{hex}"))),
        None => (Some(path.to_owned()), None),
    }
}
