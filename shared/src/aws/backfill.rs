//! Backfill: the ledger learns the protected tags that existed before ecr-warden was deployed (or whose push
//! events were lost), so the first push that moves one is a move, not a first sighting. tag-guard's sweep runs it
//! on the images it lists anyway; `warden tags backfill` runs it on demand.
//!
//! Only what the ledger does not know is written, and never over a pointer it holds: the write is conditional
//! on the pointer not existing, so a push recorded meanwhile (or a concurrent backfill) wins. Cost per
//! repository: its DescribeImages pages, one BatchGetItem per 100 protected tags, and one transaction (pointer +
//! `backfilled` history entry) per tag recorded; a second run writes nothing.

use super::ledger::{HistoryEntry, Ledger, s};
use crate::WardenError;
use crate::error::aws_error;
use crate::tags::Unrecorded;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Update};
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// BatchGetItem's limit of keys per request.
const KEYS_PER_READ: usize = 100;

/// What a backfill of one repository did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfilled {
    /// Protected tags found in the registry.
    pub protected: usize,
    /// Tags recorded now: tag and digest.
    pub recorded: Vec<(String, String)>,
    /// Tags not reached before the deadline (the next run records them).
    pub left: usize,
}

impl Ledger {
    /// Which of `tags` of `repository` the ledger holds no pointer for (strongly consistent BatchGetItem, 100
    /// keys a request). Keys DynamoDB leaves unprocessed count as unknown: the conditional write decides.
    pub async fn unknown_tags<'a>(&self, repository: &str, tags: &[&'a str]) -> Result<Vec<&'a str>, WardenError> {
        let mut known = HashSet::new();
        for chunk in tags.chunks(KEYS_PER_READ) {
            let keys = chunk.iter().map(|tag| {
                HashMap::from([("pk".to_owned(), s(self.tag_pk(repository, tag))), ("sk".to_owned(), s("CURRENT"))])
            });
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys.collect()))
                .projection_expression("pk, digest")
                .consistent_read(true)
                .build()
                .map_err(|e| WardenError::Config(e.to_string()))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| aws_error("DynamoDB.BatchGetItem", e))?;
            let items = output.responses().and_then(|r| r.get(&self.table)).map_or(&[][..], Vec::as_slice);
            known.extend(
                items
                    .iter()
                    .filter(|item| item.contains_key("digest"))
                    .filter_map(|item| item.get("pk").and_then(|v| v.as_s().ok()).cloned()),
            );
        }
        Ok(tags.iter().copied().filter(|tag| !known.contains(&self.tag_pk(repository, tag))).collect())
    }

    /// Records `found` as the tag's pointer with a `backfilled` history entry, unless the ledger holds a pointer
    /// for the tag: `Ok(false)` then (or when a push of the tag is being recorded at this very moment).
    pub async fn backfill(
        &self,
        repository: &str,
        found: &Unrecorded,
        (at, event_id): (&str, &str),
    ) -> Result<bool, WardenError> {
        let pk = self.tag_pk(repository, &found.tag);
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("CURRENT"))
            .update_expression("SET digest = :d, since = :t, repository = :r, tag = :g, last_event = :e")
            .condition_expression("attribute_not_exists(digest)")
            .expression_attribute_values(":d", s(&found.digest))
            .expression_attribute_values(":t", s(&found.since))
            .expression_attribute_values(":r", s(repository))
            .expression_attribute_values(":g", s(&found.tag))
            .expression_attribute_values(":e", s(event_id))
            .build()
            .map_err(|e| WardenError::Config(e.to_string()))?;
        let entry = HistoryEntry {
            at: at.to_owned(),
            what: "backfilled".into(),
            digest: found.digest.clone(),
            detail: format!("found here by a backfill (image pushed {}); unknown to the ledger before", found.since),
            event_id: event_id.to_owned(),
        };
        // Not written when the pointer exists, or a push of this tag is being recorded now: either way the
        // ledger knows it. Any other reason for a cancellation (throttling, validation) is an error.
        self.transact_unless_held(&pk, update, &entry).await
    }

    /// Backfills the protected tags `found` in `repository` (see [`crate::tags::protected_in`]) that the ledger
    /// does not know, stopping before a write once `stop_at` has passed.
    pub async fn backfill_all(
        &self,
        repository: &str,
        found: &[Unrecorded],
        (at, event_id): (&str, &str),
        stop_at: Option<SystemTime>,
    ) -> Result<Backfilled, WardenError> {
        let mut done = Backfilled { protected: found.len(), ..Backfilled::default() };
        let tags: Vec<&str> = found.iter().map(|f| f.tag.as_str()).collect();
        let unknown: HashSet<&str> = self.unknown_tags(repository, &tags).await?.into_iter().collect();
        let wanted: Vec<&Unrecorded> = found.iter().filter(|f| unknown.contains(f.tag.as_str())).collect();
        for (done_so_far, tag) in wanted.iter().enumerate() {
            if stop_at.is_some_and(|at| SystemTime::now() >= at) {
                done.left = wanted.len() - done_so_far;
                break;
            }
            if self.backfill(repository, tag, (at, event_id)).await? {
                done.recorded.push((tag.tag.clone(), tag.digest.clone()));
            }
        }
        Ok(done)
    }
}

/// Backfills one repository on its own (`warden tags backfill`): its images listed (DescribeImages pages), then
/// [`Ledger::backfill_all`] on the protected tags `rules` name. `Found::NoRepository` when it does not exist.
pub async fn backfill_repository(
    ecr: &aws_sdk_ecr::Client,
    ledger: &Ledger,
    (repository, rules): (&str, &crate::policy::TagRules),
    (at, event_id): (&str, &str),
    stop_at: Option<SystemTime>,
) -> Result<super::Found<Backfilled>, WardenError> {
    use super::Found;
    let images = match super::ecr::inventory_until(ecr, repository, stop_at).await? {
        Found::Yes(Some(images)) => images,
        Found::Yes(None) => return Ok(Found::Yes(Backfilled { left: 1, ..Backfilled::default() })),
        Found::NoImage => return Ok(Found::Yes(Backfilled::default())),
        Found::NoRepository => return Ok(Found::NoRepository),
    };
    let found = crate::tags::protected_in(rules, &images);
    ledger.backfill_all(repository, &found, (at, event_id), stop_at).await.map(Found::Yes)
}
