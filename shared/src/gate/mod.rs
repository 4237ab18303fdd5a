//! scan-gate's decisions. Pure: (scan evidence, gate rules, repository, today) → [`GateResult`]; and the
//! promotion / demotion steps for an image given its tags.

use crate::event::SeverityCounts;
use crate::policy::{FindingSeverity, GateRules};
use crate::tags::Step;
use crate::template::TagTemplate;
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

mod evidence;
pub mod index;
pub mod supply_chain;

pub use evidence::{Approval, Approved, Coverage, RecordedVerdict, Scanner, Trigger, counts_disagreement, may_promote};

/// One vulnerability finding, from ECR basic scanning or Amazon Inspector, reduced to what the gate and the
/// notification need. Optional fields are unknown when the scanner does not say.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Finding {
    /// The vulnerability id (`CVE-2026-1234`, `GHSA-...`, or the scanner's name for it).
    pub id: String,
    pub severity: FindingSeverity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_available: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exploit_available: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Finding {
    pub fn new(id: impl Into<String>, severity: FindingSeverity) -> Self {
        Self {
            id: id.into(),
            severity,
            package: None,
            installed_version: None,
            fixed_version: None,
            fix_available: None,
            epss: None,
            exploit_available: None,
            link: None,
        }
    }

    /// One line for a notification: severity, id, package and versions, link.
    pub fn describe(&self) -> String {
        let mut line = format!("{} {}", self.severity, self.id);
        if let Some(package) = &self.package {
            line.push_str(&format!(" in {package}"));
            if let Some(installed) = &self.installed_version {
                line.push_str(&format!(" {installed}"));
            }
            match (&self.fixed_version, self.fix_available) {
                (Some(fixed), _) => line.push_str(&format!(" (fixed in {fixed})")),
                (None, Some(false)) => line.push_str(" (no fix available)"),
                _ => {}
            }
        }
        if let Some(link) = &self.link {
            line.push_str(&format!(" {link}"));
        }
        line
    }
}

/// Counts per severity, every severity present (zero when none).
pub type Counts = BTreeMap<FindingSeverity, u64>;

fn zero_counts() -> Counts {
    FindingSeverity::ALL.iter().map(|s| (*s, 0)).collect()
}

/// Reads an event's severity counts. `TOTAL` is ignored; keys ECR omits for zero count as zero. Returns the
/// severities the event actually reported too, since Inspector's scan event reports only some.
pub fn counts_from_event(counts: &SeverityCounts) -> (Counts, Vec<FindingSeverity>) {
    let mut out = zero_counts();
    let mut reported = Vec::new();
    for (key, count) in &counts.0 {
        if key.eq_ignore_ascii_case("TOTAL") {
            continue;
        }
        let severity = FindingSeverity::parse(key);
        *out.entry(severity).or_default() += count;
        reported.push(severity);
    }
    (out, reported)
}

/// Whether the gate can be decided from an event's counts alone: no rule looks at individual findings, and
/// the event reports every severity the gate limits (or, like ECR basic scanning, omits only zeros).
pub fn decidable_from_counts(gate: &GateRules, reported: &[FindingSeverity], omits_zero_keys: bool) -> bool {
    !gate.needs_findings() && (omits_zero_keys || gate.max.keys().all(|s| reported.contains(s)))
}

/// The gate's verdict and everything that explains it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GateResult {
    pub pass: bool,
    /// `event-counts` or `findings`.
    pub evidence: &'static str,
    pub counts_before: Counts,
    /// After the fixable / EPSS / exploit filters and the allowlist.
    pub counts_after: Counts,
    /// Findings that make the gate fail, most severe first.
    pub blocking: Vec<Finding>,
    /// Findings the allowlist let through: `id (reason)`.
    pub allowlisted: Vec<String>,
    /// Expired allowlist entries that would have applied: they no longer do.
    pub expired: Vec<String>,
    /// Allowlist entries in scope that match no finding of this image.
    pub stale: Vec<String>,
    pub reasons: Vec<String>,
}

