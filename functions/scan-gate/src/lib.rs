//! scan-gate: promotes an image (adds the tags deploy pipelines use) only when its scan results pass the
//! class's gate, and demotes it when a later finding makes it fail.
//!
//! Nothing is approved on an event's word. An event's counts may block an image at no cost, but a promotion
//! re-reads the registry's scan state for the digest (ECR's scan findings, or Amazon Inspector's findings and
//! its coverage of the digest) and decides on that; it records the approval in the ledger (conditional on no
//! later failing verdict) before it adds the tags, so tag-guard can tell them from forged ones. A demotion
//! removes tags, so it too decides on the registry, records the failing verdict and revokes the approvals first.
//!
//! - `ECR Image Scan` (basic) and `Inspector2 Scan` (enhanced): gate a newly scanned image.
//! - `Inspector2 Finding`: a finding changed; re-read the image's findings and gate again. It can demote; it
//!   promotes only with Inspector's coverage of the digest active and its last scan complete, never on a
//!   suppression.

use chrono::NaiveDate;
use serde_json::Value;
use warden::WardenError;
use warden::aws::findings::{RegistryScan as Registry, promotion_evidence, registry_scan};
use warden::aws::lease::Lease;
use warden::aws::{Clients, Found, ecr, supply_chain};
use warden::config::Config;
use warden::delivery::{Claim, Report, Said};
use warden::event::{EventKind, ImageActionType, RepositoryName, SeverityCounts};
use warden::gate::supply_chain::{Criterion, CriterionState};
use warden::gate::{
    Approval, Approved, GateResult, ScanState, Scanner, Trigger, counts_disagreement, counts_from_event,
    decidable_from_counts, evaluate_counts, plan_demotion, plan_promotion, promotion_tags, scan_state,
};
use warden::handler::{Base, Context};
use warden::invocation::Invocation;
use warden::notify::Severity;
use warden::outcome::{ActionResult, Decision, GateDecision, Outcome};
use warden::policy::{Class, GateRules, OnFailure, Policy};

pub const FUNCTION: &str = "scan-gate";

#[derive(Debug)]
pub struct ScanGate {
    pub(crate) base: Base,
}

/// What a scan event says about one image.
#[derive(Clone)]
struct Scanned<'a> {
    scanner: Scanner,
    trigger: Trigger,
    repository: &'a RepositoryName,
    digest: Option<&'a str>,
    tags: &'a [String],
    counts: Option<&'a SeverityCounts>,
    status: &'a str,
}

/// The evidence a decision rests on, and whether it came from the registry.
struct Evidence {
    result: GateResult,
    from_registry: bool,
}

impl ScanGate {
    pub fn new(
        policy: Policy,
        config: Config,
        clients: Clients,
        inspector: aws_sdk_inspector2::Client,
    ) -> Result<Self, WardenError> {
        Ok(Self { base: Base::new(FUNCTION, policy, config, clients, Some(inspector))? })
    }

    pub async fn handle(&self, payload: Value, invocation: &Invocation) -> Result<Outcome, WardenError> {
        // Boxed: the nested futures are otherwise too deep for the compiler's layout computation.
        self.base.run(payload, invocation, self).await
    }

    async fn dispatch(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        let scanned = match &cx.event.kind {
            EventKind::BasicScan(scan) => Scanned {
                scanner: Scanner::Basic,
                trigger: Trigger::ScanCompleted,
                repository: &scan.repository_name,
                digest: scan.image_digest.as_deref(),
                tags: &scan.image_tags,
                counts: Some(&scan.finding_severity_counts),
                status: &scan.scan_status,
            },
            EventKind::InspectorScan(scan) => Scanned {
                scanner: Scanner::Enhanced,
                trigger: Trigger::ScanCompleted,
                repository: &scan.repository_name,
                digest: scan.image_digest.as_deref(),
                tags: &scan.image_tags,
                counts: Some(&scan.finding_severity_counts),
                status: &scan.scan_status,
            },
            EventKind::InspectorFinding(finding) => match finding.ecr_image() {
                None => return Ok(self.base.skipped(cx, "the finding is not about an ECR image")),
                Some(_) if let Some(elsewhere) = image_elsewhere(finding.image_account(), cx) => {
                    return Ok(self.base.skipped(cx, elsewhere));
                }
                // A finding changed: the counts of one event say nothing about the image as a whole.
                Some(image) => Scanned {
                    scanner: Scanner::Enhanced,
                    trigger: Trigger::FindingChanged {
                        finding: finding.finding_arn.clone(),
                        status: finding.status.clone(),
                    },
                    repository: &image.repository_name,
                    digest: Some(&image.image_hash),
                    tags: &image.image_tags,
                    counts: None,
                    status: "ACTIVE",
                },
            },
            EventKind::ImageAction(push) if push.action_type == ImageActionType::Push && push.is_index() => {
                return self.on_index_push(cx, push).await;
            }
            EventKind::ReferrerAction(referrer) => return self.on_referrer(cx, referrer).await,
            _ => return Ok(self.base.not_handled(cx)),
        };
        self.gate(cx, &scanned).await
    }

