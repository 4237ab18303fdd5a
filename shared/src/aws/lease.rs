//! Short leases on one image, taken before a function re-reads an image's tags to remove one of them.
//!
//! Removing an image's last tag deletes the image, so "another tag stays" must still be true when the removal
//! lands. Two invocations removing different tags of one image (two disallowed tags pushed together; tag-guard
//! and a scan-gate demotion) could each read the other's tag as the survivor and both remove: the image is gone.
//! A lease serialises them: whoever holds it reads and removes; the other fails retryably and, on its retry,
//! reads what the first left (and quarantines before removing a last tag).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | a lease on an image | `LEASE#<repository>@<digest>` | `LEASE` (`holder`, `claim` token, `expires_at`) |
//! | a lease on a repository's retention deletions | `LEASE#<repository>@retention` | `LEASE` |
//! | a lease on a lifecycle sweep of a scope | `LEASE#sweep#<scope>` | `LEASE` |
//!
//! One conditional PutItem takes it (free; expired, so a holder killed mid-invocation blocks nobody for long; or
//! held by this request's own earlier attempt, which Lambda retries under the same request id)
//! and one conditional DeleteItem (by token) gives it back. A holder acts only while its lease is valid:
//! [`Lease::valid`] is checked before each removal, with a margin for the call itself.

use super::ledger::{Ledger, s};
use crate::WardenError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a lease lasts: far longer than a re-read and a few tag writes, short enough that a retry after a
/// killed holder (Lambda retries asynchronous invocations after a minute and more) finds it expired.
pub const LEASE_SECONDS: u64 = 45;

/// A lease this invocation holds on one image.
#[derive(Debug, Clone)]
pub struct Lease {
    pk: String,
    token: String,
    taken: Instant,
    lasts: Duration,
}

impl Lease {
    /// Whether a removal may still be started under this lease: a third of it is kept in hand for the call
    /// that follows (15 s of the 45: the SDK's attempts of one call fit well within it).
    pub fn valid(&self) -> bool {
        self.taken.elapsed() + self.lasts / 3 < self.lasts
    }

    /// The same lease, taken `by` earlier (tests of what a holder may still do).
    #[cfg(feature = "test-util")]
    #[must_use]
    pub fn aged(self, by: Duration) -> Self {
        Self { taken: self.taken.checked_sub(by).unwrap_or(self.taken), ..self }
    }
}

impl Ledger {
    /// Takes the lease on `digest` for `holder` (the function and Lambda's request id, the same for an
    /// invocation's retries). `Err` (retryable) when another invocation holds it: the retry finds it free.
    pub async fn lease_image(
        &self,
        repository: &str,
        digest: &str,
        holder: &str,
        (now_epoch, lasts): (i64, Duration),
    ) -> Result<Lease, WardenError> {
        self.lease(&format!("{repository}@{digest}"), holder, (now_epoch, lasts)).await
    }

    /// [`Ledger::lease_image`] on anything one invocation at a time must work on (`subject`: `<repository>@
    /// <digest>` for an image, `<repository>@retention` for a repository's deletions, `sweep#<scope>`).
    pub async fn lease(
        &self,
        subject: &str,
        holder: &str,
        (now_epoch, lasts): (i64, Duration),
    ) -> Result<Lease, WardenError> {
        let pk = self.key(format!("LEASE#{subject}"));
        let taken = Instant::now();
        let seconds = i64::try_from(lasts.as_secs().max(1)).unwrap_or(i64::MAX);
        let item = HashMap::from([
            ("pk".to_owned(), s(&pk)),
            ("sk".to_owned(), s("LEASE")),
            ("holder".to_owned(), s(holder)),
            ("expires_at".to_owned(), AttributeValue::N((now_epoch + seconds).to_string())),
        ]);
        // Free, expired, or held by this request's earlier attempt (killed before it gave the lease back).
        let condition = "attribute_not_exists(pk) OR expires_at < :now OR holder = :holder";
        let values = [(":now", AttributeValue::N(now_epoch.to_string())), (":holder", s(holder))];
        match self.put_with_token(item, condition, &values).await? {
            Some(token) => Ok(Lease { pk, token, taken, lasts }),
            None => Err(WardenError::Busy(format!("another invocation holds {subject}: retried once it is done"))),
        }
    }

    /// Gives a lease back (only this holder's: by its token). A lease already expired and taken by another is
    /// left to that holder.
    pub async fn release(&self, lease: Lease) -> Result<(), WardenError> {
        self.delete_held(HashMap::from([("pk".to_owned(), s(&lease.pk)), ("sk".to_owned(), s("LEASE"))]), &lease.token)
            .await
    }
}
