//! tag-guard: enforces each repository class's tag conventions.
//!
//! - PUSH: checks the tag; removes tags that are not allowed (never an image's last tag), records every tag
//!   in the ledger, and reverts moves of protected tags.
//! - DELETE: marks the tag deleted in the ledger.
//! - CloudTrail CreateRepository and scheduled sweeps: keep each repository's tag mutability as its class
//!   requires.
//!
//! Each path observes what it needs, asks a pure decision in `warden::tags`, then carries out its steps.

use serde_json::Value;
use warden::WardenError;
use warden::aws::ecr;
use warden::aws::lease::Lease;
use warden::aws::ledger::HistoryEntry;
use warden::aws::{Clients, Found};
use warden::config::Config;
use warden::delivery::{Report, Said};
use warden::event::{EventKind, ImageAction, ImageActionType, RepositoryApiCall};
use warden::handler::{Base, Context};
use warden::invocation::Invocation;
use warden::notify::{Notification, Severity};
use warden::outcome::{Action, ActionResult, Decision as Decided, Outcome};
use warden::policy::{Class, OwnTagKind, Policy, TagRules};
use warden::tags::{
    self, Decision, LedgerObservation, PushCheck, Step, TagPointer, Unwanted, Verdict, check_push,
    decide_recorded_push, decide_settings, plan_revert, remedy_unwanted,
};

pub const FUNCTION: &str = "tag-guard";

#[derive(Debug)]
pub struct TagGuard {
    pub(crate) base: Base,
}

impl TagGuard {
    pub fn new(policy: Policy, config: Config, clients: Clients) -> Result<Self, WardenError> {
        Ok(Self { base: Base::new(FUNCTION, policy, config, clients, None)? })
    }

    /// Handles one EventBridge event and reports what happened.
    pub async fn handle(&self, payload: Value, invocation: &Invocation) -> Result<Outcome, WardenError> {
        // Boxed: the frame's future nested in the runtime's is otherwise too deep for the compiler's layout query.
        self.base.run(payload, invocation, self).await
    }

    async fn dispatch(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        let event = cx.event;
        match &event.kind {
            EventKind::ImageAction(action) => match action.action_type {
                ImageActionType::Push => self.on_push(cx, action).await,
                ImageActionType::Delete => self.on_delete(cx, action).await,
                _ => Ok(self.base.skipped(cx, format!("`{}` does not change tags", action.action_type.as_str()))),
            },
            EventKind::CreateRepository(call) => self.on_create_repository(cx, call).await,
            EventKind::Scheduled(sweep) => self.on_sweep(cx, sweep).await,
            EventKind::DeleteRepository(call) => Ok(self.base.skipped(
                cx,
                format!("repository {} was deleted; its tag history stays in the ledger", call.repository_name),
            )),
            _ => Ok(self.base.not_handled(cx)),
        }
    }

    async fn on_push(&self, cx: &Context<'_>, push: &ImageAction) -> Result<Outcome, WardenError> {
        let class = match self.base.pushed_image_class(cx, push) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let repository = push.repository_name.as_str();
        let rules = class.tags.as_ref();
        let Some(tag) = push.image_tag.as_deref() else {
            // An index's child, a referrer, or a build pushed before its tags: no name a convention applies to,
            // and nothing would read a record of it.
            return Ok(self.base.skipped(cx, "pushed by digest only: no tag to check"));
        };
        let mut outcome = self.base.outcome_for(cx, class, repository, Some(&push.image_digest), &tags_of(push));
        let pushed = TagPointer { digest: push.image_digest.clone(), since: cx.at.clone(), deleted_at: None };
        let check = match rules {
            Some(rules) => check_push(rules, tag),
            None => class.own_tag_kind(tag).map_or(PushCheck::Conforming { protected: false }, PushCheck::OwnTag),
        };
        match check {
            PushCheck::Conforming { .. } => {}
            PushCheck::OwnTag(kind) => {
                return self.verify_own_tag(cx, class, outcome, &push.image_digest, tag, kind).await;
            }
            PushCheck::NotAllowed { reason } => {
                let unwanted = Unwanted::NotAllowed { reason };
                return self.remove_unwanted(cx, class, outcome, &push.image_digest, tag, &unwanted).await;
            }
        }

        let observation = cx.ledger().record_push(repository, tag, &pushed, &cx.event.id).await?;
        let decision = decide_recorded_push(rules, tag, &pushed, &observation);
        match (&decision.verdict, &observation, rules) {
            (Verdict::TagMoved, LedgerObservation::Moved { previous }, _) => {
                cx.ledger().accept_move(repository, tag, previous, &pushed, &cx.event.id).await?;
            }
            (Verdict::ProtectedTagMoved, LedgerObservation::Moved { previous }, Some(_))
                if !decision.steps.is_empty() && self.restore_is_gone(cx, repository, previous).await? =>
            {
                return self.orphaned(cx, outcome, tag, previous, &pushed).await;
            }
            (Verdict::ProtectedTagMoved, _, Some(rules)) if !decision.steps.is_empty() => {
                let (moved_to, restore) = match &observation {
                    LedgerObservation::Newer { current } => (current.digest.clone(), pushed.digest.clone()),
                    LedgerObservation::Moved { previous } => (pushed.digest.clone(), previous.digest.clone()),
                    _ => (pushed.digest.clone(), pushed.digest.clone()),
                };
                let revert = Revert { rules, tag, moved_to: &moved_to, restore: &restore, observation: &observation };
                return self.revert(cx, &mut outcome, decision, revert).await.map(|()| outcome);
            }
            (Verdict::ProtectedTagMoved, LedgerObservation::Moved { previous }, _) => {
                // Reported, not reverted: the ledger follows what ECR now holds.
                cx.ledger().accept_move(repository, tag, previous, &pushed, &cx.event.id).await?;
            }
            _ => {}
        }
        let report = self.carry_out(cx, &mut outcome, (repository, None), decision, "protected-tag-moved").await?;
        outcome.notified = self.base.report(cx, report).await?;
        Ok(outcome)
    }

