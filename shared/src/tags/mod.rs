//! tag-guard's decisions. Pure: (event facts, class rules, observed state) → [`Decision`]. The handler
//! observes, calls one of these, and carries out the decision's steps; `warden` prints them for a dry run.

use crate::policy::{MutabilitySetting, OwnTagKind, Remediation, TagRules};
use crate::template::TagTemplate;
use serde::Serialize;

/// What a decision concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The tag follows the class's conventions.
    Conforming,
    /// Nothing to check (digest-only push, class without tag rules, ecr-warden's own quarantine tag).
    Recorded,
    /// The event is stale or already handled; nothing to do.
    Skipped,
    /// The tag is not allowed in this class.
    NotAllowed,
    /// A protected tag now points at a different image.
    ProtectedTagMoved,
    /// A protected tag moved while the image the ledger recorded for it no longer exists: nothing to move it
    /// back to; the ledger follows the push (reported once).
    ProtectedTagOrphaned,
    /// A tag that may move did.
    TagMoved,
    /// The repository's tag-mutability setting differs from its class.
    SettingsDrift,
    /// The repository's setting matches its class.
    SettingsOk,
    /// A promotion or quarantine tag ecr-warden did not add (the ledger holds no record of it).
    ForgedApproval,
}

impl Verdict {
    /// The verdict's word in outcomes, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Conforming => "conforming",
            Verdict::Recorded => "recorded",
            Verdict::Skipped => "skipped",
            Verdict::NotAllowed => "not-allowed",
            Verdict::ProtectedTagMoved => "protected-tag-moved",
            Verdict::ProtectedTagOrphaned => "protected-tag-orphaned",
            Verdict::TagMoved => "tag-moved",
            Verdict::SettingsDrift => "settings-drift",
            Verdict::SettingsOk => "settings-ok",
            Verdict::ForgedApproval => "forged-approval",
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One change to make in ECR. Each is safe to repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Add `tag` to the image `digest` (BatchGetImage + PutImage).
    AddTag { tag: String, digest: String },
    /// Add the quarantine tag `tag` to the image `digest`, recording it in the ledger first as ecr-warden's own.
    Quarantine { tag: String, digest: String },
    /// Remove `tag` from the image `digest` (BatchDeleteImage naming both, so a tag that moved meanwhile is
    /// left alone); the image keeps another tag.
    RemoveTag { tag: String, digest: String },
    /// Point `tag` back at `digest` (BatchGetImage + PutImage).
    PointTag { tag: String, digest: String },
    /// Set the repository's tag mutability (PutImageTagMutability).
    SetMutability { setting: MutabilitySetting },
}

/// A decision: the verdict, why, what to change, and whether operators hear about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub steps: Vec<Step>,
    pub notify: bool,
}

impl Decision {
    fn new(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self { verdict, reasons: vec![reason.into()], steps: vec![], notify: false }
    }

    fn notifying(mut self) -> Self {
        self.notify = true;
        self
    }

    fn with_steps(mut self, steps: Vec<Step>) -> Self {
        self.steps = steps;
        self
    }

    fn because(mut self, reason: impl Into<String>) -> Self {
        self.reasons.push(reason.into());
        self
    }
}

/// The first look at a pushed tag: no state needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushCheck {
    /// Shaped like a quarantine or promotion tag ecr-warden itself adds: its own only if the ledger says so.
    OwnTag(OwnTagKind),
    Conforming {
        protected: bool,
    },
    NotAllowed {
        reason: String,
    },
}

pub fn check_push(rules: &TagRules, tag: &str) -> PushCheck {
    if let Some(kind) = rules.own_tag_kind(tag) {
        return PushCheck::OwnTag(kind);
    }
    if rules.is_allowed(tag) {
        return PushCheck::Conforming { protected: rules.is_protected(tag) };
    }
    let allowed: Vec<&str> = rules.allowed.iter().map(|p| p.source()).collect();
    PushCheck::NotAllowed {
        reason: format!("tag `{tag}` matches none of the allowed patterns: {}", allowed.join(", ")),
    }
}

/// The image a tag points at right now (DescribeImages by tag): its digest and all its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageState {
    pub digest: String,
    pub tags: Vec<String>,
}

/// Why a tag must not stay on an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unwanted {
    /// The class's allowed patterns do not match it.
    NotAllowed { reason: String },
    /// Shaped like ecr-warden's own tag, but the ledger holds no record that ecr-warden added it.
    Forged { kind: OwnTagKind },
}

