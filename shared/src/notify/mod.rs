//! The notification every function sends: one versioned JSON schema, a plain-text rendering for email, an
//! SNS subject and message attributes for subscription filter policies, always within SNS's limits.

use crate::outcome::Action;
use serde::Serialize;
use std::collections::BTreeMap;

/// The schema identifier carried by every notification; bumped on breaking changes.
pub const SCHEMA: &str = "ecr-warden.notification/v1";
/// SNS rejects messages over 256 KiB, attributes included; keep a margin for the envelope.
pub const MAX_MESSAGE_BYTES: usize = 250 * 1024;
/// SNS requires subjects under 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// List entries kept before truncating with a count.
const LIST_LIMIT: usize = 50;

mod chatbot;
pub mod events;

pub use chatbot::chatbot_payload;

pub use crate::kinds::{Format, KINDS, Severity};

/// A notification, as subscribers receive it (JSON), before truncation.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Notification {
    /// Always [`SCHEMA`] (read back from a parked notification as such).
    #[serde(skip_deserializing, default = "schema")]
    pub schema: &'static str,
    /// What happened: `tag-not-allowed`, `protected-tag-moved`, `tag-mutability-drift`, ...
    pub kind: String,
    pub severity: Severity,
    pub function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tags_omitted: usize,
    /// What ecr-warden did about it: `untagged`, `reverted`, `reported`, `fixed`, `failed`, ...
    pub outcome: String,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasons_omitted: usize,
    pub actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub actions_omitted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    pub dry_run: bool,
    pub event_id: String,
    pub time: String,
    /// The registry's account and region, in a hub (one topic hears about many accounts); absent for a single
    /// account, where the messages stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

fn schema() -> &'static str {
    SCHEMA
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A notification rendered for SNS `Publish`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedMessage {
    pub subject: String,
    pub message: String,
    /// Publish with `MessageStructure=json` (the message holds one body per protocol).
    pub per_protocol: bool,
    pub attributes: BTreeMap<&'static str, String>,
}