    /// A pushed tag shaped like ecr-warden's own (promotion or quarantine): its own only when the ledger holds
    /// the record written before ecr-warden adds such a tag (one GetItem); otherwise a forgery.
    async fn verify_own_tag(
        &self,
        cx: &Context<'_>,
        class: &Class,
        mut outcome: Outcome,
        digest: &str,
        tag: &str,
        kind: OwnTagKind,
    ) -> Result<Outcome, WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        match cx.ledger().own_tag(&repository, digest, tag).await? {
            Some(record) => {
                outcome.decision = Verdict::Recorded.into();
                outcome.reasons.push(format!(
                    "`{tag}` is a {} tag {} added (event {}), as the ledger records",
                    kind.as_str(),
                    record.function,
                    record.event_id
                ));
                Ok(outcome)
            }
            None => self.remove_unwanted(cx, class, outcome, digest, tag, &Unwanted::Forged { kind }).await,
        }
    }

    /// What to do about a tag that must not stay, decided on where it points now (a fresh DescribeImages), with
    /// that image; `Err` when the repository is gone.
    async fn unwanted_decision(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        digest: &str,
        tag: &str,
        unwanted: &Unwanted,
    ) -> Result<Result<(Decision, Option<tags::ImageState>), String>, WardenError> {
        let current = match found(ecr::describe_tag(cx.ecr(), repository, tag).await?) {
            Ok(current) => current,
            Err(gone) => return Ok(Err(gone)),
        };
        let remediation = class.tags.as_ref().map(|rules| rules.remediation);
        let quarantine = class.quarantine();
        let decision = remedy_unwanted(unwanted, remediation, quarantine.as_ref(), tag, digest, current.as_ref());
        Ok(Ok((decision, current)))
    }

    /// A tag that must not stay (not allowed, or forged): removed where the class's remediation writes (never
    /// an image's last tag without its quarantine tag first), decided on where the tag points now; reported in
    /// every class.
    async fn remove_unwanted(
        &self,
        cx: &Context<'_>,
        class: &Class,
        mut outcome: Outcome,
        digest: &str,
        tag: &str,
        unwanted: &Unwanted,
    ) -> Result<Outcome, WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let lease = self.removal_lease(cx, class, &repository, digest).await?;
        let removed = self.remove_leased(cx, class, &mut outcome, (digest, tag), unwanted, lease.as_ref()).await;
        self.base.release(lease).await;
        match removed? {
            Some(gone) => Ok(self.base.skipped(cx, gone)),
            None => Ok(outcome),
        }
    }

    /// [`Self::remove_unwanted`] under the image's lease: `Some(why)` when the repository is gone.
    async fn remove_leased(
        &self,
        cx: &Context<'_>,
        class: &Class,
        outcome: &mut Outcome,
        (digest, tag): (&str, &str),
        unwanted: &Unwanted,
        lease: Option<&Lease>,
    ) -> Result<Option<String>, WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let (decision, current) = match self.unwanted_decision(cx, class, &repository, digest, tag, unwanted).await? {
            Ok(decided) => decided,
            Err(gone) => return Ok(Some(gone)),
        };
        let remediation = class.tags.as_ref().map(|rules| rules.remediation);
        let (kind, severity) = match unwanted {
            Unwanted::NotAllowed { .. } => ("tag-not-allowed", Severity::Warning),
            Unwanted::Forged { .. } => ("forged-approval", Severity::Critical),
        };
        let report = match self.carry_out(cx, outcome, (&repository, lease), decision, kind).await? {
            Report::Silent | Report::Settle if current.is_none() && remediation.is_some_and(|r| r.writes()) => {
                // Gone already: removed by an earlier delivery of this event, whose notification may have been
                // lost with ECR's answer.
                outcome.reasons.insert(0, unwanted.reason(tag, digest));
                let reasons = outcome.reasons.clone();
                Report::Recovered(Said::once(self.base.notification(cx, kind, outcome, "untagged", reasons, severity)))
            }
            report => report,
        };
        outcome.notified = self.base.report(cx, report).await?;
        Ok(None)
    }

    async fn revert(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        mut decision: Decision,
        Revert { rules, tag, moved_to, restore, observation }: Revert<'_>,
    ) -> Result<(), WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let current = match found(ecr::describe_tag(cx.ecr(), &repository, tag).await?) {
            Ok(current) => current,
            Err(gone) => {
                *outcome = self.base.skipped(cx, gone);
                return Ok(());
            }
        };
        decision.steps = plan_revert(rules, tag, moved_to, restore, current.as_ref());
        if decision.steps.is_empty() {
            let now = current.map(|c| c.digest).unwrap_or_default();
            let reason = if now == restore {
                format!("`{tag}` already points at {restore} again (reverted before)")
            } else {
                format!("`{tag}` has moved on to {now}; that push is checked on its own")
            };
            outcome.decision = Verdict::Skipped.into();
            outcome.reasons.push(reason);
            if now == restore && !self.base.config.dry_run {
                // A retry of this event after the revert: its history entry may be missing if that invocation
                // failed after moving the tag back. The same item: a replay rewrites it unchanged.
                let entry = revert_entry(cx, moved_to, restore, true);
                cx.ledger().record_history(&repository, tag, &entry).await?;
            }
            // Reverted by an earlier delivery of this event, whose notification may have been lost with ECR's
            // answer.
            let recovered = (now == restore && !self.base.config.dry_run).then(|| {
                let reasons = outcome.reasons.clone();
                let kind = "protected-tag-moved";
                Said::once(self.base.notification(cx, kind, outcome, "reverted", reasons, Severity::Critical))
            });
            outcome.notified = self.base.report(cx, Report::nothing_left(recovered)).await?;
            return Ok(());
        }
        // The ledger records the revert before operators hear of it: a retry after a failed notification finds
        // the tag reverted and has nothing left to write.
        let report = self.carry_out(cx, outcome, (&repository, None), decision, "protected-tag-moved").await?;
        if self.base.config.dry_run {
            outcome.notified = self.base.report(cx, report).await?;
            return Ok(());
        }
        let reverted =
            outcome.actions.iter().all(|a| matches!(a.result, ActionResult::Done | ActionResult::AlreadyDone));
        let recorded = async {
            if reverted && let LedgerObservation::Newer { current } = observation {
                let restored = TagPointer { digest: restore.to_owned(), since: cx.at.clone(), deleted_at: None };
                cx.ledger().accept_move(&repository, tag, current, &restored, &cx.event.id).await?;
            }
            let entry = revert_entry(cx, moved_to, restore, reverted);
            cx.ledger().record_history(&repository, tag, &entry).await
        };
        if let Err(error) = recorded.await {
            // The tag is already back: the retry will find nothing to do, so leave it the notification.
            if let Report::TellChanged(said) = report {
                self.base.report(cx, Report::Owed(said)).await?;
            }
            return Err(error);
        }
        outcome.notified = self.base.report(cx, report).await?;
        Ok(())
    }

    /// Whether the image the ledger records for a moved protected tag is gone from the repository (a fresh
    /// read, ECR's `ImageNotFound` only): a revert would have nothing to point the tag back at.
    async fn restore_is_gone(
        &self,
        cx: &Context<'_>,
        repository: &str,
        recorded: &TagPointer,
    ) -> Result<bool, WardenError> {
        ecr::image_not_found(cx.ecr(), repository, &recorded.digest).await
    }

    /// A protected tag moved away from an image that no longer exists: reported once (a warning), and the ledger
    /// follows the push — if the tag really points there now (re-read: never on the event's word) — so the next
    /// push of the same image is conforming and a later move is reverted to it, not a revert failing forever.
    async fn orphaned(
        &self,
        cx: &Context<'_>,
        mut outcome: Outcome,
        tag: &str,
        recorded: &TagPointer,
        pushed: &TagPointer,
    ) -> Result<Outcome, WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let now = found(ecr::describe_tag(cx.ecr(), &repository, tag).await?);
        if !matches!(&now, Ok(Some(image)) if image.digest == pushed.digest) {
            return Ok(self.base.skipped(
                cx,
                format!("`{tag}` no longer points at {}: its push is checked on its own", pushed.digest),
            ));
        }
        if !self.base.config.dry_run {
            cx.ledger().accept_move(&repository, tag, recorded, pushed, &cx.event.id).await?;
        }
        outcome.decision = Verdict::ProtectedTagOrphaned.into();
        outcome.reasons = vec![format!(
            "protected tag `{tag}` moved to {}, but the image it was recorded at ({}) no longer exists: nothing to move it back to; the ledger now records {} for it",
            pushed.digest, recorded.digest, pushed.digest
        )];
        let said = self.notify(cx, "protected-tag-orphaned", &outcome, outcome.reasons.clone(), Severity::Warning);
        outcome.notified = self.base.report(cx, Report::Tell(Said::once(said))).await?;
        Ok(outcome)
    }

    async fn on_delete(&self, cx: &Context<'_>, delete: &ImageAction) -> Result<Outcome, WardenError> {
        let repository = delete.repository_name.as_str();
        let class = match self.base.managed_class(cx, repository) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let Some(tag) = delete.image_tag.as_deref() else {
            return Ok(self.base.skipped(cx, "image deleted by digest: no tag to record"));
        };
        let mut outcome = self.base.outcome_for(cx, class, repository, Some(&delete.image_digest), &tags_of(delete));
        let marked = cx.ledger().record_delete(repository, tag, &delete.image_digest, &cx.at).await?;
        outcome.decision = Verdict::Recorded.into();
        outcome.reasons.push(if marked {
            format!("`{tag}` marked deleted in the ledger")
        } else {
            format!("the ledger does not hold `{tag}` at {}; nothing to mark", delete.image_digest)
        });
        Ok(outcome)
    }

    async fn on_create_repository(&self, cx: &Context<'_>, call: &RepositoryApiCall) -> Result<Outcome, WardenError> {
        let class = match self.base.created_repository_class(cx, call) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let repository = call.repository_name.as_str();
        let Some(rules) = &class.tags else {
            return Ok(self.base.skipped(cx, format!("class `{}` declares no tag rules", class.name)));
        };
        let observed = match ecr::describe_repository(cx.ecr(), repository).await? {
            Found::Yes(settings) => settings.mutability,
            _ => return Ok(self.base.skipped(cx, format!("repository {repository} no longer exists"))),
        };
        let mut outcome = self.base.outcome_for(cx, class, repository, None, &[]);
        let decision = decide_settings(&rules.mutability, &observed, rules.remediation);
        let ok = decision.verdict == Verdict::SettingsOk;
        let report = self.carry_out(cx, &mut outcome, (repository, None), decision, "tag-mutability-drift").await?;
        let created = call
            .call
            .response_elements
            .as_ref()
            .and_then(|r| r.pointer("/repository/imageTagMutability"))
            .or_else(|| call.call.request_parameters.as_ref().and_then(|p| p.get("imageTagMutability")))
            .and_then(|m| m.as_str())
            .unwrap_or("MUTABLE");
        let report = if ok && !self.base.config.dry_run && created != rules.mutability.mode.as_str() {
            // Created otherwise and right now: fixed by an earlier delivery of this event, whose notification
            // may have been lost with ECR's answer.
            outcome.reasons.insert(0, format!("created {created}; set to {} by tag-guard", rules.mutability));
            let (kind, reasons) = ("tag-mutability-drift", outcome.reasons.clone());
            Report::Recovered(Said::once(self.base.notification(
                cx,
                kind,
                &outcome,
                "fixed",
                reasons,
                Severity::Warning,
            )))
        } else {
            report
        };
        outcome.notified = self.base.report(cx, report).await?;
        Ok(outcome)
    }

    /// Carries out a decision and fills the outcome; returns what to say: the outcome when the decision says
    /// so, otherwise what an earlier attempt may have left unsaid.
    async fn carry_out(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        (repository, lease): (&str, Option<&Lease>),
        decision: Decision,
        kind: &str,
    ) -> Result<Report, WardenError> {
        outcome.decision = decision.verdict.into();
        outcome.reasons.extend(decision.reasons.iter().cloned());
        outcome.actions = self.execute(cx, (repository, lease), &decision.steps).await?;
        Ok(if decision.notify {
            self.outcome_report(cx, outcome, decision.verdict, kind)
        } else if matches!(decision.verdict, Verdict::Skipped | Verdict::SettingsOk) {
            // Stale or already done: a retry of an event whose notification failed after its changes.
            Report::Settle
        } else {
            Report::Silent
        })
    }

    /// The report of an outcome: a notification about changes made is kept for the retry if it cannot be sent.
    fn outcome_report(&self, cx: &Context<'_>, outcome: &Outcome, verdict: Verdict, kind: &str) -> Report {
        let severity = match verdict {
            Verdict::ProtectedTagMoved | Verdict::ForgedApproval => Severity::Critical,
            _ if outcome.actions.iter().any(|a| a.result.is_failure()) => Severity::Critical,
            _ => Severity::Warning,
        };
        Report::about(Said::once(self.notify(cx, kind, outcome, outcome.reasons.clone(), severity)), changed(outcome))
    }

    /// Carries out steps; tag removals only while `lease` (held on the image) is valid.
    async fn execute(
        &self,
        cx: &Context<'_>,
        (repository, lease): (&str, Option<&Lease>),
        steps: &[Step],
    ) -> Result<Vec<Action>, WardenError> {
        self.base.executor(cx).under(lease).run(repository, steps).await
    }

    fn notify(
        &self,
        cx: &Context<'_>,
        kind: &str,
        outcome: &Outcome,
        reasons: Vec<String>,
        severity: Severity,
    ) -> Notification {
        self.base.notification(cx, kind, outcome, &summarise(outcome, self.base.config.dry_run), reasons, severity)
    }
}

