//! ecr-warden's own tag removals, recorded before each removal (like a quarantine tag before it is added), so
//! the ECR deletion event the removal causes is known as ecr-warden's: notify raises no `protected-tag-deleted`
//! for it, since the removing function's own notification says what was removed and why.

use super::ledger::{Ledger, s};
use crate::WardenError;
use crate::error::aws_error;
use crate::notify::OwnRemoval;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// How long a removal record lives: its deletion event arrives within seconds, a retried one within hours.
const REMOVAL_TTL_SECONDS: i64 = 24 * 3600;

impl Ledger {
    fn removal_key(&self, repository: &str, tag: &str, digest: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), s(self.key(format!("REMOVAL#{repository}")))),
            ("sk".to_owned(), s(format!("{digest}#{tag}"))),
        ])
    }

    /// Records that `function` is about to remove `tag` from `digest` for `event_id`.
    pub async fn record_removal(
        &self,
        (repository, tag, digest): (&str, &str, &str),
        function: &str,
        event_id: &str,
    ) -> Result<(), WardenError> {
        let now = chrono::Utc::now().timestamp();
        let mut item = self.removal_key(repository, tag, digest);
        item.insert("at".into(), AttributeValue::N(now.to_string()));
        item.insert("function".into(), s(function));
        item.insert("event_id".into(), s(event_id));
        item.insert("expires_at".into(), AttributeValue::N((now + REMOVAL_TTL_SECONDS).to_string()));
        self.put(item).await
    }

    /// ecr-warden's record of removing `tag` from `digest`, if it has one (strongly consistent: the removal
    /// and its event can be a second apart).
    pub async fn removal(&self, repository: &str, tag: &str, digest: &str) -> Result<Option<OwnRemoval>, WardenError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.removal_key(repository, tag, digest)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB.GetItem", e))?;
        let Some(item) = output.item() else { return Ok(None) };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let at = item.get("at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or_default();
        Ok(Some(OwnRemoval { at, function: text("function"), event_id: text("event_id") }))
    }
}