impl Notification {
    /// Subject: ASCII, one line, under 100 characters.
    pub fn subject(&self) -> String {
        let target = match (&self.repository, self.tags.first()) {
            (Some(repo), Some(tag)) => format!("{repo}:{tag}"),
            (Some(repo), None) => repo.clone(),
            _ => String::new(),
        };
        let target = match &self.account {
            Some(account) if target.is_empty() => format!("in {account}"),
            Some(account) => format!("{target} in {account}"),
            None => target,
        };
        let raw = format!("ecr-warden {}: {} {}", self.function, self.kind.replace('-', " "), target);
        let clean: String =
            raw.trim().chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).collect();
        if clean.chars().count() <= MAX_SUBJECT_CHARS {
            clean
        } else {
            format!("{}...", clean.chars().take(MAX_SUBJECT_CHARS - 3).collect::<String>())
        }
    }

    /// The plain-text body, for email.
    pub fn text(&self) -> String {
        let mut out =
            format!("ecr-warden {}: {} ({})\n\n", self.function, self.kind.replace('-', " "), self.severity.as_str());
        if let (Some(account), Some(region)) = (&self.account, &self.region) {
            out.push_str(&format!("Registry:   account {account}, {region}\n"));
        }
        if let Some(repo) = &self.repository {
            let class = self.class.as_deref().map_or(String::new(), |c| format!(" (class {c})"));
            out.push_str(&format!("Repository: {repo}{class}\n"));
        }
        if let Some(digest) = &self.digest {
            out.push_str(&format!("Image:      {digest}\n"));
        }
        if !self.tags.is_empty() {
            out.push_str(&format!("Tags:       {}{}\n", self.tags.join(", "), more(self.tags_omitted)));
        }
        out.push_str(&format!("Outcome:    {}\n", self.outcome));
        if !self.reasons.is_empty() {
            out.push_str("\nWhy:\n");
            for reason in &self.reasons {
                out.push_str(&format!("  - {reason}\n"));
            }
            if self.reasons_omitted > 0 {
                out.push_str(&format!("  - ... and {} more\n", self.reasons_omitted));
            }
        }
        if !self.actions.is_empty() {
            out.push_str("\nActions:\n");
            for action in &self.actions {
                let result = serde_json::to_value(action.result)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let detail = action.detail.as_deref().map_or(String::new(), |d| format!(" ({d})"));
                out.push_str(&format!("  - {}: {result}{detail}\n", action.action));
            }
            if self.actions_omitted > 0 {
                out.push_str(&format!("  - ... and {} more\n", self.actions_omitted));
            }
        }
        let dry_run = if self.dry_run { " Dry run: nothing was changed." } else { "" };
        out.push_str(&format!("\nEvent {} at {}.{dry_run}\n", self.event_id, self.time));
        out
    }

    /// Attributes for SNS subscription filter policies (SNS allows 10 on raw SQS delivery; we use at most 8).
    pub fn attributes(&self) -> BTreeMap<&'static str, String> {
        let mut attributes = BTreeMap::from([
            ("kind", self.kind.clone()),
            ("outcome", self.outcome.clone()),
            ("severity", self.severity.as_str().to_owned()),
            ("function", self.function.clone()),
        ]);
        if let Some(repo) = &self.repository {
            attributes.insert("repository", repo.clone());
        }
        if let Some(class) = &self.class {
            attributes.insert("class", class.clone());
        }
        if let (Some(account), Some(region)) = (&self.account, &self.region) {
            attributes.insert("account", account.clone());
            attributes.insert("region", region.clone());
        }
        attributes
    }

    /// Cuts every list to `limit` entries, counting what was left out.
    fn truncated(&self, limit: usize) -> Self {
        let mut copy = self.clone();
        copy.tags_omitted += cut(&mut copy.tags, limit);
        copy.reasons_omitted += cut(&mut copy.reasons, limit);
        copy.actions_omitted += cut(&mut copy.actions, limit);
        let max_text = 2048;
        for reason in &mut copy.reasons {
            if reason.len() > max_text {
                let end = (0..=max_text).rev().find(|i| reason.is_char_boundary(*i)).unwrap_or(0);
                reason.truncate(end);
                reason.push_str("...");
            }
        }
        copy
    }

    /// Renders for SNS in `format`, truncating lists until the whole publish fits SNS's size limit.
    pub fn render(&self, format: Format) -> RenderedMessage {
        let mut limit = LIST_LIMIT;
        loop {
            let rendered = self.truncated(limit).render_whole(format);
            let size = rendered.message.len()
                + rendered.subject.len()
                + rendered.attributes.iter().map(|(k, v)| k.len() + v.len() + "String".len()).sum::<usize>();
            if size <= MAX_MESSAGE_BYTES || limit == 0 {
                return rendered;
            }
            limit /= 2;
        }
    }

    fn render_whole(&self, format: Format) -> RenderedMessage {
        let json = serde_json::to_string(self).unwrap_or_default();
        let text = self.text();
        let single = |message: String| RenderedMessage {
            subject: self.subject(),
            message,
            per_protocol: false,
            attributes: self.attributes(),
        };
        match format {
            Format::Json => return single(json),
            Format::Text => return single(text),
            Format::Chatbot => return single(chatbot_payload(self).to_string()),
            Format::Standard => {}
        }
        // One body per protocol: people read text, programs read the schema.
        let mut body = serde_json::Map::new();
        body.insert("default".into(), text.clone().into());
        body.insert("email".into(), text.into());
        for protocol in ["email-json", "sqs", "lambda", "http", "https", "firehose"] {
            body.insert(protocol.into(), json.clone().into());
        }
        RenderedMessage {
            subject: self.subject(),
            message: serde_json::Value::Object(body).to_string(),
            per_protocol: true,
            attributes: self.attributes(),
        }
    }
}

fn cut<T>(list: &mut Vec<T>, limit: usize) -> usize {
    let extra = list.len().saturating_sub(limit);
    list.truncate(limit);
    extra
}

fn more(omitted: usize) -> String {
    if omitted > 0 { format!(" (+{omitted} more)") } else { String::new() }
}

/// ecr-warden's record of a tag removal it made (see `aws::removals`): when, by which function, for which event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnRemoval {
    /// Epoch seconds, written just before the removal.
    pub at: i64,
    pub function: String,
    pub event_id: String,
}

/// How far apart a removal record and the deletion event it explains may be: the event follows within seconds
/// (delivered late, within hours); a clock apart by a minute either way.
pub const OWN_REMOVAL_WINDOW_SECONDS: i64 = 6 * 3600;

/// Why a tag deletion deleted at `deleted_at` (epoch seconds) is ecr-warden's own doing and needs no
/// `protected-tag-deleted` of its own, or `None`: no record, or one too far from the deletion to explain it.
pub fn own_removal(removal: Option<&OwnRemoval>, deleted_at: i64) -> Option<String> {
    let removal = removal?;
    let after = deleted_at - removal.at;
    (-60..=OWN_REMOVAL_WINDOW_SECONDS).contains(&after).then(|| {
        format!(
            "ecr-warden's {} removed this tag (event {}): its own notification says what and why",
            removal.function, removal.event_id
        )
    })
}

#[cfg(test)]
mod tests;
