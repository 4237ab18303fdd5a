//! lifecycle: keeps repositories clean.
//!
//! - CloudTrail CreateRepository: gives the repository its class's native ECR lifecycle policy.
//! - Scheduled sweep: over every repository (paginated, sorted by name), fixes native-policy drift and runs the
//!   class's extended retention; a sweep that runs short of time records where it stopped and the next resumes.
//! - PUSH: runs retention on that repository when its class asks for it (`after-push`).
//!
//! Retention observes the inventory (DescribeImages), and only when something would be deleted, Inspector's
//! in-use data and the manifests of image indexes; then `warden::lifecycle::plan_retention` decides, and
//! BatchDeleteImage carries it out in batches of 100, unless the class is in dry run or a safety cap trips.

use chrono::Utc;
use serde_json::Value;
use std::time::{Duration, SystemTime};
use warden::WardenError;
use warden::aws::ledger::STANDING_PLAN_REPEAT_SECONDS;
use warden::aws::retention::{self, Deleted};
use warden::aws::{Clients, Found, ecr};
use warden::config::Config;
use warden::event::{EventKind, ImageAction, ImageActionType, RepositoryApiCall, ScheduledSweep};
use warden::handler::{Base, Context};
use warden::invocation::Invocation;
use warden::lifecycle::{Observed, RetentionPlan, TagProtections, plan_retention};
use warden::notify::{Notification, Severity};
use warden::outcome::{Action, ActionResult, Outcome};
use warden::pattern::Pattern;
use warden::policy::{Class, Classification, NativePolicy, Policy, RetentionRules};

pub const FUNCTION: &str = "lifecycle";
/// A sweep stops starting repositories when less than this is left before the invocation's deadline.
pub const SWEEP_MARGIN: Duration = Duration::from_secs(60);
/// Digests listed in a retention notification before the rest are counted.
const LISTED: usize = 20;
/// Notification kinds: a native policy set or fixed (also the sweep's summary), and a sweep out of time.
const APPLIED: &str = "lifecycle-policy-applied";
const INCOMPLETE: &str = "lifecycle-sweep-incomplete";
/// The claim of a summary parked by a sweep that failed part-way (see [`Lifecycle::on_sweep`]).
const APPLIED_INTERRUPTED: &str = "lifecycle-policy-applied:interrupted";

#[derive(Debug)]
pub struct Lifecycle {
    pub(crate) base: Base,
    pub(crate) inspector: aws_sdk_inspector2::Client,
}

/// What making a repository carry its class's native policy came to.
enum Baseline {
    /// The repository is gone.
    Gone,
    /// It already carries the policy.
    Current,
    /// Set or replaced (or would be, in a dry run).
    Changed(Action),
    /// The put failed past the SDK's retries, perhaps after it landed (a lost answer): the invocation fails.
    Interrupted(Action, WardenError),
}

/// What retention did in one repository.
struct RetentionRun {
    outcome: Outcome,
    deleted: usize,
}

impl Lifecycle {
    pub fn new(
        policy: Policy,
        config: Config,
        clients: Clients,
        inspector: aws_sdk_inspector2::Client,
    ) -> Result<Self, WardenError> {
        Ok(Self { base: Base::new(FUNCTION, policy, config, clients)?, inspector })
    }

    /// Handles one EventBridge event. The invocation's deadline stops sweeps in time.
    pub async fn handle(&self, payload: Value, invocation: &Invocation) -> Result<Outcome, WardenError> {
        let started = self.base.start();
        let event = warden::event::parse(payload)?;
        let cx = self.base.context(&event, invocation);
        let deadline = cx.deadline;
        if let Some(refused) = self.base.refuse(&cx) {
            return Ok(self.base.finish(refused, started));
        }
        let outcome = match &event.kind {
            EventKind::CreateRepository(call) => self.on_create_repository(&cx, call).await?,
            EventKind::Scheduled(sweep) => self.on_sweep(&cx, sweep, deadline).await?,
            EventKind::ImageAction(push) if push.action_type == ImageActionType::Push => {
                self.on_push(&cx, push).await?
            }
            EventKind::DeleteRepository(call) => {
                self.base.skipped(&cx, format!("repository {} was deleted", call.repository_name))
            }
            _ => self.base.not_handled(&cx),
        };
        Ok(self.base.finish(outcome, started))
    }

