//! lifecycle: keeps repositories clean, safely.
//!
//! - CloudTrail CreateRepository: gives the repository its class's native ECR lifecycle policy, where the class
//!   says `apply = true` and the policy would expire nothing the class protects (otherwise reports).
//! - Scheduled sweep: over every repository (paginated, sorted by name), native-policy drift fixed or reported,
//!   then the class's extended retention, within the policy's sweep limits; the sweep records where it is before
//!   each repository and phase, stops before the invocation's deadline (checked per page and per batch), and the
//!   next resumes there.
//! - PUSH: runs retention on that repository when its class asks for it (`after-push`).
//!
//! Retention observes the inventory and, only when something would be deleted, Inspector's coverage and the
//! manifests of image indexes; `warden::lifecycle::plan_retention` decides; deletions are journalled batch by
//! batch, so a run cut short is reported by the next.

mod native;
mod retention;

use native::{Baseline, Inventory};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use warden::WardenError;
use warden::aws::ledger::SweepCursor;
use warden::aws::{Clients, Found, ecr};
use warden::config::Config;
use warden::delivery::{Claim, Report, Said};
use warden::event::{EventKind, ImageAction, ImageActionType, RepositoryApiCall, ScheduledSweep};
use warden::handler::{Base, Context};
use warden::invocation::Invocation;
use warden::notify::{Notification, Severity};
use warden::outcome::{Action, ActionResult, Decision, LifecycleDecision, Outcome};
use warden::policy::{Class, Classification, Limits, Policy};

pub const FUNCTION: &str = "lifecycle";
/// A sweep (or a deletion) stops starting work when less than this is left before the invocation's deadline.
pub const SWEEP_MARGIN: Duration = Duration::from_secs(60);

/// How long a sweep's lease lasts when the runtime gives no deadline: past Lambda's longest invocation.
const SWEEP_LEASE: Duration = Duration::from_secs(16 * 60);
/// Digests listed in a retention notification before the rest are counted.
const LISTED: usize = 20;
/// Notification kinds: a native policy set or fixed (also the sweep's summary), reported but not put, refused,
/// and a sweep out of time.
const APPLIED: &str = "lifecycle-policy-applied";
const DRIFT: &str = "lifecycle-policy-drift";
const REFUSED: &str = "lifecycle-policy-refused";
const INCOMPLETE: &str = "lifecycle-sweep-incomplete";

#[derive(Debug)]
pub struct Lifecycle {
    pub(crate) base: Base,
}

/// What a run may still do: until when (the invocation's deadline less [`SWEEP_MARGIN`]) and, for a sweep, how
/// many images it may still delete and repositories it may still change (the policy's `[limits]`).
#[derive(Debug)]
pub(crate) struct Budget {
    stop_at: Option<SystemTime>,
    images: usize,
    repositories: usize,
    /// Set when the deadline stopped work.
    stopped: bool,
}

impl Budget {
    fn new(deadline: Option<SystemTime>, limits: Option<&Limits>) -> Self {
        Self {
            stop_at: deadline.and_then(|d| d.checked_sub(SWEEP_MARGIN)),
            images: limits.map_or(usize::MAX, |l| l.sweep_max_deleted_images),
            repositories: limits.map_or(usize::MAX, |l| l.sweep_max_changed_repositories),
            stopped: false,
        }
    }

    fn stop_at(&self) -> Option<SystemTime> {
        self.stop_at
    }

    fn out_of_time(&self) -> bool {
        self.stop_at.is_some_and(|at| SystemTime::now() >= at)
    }

    /// Why the sweep's limits stop (part of) `wanted` deletions, if they do.
    fn cap(&self, wanted: usize) -> Option<String> {
        if wanted > 0 && self.repositories == 0 {
            Some("the sweep changed as many repositories as its limit allows: left for the next sweep".into())
        } else if wanted > self.images {
            Some(format!(
                "the sweep may delete {} more images (limits.sweep-max-deleted-images): the rest is left for the next",
                self.images
            ))
        } else {
            None
        }
    }

    fn spend(&mut self, deleted: usize) {
        self.images = self.images.saturating_sub(deleted);
        if deleted > 0 {
            self.repositories = self.repositories.saturating_sub(1);
        }
    }
}

