//! The deletion journal: every batch lifecycle's retention deletes is written to the ledger before its
//! BatchDeleteImage and removed once the run's report is out. A run killed between the two (a timeout, a crash,
//! SNS down past the retries) leaves its batches here; its retry (the same request), or any run once no
//! invocation can still be running it, finds them, reads back which of their images are really gone, and
//! reports those, under the claim the killed run would have used, so every deletion is reported once and
//! nothing that was not deleted is reported as deleted. A run still going is left alone.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | one batch about to be deleted (expires after 15 days) | `JOURNAL#lifecycle` | `<repository>#<run>#<batch>` |

use super::ledger::{Ledger, get, s};
use crate::WardenError;
use crate::error::aws_error;
use aws_sdk_dynamodb::types::AttributeValue;

/// How long a journal entry lives: past any retry and redrive of the event that wrote it.
const JOURNAL_TTL_SECONDS: i64 = 15 * 24 * 3600;

const PK: &str = "JOURNAL#lifecycle";

/// One batch of a retention run, as journalled before its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub repository: String,
    /// The run that wrote it: unique per invocation, the same for all its batches.
    pub run: String,
    pub batch: u32,
    /// The event the run handled (its report carries this id).
    pub event_id: String,
    /// The request that ran it (Lambda's request id: the same for its retries), and when it wrote the entry:
    /// only its own retry, or anyone once no invocation can still be running it, may report it.
    pub holder: String,
    pub written_at: i64,
    /// The digests with the rule that chose each: `digest rule-priority`.
    pub digests: Vec<(String, u32)>,
}

impl JournalEntry {
    fn sk(&self) -> String {
        format!("{}#{}#{:04}", self.repository, self.run, self.batch)
    }
}

impl Ledger {
    /// Writes a batch to the journal before it is deleted.
    pub async fn journal_batch(&self, entry: &JournalEntry, now_epoch: i64) -> Result<(), WardenError> {
        let digests: Vec<String> = entry.digests.iter().map(|(d, rule)| format!("{d} {rule}")).collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(self.key(PK.to_owned())))
            .item("sk", s(entry.sk()))
            .item("repository", s(&entry.repository))
            .item("run", s(&entry.run))
            .item("batch", AttributeValue::N(entry.batch.to_string()))
            .item("event_id", s(&entry.event_id))
            .item("holder", s(&entry.holder))
            .item("written_at", AttributeValue::N(entry.written_at.to_string()))
            .item("digests", AttributeValue::Ss(digests))
            .item("expires_at", AttributeValue::N((now_epoch + JOURNAL_TTL_SECONDS).to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DynamoDB.PutItem", e))
    }

    /// The journal's entries, of one repository or of all (one Query, all pages).
    pub async fn journal(&self, repository: Option<&str>) -> Result<Vec<JournalEntry>, WardenError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(self.key(PK.to_owned())));
        query = match repository {
            Some(repository) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :repository)")
                .expression_attribute_values(":repository", s(format!("{repository}#"))),
            None => query.key_condition_expression("pk = :pk"),
        };
        let mut pages = query.into_paginator().send();
        let mut entries = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB.Query", e))?;
            entries.extend(page.items().iter().filter_map(|item| {
                let digests = item.get("digests")?.as_ss().ok()?.iter().filter_map(|pair| {
                    let (digest, rule) = pair.split_once(' ')?;
                    Some((digest.to_owned(), rule.parse().ok()?))
                });
                Some(JournalEntry {
                    repository: get(item, "repository")?,
                    run: get(item, "run")?,
                    batch: item.get("batch")?.as_n().ok()?.parse().ok()?,
                    event_id: get(item, "event_id").unwrap_or_default(),
                    holder: get(item, "holder").unwrap_or_default(),
                    written_at: item
                        .get("written_at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    digests: digests.collect(),
                })
            }));
        }
        // A repository named like another's prefix (`app` and `app#x` cannot both exist, but be exact anyway).
        entries.retain(|e| repository.is_none_or(|r| e.repository == r));
        Ok(entries)
    }

    /// Removes journal entries once their deletions are reported.
    pub async fn clear_journal(&self, entries: &[JournalEntry]) -> Result<(), WardenError> {
        for entry in entries {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(self.key(PK.to_owned())))
                .key("sk", s(entry.sk()))
                .send()
                .await
                .map_err(|e| aws_error("DynamoDB.DeleteItem", e))?;
        }
        Ok(())
    }
}

/// Native lifecycle policies about to be put: each is noted before its PutLifecyclePolicy and removed once the
/// news of it is out. A retry of an event whose attempt was killed after the put finds the policy in place
/// and, by the note, knows its own event put it: the news is sent then, not lost.
///
/// | item | pk | sk |
/// |---|---|---|
/// | a policy put about to happen (expires after 15 days) | `INTENT#lifecycle` | `<event id>#<repository>` |
const INTENT_PK: &str = "INTENT#lifecycle";

impl Ledger {
    /// Notes that `event_id`'s handling is about to put a repository's native policy.
    pub async fn note_policy_intent(
        &self,
        event_id: &str,
        repository: &str,
        now_epoch: i64,
    ) -> Result<(), WardenError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(self.key(INTENT_PK.to_owned())))
            .item("sk", s(format!("{event_id}#{repository}")))
            .item("expires_at", AttributeValue::N((now_epoch + JOURNAL_TTL_SECONDS).to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DynamoDB.PutItem", e))
    }

    /// The repositories whose native policy an attempt of `event_id` set out to put (one Query).
    pub async fn policy_intents(&self, event_id: &str) -> Result<std::collections::BTreeSet<String>, WardenError> {
        let prefix = format!("{event_id}#");
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
            .expression_attribute_values(":pk", s(self.key(INTENT_PK.to_owned())))
            .expression_attribute_values(":event", s(&prefix))
            .into_paginator()
            .send();
        let mut repositories = std::collections::BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB.Query", e))?;
            let names =
                page.items().iter().filter_map(|item| get(item, "sk")?.strip_prefix(&prefix).map(str::to_owned));
            repositories.extend(names);
        }
        Ok(repositories)
    }

    /// Removes the notes of policies whose news is out.
    pub async fn clear_policy_intents(&self, event_id: &str, repositories: &[String]) -> Result<(), WardenError> {
        for repository in repositories {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(self.key(INTENT_PK.to_owned())))
                .key("sk", s(format!("{event_id}#{repository}")))
                .send()
                .await
                .map_err(|e| aws_error("DynamoDB.DeleteItem", e))?;
        }
        Ok(())
    }
}
