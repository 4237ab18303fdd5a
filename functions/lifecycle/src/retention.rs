//! Retention in one repository: observe (inventory, and only when something would go, Inspector's coverage and
//! the index manifests), plan (`warden::lifecycle::plan_retention`, pure), act (re-read every image's tags,
//! journal each batch, delete it, stop before the deadline), report (one notification for the run, claimed
//! per run; the journal lets a later run report what a run cut short deleted, once).

use super::{Budget, Inventory, LISTED, Lifecycle};
use chrono::Utc;
use std::collections::HashMap;
use warden::WardenError;
use warden::aws::claims::PENDING_STALE_SECONDS;
use warden::aws::journal::JournalEntry;
use warden::aws::lease::Lease;
use warden::aws::ledger::STANDING_PLAN_REPEAT_SECONDS;
use warden::aws::retention::{self, BATCH_LIMIT, Deleted};
use warden::aws::{Found, ecr};
use warden::delivery::{Claim, Report, Said};
use warden::handler::Context;
use warden::lifecycle::{Image, Observed, RetentionPlan, TagProtections, plan_retention};
use warden::notify::Severity;
use warden::outcome::{Action, ActionResult, Decision, LifecycleDecision, Outcome};
use warden::pattern::Pattern;
use warden::policy::{Class, RetentionRules};

/// What retention did in one repository.
pub(crate) struct RetentionRun {
    pub outcome: Outcome,
    pub deleted: usize,
}

/// What the act step came to, image by image, in plan order.
struct Acted {
    results: Vec<(String, Deleted)>,
    /// Batches left undone because the deadline came.
    stopped: usize,
    /// The journal entries this run wrote (cleared once its report is out).
    journal: Vec<JournalEntry>,
    /// The run's claim (its token), shared with the journal so a recovery report uses the same one.
    run: String,
}

impl Lifecycle {
    /// Runs a class's retention on one repository within `budget`, on `inventory` when the native check just
    /// read it. `None`: the repository is gone.
    pub(crate) async fn retain(
        &self,
        cx: &Context<'_>,
        class: &Class,
        rules: &RetentionRules,
        repository: &str,
        budget: &mut Budget,
        inventory: Option<Inventory>,
    ) -> Result<Option<RetentionRun>, WardenError> {
        let ecr = cx.ecr();
        let mut outcome = self.base.outcome_for(cx, class, repository, None, &[]);
        let Inventory { images, observed } = match inventory {
            Some(inventory) => inventory,
            None => match ecr::inventory_until(ecr, repository, budget.stop_at()).await? {
                Found::Yes(Some(images)) => Inventory { images, observed: Observed::default() },
                Found::Yes(None) => {
                    outcome.decision = LifecycleDecision::Stopped.into();
                    outcome.reasons.push("out of time while reading the inventory: nothing deleted".into());
                    budget.stopped = true;
                    return Ok(Some(RetentionRun { outcome, deleted: 0 }));
                }
                _ => return Ok(None),
            },
        };
        let Some(plan) = self.plan(cx, class, rules, repository, &images, observed).await? else { return Ok(None) };
        let mut allowed = plan.delete.len();
        let sweep_cap = budget.cap(allowed);
        if let Some(why) = &sweep_cap {
            allowed = budget.images.min(allowed);
            outcome.reasons.push(why.clone());
        }
        let dry_run = self.base.config.dry_run || !rules.apply;
        outcome.reasons.splice(0..0, plan_reasons(&plan, &images, rules));
        outcome.decision = match (&plan.over_cap, plan.delete.is_empty() || allowed == 0, dry_run) {
            (Some(_), _, _) => LifecycleDecision::OverCap.into(),
            (None, true, _) if sweep_cap.is_some() => LifecycleDecision::OverCap.into(),
            // Chosen images kept because nobody can vouch they are unused: a standing problem to fix.
            (None, true, _) if plan.held_back().next().is_some() => LifecycleDecision::HeldBack.into(),
            (None, true, _) => LifecycleDecision::NothingToDelete.into(),
            (None, false, true) => LifecycleDecision::WouldDelete.into(),
            (None, false, false) => LifecycleDecision::Deleted.into(),
        };
        // One deleting run per repository at a time: a concurrent one (a duplicate delivery, a sweep and a
        // push) would delete the same images and both would report them.
        let lease = match outcome.decision {
            Decision::Lifecycle(LifecycleDecision::Deleted) => match self.base.lease(cx, repository, "retention").await
            {
                Ok(lease) => Some(lease),
                Err(WardenError::Busy(_)) => {
                    outcome.decision = LifecycleDecision::Busy.into();
                    outcome.reasons.push("another run is deleting in this repository now: it reports that".into());
                    return Ok(Some(RetentionRun { outcome, deleted: 0 }));
                }
                Err(error) => return Err(error),
            },
            _ => None,
        };
        let run =
            self.act_and_report(cx, (&mut outcome, repository), (&plan, &images), allowed, budget, lease.as_ref());
        let run = run.await;
        self.base.release(lease).await;
        match run? {
            Some(deleted) => Ok(Some(RetentionRun { outcome, deleted })),
            None => Ok(None),
        }
    }