impl Lifecycle {
    pub fn new(
        policy: Policy,
        config: Config,
        clients: Clients,
        inspector: aws_sdk_inspector2::Client,
    ) -> Result<Self, WardenError> {
        Ok(Self { base: Base::new(FUNCTION, policy, config, clients, Some(inspector))? })
    }

    /// Handles one EventBridge event. The invocation's deadline stops sweeps and deletions in time.
    pub async fn handle(&self, payload: Value, invocation: &Invocation) -> Result<Outcome, WardenError> {
        // Boxed: the frame's future nested in the runtime's is otherwise too deep for the compiler's layout query.
        self.base.run(payload, invocation, self).await
    }

    async fn dispatch(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        Ok(match &cx.event.kind {
            EventKind::CreateRepository(call) => self.on_create_repository(cx, call).await?,
            EventKind::Scheduled(sweep) => self.on_sweep(cx, sweep).await?,
            EventKind::ImageAction(push) if push.action_type == ImageActionType::Push => self.on_push(cx, push).await?,
            EventKind::DeleteRepository(call) => {
                self.base.skipped(cx, format!("repository {} was deleted", call.repository_name))
            }
            _ => self.base.not_handled(cx),
        })
    }

    async fn on_create_repository(&self, cx: &Context<'_>, call: &RepositoryApiCall) -> Result<Outcome, WardenError> {
        let class = match self.base.created_repository_class(cx, call) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let repository = call.repository_name.as_str();
        let Some(lifecycle) = class.lifecycle.as_ref().filter(|l| l.native.is_some()) else {
            return Ok(self.base.skipped(cx, format!("class `{}` declares no native lifecycle policy", class.name)));
        };
        let Some(native) = &lifecycle.native else { return Ok(self.base.skipped(cx, "no native policy")) };
        let mut outcome = self.base.outcome_for(cx, class, repository, None, &[]);
        let (baseline, _) = self.baseline(cx, class, repository, (native, lifecycle.apply_native)).await?;
        let baseline = self.put_by_an_earlier_attempt(cx, repository, baseline, None).await?;
        let (kind, result, severity) = match baseline {
            Baseline::Gone => return Ok(self.base.skipped(cx, format!("repository {repository} no longer exists"))),
            Baseline::Current => {
                outcome.decision = LifecycleDecision::BaselineOk.into();
                outcome.reasons.push(format!("{repository} already carries class `{}`'s policy", class.name));
                // A retry of an invocation that set the policy but could not notify: what it parked goes now.
                outcome.notified = self.base.report(cx, Report::Settle).await?;
                return Ok(outcome);
            }
            Baseline::Drift(action) => {
                outcome.decision = LifecycleDecision::BaselineDrift.into();
                outcome.reasons.push(format!("{repository} lacks class `{}`'s lifecycle policy", class.name));
                outcome.actions.push(action);
                (DRIFT, "reported", Severity::Warning)
            }
            Baseline::Refused(refusals) => {
                outcome.decision = LifecycleDecision::BaselineRefused.into();
                outcome.reasons.push(format!(
                    "class `{}`'s lifecycle policy was not put on {repository}: it would expire what the class protects",
                    class.name
                ));
                outcome.reasons.extend(refusals);
                (REFUSED, "refused", Severity::Critical)
            }
            Baseline::Changed(action) => {
                outcome.decision = LifecycleDecision::BaselineApplied.into();
                outcome.reasons.push(format!("class `{}`'s lifecycle policy applied to {repository}", class.name));
                outcome.actions.push(action);
                let said = Said::once(self.applied(cx, &outcome));
                let sent = self.base.report(cx, Report::TellChanged(said)).await?;
                if outcome.actions.iter().any(|a| a.result == ActionResult::Done) {
                    cx.ledger().clear_policy_intents(&cx.event.id, &[repository.to_owned()]).await?;
                }
                // A retry of an attempt whose put failed parked the same news: with the claim taken it is not
                // sent again, only cleared.
                let flushed = self.base.report(cx, Report::Settle).await?;
                outcome.notified = sent || flushed;
                return Ok(outcome);
            }
            Baseline::Interrupted(action, error) => {
                // Parked for the retry: sent if it finds the policy in place, superseded if it puts it itself.
                outcome.decision = LifecycleDecision::BaselineApplied.into();
                outcome.reasons.push(format!("class `{}`'s lifecycle policy applied to {repository}", class.name));
                outcome.actions.push(action);
                self.base.report(cx, Report::Owed(Said::once(self.applied(cx, &outcome)))).await?;
                return Err(error);
            }
        };
        let notification = self.base.notification(cx, kind, &outcome, result, outcome.reasons.clone(), severity);
        outcome.notified = self.base.report(cx, Report::Tell(Said::once(notification))).await?;
        Ok(outcome)
    }