    async fn gate(&self, cx: &Context<'_>, scanned: &Scanned<'_>) -> Result<Outcome, WardenError> {
        let repository = scanned.repository.as_str();
        let class = match self.base.managed_class(cx, repository) {
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
            ScanState::Failed(reason) => return self.unscanned(cx, outcome, GateDecision::ScanFailed, reason).await,
        }
        // The event's counts may block at no cost (blocking approves nothing); they never approve.
        let by_event = scanned.counts.map(counts_from_event).and_then(|(counts, reported)| {
            decidable_from_counts(gate, &reported, scanned.scanner == Scanner::Basic)
                .then(|| evaluate_counts(gate, &counts))
        });
        // A platform image of a multi-architecture image: the index is gated (and promoted), never the child.
        let indexes = cx.ledger().indexes_of(repository, digest).await?;
        if !indexes.is_empty() {
            return self.regate_indexes(cx, (class, gate), scanned, digest, &indexes).await;
        }
        if let Some(result) = by_event.filter(|result| !result.pass) {
            outcome.reasons = result.reasons.clone();
            let evidence = Evidence { result, from_registry: false };
            self.block(cx, &mut outcome, GatedImage { class, gate, digest }, scanned, evidence).await?;
            return Ok(outcome);
        }
        let (result, scanned_at) = match self.read_registry(cx, scanned.scanner, gate, repository, digest).await? {
            Registry::Judged { result, scanned_at } => (result, scanned_at),
            // An artifact attached before its subject's scan exists: the scan's own event decides.
            Registry::NoScan { reason, .. } if scanned.trigger == Trigger::ReferrerAttached => {
                return Ok(self.base.skipped(cx, format!("{reason}: the scan's completion gates the image")));
            }
            Registry::NoScan { kind, reason } => return self.unscanned(cx, outcome, kind, reason).await,
            Registry::Pending(reason) => return Ok(self.base.skipped(cx, reason)),
            Registry::Gone => return Ok(self.base.skipped(cx, "the image or repository no longer exists")),
        };
        outcome.reasons = result.reasons.clone();
        if let Some(disagreement) = self.disagreement(scanned, &result) {
            tracing::warn!(event_id = %cx.event.id, repository, digest, %disagreement, "event and registry disagree");
            outcome.reasons.push(disagreement);
        }
        if result.pass {
            self.promote(cx, &mut outcome, GatedImage { class, gate, digest }, scanned, scanned_at).await?;
        } else {
            let evidence = Evidence { result: result.clone(), from_registry: true };
            self.block(cx, &mut outcome, GatedImage { class, gate, digest }, scanned, evidence).await?;
        }
        outcome.gate.get_or_insert(result);
        Ok(outcome)
    }

    /// The registry's own scan state of the digest, judged on today's date.
    async fn read_registry(
        &self,
        cx: &Context<'_>,
        scanner: Scanner,
        gate: &GateRules,
        repository: &str,
        digest: &str,
    ) -> Result<Registry, WardenError> {
        registry_scan(cx.ecr(), cx.inspector()?, scanner, gate, repository, digest, today()).await
    }

    /// Where the event's counts disagree with the registry's findings, if they do.
    fn disagreement(&self, scanned: &Scanned<'_>, registry: &GateResult) -> Option<String> {
        let (counts, reported) = counts_from_event(scanned.counts?);
        // ECR basic scanning omits severities without findings: every severity is reported.
        let reported =
            if scanned.scanner == Scanner::Basic { warden::policy::FindingSeverity::ALL.to_vec() } else { reported };
        counts_disagreement(&counts, &reported, &registry.counts_before)
    }

