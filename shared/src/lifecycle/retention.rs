//! Extended retention: ECR's rule semantics (priority, one rule per image, tag-match shielding, newest first)
//! applied by ecr-warden itself, with what ECR's lifecycle cannot do — protections, expiry by last pull, regex
//! selection, keep-N per tag group — and the safety checks deletion needs (index children, caps).
//!
//! Pure: the handler reads the inventory, Inspector's in-use data and index manifests, and carries out the plan.

use super::evaluate::{Image, Ranked, apply_rule, count_reached};
use super::policy::{MIN_ARCHIVE_DAYS, StorageClass};
use super::rules::{RetentionRule, RetentionRules};
use crate::pattern::Pattern;
use crate::template::TagTemplate;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

const DAY: i64 = 86_400;

/// What Amazon Inspector says about an image's use (ListCoverage `ecrImage.inUseCount` / `lastInUse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InUse {
    pub count: i64,
    pub last_in_use_at: Option<i64>,
}

/// What Amazon Inspector's coverage says about the repository's images, if it was read.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum InUseData {
    /// Not read (yet): a first plan decides whether reading it is worth it, and protects nothing by use.
    #[default]
    NotRead,
    /// By digest; images Inspector does not cover are absent.
    Read(HashMap<String, InUse>),
    /// The read failed in a way a retry does not mend (access denied, say): nobody can tell what is used.
    Unavailable(String),
}

/// What the handler observed besides the inventory.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub in_use: InUseData,
    /// Index digest → the manifests it references.
    pub index_children: HashMap<String, Vec<String>>,
}

/// Why an image a rule chose is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "protection", content = "by")]
pub enum Protection {
    /// A tag matches a protect pattern (or the class's protected tags).
    Tag(String),
    /// A tag is one of the gate's promotion tags.
    Promoted(String),
    /// Amazon Inspector reports it in use.
    InUse,
    /// ECR recorded a pull within the in-use window.
    RecentlyPulled,
    /// Nobody can say it is unused: Inspector's coverage does not list it, or could not be read.
    InUseUnknown(String),
    /// Pushed less than the minimum age ago.
    Young,
    /// Archived less than 90 days ago: ECR bills an archived image for at least 90 days, so deleting it
    /// sooner saves nothing (ECR's own lifecycle refuses to). Also when the archive time is unknown.
    ArchiveMinimum,
    /// A kept image index references it.
    IndexChild(String),
    /// A referrer (signature, SBOM, attestation) of an image that is kept.
    ReferrerOf(String),
}

impl Protection {
    pub fn describe(&self) -> String {
        match self {
            Self::Tag(tag) => format!("protected tag {tag}"),
            Self::Promoted(tag) => format!("promoted ({tag})"),
            Self::InUse => "in use (Amazon Inspector)".into(),
            Self::RecentlyPulled => "pulled recently (ECR's lastRecordedPullTime)".into(),
            Self::InUseUnknown(why) => format!("not known to be unused: {why}"),
            Self::Young => "younger than the minimum age".into(),
            Self::ArchiveMinimum => {
                format!("archived less than {MIN_ARCHIVE_DAYS} days ago (billed for {MIN_ARCHIVE_DAYS} days anyway)")
            }
            Self::IndexChild(index) => format!("referenced by kept index {index}"),
            Self::ReferrerOf(subject) => format!("a referrer (signature, SBOM, attestation) of kept image {subject}"),
        }
    }
}

/// An image the plan deletes, or one a rule chose that a protection kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// Index into the inventory.
    pub image: usize,
    pub rule_priority: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPlan {
    /// In deletion order: ascending rule priority, oldest first within a rule.
    pub delete: Vec<Chosen>,
    /// Chosen by a rule but kept, and why.
    pub spared: Vec<(Chosen, Protection)>,
    pub inventory: usize,
    /// Referrers in the inventory (signatures, SBOMs, attestations): never chosen by retention.
    pub referrers: usize,
    /// Set when the plan exceeds a safety cap: nothing may be deleted this run.
    pub over_cap: Option<String>,
}

