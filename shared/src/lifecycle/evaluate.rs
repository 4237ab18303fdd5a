//! Evaluating a lifecycle policy exactly as ECR does, producing what GetLifecyclePolicyPreview returns.
//!
//! All rules look at the same images; results apply in ascending priority; an image is acted on by at most one
//! rule; once an image satisfies a rule's tagging requirements no lower-priority rule acts on it (but it still
//! counts in their rankings); images are ranked newest first, so the oldest go first. Storage classes are
//! evaluated separately.

use super::policy::{ActionType, CountType, LifecyclePolicy, StorageClass, TagSelection};
use serde::Serialize;

const DAY: i64 = 86_400;

/// One image as DescribeImages reports it (times in epoch seconds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
    pub storage_class: StorageClass,
    pub archived_at: Option<i64>,
    pub activated_at: Option<i64>,
    /// `imageSizeInBytes`, for the bytes a deletion reclaims.
    pub size_bytes: Option<i64>,
    /// `imageManifestMediaType`: image indexes reference other manifests that must outlive them.
    pub media_type: Option<String>,
    /// `subjectManifestDigest`: the image this one refers to (a signature, SBOM or attestation: an OCI referrer).
    pub subject: Option<String>,
}

/// Manifest media types of image indexes (multi-architecture images).
pub const INDEX_MEDIA_TYPES: &[&str] =
    &["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

impl Image {
    pub fn is_index(&self) -> bool {
        self.media_type.as_deref().is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
    }
}

impl Image {
    /// The time that orders images: when it entered its storage class (a restored image counts from its
    /// restore; an archived one from its archiving).
    fn rank_time(&self) -> i64 {
        match self.storage_class {
            StorageClass::Archive => self.archived_at.unwrap_or(self.pushed_at),
            StorageClass::Standard => self.activated_at.map_or(self.pushed_at, |a| a.max(self.pushed_at)),
        }
    }

    /// Last pull; never pulled: push time; restored and not pulled since: the restore.
    pub(crate) fn pull_time(&self) -> i64 {
        let base = self.activated_at.map_or(self.pushed_at, |a| a.max(self.pushed_at));
        self.last_pulled_at.map_or(base, |p| p.max(base))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewAction {
    #[serde(rename = "type")]
    pub action_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_storage_class: Option<&'static str>,
}

/// One image a policy acts on (GetLifecyclePolicyPreview's `previewResults` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewResult<'a> {
    pub image_digest: &'a str,
    pub image_tags: &'a [String],
    /// Epoch seconds, as the API's timestamps.
    pub image_pushed_at: i64,
    pub action: PreviewAction,
    pub applied_rule_priority: u32,
    pub storage_class: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionCount {
    pub target_storage_class: &'static str,
    pub image_total_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewSummary {
    pub expiring_image_total_count: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transitioning_image_total_counts: Vec<TransitionCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview<'a> {
    pub preview_results: Vec<PreviewResult<'a>>,
    pub summary: PreviewSummary,
}

/// Whether an image satisfies a rule's tagging requirements.
pub fn selects(selection: &TagSelection, tags: &[String]) -> bool {
    match selection {
        TagSelection::Any => true,
        TagSelection::Untagged => tags.is_empty(),
        TagSelection::Prefixes(prefixes) => {
            !tags.is_empty()
                && prefixes
                    .iter()
                    .all(|p| tags.iter().any(|t| t.len() >= p.len() && t.bytes().zip(p.bytes()).all(|(a, b)| a == b)))
        }
        TagSelection::Patterns(patterns) => {
            !tags.is_empty() && patterns.iter().all(|p| tags.iter().any(|t| p.is_match(t)))
        }
    }
}

pub(crate) fn age_exceeds(now: i64, time: i64, days: u32) -> bool {
    now - time > i64::from(days) * DAY
}

/// What one rule does to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index of the image in the evaluated slice.
    pub image: usize,
    pub rule_priority: u32,
    pub action: ActionType,
}

/// The images of one storage class ranked newest first, with all their tags laid out in one string. Every rule
/// scans the tags again; scattered over the heap, and visited in rank order (which is not memory order), they
/// made evaluation cache-bound beyond ~10k images. One contiguous text, written in input order, is read
/// sequentially, and lets a rule find its literal with one SIMD substring search over all tags at once.
pub(crate) struct Ranked<'a> {
    /// (index in the input, image), newest first.
    pub(crate) images: Vec<(usize, &'a Image)>,
    /// Each image's ranking time, kept beside the order: age rules read it for every selected image.
    rank_times: Vec<i64>,
    /// Every tag, in input order, each followed by a NUL (tags never contain one).
    text: String,
    /// Byte range of each tag in `text`.
    spans: Vec<(u32, u32)>,
    /// The tags of the image in slot `m` (input order) are `spans[first_tag[m]..first_tag[m + 1]]`.
    first_tag: Vec<u32>,
    /// The slot of the image at each position, and the position of the image in each slot.
    slot_at: Vec<u32>,
    position_of: Vec<u32>,
    /// The slot of each tag's image.
    owner: Vec<u32>,
    /// Positions of the images without tags, ascending.
    untagged: Vec<u32>,
}

impl<'a> Ranked<'a> {
    /// Ranks the `images` that `include` takes newest first by `time`, ties by digest so results never depend
    /// on input order.
    pub(crate) fn new(images: &'a [Image], include: impl Fn(&Image) -> bool, time: fn(&Image) -> i64) -> Self {
        let members: Vec<u32> = (0..images.len() as u32).filter(|&i| include(&images[i as usize])).collect();
        // Sort small keys: comparing through the image pointers missed the cache at every step.
        let mut keyed: Vec<(i64, u32)> =
            members.iter().enumerate().map(|(slot, &i)| (time(&images[i as usize]), slot as u32)).collect();
        keyed.sort_unstable_by(|(ta, a), (tb, b)| {
            tb.cmp(ta).then_with(|| {
                images[members[*a as usize] as usize].digest.cmp(&images[members[*b as usize] as usize].digest)
            })
        });
        let rank_times = keyed.iter().map(|(time, _)| *time).collect();
        let slot_at: Vec<u32> = keyed.iter().map(|(_, slot)| *slot).collect();
        let mut position_of = vec![0; members.len()];
        for (position, &slot) in slot_at.iter().enumerate() {
            position_of[slot as usize] = position as u32;
        }
        let ranked_images =
            slot_at.iter().map(|&slot| members[slot as usize] as usize).map(|i| (i, &images[i])).collect();
        let bytes: usize = members.iter().flat_map(|&i| &images[i as usize].tags).map(|t| t.len() + 1).sum();
        let mut text = String::with_capacity(bytes);
        let mut spans = Vec::with_capacity(members.len());
        let mut first_tag = Vec::with_capacity(members.len() + 1);
        let mut owner = Vec::with_capacity(members.len());
        let mut untagged = Vec::new();
        for (slot, &i) in members.iter().enumerate() {
            first_tag.push(spans.len() as u32);
            let tags = &images[i as usize].tags;
            if tags.is_empty() {
                untagged.push(position_of[slot]);
            }
            for tag in tags {
                let start = text.len() as u32;
                text.push_str(tag);
                spans.push((start, text.len() as u32));
                owner.push(slot as u32);
                text.push('\0');
            }
        }
        first_tag.push(spans.len() as u32);
        untagged.sort_unstable();
        Self { images: ranked_images, rank_times, text, spans, first_tag, slot_at, position_of, owner, untagged }
    }

    pub(crate) fn len(&self) -> usize {
        self.images.len()
    }

    pub(crate) fn image(&self, position: usize) -> &'a Image {
        self.images[position].1
    }

    /// Indexes (into `spans`) of the tags of the image at `position`.
    pub(crate) fn tags_of(&self, position: usize) -> std::ops::Range<usize> {
        let slot = self.slot_at[position] as usize;
        self.first_tag[slot] as usize..self.first_tag[slot + 1] as usize
    }

    pub(crate) fn tag(&self, index: usize) -> &str {
        let (start, end) = self.spans[index];
        &self.text[start as usize..end as usize]
    }

    /// The tags `accepts` takes, ascending. `literal`, when not empty, is text every accepted tag contains: only
    /// tags holding it are tested, found with one substring search over all tags.
    fn matching_tags(&self, literal: &str, accepts: impl Fn(&str) -> bool) -> Vec<u32> {
        if literal.is_empty() {
            return (0..self.spans.len() as u32).filter(|&t| accepts(self.tag(t as usize))).collect();
        }
        let mut found = Vec::new();
        let mut tag = 0;
        let mut decided_until = 0;
        for hit in memchr::memmem::find_iter(self.text.as_bytes(), literal.as_bytes()) {
            if hit < decided_until {
                continue;
            }
            // Hits are sparse: jump to the tag holding this one instead of stepping over every tag between.
            tag += self.spans[tag..].partition_point(|&(_, end)| (end as usize) <= hit);
            let (start, end) = self.spans[tag];
            if hit >= start as usize && hit + literal.len() <= end as usize {
                if accepts(self.tag(tag)) {
                    found.push(tag as u32);
                }
                decided_until = end as usize;
            }
        }
        found
    }

    /// The tags starting with `prefix` that `accepts` takes, ascending: the start of every tag compared in one
    /// sequential pass, cheaper than a substring search that would also find the prefix inside tags.
    fn tags_starting_with(&self, prefix: &str, accepts: impl Fn(&str) -> bool) -> Vec<u32> {
        let (text, prefix) = (self.text.as_bytes(), prefix.as_bytes());
        (0..self.spans.len() as u32)
            .filter(|&t| {
                let (start, end) = self.spans[t as usize];
                text[start as usize..end as usize].starts_with(prefix) && accepts(self.tag(t as usize))
            })
            .collect()
    }

    /// Positions (ascending: newest first) of the images a tag selection takes: every prefix or pattern is
    /// satisfied by some tag of the image. Costs one search per entry and work in proportion to the matches,
    /// not to the inventory.
    pub(crate) fn select(&self, selection: &TagSelection) -> Vec<u32> {
        let hits: Vec<Vec<u32>> = match selection {
            TagSelection::Any => return (0..self.len() as u32).collect(),
            TagSelection::Untagged => return self.untagged.clone(),
            TagSelection::Prefixes(prefixes) => prefixes.iter().map(|p| self.tags_starting_with(p, |_| true)).collect(),
            TagSelection::Patterns(patterns) => patterns
                .iter()
                .map(|p| match p.leading_literal() {
                    "" => self.matching_tags(p.required_literal(), |tag| p.is_match(tag)),
                    leading => self.tags_starting_with(leading, |tag| p.is_match(tag)),
                })
                .collect(),
        };
        let Some((first, others)) = hits.split_first() else { return Vec::new() };
        let mut positions: Vec<u32> =
            first.iter().map(|&t| self.position_of[self.owner[t as usize] as usize]).collect();
        positions.sort_unstable();
        positions.dedup();
        for other in others {
            let mut mask = vec![false; self.spans.len()];
            for &t in other {
                mask[t as usize] = true;
            }
            positions.retain(|&p| self.tags_of(p as usize).any(|t| mask[t]));
        }
        positions
    }
}

/// One rule's pass over the `positions` it selects (ascending: newest first), shared by ECR's rules and
/// ecr-warden's retention rules. `group(p)` is the ranking group of the image at `p` (ECR rules: one group;
/// `None`: not selected after all); `acts(p, rank)` says whether the rule's count criterion takes it, given
/// its 1-based rank in its group. Images already `taken` (claimed or shielded by a higher-priority rule) still
/// count in the ranking but are not claimed; `spared` ones are never claimed either. Everything selected
/// becomes taken. Claimed positions are appended oldest first, as ECR acts.
pub(crate) fn apply_rule(
    positions: &[u32],
    taken: &mut [bool],
    mut spared: impl FnMut(usize) -> bool,
    mut group: impl FnMut(usize) -> Option<usize>,
    acts: impl Fn(usize, u32) -> bool,
    claimed: &mut Vec<usize>,
) {
    let from = claimed.len();
    let mut ranks: Vec<u32> = Vec::new();
    for &position in positions {
        let position = position as usize;
        let Some(group) = group(position) else { continue };
        if ranks.len() <= group {
            ranks.resize(group + 1, 0);
        }
        ranks[group] += 1;
        if !taken[position] && acts(position, ranks[group]) && !spared(position) {
            claimed.push(position);
        }
        taken[position] = true;
    }
    claimed[from..].reverse();
}

/// Whether a rule's count criterion acts on the image at `position`, ranked `rank` among the images the rule
/// selects.
pub(crate) fn count_reached(
    count_type: CountType,
    count: u32,
    ranked: &Ranked<'_>,
    position: usize,
    rank: u32,
    now: i64,
) -> bool {
    match count_type {
        CountType::ImageCountMoreThan => rank > count,
        CountType::SinceImagePushed => age_exceeds(now, ranked.rank_times[position], count),
        CountType::SinceImagePulled => age_exceeds(now, ranked.image(position).pull_time(), count),
        CountType::SinceImageTransitioned => {
            let image = ranked.image(position);
            age_exceeds(now, image.archived_at.unwrap_or(image.pushed_at), count.max(super::policy::MIN_ARCHIVE_DAYS))
        }
    }
}

/// What the policy does to `images` at `now` (epoch seconds), in the order ECR acts: storage class standard
/// then archive, ascending rule priority, oldest image first.
pub fn decide(policy: &LifecyclePolicy, images: &[Image], now: i64) -> Vec<Decision> {
    let mut decisions = Vec::new();
    let mut claimed = Vec::new();
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let ranked = Ranked::new(images, |i| i.storage_class == class, Image::rank_time);
        let mut taken = vec![false; ranked.len()];
        for rule in policy.rules.iter().filter(|r| r.storage_class == class) {
            claimed.clear();
            apply_rule(
                &ranked.select(&rule.tags),
                &mut taken,
                |_| false,
                |_| Some(0),
                |p, rank| count_reached(rule.count_type, rule.count, &ranked, p, rank, now),
                &mut claimed,
            );
            decisions.extend(claimed.iter().map(|&p| Decision {
                image: ranked.images[p].0,
                rule_priority: rule.priority,
                action: rule.action,
            }));
        }
    }
    decisions
}

/// What the policy does to `images` at `now` (epoch seconds), as GetLifecyclePolicyPreview reports it.
pub fn evaluate<'a>(policy: &LifecyclePolicy, images: &'a [Image], now: i64) -> Preview<'a> {
    let decisions = decide(policy, images, now);
    let preview_results: Vec<PreviewResult> = decisions
        .iter()
        .map(|d| {
            let image = &images[d.image];
            PreviewResult {
                image_digest: &image.digest,
                image_tags: &image.tags,
                image_pushed_at: image.pushed_at,
                action: match d.action {
                    ActionType::Expire => PreviewAction { action_type: "EXPIRE", target_storage_class: None },
                    ActionType::Transition => PreviewAction {
                        action_type: "TRANSITION",
                        target_storage_class: Some(StorageClass::Archive.api_name()),
                    },
                },
                applied_rule_priority: d.rule_priority,
                storage_class: image.storage_class.api_name(),
            }
        })
        .collect();
    let expiring = decisions.iter().filter(|d| d.action == ActionType::Expire).count();
    let transitioning = decisions.len() - expiring;
    let transitioning_image_total_counts = if transitioning > 0 {
        vec![TransitionCount {
            target_storage_class: StorageClass::Archive.api_name(),
            image_total_count: transitioning,
        }]
    } else {
        vec![]
    };
    Preview {
        preview_results,
        summary: PreviewSummary { expiring_image_total_count: expiring, transitioning_image_total_counts },
    }
}
