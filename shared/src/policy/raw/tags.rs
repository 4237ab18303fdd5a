//! The `tags` section of a class: allowed and protected tags, remediation, and the repository's tag mutability
//! (explicit, checked against the rules, or derived from them).

use super::{DEFAULT_QUARANTINE, Errors, RawTags, compile_patterns, is_tag_char};
use crate::pattern::{Pattern, ecr_exclusion_filter_problem};
use crate::policy::tags::{EcrMutability, MutabilitySetting, ProtectionEnforcement, TagRules, derive_mutability};
use crate::template::TagTemplate;
use std::ops::Range;

pub(super) fn compile_tags(raw: &RawTags, key: &str, errors: &mut Errors<'_>) -> Option<TagRules> {
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

    let filters = explicit_filters(raw, key, (mode, &mode_span), errors)?;
    let filter_patterns: Vec<Pattern> = filters.iter().filter_map(|f| Pattern::wildcard(f).ok()).collect();
    let conflicts = mode_conflicts(mode, &filter_patterns, protected, mutable);
    for message in &conflicts {
        errors.push(Some(mode_span.clone()), format!("{key}.mutability"), message.clone());
    }
    if !conflicts.is_empty() {
        return None;
    }
    let setting = MutabilitySetting::new(mode, filters);
    let enforcement = if protected.is_empty() {
        ProtectionEnforcement::None
    } else if setting.covers(protected) {
        ProtectionEnforcement::Ecr
    } else {
        ProtectionEnforcement::Ledger(format!("{setting} does not make every protected tag immutable"))
    };
    Some((setting, enforcement))
}

/// The exclusion filters an explicit `mode` takes (`None`: they are wrong, the errors say why).
fn explicit_filters(
    raw: &RawTags,
    key: &str,
    (mode, mode_span): (EcrMutability, &Range<usize>),
    errors: &mut Errors<'_>,
) -> Option<Vec<String>> {
    let filters_key = format!("{key}.exclusion-filters");
    match (&raw.exclusion_filters, mode.takes_filters()) {
        (Some(list), true) => {
            if list.get_ref().is_empty() || list.get_ref().len() > crate::policy::tags::MAX_EXCLUSION_FILTERS {
                errors.push(Some(list.span()), filters_key.clone(), "ECR takes 1 to 5 exclusion filters");
            }
            for (i, filter) in list.get_ref().iter().enumerate() {
                if let Some(problem) = ecr_exclusion_filter_problem(filter.get_ref()) {
                    errors.push(Some(filter.span()), format!("{filters_key}[{i}]"), problem);
                }
            }
            Some(list.get_ref().iter().map(|f| f.get_ref().clone()).collect())
        }
        (None, true) => {
            errors.push(
                Some(mode_span.clone()),
                format!("{key}.mutability"),
                format!("{} needs `exclusion-filters`", mode.as_str()),
            );
            None
        }
        (Some(list), false) => {
            errors.push(Some(list.span()), filters_key, format!("{} takes no exclusion filters", mode.as_str()));
            None
        }
        (None, false) => Some(vec![]),
    }
}

/// What an explicit mode contradicts in the tag rules: protected tags it lets move, mutable tags it freezes.
fn mode_conflicts(
    mode: EcrMutability,
    filter_patterns: &[Pattern],
    protected: &[Pattern],
    mutable: &[Pattern],
) -> Vec<String> {
    let mut conflicts = Vec::new();
    match mode {
        EcrMutability::Immutable => {
            if let Some(m) = mutable.first() {
                conflicts
                    .push(format!("IMMUTABLE makes every tag immutable, but `{}` is declared mutable", m.source()));
            }
        }
        EcrMutability::ImmutableWithExclusion => {
            // Filters are the movable tags: no protected tag may be among them, every mutable tag must be.
            for p in protected {
                if let Some(f) = filter_patterns.iter().find(|f| f.overlaps(p) != Some(false)) {
                    conflicts.push(format!(
                        "exclusion filter `{}` would let protected `{}` move",
                        f.source(),
                        p.source()
                    ));
                }
            }
            for m in mutable {
                if !filter_patterns.iter().any(|f| f.covers(m) == Some(true)) {
                    conflicts.push(format!(
                        "mutable `{}` is not covered by an exclusion filter, so ECR would refuse to move it",
                        m.source()
                    ));
                }
            }
        }
        EcrMutability::MutableWithExclusion => {
            // Filters are the immutable tags: they must not touch mutable tags.
            for m in mutable {
                if let Some(f) = filter_patterns.iter().find(|f| f.overlaps(m) != Some(false)) {
                    conflicts.push(format!(
                        "exclusion filter `{}` would make mutable `{}` immutable",
                        f.source(),
                        m.source()
                    ));
                }
            }
        }
        EcrMutability::Mutable => {}
    }
    conflicts
}