    /// Policies an earlier attempt of this sweep's event noted it was about to put, on repositories this run
    /// did not find them on (it resumed past them): reported with this run's if they are in place.
    async fn policies_put_before(&self, cx: &Context<'_>, state: &mut SweepState) -> Result<(), WardenError> {
        if state.intents.is_none() {
            state.intents = Some(cx.ledger().policy_intents(&cx.event.id).await?);
        }
        let seen: Vec<String> = state.changes.iter().filter_map(|c| c.repository.clone()).collect();
        let noted: Vec<String> = state.intents.iter().flatten().filter(|r| !seen.contains(r)).cloned().collect();
        for repository in noted {
            let Classification::Managed(class) =
                self.base.policy.classify_in(cx.home.as_ref().map(|h| h.account.as_str()), &repository)
            else {
                continue;
            };
            let Some(native) = class.lifecycle.as_ref().and_then(|l| l.native.as_ref()) else { continue };
            let ecr = cx.ecr();
            let Found::Yes(current) = warden::aws::retention::current_policy(ecr, &repository).await? else {
                continue;
            };
            if native.is_current(current.as_deref()) {
                let mut item = self.base.outcome_for(cx, class, &repository, None, &[]);
                item.decision = LifecycleDecision::BaselineApplied.into();
                let baseline =
                    self.put_by_an_earlier_attempt(cx, &repository, Baseline::Current, Some(&mut state.intents));
                if let Baseline::Changed(action) = baseline.await? {
                    item.actions.push(action);
                    state.changes.push(item);
                }
            }
        }
        Ok(())
    }

    /// A policy found in place that this event's earlier attempt noted it was about to put (and was cut short
    /// before telling): a change of this event's, reported as one. `intents`: the event's notes, if read
    /// already (a sweep reads them once).
    async fn put_by_an_earlier_attempt(
        &self,
        cx: &Context<'_>,
        repository: &str,
        baseline: Baseline,
        intents: Option<&mut Option<std::collections::BTreeSet<String>>>,
    ) -> Result<Baseline, WardenError> {
        if !matches!(baseline, Baseline::Current) {
            return Ok(baseline);
        }
        let mut read = None;
        let intents = intents.unwrap_or(&mut read);
        if intents.is_none() {
            *intents = Some(cx.ledger().policy_intents(&cx.event.id).await?);
        }
        if !intents.as_ref().is_some_and(|noted| noted.contains(repository)) {
            return Ok(baseline);
        }
        Ok(Baseline::Changed(Action {
            action: "set the lifecycle policy".into(),
            result: ActionResult::Done,
            detail: Some("by an earlier attempt of this event, cut short before it reported".into()),
        }))
    }

    fn applied(&self, cx: &Context<'_>, outcome: &Outcome) -> Notification {
        self.base.notification(cx, APPLIED, outcome, "fixed", outcome.reasons.clone(), Severity::Info)
    }

    async fn on_push(&self, cx: &Context<'_>, push: &ImageAction) -> Result<Outcome, WardenError> {
        let class = match self.base.pushed_image_class(cx, push) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let repository = push.repository_name.as_str();
        let Some(rules) = class.lifecycle.as_ref().and_then(|l| l.retention.as_ref()).filter(|r| r.after_push) else {
            return Ok(self.base.skipped(cx, format!("class `{}` runs retention on the sweep only", class.name)));
        };
        // What an earlier run here was cut short after deleting is reported first (one Query).
        let recovered = self.recover_journal(cx, Some(repository)).await?;
        let mut budget = Budget::new(cx.deadline, None);
        match self.retain(cx, class, rules, repository, &mut budget, None).await? {
            None => Ok(self.base.skipped(cx, format!("repository {repository} no longer exists"))),
            Some(mut run) => {
                run.outcome.notified |= recovered;
                Ok(run.outcome)
            }
        }
    }

