//! Queues a hub's sweep work items (`crate::fanout`) on the function's FIFO queue.

use crate::WardenError;
use crate::error::aws_error;
use crate::fanout::WorkItem;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// SQS takes at most ten messages per SendMessageBatch.
const BATCH: usize = 10;

/// Sends `items` to `queue_url`, ten per call. An entry SQS refuses fails the whole plan, retryable unless SQS
/// says the fault is the sender's: the retried schedule queues again, and deduplication drops what already went.
pub async fn queue(sqs: &aws_sdk_sqs::Client, queue_url: &str, items: &[WorkItem]) -> Result<(), WardenError> {
    for chunk in items.chunks(BATCH) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, item)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(&item.body)
                    .message_group_id(&item.group)
                    .message_deduplication_id(&item.dedup_id)
                    .build()
                    .map_err(|e| WardenError::Unexpected(format!("work item: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_error("SQS.SendMessageBatch", e))?;
        if let Some(failed) = sent.failed().first() {
            return Err(WardenError::Aws {
                operation: "SQS.SendMessageBatch",
                code: failed.code().to_owned(),
                message: format!(
                    "{} of {} work items not queued: {}",
                    sent.failed().len(),
                    chunk.len(),
                    failed.message().unwrap_or_default()
                ),
                retryable: !failed.sender_fault(),
            });
        }
    }
    Ok(())
}

/// The organization's active accounts (Organizations ListAccounts, every page): the members an organization-wide
/// hub sweeps. The hub runs in the management account or one the organization delegated this read to.
pub async fn organization_accounts(organizations: &aws_sdk_organizations::Client) -> Result<Vec<String>, WardenError> {
    use aws_sdk_organizations::types::{AccountState, AccountStatus};
    let mut pages = organizations.list_accounts().into_paginator().send();
    let mut accounts = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("Organizations.ListAccounts", e))?;
        // `State` replaced `Status` (retired September 2026); an account that says neither is not swept.
        let active = |account: &&aws_sdk_organizations::types::Account| match account.state() {
            Some(state) => *state == AccountState::Active,
            None => account.status() == Some(&AccountStatus::Active),
        };
        accounts.extend(page.accounts().iter().filter(active).filter_map(|a| a.id().map(str::to_owned)));
    }
    Ok(accounts)
}
