//! Checking a native ECR lifecycle policy before it is put. ECR's own lifecycle knows none of a class's
//! protections: one `tagStatus: any` or `imageCountMoreThan` mistake in a class's native rules would have ECR
//! expire its releases within a day, in every repository of the class. So the policy is first evaluated with
//! ECR's semantics on the repository's live inventory, and refused if it would expire or archive an image the
//! class protects; and `warden policy check` warns about rules that can reach protected tags at all.

use super::evaluate::{Image, decide};
use super::policy::{ActionType, LifecyclePolicy, TagSelection};
use super::retention::{Observed, Protection, TagProtections, protection};
use super::rules::RetentionRules;
use crate::pattern::Pattern;
use std::collections::HashSet;

/// An image a native policy would expire or archive although the class protects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeHit {
    /// Index into the inventory.
    pub image: usize,
    pub rule_priority: u32,
    pub action: ActionType,
    pub why: Protection,
}

/// Whether a rule's tag selection can pick protected or promotion tags by itself (the pattern overlap is
/// decided exactly where both are wildcards; a regex counts as possibly overlapping): why, if so.
pub fn reaches_protected_tags(selection: &TagSelection, protected: &[Pattern]) -> Option<String> {
    if protected.is_empty() {
        return None;
    }
    let selected: Vec<Pattern> = match selection {
        TagSelection::Untagged => return None,
        TagSelection::Any => return Some("selects images whatever their tags (tagStatus any)".into()),
        TagSelection::Patterns(patterns) => patterns.clone(),
        TagSelection::Prefixes(prefixes) => {
            prefixes.iter().filter_map(|prefix| Pattern::wildcard(&format!("{prefix}*")).ok()).collect()
        }
    };
    selected.iter().find_map(|rule| {
        let reached: Vec<&str> =
            protected.iter().filter(|p| rule.overlaps(p) != Some(false)).map(Pattern::source).collect();
        (!reached.is_empty())
            .then(|| format!("selects tags `{}` that can be protected tags ({})", rule.source(), reached.join(", ")))
    })
}

/// What `policy` would do at `now` to images the class protects: images with protected or promotion tags,
/// images in use (Inspector, or pulled within the window; an image Inspector does not cover is not held back
/// here, since untagged leftovers in repositories without Inspector are what native rules are for) and
/// referrers of images the policy keeps. Children of a kept index are not listed: ECR never expires them.
pub fn check_native(
    policy: &LifecyclePolicy,
    images: &[Image],
    rules: &RetentionRules,
    tags: &TagProtections<'_>,
    observed: &Observed,
    now: i64,
) -> Vec<NativeHit> {
    let settings = RetentionRules { min_age_days: 0, require_in_use_coverage: false, ..rules.clone() };
    let decisions = decide(policy, images, now);
    let acted: HashSet<&str> = decisions.iter().map(|d| images[d.image].digest.as_str()).collect();
    let kept_children: HashSet<&str> = images
        .iter()
        .filter(|i| !acted.contains(i.digest.as_str()))
        .flat_map(|i| observed.index_children.get(&i.digest).into_iter().flatten())
        .map(String::as_str)
        .collect();
    decisions
        .iter()
        .filter(|d| !kept_children.contains(images[d.image].digest.as_str()))
        .filter_map(|d| {
            let image = &images[d.image];
            let why = match &image.subject {
                Some(subject) if !acted.contains(subject.as_str()) => Some(Protection::ReferrerOf(subject.clone())),
                _ => protection(image, &settings, tags, observed, now)
                    .filter(|p| !matches!(p, Protection::ArchiveMinimum | Protection::Young)),
            }?;
            Some(NativeHit { image: d.image, rule_priority: d.rule_priority, action: d.action, why })
        })
        .collect()
}
