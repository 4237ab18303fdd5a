//! scan-gate: promotes an image (adds the tags deploy pipelines use) only when its scan results pass the
//! class's gate, and demotes it when a later finding makes it fail.
//!
//! - `ECR Image Scan` (basic) and `Inspector2 Scan` (enhanced): gate a newly scanned image. When the policy needs
//!   nothing beyond counts, the event's counts decide and no findings are read.
//! - `Inspector2 Finding`: a finding changed; re-read the image's ACTIVE findings and gate again, promoting or
//!   demoting as the result says.

use chrono::NaiveDate;
use serde_json::Value;
use warden::WardenError;
use warden::aws::findings::{ScanLookup, inspector_findings, scan_findings};
use warden::aws::{Clients, Found, ecr, steps};
use warden::config::Config;
use warden::event::{EventKind, RepositoryName, SeverityCounts};
use warden::gate::{
    GateResult, ScanState, counts_from_event, decidable_from_counts, evaluate_counts, evaluate_findings, plan_demotion,
    plan_promotion, promotion_tags, scan_state,
};
use warden::handler::{Base, Context};
use warden::notify::Severity;
use warden::outcome::{ActionResult, Outcome};
use warden::policy::{Class, GateRules, OnFailure, Policy};
use warden::template::TagTemplate;

pub const FUNCTION: &str = "scan-gate";
const DEFAULT_QUARANTINE: &str = "quarantine-{digest12}";

#[derive(Debug)]
pub struct ScanGate {
    pub(crate) base: Base,
    inspector: aws_sdk_inspector2::Client,
}

/// Which scanner produced the event: it decides where findings are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanner {
    Basic,
    Enhanced,
}

/// What a scan event says about one image.
struct Scanned<'a> {
    scanner: Scanner,
    repository: &'a RepositoryName,
    digest: Option<&'a str>,
    tags: &'a [String],
    counts: Option<&'a SeverityCounts>,
    status: &'a str,
}

impl ScanGate {
    pub fn new(
        policy: Policy,
        config: Config,
        clients: Clients,
        inspector: aws_sdk_inspector2::Client,
    ) -> Result<Self, WardenError> {
        Ok(Self { base: Base::new(FUNCTION, policy, config, clients)?, inspector })
    }

    pub async fn handle(&self, payload: Value) -> Result<Outcome, WardenError> {
        let started = self.base.start();
        let event = warden::event::parse(payload)?;
        // Boxed: the nested futures are otherwise too deep for the compiler's layout computation.
        let outcome = Box::pin(self.dispatch(&self.base.context(&event))).await?;
        Ok(self.base.finish(outcome, started))
    }

    async fn dispatch(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        match &cx.event.kind {
            EventKind::BasicScan(scan) => {
                let scanned = Scanned {
                    scanner: Scanner::Basic,
                    repository: &scan.repository_name,
                    digest: scan.image_digest.as_deref(),
                    tags: &scan.image_tags,
                    counts: Some(&scan.finding_severity_counts),
                    status: &scan.scan_status,
                };
                self.gate(cx, &scanned).await
            }
            EventKind::InspectorScan(scan) => {
                let scanned = Scanned {
                    scanner: Scanner::Enhanced,
                    repository: &scan.repository_name,
                    digest: scan.image_digest.as_deref(),
                    tags: &scan.image_tags,
                    counts: Some(&scan.finding_severity_counts),
                    status: &scan.scan_status,
                };
                self.gate(cx, &scanned).await
            }
            EventKind::InspectorFinding(finding) => match finding.ecr_image() {
                None => Ok(self.base.skipped(cx, "the finding is not about an ECR image")),
                Some(image) => {
                    // A finding changed: the counts of one event say nothing about the image as a whole.
                    let scanned = Scanned {
                        scanner: Scanner::Enhanced,
                        repository: &image.repository_name,
                        digest: Some(&image.image_hash),
                        tags: &image.image_tags,
                        counts: None,
                        status: "ACTIVE",
                    };
                    self.gate(cx, &scanned).await
                }
            },
            _ => Ok(self.base.not_handled(cx)),
        }
    }

