//! The policy file as written (with source spans), and its validation into [`Policy`].

use super::gate::{AllowEntry, GateRules, OnFailure, Severity};
use super::lifecycle::{
    DEFAULT_IN_USE_DAYS, DEFAULT_MAX_FRACTION, DEFAULT_MAX_IMAGES, DEFAULT_MIN_AGE_DAYS, LifecycleRules, NativePolicy,
    RetentionRule, RetentionRules,
};
use super::tags::{EcrMutability, MutabilitySetting, ProtectionEnforcement, Remediation, TagRules, derive_mutability};
use super::{Class, Limits, NotifyRules, Policy, PolicyError, PolicyErrors, Route, UNMANAGED};
use crate::lifecycle::{CountType, LifecyclePolicy, TagSelection};
use crate::notify::{Format, Severity as NotifySeverity};
use crate::pattern::{Pattern, ecr_exclusion_filter_problem};
use crate::template::TagTemplate;
use chrono::NaiveDate;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

pub(super) const DEFAULT_QUARANTINE: &str = "quarantine-{digest12}";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    version: Spanned<u32>,
    default_class: Spanned<String>,
    #[serde(default, rename = "class")]
    classes: Vec<Spanned<RawClass>>,
    #[serde(default)]
    notify: Option<RawNotify>,
    #[serde(default)]
    limits: Option<Spanned<RawLimits>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    #[serde(default)]
    sweep_max_deleted_images: Option<Spanned<i64>>,
    #[serde(default)]
    sweep_max_changed_repositories: Option<Spanned<i64>>,
    #[serde(default)]
    sweep_max_tag_removals: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNotify {
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    replication_successes: Vec<Spanned<String>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRoute {
    topic: Spanned<String>,
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    kinds: Vec<Spanned<String>>,
    #[serde(default)]
    min_severity: Option<NotifySeverity>,
    #[serde(default)]
    classes: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawClass {
    name: Spanned<String>,
    #[serde(default)]
    repositories: Vec<Spanned<String>>,
    #[serde(default)]
    managed: Option<Spanned<bool>>,
    #[serde(default)]
    tags: Option<Spanned<RawTags>>,
    #[serde(default)]
    gate: Option<Spanned<RawGate>>,
    #[serde(default)]
    lifecycle: Option<Spanned<RawLifecycle>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLifecycle {
    /// Put the native policy (after checking it against the registry); `false`: report its drift only.
    #[serde(default)]
    apply: bool,
    /// Rules of the native ECR policy, with ECR's own (camelCase) keys.
    #[serde(default)]
    native: Option<Spanned<Vec<toml::Value>>>,
    #[serde(default)]
    retention: Option<Spanned<RawRetention>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRetention {
    #[serde(default)]
    apply: bool,
    #[serde(default)]
    after_push: bool,
    #[serde(default)]
    max_images: Option<Spanned<i64>>,
    #[serde(default)]
    max_fraction: Option<Spanned<f64>>,
    #[serde(default)]
    protect: Vec<Spanned<String>>,
    #[serde(default)]
    protect_promoted: Option<bool>,
    #[serde(default)]
    protect_in_use: Option<bool>,
    #[serde(default)]
    in_use_days: Option<Spanned<i64>>,
    #[serde(default)]
    protect_younger_than_days: Option<Spanned<i64>>,
    #[serde(default)]
    require_in_use_coverage: Option<bool>,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RawRetentionRule>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawTagStatus {
    Tagged,
    Untagged,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawRetentionCount {
    ImageCountMoreThan,
    SinceImagePushed,
    SinceImagePulled,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRetentionRule {
    priority: Spanned<i64>,
    #[serde(default)]
    description: Option<String>,
    tag_status: Spanned<RawTagStatus>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    #[serde(default)]
    tag_prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    group_by: Option<Spanned<String>>,
    count_type: Spanned<RawRetentionCount>,
    count: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGate {
    #[serde(default)]
    max: Option<Spanned<RawMax>>,
    #[serde(default)]
    fixable_only: bool,
    #[serde(default)]
    min_epss: Option<Spanned<f64>>,
    #[serde(default)]
    exploitable_only: bool,
    promote: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMax {
    critical: Option<u64>,
    high: Option<u64>,
    medium: Option<u64>,
    low: Option<u64>,
    informational: Option<u64>,
    undefined: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAllow {
    id: Spanned<String>,
    reason: Spanned<String>,
    expires: Spanned<toml::value::Datetime>,
    #[serde(default)]
    repositories: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTags {
    #[serde(default)]
    allowed: Vec<Spanned<String>>,
    #[serde(default)]
    protected: Vec<Spanned<String>>,
    #[serde(default)]
    mutable: Vec<Spanned<String>>,
    #[serde(default)]
    mutability: Option<Spanned<String>>,
    #[serde(default)]
    exclusion_filters: Option<Spanned<Vec<Spanned<String>>>>,
    remediation: Spanned<Remediation>,
    #[serde(default)]
    quarantine_tag: Option<Spanned<String>>,
}

/// Collects errors with their location.
struct Errors<'a> {
    text: &'a str,
    source: &'a str,
    list: Vec<PolicyError>,
}

impl Errors<'_> {
    fn push(&mut self, span: Option<Range<usize>>, key: impl Into<String>, message: impl Into<String>) {
        let (line, column) = span.map_or((0, 0), |span| line_column(self.text, span.start));
        self.list.push(PolicyError {
            source: self.source.to_owned(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        });
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

pub(super) fn compile(text: &str, source: &str) -> Result<Policy, PolicyErrors> {
    let mut errors = Errors { text, source, list: Vec::new() };
    let raw: RawPolicy = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            errors.push(e.span(), "", e.message().trim().to_owned());
            return Err(PolicyErrors(errors.list));
        }
    };
    if *raw.version.get_ref() != 1 {
        errors.push(Some(raw.version.span()), "version", "unsupported policy version; this ecr-warden reads version 1");
    }

    let mut classes = Vec::with_capacity(raw.classes.len());
    for (index, spanned) in raw.classes.iter().enumerate() {
        if let Some(class) = compile_class(index, spanned, &mut errors) {
            classes.push(class);
        }
    }
    check_class_names_and_shadowing(&raw, &mut errors);

    let default_name = raw.default_class.get_ref();
    let default_class = if default_name == UNMANAGED {
        None
    } else {
        let found = raw.classes.iter().position(|c| c.get_ref().name.get_ref().trim() == default_name);
        if found.is_none() {
            errors.push(
                Some(raw.default_class.span()),
                "default-class",
                format!("`{default_name}` is not a class name; name a class or use \"{UNMANAGED}\""),
            );
        }
        found
    };
    for (index, class) in raw.classes.iter().enumerate() {
        let class = class.get_ref();
        if class.repositories.is_empty() && default_class != Some(index) {
            errors.push(
                Some(class.name.span()),
                format!("class[{index}].repositories"),
                format!(
                    "class `{}` matches no repository: give it repository patterns or make it the default-class",
                    class.name.get_ref()
                ),
            );
        }
    }

    let notify = compile_notify(raw.notify.as_ref(), &raw, &mut errors);
    let limits = compile_limits(raw.limits.as_ref(), &mut errors);

    if errors.list.is_empty() {
        let warnings = native_rule_warnings(&raw, &classes, &mut Errors { text, source, list: Vec::new() });
        Ok(Policy { source: source.to_owned(), classes, default_class, notify, limits, warnings })
    } else {
        Err(PolicyErrors(errors.list))
    }
}

fn compile_limits(raw: Option<&Spanned<RawLimits>>, errors: &mut Errors<'_>) -> Limits {
    let defaults = Limits::default();
    let Some(raw) = raw.map(Spanned::get_ref) else { return defaults };
    let mut at_least_one = |value: &Option<Spanned<i64>>, name: &str, default: usize| match value {
        None => default,
        Some(v) if *v.get_ref() >= 1 => *v.get_ref() as usize,
        Some(v) => {
            errors.push(Some(v.span()), format!("limits.{name}"), "at least 1 (the cap stops a sweep, not a run)");
            default
        }
    };
    Limits {
        sweep_max_deleted_images: at_least_one(
            &raw.sweep_max_deleted_images,
            "sweep-max-deleted-images",
            defaults.sweep_max_deleted_images,
        ),
        sweep_max_changed_repositories: at_least_one(
            &raw.sweep_max_changed_repositories,
            "sweep-max-changed-repositories",
            defaults.sweep_max_changed_repositories,
        ),
        sweep_max_tag_removals: at_least_one(
            &raw.sweep_max_tag_removals,
            "sweep-max-tag-removals",
            defaults.sweep_max_tag_removals,
        ),
    }
}

/// Native rules that can select protected or promotion tags themselves: ECR's own lifecycle knows none of the
/// class's protections, so such a rule can expire a release. Warnings, not errors: lifecycle checks the live
/// registry before it puts a policy and refuses one that would expire a protected image.
fn native_rule_warnings(raw: &RawPolicy, classes: &[Class], errors: &mut Errors<'_>) -> Vec<PolicyError> {
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

fn compile_class(index: usize, spanned: &Spanned<RawClass>, errors: &mut Errors<'_>) -> Option<Class> {
    let raw = spanned.get_ref();
    let key = format!("class[{index}]");
    let name = raw.name.get_ref().trim().to_owned();
    if name.is_empty() || name == UNMANAGED {
        errors.push(Some(raw.name.span()), format!("{key}.name"), format!("`{name}` is not a usable class name"));
    }
    let repositories = compile_patterns(&raw.repositories, &format!("{key}.repositories"), errors, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/' | '*')
    });
    let managed = raw.managed.as_ref().is_none_or(|m| *m.get_ref());
    let tags = match (&raw.tags, managed) {
        (Some(tags), false) => {
            errors.push(Some(tags.span()), format!("{key}.tags"), "an unmanaged class cannot declare tag rules");
            None
        }
        (Some(tags), true) => compile_tags(tags.get_ref(), &format!("{key}.tags"), errors),
        (None, _) => None,
    };
    let gate = match (&raw.gate, managed) {
        (Some(gate), false) => {
            errors.push(Some(gate.span()), format!("{key}.gate"), "an unmanaged class cannot declare a gate");
            None
        }
        (Some(gate), true) => compile_gate(gate.get_ref(), &format!("{key}.gate"), errors),
        (None, _) => None,
    };
    let lifecycle = match (&raw.lifecycle, managed) {
        (Some(lifecycle), false) => {
            errors.push(
                Some(lifecycle.span()),
                format!("{key}.lifecycle"),
                "an unmanaged class cannot declare lifecycle rules",
            );
            None
        }
        (Some(lifecycle), true) => compile_lifecycle(lifecycle.get_ref(), &format!("{key}.lifecycle"), errors),
        (None, _) => None,
    };
    // tag-guard must recognise the tags scan-gate adds as ecr-warden's own.
    let tags = tags.map(|mut tags| {
        tags.promotion = gate.as_ref().map(|g| g.promote.clone()).unwrap_or_default();
        tags
    });
    Some(Class { name, repositories: repositories?, managed, tags, gate, lifecycle })
}

/// Parses a pattern list; wildcards may only use characters a matching name can contain.
fn compile_patterns(
    raw: &[Spanned<String>],
    key: &str,
    errors: &mut Errors<'_>,
    name_char: impl Fn(char) -> bool,
) -> Option<Vec<Pattern>> {
    let before = errors.list.len();
    let mut patterns: Vec<Pattern> = Vec::with_capacity(raw.len());
    // Index in `raw` of each kept pattern.
    let mut kept: Vec<usize> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let item_key = format!("{key}[{i}]");
        match Pattern::parse(text.get_ref()) {
            Ok(pattern) => {
                if let Some(bad) = pattern.as_wildcard().and_then(|w| w.chars().find(|c| !name_char(*c))) {
                    errors.push(
                        Some(text.span()),
                        item_key,
                        format!("`{}` can never match: names cannot contain `{bad}`", text.get_ref()),
                    );
                } else if let Some(earlier) = patterns.iter().find(|p| p.covers(&pattern) == Some(true)) {
                    errors.push(
                        Some(text.span()),
                        item_key,
                        format!(
                            "`{}` is redundant: `{}` already matches everything it matches",
                            text.get_ref(),
                            earlier.source()
                        ),
                    );
                } else {
                    // Order does not matter within a list: a broader pattern also makes earlier ones redundant.
                    for (earlier, &j) in patterns.iter().zip(&kept) {
                        if pattern.covers(earlier) == Some(true) {
                            errors.push(
                                Some(raw[j].span()),
                                format!("{key}[{j}]"),
                                format!(
                                    "`{}` is redundant: `{}` already matches everything it matches",
                                    earlier.source(),
                                    text.get_ref()
                                ),
                            );
                        }
                    }
                    patterns.push(pattern);
                    kept.push(i);
                }
            }
            Err(message) => errors.push(Some(text.span()), item_key, format!("`{}`: {message}", text.get_ref())),
        }
    }
    (errors.list.len() == before).then_some(patterns)
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*')
}

fn compile_tags(raw: &RawTags, key: &str, errors: &mut Errors<'_>) -> Option<TagRules> {
    let allowed = compile_patterns(&raw.allowed, &format!("{key}.allowed"), errors, is_tag_char);
    let protected = compile_patterns(&raw.protected, &format!("{key}.protected"), errors, is_tag_char);
    let mutable = compile_patterns(&raw.mutable, &format!("{key}.mutable"), errors, is_tag_char);
    let (allowed, protected, mutable) = (allowed?, protected?, mutable?);
    let before = errors.list.len();

    // Rules that overlap or can never apply.
    for (list, raw_list, name) in [(&protected, &raw.protected, "protected"), (&mutable, &raw.mutable, "mutable")] {
        for (i, pattern) in list.iter().enumerate() {
            if !allowed.is_empty() && allowed.iter().all(|a| a.overlaps(pattern) == Some(false)) {
                errors.push(
                    Some(raw_list[i].span()),
                    format!("{key}.{name}[{i}]"),
                    format!("`{}` can never apply: no allowed tag matches it", pattern.source()),
                );
            }
        }
    }
    for (i, m) in mutable.iter().enumerate() {
        // `protected = ["*"]` means "everything but the mutable tags"; narrower patterns must not overlap.
        if let Some(p) = protected.iter().find(|p| !p.matches_everything() && p.overlaps(m) == Some(true)) {
            errors.push(
                Some(raw.mutable[i].span()),
                format!("{key}.mutable[{i}]"),
                format!(
                    "`{}` overlaps protected `{}`: a tag cannot be both mutable and protected",
                    m.source(),
                    p.source()
                ),
            );
        }
    }

    let (mutability, enforcement) = resolve_mutability(raw, key, &protected, &mutable, errors)?;

    let quarantine = match &raw.quarantine_tag {
        Some(text) if text.get_ref().is_empty() => None,
        Some(text) => match TagTemplate::parse(text.get_ref()) {
            Ok(template) => Some(template),
            Err(message) => {
                errors.push(Some(text.span()), format!("{key}.quarantine-tag"), message);
                None
            }
        },
        None => TagTemplate::parse(DEFAULT_QUARANTINE).ok(),
    };
    (errors.list.len() == before).then_some(TagRules {
        promotion: Vec::new(),
        allowed,
        protected,
        mutable,
        mutability,
        enforcement,
        remediation: *raw.remediation.get_ref(),
        quarantine,
    })
}

fn compile_lifecycle(raw: &RawLifecycle, key: &str, errors: &mut Errors<'_>) -> Option<LifecycleRules> {
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
    let patterns = compile_patterns(&raw.tags, &format!("{key}.tags"), errors, is_tag_char);
    let status = *raw.tag_status.get_ref();
    let tags = match (status, raw.tags.is_empty(), raw.tag_prefixes.is_empty()) {
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
    };
    let group_by = match &raw.group_by {
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
    };
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

fn compile_notify(raw: Option<&RawNotify>, policy: &RawPolicy, errors: &mut Errors<'_>) -> NotifyRules {
    let Some(raw) = raw else { return NotifyRules::default() };
    let replication_successes =
        compile_patterns(&raw.replication_successes, "notify.replication-successes", errors, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/' | '*')
        })
        .unwrap_or_default();
    let mut routes = Vec::new();
    for (i, route) in raw.routes.iter().enumerate() {
        let r = route.get_ref();
        let key = format!("notify.route[{i}]");
        let topic = r.topic.get_ref().trim();
        if topic.is_empty() || !topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            errors.push(
                Some(r.topic.span()),
                format!("{key}.topic"),
                "a topic name (letters, digits, - and _) that WARDEN_TOPICS maps to an SNS topic ARN",
            );
        }
        for (j, kind) in r.kinds.iter().enumerate() {
            if !crate::notify::KINDS.contains(&kind.get_ref().as_str()) {
                errors.push(
                    Some(kind.span()),
                    format!("{key}.kinds[{j}]"),
                    format!(
                        "unknown notification kind `{}`; known: {}",
                        kind.get_ref(),
                        crate::notify::KINDS.join(", ")
                    ),
                );
            }
        }
        for (j, class) in r.classes.iter().enumerate() {
            if !policy.classes.iter().any(|c| c.get_ref().name.get_ref().trim() == class.get_ref()) {
                errors.push(
                    Some(class.span()),
                    format!("{key}.classes[{j}]"),
                    format!("`{}` is not a class name", class.get_ref()),
                );
            }
        }
        routes.push(Route {
            topic: topic.to_owned(),
            format: r.format.unwrap_or(Format::Standard),
            kinds: r.kinds.iter().map(|k| k.get_ref().clone()).collect(),
            min_severity: r.min_severity,
            classes: r.classes.iter().map(|c| c.get_ref().clone()).collect(),
        });
    }
    NotifyRules { format: raw.format.unwrap_or(Format::Standard), replication_successes, routes }
}

fn compile_gate(raw: &RawGate, key: &str, errors: &mut Errors<'_>) -> Option<GateRules> {
    let before = errors.list.len();
    let mut max = BTreeMap::new();
    if let Some(limits) = &raw.max {
        let l = limits.get_ref();
        let pairs = [
            (Severity::Critical, l.critical),
            (Severity::High, l.high),
            (Severity::Medium, l.medium),
            (Severity::Low, l.low),
            (Severity::Informational, l.informational),
            (Severity::Undefined, l.undefined),
        ];
        max.extend(pairs.into_iter().filter_map(|(severity, limit)| Some((severity, limit?))));
    }
    if max.is_empty() {
        let span = raw.max.as_ref().map_or_else(|| raw.promote.span(), Spanned::span);
        errors.push(
            Some(span),
            format!("{key}.max"),
            "a gate needs at least one severity limit, e.g. max = { critical = 0 }",
        );
    }
    if let Some(epss) = &raw.min_epss
        && !(0.0..=1.0).contains(epss.get_ref())
    {
        errors.push(Some(epss.span()), format!("{key}.min-epss"), "an EPSS score is a probability between 0 and 1");
    }
    if raw.promote.get_ref().is_empty() {
        errors.push(Some(raw.promote.span()), format!("{key}.promote"), "name at least one promotion tag template");
    }
    let mut promote: Vec<TagTemplate> = Vec::new();
    for (i, text) in raw.promote.get_ref().iter().enumerate() {
        match TagTemplate::parse(text.get_ref()) {
            Ok(template) if promote.iter().any(|t| t.source() == template.source()) => {
                errors.push(
                    Some(text.span()),
                    format!("{key}.promote[{i}]"),
                    format!("`{}` is listed twice", text.get_ref()),
                );
            }
            Ok(template) => promote.push(template),
            Err(message) => errors.push(Some(text.span()), format!("{key}.promote[{i}]"), message),
        }
    }
    let mut allow: Vec<AllowEntry> = Vec::new();
    for (i, entry) in raw.allow.iter().enumerate() {
        let item = format!("{key}.allow[{i}]");
        let raw_entry = entry.get_ref();
        let id = raw_entry.id.get_ref().trim().to_owned();
        if id.is_empty() {
            errors.push(Some(raw_entry.id.span()), format!("{item}.id"), "empty vulnerability id");
        }
        if raw_entry.reason.get_ref().trim().is_empty() {
            errors.push(
                Some(raw_entry.reason.span()),
                format!("{item}.reason"),
                "say why this vulnerability is accepted",
            );
        }
        let expires = raw_entry
            .expires
            .get_ref()
            .date
            .and_then(|d| NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)));
        if expires.is_none() {
            errors.push(
                Some(raw_entry.expires.span()),
                format!("{item}.expires"),
                "give a date, e.g. expires = 2027-01-31",
            );
        }
        let repositories = compile_patterns(&raw_entry.repositories, &format!("{item}.repositories"), errors, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/' | '*')
        });
        if let (Some(expires), Some(repositories)) = (expires, repositories) {
            let scope = |r: &[Pattern]| r.iter().map(|p| p.source().to_owned()).collect::<Vec<_>>();
            if allow.iter().any(|a| a.id.eq_ignore_ascii_case(&id) && scope(&a.repositories) == scope(&repositories)) {
                errors.push(
                    Some(raw_entry.id.span()),
                    format!("{item}.id"),
                    format!("`{id}` is allowlisted twice for the same repositories"),
                );
            }
            allow.push(AllowEntry { id, reason: raw_entry.reason.get_ref().trim().to_owned(), expires, repositories });
        }
    }
    (errors.list.len() == before).then(|| GateRules {
        max,
        fixable_only: raw.fixable_only,
        min_epss: raw.min_epss.as_ref().map(|e| *e.get_ref()),
        exploitable_only: raw.exploitable_only,
        promote,
        on_failure: raw.on_failure.unwrap_or(OnFailure::Notify),
        allow,
    })
}

/// The explicit `mutability` (checked against the rules) or the derived one.
fn resolve_mutability(
    raw: &RawTags,
    key: &str,
    protected: &[Pattern],
    mutable: &[Pattern],
    errors: &mut Errors<'_>,
) -> Option<(MutabilitySetting, ProtectionEnforcement)> {
    let explicit = match &raw.mutability {
        None => None,
        Some(text) if text.get_ref() == "derive" => None,
        Some(text) => match EcrMutability::parse(text.get_ref()) {
            Some(mode) => Some((mode, text.span())),
            None => {
                errors.push(Some(text.span()), format!("{key}.mutability"), format!("`{}` is not one of derive, MUTABLE, IMMUTABLE, MUTABLE_WITH_EXCLUSION, IMMUTABLE_WITH_EXCLUSION", text.get_ref()));
                return None;
            }
        },
    };
    let filters_key = format!("{key}.exclusion-filters");
    let Some((mode, mode_span)) = explicit else {
        if let Some(filters) = &raw.exclusion_filters {
            errors.push(
                Some(filters.span()),
                filters_key,
                "exclusion-filters are derived unless `mutability` names a *_WITH_EXCLUSION mode",
            );
            return None;
        }
        return Some(derive_mutability(protected, mutable));
    };

    let filters: Vec<String> = match (&raw.exclusion_filters, mode.takes_filters()) {
        (Some(list), true) => {
            if list.get_ref().is_empty() || list.get_ref().len() > super::tags::MAX_EXCLUSION_FILTERS {
                errors.push(Some(list.span()), filters_key.clone(), "ECR takes 1 to 5 exclusion filters");
            }
            for (i, filter) in list.get_ref().iter().enumerate() {
                if let Some(problem) = ecr_exclusion_filter_problem(filter.get_ref()) {
                    errors.push(Some(filter.span()), format!("{filters_key}[{i}]"), problem);
                }
            }
            list.get_ref().iter().map(|f| f.get_ref().clone()).collect()
        }
        (None, true) => {
            errors.push(
                Some(mode_span),
                format!("{key}.mutability"),
                format!("{} needs `exclusion-filters`", mode.as_str()),
            );
            return None;
        }
        (Some(list), false) => {
            errors.push(Some(list.span()), filters_key, format!("{} takes no exclusion filters", mode.as_str()));
            return None;
        }
        (None, false) => vec![],
    };
    let filter_patterns: Vec<Pattern> = filters.iter().filter_map(|f| Pattern::wildcard(f).ok()).collect();
    let conflict = |message: String, errors: &mut Errors<'_>| {
        errors.push(Some(mode_span.clone()), format!("{key}.mutability"), message);
    };
    let before = errors.list.len();
    match mode {
        EcrMutability::Immutable => {
            if let Some(m) = mutable.first() {
                conflict(
                    format!("IMMUTABLE makes every tag immutable, but `{}` is declared mutable", m.source()),
                    errors,
                );
            }
        }
        EcrMutability::ImmutableWithExclusion => {
            // Filters are the movable tags: no protected tag may be among them, every mutable tag must be.
            for p in protected {
                if let Some(f) = filter_patterns.iter().find(|f| f.overlaps(p) != Some(false)) {
                    conflict(
                        format!("exclusion filter `{}` would let protected `{}` move", f.source(), p.source()),
                        errors,
                    );
                }
            }
            for m in mutable {
                if !filter_patterns.iter().any(|f| f.covers(m) == Some(true)) {
                    conflict(
                        format!(
                            "mutable `{}` is not covered by an exclusion filter, so ECR would refuse to move it",
                            m.source()
                        ),
                        errors,
                    );
                }
            }
        }
        EcrMutability::MutableWithExclusion => {
            // Filters are the immutable tags: they must not touch mutable tags.
            for m in mutable {
                if let Some(f) = filter_patterns.iter().find(|f| f.overlaps(m) != Some(false)) {
                    conflict(
                        format!("exclusion filter `{}` would make mutable `{}` immutable", f.source(), m.source()),
                        errors,
                    );
                }
            }
        }
        EcrMutability::Mutable => {}
    }
    if errors.list.len() != before {
        return None;
    }
    let setting = MutabilitySetting::new(mode, filters);
    let enforcement = if protected.is_empty() {
        ProtectionEnforcement::None
    } else if covers_protection(&setting, protected) {
        ProtectionEnforcement::Ecr
    } else {
        ProtectionEnforcement::Ledger(format!("{setting} does not make every protected tag immutable"))
    };
    Some((setting, enforcement))
}

/// Whether the ECR setting alone rejects moves of every protected tag.
fn covers_protection(setting: &MutabilitySetting, protected: &[Pattern]) -> bool {
    let filters: Vec<Pattern> = setting.filters.iter().filter_map(|f| Pattern::wildcard(f).ok()).collect();
    match setting.mode {
        EcrMutability::Immutable => true,
        EcrMutability::Mutable => false,
        EcrMutability::ImmutableWithExclusion => {
            protected.iter().all(|p| filters.iter().all(|f| f.overlaps(p) == Some(false)))
        }
        EcrMutability::MutableWithExclusion => {
            protected.iter().all(|p| filters.iter().any(|f| f.covers(p) == Some(true)))
        }
    }
}

/// Duplicate class names, and repository patterns no repository can reach because an earlier class's
/// pattern already takes every name they match (first match wins).
fn check_class_names_and_shadowing(raw: &RawPolicy, errors: &mut Errors<'_>) {
    let mut seen: Vec<(&str, Vec<Pattern>)> = Vec::new();
    for (index, class) in raw.classes.iter().enumerate() {
        let class = class.get_ref();
        let name = class.name.get_ref().trim();
        if seen.iter().any(|(n, _)| *n == name) {
            errors.push(
                Some(class.name.span()),
                format!("class[{index}].name"),
                format!("duplicate class name `{name}`"),
            );
        }
        let patterns: Vec<Pattern> =
            class.repositories.iter().filter_map(|p| Pattern::parse(p.get_ref()).ok()).collect();
        for (i, pattern) in patterns.iter().enumerate() {
            let shadow = seen.iter().find_map(|(earlier_name, earlier)| {
                earlier.iter().find(|e| e.covers(pattern) == Some(true)).map(|e| (*earlier_name, e))
            });
            if let Some((earlier_name, earlier)) = shadow {
                errors.push(
                    Some(class.repositories[i].span()),
                    format!("class[{index}].repositories[{i}]"),
                    format!(
                        "`{}` never applies: class `{earlier_name}` comes first and its `{}` matches all of it",
                        pattern.source(),
                        earlier.source()
                    ),
                );
            }
        }
        seen.push((name, patterns));
    }
}