    /// No usable scan: never promote, tell operators.
    async fn unscanned(
        &self,
        cx: &Context<'_>,
        mut outcome: Outcome,
        decision: GateDecision,
        reason: String,
    ) -> Result<Outcome, WardenError> {
        let kind = decision.as_str();
        outcome.decision = decision.into();
        outcome.reasons.push(format!("{reason}: the image is not promoted"));
        let notification =
            self.base.notification(cx, kind, &outcome, "not-promoted", outcome.reasons.clone(), Severity::Warning);
        outcome.notified = self.base.report(cx, Report::Tell(Said::once(notification))).await?;
        Ok(outcome)
    }

    /// The registry's findings pass: promote when the evidence allows it (Inspector's coverage, no suppression,
    /// no later failing verdict), with the promotion tags rendered from the image's current tags, the approval
    /// recorded first.
    async fn promote(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        GatedImage { class, gate, digest }: GatedImage<'_>,
        scanned: &Scanned<'_>,
        scanned_at: Option<i64>,
    ) -> Result<(), WardenError> {
        let Some(covered_at) = self.vouched_for(cx, outcome, scanned, &[("", digest)]).await? else {
            return Ok(());
        };
        let scanned_at = scanned_at.or(covered_at);
        self.promote_checked(cx, outcome, GatedImage { class, gate, digest }, scanned, scanned_at).await
    }

