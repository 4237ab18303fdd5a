//! The ledger: one DynamoDB table (`pk`, `sk` strings; TTL attribute `expires_at`).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | where a tag points now | `TAG#<repository>:<tag>` | `CURRENT` |
//! | one change in a tag's history (a move, a revert, an acceptance by `warden tags accept`, ...) | `TAG#<repository>:<tag>` | `HIST#<time>#<event id>` |
//! | a notification claimed (`pending`, with the message) or `sent` (see `claims`; expires) | `NOTIFY#<event id>` | `<kind>` |
//! | a notification whose delivery failed after its actions were done (expires) | `NOTIFY#<event id>` | `PARKED#<kind>` |
//! | where an unfinished sweep resumes (the repository and phase it was in) | `SWEEP#<function>[#<repositories named>]` | `CURSOR` |
//! | a standing finding of a sweep last reported (drift, refused policies; expires: reported again weekly) | `STANDING#<function>[#<repositories named>]` | `<kind>` |
//! | the standing retention plan last reported for a repository (expires: reported again weekly) | `PLAN#<repository>` | `retention` |
//! | a tag ecr-warden added: a promotion (with its approval) or a quarantine tag (see `approvals`) | `OWN#<repository>` | `<digest>#<tag>` |
//! | the latest gate verdict on an image (see `approvals`) | `VERDICT#<repository>` | `<digest>` |
//! | a short lease on an image while its tags are removed (see `lease`) | `LEASE#<repository>@<digest>` | `LEASE` |
//! | a tag ecr-warden is removing, so its deletion event is known as its own (see `removals`; expires) | `REMOVAL#<repository>` | `<digest>#<tag>` |
//!
//! The current pointer is one conditional UpdateItem (which also returns what was there), a tag's history is
//! one Query, and conditional writes keep concurrent pushes of the same tag from overwriting each other.

use crate::WardenError;
use crate::error::aws_error;
use crate::tags::{LedgerObservation, TagPointer};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::Serialize;
use std::collections::HashMap;

/// How often an unchanged standing retention plan (dry run, or stopped by a cap) is reported again.
pub const STANDING_PLAN_REPEAT_SECONDS: i64 = 7 * 24 * 3600;

pub(super) type Item = HashMap<String, AttributeValue>;

/// What a conditional put found: it wrote the item (with this token), or another item held the key.
pub(super) enum Conditional {
    Written(String),
    Held(Item),
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A conditional write's result: `Ok(true)` written, `Ok(false)` its condition did not hold.
pub(super) fn written<O, E>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
    operation: &'static str,
) -> Result<bool, WardenError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(aws_error(operation, e)),
    }
}

pub(super) fn get(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

/// A token no other claim has: process, time and a counter.
pub fn claim_token() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{nanos:x}-{next:x}", std::process::id())
}

pub(super) fn pointer_of(item: &Item) -> Option<TagPointer> {
    Some(TagPointer {
        digest: get(item, "digest")?,
        since: get(item, "since").unwrap_or_default(),
        deleted_at: get(item, "deleted_at"),
    })
}

/// Where a sweep stands: the repository it is working on, and the phase (`native`, `retention`) it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepCursor {
    pub repository: String,
    pub phase: String,
}

/// One row of a tag's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    /// `current`, `moved`, `reverted`, `move-reported`, ...
    pub what: String,
    pub digest: String,
    pub detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub event_id: String,
}