fn verdict(gate: &GateRules, counts_after: &Counts) -> (bool, Vec<String>) {
    let mut reasons = Vec::new();
    let mut pass = true;
    for (severity, limit) in &gate.max {
        let count = counts_after.get(severity).copied().unwrap_or(0);
        if count > *limit {
            pass = false;
            reasons.push(format!("{severity}: {}, at most {limit} allowed", count_findings(count as usize)));
        }
    }
    if pass {
        let limits: Vec<String> = gate.max.iter().map(|(s, l)| format!("{s} {}/{l}", counts_after[s])).collect();
        reasons.push(format!("within limits: {}", limits.join(", ")));
    }
    (pass, reasons)
}

/// Decides from counts alone (no allowlist or filters in play).
pub fn evaluate_counts(gate: &GateRules, counts: &Counts) -> GateResult {
    let (pass, reasons) = verdict(gate, counts);
    GateResult {
        pass,
        evidence: "event-counts",
        counts_before: counts.clone(),
        counts_after: counts.clone(),
        blocking: vec![],
        allowlisted: vec![],
        expired: vec![],
        stale: vec![],
        reasons,
    }
}

/// Decides from the findings: filters, allowlist (scope and expiry), limits.
pub fn evaluate_findings(gate: &GateRules, repository: &str, findings: &[Finding], today: NaiveDate) -> GateResult {
    // Allowlist entries that apply to this repository, by upper-case id.
    let mut entries: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, entry) in gate.allow.iter().enumerate().filter(|(_, e)| e.in_scope(repository)) {
        entries.entry(entry.id.to_ascii_uppercase()).or_default().push(i);
    }
    let mut used = vec![false; gate.allow.len()];
    let mut expired_hits = vec![false; gate.allow.len()];
    let mut counts_before = zero_counts();
    let mut counts_after = zero_counts();
    let mut counted: Vec<&Finding> = Vec::new();
    let mut allowlisted = Vec::new();
    let mut filtered = 0usize;
    for finding in findings {
        *counts_before.entry(finding.severity).or_default() += 1;
        if (gate.fixable_only && finding.fix_available == Some(false))
            || gate.min_epss.is_some_and(|min| finding.epss.is_some_and(|e| e < min))
            || (gate.exploitable_only && finding.exploit_available == Some(false))
        {
            filtered += 1;
            continue;
        }
        let matching = entries.get(&finding.id.to_ascii_uppercase()).map(Vec::as_slice).unwrap_or_default();
        if let Some(&live) = matching.iter().find(|&&i| !gate.allow[i].expired(today)) {
            used[live] = true;
            allowlisted.push(format!("{} ({})", finding.id, gate.allow[live].reason));
            continue;
        }
        for &i in matching {
            expired_hits[i] = true;
        }
        *counts_after.entry(finding.severity).or_default() += 1;
        counted.push(finding);
    }
    let (pass, mut reasons) = verdict(gate, &counts_after);
    let exceeded: Vec<FindingSeverity> = gate
        .max
        .iter()
        .filter(|(s, limit)| counts_after.get(s).copied().unwrap_or(0) > **limit)
        .map(|(s, _)| *s)
        .collect();
    let mut blocking: Vec<Finding> = counted.into_iter().filter(|f| exceeded.contains(&f.severity)).cloned().collect();
    blocking.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| a.id.cmp(&b.id)));
    let expired: Vec<String> = gate
        .allow
        .iter()
        .zip(&expired_hits)
        .filter(|(_, hit)| **hit)
        .map(|(e, _)| format!("{} expired on {}: it no longer applies", e.id, e.expires))
        .collect();
    let stale: Vec<String> = gate
        .allow
        .iter()
        .enumerate()
        .filter(|(i, e)| e.in_scope(repository) && !e.expired(today) && !used[*i] && !expired_hits[*i])
        .map(|(_, e)| e.id.clone())
        .collect();
    if filtered > 0 {
        reasons.push(format!("{} not counted (fixable / EPSS / exploit filters)", count_findings(filtered)));
    }
    if !allowlisted.is_empty() {
        reasons.push(format!("{} allowlisted", count_findings(allowlisted.len())));
    }
    reasons.extend(expired.iter().cloned());
    if !stale.is_empty() {
        reasons.push(format!("allowlist entries matching no finding (stale): {}", stale.join(", ")));
    }
    GateResult {
        pass,
        evidence: "findings",
        counts_before,
        counts_after,
        blocking,
        allowlisted,
        expired,
        stale,
        reasons,
    }
}