    /// Deletes (or, in a dry run, lists) the plan's first `allowed` images, records the actions and reports
    /// the run; how many were deleted (`None`: the repository is gone).
    async fn act_and_report(
        &self,
        cx: &Context<'_>,
        (outcome, repository): (&mut Outcome, &str),
        (plan, images): (&RetentionPlan, &[Image]),
        allowed: usize,
        budget: &mut Budget,
        lease: Option<&Lease>,
    ) -> Result<Option<usize>, WardenError> {
        let dry_run = self.base.config.dry_run || outcome.decision == Decision::from(LifecycleDecision::WouldDelete);
        let acted = match outcome.decision {
            Decision::Lifecycle(LifecycleDecision::WouldDelete) => Some(planned_only(plan, images, allowed)),
            Decision::Lifecycle(LifecycleDecision::Deleted) => {
                match self.act(cx, repository, (plan, images), allowed, budget, lease).await? {
                    Some(acted) => Some(acted),
                    None => return Ok(None),
                }
            }
            _ => None,
        };
        let deleted = self.record(outcome, plan, images, acted.as_ref(), dry_run);
        budget.spend(deleted);
        self.report(cx, outcome, repository, plan, images, acted).await?;
        Ok(Some(deleted))
    }

    /// The plan, with Inspector's coverage and the index manifests read only when something would be deleted
    /// (and not read already). `None`: the repository is gone.
    async fn plan(
        &self,
        cx: &Context<'_>,
        class: &Class,
        rules: &RetentionRules,
        repository: &str,
        images: &[Image],
        mut observed: Observed,
    ) -> Result<Option<RetentionPlan>, WardenError> {
        let protected: Vec<&Pattern> =
            rules.protect.iter().chain(class.tags.iter().flat_map(|t| t.protected.iter())).collect();
        let promotion = class.gate.as_ref().map(|g| g.promote.as_slice()).unwrap_or_default();
        let tags = TagProtections { patterns: &protected, promotion };
        let now = Utc::now().timestamp();
        let plan = plan_retention(rules, &tags, images, &observed, now);
        if plan.delete.is_empty() {
            return Ok(Some(plan));
        }
        // Only now is it worth asking what is in use and what kept indexes reference.
        if rules.protect_in_use && observed.in_use == warden::lifecycle::InUseData::NotRead {
            observed.in_use = retention::images_in_use(cx.inspector()?, repository).await?;
        }
        let indexes: Vec<String> = images.iter().filter(|i| i.is_index()).map(|i| i.digest.clone()).collect();
        if !indexes.is_empty() && observed.index_children.is_empty() {
            match retention::index_children(cx.ecr(), repository, &indexes).await? {
                Found::Yes(children) => observed.index_children = children,
                _ => return Ok(None),
            }
        }
        Ok(Some(plan_retention(rules, &tags, images, &observed, now)))
    }