    async fn on_create_repository(&self, cx: &Context<'_>, call: &RepositoryApiCall) -> Result<Outcome, WardenError> {
        let class = match self.base.created_repository_class(call) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let repository = call.repository_name.as_str();
        let Some(native) = class.lifecycle.as_ref().and_then(|l| l.native.as_ref()) else {
            return Ok(self.base.skipped(cx, format!("class `{}` declares no native lifecycle policy", class.name)));
        };
        let mut outcome = self.base.outcome_for(cx, class, repository, None, &[]);
        let applied = |outcome: &mut Outcome, action: Action| {
            outcome.decision = "baseline-applied".into();
            outcome.reasons.push(format!("class `{}`'s lifecycle policy applied to {repository}", class.name));
            outcome.actions.push(action);
            self.base.notification(cx, APPLIED, outcome, "fixed", outcome.reasons.clone(), Severity::Info)
        };
        match self.apply_baseline(repository, native).await? {
            Baseline::Gone => return Ok(self.base.skipped(cx, format!("repository {repository} no longer exists"))),
            Baseline::Current => {
                outcome.decision = "baseline-ok".into();
                outcome.reasons.push(format!("{repository} already carries class `{}`'s policy", class.name));
                // A retry of an invocation that set the policy but could not notify: what it parked goes now.
                outcome.notified = self.base.flush_parked(&cx.event.id).await?;
            }
            Baseline::Changed(action) => {
                let notification = applied(&mut outcome, action);
                let sent = self.base.send_after_change(&notification, APPLIED, false).await?;
                // A retry of an attempt whose put failed parked the same news: with the claim taken it is not
                // sent again, only cleared.
                let flushed = self.base.flush_parked(&cx.event.id).await?;
                outcome.notified = sent || flushed;
            }
            Baseline::Interrupted(action, error) => {
                // Parked for the retry: sent if it finds the policy in place, superseded if it puts it itself.
                let notification = applied(&mut outcome, action);
                self.base.park(&notification, APPLIED).await;
                return Err(error);
            }
        }
        Ok(outcome)
    }

    /// Makes a repository carry `native`.
    async fn apply_baseline(&self, repository: &str, native: &NativePolicy) -> Result<Baseline, WardenError> {
        let current = match retention::current_policy(&self.base.clients.ecr, repository).await? {
            Found::Yes(current) => current,
            _ => return Ok(Baseline::Gone),
        };
        if native.is_current(current.as_deref()) {
            return Ok(Baseline::Current);
        }
        let what = if current.is_some() { "replace the drifted lifecycle policy" } else { "set the lifecycle policy" };
        let action = |result| Action { action: what.into(), result, detail: None };
        if self.base.config.dry_run {
            return Ok(Baseline::Changed(action(ActionResult::DryRun)));
        }
        match retention::put_policy(&self.base.clients.ecr, repository, &native.text).await {
            Ok(true) => Ok(Baseline::Changed(action(ActionResult::Done))),
            Ok(false) => Ok(Baseline::Changed(action(ActionResult::Gone))),
            // The put may have landed with its answer lost: reported as done if the retry finds it in place.
            Err(error) if error.is_retryable() => Ok(Baseline::Interrupted(action(ActionResult::Done), error)),
            Err(error) => Err(error),
        }
    }

    async fn on_push(&self, cx: &Context<'_>, push: &ImageAction) -> Result<Outcome, WardenError> {
        let class = match self.base.pushed_image_class(push) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let repository = push.repository_name.as_str();
        match class.lifecycle.as_ref().and_then(|l| l.retention.as_ref()) {
            Some(rules) if rules.after_push => match self.retain(cx, class, rules, repository).await? {
                None => Ok(self.base.skipped(cx, format!("repository {repository} no longer exists"))),
                Some(RetentionRun { mut outcome, .. }) => {
                    // Possibly a retry of a run that deleted but could not notify, or was interrupted: what it
                    // parked goes now (its claims differ from this run's, so nothing shadows anything).
                    outcome.notified |= self.base.flush_parked(&cx.event.id).await?;
                    Ok(outcome)
                }
            },
            _ => Ok(self.base.skipped(cx, format!("class `{}` runs retention on the sweep only", class.name))),
        }
    }