    /// A sweep runs alone per scope (a lease for the invocation's life): a concurrent one (a duplicate delivery,
    /// an overlapping schedule) leaves the work to it, and never moves its place.
    async fn on_sweep(&self, cx: &Context<'_>, sweep: &ScheduledSweep) -> Result<Outcome, WardenError> {
        let mut named = sweep.repositories.clone();
        named.sort();
        named.dedup();
        let scope = if named.is_empty() {
            FUNCTION.to_owned()
        } else {
            format!("{FUNCTION}#{}", warden::fingerprint::of_lines(&named))
        };
        let remaining = cx.deadline.and_then(|d| d.duration_since(SystemTime::now()).ok());
        let lasts = remaining.map_or(SWEEP_LEASE, |r| r + SWEEP_MARGIN);
        let lease = match self.base.lease_for(cx, &format!("sweep#{scope}"), lasts).await {
            Ok(lease) => lease,
            Err(WardenError::Busy(_)) => {
                let reason = "another sweep of these repositories is running now: the work is its";
                return Ok(self.base.skipped(cx, reason));
            }
            Err(error) => return Err(error),
        };
        let swept = self.sweep(cx, sweep, scope).await;
        self.base.release(Some(lease)).await;
        swept
    }

    async fn sweep(&self, cx: &Context<'_>, sweep: &ScheduledSweep, scope: String) -> Result<Outcome, WardenError> {
        let mut outcome = Outcome {
            function: FUNCTION,
            event_id: cx.event.id.clone(),
            event: cx.event.describe(),
            ..Outcome::default()
        };
        // What runs cut short deleted is reported before anything else (one Query for the whole registry).
        let recovered = self.recover_journal(cx, None).await?;
        // A sweep that names its repositories needs no listing: one that no longer exists is skipped below.
        let mut repositories: Vec<String> = if sweep.repositories.is_empty() {
            ecr::list_repositories(cx.ecr()).await?.into_iter().map(|r| r.name).collect()
        } else {
            sweep.repositories.clone()
        };
        repositories.sort();
        repositories.dedup();
        let resume = cx.ledger().sweep_cursor(&scope).await?;
        if let Some(at) = &resume {
            outcome
                .reasons
                .push(format!("resumed at {} ({}), where the previous sweep stopped", at.repository, at.phase));
        }
        let mut budget = Budget::new(cx.deadline, Some(&self.base.policy.limits));
        let mut state = SweepState { scope, ..SweepState::default() };
        for repository in repositories.iter().filter(|r| resume.as_ref().is_none_or(|c| *r >= &c.repository)) {
            if budget.out_of_time() {
                state.stopped_at = Some(SweepCursor { repository: repository.clone(), phase: "native".into() });
                break;
            }
            let Classification::Managed(class) =
                self.base.policy.classify_in(cx.home.as_ref().map(|h| h.account.as_str()), repository)
            else {
                continue;
            };
            if class.lifecycle.is_none() {
                continue;
            }
            let phase = resume.as_ref().filter(|c| &c.repository == repository).map(|c| c.phase.as_str());
            if let Err(error) = self.sweep_repository(cx, class, repository, phase, &mut budget, &mut state).await {
                // The policies set so far would go unreported, since the retry finds them in place: parked
                // under a claim of their own, so the retry's own summary does not shadow them.
                if error.is_retryable() && !state.changes.is_empty() {
                    let said = Said::under(self.sweep_summary(cx, &outcome, &state.changes, false), Claim::Interrupted);
                    self.base.report(cx, Report::Owed(said)).await?;
                }
                return Err(error);
            }
            if budget.stopped {
                state
                    .stopped_at
                    .get_or_insert(SweepCursor { repository: repository.clone(), phase: "retention".into() });
                break;
            }
        }
        self.policies_put_before(cx, &mut state).await?;
        cx.ledger().save_sweep_cursor(&state.scope, state.stopped_at.as_ref(), &cx.at).await?;
        self.finish_sweep(cx, &mut outcome, &repositories, state).await?;
        outcome.notified |= recovered;
        Ok(outcome)
    }

