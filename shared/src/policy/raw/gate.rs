//! The `gate` section of a class: severity limits, filters, promotion tag templates and the allowlist.

use super::{Errors, RawGate, compile_patterns};
use crate::pattern::Pattern;
use crate::policy::gate::{AllowEntry, FindingSeverity, GateRules, OnFailure};
use crate::template::TagTemplate;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use toml::Spanned;

pub(super) fn compile_gate(raw: &RawGate, key: &str, errors: &mut Errors<'_>) -> Option<GateRules> {
    let before = errors.list.len();
    let mut max = BTreeMap::new();
    if let Some(limits) = &raw.max {
        let l = limits.get_ref();
        let pairs = [
            (FindingSeverity::Critical, l.critical),
            (FindingSeverity::High, l.high),
            (FindingSeverity::Medium, l.medium),
            (FindingSeverity::Low, l.low),
            (FindingSeverity::Informational, l.informational),
            (FindingSeverity::Undefined, l.undefined),
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
    let promote = compile_promote(raw, key, errors);
    let allow = compile_allow(raw, key, errors);
    // Platforms are `os/architecture[/variant]`, as image indexes name them.
    let platform_char = |c: char| c.is_ascii_alphanumeric() || "/._-*".contains(c);
    let platforms = compile_patterns(&raw.platforms, &format!("{key}.platforms"), errors, platform_char);
    let require_signature =
        compile_listed(&raw.require_signature, &format!("{key}.require-signature"), errors, signing_profile);
    let require_referrers =
        compile_listed(&raw.require_referrers, &format!("{key}.require-referrers"), errors, artifact_type);
    (errors.list.len() == before).then(|| GateRules {
        max,
        fixable_only: raw.fixable_only,
        min_epss: raw.min_epss.as_ref().map(|e| *e.get_ref()),
        exploitable_only: raw.exploitable_only,
        promote,
        on_failure: raw.on_failure.unwrap_or(OnFailure::Notify),
        allow,
        platforms: platforms.unwrap_or_default(),
        require_signature,
        require_referrers,
    })
}

/// Each entry of a list checked by `check` (`Err`: why not) and listed once.
fn compile_listed(
    raw: &[Spanned<String>],
    key: &str,
    errors: &mut Errors<'_>,
    check: fn(&str) -> Result<(), String>,
) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let value = text.get_ref();
        let problem = check(value).err().or_else(|| kept.contains(value).then(|| format!("`{value}` is listed twice")));
        match problem {
            Some(message) => errors.push(Some(text.span()), format!("{key}[{i}]"), message),
            None => kept.push(value.clone()),
        }
    }
    kept
}

/// An AWS Signer signing profile ARN: `arn:<partition>:signer:<region>:<account>:/signing-profiles/<name>`.
fn signing_profile(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let shaped = parts.len() == 6
        && parts[0] == "arn"
        && ["aws", "aws-cn", "aws-us-gov"].contains(&parts[1])
        && parts[2] == "signer"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5]
            .strip_prefix("/signing-profiles/")
            .is_some_and(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if shaped {
        Ok(())
    } else {
        Err(format!("`{arn}` is not a signing profile ARN: arn:aws:signer:<region>:<account>:/signing-profiles/<name>"))
    }
}

/// A known OCI artifact type, or `custom:<type>` for one this list does not know.
fn artifact_type(entry: &str) -> Result<(), String> {
    use crate::policy::gate::KNOWN_ARTIFACT_TYPES;
    match entry.strip_prefix("custom:") {
        Some(custom) if custom.contains('/') && !custom.contains(char::is_whitespace) => Ok(()),
        Some(_) => Err(format!(
            "`{entry}`: a custom artifact type is a media type, e.g. custom:application/vnd.acme.scan+json"
        )),
        None if KNOWN_ARTIFACT_TYPES.contains(&entry) => Ok(()),
        None => Err(format!(
            "`{entry}` is not a known artifact type ({}); write custom:{entry} to require it anyway",
            KNOWN_ARTIFACT_TYPES.join(", ")
        )),
    }
}

/// The gate's promotion tag templates, each valid and listed once.
fn compile_promote(raw: &RawGate, key: &str, errors: &mut Errors<'_>) -> Vec<TagTemplate> {
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
    promote
}

/// The gate's allowlist: each entry with an id, a reason, an expiry date and its repositories, listed once.
fn compile_allow(raw: &RawGate, key: &str, errors: &mut Errors<'_>) -> Vec<AllowEntry> {
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
    allow
}
