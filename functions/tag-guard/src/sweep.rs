//! tag-guard's scheduled sweep: each managed repository's tag mutability against its class, then one listing of
//! each repository's images, on which forged own-shaped tags are found and removed and the protected tags the
//! ledger does not know yet are recorded (backfill). The image pass stops before the invocation's deadline and
//! the next sweep resumes at the repository it stopped in.

use super::{FUNCTION, TagGuard, changed};
use std::collections::HashSet;
use std::time::Duration;
use warden::WardenError;
use warden::aws::Found;
use warden::aws::backfill::Backfilled;
use warden::aws::ecr::{self, RepositorySettings};
use warden::aws::lease::Lease;
use warden::aws::ledger::SweepCursor;
use warden::delivery::Report;
use warden::delivery::Said;
use warden::event::ScheduledSweep;
use warden::handler::Context;
use warden::lifecycle::Image;
use warden::notify::Severity;
use warden::outcome::{ActionResult, Outcome};
use warden::policy::{Class, Classification, OwnTagKind};
use warden::tags::{self, Unwanted, Verdict, decide_settings};

/// The image pass starts no repository (and no backfill write) with less than this left before the deadline.
pub const SWEEP_MARGIN: Duration = Duration::from_secs(30);
/// Repositories named in the sweep's outcome when it backfilled tags in more.
const NAMED: usize = 20;

/// What the image pass found and did.
#[derive(Debug, Default)]
struct ImagesSwept {
    forged: Vec<Outcome>,
    /// Forged tags removed so far (against `limits.sweep-max-tag-removals`).
    removals: usize,
    backfilled: Vec<(String, Backfilled)>,
    /// The repository the pass stopped in before the deadline; the next sweep resumes there.
    stopped_at: Option<String>,
    /// The pass resumed where the last one stopped: it did not see the repositories before.
    resumed: bool,
}

impl TagGuard {
    pub(crate) async fn on_sweep(&self, cx: &Context<'_>, sweep: &ScheduledSweep) -> Result<Outcome, WardenError> {
        let mut outcome = Outcome {
            function: FUNCTION,
            event_id: cx.event.id.clone(),
            event: cx.event.describe(),
            ..Outcome::default()
        };
        let listed = ecr::list_repositories(cx.ecr()).await?;
        let repositories: Vec<(&RepositorySettings, &Class)> = listed
            .iter()
            .filter(|r| sweep.repositories.is_empty() || sweep.repositories.contains(&r.name))
            .filter_map(|r| match self.base.policy.classify_in(cx.home.as_ref().map(|h| h.account.as_str()), &r.name) {
                Classification::Managed(class) => Some((r, class)),
                Classification::Unmanaged(_) => None,
            })
            .collect();
        let drifted = self.sweep_settings(cx, &repositories).await?;
        let swept = self.sweep_images(cx, sweep, &repositories).await?;
        let forged = &swept.forged;
        for item in drifted.iter().chain(forged) {
            let repository = item.repository.as_deref().unwrap_or_default();
            outcome.actions.extend(
                item.actions
                    .iter()
                    .map(|a| warden::outcome::Action { action: format!("{repository}: {}", a.action), ..a.clone() }),
            );
        }
        outcome.decision = match (drifted.is_empty(), forged.is_empty()) {
            (true, true) => Verdict::SettingsOk.into(),
            (_, true) => Verdict::SettingsDrift.into(),
            _ => Verdict::ForgedApproval.into(),
        };
        outcome.reasons.push(format!(
            "{} repositories listed, {} managed checked, {} drifted, {} forged promotion or quarantine tags",
            listed.len(),
            repositories.len(),
            drifted.len(),
            forged.len()
        ));
        outcome.reasons.extend(backfill_reasons(&swept));
        let partial = swept.stopped_at.is_some() || swept.resumed;
        let reports = self.sweep_reports(cx, sweep, &outcome, [&drifted, forged], partial);
        outcome.notified = self.base.report_all(cx, reports).await?;
        outcome.items = drifted.into_iter().chain(swept.forged).collect();
        Ok(outcome)
    }