    /// Whether the evidence behind passing scans allows a promotion, for each of `images` (`(label, digest)`: the
    /// image itself, or each platform image of an index): with Inspector, its coverage of the digest must be
    /// active and its last scan complete; a suppression never promotes. `None`: refused, the outcome says why;
    /// otherwise the latest scan time the coverage gave.
    pub(crate) async fn vouched_for(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        scanned: &Scanned<'_>,
        images: &[(&str, &str)],
    ) -> Result<Option<Option<i64>>, WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let mut latest = None;
        for (label, digest) in images {
            let evidence = (scanned.scanner, &scanned.trigger);
            match promotion_evidence(cx.inspector()?, evidence, cx.home.as_ref(), &repository, digest).await? {
                Ok(coverage) => latest = latest.max(coverage.and_then(|c| c.scanned_at())),
                Err(why) => {
                    outcome.decision = GateDecision::NotPromoted.into();
                    outcome.reasons.push(if label.is_empty() { why } else { format!("{label}: {why}") });
                    return Ok(None);
                }
            }
        }
        Ok(Some(latest))
    }

    /// [`Self::promote`] once the evidence checks passed: the approval recorded (conditional on no later failing
    /// verdict), then the promotion tags added.
    async fn promote_checked(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        GatedImage { class, gate, digest }: GatedImage<'_>,
        scanned: &Scanned<'_>,
        scanned_at: Option<i64>,
    ) -> Result<(), WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        if !self.supply_chain_met(cx, outcome, gate, digest).await? {
            return Ok(());
        }
        let Some(current) = self.current_tags(cx, &repository, digest).await? else {
            outcome.decision = Decision::Skipped;
            outcome.reasons.push("the image was deleted since it was scanned: nothing to promote".into());
            return Ok(());
        };
        let is_own = |t: &str| class.own_tag_kind(t).is_some();
        if current.iter().all(|t| is_own(t)) {
            // A platform image of an index (gated with its index), a referrer, or a build before its tags: a
            // promotion tag is for an image something references by a tag of its own.
            outcome.decision = GateDecision::NotPromoted.into();
            outcome.reasons.push("the image has no tag of its own: an untagged image is not promoted".into());
            return Ok(());
        }
        let (promotion, problems) = promotion_tags(&gate.promote, digest, &current, is_own);
        outcome.reasons.extend(problems);
        if promotion.is_empty() {
            outcome.decision = GateDecision::NotPromoted.into();
            outcome.reasons.push("no promotion tag could be rendered from the image's current tags".into());
            return Ok(());
        }
        let approval = Approval {
            repository: repository.clone(),
            digest: digest.to_owned(),
            tags: promotion.clone(),
            scanner: scanned.scanner,
            scanned_at,
            evidence_at: scanned_at.unwrap_or_else(|| event_epoch(cx)),
            policy: gate.fingerprint(),
            event_id: cx.event.id.clone(),
        };
        if !self.base.config.dry_run
            && let Approved::Superseded(latest) = cx.ledger().approve(&approval).await?
        {
            outcome.decision = Decision::Skipped;
            outcome.reasons.push(format!(
                "a failing verdict on later evidence stands (event {}): a passing scan from before it does not \
                 promote the image again",
                latest.event_id
            ));
            return Ok(());
        }
        let steps = plan_promotion(&promotion, digest, &current);
        outcome.actions = self.base.executor(cx).run(&repository, &steps).await?;
        self.report_promotion(cx, outcome, &promotion, scanned.tags).await
    }

    /// The gate's supply-chain criteria, read from the registry (none: no call): `true` when all are met. Unmet
    /// blocks the image and says why; waiting (signing in progress, an SBOM not pushed yet) stays quiet, since
    /// the next event decides.
    async fn supply_chain_met(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        gate: &GateRules,
        digest: &str,
    ) -> Result<bool, WardenError> {
        if !gate.has_supply_chain_criteria() {
            return Ok(true);
        }
        let repository = outcome.repository.clone().unwrap_or_default();
        let criteria = match supply_chain::criteria(cx.ecr(), gate, &repository, digest).await? {
            Found::Yes(criteria) => criteria,
            _ => {
                outcome.decision = Decision::Skipped;
                outcome.reasons.push("the image was deleted since it was scanned: nothing to promote".into());
                return Ok(false);
            }
        };
        outcome.reasons.extend(criteria.iter().map(Criterion::describe));
        let verdict = warden::gate::supply_chain::verdict(&criteria);
        outcome.criteria = criteria;
        match verdict {
            CriterionState::Met => Ok(true),
            CriterionState::Waiting => {
                outcome.decision = GateDecision::NotPromoted.into();
                Ok(false)
            }
            CriterionState::Unmet => {
                outcome.decision = GateDecision::Blocked.into();
                let mut reasons = vec!["the scan passes, but the gate's supply-chain criteria are not met".to_owned()];
                reasons.extend(outcome.criteria.iter().map(Criterion::describe));
                let notification =
                    self.base.notification(cx, "gate-failed", outcome, "blocked", reasons, Severity::Warning);
                let said = Said::under(notification, Claim::Shared("gate-failed".into()));
                outcome.notified = self.base.report(cx, Report::Tell(said)).await?;
                Ok(false)
            }
        }
    }

    /// The image's current tags (DescribeImages, read fresh: the promotion tags are rendered from them, and an
    /// untagged image is not promoted). `None`: the image is gone.
    async fn current_tags(
        &self,
        cx: &Context<'_>,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Vec<String>>, WardenError> {
        Ok(match ecr::describe_digest(cx.ecr(), repository, digest).await? {
            Found::Yes(image) => Some(image.tags),
            _ => None,
        })
    }

    async fn report_promotion(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        promotion: &[String],
        event_tags: &[String],
    ) -> Result<(), WardenError> {
        if outcome.actions.iter().any(|a| a.result == ActionResult::Gone) {
            outcome.decision = Decision::Skipped;
            outcome.reasons.push("the image was deleted since it was scanned: nothing to promote".into());
            return Ok(());
        }
        let failed = outcome.actions.iter().any(|a| a.result.is_failure());
        let changed = outcome.actions.iter().any(|a| matches!(a.result, ActionResult::Done | ActionResult::DryRun));
        // Promoted because of this event: now, or by an earlier invocation of it (whose notice may have failed),
        // or by this very call when ECR's answer to the PutImage was lost and the SDK's retry was told the tag
        // exists. Only an image the event already saw promoted is left in silence.
        let promoted_by_this_event = changed || promotion.iter().any(|t| !event_tags.contains(t));
        outcome.decision = if failed {
            GateDecision::PromotionFailed.into()
        } else if changed {
            GateDecision::Promoted.into()
        } else {
            outcome.reasons.push(format!("already promoted as {}", promotion.join(", ")));
            GateDecision::AlreadyPromoted.into()
        };
        let notification = if failed {
            let reasons = outcome.reasons.clone();
            self.base.notification(cx, "promotion-failed", outcome, "failed", reasons, Severity::Critical)
        } else if promoted_by_this_event {
            let mut reasons = vec![format!("passed the gate: promoted as {}", promotion.join(", "))];
            reasons.extend(outcome.reasons.iter().cloned());
            self.base.notification(cx, "promoted", outcome, "promoted", reasons, Severity::Info)
        } else {
            return Ok(());
        };
        // Claimed: a replay (or a retry after a failed publish, the claim given back) is told once.
        outcome.notified = self.base.report(cx, Report::Tell(Said::once(notification))).await?;
        Ok(())
    }

    /// The gate fails: no promotion; a promoted image in a `demote` class loses its promotion tags, decided on
    /// the registry's scan state (re-read if the event's counts decided so far).
    async fn block(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        GatedImage { class, gate, digest }: GatedImage<'_>,
        scanned: &Scanned<'_>,
        evidence: Evidence,
    ) -> Result<(), WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        outcome.decision = GateDecision::Blocked.into();
        let mut demotion = Demotion::default();
        if gate.on_failure == OnFailure::Demote {
            let current = match ecr::describe_digest(cx.ecr(), &repository, digest).await? {
                Found::Yes(image) => image.tags,
                _ => {
                    outcome.reasons.push("the image no longer exists".into());
                    outcome.gate = Some(evidence.result);
                    return Ok(());
                }
            };
            if current.iter().any(|t| gate.is_promotion_tag(t)) && !evidence.from_registry {
                // Removing tags: decide on the registry, not on the event.
                match self.read_registry(cx, scanned.scanner, gate, &repository, digest).await? {
                    Registry::Judged { result, .. } if result.pass => {
                        outcome.decision = GateDecision::NotDemoted.into();
                        outcome.reasons.push(
                            "the event's counts fail the gate but the registry's scan of the image passes: it stays \
                             promoted"
                                .into(),
                        );
                        outcome.gate = Some(result);
                        return Ok(());
                    }
                    Registry::Judged { result, .. } => outcome.gate = Some(result),
                    Registry::NoScan { reason, .. } => {
                        outcome.reasons.push(format!("{reason}: nothing vouches for it"))
                    }
                    Registry::Pending(reason) => {
                        outcome.decision = Decision::Skipped;
                        outcome.reasons.push(reason);
                        return Ok(());
                    }
                    Registry::Gone => return Ok(()),
                }
            }
            demotion = self.demote(cx, outcome, GatedImage { class, gate, digest }, &current).await?;
        } else if outcome.tags.iter().any(|t| gate.is_promotion_tag(t)) {
            demotion.headline =
                Some("a promoted image no longer passes the gate (on-failure = notify: it stays promoted)".into());
        }
        let result = outcome.gate.get_or_insert(evidence.result).clone();
        self.report_block(cx, outcome, &result, demotion).await
    }

    /// Removes a failing image's promotion tags (a quarantine tag first when they are its only tags), after
    /// recording the failing verdict and revoking their approvals. The removal is decided on the image's tags
    /// re-read under its lease, so a concurrent removal of its other tags (tag-guard) cannot leave it tagless.
    async fn demote(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        image: GatedImage<'_>,
        current: &[String],
    ) -> Result<Demotion, WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        if self.base.config.dry_run || !current.iter().any(|t| image.gate.is_promotion_tag(t)) {
            return self.demote_read(cx, outcome, image, current, None).await;
        }
        let lease = self.base.lease(cx, &repository, image.digest).await?;
        let demoted = async {
            match ecr::describe_digest(cx.ecr(), &repository, image.digest).await? {
                Found::Yes(read) => self.demote_read(cx, outcome, image, &read.tags, Some(&lease)).await,
                _ => {
                    outcome.reasons.push("the image no longer exists".into());
                    Ok(Demotion::default())
                }
            }
        }
        .await;
        self.base.release(Some(lease)).await;
        demoted
    }

    /// [`Self::demote`] on the tags `current` read (under `lease` when removing).
    async fn demote_read(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        GatedImage { class, gate, digest }: GatedImage<'_>,
        current: &[String],
        lease: Option<&Lease>,
    ) -> Result<Demotion, WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let quarantine = class.quarantine();
        match plan_demotion(gate, digest, current, quarantine.as_ref()) {
            // Not promoted (any more): possibly demoted by an earlier invocation whose notification failed.
            Ok(steps) if steps.is_empty() => {
                let lost: Vec<&str> = outcome
                    .tags
                    .iter()
                    .filter(|t| gate.is_promotion_tag(t) && !current.contains(t))
                    .map(String::as_str)
                    .collect();
                // The event saw the image promoted and the tags are gone: demoted by an earlier delivery of this
                // event (its notification may have been lost with ECR's answer).
                let headline = (!lost.is_empty()).then(|| {
                    format!(
                        "a promoted image no longer passes the gate: its promotion tags are removed ({})",
                        lost.join(", ")
                    )
                });
                Ok(Demotion { demoted: headline.is_some(), headline, settle: true })
            }
            Ok(steps) => {
                if !self.base.config.dry_run {
                    let promoted: Vec<String> = current.iter().filter(|t| gate.is_promotion_tag(t)).cloned().collect();
                    cx.ledger().revoke(&repository, digest, &promoted, event_epoch(cx), &cx.event.id).await?;
                }
                outcome.actions = self.base.executor(cx).under(lease).run(&repository, &steps).await?;
                let headline = "a promoted image no longer passes the gate: its promotion tags are removed".into();
                Ok(Demotion { demoted: true, headline: Some(headline), settle: false })
            }
            Err(why) => Ok(Demotion {
                demoted: false,
                headline: Some(format!("a promoted image no longer passes the gate, but {why}: it stays promoted")),
                settle: false,
            }),
        }
    }

    async fn report_block(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        result: &GateResult,
        demotion: Demotion,
    ) -> Result<(), WardenError> {
        let mut reasons = result.reasons.clone();
        reasons.extend(result.blocking.iter().map(|f| f.describe()));
        let critical = demotion.headline.is_some();
        if let Some(headline) = demotion.headline {
            reasons.insert(0, headline);
        }
        if demotion.demoted {
            outcome.decision = GateDecision::Demoted.into();
        }
        let (kind, result_word) = if demotion.demoted { ("demoted", "demoted") } else { ("gate-failed", "blocked") };
        let severity = if critical { Severity::Critical } else { Severity::Warning };
        let notification = self.base.notification(cx, kind, outcome, result_word, reasons, severity);
        // One claim for both kinds: a replay of the event that demoted the image finds it no longer promoted and
        // would otherwise report `gate-failed` as a second notification.
        let said = Said::under(notification, Claim::Shared("gate-failed".into()));
        let changed = outcome.actions.iter().any(|a| a.result == ActionResult::Done);
        // Not promoted any more: possibly demoted by an earlier attempt that could not say so.
        let settle = demotion.settle.then_some(Report::Settle);
        outcome.notified = self.base.report_all(cx, settle.into_iter().chain([Report::about(said, changed)])).await?;
        Ok(())
    }
}