/// What to do about a tag that is not allowed. `current` is the image the tag points at now (`None`: the tag
/// no longer exists).
pub fn remedy_not_allowed(
    rules: &TagRules,
    tag: &str,
    pushed_digest: &str,
    reason: &str,
    current: Option<&ImageState>,
) -> Decision {
    let unwanted = Unwanted::NotAllowed { reason: reason.to_owned() };
    remedy_unwanted(&unwanted, Some(rules.remediation), rules.quarantine.as_ref(), tag, pushed_digest, current)
}

/// What to do about a tag that must not stay: removed (naming its digest) where the class's remediation
/// writes, never an image's last tag without the quarantine tag in place first; otherwise reported.
/// `remediation` is `None` for a class without tag rules (report only); `current` is the image the tag points
/// at now (`None`: the tag no longer exists).
pub fn remedy_unwanted(
    unwanted: &Unwanted,
    remediation: Option<Remediation>,
    quarantine: Option<&TagTemplate>,
    tag: &str,
    pushed_digest: &str,
    current: Option<&ImageState>,
) -> Decision {
    let Some(current) = current else {
        return Decision::new(Verdict::Skipped, format!("tag `{tag}` no longer exists (already removed)"));
    };
    if current.digest != pushed_digest {
        return Decision::new(
            Verdict::Skipped,
            format!("tag `{tag}` has moved on to {} since this push; that push is checked on its own", current.digest),
        );
    }
    let verdict = match unwanted {
        Unwanted::NotAllowed { .. } => Verdict::NotAllowed,
        Unwanted::Forged { .. } => Verdict::ForgedApproval,
    };
    let decision = Decision::new(verdict, unwanted.reason(tag, pushed_digest)).notifying();
    match remediation {
        Some(Remediation::Report) => return decision.because("remediation is `report`: the tag is left in place"),
        None => return decision.because("the class declares no tag rules to remediate with: the tag is left in place"),
        Some(_) => {}
    }
    let remove = Step::RemoveTag { tag: tag.to_owned(), digest: pushed_digest.to_owned() };
    if current.tags.iter().any(|t| t != tag) {
        return decision.with_steps(vec![remove]);
    }
    // Removing an image's last tag deletes the image: keep it reachable under a quarantine tag first.
    match quarantine.map(|q| q.render(tag, pushed_digest)) {
        Some(Ok(quarantine)) if quarantine == tag => decision.because(format!(
            "`{tag}` is the image's only tag and already the tag its quarantine would use: the tag is left in place"
        )),
        Some(Ok(quarantine)) => decision
            .because(format!("`{tag}` is the image's only tag: it stays reachable as `{quarantine}`"))
            .with_steps(vec![Step::Quarantine { tag: quarantine, digest: pushed_digest.to_owned() }, remove]),
        Some(Err(why)) => decision.because(format!(
            "`{tag}` is the image's only tag and no quarantine tag can be made ({why}): the tag is left in place"
        )),
        None => decision
            .because(format!("`{tag}` is the image's only tag and quarantine is disabled: the tag is left in place")),
    }
}

impl Unwanted {
    /// Why the tag must not stay, for outcomes and notifications.
    pub fn reason(&self, tag: &str, digest: &str) -> String {
        match self {
            Self::NotAllowed { reason } => reason.clone(),
            Self::Forged { kind } => forged_reason(*kind, tag, digest),
        }
    }
}

fn forged_reason(kind: OwnTagKind, tag: &str, digest: &str) -> String {
    match kind {
        OwnTagKind::Promotion => format!(
            "`{tag}` is shaped like a promotion tag, but the ledger holds no approval of {digest} for it: a forged \
             approval, not one scan-gate earned"
        ),
        OwnTagKind::Quarantine => format!(
            "`{tag}` is shaped like a quarantine tag, but the ledger holds no record of ecr-warden quarantining \
             {digest}: pushed by someone else"
        ),
    }
}

/// A tag's recorded position in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagPointer {
    pub digest: String,
    /// When the tag started pointing there (RFC 3339, from the push event).
    pub since: String,
    /// Set when a DELETE event removed the tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

/// What recording a push in the ledger found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerObservation {
    /// First time this tag is seen.
    New,
    /// The ledger already had this digest (a replay, or the same image pushed again).
    Unchanged,
    /// The ledger had another digest from an earlier push: the tag moved.
    Moved { previous: TagPointer },
    /// The ledger has a later push than this event (delivered out of order).
    Newer { current: TagPointer },
}

