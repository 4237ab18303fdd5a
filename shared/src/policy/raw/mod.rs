//! The policy file as written (with source spans), and its validation into [`Policy`].

use super::gate::OnFailure;
use super::tags::Remediation;
use super::{Class, Encryption, Limits, Policy, PolicyError, PolicyErrors, UNMANAGED};
use crate::kinds::{Format, Severity as NotifySeverity};
use crate::pattern::Pattern;
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

mod gate;
mod lifecycle;
mod notify;
mod tags;

use gate::compile_gate;
use lifecycle::{compile_lifecycle, native_rule_warnings};
use notify::compile_notify;
use tags::compile_tags;

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
    accounts: Vec<Spanned<String>>,
    #[serde(default)]
    managed: Option<Spanned<bool>>,
    #[serde(default)]
    tags: Option<Spanned<RawTags>>,
    #[serde(default)]
    gate: Option<Spanned<RawGate>>,
    #[serde(default)]
    lifecycle: Option<Spanned<RawLifecycle>>,
    #[serde(default)]
    encryption: Option<Spanned<String>>,
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
    #[serde(default)]
    platforms: Vec<Spanned<String>>,
    #[serde(default)]
    require_signature: Vec<Spanned<String>>,
    #[serde(default)]
    require_referrers: Vec<Spanned<String>>,
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
        if let (Some(first), true) = (class.accounts.first(), default_class == Some(index)) {
            errors.push(
                Some(first.span()),
                format!("class[{index}].accounts"),
                format!(
                    "class `{}` is the default-class, which governs every account's unmatched repositories: it \
                     cannot name accounts",
                    class.name.get_ref()
                ),
            );
        }
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
    let accounts = compile_accounts(&raw.accounts, &key, errors);
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
    let encryption = raw.encryption.as_ref().and_then(|text| match text.get_ref().to_ascii_lowercase().as_str() {
        "aes256" => Some(Encryption::Aes256),
        "kms" => Some(Encryption::Kms),
        other => {
            errors.push(Some(text.span()), format!("{key}.encryption"), format!("`{other}` is not one of aes256, kms"));
            None
        }
    });
    Some(Class { name, repositories: repositories?, accounts, managed, tags, gate, lifecycle, encryption })
}

/// A class's `accounts`: 12-digit account ids (a hub's members; empty: every account).
fn compile_accounts(raw: &[Spanned<String>], key: &str, errors: &mut Errors<'_>) -> Vec<String> {
    let mut accounts = Vec::new();
    for (i, account) in raw.iter().enumerate() {
        let id = account.get_ref().trim();
        if crate::reach::is_account_id(id) {
            accounts.push(id.to_owned());
        } else {
            errors.push(
                Some(account.span()),
                format!("{key}.accounts[{i}]"),
                format!("`{id}` is not a 12-digit account id"),
            );
        }
    }
    accounts
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

/// Duplicate class names, and repository patterns no repository can reach because an earlier class's
/// pattern already takes every name they match (first match wins) in every account the later class covers.
fn check_class_names_and_shadowing(raw: &RawPolicy, errors: &mut Errors<'_>) {
    let mut seen: Vec<(&str, Vec<Pattern>, Vec<&str>)> = Vec::new();
    for (index, class) in raw.classes.iter().enumerate() {
        let class = class.get_ref();
        let name = class.name.get_ref().trim();
        if seen.iter().any(|(n, ..)| *n == name) {
            errors.push(
                Some(class.name.span()),
                format!("class[{index}].name"),
                format!("duplicate class name `{name}`"),
            );
        }
        let patterns: Vec<Pattern> =
            class.repositories.iter().filter_map(|p| Pattern::parse(p.get_ref()).ok()).collect();
        let accounts: Vec<&str> = class.accounts.iter().map(|a| a.get_ref().trim()).collect();
        // An earlier class takes this one's accounts when it names none (every account) or all of them.
        let takes_accounts = |earlier: &[&str]| {
            earlier.is_empty() || (!accounts.is_empty() && accounts.iter().all(|a| earlier.contains(a)))
        };
        for (i, pattern) in patterns.iter().enumerate() {
            let shadow = seen.iter().filter(|(.., earlier_accounts)| takes_accounts(earlier_accounts)).find_map(
                |(earlier_name, earlier, _)| {
                    earlier.iter().find(|e| e.covers(pattern) == Some(true)).map(|e| (*earlier_name, e))
                },
            );
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
        seen.push((name, patterns, accounts));
    }
}