/// A protected tag to move back: `tag` was moved to `moved_to` and goes back to `restore`, as the ledger's
/// `observation` of the push says.
#[derive(Debug, Clone, Copy)]
struct Revert<'a> {
    rules: &'a TagRules,
    tag: &'a str,
    moved_to: &'a str,
    restore: &'a str,
    observation: &'a LedgerObservation,
}

/// The history entry of a revert of `tag` from `moved_to` back to `restore` (or of its failure).
fn revert_entry(cx: &Context<'_>, moved_to: &str, restore: &str, reverted: bool) -> HistoryEntry {
    let (what, detail) = if reverted {
        ("reverted", format!("pushed here, moved back to {restore} by tag-guard"))
    } else {
        ("revert-failed", format!("pushed here; moving back to {restore} failed"))
    };
    HistoryEntry {
        at: cx.at.clone(),
        what: what.into(),
        digest: moved_to.to_owned(),
        detail,
        event_id: cx.event.id.clone(),
    }
}

/// Whether this invocation changed something in ECR (not in a dry run).
fn changed(outcome: &Outcome) -> bool {
    outcome.actions.iter().any(|a| a.result == ActionResult::Done)
}

/// `Ok(Some)`: the tag's image; `Ok(None)`: the tag is gone; `Err`: the repository is gone (skip).
fn found(lookup: Found<tags::ImageState>) -> Result<Option<tags::ImageState>, String> {
    match lookup {
        Found::Yes(state) => Ok(Some(state)),
        Found::NoImage => Ok(None),
        Found::NoRepository => Err("the repository no longer exists".into()),
    }
}

/// One word for what was done, as notifications carry it.
fn summarise(outcome: &Outcome, dry_run: bool) -> String {
    let word = if dry_run {
        "dry-run"
    } else if outcome.actions.iter().any(|a| a.result.is_failure()) {
        "failed"
    } else if outcome.actions.is_empty() {
        "reported"
    } else {
        match outcome.decision {
            Decided::TagGuard(Verdict::NotAllowed | Verdict::ForgedApproval) => "untagged",
            Decided::TagGuard(Verdict::ProtectedTagMoved) => "reverted",
            _ => "fixed",
        }
    };
    word.to_owned()
}

mod sweep;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;

fn tags_of(action: &ImageAction) -> Vec<String> {
    action.image_tag.iter().cloned().collect()
}

impl warden::handler::Dispatch for TagGuard {
    // Boxed: the nested futures are otherwise too deep for the compiler's layout query, and a batch of sweep
    // work items calls it once per item.
    fn dispatch_event<'c>(&'c self, cx: &'c Context<'c>) -> warden::handler::Dispatched<'c> {
        Box::pin(self.dispatch(cx))
    }
}