    /// One summary per kind and sweep, not one message per repository. A summary of changes made is told; one
    /// of findings left standing (report-only classes, dry run, past the sweep's caps) is told when the set
    /// changes and weekly, not every sweep; a kind with nothing left is cleared, so its return is told. An image
    /// pass that stopped before the deadline, or resumed where the last one stopped, has not seen every
    /// repository's images: it clears no forged tags.
    fn sweep_reports(
        &self,
        cx: &Context<'_>,
        sweep: &ScheduledSweep,
        outcome: &Outcome,
        [drifted, forged]: [&Vec<Outcome>; 2],
        stopped: bool,
    ) -> Vec<Report> {
        let scope = sweep.repositories.join(",");
        // Whether the kind's set is complete: drift covers every repository, forged tags only a finished pass.
        let summaries = [
            ("tag-mutability-drift", Severity::Warning, drifted, true),
            ("forged-approval", Severity::Critical, forged, !stopped),
        ];
        let mut reports = vec![];
        for (kind, severity, items, complete) in summaries {
            let (pk, sk) = (
                format!("STANDING#{FUNCTION}"),
                if scope.is_empty() { kind.to_owned() } else { format!("{kind}#{scope}") },
            );
            if items.is_empty() {
                if complete {
                    reports.push(Report::Cleared { pk, sk });
                }
                continue;
            }
            let reasons: Vec<String> = items
                .iter()
                .map(|d| format!("{}: {}", d.repository.as_deref().unwrap_or_default(), d.reasons.join("; ")))
                .collect();
            let mut summary = outcome.clone();
            summary
                .actions
                .retain(|a| items.iter().any(|i| a.action.starts_with(i.repository.as_deref().unwrap_or("-"))));
            let fingerprint = warden::fingerprint::of_lines(&reasons);
            let said = Said::once(self.notify(cx, kind, &summary, reasons, severity));
            reports.push(match changed(&summary) {
                true => Report::TellChanged(said),
                false => Report::Standing { said, pk, sk, fingerprint },
            });
        }
        if drifted.is_empty() && forged.is_empty() {
            reports.push(Report::Settle);
        }
        reports
    }

    /// Each repository's tag mutability against its class: drift fixed (`untag` / `revert`) or reported. At
    /// most `limits.sweep-max-changed-repositories` are changed in one sweep; the rest are reported.
    async fn sweep_settings(
        &self,
        cx: &Context<'_>,
        repositories: &[(&RepositorySettings, &Class)],
    ) -> Result<Vec<Outcome>, WardenError> {
        let cap = self.base.policy.limits.sweep_max_changed_repositories;
        let mut drifted = Vec::new();
        let mut changed = 0;
        for (repository, class) in repositories {
            let Some(rules) = &class.tags else { continue };
            let mut decision = decide_settings(&rules.mutability, &repository.mutability, rules.remediation);
            if decision.verdict == Verdict::SettingsOk {
                continue;
            }
            if changed >= cap && !decision.steps.is_empty() {
                decision.steps.clear();
                decision
                    .reasons
                    .push(format!("this sweep changed {cap} repositories already (its limit): left for the next"));
            }
            let mut item = self.base.outcome_for(cx, class, &repository.name, None, &[]);
            item.decision = decision.verdict.into();
            item.reasons = decision.reasons.clone();
            item.actions = self.execute(cx, (&repository.name, None), &decision.steps).await?;
            changed += usize::from(item.actions.iter().any(|a| a.result == ActionResult::Done));
            drifted.push(item);
        }
        Ok(drifted)
    }

    /// One DescribeImages listing per repository whose class has protected tags, promotion or quarantine tags
    /// (1,000 images a page), shared by the forged-tag check and the backfill, from where the last sweep stopped
    /// (if it did) to the end or until the deadline is near. The cursor is written only when the pass stops or
    /// resumes, so a sweep that finishes in time costs one GetItem for it.
    async fn sweep_images(
        &self,
        cx: &Context<'_>,
        sweep: &ScheduledSweep,
        repositories: &[(&RepositorySettings, &Class)],
    ) -> Result<ImagesSwept, WardenError> {
        let scope = match sweep.repositories.is_empty() {
            true => format!("{FUNCTION}#images"),
            false => format!("{FUNCTION}#images#{}", sweep.repositories.join(",")),
        };
        let stop_at = cx.deadline.and_then(|d| d.checked_sub(SWEEP_MARGIN));
        let resume = cx.ledger().sweep_cursor(&scope).await?;
        let mut swept = ImagesSwept { resumed: resume.is_some(), ..ImagesSwept::default() };
        // In name order, whatever order ECR lists them in: the cursor is a name.
        let mut ordered: Vec<&(&RepositorySettings, &Class)> = repositories.iter().collect();
        ordered.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let after_cursor = |name: &String| resume.as_ref().is_none_or(|c| *name >= c.repository);
        for (repository, class) in ordered.into_iter().filter(|(r, _)| after_cursor(&r.name)) {
            let protects = class.tags.as_ref().is_some_and(|rules| !rules.protected.is_empty());
            if class.gate.is_none() && class.quarantine().is_none() && !protects {
                continue;
            }
            let images = match ecr::inventory_until(cx.ecr(), &repository.name, stop_at).await? {
                Found::Yes(Some(images)) => images,
                Found::Yes(None) => {
                    swept.stopped_at = Some(repository.name.clone());
                    break;
                }
                Found::NoImage | Found::NoRepository => continue,
            };
            self.sweep_forged(cx, class, &repository.name, &images, &mut swept).await?;
            let Some(rules) = class.tags.as_ref() else { continue };
            let found = tags::protected_in(rules, &images);
            if found.is_empty() {
                continue;
            }
            let done = cx.ledger().backfill_all(&repository.name, &found, (&cx.at, &cx.event.id), stop_at).await?;
            let left = done.left > 0;
            swept.backfilled.push((repository.name.clone(), done));
            if left {
                swept.stopped_at = Some(repository.name.clone());
                break;
            }
        }
        if resume.is_some() || swept.stopped_at.is_some() {
            let cursor = swept.stopped_at.clone().map(|repository| SweepCursor { repository, phase: "images".into() });
            cx.ledger().save_sweep_cursor(&scope, cursor.as_ref(), &cx.at).await?;
        }
        Ok(swept)
    }