    async fn on_sweep(
        &self,
        cx: &Context<'_>,
        sweep: &ScheduledSweep,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, WardenError> {
        let mut outcome = Outcome {
            function: FUNCTION,
            event_id: cx.event.id.clone(),
            event: cx.event.describe(),
            ..Outcome::default()
        };
        // A sweep that names its repositories needs no listing: one that no longer exists is skipped below.
        let mut repositories: Vec<String> = if sweep.repositories.is_empty() {
            ecr::list_repositories(&self.base.clients.ecr).await?.into_iter().map(|r| r.name).collect()
        } else {
            sweep.repositories.clone()
        };
        repositories.sort();
        repositories.dedup();
        let resume_after = self.base.ledger.sweep_cursor(FUNCTION).await?;
        if let Some(after) = &resume_after {
            outcome.reasons.push(format!("resumed after {after}, where the previous sweep ran out of time"));
        }
        let mut baseline_changes = Vec::new();
        let (mut checked, mut deleted) = (0, 0);
        // Set when time runs short: the last repository finished (the resume point), if any.
        let mut stopped: Option<Option<String>> = None;
        let mut last_done: Option<&str> = resume_after.as_deref();
        for repository in repositories.iter().filter(|r| resume_after.as_ref().is_none_or(|after| *r > after)) {
            if deadline.is_some_and(|d| d.duration_since(SystemTime::now()).unwrap_or_default() < SWEEP_MARGIN) {
                stopped = Some(last_done.map(str::to_owned));
                break;
            }
            last_done = Some(repository);
            let Classification::Managed(class) = self.base.policy.classify(repository) else { continue };
            let Some(lifecycle) = &class.lifecycle else { continue };
            checked += 1;
            let mut interrupted = None;
            if let Some(native) = &lifecycle.native {
                let change = match self.apply_baseline(repository, native).await {
                    Ok(Baseline::Changed(action)) => Some(action),
                    Ok(Baseline::Interrupted(action, error)) => {
                        interrupted = Some(error);
                        Some(action)
                    }
                    Ok(Baseline::Current | Baseline::Gone) => None,
                    Err(error) => {
                        interrupted = Some(error);
                        None
                    }
                };
                if let Some(action) = change {
                    let mut item = self.base.outcome_for(cx, class, repository, None, &[]);
                    item.decision = "baseline-applied".into();
                    item.actions.push(action.clone());
                    outcome.actions.push(Action { action: format!("{repository}: {}", action.action), ..action });
                    baseline_changes.push(item);
                }
            }
            if interrupted.is_none()
                && let Some(rules) = &lifecycle.retention
            {
                match self.retain(cx, class, rules, repository).await {
                    Ok(Some(run)) => {
                        deleted += run.deleted;
                        if run.outcome.decision != "nothing-to-delete" {
                            outcome.items.push(run.outcome);
                        }
                    }
                    Ok(None) => {}
                    Err(error) => interrupted = Some(error),
                }
            }
            if let Some(error) = interrupted {
                // The policies set so far would go unreported, since the retry finds them in place: parked
                // under a claim of their own, so the retry's own summary does not shadow them.
                if error.is_retryable() && !baseline_changes.is_empty() {
                    let notification = self.sweep_summary(cx, &outcome, &baseline_changes, false);
                    self.base.park(&notification, APPLIED_INTERRUPTED).await;
                }
                return Err(error);
            }
        }
        let cursor = stopped.as_ref().and_then(|after| after.as_deref());
        if cursor.is_some() || resume_after.is_some() {
            self.base.ledger.save_sweep_cursor(FUNCTION, cursor, &cx.at).await?;
        }
        outcome.decision = if stopped.is_some() { "sweep-incomplete".into() } else { "sweep-complete".into() };
        outcome.reasons.push(format!(
            "{} repositories in the sweep, {checked} with lifecycle rules checked, {} lifecycle policies set, {deleted} images deleted",
            repositories.len(),
            baseline_changes.len()
        ));
        match &stopped {
            Some(Some(after)) => {
                outcome.reasons.push(format!("ran out of time after {after}: the next sweep resumes there"));
            }
            Some(None) => outcome.reasons.push(format!(
                "less than {} s left before the first repository: the next sweep starts over",
                SWEEP_MARGIN.as_secs()
            )),
            None => {}
        }
        if !baseline_changes.is_empty() || stopped.is_some() {
            let notification = self.sweep_summary(cx, &outcome, &baseline_changes, stopped.is_some());
            outcome.notified = self.base.send_after_change(&notification, &notification.kind, false).await?;
        }
        // A retry of a sweep that changed something but could not notify: what it parked goes now (one Query a
        // sweep; the retry itself finds those repositories already in order).
        outcome.notified |= self.base.flush_parked(&cx.event.id).await?;
        outcome.items.extend(baseline_changes);
        Ok(outcome)
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

    /// Runs a class's retention on one repository. `None`: the repository is gone.
    async fn retain(
        &self,
        cx: &Context<'_>,
        class: &Class,
        rules: &RetentionRules,
        repository: &str,
    ) -> Result<Option<RetentionRun>, WardenError> {
        let ecr = &self.base.clients.ecr;
        let Found::Yes(images) = ecr::lifecycle_inventory(ecr, repository).await? else { return Ok(None) };
        let protected: Vec<&Pattern> =
            rules.protect.iter().chain(class.tags.iter().flat_map(|t| t.protected.iter())).collect();
        let promotion = class.gate.as_ref().map(|g| g.promote.as_slice()).unwrap_or_default();
        let tags = TagProtections { patterns: &protected, promotion };
        let now = Utc::now().timestamp();
        let mut observed = Observed::default();
        let mut plan = plan_retention(rules, &tags, &images, &observed, now);
        if !plan.delete.is_empty() {
            // Only now is it worth asking what is in use and what kept indexes reference.
            if rules.protect_in_use {
                observed.in_use = retention::images_in_use(&self.inspector, repository).await?;
            }
            let indexes: Vec<String> = images.iter().filter(|i| i.is_index()).map(|i| i.digest.clone()).collect();
            if !indexes.is_empty() {
                match retention::index_children(ecr, repository, &indexes).await? {
                    Found::Yes(children) => observed.index_children = children,
                    _ => return Ok(None),
                }
            }
            plan = plan_retention(rules, &tags, &images, &observed, now);
        }
        let mut outcome = self.base.outcome_for(cx, class, repository, None, &[]);
        let dry_run = self.base.config.dry_run || !rules.apply;
        outcome.reasons = plan_reasons(&plan, &images, rules);
        let digests: Vec<String> = plan.delete.iter().map(|c| images[c.image].digest.clone()).collect();
        let mut deleted = 0;
        let mut reclaimed: i64 = 0;
        let (mut interrupted, mut pending) = (None, 0);
        outcome.decision = match (&plan.over_cap, digests.is_empty(), dry_run) {
            (Some(_), _, _) => "over-cap".into(),
            (None, true, _) => "nothing-to-delete".into(),
            (None, false, true) => "would-delete".into(),
            (None, false, false) => "deleted".into(),
        };
        if plan.over_cap.is_none() && !digests.is_empty() {
            let results: Vec<(String, Deleted)> = if dry_run {
                digests.iter().map(|d| (d.clone(), Deleted::Done)).collect()
            } else {
                // The inventory may be minutes old: delete only images whose tags are still what the plan saw.
                let Found::Yes(now_tagged) = retention::current_tags(ecr, repository).await? else { return Ok(None) };
                let unchanged = |digest: &String, image: &warden::lifecycle::Image| {
                    let mut planned = image.tags.clone();
                    planned.sort();
                    now_tagged.get(digest).is_some_and(|tags| *tags == planned)
                };
                let (mut deletable, mut changed) = (Vec::new(), Vec::new());
                for (digest, chosen) in digests.iter().zip(&plan.delete) {
                    if unchanged(digest, &images[chosen.image]) {
                        deletable.push(digest.clone());
                    } else {
                        changed.push(digest);
                    }
                }
                let deletion = match retention::delete_images(ecr, repository, &deletable).await? {
                    Found::Yes(deletion) => deletion,
                    _ => return Ok(None),
                };
                interrupted = deletion.interrupted;
                let mut results = deletion.results;
                results.extend(changed.into_iter().map(|digest| {
                    let result = if now_tagged.contains_key(digest) {
                        Deleted::Failed {
                            code: "TagsChanged".into(),
                            reason: "its tags changed since the inventory; not deleted, re-planned next run".into(),
                        }
                    } else {
                        Deleted::AlreadyGone
                    };
                    (digest.clone(), result)
                }));
                // Back in plan order, so each result meets the rule that chose its image.
                let order: std::collections::HashMap<&str, usize> =
                    digests.iter().enumerate().map(|(i, d)| (d.as_str(), i)).collect();
                results.sort_by_key(|(digest, _)| order[digest.as_str()]);
                results
            };
            for ((digest, result), chosen) in results.into_iter().zip(&plan.delete) {
                let image = &images[chosen.image];
                let (result, detail) = match result {
                    Deleted::Done if dry_run => (ActionResult::DryRun, None),
                    Deleted::Done => {
                        deleted += 1;
                        reclaimed += image.size_bytes.unwrap_or(0);
                        (ActionResult::Done, None)
                    }
                    Deleted::AlreadyGone => (ActionResult::AlreadyDone, None),
                    Deleted::Failed { code, reason } => (ActionResult::Failed, Some(format!("{code}: {reason}"))),
                    Deleted::Interrupted => {
                        pending += 1;
                        let why = "interrupted: AWS failed its batch past the SDK's retries; EventBridge retries";
                        (ActionResult::Failed, Some(why.to_owned()))
                    }
                };
                let tags = if image.tags.is_empty() { "untagged".to_owned() } else { image.tags.join(", ") };
                outcome.actions.push(Action {
                    action: format!("delete {digest} ({tags}) by rule {}", chosen.rule_priority),
                    result,
                    detail,
                });
            }
        }
        if deleted > 0 {
            outcome.reasons.push(format!("{deleted} images deleted, {} reclaimed", human_bytes(reclaimed)));
        }
        if let Some(error) = &interrupted {
            outcome.reasons.push(format!(
                "interrupted with {pending} images left ({error}): EventBridge retries the run, which deletes and reports the rest"
            ));
        }
        let failed = outcome.actions.iter().filter(|a| a.result == ActionResult::Failed).count();
        if plan.over_cap.is_some() || !outcome.actions.is_empty() {
            let severity = if plan.over_cap.is_some() || failed > 0 { Severity::Warning } else { Severity::Info };
            let result = match outcome.decision.as_str() {
                "deleted" if failed > 0 => "partly-failed",
                "deleted" => "deleted",
                "would-delete" => "dry-run",
                _ => "stopped",
            };
            let mut notification =
                self.base.notification(cx, "retention", &outcome, result, outcome.reasons.clone(), severity);
            // The first digests and the rule that chose each; the rest are counted.
            notification.actions_omitted = notification.actions.len().saturating_sub(LISTED);
            notification.actions.truncate(LISTED);
            let claim = format!("retention@{repository}");
            // A dry run or a stop by a cap changes nothing and stands until someone acts: reported when it
            // changes (and weekly), not on every sweep.
            let standing = matches!(outcome.decision.as_str(), "would-delete" | "over-cap");
            let ledger = &self.base.ledger;
            if let Some(error) = interrupted {
                // What was deleted before the interruption is reported now, under a claim of its own: the retry
                // deletes the rest and reports it under the usual one. Then the invocation fails, to be retried.
                self.base.send_after_change(&notification, &format!("{claim}:interrupted"), false).await?;
                return Err(error);
            } else if standing && !ledger.note_standing_plan(repository, &plan.fingerprint(&images), now).await? {
                outcome.reasons.push(format!(
                    "the same plan was reported within the last {} days: not notified again",
                    STANDING_PLAN_REPEAT_SECONDS / 86_400
                ));
            } else if deleted > 0 {
                // Deletions are changes a retry cannot see again: if this notification fails it is parked.
                outcome.notified = self.base.send_after_change(&notification, &claim, false).await?;
            } else {
                let sent = self.base.send_as(&notification, &claim).await;
                if sent.is_err() && standing {
                    // Unreported, so the retry must find it new. Best effort: at worst it waits a week.
                    if let Err(error) = ledger.forget_standing_plan(repository).await {
                        tracing::warn!(%error, repository, "could not forget an unreported retention plan");
                    }
                }
                outcome.notified = sent?;
            }
        }
        Ok(Some(RetentionRun { outcome, deleted }))
    }
}

/// What a retention plan says, for operators.
fn plan_reasons(plan: &RetentionPlan, images: &[warden::lifecycle::Image], rules: &RetentionRules) -> Vec<String> {
    let mut reasons = vec![format!(
        "{} of {} images chosen for deletion{}",
        plan.delete.len(),
        plan.inventory,
        if rules.apply { "" } else { " (dry run: the class does not set apply = true)" }
    )];
    for rule in &rules.rules {
        let count = plan.delete.iter().filter(|c| c.rule_priority == rule.priority).count();
        if count > 0 {
            reasons.push(format!("{}: {count} images", rule.summary()));
        }
    }
    if !plan.spared.is_empty() {
        let mut kept: Vec<String> = plan
            .spared
            .iter()
            .take(LISTED)
            .map(|(c, why)| format!("kept {}: {}", images[c.image].digest, why.describe()))
            .collect();
        if plan.spared.len() > LISTED {
            kept.push(format!("and {} more kept by protections", plan.spared.len() - LISTED));
        }
        reasons.extend(kept);
    }
    if let Some(cap) = &plan.over_cap {
        reasons.insert(0, cap.clone());
    }
    reasons
}

/// Bytes for people: `1.5 GiB`.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests;
