//! The Amazon Q Developer in chat applications (AWS Chatbot) custom notification payload: Slack and Teams
//! render it natively (markdown title and description, next steps, keywords).

use super::{Notification, Severity};
use serde_json::{Value, json};

/// Chat clients truncate long descriptions; keep them readable.
const MAX_DESCRIPTION_CHARS: usize = 3_500;

fn emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => ":rotating_light:",
        Severity::Warning => ":warning:",
        Severity::Info => ":white_check_mark:",
    }
}

/// What an operator does next, per kind.
fn next_steps(n: &Notification) -> Vec<String> {
    let repo = n.repository.as_deref().unwrap_or("<repository>");
    let tag = n.tags.first().map_or("<tag>", String::as_str);
    let digest = n.digest.as_deref().unwrap_or("<digest>");
    match n.kind.as_str() {
        "protected-tag-moved" => vec![
            format!("See what `{tag}` pointed to: `warden tags history {repo} {tag}`"),
            "Find who pushed it in CloudTrail (PutImage)".into(),
        ],
        "protected-tag-orphaned" => vec![
            format!("Check that the image `{tag}` points at now is the release: `warden tags history {repo} {tag}`"),
            format!(
                "If it is not: `warden tags accept {repo} {tag} --digest <the release> --reason ...`, then push it"
            ),
        ],
        "protected-tag-deleted" => vec![
            format!("See what `{tag}` pointed to: `warden tags history {repo} {tag}`"),
            "Find who deleted it in CloudTrail (BatchDeleteImage), or which lifecycle rule expired it".into(),
        ],
        "tag-not-allowed" => vec![format!("Check the class's allowed tags: `warden tags check {repo} {tag}`")],
        "gate-failed" | "demoted" | "promotion-failed" => {
            vec![
                format!("Review the findings: `warden gate evaluate {repo} {digest}`"),
                "Rebuild with fixed packages, or allowlist with a reason and an expiry".into(),
            ]
        }
        "scan-failed" | "not-scanned" | "scanning-stopped" => {
            vec!["Check the repository's scanning configuration and the image's scan status".into()]
        }
        "replication-failed" => {
            vec!["Check the replication configuration and the destination registry's permissions".into()]
        }
        "pull-through-cache-failed" => {
            vec!["Check the upstream registry's availability and the pull-through cache rule's credentials".into()]
        }
        _ => vec![],
    }
}

pub fn chatbot_payload(n: &Notification) -> Value {
    let target = match (&n.repository, n.tags.first()) {
        (Some(repo), Some(tag)) => format!(" `{repo}:{tag}`"),
        (Some(repo), None) => format!(" `{repo}`"),
        _ => String::new(),
    };
    let title = format!("{} {}: {}{target}", emoji(n.severity), n.function, n.kind.replace('-', " "));
    let mut description = String::new();
    if let Some(class) = &n.class {
        description.push_str(&format!("*Class:* {class}\n"));
    }
    if let Some(digest) = &n.digest {
        description.push_str(&format!("*Image:* `{digest}`\n"));
    }
    description.push_str(&format!(
        "*Outcome:* {}{}\n",
        n.outcome,
        if n.dry_run { " (dry run: nothing changed)" } else { "" }
    ));
    for reason in &n.reasons {
        description.push_str(&format!("• {reason}\n"));
    }
    if n.reasons_omitted > 0 {
        description.push_str(&format!("• … and {} more\n", n.reasons_omitted));
    }
    for action in &n.actions {
        let result =
            serde_json::to_value(action.result).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        description.push_str(&format!("→ {}: {result}\n", action.action));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        description = description.chars().take(MAX_DESCRIPTION_CHARS - 1).collect::<String>() + "…";
    }
    let mut keywords = vec![n.function.clone(), n.severity.as_str().to_owned()];
    keywords.extend(n.class.iter().cloned());
    let mut context = serde_json::Map::new();
    for (key, value) in
        [("repository", n.repository.as_ref()), ("digest", n.digest.as_ref()), ("event-id", Some(&n.event_id))]
    {
        if let Some(value) = value {
            context.insert(key.into(), value.clone().into());
        }
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": n.event_id,
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": description.trim_end(),
            "nextSteps": next_steps(n),
            "keywords": keywords,
        },
        "metadata": {
            "threadId": format!("ecr-warden/{}", n.repository.as_deref().unwrap_or("registry")),
            "summary": n.subject(),
            "eventType": n.kind,
            "additionalContext": context,
        }
    })
}