impl RetentionPlan {
    /// Images a rule chose that are kept only because nobody can vouch they are unused (Inspector's coverage
    /// missing or unreadable): what operators must fix for retention to work.
    pub fn held_back(&self) -> impl Iterator<Item = &Chosen> {
        self.spared.iter().filter(|(_, why)| matches!(why, Protection::InUseUnknown(_))).map(|(c, _)| c)
    }

    /// Names what the plan would do to `images` (the inventory it was made from): the same images chosen by
    /// the same rules, in the same cap state, give the same fingerprint whatever the inventory's order. A
    /// standing plan (a dry run, or one a cap stops) is reported again only when this changes.
    pub fn fingerprint(&self, images: &[Image]) -> String {
        use sha2::{Digest, Sha256};
        let mut chosen: Vec<(&str, u32)> =
            self.delete.iter().map(|c| (images[c.image].digest.as_str(), c.rule_priority)).collect();
        chosen.sort_unstable();
        let mut hasher = Sha256::new();
        hasher.update(if self.over_cap.is_some() { "over-cap\n" } else { "within-caps\n" });
        for (digest, rule) in chosen {
            hasher.update(format!("{digest} {rule}\n"));
        }
        let mut held: Vec<&str> = self.held_back().map(|c| images[c.image].digest.as_str()).collect();
        held.sort_unstable();
        for digest in held {
            hasher.update(format!("held {digest}\n"));
        }
        hasher.finalize().iter().take(16).map(|byte| format!("{byte:02x}")).collect()
    }
}

/// The class's lists that protect an image by tag: its retention `protect` patterns and its tag-guard
/// `protected` patterns, and the gate's promotion templates.
#[derive(Debug, Clone, Copy)]
pub struct TagProtections<'a> {
    pub patterns: &'a [&'a Pattern],
    pub promotion: &'a [TagTemplate],
}

/// What protects an image from a rule that chose it, if anything.
pub fn protection(
    image: &Image,
    rules: &RetentionRules,
    tags: &TagProtections<'_>,
    observed: &Observed,
    now: i64,
) -> Option<Protection> {
    for tag in &image.tags {
        if tags.patterns.iter().any(|p| p.is_match(tag)) {
            return Some(Protection::Tag(tag.clone()));
        }
        if rules.protect_promoted && tags.promotion.iter().any(|t| t.matches(tag)) {
            return Some(Protection::Promoted(tag.clone()));
        }
    }
    if rules.protect_in_use
        && let Some(why) = in_use(image, rules, &observed.in_use, now)
    {
        return Some(why);
    }
    if now - image.pushed_at < i64::from(rules.min_age_days) * DAY {
        return Some(Protection::Young);
    }
    if image.storage_class == StorageClass::Archive
        && image.archived_at.is_none_or(|at| now - at < i64::from(MIN_ARCHIVE_DAYS) * DAY)
    {
        return Some(Protection::ArchiveMinimum);
    }
    None
}

/// Whether an image counts as in use: Inspector sees it used (or saw it within the window), ECR recorded a
/// pull within the window, or nobody can tell (its coverage is missing) and the class requires coverage.
fn in_use(image: &Image, rules: &RetentionRules, data: &InUseData, now: i64) -> Option<Protection> {
    let window = i64::from(rules.in_use_days) * DAY;
    if image.last_pulled_at.is_some_and(|t| now - t <= window) {
        return Some(Protection::RecentlyPulled);
    }
    let unknown = |why: String| rules.require_in_use_coverage.then_some(Protection::InUseUnknown(why));
    match data {
        InUseData::NotRead => None,
        InUseData::Read(in_use) => match in_use.get(&image.digest) {
            Some(u) if u.count > 0 || u.last_in_use_at.is_some_and(|t| now - t <= window) => Some(Protection::InUse),
            Some(_) => None,
            None => unknown("Amazon Inspector's coverage does not list it".into()),
        },
        InUseData::Unavailable(why) => unknown(format!("Amazon Inspector's coverage could not be read ({why})")),
    }
}

