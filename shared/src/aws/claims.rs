//! The ledger's notification claims: each notification of an event is sent at most once per destination,
//! and a claimed one is never lost to a kill.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | a claim: `state` `pending` (with the `notification` and the `holder`) or `sent` | `NOTIFY#<event id>` | `<claim key>` |
//! | a notification parked for the retry of a failed invocation | `NOTIFY#<event id>` | `PARKED#<claim kind>` |
//!
//! | found | what the claimant does |
//! |---|---|
//! | no claim | writes `pending` (conditional: one writer wins), publishes, marks it `sent` |
//! | `sent` (or a claim from before claims had states) | nothing: it was sent |
//! | `pending`, held by this invocation's request id | takes it over (its own earlier attempt died between claim and `sent`: Lambda retries an invocation under the same request id) and publishes the message stored with it |
//! | `pending`, held by another request for longer than any invocation runs ([`PENDING_STALE_SECONDS`]) | takes it over the same way: its holder is dead |
//! | `pending`, held by another live request (a duplicate delivery) | nothing: the holder sends it, or its retry does |
//!
//! A publish that fails gives the claim back (the retry claims anew). A kill after the publish and before the
//! `sent` mark sends that one message again on the retry: SNS cannot tell a repeated publish from a new one.
//! Claims live [`NOTIFY_TTL_SECONDS`], longer than a failed event waits in the failure queue for a redrive.

use super::ledger::{Conditional, Item, Ledger, get, s, written};
use crate::WardenError;
use crate::error::aws_error;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// How long claims and parked notifications live: longer than a failed event can wait in the failure queue
/// (SQS keeps messages up to 14 days) before someone redrives it.
pub const NOTIFY_TTL_SECONDS: i64 = 15 * 24 * 3600;

/// A `pending` claim older than this outlived its holder: no invocation runs longer (Lambda's limit is 15
/// minutes).
pub const PENDING_STALE_SECONDS: i64 = 16 * 60;

/// What claiming a notification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation holds it (`token`): publish `notification` (the stored one, when taken over), then mark
    /// it sent.
    Ours { token: String, notification: Option<String> },
    /// Sent already, or being sent by another live invocation.
    Taken,
}

fn notify_pk(event_id: &str) -> String {
    format!("NOTIFY#{event_id}")
}