    /// One repository of a sweep: its native policy (unless the sweep resumes here at retention), then retention.
    async fn sweep_repository(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        resumed_phase: Option<&str>,
        budget: &mut Budget,
        state: &mut SweepState,
    ) -> Result<(), WardenError> {
        let Some(lifecycle) = &class.lifecycle else { return Ok(()) };
        state.checked += 1;
        let at = |phase: &str| SweepCursor { repository: repository.to_owned(), phase: phase.to_owned() };
        let mut inventory: Option<Inventory> = None;
        if let Some(native) = lifecycle.native.as_ref().filter(|_| resumed_phase != Some("retention")) {
            cx.ledger().save_sweep_cursor(&state.scope, Some(&at("native")), &cx.at).await?;
            let apply = lifecycle.apply_native && budget.repositories > 0;
            let mut item = self.base.outcome_for(cx, class, repository, None, &[]);
            let (baseline, read) = self.baseline(cx, class, repository, (native, apply)).await?;
            let baseline = self.put_by_an_earlier_attempt(cx, repository, baseline, Some(&mut state.intents)).await?;
            inventory = read;
            match baseline {
                Baseline::Changed(action) => {
                    budget.repositories =
                        budget.repositories.saturating_sub(usize::from(action.result == ActionResult::Done));
                    item.decision = LifecycleDecision::BaselineApplied.into();
                    item.actions.push(action);
                    state.changes.push(item);
                }
                Baseline::Interrupted(action, error) => {
                    item.decision = LifecycleDecision::BaselineApplied.into();
                    item.actions.push(action);
                    state.changes.push(item);
                    return Err(error);
                }
                Baseline::Drift(action) => {
                    item.decision = LifecycleDecision::BaselineDrift.into();
                    item.actions.push(action);
                    state.drift.push(item);
                }
                Baseline::Refused(refusals) => {
                    item.decision = LifecycleDecision::BaselineRefused.into();
                    item.reasons = refusals;
                    state.refused.push(item);
                }
                Baseline::Current | Baseline::Gone => {}
            }
        }
        if let Some(rules) = &lifecycle.retention {
            if lifecycle.native.is_some() {
                cx.ledger().save_sweep_cursor(&state.scope, Some(&at("retention")), &cx.at).await?;
            }
            if let Some(run) = self.retain(cx, class, rules, repository, budget, inventory).await? {
                state.deleted += run.deleted;
                if run.outcome.decision != Decision::from(LifecycleDecision::NothingToDelete) {
                    state.retention.push(run.outcome);
                }
            }
        }
        Ok(())
    }

    /// The sweep's outcome and notifications: one summary of the policies set (or of a sweep out of time), one
    /// of native policies refused, one of drift reported; the last two standing (when they change, and weekly).
    async fn finish_sweep(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        repositories: &[String],
        state: SweepState,
    ) -> Result<(), WardenError> {
        let stopped = state.stopped_at.is_some();
        outcome.decision =
            if stopped { LifecycleDecision::SweepIncomplete.into() } else { LifecycleDecision::SweepComplete.into() };
        outcome.reasons.push(format!(
            "{} repositories in the sweep, {} with lifecycle rules checked, {} lifecycle policies set, {} drifted, {} \
             refused, {} images deleted",
            repositories.len(),
            state.checked,
            state.changes.len(),
            state.drift.len(),
            state.refused.len(),
            state.deleted
        ));
        if let Some(at) = &state.stopped_at {
            outcome
                .reasons
                .push(format!("stopped before the deadline at {}: the next sweep resumes there", at.repository));
        }
        for change in &state.changes {
            let repository = change.repository.as_deref().unwrap_or_default();
            outcome.actions.extend(
                change.actions.iter().map(|a| Action { action: format!("{repository}: {}", a.action), ..a.clone() }),
            );
        }
        if !state.changes.is_empty() || stopped {
            let said = Said::once(self.sweep_summary(cx, outcome, &state.changes, stopped));
            outcome.notified = self.base.report(cx, Report::TellChanged(said)).await?;
            let put: Vec<String> = state
                .changes
                .iter()
                .filter(|c| c.actions.iter().any(|a| a.result == ActionResult::Done))
                .filter_map(|c| c.repository.clone())
                .collect();
            cx.ledger().clear_policy_intents(&cx.event.id, &put).await?;
        }
        let standing = [(&state.refused, REFUSED, Severity::Critical), (&state.drift, DRIFT, Severity::Warning)]
            .into_iter()
            .filter_map(|(items, kind, severity)| {
                self.standing_summary(cx, outcome, &state.scope, items, kind, severity)
            });
        // A retry of a sweep that changed something but could not notify: what it parked goes now (one Query a
        // sweep; the retry itself finds those repositories already in order).
        let reports: Vec<Report> = standing.chain([Report::Settle]).collect();
        outcome.notified |= self.base.report_all(cx, reports).await?;
        outcome.items.extend(state.changes.into_iter().chain(state.refused).chain(state.drift).chain(state.retention));
        Ok(())
    }