/// The ranking group of the image at `position` under `rule`, interning group names in `groups`.
fn group_of(
    rule: &RetentionRule,
    ranked: &Ranked<'_>,
    position: usize,
    groups: &mut HashMap<String, usize>,
) -> Option<usize> {
    let Some(regex) = &rule.group_by else { return Some(0) };
    let mut tags: Vec<&str> = ranked.tags_of(position).map(|t| ranked.tag(t)).collect();
    tags.sort_unstable();
    let name = tags.iter().find_map(|t| regex.captures(t).and_then(|c| c.get(1)).map(|m| m.as_str()))?;
    let next = groups.len();
    Some(*groups.entry(name.to_owned()).or_insert(next))
}

/// What retention deletes from `images` at `now` (epoch seconds).
pub fn plan_retention(
    rules: &RetentionRules,
    tags: &TagProtections<'_>,
    images: &[Image],
    observed: &Observed,
    now: i64,
) -> RetentionPlan {
    // Retention ranks every image by push time, whatever its storage class: deleting works the same on both.
    // Referrers (signatures, SBOMs, attestations) are not builds: no rule counts or chooses them, and ECR's own
    // lifecycle removes them after their subject.
    let ranked = Ranked::new(images, |i| i.subject.is_none(), |i| i.pushed_at);
    let protections: Vec<Option<Protection>> =
        (0..ranked.len()).map(|p| protection(ranked.image(p), rules, tags, observed, now)).collect();
    let mut taken = vec![false; ranked.len()];
    let mut claimed = Vec::new();
    let mut delete = Vec::new();
    let mut spared = Vec::new();
    for rule in &rules.rules {
        let mut groups = HashMap::new();
        claimed.clear();
        let mut spared_here = Vec::new();
        apply_rule(
            &ranked.select(&rule.tags),
            &mut taken,
            |p| match &protections[p] {
                Some(why) => {
                    spared_here.push((p, why.clone()));
                    true
                }
                None => false,
            },
            |p| group_of(rule, &ranked, p, &mut groups),
            |p, rank| count_reached(rule.count_type, rule.count, &ranked, p, rank, now),
            &mut claimed,
        );
        let chosen = |p: usize| Chosen { image: ranked.images[p].0, rule_priority: rule.priority };
        delete.extend(claimed.iter().map(|&p| chosen(p)));
        spared.extend(spared_here.into_iter().rev().map(|(p, why)| (chosen(p), why)));
    }
    spare_index_children(images, observed, &mut delete, &mut spared);
    let over_cap = cap_exceeded(rules, delete.len(), images.len());
    let referrers = images.iter().filter(|i| i.subject.is_some()).count();
    RetentionPlan { delete, spared, inventory: images.len(), referrers, over_cap }
}

/// Keeps every manifest a kept index references (and, transitively, what a kept child index references):
/// deleting one would break the multi-architecture image that is kept.
fn spare_index_children(
    images: &[Image],
    observed: &Observed,
    delete: &mut Vec<Chosen>,
    spared: &mut Vec<(Chosen, Protection)>,
) {
    loop {
        let deleted: HashSet<&str> = delete.iter().map(|c| images[c.image].digest.as_str()).collect();
        let mut needed: HashMap<&str, &str> = HashMap::new();
        for image in images.iter().filter(|i| !deleted.contains(i.digest.as_str())) {
            for child in observed.index_children.get(&image.digest).into_iter().flatten() {
                needed.entry(child.as_str()).or_insert(image.digest.as_str());
            }
        }
        let (keep, rest): (Vec<Chosen>, Vec<Chosen>) =
            delete.drain(..).partition(|c| needed.contains_key(images[c.image].digest.as_str()));
        *delete = rest;
        if keep.is_empty() {
            return;
        }
        for chosen in keep {
            let index = needed[images[chosen.image].digest.as_str()].to_owned();
            spared.push((chosen, Protection::IndexChild(index)));
        }
    }
}

fn cap_exceeded(rules: &RetentionRules, deleting: usize, inventory: usize) -> Option<String> {
    if deleting > rules.max_images {
        return Some(format!(
            "the plan deletes {deleting} images, more than max-images = {}: nothing was deleted",
            rules.max_images
        ));
    }
    if deleting > 0 && deleting as f64 > rules.max_fraction * inventory as f64 {
        return Some(format!(
            "the plan deletes {deleting} of {inventory} images, more than max-fraction = {}: nothing was deleted",
            rules.max_fraction
        ));
    }
    None
}