    async fn gate(&self, cx: &Context<'_>, scanned: &Scanned<'_>) -> Result<Outcome, WardenError> {
        let repository = scanned.repository.as_str();
        let class = match self.base.managed_class(repository) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let Some(gate) = &class.gate else {
            return Ok(self.base.skipped(cx, format!("class `{}` declares no gate", class.name)));
        };
        let Some(digest) = scanned.digest else {
            return Ok(self.base.skipped(cx, "the event names no image digest"));
        };
        let mut outcome = self.base.outcome_for(cx, class, repository, Some(digest), scanned.tags);
        match scan_state(scanned.status, None) {
            ScanState::Complete => {}
            ScanState::Pending => {
                return Ok(self
                    .base
                    .skipped(cx, format!("scan status {}: the completion event gates the image", scanned.status)));
            }
            ScanState::Failed(reason) => return self.unscanned(cx, outcome, "scan-failed", reason).await,
        }

        let evidence = match scanned.counts.map(counts_from_event) {
            Some((counts, reported)) if decidable_from_counts(gate, &reported, scanned.scanner == Scanner::Basic) => {
                evaluate_counts(gate, &counts)
            }
            _ => {
                let findings = match scanned.scanner {
                    Scanner::Enhanced => inspector_findings(&self.inspector, repository, digest).await?,
                    Scanner::Basic => match scan_findings(&self.base.clients.ecr, repository, digest).await? {
                        ScanLookup::Results(results) => {
                            match scan_state(&results.status, results.description.as_deref()) {
                                ScanState::Failed(reason) => {
                                    return self.unscanned(cx, outcome, "scan-failed", reason).await;
                                }
                                ScanState::Pending => {
                                    return Ok(self.base.skipped(
                                        cx,
                                        "the scan is still running: its completion event gates the image",
                                    ));
                                }
                                ScanState::Complete => results.findings,
                            }
                        }
                        ScanLookup::NotScanned => {
                            return self
                                .unscanned(cx, outcome, "not-scanned", "no scan found for the image".into())
                                .await;
                        }
                        ScanLookup::Gone(_) => {
                            return Ok(self.base.skipped(cx, "the image or repository no longer exists"));
                        }
                    },
                };
                evaluate_findings(gate, repository, &findings, today(cx))
            }
        };
        outcome.reasons = evidence.reasons.clone();
        if evidence.pass {
            self.promote(cx, &mut outcome, class, gate, digest, scanned.tags).await?;
        } else {
            self.block(cx, &mut outcome, class, gate, digest, &evidence).await?;
        }
        outcome.gate = Some(evidence);
        Ok(outcome)
    }

    /// No usable scan: never promote, tell operators.
    async fn unscanned(
        &self,
        cx: &Context<'_>,
        mut outcome: Outcome,
        kind: &str,
        reason: String,
    ) -> Result<Outcome, WardenError> {
        outcome.decision = kind.to_owned();
        outcome.reasons.push(format!("{reason}: the image is not promoted"));
        let notification =
            self.base.notification(cx, kind, &outcome, "not-promoted", outcome.reasons.clone(), Severity::Warning);
        outcome.notified = self.base.send(&notification).await?;
        Ok(outcome)
    }