/// What a failing gate did to a promoted image.
#[derive(Debug, Default)]
struct Demotion {
    /// The image lost its promotion tags (now, or by an earlier delivery of the event).
    demoted: bool,
    /// The first line of the notification, when the image was (or stays) promoted.
    headline: Option<String>,
    /// Found not promoted any more: what an earlier delivery may have left unsaid is sent first.
    settle: bool,
}

/// The image the gate judges (promotes, blocks, demotes), with its class and gate.
#[derive(Debug, Clone, Copy)]
struct GatedImage<'a> {
    class: &'a Class,
    gate: &'a GateRules,
    digest: &'a str,
}

/// The event's time in epoch seconds (now when it has none or it is unreadable): the evidence time of a
/// verdict the event's own data decided.
fn event_epoch(cx: &Context<'_>) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&cx.at).map_or_else(|_| chrono::Utc::now().timestamp(), |t| t.timestamp())
}

/// The day allowlist expiry is judged on: today, whatever the event's date (a late or replayed event decides
/// on the current state).
fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

mod index;
mod referrer;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;

impl warden::handler::Dispatch for ScanGate {
    // Boxed: the nested futures are otherwise too deep for the compiler's layout query, and a batch of sweep
    // work items calls it once per item.
    fn dispatch_event<'c>(&'c self, cx: &'c Context<'c>) -> warden::handler::Dispatched<'c> {
        Box::pin(self.dispatch(cx))
    }
}

/// Why a finding about an image of another account is not acted on here: the registry the event was admitted
/// for is the event's account, and a same-named repository there is another image's (an Inspector delegated
/// administrator receives its members' findings under its own account).
fn image_elsewhere(owner: Option<&str>, cx: &Context<'_>) -> Option<String> {
    let (owner, registry) = (owner?, cx.home.as_ref()?);
    (owner != registry.account).then(|| {
        format!(
            "the finding is about an image in account {owner}'s registry; the event came through account {}: it is \
             acted on only in the image's own registry",
            registry.account
        )
    })
}