    /// Deletes the first `allowed` images of the plan whose tags are still what the inventory said (re-read in
    /// every storage class), batch by batch: each batch is journalled first, and none starts when the deadline
    /// is near. `None`: the repository is gone.
    async fn act(
        &self,
        cx: &Context<'_>,
        repository: &str,
        (plan, images): (&RetentionPlan, &[Image]),
        allowed: usize,
        budget: &mut Budget,
        lease: Option<&Lease>,
    ) -> Result<Option<Acted>, WardenError> {
        let ecr = cx.ecr();
        let Found::Yes(now_tagged) = retention::current_tags(ecr, repository).await? else { return Ok(None) };
        let chosen: Vec<(String, u32)> =
            plan.delete.iter().take(allowed).map(|c| (images[c.image].digest.clone(), c.rule_priority)).collect();
        let mut results: HashMap<String, Deleted> = HashMap::new();
        let mut deletable = Vec::new();
        for ((digest, rule), c) in chosen.iter().zip(&plan.delete) {
            let mut planned = images[c.image].tags.clone();
            planned.sort();
            match now_tagged.get(digest) {
                Some(tags) if *tags == planned => deletable.push((digest.clone(), *rule)),
                Some(_) => {
                    let reason = "its tags changed since the inventory; not deleted, re-planned next run".into();
                    results.insert(digest.clone(), Deleted::Failed { code: "TagsChanged".into(), reason });
                }
                None => {
                    results.insert(digest.clone(), Deleted::AlreadyGone);
                }
            }
        }
        let run = warden::aws::ledger::claim_token();
        let (mut journal, mut stopped) = (Vec::new(), 0);
        for (n, batch) in deletable.chunks(BATCH_LIMIT).enumerate() {
            if budget.out_of_time() || lease.is_some_and(|l| !l.valid()) {
                stopped = deletable.len().div_ceil(BATCH_LIMIT) - n;
                budget.stopped = true;
                break;
            }
            let entry = JournalEntry {
                repository: repository.to_owned(),
                run: run.clone(),
                batch: n as u32,
                event_id: cx.event.id.clone(),
                holder: cx.request_id.clone(),
                written_at: Utc::now().timestamp(),
                digests: batch.to_vec(),
            };
            cx.ledger().journal_batch(&entry, Utc::now().timestamp()).await?;
            journal.push(entry);
            let digests: Vec<String> = batch.iter().map(|(d, _)| d.clone()).collect();
            // A batch failing past the SDK's retries fails the invocation: the journal keeps what landed before
            // it, and the retry (which starts by reading the journal) reports it.
            let Found::Yes(deletion) = retention::delete_images(ecr, repository, &digests).await? else {
                return Ok(None);
            };
            if let Some(error) = deletion.interrupted {
                return Err(error);
            }
            // Present at the re-read, journalled, and no other run deletes here while this one holds the lease:
            // an image ECR no longer finds was deleted by this batch (its answer lost and the call retried).
            let landed = deletion.results.into_iter().map(|(digest, result)| match result {
                Deleted::AlreadyGone if lease.is_some() => (digest, Deleted::Done),
                other => (digest, other),
            });
            results.extend(landed);
        }
        let results = chosen.into_iter().map(|(d, _)| {
            let result = results.remove(&d).unwrap_or(Deleted::Interrupted);
            (d, result)
        });
        Ok(Some(Acted { results: results.collect(), stopped, journal, run }))
    }

