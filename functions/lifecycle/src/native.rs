//! The native ECR lifecycle policy a class's repositories must carry. Nothing is put unless the class says
//! `apply = true` (otherwise the drift is reported) and the function is not in dry run; and before anything is
//! put, the policy is evaluated with ECR's semantics on the repository's live inventory: a policy that would
//! expire or archive an image the class protects (protected or promotion tags, in use, a referrer of a kept
//! image) is refused, naming the images and the rules.

use super::Lifecycle;
use warden::WardenError;
use warden::aws::{Found, ecr, retention};
use warden::handler::Context;
use warden::lifecycle::{Image, InUseData, Observed, TagProtections, check_native, decide};
use warden::outcome::{Action, ActionResult};
use warden::pattern::Pattern;
use warden::policy::{Class, NativePolicy, RetentionRules};

/// What making a repository carry its class's native policy came to.
pub(crate) enum Baseline {
    /// The repository is gone.
    Gone,
    /// It already carries the policy.
    Current,
    /// It does not, and the class does not say `apply`: reported, not put.
    Drift(Action),
    /// Set or replaced (or would be, in a dry run).
    Changed(Action),
    /// Not put: the policy would expire or archive what the class protects (each line names an image).
    Refused(Vec<String>),
    /// The put failed past the SDK's retries, perhaps after it landed (a lost answer): the invocation fails.
    Interrupted(Action, WardenError),
}

/// A repository's images and what was observed about them, read once per sweep: the native check and
/// retention share it.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub images: Vec<Image>,
    pub observed: Observed,
}

impl Lifecycle {
    /// Makes a repository carry `native`, if the class says so and the registry allows it; with the inventory
    /// when checking the policy read it (retention then reads it no more).
    pub(crate) async fn baseline(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        (native, apply): (&NativePolicy, bool),
    ) -> Result<(Baseline, Option<Inventory>), WardenError> {
        let mut inventory = None;
        let baseline = self.baseline_reading(cx, class, repository, (native, apply), &mut inventory).await?;
        Ok((baseline, inventory))
    }

    async fn baseline_reading(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        (native, apply): (&NativePolicy, bool),
        inventory: &mut Option<Inventory>,
    ) -> Result<Baseline, WardenError> {
        let current = match retention::current_policy(cx.ecr(), repository).await? {
            Found::Yes(current) => current,
            _ => return Ok(Baseline::Gone),
        };
        if native.is_current(current.as_deref()) {
            return Ok(Baseline::Current);
        }
        let what = if current.is_some() { "replace the drifted lifecycle policy" } else { "set the lifecycle policy" };
        let action =
            |result, detail: Option<&str>| Action { action: what.into(), result, detail: detail.map(str::to_owned) };
        if !apply {
            let why = "the class does not set `apply = true`: reported, not put";
            return Ok(Baseline::Drift(action(ActionResult::DryRun, Some(why))));
        }
        if self.base.config.dry_run {
            return Ok(Baseline::Changed(action(ActionResult::DryRun, None)));
        }
        match self.refusals(cx, class, repository, native).await? {
            None => return Ok(Baseline::Gone),
            Some((refusals, _)) if !refusals.is_empty() => return Ok(Baseline::Refused(refusals)),
            Some((_, read)) => *inventory = Some(read),
        }
        // Noted first: a retry finding the policy in place knows this event put it (see `journal`).
        cx.ledger().note_policy_intent(&cx.event.id, repository, chrono::Utc::now().timestamp()).await?;
        match retention::put_policy(cx.ecr(), repository, &native.text).await {
            Ok(true) => Ok(Baseline::Changed(action(ActionResult::Done, None))),
            Ok(false) => Ok(Baseline::Changed(action(ActionResult::Gone, None))),
            // The put may have landed with its answer lost: reported as done if the retry finds it in place.
            Err(error) if error.is_retryable() => Ok(Baseline::Interrupted(action(ActionResult::Done, None), error)),
            Err(error) => Err(error),
        }
    }

    /// What the policy would do to images the class protects, evaluated on the live inventory (DescribeImages);
    /// Inspector's coverage and the index manifests are read only when the policy acts on anything. `None`:
    /// the repository is gone.
    async fn refusals(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        native: &NativePolicy,
    ) -> Result<Option<(Vec<String>, Inventory)>, WardenError> {
        let ecr = cx.ecr();
        let Found::Yes(images) = ecr::lifecycle_inventory(ecr, repository).await? else { return Ok(None) };
        let now = chrono::Utc::now().timestamp();
        if decide(&native.policy, &images, now).is_empty() {
            return Ok(Some((vec![], Inventory { images, observed: Observed::default() })));
        }
        let rules =
            class.lifecycle.as_ref().and_then(|l| l.retention.clone()).unwrap_or_else(RetentionRules::protections_only);
        let mut observed = Observed::default();
        if rules.protect_in_use {
            observed.in_use = retention::images_in_use(cx.inspector()?, repository).await?;
        }
        let indexes: Vec<String> = images.iter().filter(|i| i.is_index()).map(|i| i.digest.clone()).collect();
        if !indexes.is_empty() {
            match retention::index_children(ecr, repository, &indexes).await? {
                Found::Yes(children) => observed.index_children = children,
                _ => return Ok(None),
            }
        }
        if let InUseData::Unavailable(why) = &observed.in_use {
            tracing::warn!(repository, %why, "Inspector coverage unreadable: in-use images cannot be told apart");
        }
        let patterns: Vec<&Pattern> =
            rules.protect.iter().chain(class.tags.iter().flat_map(|t| t.protected.iter())).collect();
        let promotion = class.gate.as_ref().map(|g| g.promote.as_slice()).unwrap_or_default();
        let tags = TagProtections { patterns: &patterns, promotion };
        let hits = check_native(&native.policy, &images, &rules, &tags, &observed, now);
        let refusals = hits
            .iter()
            .map(|hit| {
                let image = &images[hit.image];
                let tags = if image.tags.is_empty() { "untagged".to_owned() } else { image.tags.join(", ") };
                format!(
                    "rule {} would {} {} ({tags}): {}",
                    hit.rule_priority,
                    if hit.action == warden::lifecycle::ActionType::Expire { "expire" } else { "archive" },
                    image.digest,
                    hit.why.describe()
                )
            })
            .collect();
        Ok(Some((refusals, Inventory { images, observed })))
    }
}
