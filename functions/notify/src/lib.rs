//! notify: turns the operational ECR and Inspector events no other function acts on, but operators must
//! see, into notifications: failed replications and pull-through-cache syncs, failed scans, scanning that
//! stopped, scan-frequency changes, what ECR's own lifecycle policy expired (one summary per run event, never
//! one message per image), and deleted protected tags (not those ecr-warden removed itself: the ledger records
//! each removal first, and the removing function's notification says it). Each event id is notified once per
//! destination.

use serde_json::Value;
use warden::WardenError;
use warden::aws::Clients;
use warden::config::Config;
use warden::delivery::{Report, Said};
use warden::handler::{Base, Context};
use warden::invocation::Invocation;
use warden::notify::Notification;
use warden::notify::events::{FUNCTION, for_event};
use warden::outcome::{Decision, Outcome};
use warden::policy::Policy;

#[derive(Debug)]
pub struct Notify {
    pub(crate) base: Base,
}

impl Notify {
    pub fn new(policy: Policy, config: Config, clients: Clients) -> Result<Self, WardenError> {
        let mut base = Base::new(FUNCTION, policy, config, clients, None)?;
        // notify reads no registry: in a hub, only its members' ledger records (removals ecr-warden made).
        base.registries = base.registries.ledger_only();
        Ok(Self { base })
    }

    pub async fn handle(&self, payload: Value, invocation: &Invocation) -> Result<Outcome, WardenError> {
        // Boxed: the future of the whole send path (claim, publish, release on failure) is too deep a type for
        // the compiler's layout query when nested in the runtime's.
        self.base.run(payload, invocation, self).await
    }

    async fn notify(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        let mut notification = match for_event(cx.event, &self.base.policy, &cx.at) {
            Ok(notification) => notification,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        if let Some(registry) = self.base.hub_registry(cx) {
            (notification.account, notification.region) =
                (Some(registry.account.clone()), Some(registry.region.clone()));
        }
        if let Some(reason) = self.own_removal(cx, &notification).await? {
            return Ok(self.base.skipped(cx, reason));
        }
        let mut outcome = self.base.skipped(cx, "");
        outcome.reasons = notification.reasons.clone();
        outcome.repository = notification.repository.clone();
        outcome.digest = notification.digest.clone();
        outcome.tags = notification.tags.clone();
        outcome.class = notification.class.clone();
        // Every kind notify sends is one of KINDS (tested); an unknown one is a bug, never a retry.
        let kind = warden::kinds::KINDS.iter().copied().find(|k| *k == notification.kind);
        let kind = kind.ok_or_else(|| WardenError::Unexpected(format!("unknown kind {}", notification.kind)))?;
        if self.base.destinations(&notification).is_empty() {
            outcome.decision = Decision::Notified(kind);
            outcome.reasons.push("no topic configured: the notification is only logged".into());
            return Ok(outcome);
        }
        outcome.notified = self.base.report(cx, Report::Tell(Said::once(notification.clone()))).await?;
        outcome.decision = if outcome.notified { Decision::Notified(kind) } else { Decision::AlreadyNotified };
        Ok(outcome)
    }
}

impl Notify {
    /// Why a protected tag's deletion is ecr-warden's own removal (a demotion, a disallowed or forged tag taken
    /// off), whose own notification says it: the ledger's record of the removal, read fresh.
    async fn own_removal(&self, cx: &Context<'_>, notification: &Notification) -> Result<Option<String>, WardenError> {
        let (Some(repository), Some(digest), [tag]) =
            (&notification.repository, &notification.digest, notification.tags.as_slice())
        else {
            return Ok(None);
        };
        if notification.kind != "protected-tag-deleted" {
            return Ok(None);
        }
        let removal = cx.ledger().removal(repository, tag, digest).await?;
        let deleted_at = chrono::DateTime::parse_from_rfc3339(&cx.at)
            .map_or_else(|_| chrono::Utc::now().timestamp(), |t| t.timestamp());
        Ok(warden::notify::own_removal(removal.as_ref(), deleted_at))
    }
}

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;

impl warden::handler::Dispatch for Notify {
    // Boxed: the nested futures are otherwise too deep for the compiler's layout query, and a batch of sweep
    // work items calls it once per item.
    fn dispatch_event<'c>(&'c self, cx: &'c Context<'c>) -> warden::handler::Dispatched<'c> {
        Box::pin(self.notify(cx))
    }
}