fn number(item: &Item, key: &str) -> Option<i64> {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// A claim held by another item: whether this holder may take it over.
fn may_take_over(held: &Item, holder: &str, now_epoch: i64) -> bool {
    let pending = get(held, "state").as_deref() == Some("pending");
    let mine = get(held, "holder").as_deref() == Some(holder);
    let stale = number(held, "claimed_at").is_some_and(|at| at + PENDING_STALE_SECONDS < now_epoch);
    pending && (mine || stale)
}

impl Ledger {
    /// Claims notification `key` of an event for `holder` (the invocation's request id), storing the
    /// `notification` (JSON) with the claim so whoever takes it over sends the same message.
    pub async fn claim_notification(
        &self,
        event_id: &str,
        key: &str,
        holder: &str,
        notification: &str,
        now_epoch: i64,
    ) -> Result<Claim, WardenError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(notify_pk(event_id))),
            ("sk".to_owned(), s(key)),
            ("state".to_owned(), s("pending")),
            ("holder".to_owned(), s(holder)),
            ("notification".to_owned(), s(notification)),
            ("claimed_at".to_owned(), AttributeValue::N(now_epoch.to_string())),
            ("expires_at".to_owned(), AttributeValue::N((now_epoch + NOTIFY_TTL_SECONDS).to_string())),
        ]);
        match self.put_or_held(item, "attribute_not_exists(pk)", &[]).await? {
            Conditional::Written(token) => Ok(Claim::Ours { token, notification: None }),
            Conditional::Held(held) if may_take_over(&held, holder, now_epoch) => {
                self.take_over(event_id, key, &held, holder, now_epoch).await
            }
            Conditional::Held(_) => Ok(Claim::Taken),
        }
    }

    /// Takes over a `pending` claim from its dead holder (a conditional update on its token: of two takers,
    /// one wins).
    async fn take_over(
        &self,
        event_id: &str,
        key: &str,
        held: &Item,
        holder: &str,
        now_epoch: i64,
    ) -> Result<Claim, WardenError> {
        let (old, token) = (get(held, "claim").unwrap_or_default(), super::ledger::claim_token());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notify_pk(event_id)))
            .key("sk", s(key))
            .update_expression("SET claim = :token, holder = :holder, claimed_at = :now")
            .condition_expression("claim = :old AND #state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":now", AttributeValue::N(now_epoch.to_string()))
            .expression_attribute_values(":old", s(old))
            .expression_attribute_values(":pending", s("pending"))
            .send()
            .await;
        Ok(match written(result, "DynamoDB.UpdateItem")? {
            true => Claim::Ours { token, notification: get(held, "notification") },
            false => Claim::Taken,
        })
    }

    /// Marks a claim this invocation published as `sent` (and drops the stored message).
    pub async fn mark_sent(&self, event_id: &str, key: &str, token: &str) -> Result<(), WardenError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notify_pk(event_id)))
            .key("sk", s(key))
            .update_expression("SET #state = :sent REMOVE notification, holder")
            .condition_expression("claim = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        // Not written: taken over meanwhile (this invocation was presumed dead), and the taker marks it.
        written(result, "DynamoDB.UpdateItem").map(|_| ())
    }

    /// Gives a claim back after a failed publish (only this holder's: by its token), so the retry claims anew.
    pub async fn release_notification(&self, event_id: &str, key: &str, token: &str) -> Result<(), WardenError> {
        self.delete_held(HashMap::from([("pk".to_owned(), s(notify_pk(event_id))), ("sk".to_owned(), s(key))]), token)
            .await
    }

    /// Keeps a notification whose delivery failed after the invocation changed something, so EventBridge's
    /// retry, which finds the change already made and has nothing left to decide, still sends it
    /// ([`Ledger::unfinished_notifications`]). `claim_kind` is the dedup claim it is sent under.
    pub async fn park_notification(
        &self,
        event_id: &str,
        claim_kind: &str,
        notification_json: &str,
        now_epoch: i64,
    ) -> Result<(), WardenError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(notify_pk(event_id)))
            .item("sk", s(format!("PARKED#{claim_kind}")))
            .item("notification", s(notification_json))
            .item("expires_at", AttributeValue::N((now_epoch + NOTIFY_TTL_SECONDS).to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DynamoDB.PutItem", e))
    }

    /// What earlier attempts of an event left to send (one Query): the notifications they parked (claim kind,
    /// JSON), and the claims still `pending` that `holder` may take over (claim key, JSON), since an attempt
    /// killed between claim and publish left them.
    pub async fn unfinished_notifications(
        &self,
        event_id: &str,
        holder: &str,
        now_epoch: i64,
    ) -> Result<Unfinished, WardenError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(notify_pk(event_id)))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB.Query", e))?;
        let mut unfinished = Unfinished::default();
        for item in output.items() {
            let (Some(sk), Some(json)) = (get(item, "sk"), get(item, "notification")) else { continue };
            match sk.strip_prefix("PARKED#") {
                Some(kind) => unfinished.parked.push((kind.to_owned(), json)),
                None if may_take_over(item, holder, now_epoch) => unfinished.pending.push((sk, json)),
                None => {}
            }
        }
        Ok(unfinished)
    }

    /// Removes a parked notification once it is delivered.
    pub async fn unpark_notification(&self, event_id: &str, claim_kind: &str) -> Result<(), WardenError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(notify_pk(event_id)))
            .key("sk", s(format!("PARKED#{claim_kind}")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DynamoDB.DeleteItem", e))
    }
}

/// What earlier attempts of an event left to send (see [`Ledger::unfinished_notifications`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unfinished {
    /// (claim kind, notification JSON) parked by an attempt whose publish failed after it changed something.
    pub parked: Vec<(String, String)>,
    /// (claim key, notification JSON) claimed by an attempt killed before it was sent.
    pub pending: Vec<(String, String)>,
}
