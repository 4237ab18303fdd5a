//! The `lifecycle` section of a class: the native policy and extended retention with its rules.

use super::{Errors, RawLifecycle, RawPolicy, RawRetention, RawRetentionCount, RawRetentionRule, RawTagStatus};
use super::{compile_patterns, is_tag_char};
use crate::lifecycle::rules::{
    DEFAULT_IN_USE_DAYS, DEFAULT_MAX_FRACTION, DEFAULT_MAX_IMAGES, DEFAULT_MIN_AGE_DAYS, LifecycleRules, NativePolicy,
    RetentionRule, RetentionRules,
};
use crate::lifecycle::{CountType, LifecyclePolicy, TagSelection};
use crate::policy::{Class, PolicyError};
use regex::Regex;
use toml::Spanned;

/// Native rules that can select protected or promotion tags themselves: ECR's own lifecycle knows none of the
/// class's protections, so such a rule can expire a release. Warnings, not errors: lifecycle checks the live
/// registry before it puts a policy and refuses one that would expire a protected image.
pub(super) fn native_rule_warnings(raw: &RawPolicy, classes: &[Class], errors: &mut Errors<'_>) -> Vec<PolicyError> {
    for (index, class) in classes.iter().enumerate() {
        let Some(native) = class.lifecycle.as_ref().and_then(|l| l.native.as_ref()) else { continue };
        let span = raw.classes.get(index).and_then(|c| c.get_ref().lifecycle.as_ref()).map(Spanned::span);
        let key = format!("class[{index}].lifecycle.native");
        for rule in &native.policy.rules {
            if let Some(why) = crate::lifecycle::reaches_protected_tags(&rule.tags, &class.protected_tag_patterns()) {
                let message = format!(
                    "rule {} {why}: ECR's lifecycle knows no protections (lifecycle refuses to put a policy that would \
                     expire a protected image, but a class should not need that)",
                    rule.priority
                );
                errors.push(span.clone(), key.clone(), message);
            }
        }
    }
    std::mem::take(&mut errors.list)
}

pub(super) fn compile_lifecycle(raw: &RawLifecycle, key: &str, errors: &mut Errors<'_>) -> Option<LifecycleRules> {
    let before = errors.list.len();
    let native = raw.native.as_ref().and_then(|rules| {
        let document = match serde_json::to_value(rules.get_ref()) {
            Ok(rules) => serde_json::json!({ "rules": rules }),
            Err(e) => {
                errors.push(Some(rules.span()), format!("{key}.native"), format!("not expressible as JSON: {e}"));
                return None;
            }
        };
        let text = document.to_string();
        match LifecyclePolicy::parse(&text) {
            Ok(policy) => Some(NativePolicy { text, document, policy }),
            Err(problems) => {
                for problem in problems.0 {
                    errors.push(
                        Some(rules.span()),
                        format!("{key}.native"),
                        format!("ECR would reject this lifecycle policy: {problem}"),
                    );
                }
                None
            }
        }
    });
    let retention = raw.retention.as_ref().and_then(|r| compile_retention(r, &format!("{key}.retention"), errors));
    (errors.list.len() == before).then(|| LifecycleRules { apply_native: raw.apply, native, retention })
}

fn compile_retention(spanned: &Spanned<RawRetention>, key: &str, errors: &mut Errors<'_>) -> Option<RetentionRules> {
    let raw = spanned.get_ref();
    let before = errors.list.len();
    let protect = compile_patterns(&raw.protect, &format!("{key}.protect"), errors, is_tag_char);
    let mut days = |value: &Option<Spanned<i64>>, name: &str, default: u32| match value {
        None => default,
        Some(v) if (0..=36_500).contains(v.get_ref()) => *v.get_ref() as u32,
        Some(v) => {
            errors.push(Some(v.span()), format!("{key}.{name}"), "a number of days between 0 and 36500");
            default
        }
    };
    let in_use_days = days(&raw.in_use_days, "in-use-days", DEFAULT_IN_USE_DAYS);
    let min_age_days = days(&raw.protect_younger_than_days, "protect-younger-than-days", DEFAULT_MIN_AGE_DAYS);
    let max_images = match &raw.max_images {
        None => DEFAULT_MAX_IMAGES,
        Some(v) if *v.get_ref() >= 1 => *v.get_ref() as usize,
        Some(v) => {
            errors.push(Some(v.span()), format!("{key}.max-images"), "at least 1 (the cap stops larger deletions)");
            DEFAULT_MAX_IMAGES
        }
    };
    let max_fraction = match &raw.max_fraction {
        None => DEFAULT_MAX_FRACTION,
        Some(v) if *v.get_ref() > 0.0 && *v.get_ref() <= 1.0 => *v.get_ref(),
        Some(v) => {
            errors.push(
                Some(v.span()),
                format!("{key}.max-fraction"),
                "a fraction of the repository's images: above 0, at most 1",
            );
            DEFAULT_MAX_FRACTION
        }
    };
    if raw.rules.is_empty() {
        errors.push(Some(spanned.span()), format!("{key}.rule"), "retention needs at least one [[...retention.rule]]");
    }
    let mut rules = Vec::new();
    for (i, spanned) in raw.rules.iter().enumerate() {
        if let Some(rule) = compile_retention_rule(spanned, &format!("{key}.rule[{i}]"), errors) {
            rules.push((rule, spanned.span()));
        }
    }
    for (i, (rule, span)) in rules.iter().enumerate() {
        if rules[..i].iter().any(|(other, _)| other.priority == rule.priority) {
            errors.push(Some(span.clone()), format!("{key}.rule[{i}].priority"), "priorities must be unique");
        }
        let highest = rules.iter().map(|(r, _)| r.priority).max().unwrap_or(0);
        if matches!(rule.tags, TagSelection::Any) && rule.priority != highest {
            errors.push(
                Some(span.clone()),
                format!("{key}.rule[{i}].tag-status"),
                "a tag-status \"any\" rule must have the highest priority (it would shield every image from later rules)",
            );
        }
    }
    let protect = protect?;
    if errors.list.len() != before {
        return None;
    }
    let mut rules: Vec<RetentionRule> = rules.into_iter().map(|(r, _)| r).collect();
    rules.sort_by_key(|r| r.priority);
    Some(RetentionRules {
        apply: raw.apply,
        after_push: raw.after_push,
        max_images,
        max_fraction,
        protect,
        protect_promoted: raw.protect_promoted.unwrap_or(true),
        protect_in_use: raw.protect_in_use.unwrap_or(true),
        require_in_use_coverage: raw.require_in_use_coverage.unwrap_or(true),
        in_use_days,
        min_age_days,
        rules,
    })
}

