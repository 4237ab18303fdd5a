//! The ledger's record of what ecr-warden itself decided about images: every tag it adds itself (a promotion
//! tag, with the approval behind it, or a quarantine tag) and the latest gate verdict per image.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | a tag ecr-warden added (written before the tag is) | `OWN#<repository>` | `<digest>#<tag>` |
//! | the latest gate verdict on an image | `VERDICT#<repository>` | `<digest>` |
//!
//! tag-guard believes a promotion- or quarantine-shaped tag is ecr-warden's only when its record is here (one
//! GetItem); its sweep reads a repository's records with one Query. scan-gate records an approval and the
//! passing verdict in one transaction, conditional on no later failing verdict, before it adds the tags; a
//! demotion records the failing verdict and deletes the approvals in one transaction before it removes them.

use super::ledger::{Ledger, get, s};
use crate::WardenError;
use crate::error::aws_error;
use crate::gate::{Approval, Approved, RecordedVerdict};
use crate::policy::OwnTagKind;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;

/// A tag ecr-warden added, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnTagRecord {
    pub repository: String,
    pub digest: String,
    pub tag: String,
    pub kind: OwnTagKind,
    /// The event whose handling added it.
    pub event_id: String,
    /// The function that added it.
    pub function: String,
}

fn own_sk(digest: &str, tag: &str) -> String {
    format!("{digest}#{tag}")
}

fn record_of(item: &HashMap<String, AttributeValue>) -> Option<OwnTagRecord> {
    let kind = match get(item, "kind")?.as_str() {
        "promotion" => OwnTagKind::Promotion,
        "quarantine" => OwnTagKind::Quarantine,
        _ => return None,
    };
    Some(OwnTagRecord {
        repository: get(item, "repository")?,
        digest: get(item, "digest")?,
        tag: get(item, "tag")?,
        kind,
        event_id: get(item, "event_id").unwrap_or_default(),
        function: get(item, "function").unwrap_or_default(),
    })
}