fn count_findings(n: usize) -> String {
    if n == 1 { "1 finding".to_owned() } else { format!("{n} findings") }
}

/// The promotion tags an image should carry: each template rendered for each of the image's own tags
/// (`{tag}` templates) or once (digest-only templates). Tags ecr-warden adds itself are not rendered from,
/// and renders that are not valid tags are reported, not used.
pub fn promotion_tags(
    templates: &[TagTemplate],
    digest: &str,
    image_tags: &[String],
    is_own_tag: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let source_tags: Vec<&String> = image_tags.iter().filter(|t| !is_own_tag(t)).collect();
    let mut tags = Vec::new();
    let mut problems = Vec::new();
    for template in templates {
        let inputs: Vec<&str> = if template.source().contains("{tag}") {
            source_tags.iter().map(|t| t.as_str()).collect()
        } else {
            vec![""]
        };
        for input in inputs {
            match template.render(input, digest) {
                Ok(tag) if !tags.contains(&tag) => tags.push(tag),
                Ok(_) => {}
                Err(why) => problems.push(format!("promotion tag from `{}` skipped: {why}", template.source())),
            }
        }
    }
    (tags, problems)
}

/// Steps that promote an image: add each promotion tag it lacks.
pub fn plan_promotion(promotion: &[String], digest: &str, image_tags: &[String]) -> Vec<Step> {
    promotion
        .iter()
        .filter(|tag| !image_tags.contains(tag))
        .map(|tag| Step::AddTag { tag: tag.clone(), digest: digest.to_owned() })
        .collect()
}

/// Steps that demote an image: remove its promotion tags, never its last tag without a quarantine tag first.
/// `Err` explains why nothing can be removed safely.
pub fn plan_demotion(
    gate: &GateRules,
    digest: &str,
    current_tags: &[String],
    quarantine: Option<&TagTemplate>,
) -> Result<Vec<Step>, String> {
    let promoted: Vec<&String> = current_tags.iter().filter(|t| gate.is_promotion_tag(t)).collect();
    if promoted.is_empty() {
        return Ok(vec![]);
    }
    let mut steps = Vec::new();
    if promoted.len() == current_tags.len() {
        let first = promoted[0];
        match quarantine.map(|q| q.render(first, digest)) {
            Some(Ok(tag)) => steps.push(Step::Quarantine { tag, digest: digest.to_owned() }),
            Some(Err(why)) => {
                return Err(format!(
                    "the promotion tags are the image's only tags and no quarantine tag can be made ({why})"
                ));
            }
            None => return Err("the promotion tags are the image's only tags and quarantine is disabled".into()),
        }
    }
    steps.extend(promoted.into_iter().map(|tag| Step::RemoveTag { tag: tag.clone(), digest: digest.to_owned() }));
    Ok(steps)
}

/// What a scan status means for the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    /// Results are final (basic: COMPLETE; enhanced continuous scanning: ACTIVE).
    Complete,
    /// Still running: the completion event will gate the image.
    Pending,
    /// No usable result: the image is never promoted on it.
    Failed(String),
}

pub fn scan_state(status: &str, description: Option<&str>) -> ScanState {
    match status {
        "COMPLETE" | "ACTIVE" | "INITIAL_SCAN_COMPLETE" => ScanState::Complete,
        "IN_PROGRESS" | "PENDING" => ScanState::Pending,
        other => ScanState::Failed(match description {
            Some(text) if !text.is_empty() => format!("scan status {other}: {text}"),
            _ => format!("scan status {other}"),
        }),
    }
}

#[cfg(test)]
mod tests;