fn compile_retention_rule(
    spanned: &Spanned<RawRetentionRule>,
    key: &str,
    errors: &mut Errors<'_>,
) -> Option<RetentionRule> {
    let raw = spanned.get_ref();
    let before = errors.list.len();
    let priority = match raw.priority.get_ref() {
        p if (1..=i64::from(i32::MAX)).contains(p) => *p as u32,
        _ => {
            errors.push(Some(raw.priority.span()), format!("{key}.priority"), "a positive integer");
            0
        }
    };
    let count = match raw.count.get_ref() {
        n if (1..=i64::from(i32::MAX)).contains(n) => *n as u32,
        _ => {
            errors.push(Some(raw.count.span()), format!("{key}.count"), "at least 1");
            0
        }
    };
    let tags = retention_tags(spanned, key, errors);
    let group_by = retention_group_by(spanned, key, errors);
    let count_type = match raw.count_type.get_ref() {
        RawRetentionCount::ImageCountMoreThan => CountType::ImageCountMoreThan,
        RawRetentionCount::SinceImagePushed => CountType::SinceImagePushed,
        RawRetentionCount::SinceImagePulled => CountType::SinceImagePulled,
    };
    (errors.list.len() == before).then(|| RetentionRule {
        priority,
        description: raw.description.clone(),
        tags,
        group_by,
        count_type,
        count,
    })
}

/// The tags a retention rule selects: patterns or prefixes of tagged images, untagged images, or any.
fn retention_tags(spanned: &Spanned<RawRetentionRule>, key: &str, errors: &mut Errors<'_>) -> TagSelection {
    let raw = spanned.get_ref();
    let status = *raw.tag_status.get_ref();
    let patterns = compile_patterns(&raw.tags, &format!("{key}.tags"), errors, is_tag_char);
    match (status, raw.tags.is_empty(), raw.tag_prefixes.is_empty()) {
        (RawTagStatus::Tagged, false, true) => TagSelection::Patterns(patterns.unwrap_or_default()),
        (RawTagStatus::Tagged, true, false) => {
            if raw.tag_prefixes.iter().any(|p| p.get_ref().is_empty()) {
                errors.push(Some(spanned.span()), format!("{key}.tag-prefixes"), "a prefix cannot be empty");
            }
            TagSelection::Prefixes(raw.tag_prefixes.iter().map(|p| p.get_ref().clone()).collect())
        }
        (RawTagStatus::Tagged, _, _) => {
            errors.push(
                Some(raw.tag_status.span()),
                format!("{key}.tag-status"),
                "tag-status \"tagged\" needs either `tags` (patterns) or `tag-prefixes`, not both",
            );
            TagSelection::Any
        }
        (other, true, true) => {
            if other == RawTagStatus::Any {
                TagSelection::Any
            } else {
                TagSelection::Untagged
            }
        }
        (_, _, _) => {
            errors.push(
                Some(raw.tag_status.span()),
                format!("{key}.tag-status"),
                "only tag-status \"tagged\" takes `tags` or `tag-prefixes`",
            );
            TagSelection::Any
        }
    }
}

/// A tagged rule's group-by regex: its first capture group names an image's group.
fn retention_group_by(spanned: &Spanned<RawRetentionRule>, key: &str, errors: &mut Errors<'_>) -> Option<Regex> {
    let raw = spanned.get_ref();
    let status = *raw.tag_status.get_ref();
    match &raw.group_by {
        None => None,
        Some(_) if status != RawTagStatus::Tagged => {
            errors.push(
                Some(spanned.span()),
                format!("{key}.group-by"),
                "groups are made of tags: only tagged rules take group-by",
            );
            None
        }
        Some(text) => match Regex::new(text.get_ref()) {
            Ok(regex) if regex.captures_len() >= 2 => Some(regex),
            Ok(_) => {
                errors.push(
                    Some(text.span()),
                    format!("{key}.group-by"),
                    "a regex with a capture group naming the group, e.g. \"^(pr-[0-9]+)-\"",
                );
                None
            }
            Err(e) => {
                errors.push(Some(text.span()), format!("{key}.group-by"), format!("invalid regex: {e}"));
                None
            }
        },
    }
}
