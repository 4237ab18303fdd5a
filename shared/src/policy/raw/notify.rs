//! The `[notify]` section: topic formats, routes and which successes are reported.

use super::{Errors, RawNotify, RawPolicy, compile_patterns};
use crate::kinds::{Format, KINDS};
use crate::policy::{NotifyRules, Route};

pub(super) fn compile_notify(raw: Option<&RawNotify>, policy: &RawPolicy, errors: &mut Errors<'_>) -> NotifyRules {
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
            if !KINDS.contains(&kind.get_ref().as_str()) {
                errors.push(
                    Some(kind.span()),
                    format!("{key}.kinds[{j}]"),
                    format!("unknown notification kind `{}`; known: {}", kind.get_ref(), KINDS.join(", ")),
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
