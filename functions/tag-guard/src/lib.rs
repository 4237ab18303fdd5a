//! tag-guard: enforces each repository class's tag conventions.
//!
//! - PUSH: checks the tag; removes tags that are not allowed (never an image's last tag), records every tag
//!   in the ledger, and reverts moves of protected tags.
//! - DELETE: marks the tag deleted in the ledger.
//! - CloudTrail CreateRepository and scheduled sweeps: keep each repository's tag mutability as its class
//!   requires.
//!
//! Each path observes what it needs, asks a pure decision in `warden::tags`, then carries out its steps.

use chrono::Utc;
use serde_json::Value;
use warden::WardenError;
use warden::aws::ecr;
use warden::aws::steps;
use warden::aws::ledger::{HistoryEntry, Ledger};
use warden::aws::sns::{Delivery, deliver};
use warden::aws::{Clients, Found};
use warden::config::Config;
use warden::event::{self, Event, EventKind, ImageAction, ImageActionType, RepositoryApiCall, ScheduledSweep};
use warden::notify::{Notification, SCHEMA, Severity};
use warden::outcome::{Action, ActionResult, Outcome};
use warden::policy::{Class, Classification, Policy, TagRules};
use warden::tags::{
    self, Decision, LedgerObservation, PushCheck, Step, TagPointer, Verdict, check_push, decide_recorded_push,
    decide_settings, plan_revert, remedy_not_allowed,
};

pub const FUNCTION: &str = "tag-guard";

#[derive(Debug)]
pub struct TagGuard {
    policy: Policy,
    config: Config,
    clients: Clients,
    ledger: Ledger,
}

/// The facts about one event every step needs.
struct Context<'a> {
    event: &'a Event,
    /// The event's time, or now when it has none: when the tag started pointing where it does.
    at: String,
}

impl TagGuard {
    pub fn new(policy: Policy, config: Config, clients: Clients) -> Result<Self, WardenError> {
        let ledger = Ledger::new(clients.dynamodb.clone(), config.require_ledger_table()?);
        Ok(Self { policy, config, clients, ledger })
    }

