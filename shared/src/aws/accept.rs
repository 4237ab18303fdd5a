//! Accepting a legitimate move of a protected tag (`warden tags accept`): the ledger's pointer moves to where
//! the tag points now (or to a named image of the repository), with a history entry naming who and why. From
//! then on tag-guard treats that image as the tag's recorded one. The registry is read fresh; the ledger is
//! changed only if it still holds what was read (a concurrent push wins, and the command says so).

use super::Found;
use super::ecr::{describe_digest, describe_tag};
use super::ledger::{HistoryEntry, Ledger, pointer_of, s};
use crate::WardenError;
use crate::error::aws_error;
use crate::tags::TagPointer;
use aws_sdk_dynamodb::types::Update;

/// What an acceptance found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The ledger now records the tag at `digest`; `previous` is what it recorded before (`None`: nothing).
    Moved { previous: Option<TagPointer>, digest: String },
    /// The ledger recorded the tag at that image already.
    AlreadyRecorded { digest: String },
}

impl Ledger {
    /// Where the ledger records `tag` now (strongly consistent).
    pub async fn current(&self, repository: &str, tag: &str) -> Result<Option<TagPointer>, WardenError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(self.tag_pk(repository, tag)))
            .key("sk", s("CURRENT"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB.GetItem", e))?;
        Ok(output.item().and_then(pointer_of))
    }
}

/// Accepts `tag` of `repository` at `digest` (default: where the tag points now), for `who` and `why`, at
/// `now` (RFC 3339).
pub async fn accept(
    ecr: &aws_sdk_ecr::Client,
    ledger: &Ledger,
    (repository, tag, digest): (&str, &str, Option<&str>),
    (who, why): (&str, &str),
    now: &str,
) -> Result<Accepted, WardenError> {
    let image = match digest {
        Some(digest) => describe_digest(ecr, repository, digest).await?,
        None => describe_tag(ecr, repository, tag).await?,
    };
    let digest = match image {
        Found::Yes(image) => image.digest,
        Found::NoRepository => return Err(WardenError::Config(format!("no repository {repository}"))),
        Found::NoImage => {
            let what = digest.map_or_else(|| format!("tag `{tag}`"), |d| format!("image {d}"));
            return Err(WardenError::Config(format!("{repository} has no {what}: nothing to accept")));
        }
    };
    let previous = ledger.current(repository, tag).await?;
    if previous.as_ref().is_some_and(|p| p.digest == digest && p.deleted_at.is_none()) {
        return Ok(Accepted::AlreadyRecorded { digest });
    }
    let was = previous.as_ref().map_or_else(|| "nothing recorded".to_owned(), |p| format!("was {}", p.digest));
    let entry = HistoryEntry {
        at: now.to_owned(),
        what: "accepted".into(),
        digest: digest.clone(),
        detail: format!("accepted by {who}: {why} ({was})"),
        event_id: format!("accept-{now}"),
    };
    ledger.record_acceptance(repository, tag, previous.as_ref(), &entry).await?;
    Ok(Accepted::Moved { previous, digest })
}

impl Ledger {
    /// The pointer moved to `entry.digest` and the history entry written, in one transaction conditional on the
    /// ledger still recording `previous`.
    async fn record_acceptance(
        &self,
        repository: &str,
        tag: &str,
        previous: Option<&TagPointer>,
        entry: &HistoryEntry,
    ) -> Result<(), WardenError> {
        let pk = self.tag_pk(repository, tag);
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("CURRENT"))
            .update_expression(
                "SET digest = :d, since = :t, repository = :r, tag = :g, last_event = :e REMOVE deleted_at",
            )
            .expression_attribute_values(":d", s(&entry.digest))
            .expression_attribute_values(":t", s(&entry.at))
            .expression_attribute_values(":r", s(repository))
            .expression_attribute_values(":g", s(tag))
            .expression_attribute_values(":e", s(&entry.event_id));
        update = match previous {
            Some(previous) => {
                update.condition_expression("digest = :prev").expression_attribute_values(":prev", s(&previous.digest))
            }
            None => update.condition_expression("attribute_not_exists(digest)"),
        };
        let update = update.build().map_err(|e| WardenError::Config(e.to_string()))?;
        self.transact_with_history(&pk, update, entry).await.map_err(|e| match e {
                WardenError::Aws { code, .. } if code == "TransactionCanceledException" => WardenError::Busy(format!(
                    "{repository}:{tag} changed in the ledger meanwhile (a push?): read `warden tags history` and accept again"
                )),
                other => other,
            })
    }
}