    /// A standing finding of the sweep (repositories whose native policy is refused, or drifted and not put):
    /// reported when the set changes and at most weekly, not every day.
    fn standing_summary(
        &self,
        cx: &Context<'_>,
        outcome: &Outcome,
        scope: &str,
        items: &[Outcome],
        kind: &str,
        severity: Severity,
    ) -> Option<Report> {
        if items.is_empty() {
            return None;
        }
        let reasons: Vec<String> = items
            .iter()
            .flat_map(|i| {
                let repository = i.repository.clone().unwrap_or_default();
                let detail = i.reasons.iter().chain(i.actions.iter().map(|a| &a.action));
                detail.map(move |d| format!("{repository}: {d}")).collect::<Vec<_>>()
            })
            .collect();
        let fingerprint = warden::fingerprint::of_lines(&reasons);
        let result = if kind == REFUSED { "refused" } else { "reported" };
        let said = Said::once(self.base.notification(cx, kind, outcome, result, reasons, severity));
        Some(Report::Standing { said, pk: format!("STANDING#{scope}"), sk: kind.to_owned(), fingerprint })
    }

    /// One summary per sweep for the policies it set, not one message per repository. Its own kind when the
    /// sweep ran out of time: a retry's warning and a parked summary of fixes then never share a claim.
    fn sweep_summary(&self, cx: &Context<'_>, outcome: &Outcome, changes: &[Outcome], stopped: bool) -> Notification {
        let mut reasons: Vec<String> = changes
            .iter()
            .map(|c| format!("{}: {}", c.repository.as_deref().unwrap_or_default(), c.actions[0].action))
            .collect();
        reasons.extend(outcome.reasons.iter().cloned());
        let (kind, result, severity) =
            if stopped { (INCOMPLETE, "incomplete", Severity::Warning) } else { (APPLIED, "fixed", Severity::Info) };
        self.base.notification(cx, kind, outcome, result, reasons, severity)
    }
}

/// What a sweep found so far.
#[derive(Debug, Default)]
struct SweepState {
    /// Whose cursor and standing findings these are: the whole registry's sweep, or one naming its repositories
    /// (each list its own, so an ad hoc sweep neither resumes at nor resets the scheduled sweep's place).
    scope: String,
    checked: usize,
    deleted: usize,
    changes: Vec<Outcome>,
    drift: Vec<Outcome>,
    refused: Vec<Outcome>,
    retention: Vec<Outcome>,
    /// Where the next sweep resumes, when this one stopped before the deadline.
    stopped_at: Option<SweepCursor>,
    /// The repositories an earlier attempt of this event noted it was about to put a policy on (read once,
    /// when the first repository is found carrying its policy).
    intents: Option<std::collections::BTreeSet<String>>,
}

#[cfg(test)]
mod tests;

impl warden::handler::Dispatch for Lifecycle {
    // Boxed: the nested futures are otherwise too deep for the compiler's layout query, and a batch of sweep
    // work items calls it once per item.
    fn dispatch_event<'c>(&'c self, cx: &'c Context<'c>) -> warden::handler::Dispatched<'c> {
        Box::pin(self.dispatch(cx))
    }
}