#[derive(Debug, Clone)]
pub struct Ledger {
    pub(super) client: Client,
    pub(super) table: String,
    /// A hub's registry (`<account>:<region>`) every repository, lease, sweep and standing key is kept under, so
    /// that same-named repositories of two accounts never share a record; `None` for a single account, whose
    /// keys stay as they always were.
    scope: Option<String>,
}

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), scope: None }
    }

    /// The same table, its registry records kept under `scope` (a hub's `<account>:<region>`).
    #[must_use]
    pub fn scoped(&self, scope: &str) -> Self {
        Self { scope: Some(scope.to_owned()), ..self.clone() }
    }

    /// `pk` under this ledger's scope. Notification claims are keyed by event id and stay unscoped: the notify
    /// function and every retry find them whichever registry the event was about.
    pub(super) fn key(&self, pk: String) -> String {
        match &self.scope {
            Some(scope) => format!("{scope}#{pk}"),
            None => pk,
        }
    }

    pub(super) fn tag_pk(&self, repository: &str, tag: &str) -> String {
        self.key(format!("TAG#{repository}:{tag}"))
    }

    /// Where an unfinished sweep of `function` resumes: the repository it was working on and the phase it had
    /// reached there, if one stopped or was cut off.
    pub async fn sweep_cursor(&self, scope: &str) -> Result<Option<SweepCursor>, WardenError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(self.key(format!("SWEEP#{scope}"))))
            .key("sk", s("CURSOR"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB.GetItem", e))?;
        Ok(output.item().and_then(|item| {
            Some(SweepCursor { repository: get(item, "repository")?, phase: get(item, "phase").unwrap_or_default() })
        }))
    }

    /// Records where a sweep is: written before each repository it works on (and each phase), so a sweep that
    /// is cut off resumes there; `None`: the sweep finished, the next starts afresh.
    pub async fn save_sweep_cursor(
        &self,
        scope: &str,
        cursor: Option<&SweepCursor>,
        at: &str,
    ) -> Result<(), WardenError> {
        let pk = s(self.key(format!("SWEEP#{scope}")));
        match cursor {
            Some(cursor) => self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", pk)
                .item("sk", s("CURSOR"))
                .item("repository", s(&cursor.repository))
                .item("phase", s(&cursor.phase))
                .item("at", s(at))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_error("DynamoDB.PutItem", e)),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", s("CURSOR"))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_error("DynamoDB.DeleteItem", e)),
        }
    }

    /// An UpdateItem on a tag's current pointer.
    fn update_current(&self, repository: &str, tag: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(self.tag_pk(repository, tag)))
            .key("sk", s("CURRENT"))
    }

    /// Records that `tag` points at `pushed.digest` unless the ledger holds another digest, in which case it
    /// reports that digest instead (one UpdateItem either way).
    pub async fn record_push(
        &self,
        repository: &str,
        tag: &str,
        pushed: &TagPointer,
        event_id: &str,
    ) -> Result<LedgerObservation, WardenError> {
        let result = self
            .update_current(repository, tag)
            .update_expression("SET digest = :d, since = if_not_exists(since, :t), repository = :r, tag = :g, last_event = :e REMOVE deleted_at")
            .condition_expression("attribute_not_exists(digest) OR digest = :d")
            .expression_attribute_values(":d", s(&pushed.digest))
            .expression_attribute_values(":t", s(&pushed.since))
            .expression_attribute_values(":r", s(repository))
            .expression_attribute_values(":g", s(tag))
            .expression_attribute_values(":e", s(event_id))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(match output.attributes() {
                Some(old) if old.contains_key("digest") => LedgerObservation::Unchanged,
                _ => LedgerObservation::New,
            }),
            Err(e) => {
                let old = match e.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c),
                    ) => c.item().cloned(),
                    _ => None,
                };
                match old.as_ref().and_then(pointer_of) {
                    Some(current) if current.since.as_str() > pushed.since.as_str() => {
                        Ok(LedgerObservation::Newer { current })
                    }
                    Some(previous) => Ok(LedgerObservation::Moved { previous }),
                    None => Err(aws_error("DynamoDB.UpdateItem", e)),
                }
            }
        }
    }

    /// Moves the recorded pointer from `previous` to `pushed` and keeps the old pointer as history, in one
    /// transaction conditional on the ledger still holding `previous`.
    pub async fn accept_move(
        &self,
        repository: &str,
        tag: &str,
        previous: &TagPointer,
        pushed: &TagPointer,
        event_id: &str,
    ) -> Result<(), WardenError> {
        let pk = self.tag_pk(repository, tag);
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("CURRENT"))
            .update_expression("SET digest = :d, since = :t, last_event = :e REMOVE deleted_at")
            .condition_expression("digest = :prev")
            .expression_attribute_values(":d", s(&pushed.digest))
            .expression_attribute_values(":t", s(&pushed.since))
            .expression_attribute_values(":e", s(event_id))
            .expression_attribute_values(":prev", s(&previous.digest))
            .build()
            .map_err(|e| WardenError::Config(e.to_string()))?;
        let ended = previous.deleted_at.as_deref().map_or(String::new(), |at| format!(", tag deleted at {at}"));
        let entry = HistoryEntry {
            at: pushed.since.clone(),
            what: "moved".into(),
            digest: previous.digest.clone(),
            detail: format!("pointed here since {}{ended}; moved to {}", previous.since, pushed.digest),
            event_id: event_id.to_owned(),
        };
        // Another push of the same tag won the race: retrying re-reads the ledger.
        self.transact_with_history(&pk, update, &entry).await.map_err(|mut error| {
            if let WardenError::Aws { retryable, code, .. } = &mut error
                && code == "TransactionCanceledException"
            {
                *retryable = true;
            }
            error
        })
    }

    /// A tag's pointer changed (`update`, conditional) and `entry` added to its history, in one transaction: a
    /// failed condition cancels both (`TransactionCanceledException`).
    pub(super) async fn transact_with_history(
        &self,
        pk: &str,
        update: Update,
        entry: &HistoryEntry,
    ) -> Result<(), WardenError> {
        self.send_with_history(pk, update, entry).await?.map_err(|e| {
            // Named whatever the answer's metadata says, so callers can tell a failed condition from a fault.
            let cancelled = e.as_service_error().is_some_and(|se| se.is_transaction_canceled_exception());
            let mut error = aws_error("DynamoDB.TransactWriteItems", e);
            if let (true, WardenError::Aws { code, .. }) = (cancelled, &mut error) {
                "TransactionCanceledException".clone_into(code);
            }
            error
        })
    }

    /// [`Ledger::transact_with_history`], `Ok(false)` when the transaction was cancelled only because its
    /// condition failed or another write of the same item was under way; any other cancellation is an error.
    pub(super) async fn transact_unless_held(
        &self,
        pk: &str,
        update: Update,
        entry: &HistoryEntry,
    ) -> Result<bool, WardenError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let error = match self.send_with_history(pk, update, entry).await? {
            Ok(()) => return Ok(true),
            Err(error) => error,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error() {
            let held = ["ConditionalCheckFailed", "TransactionConflict", "None"];
            let reasons = cancelled.cancellation_reasons();
            if !reasons.is_empty() && reasons.iter().all(|r| held.contains(&r.code().unwrap_or("None"))) {
                return Ok(false);
            }
        }
        Err(aws_error("DynamoDB.TransactWriteItems", error))
    }

    /// The transaction of [`Ledger::transact_with_history`], its SDK error as it came.
    async fn send_with_history(
        &self,
        pk: &str,
        update: Update,
        entry: &HistoryEntry,
    ) -> Result<
        Result<
            (),
            aws_sdk_dynamodb::error::SdkError<
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
                aws_smithy_runtime_api::http::Response,
            >,
        >,
        WardenError,
    > {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.history_item(pk, entry)))
            .build()
            .map_err(|e| WardenError::Config(e.to_string()))?;
        Ok(self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map(|_| ()))
    }

    /// Writes one item unconditionally (a record written before the change it announces, a history entry).
    pub(super) async fn put(&self, item: Item) -> Result<(), WardenError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DynamoDB.PutItem", e))
    }

    pub(super) fn history_item(&self, pk: &str, entry: &HistoryEntry) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(format!("HIST#{}#{}", entry.at, entry.event_id))),
            ("at".to_owned(), s(&entry.at)),
            ("what".to_owned(), s(&entry.what)),
            ("digest".to_owned(), s(&entry.digest)),
            ("detail".to_owned(), s(&entry.detail)),
            ("event_id".to_owned(), s(&entry.event_id)),
        ])
    }

    /// Adds one history entry (a revert, a reported move). Keyed by time and event id, so a replay rewrites
    /// the same item.
    pub async fn record_history(&self, repository: &str, tag: &str, entry: &HistoryEntry) -> Result<(), WardenError> {
        self.put(self.history_item(&self.tag_pk(repository, tag), entry)).await
    }

    /// Marks a tag deleted if the ledger has it at `digest`. `Ok(false)`: the ledger had nothing to mark.
    pub async fn record_delete(
        &self,
        repository: &str,
        tag: &str,
        digest: &str,
        at: &str,
    ) -> Result<bool, WardenError> {
        let result = self
            .update_current(repository, tag)
            .update_expression("SET deleted_at = if_not_exists(deleted_at, :t)")
            .condition_expression("digest = :d")
            .expression_attribute_values(":d", s(digest))
            .expression_attribute_values(":t", s(at))
            .send()
            .await;
        written(result, "DynamoDB.UpdateItem")
    }

    /// Records that a standing finding (`pk` / `sk`: what it is about) with this fingerprint was reported:
    /// `Ok(true)` when it is new, changed, or last reported more than [`STANDING_PLAN_REPEAT_SECONDS`] ago.
    pub async fn note_standing(
        &self,
        pk: &str,
        sk: &str,
        fingerprint: &str,
        now_epoch: i64,
    ) -> Result<bool, WardenError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(self.key(pk.to_owned()))),
            ("sk".to_owned(), s(sk)),
            ("fingerprint".to_owned(), s(fingerprint)),
            ("expires_at".to_owned(), AttributeValue::N((now_epoch + STANDING_PLAN_REPEAT_SECONDS).to_string())),
        ]);
        // TTL deletes lazily (within days), so an expired record still present counts as absent.
        let condition = "attribute_not_exists(pk) OR fingerprint <> :fingerprint OR expires_at < :now";
        let values = [(":fingerprint", s(fingerprint)), (":now", AttributeValue::N(now_epoch.to_string()))];
        self.put_claimed(item, condition, &values).await
    }

    /// Forgets a standing finding's last report (its report failed: the retry tells again).
    pub async fn forget_standing(&self, pk: &str, sk: &str) -> Result<(), WardenError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(self.key(pk.to_owned())))
            .key("sk", s(sk))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DynamoDB.DeleteItem", e))
    }

    /// Puts `item` if `condition` holds. `Ok(true)`: this call wrote it; `Ok(false)`: the condition failed.
    ///
    /// Each write carries a token of its own: when the SDK retries a write whose first attempt landed but whose
    /// response was lost (a 5xx or timeout after the write), the retry meets its own item and is told so with the
    /// conditional failure (`ALL_OLD`), instead of taking it for another invocation's and dropping the
    /// notification it guards.
    pub(super) async fn put_claimed(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, WardenError> {
        Ok(matches!(self.put_or_held(item, condition, values).await?, Conditional::Written(_)))
    }

    /// [`Ledger::put_claimed`], answering with the token the written item carries (`None`: not written).
    pub(super) async fn put_with_token(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Option<String>, WardenError> {
        Ok(match self.put_or_held(item, condition, values).await? {
            Conditional::Written(token) => Some(token),
            Conditional::Held(_) => None,
        })
    }

    /// [`Ledger::put_claimed`], answering with the token written, or the item that kept it from being written.
    pub(super) async fn put_or_held(
        &self,
        mut item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Conditional, WardenError> {
        let token = claim_token();
        item.insert("claim".to_owned(), s(&token));
        let key: Item = ["pk", "sk"].iter().filter_map(|k| Some(((*k).to_owned(), item.get(*k)?.clone()))).collect();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            put = put.expression_attribute_values(*name, value.clone());
        }
        let error = match put.send().await {
            Ok(_) => return Ok(Conditional::Written(token)),
            Err(error) => error,
        };
        if let Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) =
            error.as_service_error()
        {
            let held = c.item().cloned().unwrap_or_default();
            let ours = get(&held, "claim").is_some_and(|claim| claim == token);
            return Ok(if ours { Conditional::Written(token) } else { Conditional::Held(held) });
        }
        // One attempt may have been written with its answer lost: take that write back (only ours, by its token)
        // so the retried invocation can write again. One left behind would silence its notification for good,
        // so this tries harder than once.
        for attempt in 1..=3 {
            match self.delete_held(key.clone(), &token).await {
                Ok(()) => break,
                Err(e) if attempt == 3 => {
                    tracing::error!(error = %e, "could not take back a claim that may have been written: a notification may be lost");
                }
                Err(_) => {}
            }
        }
        Err(aws_error("DynamoDB.PutItem", error))
    }

    /// Deletes the item at `key` if it still carries `token` (a claim or lease this invocation holds); one
    /// another holder took over meanwhile is left to it.
    pub(super) async fn delete_held(&self, key: Item, token: &str) -> Result<(), WardenError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("claim = :token")
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        written(result, "DynamoDB.DeleteItem").map(|_| ())
    }

    /// What a tag pointed to over time, oldest first, ending with where it points now (one Query, all pages).
    pub async fn history(&self, repository: &str, tag: &str) -> Result<Vec<HistoryEntry>, WardenError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(self.tag_pk(repository, tag)))
            .into_paginator()
            .send();
        let mut entries = Vec::new();
        let mut current = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB.Query", e))?;
            for item in page.items() {
                if get(item, "sk").as_deref() == Some("CURRENT") {
                    current = pointer_of(item);
                } else {
                    entries.push(HistoryEntry {
                        at: get(item, "at").unwrap_or_default(),
                        what: get(item, "what").unwrap_or_default(),
                        digest: get(item, "digest").unwrap_or_default(),
                        detail: get(item, "detail").unwrap_or_default(),
                        event_id: get(item, "event_id").unwrap_or_default(),
                    });
                }
            }
        }
        if let Some(current) = current {
            let detail = match &current.deleted_at {
                Some(at) => format!("tag deleted at {at}"),
                None => "where the tag points now".to_owned(),
            };
            entries.push(HistoryEntry {
                at: current.since,
                what: "current".into(),
                digest: current.digest,
                detail,
                event_id: String::new(),
            });
        }
        Ok(entries)
    }
}
