//! The ledger's record of multi-architecture images, so a scan event naming a platform image (a child) finds
//! the indexes that list it: scanners never name the index.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | an index's gated children, and those whose scan has completed since | `INDEX#<repository>` | `<index digest>` |
//! | a child listed by an index | `CHILD#<repository>` | `<child digest>#<index digest>` |
//!
//! Written when the index is pushed (one transaction), read with one Query per scan event. Counting completed
//! scans lets the last child's completion gate the index, so an index of N children costs O(N) reads once,
//! not once per child. These records only route events: every decision re-reads the index manifest and each
//! child's scan from the registry.

use super::ledger::{Ledger, get, s};
use crate::WardenError;
use crate::error::aws_error;
use crate::gate::index::Child;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};

/// Items in one DynamoDB transaction.
const TRANSACTION_LIMIT: usize = 100;

/// How far an index's children have been scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    pub scanned: usize,
    pub children: usize,
}

impl ScanProgress {
    pub fn complete(self) -> bool {
        self.scanned >= self.children
    }
}

impl Ledger {
    fn index_key(&self, repository: &str, index: &str) -> [(&'static str, AttributeValue); 2] {
        [("pk", s(self.key(format!("INDEX#{repository}")))), ("sk", s(index))]
    }

    /// Records that `index` of `repository` lists `children` (those the gate judges): the index's item and one
    /// item per child, in transactions of at most 100 items (the first holds the index's). Completed scans
    /// already counted are kept, so a replayed push loses nothing.
    pub async fn record_index(
        &self,
        repository: &str,
        index: &str,
        children: &[&Child],
        event_id: &str,
    ) -> Result<(), WardenError> {
        let digests: Vec<String> = children.iter().map(|c| c.digest.clone()).collect();
        let mut update = Update::builder()
            .table_name(&self.table)
            .update_expression("SET children = :c, repository = :r, last_event = :e")
            .expression_attribute_values(":c", AttributeValue::L(digests.iter().map(s).collect()))
            .expression_attribute_values(":r", s(repository))
            .expression_attribute_values(":e", s(event_id));
        for (name, value) in self.index_key(repository, index) {
            update = update.key(name, value);
        }
        let mut writes = vec![
            TransactWriteItem::builder()
                .update(update.build().map_err(|e| WardenError::Config(e.to_string()))?)
                .build(),
        ];
        for child in children {
            let put = Put::builder()
                .table_name(&self.table)
                .item("pk", s(self.key(format!("CHILD#{repository}"))))
                .item("sk", s(format!("{}#{index}", child.digest)))
                .item("index", s(index))
                .item("platform", s(&child.platform))
                .build()
                .map_err(|e| WardenError::Config(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        for chunk in writes.chunks(TRANSACTION_LIMIT) {
            self.client
                .transact_write_items()
                .set_transact_items(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("DynamoDB.TransactWriteItems", e))?;
        }
        Ok(())
    }

    /// The indexes of `repository` that list `child` (one Query, all pages).
    pub async fn indexes_of(&self, repository: &str, child: &str) -> Result<Vec<String>, WardenError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :child)")
            .expression_attribute_values(":pk", s(self.key(format!("CHILD#{repository}"))))
            .expression_attribute_values(":child", s(format!("{child}#")))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut indexes = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| aws_error("DynamoDB.Query", e))?;
            indexes.extend(get(&item, "index"));
        }
        Ok(indexes)
    }

    /// Counts `child`'s completed scan for `index` and answers how many of the index's children have one
    /// (one UpdateItem; a replay adds nothing: the scanned children are a set).
    pub async fn child_scanned(&self, repository: &str, index: &str, child: &str) -> Result<ScanProgress, WardenError> {
        self.children_scanned(repository, index, &[child]).await
    }

    /// [`Ledger::child_scanned`] for several children at once (gating the index found them scanned). Nothing
    /// to count: no call.
    pub async fn children_scanned(
        &self,
        repository: &str,
        index: &str,
        children: &[&str],
    ) -> Result<ScanProgress, WardenError> {
        if children.is_empty() {
            return Ok(ScanProgress { scanned: 0, children: 0 });
        }
        let scanned = AttributeValue::Ss(children.iter().map(|c| (*c).to_owned()).collect());
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .update_expression("ADD scanned :c")
            .expression_attribute_values(":c", scanned)
            .return_values(ReturnValue::AllNew);
        for (name, value) in self.index_key(repository, index) {
            update = update.key(name, value);
        }
        let output = update.send().await.map_err(|e| aws_error("DynamoDB.UpdateItem", e))?;
        let item = output.attributes();
        let children: Vec<String> = item
            .and_then(|i| i.get("children"))
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default();
        let scanned = item.and_then(|i| i.get("scanned")).and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
        Ok(ScanProgress { scanned: children.iter().filter(|c| scanned.contains(c)).count(), children: children.len() })
    }
}
