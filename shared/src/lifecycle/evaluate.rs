//! Evaluating a lifecycle policy exactly as ECR does, producing what GetLifecyclePolicyPreview returns.
//!
//! All rules look at the same images; results apply in ascending priority; an image is acted on by at most one
//! rule; once an image satisfies a rule's tagging requirements no lower-priority rule acts on it (but it still
//! counts in their rankings); images are ranked newest first, so the oldest go first. Storage classes are
//! evaluated separately.

use super::policy::{ActionType, CountType, LifecyclePolicy, Rule, StorageClass, TagSelection};
use serde::Serialize;

const DAY: i64 = 86_400;

/// One image as DescribeImages reports it (times in epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
    pub storage_class: StorageClass,
    pub archived_at: Option<i64>,
    pub activated_at: Option<i64>,
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
    fn pull_time(&self) -> i64 {
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
pub struct PreviewResult {
    pub image_digest: String,
    pub image_tags: Vec<String>,
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
pub struct Preview {
    pub preview_results: Vec<PreviewResult>,
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

fn age_exceeds(now: i64, time: i64, days: u32) -> bool {
    now - time > i64::from(days) * DAY
}

/// Positions (in `ranked`, newest first) of the images `rule` would act on, ignoring other rules, given the
/// positions it selects by tag.
fn candidates(rule: &Rule, ranked: &[&Image], selected: &[usize], now: i64) -> Vec<usize> {
    let old = |time: fn(&Image) -> i64, days: u32| {
        selected.iter().copied().filter(|&p| age_exceeds(now, time(ranked[p]), days)).collect()
    };
    match rule.count_type {
        CountType::ImageCountMoreThan => selected.iter().copied().skip(rule.count as usize).collect(),
        CountType::SinceImagePushed => old(Image::rank_time, rule.count),
        CountType::SinceImagePulled => old(Image::pull_time, rule.count),
        CountType::SinceImageTransitioned => {
            old(|i| i.archived_at.unwrap_or(i.pushed_at), rule.count.max(super::policy::MIN_ARCHIVE_DAYS))
        }
    }
}

/// What the policy does to `images` at `now` (epoch seconds).
pub fn evaluate(policy: &LifecyclePolicy, images: &[Image], now: i64) -> Preview {
    let mut results = Vec::new();
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let mut ranked: Vec<(usize, &Image)> =
            images.iter().enumerate().filter(|(_, i)| i.storage_class == class).collect();
        // Newest first; ties by digest so results never depend on input order.
        ranked.sort_by(|(_, a), (_, b)| b.rank_time().cmp(&a.rank_time()).then_with(|| a.digest.cmp(&b.digest)));
        let order: Vec<&Image> = ranked.iter().map(|(_, i)| *i).collect();
        // taken[p]: already claimed or shielded by a higher-priority rule.
        let mut taken = vec![false; order.len()];
        for rule in policy.rules.iter().filter(|r| r.storage_class == class) {
            let selected: Vec<usize> = (0..order.len()).filter(|&p| selects(&rule.tags, &order[p].tags)).collect();
            let claimed: Vec<&Image> =
                candidates(rule, &order, &selected, now).into_iter().filter(|&p| !taken[p]).map(|p| order[p]).collect();
            // Everything this rule selected by tag is shielded from lower-priority rules.
            for &p in &selected {
                taken[p] = true;
            }
            // Oldest first, as ECR acts.
            for image in claimed.into_iter().rev() {
                results.push(PreviewResult {
                    image_digest: image.digest.clone(),
                    image_tags: image.tags.clone(),
                    image_pushed_at: image.pushed_at,
                    action: match rule.action {
                        ActionType::Expire => PreviewAction { action_type: "EXPIRE", target_storage_class: None },
                        ActionType::Transition => PreviewAction {
                            action_type: "TRANSITION",
                            target_storage_class: Some(StorageClass::Archive.api_name()),
                        },
                    },
                    applied_rule_priority: rule.priority,
                    storage_class: class.api_name(),
                });
            }
        }
    }
    let expiring = results.iter().filter(|r| r.action.action_type == "EXPIRE").count();
    let transitioning = results.iter().filter(|r| r.action.action_type == "TRANSITION").count();
    let transitioning_image_total_counts = if transitioning > 0 {
        vec![TransitionCount {
            target_storage_class: StorageClass::Archive.api_name(),
            image_total_count: transitioning,
        }]
    } else {
        vec![]
    };
    Preview {
        preview_results: results,
        summary: PreviewSummary { expiring_image_total_count: expiring, transitioning_image_total_counts },
    }
}