    /// Fills the outcome's actions from the plan and what was done; returns how many images were deleted.
    fn record(
        &self,
        outcome: &mut Outcome,
        plan: &RetentionPlan,
        images: &[Image],
        acted: Option<&Acted>,
        dry_run: bool,
    ) -> usize {
        let Some(acted) = acted else { return 0 };
        let (mut deleted, mut reclaimed, mut left) = (0, 0i64, 0);
        for ((digest, result), chosen) in acted.results.iter().zip(&plan.delete) {
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
                    left += 1;
                    continue;
                }
            };
            let tags = if image.tags.is_empty() { "untagged".to_owned() } else { image.tags.join(", ") };
            let action = format!("delete {digest} ({tags}) by rule {}", chosen.rule_priority);
            outcome.actions.push(Action { action, result, detail });
        }
        if deleted > 0 {
            outcome.reasons.push(format!("{deleted} images deleted, {} reclaimed", human_bytes(reclaimed)));
        }
        if acted.stopped > 0 || left > 0 {
            outcome.reasons.push(format!(
                "stopped before the invocation's deadline with {left} images ({} batches) left: the next run continues",
                acted.stopped
            ));
        }
        deleted
    }

    /// One notification for the run: a standing plan (dry run, cap) when it changes and at most weekly;
    /// deletions under the run's own claim, after which its journal is cleared.
    async fn report(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        repository: &str,
        plan: &RetentionPlan,
        images: &[Image],
        acted: Option<Acted>,
    ) -> Result<(), WardenError> {
        if outcome.decision == Decision::from(LifecycleDecision::NothingToDelete) {
            return Ok(());
        }
        let landed = outcome.actions.iter().any(|a| matches!(a.result, ActionResult::Done | ActionResult::Failed));
        if outcome.decision == Decision::from(LifecycleDecision::Deleted) && !landed {
            // Gone before this run's batches reached them: deleted by another delivery of this event (which
            // reports them), by an earlier attempt (whose journal does), or by hand.
            outcome.decision = LifecycleDecision::AlreadyDeleted.into();
            outcome.reasons.push("every image chosen was already gone: nothing of this run's to report".into());
            if let Some(acted) = acted {
                cx.ledger().clear_journal(&acted.journal).await?;
            }
            return Ok(());
        }
        let failed = outcome.actions.iter().filter(|a| a.result == ActionResult::Failed).count();
        let warn =
            plan.over_cap.is_some() || failed > 0 || outcome.decision == Decision::from(LifecycleDecision::HeldBack);
        let severity = if warn { Severity::Warning } else { Severity::Info };
        let result = match outcome.decision {
            Decision::Lifecycle(LifecycleDecision::Deleted) if failed > 0 => "partly-failed",
            Decision::Lifecycle(LifecycleDecision::Deleted) => "deleted",
            Decision::Lifecycle(LifecycleDecision::WouldDelete) => "dry-run",
            Decision::Lifecycle(LifecycleDecision::HeldBack) => "held-back",
            _ => "stopped",
        };
        let mut notification =
            self.base.notification(cx, "retention", outcome, result, outcome.reasons.clone(), severity);
        // The first digests and the rule that chose each; the rest are counted.
        notification.actions_omitted = notification.actions.len().saturating_sub(LISTED);
        notification.actions.truncate(LISTED);
        match acted {
            Some(acted) if outcome.decision == Decision::from(LifecycleDecision::Deleted) => {
                let said = Said::under(notification, per_run(repository, &acted.run));
                outcome.notified = self.base.report(cx, Report::Tell(said)).await?;
                cx.ledger().clear_journal(&acted.journal).await
            }
            _ => {
                // A dry run or a stop by a cap changes nothing and stands until someone acts: reported when it
                // changes (and weekly), not on every sweep.
                let said = Said::under(notification, Claim::PerRepository { repository: repository.into(), run: None });
                let (pk, sk) = (format!("PLAN#{repository}"), "retention".to_owned());
                let standing = Report::Standing { said, pk, sk, fingerprint: plan.fingerprint(images) };
                outcome.notified = self.base.report(cx, standing).await?;
                if !outcome.notified {
                    outcome.reasons.push(format!(
                        "the same plan was reported within the last {} days: not notified again",
                        STANDING_PLAN_REPEAT_SECONDS / 86_400
                    ));
                }
                Ok(())
            }
        }
    }

    /// Reports what runs cut short deleted (their journal entries, of one repository or all): each run's images
    /// that are really gone, read back now, under the claim that run would have used; then clears the entries.
    pub(crate) async fn recover_journal(
        &self,
        cx: &Context<'_>,
        repository: Option<&str>,
    ) -> Result<bool, WardenError> {
        let entries = cx.ledger().journal(repository).await?;
        let mut runs: std::collections::BTreeMap<(String, String), Vec<JournalEntry>> = Default::default();
        let now = Utc::now().timestamp();
        // A run of another request younger than any invocation's life may still be deleting: its own report.
        let dead = |e: &JournalEntry| e.holder == cx.request_id || e.written_at + PENDING_STALE_SECONDS < now;
        for entry in entries.into_iter().filter(dead) {
            runs.entry((entry.repository.clone(), entry.run.clone())).or_default().push(entry);
        }
        let mut notified = false;
        for ((repository, run), entries) in runs {
            let remaining = match retention::current_tags(cx.ecr(), &repository).await? {
                Found::Yes(tags) => tags,
                _ => HashMap::new(),
            };
            let gone: Vec<(String, u32)> = entries
                .iter()
                .flat_map(|e| e.digests.iter().cloned())
                .filter(|(digest, _)| !remaining.contains_key(digest))
                .collect();
            if !gone.is_empty() {
                let mut outcome = self.base.skipped(cx, "");
                outcome.repository = Some(repository.clone());
                outcome.reasons = vec![format!(
                    "{} deleted by a retention run that was cut short (event {}), read back now",
                    if gone.len() == 1 { "1 image".to_owned() } else { format!("{} images", gone.len()) },
                    entries[0].event_id
                )];
                outcome.actions = gone
                    .iter()
                    .map(|(digest, rule)| Action {
                        action: format!("delete {digest} by rule {rule}"),
                        result: ActionResult::Done,
                        detail: None,
                    })
                    .collect();
                let mut notification = self.base.notification(
                    cx,
                    "retention",
                    &outcome,
                    "deleted",
                    outcome.reasons.clone(),
                    Severity::Info,
                );
                notification.event_id = entries[0].event_id.clone();
                notification.actions_omitted = notification.actions.len().saturating_sub(LISTED);
                notification.actions.truncate(LISTED);
                notified |=
                    self.base.report(cx, Report::Tell(Said::under(notification, per_run(&repository, &run)))).await?;
            }
            cx.ledger().clear_journal(&entries).await?;
        }
        Ok(notified)
    }
}

/// The claim of a retention run's report: one per repository and run, whichever attempt or recovery sends it.
fn per_run(repository: &str, run: &str) -> Claim {
    Claim::PerRepository { repository: repository.to_owned(), run: Some(run.to_owned()) }
}

/// A dry run's "results": each planned image as it would be deleted.
fn planned_only(plan: &RetentionPlan, images: &[Image], allowed: usize) -> Acted {
    let results = plan.delete.iter().take(allowed).map(|c| (images[c.image].digest.clone(), Deleted::Done)).collect();
    Acted { results, stopped: 0, journal: vec![], run: String::new() }
}

/// What a retention plan says, for operators.
fn plan_reasons(plan: &RetentionPlan, images: &[Image], rules: &RetentionRules) -> Vec<String> {
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
    if plan.referrers > 0 {
        reasons.push(format!("{} referrers (signatures, SBOMs, attestations) are never chosen", plan.referrers));
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