    async fn promote(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        class: &Class,
        gate: &GateRules,
        digest: &str,
        tags: &[String],
    ) -> Result<(), WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let (promotion, problems) = promotion_tags(&gate.promote, digest, tags, |t| is_own_tag(class, gate, t));
        outcome.reasons.extend(problems);
        let steps = plan_promotion(&promotion, digest, tags);
        outcome.actions = steps::execute(&self.base.clients.ecr, &repository, &steps, self.base.config.dry_run).await?;
        if outcome.actions.iter().any(|a| a.result == ActionResult::Gone) {
            outcome.decision = "skipped".into();
            outcome.reasons.push("the image was deleted since it was scanned: nothing to promote".into());
            return Ok(());
        }
        let failed = outcome.actions.iter().any(|a| a.result.is_failure());
        let changed = outcome.actions.iter().any(|a| matches!(a.result, ActionResult::Done | ActionResult::DryRun));
        // Promoted because of this event: now, or by an earlier invocation of it (whose notice may have failed),
        // or by this very call when ECR's answer to the PutImage was lost and the SDK's retry was told the tag
        // exists. Only an image the event already saw promoted is left in silence.
        let promoted_by_this_event = changed || promotion.iter().any(|t| !tags.contains(t));
        outcome.decision = if failed {
            "promotion-failed".into()
        } else if changed {
            "promoted".into()
        } else {
            outcome.reasons.push(format!("already promoted as {}", promotion.join(", ")));
            "already-promoted".into()
        };
        if failed {
            let notification = self.base.notification(
                cx,
                "promotion-failed",
                outcome,
                "failed",
                outcome.reasons.clone(),
                Severity::Critical,
            );
            outcome.notified = self.base.send(&notification).await?;
        } else if promoted_by_this_event {
            let mut reasons = vec![format!("passed the gate: promoted as {}", promotion.join(", "))];
            reasons.extend(outcome.reasons.iter().cloned());
            let notification = self.base.notification(cx, "promoted", outcome, "promoted", reasons, Severity::Info);
            // Claimed: a replay (or a retry after a failed publish, the claim given back) is told once.
            outcome.notified = self.base.send(&notification).await?;
        }
        Ok(())
    }

    async fn block(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        class: &Class,
        gate: &GateRules,
        digest: &str,
        evidence: &GateResult,
    ) -> Result<(), WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let mut reasons = evidence.reasons.clone();
        reasons.extend(evidence.blocking.iter().map(|f| f.describe()));
        let mut kind = "gate-failed";
        let mut severity = Severity::Warning;
        let mut flushed = false;
        outcome.decision = "blocked".into();
        if gate.on_failure == OnFailure::Demote {
            let current = match ecr::describe_digest(&self.base.clients.ecr, &repository, digest).await? {
                Found::Yes(image) => image.tags,
                _ => {
                    outcome.reasons.push("the image no longer exists".into());
                    return Ok(());
                }
            };
            let quarantine = class
                .tags
                .as_ref()
                .and_then(|t| t.quarantine.clone())
                .or_else(|| TagTemplate::parse(DEFAULT_QUARANTINE).ok());
            match plan_demotion(gate, digest, &current, quarantine.as_ref()) {
                // Not promoted (any more): possibly demoted by an earlier invocation whose notification failed.
                Ok(steps) if steps.is_empty() => {
                    flushed = self.base.flush_parked(&cx.event.id).await?;
                    let lost: Vec<&String> =
                        outcome.tags.iter().filter(|t| gate.is_promotion_tag(t) && !current.contains(t)).collect();
                    if !lost.is_empty() {
                        // The event saw the image promoted and the tags are gone: demoted by an earlier delivery
                        // of this event (its notification may have been lost with ECR's answer).
                        outcome.decision = "demoted".into();
                        kind = "demoted";
                        severity = Severity::Critical;
                        reasons.insert(
                            0,
                            format!(
                                "a promoted image no longer passes the gate: its promotion tags are removed ({})",
                                lost.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        );
                    }
                }
                Ok(steps) => {
                    outcome.actions =
                        steps::execute(&self.base.clients.ecr, &repository, &steps, self.base.config.dry_run).await?;
                    outcome.decision = "demoted".into();
                    kind = "demoted";
                    severity = Severity::Critical;
                    reasons
                        .insert(0, "a promoted image no longer passes the gate: its promotion tags are removed".into());
                }
                Err(why) => {
                    reasons
                        .insert(0, format!("a promoted image no longer passes the gate, but {why}: it stays promoted"));
                    severity = Severity::Critical;
                }
            }
        } else if outcome.tags.iter().any(|t| gate.is_promotion_tag(t)) {
            reasons.insert(
                0,
                "a promoted image no longer passes the gate (on-failure = notify: it stays promoted)".into(),
            );
            severity = Severity::Critical;
        }
        let result = if outcome.decision == "demoted" { "demoted" } else { "blocked" };
        let notification = self.base.notification(cx, kind, outcome, result, reasons, severity);
        // One claim for both kinds: a replay of the event that demoted the image finds it no longer promoted and
        // would otherwise report `gate-failed` as a second notification.
        let demoted = outcome.actions.iter().any(|a| a.result == ActionResult::Done);
        outcome.notified = if demoted {
            self.base.send_after_change(&notification, "gate-failed", false).await?
        } else {
            self.base.send_as(&notification, "gate-failed").await? || flushed
        };
        Ok(())
    }
}

fn is_own_tag(class: &Class, gate: &GateRules, tag: &str) -> bool {
    gate.is_promotion_tag(tag) || class.tags.as_ref().is_some_and(|t| t.is_own_tag(tag))
}

/// The day allowlist expiry is judged on: the event's own date, so a replay decides as the original did.
fn today(cx: &Context<'_>) -> NaiveDate {
    chrono::DateTime::parse_from_rfc3339(&cx.at).map_or_else(|_| chrono::Utc::now().date_naive(), |t| t.date_naive())
}

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