    /// Handles one EventBridge event and reports what happened.
    pub async fn handle(&self, payload: Value) -> Result<Outcome, WardenError> {
        let before = self.clients.calls.snapshot();
        let event = event::parse(payload)?;
        let at = event.time.clone().unwrap_or_else(|| Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let context = Context { event: &event, at };
        let mut outcome = self.dispatch(&context).await?;
        outcome.dry_run = self.config.dry_run;
        outcome.aws_calls = self.clients.calls.since(&before);
        tracing::info!(
            event_id = %outcome.event_id,
            event = %outcome.event,
            repository = outcome.repository.as_deref(),
            decision = %outcome.decision,
            actions = outcome.actions.len(),
            notified = outcome.notified,
            aws_calls = outcome.total_aws_calls(),
            reasons = ?outcome.reasons,
            "tag-guard outcome"
        );
        Ok(outcome)
    }

    async fn dispatch(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        let event = cx.event;
        match &event.kind {
            EventKind::ImageAction(action) => match action.action_type {
                ImageActionType::Push => self.on_push(cx, action).await,
                ImageActionType::Delete => self.on_delete(cx, action).await,
                _ => Ok(self.skipped(cx, format!("`{}` does not change tags", action.action_type.as_str()))),
            },
            EventKind::CreateRepository(call) => self.on_create_repository(cx, call).await,
            EventKind::Scheduled(sweep) => self.on_sweep(cx, sweep).await,
            EventKind::DeleteRepository(call) => Ok(self.skipped(
                cx,
                format!("repository {} was deleted; its tag history stays in the ledger", call.repository_name),
            )),
            EventKind::Unsupported => {
                Ok(self.skipped(cx, format!("unknown event `{}` / `{}`", event.source, event.detail_type)))
            }
            other => Ok(self.skipped(cx, format!("tag-guard does not handle {} events", other.name()))),
        }
    }

    fn skipped(&self, cx: &Context<'_>, reason: impl Into<String>) -> Outcome {
        let mut outcome = Outcome::skipped(FUNCTION, &cx.event.id, &describe(cx.event), reason);
        outcome.repository = cx.event.kind.repository().map(ToString::to_string);
        outcome
    }

    /// The managed class of a repository, or why it is left alone.
    fn managed_class(&self, repository: &str) -> Result<&Class, String> {
        match self.policy.classify(repository) {
            Classification::Managed(class) => Ok(class),
            Classification::Unmanaged(Some(class)) => Err(format!("{repository} belongs to unmanaged class `{class}`")),
            Classification::Unmanaged(None) => {
                Err(format!("{repository} matches no class and the default is unmanaged"))
            }
        }
    }

    async fn on_push(&self, cx: &Context<'_>, push: &ImageAction) -> Result<Outcome, WardenError> {
        if !push.succeeded() {
            return Ok(self.skipped(cx, format!("push result is `{}`, not SUCCESS", push.result)));
        }
        let repository = push.repository_name.as_str();
        let class = match self.managed_class(repository) {
            Ok(class) => class,
            Err(reason) => return Ok(self.skipped(cx, reason)),
        };
        let rules = class.tags.as_ref();
        let mut outcome = self.outcome_for(cx, class, repository, Some(&push.image_digest), push.image_tag.as_deref());
        let pushed = TagPointer { digest: push.image_digest.clone(), since: cx.at.clone(), deleted_at: None };
        let Some(tag) = push.image_tag.as_deref() else {
            let new = self.ledger.record_untagged_push(repository, &push.image_digest, &cx.at, &cx.event.id).await?;
            outcome.decision = "recorded".into();
            outcome.reasons.push(format!("pushed by digest only{}", if new { "" } else { " (already recorded)" }));
            return Ok(outcome);
        };
        if let Some(rules) = rules {
            match check_push(rules, tag) {
                PushCheck::Conforming { .. } => {}
                PushCheck::OwnTag => {
                    outcome.decision = "recorded".into();
                    outcome.reasons.push(format!("`{tag}` is a quarantine or promotion tag ecr-warden adds itself"));
                    return Ok(outcome);
                }
                PushCheck::NotAllowed { reason } => {
                    let current = match found(ecr::describe_tag(&self.clients.ecr, repository, tag).await?) {
                        Ok(current) => current,
                        Err(gone) => return Ok(self.skipped(cx, gone)),
                    };
                    let decision = remedy_not_allowed(rules, tag, &push.image_digest, &reason, current.as_ref());
                    self.carry_out(cx, &mut outcome, repository, decision, "tag-not-allowed").await?;
                    return Ok(outcome);
                }
            }
        }

        let observation = self.ledger.record_push(repository, tag, &pushed, &cx.event.id).await?;
        let decision = decide_recorded_push(rules, tag, &pushed, &observation);
        match (&decision.verdict, &observation, rules) {
            (Verdict::TagMoved, LedgerObservation::Moved { previous }, _) => {
                self.ledger.accept_move(repository, tag, previous, &pushed, &cx.event.id).await?;
            }
            (Verdict::ProtectedTagMoved, _, Some(rules)) if !decision.steps.is_empty() => {
                let (moved_to, restore) = match &observation {
                    LedgerObservation::Newer { current } => (current.digest.clone(), pushed.digest.clone()),
                    LedgerObservation::Moved { previous } => (pushed.digest.clone(), previous.digest.clone()),
                    _ => (pushed.digest.clone(), pushed.digest.clone()),
                };
                return self
                    .revert(cx, &mut outcome, rules, tag, decision, &moved_to, &restore, &observation)
                    .await
                    .map(|()| outcome);
            }
            (Verdict::ProtectedTagMoved, LedgerObservation::Moved { previous }, _) => {
                // Reported, not reverted: the ledger follows what ECR now holds.
                self.ledger.accept_move(repository, tag, previous, &pushed, &cx.event.id).await?;
            }
            _ => {}
        }
        self.carry_out(cx, &mut outcome, repository, decision, "protected-tag-moved").await?;
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn revert(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        rules: &TagRules,
        tag: &str,
        mut decision: Decision,
        moved_to: &str,
        restore: &str,
        observation: &LedgerObservation,
    ) -> Result<(), WardenError> {
        let repository = outcome.repository.clone().unwrap_or_default();
        let current = match found(ecr::describe_tag(&self.clients.ecr, &repository, tag).await?) {
            Ok(current) => current,
            Err(gone) => {
                *outcome = self.skipped(cx, gone);
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
            outcome.decision = "skipped".into();
            outcome.reasons.push(reason);
            return Ok(());
        }
        self.carry_out(cx, outcome, &repository, decision, "protected-tag-moved").await?;
        if self.config.dry_run {
            return Ok(());
        }
        let reverted =
            outcome.actions.iter().all(|a| matches!(a.result, ActionResult::Done | ActionResult::AlreadyDone));
        if reverted && let LedgerObservation::Newer { current } = observation {
            let restored = TagPointer { digest: restore.to_owned(), since: cx.at.clone(), deleted_at: None };
            self.ledger.accept_move(&repository, tag, current, &restored, &cx.event.id).await?;
        }
        let (what, detail) = if reverted {
            ("reverted", format!("pushed here, moved back to {restore} by tag-guard"))
        } else {
            ("revert-failed", format!("pushed here; moving back to {restore} failed"))
        };
        let entry = HistoryEntry {
            at: cx.at.clone(),
            what: what.into(),
            digest: moved_to.to_owned(),
            detail,
            event_id: cx.event.id.clone(),
        };
        self.ledger.record_history(&repository, tag, &entry).await?;
        Ok(())
    }

    async fn on_delete(&self, cx: &Context<'_>, delete: &ImageAction) -> Result<Outcome, WardenError> {
        let repository = delete.repository_name.as_str();
        let class = match self.managed_class(repository) {
            Ok(class) => class,
            Err(reason) => return Ok(self.skipped(cx, reason)),
        };
        let Some(tag) = delete.image_tag.as_deref() else {
            return Ok(self.skipped(cx, "image deleted by digest: no tag to record"));
        };
        let mut outcome = self.outcome_for(cx, class, repository, Some(&delete.image_digest), Some(tag));
        let marked = self.ledger.record_delete(repository, tag, &delete.image_digest, &cx.at).await?;
        outcome.decision = "recorded".into();
        outcome.reasons.push(if marked {
            format!("`{tag}` marked deleted in the ledger")
        } else {
            format!("the ledger does not hold `{tag}` at {}; nothing to mark", delete.image_digest)
        });
        Ok(outcome)
    }

    async fn on_create_repository(&self, cx: &Context<'_>, call: &RepositoryApiCall) -> Result<Outcome, WardenError> {
        if let Some(code) = &call.error_code {
            return Ok(self.skipped(cx, format!("CreateRepository failed ({code}): no repository was created")));
        }
        let repository = call.repository_name.as_str();
        let class = match self.managed_class(repository) {
            Ok(class) => class,
            Err(reason) => return Ok(self.skipped(cx, reason)),
        };
        let Some(rules) = &class.tags else {
            return Ok(self.skipped(cx, format!("class `{}` declares no tag rules", class.name)));
        };
        let observed = match ecr::describe_repository(&self.clients.ecr, repository).await? {
            Found::Yes(settings) => settings.mutability,
            _ => return Ok(self.skipped(cx, format!("repository {repository} no longer exists"))),
        };
        let mut outcome = self.outcome_for(cx, class, repository, None, None);
        let decision = decide_settings(&rules.mutability, &observed, rules.remediation);
        self.carry_out(cx, &mut outcome, repository, decision, "tag-mutability-drift").await?;
        Ok(outcome)
    }

    async fn on_sweep(&self, cx: &Context<'_>, sweep: &ScheduledSweep) -> Result<Outcome, WardenError> {
        let mut outcome = Outcome {
            function: FUNCTION,
            event_id: cx.event.id.clone(),
            event: describe(cx.event),
            ..Outcome::default()
        };
        let repositories = ecr::list_repositories(&self.clients.ecr).await?;
        let mut drifted = Vec::new();
        let mut checked = 0;
        for repository in
            repositories.iter().filter(|r| sweep.repositories.is_empty() || sweep.repositories.contains(&r.name))
        {
            let Classification::Managed(class) = self.policy.classify(&repository.name) else {
                continue;
            };
            let Some(rules) = &class.tags else { continue };
            checked += 1;
            let decision = decide_settings(&rules.mutability, &repository.mutability, rules.remediation);
            if decision.verdict == Verdict::SettingsOk {
                continue;
            }
            let mut item = self.outcome_for(cx, class, &repository.name, None, None);
            item.decision = verdict_name(decision.verdict);
            item.reasons = decision.reasons.clone();
            item.actions = self.execute(&repository.name, &decision.steps).await?;
            outcome.actions.extend(
                item.actions
                    .iter()
                    .map(|a| Action { action: format!("{}: {}", repository.name, a.action), ..a.clone() }),
            );
            drifted.push(item);
        }
        outcome.decision = if drifted.is_empty() { "settings-ok".into() } else { "settings-drift".into() };
        outcome.reasons.push(format!(
            "{} repositories listed, {checked} with tag rules checked, {} drifted",
            repositories.len(),
            drifted.len()
        ));
        if !drifted.is_empty() {
            // One summary per sweep, not one message per repository.
            let reasons = drifted
                .iter()
                .map(|d| format!("{}: {}", d.repository.as_deref().unwrap_or_default(), d.reasons.join("; ")))
                .collect();
            let notification = self.notification(cx, "tag-mutability-drift", &outcome, reasons, Severity::Warning);
            outcome.notified = self.send(&notification).await?;
        }
        outcome.items = drifted;
        Ok(outcome)
    }

    /// Carries out a decision, fills the outcome, and notifies when the decision says so.
    async fn carry_out(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        repository: &str,
        decision: Decision,
        kind: &str,
    ) -> Result<(), WardenError> {
        outcome.decision = verdict_name(decision.verdict);
        outcome.reasons.extend(decision.reasons.iter().cloned());
        outcome.actions = self.execute(repository, &decision.steps).await?;
        if decision.notify {
            let severity = match decision.verdict {
                Verdict::ProtectedTagMoved => Severity::Critical,
                _ if outcome.actions.iter().any(|a| a.result == ActionResult::Failed) => Severity::Critical,
                _ => Severity::Warning,
            };
            let notification = self.notification(cx, kind, outcome, outcome.reasons.clone(), severity);
            outcome.notified = self.send(&notification).await?;
        }
        Ok(())
    }

    async fn execute(&self, repository: &str, steps: &[Step]) -> Result<Vec<Action>, WardenError> {
        steps::execute(&self.clients.ecr, repository, steps, self.config.dry_run).await
    }

    fn outcome_for(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        digest: Option<&str>,
        tag: Option<&str>,
    ) -> Outcome {
        Outcome {
            function: FUNCTION,
            event_id: cx.event.id.clone(),
            event: describe(cx.event),
            repository: Some(repository.to_owned()),
            digest: digest.map(str::to_owned),
            tags: tag.map(str::to_owned).into_iter().collect(),
            class: Some(class.name.clone()),
            ..Outcome::default()
        }
    }

    fn notification(
        &self,
        cx: &Context<'_>,
        kind: &str,
        outcome: &Outcome,
        reasons: Vec<String>,
        severity: Severity,
    ) -> Notification {
        Notification {
            schema: SCHEMA,
            kind: kind.to_owned(),
            severity,
            function: FUNCTION.to_owned(),
            repository: outcome.repository.clone(),
            digest: outcome.digest.clone(),
            tags: outcome.tags.clone(),
            tags_omitted: 0,
            outcome: summarise(outcome, self.config.dry_run),
            reasons,
            reasons_omitted: 0,
            actions: outcome.actions.clone(),
            actions_omitted: 0,
            class: outcome.class.clone(),
            dry_run: self.config.dry_run,
            event_id: cx.event.id.clone(),
            time: cx.at.clone(),
        }
    }

    async fn send(&self, notification: &Notification) -> Result<bool, WardenError> {
        let delivery = deliver(
            &self.clients.sns,
            self.config.topic_arn.as_deref(),
            &self.ledger,
            notification,
            Utc::now().timestamp(),
        )
        .await?;
        Ok(matches!(delivery, Delivery::Sent(_)))
    }
}

/// `Ok(Some)`: the tag's image; `Ok(None)`: the tag is gone; `Err`: the repository is gone (skip).
fn found(lookup: Found<tags::ImageState>) -> Result<Option<tags::ImageState>, String> {
    match lookup {
        Found::Yes(state) => Ok(Some(state)),
        Found::NoImage => Ok(None),
        Found::NoRepository => Err("the repository no longer exists".into()),
    }
}

fn describe(event: &Event) -> String {
    match &event.kind {
        EventKind::ImageAction(action) => {
            format!("{} {}", event.detail_type, action.action_type.as_str())
        }
        EventKind::CreateRepository(_) => "CloudTrail CreateRepository".into(),
        EventKind::DeleteRepository(_) => "CloudTrail DeleteRepository".into(),
        _ => event.detail_type.clone(),
    }
}

fn verdict_name(verdict: Verdict) -> String {
    serde_json::to_value(verdict).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// One word for what was done, as notifications carry it.
fn summarise(outcome: &Outcome, dry_run: bool) -> String {
    let word = if dry_run {
        "dry-run"
    } else if outcome.actions.iter().any(|a| a.result == ActionResult::Failed) {
        "failed"
    } else if outcome.actions.is_empty() {
        "reported"
    } else {
        match outcome.decision.as_str() {
            "not-allowed" => "untagged",
            "protected-tag-moved" => "reverted",
            _ => "fixed",
        }
    };
    word.to_owned()
}

#[cfg(test)]
mod tests;