fn verdict_of(item: &HashMap<String, AttributeValue>) -> Option<RecordedVerdict> {
    Some(RecordedVerdict {
        pass: get(item, "verdict")? == "pass",
        evidence_at: item.get("evidence_at")?.as_n().ok()?.parse().ok()?,
        event_id: get(item, "event_id").unwrap_or_default(),
    })
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, WardenError> {
    built.map_err(|e| WardenError::Config(e.to_string()))
}

impl Ledger {
    fn own_pk(&self, repository: &str) -> String {
        self.key(format!("OWN#{repository}"))
    }

    fn verdict_key(&self, repository: &str, digest: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_owned(), s(self.key(format!("VERDICT#{repository}")))), ("sk".to_owned(), s(digest))])
    }

    fn own_item(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
        kind: OwnTagKind,
        event_id: &str,
        function: &str,
    ) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), s(self.own_pk(repository))),
            ("sk".to_owned(), s(own_sk(digest, tag))),
            ("repository".to_owned(), s(repository)),
            ("digest".to_owned(), s(digest)),
            ("tag".to_owned(), s(tag)),
            ("kind".to_owned(), s(kind.as_str())),
            ("event_id".to_owned(), s(event_id)),
            ("function".to_owned(), s(function)),
        ])
    }

    /// The record of ecr-warden having added `tag` to `digest`, if it did (one strongly consistent GetItem).
    pub async fn own_tag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
    ) -> Result<Option<OwnTagRecord>, WardenError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(self.own_pk(repository)))
            .key("sk", s(own_sk(digest, tag)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB.GetItem", e))?;
        Ok(output.item().and_then(record_of))
    }

    /// Every tag ecr-warden added in a repository (one Query, all pages).
    pub async fn own_tags(&self, repository: &str) -> Result<Vec<OwnTagRecord>, WardenError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(self.own_pk(repository)))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut records = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB.Query", e))?;
            records.extend(page.items().iter().filter_map(record_of));
        }
        Ok(records)
    }

    /// Records that ecr-warden adds the quarantine tag `tag` to `digest`; written before the tag is, so the push
    /// event it causes finds it.
    pub async fn record_quarantine(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
        event_id: &str,
        function: &str,
    ) -> Result<(), WardenError> {
        self.put(self.own_item(repository, digest, tag, OwnTagKind::Quarantine, event_id, function)).await
    }

    /// Records an approval and its passing verdict in one transaction, unless a failing verdict based on
    /// evidence at least as new stands ([`Approved::Superseded`]). Repeating it (a replay, a retry after a lost
    /// answer) records the same again.
    pub async fn approve(&self, approval: &Approval) -> Result<Approved, WardenError> {
        let verdict = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.verdict_key(&approval.repository, &approval.digest)))
                .update_expression("SET verdict = :pass, evidence_at = :at, event_id = :event")
                .condition_expression("attribute_not_exists(verdict) OR verdict = :pass OR evidence_at < :at")
                .expression_attribute_values(":pass", s("pass"))
                .expression_attribute_values(":at", AttributeValue::N(approval.evidence_at.to_string()))
                .expression_attribute_values(":event", s(&approval.event_id))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build(),
        )?;
        let mut request =
            self.client.transact_write_items().transact_items(TransactWriteItem::builder().update(verdict).build());
        for tag in &approval.tags {
            let mut item = self.own_item(
                &approval.repository,
                &approval.digest,
                tag,
                OwnTagKind::Promotion,
                &approval.event_id,
                "scan-gate",
            );
            item.insert("verdict".to_owned(), s("pass"));
            item.insert("scanner".to_owned(), s(approval.scanner.as_str()));
            item.insert("evidence_at".to_owned(), AttributeValue::N(approval.evidence_at.to_string()));
            if let Some(scanned_at) = approval.scanned_at {
                item.insert("scanned_at".to_owned(), AttributeValue::N(scanned_at.to_string()));
            }
            item.insert("policy".to_owned(), s(&approval.policy));
            let put = build(Put::builder().table_name(&self.table).set_item(Some(item)).build())?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        match request.send().await {
            Ok(_) => Ok(Approved::Recorded),
            Err(e) => {
                let superseded = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                        cancelled.cancellation_reasons().first().filter(|r| r.code() == Some("ConditionalCheckFailed"))
                    }
                    _ => None,
                };
                match superseded {
                    Some(reason) => {
                        Ok(Approved::Superseded(reason.item().and_then(verdict_of).unwrap_or(RecordedVerdict {
                            pass: false,
                            evidence_at: approval.evidence_at,
                            event_id: String::new(),
                        })))
                    }
                    None => Err(aws_error("DynamoDB.TransactWriteItems", e)),
                }
            }
        }
    }

    /// Records a failing verdict on an image and deletes the approvals of `tags`, in one transaction: from here
    /// on those tags are no approval, and a passing scan older than `evidence_at` does not re-promote the image.
    pub async fn revoke(
        &self,
        repository: &str,
        digest: &str,
        tags: &[String],
        evidence_at: i64,
        event_id: &str,
    ) -> Result<(), WardenError> {
        let verdict = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.verdict_key(repository, digest)))
                .update_expression("SET verdict = :fail, evidence_at = :at, event_id = :event")
                .expression_attribute_values(":fail", s("fail"))
                .expression_attribute_values(":at", AttributeValue::N(evidence_at.to_string()))
                .expression_attribute_values(":event", s(event_id))
                .build(),
        )?;
        let mut request =
            self.client.transact_write_items().transact_items(TransactWriteItem::builder().update(verdict).build());
        for tag in tags {
            let delete = build(
                Delete::builder()
                    .table_name(&self.table)
                    .key("pk", s(self.own_pk(repository)))
                    .key("sk", s(own_sk(digest, tag)))
                    .build(),
            )?;
            request = request.transact_items(TransactWriteItem::builder().delete(delete).build());
        }
        request.send().await.map(|_| ()).map_err(|e| aws_error("DynamoDB.TransactWriteItems", e))
    }
}