    /// Tags shaped like ecr-warden's own that the ledger has no record of (pushed while tag-guard was down, or
    /// its event lost): each is treated like a forged push, removed where the class's remediation writes (at
    /// most `limits.sweep-max-tag-removals` per sweep, the rest left for the next) and reported. One Query
    /// where the repository holds such tags.
    async fn sweep_forged(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        images: &[Image],
        swept: &mut ImagesSwept,
    ) -> Result<(), WardenError> {
        let cap = self.base.policy.limits.sweep_max_tag_removals;
        let mut shaped: Vec<(&String, &String, OwnTagKind)> = images
            .iter()
            .flat_map(|image| {
                image.tags.iter().filter_map(move |t| class.own_tag_kind(t).map(|k| (&image.digest, t, k)))
            })
            .collect();
        if shaped.is_empty() {
            return Ok(());
        }
        // Read after the listing: a tag ecr-warden added is recorded before it exists, so it is found here.
        let recorded: HashSet<(String, String)> =
            cx.ledger().own_tags(repository).await?.into_iter().map(|r| (r.digest, r.tag)).collect();
        shaped.retain(|(digest, tag, _)| !recorded.contains(&((*digest).clone(), (*tag).clone())));
        shaped.sort();
        for (digest, tag, kind) in shaped {
            let mut item = self.base.outcome_for(cx, class, repository, Some(digest), std::slice::from_ref(tag));
            let unwanted = Unwanted::Forged { kind };
            if swept.removals >= cap {
                item.decision = Verdict::ForgedApproval.into();
                item.reasons.push(unwanted.reason(tag, digest));
                item.reasons.push(format!("this sweep removed {cap} already (its limit): left for the next"));
                swept.forged.push(item);
                continue;
            }
            let lease = self.removal_lease(cx, class, repository, digest).await?;
            let removed = self.remove_forged(cx, class, &mut item, (digest, tag), &unwanted, lease.as_ref()).await;
            self.base.release(lease).await;
            if removed? {
                swept.removals += usize::from(!item.actions.is_empty());
                swept.forged.push(item);
            }
        }
        Ok(())
    }
    /// The sweep's removal of one forged tag, decided on a fresh read under the image's lease: `false` when
    /// there is nothing to report (gone, moved, or ecr-warden's own after all).
    async fn remove_forged(
        &self,
        cx: &Context<'_>,
        class: &Class,
        item: &mut Outcome,
        (digest, tag): (&str, &str),
        unwanted: &Unwanted,
        lease: Option<&Lease>,
    ) -> Result<bool, WardenError> {
        let repository = item.repository.clone().unwrap_or_default();
        let decision = match self.unwanted_decision(cx, class, &repository, digest, tag, unwanted).await? {
            Ok((decision, _)) => decision,
            Err(_) => return Ok(false),
        };
        if decision.verdict != Verdict::ForgedApproval {
            return Ok(false);
        }
        item.decision = decision.verdict.into();
        item.reasons = decision.reasons.clone();
        item.actions = self.execute(cx, (&repository, lease), &decision.steps).await?;
        Ok(true)
    }

    /// The lease on an image whose tag is to be removed, taken before its tags are re-read; `None` when the
    /// class only reports (or in a dry run): nothing is removed, nothing to serialise.
    pub(crate) async fn removal_lease(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Lease>, WardenError> {
        let writes = class.tags.as_ref().is_some_and(|rules| rules.remediation.writes());
        if !writes || self.base.config.dry_run {
            return Ok(None);
        }
        self.base.lease(cx, repository, digest).await.map(Some)
    }
}

/// What the backfill did, for the sweep's outcome: how many protected tags it recorded in which repositories,
/// and where it stopped if the deadline came first.
fn backfill_reasons(swept: &ImagesSwept) -> Vec<String> {
    let mut reasons = vec![];
    let recorded: usize = swept.backfilled.iter().map(|(_, b)| b.recorded.len()).sum();
    let protected: usize = swept.backfilled.iter().map(|(_, b)| b.protected).sum();
    if recorded > 0 {
        let mut names: Vec<&str> =
            swept.backfilled.iter().filter(|(_, b)| !b.recorded.is_empty()).map(|(r, _)| r.as_str()).collect();
        let more = names.len().saturating_sub(NAMED);
        names.truncate(NAMED);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        reasons.push(format!(
            "backfill: {recorded} of {protected} protected tags were unknown to the ledger and are recorded now ({}{more})",
            names.join(", ")
        ));
    }
    if let Some(at) = &swept.stopped_at {
        reasons.push(format!("stopped before the deadline in {at}: the next sweep resumes there"));
    }
    reasons
}
