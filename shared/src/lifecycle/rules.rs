//! A class's lifecycle rules, as the policy file declares them: the native ECR lifecycle policy its
//! repositories must carry, and the extended retention ecr-warden runs itself (what ECR cannot: protection of
//! promoted and in-use images, expiry by last pull, regex selection, keep-N per tag group).

use crate::lifecycle::{CountType, LifecyclePolicy, TagSelection};
use crate::pattern::Pattern;
use regex::Regex;

/// Retention's default safety caps: a run that would delete more stops and notifies instead.
pub const DEFAULT_MAX_IMAGES: usize = 100;
pub const DEFAULT_MAX_FRACTION: f64 = 0.5;
/// An image Inspector saw in use (or ECR recorded pulled) within this many days counts as in use.
pub const DEFAULT_IN_USE_DAYS: u32 = 30;
/// Images pushed less than this many days ago are never deleted unless a class says otherwise.
pub const DEFAULT_MIN_AGE_DAYS: u32 = 1;

#[derive(Debug, Clone, Default)]
pub struct LifecycleRules {
    /// Put the native policy (after checking it against the registry); `false` (the default): report its drift.
    pub apply_native: bool,
    /// The native policy every repository of the class must carry; `None`: ecr-warden leaves it alone.
    pub native: Option<NativePolicy>,
    pub retention: Option<RetentionRules>,
}

impl LifecycleRules {
    /// What `warden policy check` says of a class's lifecycle: what is enforced and what only observed.
    pub(crate) fn summary(&self) -> String {
        let mut out = String::new();
        if let Some(native) = &self.native {
            let mode = if self.apply_native {
                "apply = true: put on creation and drift, after a check against the live registry"
            } else {
                "observed (apply = false): drift reported, nothing put"
            };
            out.push_str(&format!("  native lifecycle policy: {} rules, {mode}\n", native.policy.rules.len()));
        }
        if let Some(retention) = &self.retention {
            let in_use = match (retention.protect_in_use, retention.require_in_use_coverage) {
                (false, _) => "not protected".to_owned(),
                (true, true) => {
                    format!("protected ({} days), nothing deleted without Inspector's coverage", retention.in_use_days)
                }
                (true, false) => format!("protected ({} days), uncovered images may go", retention.in_use_days),
            };
            out.push_str(&format!(
                "  retention: {} rules{}, {}; caps {} images / {:.0}% per run; younger than {} days kept; in use: {in_use}\n",
                retention.rules.len(),
                if retention.after_push { " (sweep and after each push)" } else { " (sweep)" },
                if retention.apply { "deletes (apply = true)" } else { "dry run (apply = false)" },
                retention.max_images,
                retention.max_fraction * 100.0,
                retention.min_age_days,
            ));
        }
        out
    }
}

/// A native ECR lifecycle policy, validated with ECR's rules at policy load.
#[derive(Debug, Clone)]
pub struct NativePolicy {
    /// The document as PutLifecyclePolicy receives it (canonical JSON: keys sorted).
    pub text: String,
    /// The same document, compared semantically with what GetLifecyclePolicy returns.
    pub document: serde_json::Value,
    pub policy: LifecyclePolicy,
}

impl NativePolicy {
    /// Whether a repository's current policy text is this policy, semantically: formatting, key order, rule
    /// order, the order of `tagPrefixList` / `tagPatternList` and empty lists do not count (the forms in which
    /// a policy read back from ECR is known to differ from what was put; Terraform's AWS provider compares the
    /// same way). Text that is not JSON is drift.
    pub fn is_current(&self, current: Option<&str>) -> bool {
        current
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .is_some_and(|v| canonical(v) == canonical(self.document.clone()))
    }
}

/// A lifecycle policy document in one form per meaning (see [`NativePolicy::is_current`]).
fn canonical(mut document: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    if let Some(Value::Array(rules)) = document.get_mut("rules") {
        rules.sort_by_key(|rule| rule.get("rulePriority").and_then(Value::as_i64));
        for selection in rules.iter_mut().filter_map(|rule| rule.get_mut("selection")?.as_object_mut()) {
            for list in ["tagPrefixList", "tagPatternList"] {
                match selection.get_mut(list) {
                    Some(Value::Array(items)) if items.is_empty() => {
                        selection.remove(list);
                    }
                    Some(Value::Array(items)) => items.sort_by(|a, b| a.as_str().cmp(&b.as_str())),
                    _ => {}
                }
            }
        }
    }
    document
}

/// The retention ecr-warden runs on the scheduled sweep (and, with `after_push`, after each push).
#[derive(Debug, Clone)]
pub struct RetentionRules {
    /// `false`: plan and report only (dry run), whatever `WARDEN_DRY_RUN` says.
    pub apply: bool,
    /// Also run on the repository right after each push.
    pub after_push: bool,
    /// Safety caps per repository and run: beyond either, nothing is deleted and operators are told.
    pub max_images: usize,
    pub max_fraction: f64,
    /// Tags that protect their image.
    pub protect: Vec<Pattern>,
    /// Protect images carrying one of the gate's promotion tags.
    pub protect_promoted: bool,
    /// Protect images Amazon Inspector reports in use (in-use count > 0, or last in use within `in_use_days`)
    /// and images ECR recorded pulled within `in_use_days`.
    pub protect_in_use: bool,
    /// With `protect_in_use`: an image Inspector's coverage does not list (or a repository whose coverage cannot
    /// be read) is kept, since nobody can say it is unused. `false` lets such images go.
    pub require_in_use_coverage: bool,
    pub in_use_days: u32,
    /// Protect images pushed less than this many days ago.
    pub min_age_days: u32,
    /// In ascending priority.
    pub rules: Vec<RetentionRule>,
}

impl RetentionRules {
    /// The protections of a class that declares no retention (what a native policy is checked against): the
    /// defaults, with no rules and nothing applied.
    pub fn protections_only() -> Self {
        Self {
            apply: false,
            after_push: false,
            max_images: DEFAULT_MAX_IMAGES,
            max_fraction: DEFAULT_MAX_FRACTION,
            protect: vec![],
            protect_promoted: true,
            protect_in_use: true,
            require_in_use_coverage: true,
            in_use_days: DEFAULT_IN_USE_DAYS,
            min_age_days: DEFAULT_MIN_AGE_DAYS,
            rules: vec![],
        }
    }
}

/// One retention rule: ECR's rule language (tag status, patterns or prefixes, count type and number), where
/// patterns may be regexes, `sinceImagePulled` expires, and `group_by` ranks images per tag group.
#[derive(Debug, Clone)]
pub struct RetentionRule {
    pub priority: u32,
    pub description: Option<String>,
    pub tags: TagSelection,
    /// The first capture group of this regex, applied to an image's tags (in sorted order), names its group:
    /// counts then apply per group (keep the newest N of every branch). Images without a matching tag are not
    /// selected.
    pub group_by: Option<Regex>,
    pub count_type: CountType,
    pub count: u32,
}

impl RetentionRule {
    /// Describes the rule for notifications and outcomes.
    pub fn summary(&self) -> String {
        match &self.description {
            Some(description) => format!("rule {}: {description}", self.priority),
            None => format!("rule {}", self.priority),
        }
    }
}
