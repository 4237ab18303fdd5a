//! The ECR lifecycle policy document (the JSON users give PutLifecyclePolicy) and ECR's validation rules.

use crate::pattern::Pattern;
use serde::Deserialize;
use std::fmt;

/// ECR's quota: rules per policy.
pub const MAX_RULES: usize = 50;
/// ECR's quota: policy text length.
pub const MAX_POLICY_CHARS: usize = 30_720;
/// Archived images cannot be expired by lifecycle before this many days in archive.
pub const MIN_ARCHIVE_DAYS: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageClass {
    #[default]
    Standard,
    Archive,
}

impl StorageClass {
    /// The spelling of API outputs (`STANDARD`, `ARCHIVE`).
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Standard => "STANDARD",
            Self::Archive => "ARCHIVE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CountType {
    ImageCountMoreThan,
    SinceImagePushed,
    SinceImagePulled,
    SinceImageTransitioned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    Expire,
    Transition,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    rule_priority: Option<i64>,
    description: Option<String>,
    selection: Option<RawSelection>,
    action: Option<RawAction>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSelection {
    tag_status: Option<TagStatus>,
    tag_pattern_list: Option<Vec<String>>,
    tag_prefix_list: Option<Vec<String>>,
    storage_class: Option<StorageClass>,
    count_type: Option<CountType>,
    count_unit: Option<String>,
    count_number: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAction {
    #[serde(rename = "type")]
    action_type: Option<ActionType>,
    target_storage_class: Option<StorageClass>,
}

/// How a rule picks images by tag.
#[derive(Debug, Clone)]
pub enum TagSelection {
    Any,
    Untagged,
    /// Every entry must be satisfied by some tag of the image.
    Prefixes(Vec<String>),
    Patterns(Vec<Pattern>),
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub priority: u32,
    pub description: Option<String>,
    pub tags: TagSelection,
    pub storage_class: StorageClass,
    pub count_type: CountType,
    pub count: u32,
    pub action: ActionType,
}

/// A validated lifecycle policy, rules in ascending priority.
#[derive(Debug, Clone)]
pub struct LifecyclePolicy {
    pub rules: Vec<Rule>,
}

/// Why ECR would reject a policy: the rule (by priority) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LifecycleError {
    /// `None`: the policy as a whole.
    pub rule_priority: Option<i64>,
    pub message: String,
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule_priority {
            Some(priority) => write!(f, "rule {priority}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LifecycleErrors(pub Vec<LifecycleError>);

impl fmt::Display for LifecycleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl LifecyclePolicy {
    /// Parses and validates policy text with ECR's rules.
    pub fn parse(text: &str) -> Result<Self, LifecycleErrors> {
        let whole = |message: String| LifecycleErrors(vec![LifecycleError { rule_priority: None, message }]);
        if text.chars().count() > MAX_POLICY_CHARS {
            return Err(whole(format!(
                "the policy has {} characters; ECR accepts at most {MAX_POLICY_CHARS}",
                text.chars().count()
            )));
        }
        let raw: RawPolicy = serde_json::from_str(text).map_err(|e| whole(format!("not a lifecycle policy: {e}")))?;
        let raw_rules = raw.rules.ok_or_else(|| whole("missing `rules`".into()))?;
        let mut errors = Vec::new();
        if raw_rules.is_empty() {
            errors.push(LifecycleError { rule_priority: None, message: "a policy needs at least one rule".into() });
        }
        if raw_rules.len() > MAX_RULES {
            errors.push(LifecycleError {
                rule_priority: None,
                message: format!("{} rules; ECR allows at most {MAX_RULES}", raw_rules.len()),
            });
        }
        let mut rules = Vec::new();
        for (index, raw_rule) in raw_rules.iter().enumerate() {
            match validate_rule(index, raw_rule) {
                Ok(rule) => rules.push(rule),
                Err(mut problems) => errors.append(&mut problems),
            }
        }
        check_across_rules(&rules, &mut errors);
        if errors.is_empty() {
            rules.sort_by_key(|r| r.priority);
            Ok(Self { rules })
        } else {
            Err(LifecycleErrors(errors))
        }
    }
}

fn validate_rule(index: usize, raw: &RawRule) -> Result<Rule, Vec<LifecycleError>> {
    let id = raw.rule_priority;
    let mut errors = Vec::new();
    let mut fail = |message: String| errors.push(LifecycleError { rule_priority: id, message });
    let priority = match raw.rule_priority {
        Some(p) if (1..=i64::from(i32::MAX)).contains(&p) => p as u32,
        Some(p) => {
            fail(format!("rulePriority {p} must be a positive integer"));
            0
        }
        None => {
            fail(format!("rule #{} has no rulePriority", index + 1));
            0
        }
    };
    let (Some(selection), Some(action)) = (&raw.selection, &raw.action) else {
        fail("a rule needs `selection` and `action`".into());
        return Err(errors);
    };
    let Some(tag_status) = selection.tag_status else {
        fail("selection.tagStatus is required (tagged, untagged or any)".into());
        return Err(errors);
    };
    let Some(count_type) = selection.count_type else {
        fail("selection.countType is required".into());
        return Err(errors);
    };
    let tags = tag_selection(tag_status, selection, &mut fail);
    let count = count_of(selection, count_type, &mut fail);
    let storage_class = storage_class_of(count_type, selection.storage_class, &mut fail);
    let Some(action_type) = action.action_type else {
        fail("action.type is required (expire or transition)".into());
        return Err(errors);
    };
    check_action(action_type, action.target_storage_class, (count_type, count), &mut fail);
    if errors.is_empty() {
        Ok(Rule {
            priority,
            description: raw.description.clone(),
            tags,
            storage_class,
            count_type,
            count,
            action: action_type,
        })
    } else {
        Err(errors)
    }
}

/// The tags a rule selects, from its tagStatus and pattern or prefix list.
fn tag_selection(tag_status: TagStatus, selection: &RawSelection, fail: &mut impl FnMut(String)) -> TagSelection {
    match (tag_status, &selection.tag_pattern_list, &selection.tag_prefix_list) {
        (TagStatus::Tagged, Some(_), Some(_)) => {
            fail("tagPatternList and tagPrefixList cannot both be given".into());
            TagSelection::Any
        }
        (TagStatus::Tagged, None, None) => {
            fail("tagStatus tagged needs a tagPatternList or a tagPrefixList".into());
            TagSelection::Any
        }
        (TagStatus::Tagged, Some(patterns), None) => {
            if patterns.is_empty() {
                fail("tagPatternList is empty".into());
            }
            let mut compiled = Vec::new();
            for pattern in patterns {
                if pattern.matches('*').count() > 4 {
                    fail(format!("`{pattern}` has more than four wildcards"));
                }
                match Pattern::wildcard(pattern) {
                    Ok(p) => compiled.push(p),
                    Err(e) => fail(format!("`{pattern}`: {e}")),
                }
            }
            TagSelection::Patterns(compiled)
        }
        (TagStatus::Tagged, None, Some(prefixes)) => {
            if prefixes.is_empty() || prefixes.iter().any(String::is_empty) {
                fail("tagPrefixList is empty or has an empty prefix".into());
            }
            TagSelection::Prefixes(prefixes.clone())
        }
        (status, patterns, prefixes) => {
            if patterns.is_some() || prefixes.is_some() {
                fail(format!(
                    "tagStatus {} takes no tagPatternList or tagPrefixList",
                    if status == TagStatus::Any { "any" } else { "untagged" }
                ));
            }
            if status == TagStatus::Any { TagSelection::Any } else { TagSelection::Untagged }
        }
    }
}

/// The rule's count, with its unit checked against the count type.
fn count_of(selection: &RawSelection, count_type: CountType, fail: &mut impl FnMut(String)) -> u32 {
    let since = count_type != CountType::ImageCountMoreThan;
    match (&selection.count_unit, since) {
        (Some(unit), true) if unit != "days" => fail(format!("countUnit `{unit}`: only days")),
        (None, true) => fail("countUnit days is required with this countType".into()),
        (Some(_), false) => fail("countUnit is not allowed with imageCountMoreThan".into()),
        _ => {}
    }
    match selection.count_number {
        Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => n as u32,
        Some(n) => {
            fail(format!("countNumber {n} must be at least 1"));
            1
        }
        None => {
            fail("countNumber is required".into());
            1
        }
    }
}

/// The storage class a rule looks at: archive only with sinceImageTransitioned, and always with it.
fn storage_class_of(count_type: CountType, given: Option<StorageClass>, fail: &mut impl FnMut(String)) -> StorageClass {
    match (count_type, given) {
        (CountType::SinceImageTransitioned, Some(StorageClass::Archive)) => StorageClass::Archive,
        (CountType::SinceImageTransitioned, _) => {
            fail("sinceImageTransitioned needs storageClass archive".into());
            StorageClass::Archive
        }
        (_, Some(StorageClass::Archive)) => {
            fail("storageClass archive only goes with sinceImageTransitioned".into());
            StorageClass::Standard
        }
        _ => StorageClass::Standard,
    }
}

/// ECR's action rules: what each action takes, and which count types may expire or transition.
fn check_action(
    action_type: ActionType,
    target: Option<StorageClass>,
    (count_type, count): (CountType, u32),
    fail: &mut impl FnMut(String),
) {
    match (action_type, target) {
        (ActionType::Transition, Some(StorageClass::Archive)) => {}
        (ActionType::Transition, _) => fail("a transition needs targetStorageClass archive".into()),
        (ActionType::Expire, Some(_)) => fail("expire takes no targetStorageClass".into()),
        (ActionType::Expire, None) => {}
    }
    if count_type == CountType::SinceImagePulled && action_type != ActionType::Transition {
        fail("sinceImagePulled can only transition images (it cannot expire them)".into());
    }
    if count_type == CountType::SinceImageTransitioned {
        if action_type != ActionType::Expire {
            fail("sinceImageTransitioned can only expire images".into());
        }
        if count < MIN_ARCHIVE_DAYS {
            fail(format!("archived images must stay {MIN_ARCHIVE_DAYS} days: countNumber {count} is too small"));
        }
    }
}

/// Rules ECR checks across rules: unique priorities, `any` last in its storage class, one untagged rule per
/// storage class, no repeated prefix within a storage class.
fn check_across_rules(rules: &[Rule], errors: &mut Vec<LifecycleError>) {
    let mut seen = std::collections::HashSet::new();
    for rule in rules {
        if !seen.insert(rule.priority) {
            errors.push(LifecycleError {
                rule_priority: Some(i64::from(rule.priority)),
                message: "rulePriority is not unique".into(),
            });
        }
    }
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let in_class: Vec<&Rule> = rules.iter().filter(|r| r.storage_class == class).collect();
        let highest = in_class.iter().map(|r| r.priority).max().unwrap_or(0);
        for rule in &in_class {
            if matches!(rule.tags, TagSelection::Any) && rule.priority != highest {
                errors.push(LifecycleError {
                    rule_priority: Some(i64::from(rule.priority)),
                    message: "a tagStatus any rule must have the highest rulePriority of its storage class".into(),
                });
            }
        }
        let untagged: Vec<&&Rule> = in_class.iter().filter(|r| matches!(r.tags, TagSelection::Untagged)).collect();
        for rule in untagged.iter().skip(1) {
            errors.push(LifecycleError {
                rule_priority: Some(i64::from(rule.priority)),
                message: "only one rule per storage class may select untagged images".into(),
            });
        }
        let mut prefixes: Vec<(&str, u32)> = Vec::new();
        for rule in &in_class {
            if let TagSelection::Prefixes(list) = &rule.tags {
                for prefix in list {
                    if let Some((_, other)) = prefixes.iter().find(|(p, _)| p == prefix) {
                        errors.push(LifecycleError {
                            rule_priority: Some(i64::from(rule.priority)),
                            message: format!(
                                "prefix `{prefix}` is already used by rule {other} of the same storage class"
                            ),
                        });
                    }
                    prefixes.push((prefix, rule.priority));
                }
            }
        }
    }
}