/// What to do about a conforming push once the ledger has been consulted.
pub fn decide_recorded_push(
    rules: Option<&TagRules>,
    tag: &str,
    pushed: &TagPointer,
    observation: &LedgerObservation,
) -> Decision {
    let protected = rules.is_some_and(|r| r.is_protected(tag));
    match observation {
        LedgerObservation::New => Decision::new(Verdict::Conforming, format!("`{tag}` recorded at {}", pushed.digest)),
        LedgerObservation::Unchanged => {
            Decision::new(Verdict::Conforming, format!("`{tag}` already recorded at {}", pushed.digest))
        }
        LedgerObservation::Moved { previous } if protected => {
            protected_move(rules, tag, &previous.digest, &pushed.digest)
        }
        LedgerObservation::Moved { previous } => {
            Decision::new(Verdict::TagMoved, format!("`{tag}` moved from {} to {}", previous.digest, pushed.digest))
        }
        // Out of order: this older push of a protected tag means the tag moved later, to the ledger's digest.
        LedgerObservation::Newer { current } if protected && current.digest != pushed.digest => {
            protected_move(rules, tag, &pushed.digest, &current.digest)
                .because("detected from an event delivered out of order")
        }
        LedgerObservation::Newer { current } => Decision::new(
            Verdict::Skipped,
            format!("the ledger already holds a later push of `{tag}` ({} at {})", current.digest, current.since),
        ),
    }
}

fn protected_move(rules: Option<&TagRules>, tag: &str, from: &str, to: &str) -> Decision {
    let decision =
        Decision::new(Verdict::ProtectedTagMoved, format!("protected tag `{tag}` moved from {from} to {to}"))
            .notifying();
    match rules.map(|r| r.remediation) {
        Some(Remediation::Revert) => {
            decision.with_steps(vec![Step::PointTag { tag: tag.to_owned(), digest: from.to_owned() }])
        }
        Some(mode) => {
            decision.because(format!("remediation is `{}`: the move is reported, not reverted", mode.as_str()))
        }
        None => decision,
    }
}

/// Turns a decided revert into safe steps against what ECR says now. `current` is the image the tag points
/// at (`None`: the tag is gone); `restore` is the digest the tag must point at again.
pub fn plan_revert(
    rules: &TagRules,
    tag: &str,
    moved_to: &str,
    restore: &str,
    current: Option<&ImageState>,
) -> Vec<Step> {
    match current {
        // Already back (an earlier attempt or a replay), or somebody moved it elsewhere: both need a new look,
        // not a blind revert. Only the observed move itself is undone.
        Some(current) if current.digest != moved_to => vec![],
        Some(current) => {
            let mut steps = Vec::new();
            // The pushed image keeps a tag so it can still be inspected (and is not expired as untagged).
            if !current.tags.iter().any(|t| t != tag)
                && let Some(Ok(quarantine)) = rules.quarantine.as_ref().map(|q| q.render(tag, moved_to))
            {
                steps.push(Step::Quarantine { tag: quarantine, digest: moved_to.to_owned() });
            }
            steps.push(Step::PointTag { tag: tag.to_owned(), digest: restore.to_owned() });
            steps
        }
        None => vec![Step::PointTag { tag: tag.to_owned(), digest: restore.to_owned() }],
    }
}

/// Repository settings: does the observed tag mutability match the class?
pub fn decide_settings(
    desired: &MutabilitySetting,
    observed: &MutabilitySetting,
    remediation: Remediation,
) -> Decision {
    if desired == observed {
        return Decision::new(Verdict::SettingsOk, format!("tag mutability is {desired}"));
    }
    let decision =
        Decision::new(Verdict::SettingsDrift, format!("tag mutability is {observed}, class requires {desired}"))
            .notifying();
    if remediation.writes() {
        decision.with_steps(vec![Step::SetMutability { setting: desired.clone() }])
    } else {
        decision.because("remediation is `report`: the setting is left as it is")
    }
}

/// A protected tag in the registry, as a backfill would record it: the image it points at and since when (the
/// image's push time: the latest the tag can have started pointing there is unknown, the earliest is not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unrecorded {
    pub tag: String,
    pub digest: String,
    pub since: String,
}

/// The tags of `images` a backfill records: exactly those a push would record as protected (allowed, protected,
/// not ecr-warden's own shapes, which its own records govern), sorted by tag. Pure.
pub fn protected_in(rules: &TagRules, images: &[crate::lifecycle::Image]) -> Vec<Unrecorded> {
    let mut found: Vec<Unrecorded> = images
        .iter()
        .flat_map(|image| {
            let since = chrono::DateTime::from_timestamp(image.pushed_at, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            image
                .tags
                .iter()
                .filter(|tag| check_push(rules, tag) == PushCheck::Conforming { protected: true })
                .map(move |tag| Unrecorded { tag: tag.clone(), digest: image.digest.clone(), since: since.clone() })
        })
        .collect();
    found.sort_by(|a, b| a.tag.cmp(&b.tag));
    found
}

#[cfg(test)]
mod tests;
