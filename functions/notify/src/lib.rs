//! notify: turns the operational ECR and Inspector events no other function acts on, but operators must
//! see, into notifications: failed replications and pull-through-cache syncs, failed scans, scanning that
//! stopped, scan-frequency changes, what ECR's own lifecycle policy expired (one summary per run event, never
//! one message per image), and deleted protected tags. Each event id is notified once per destination.

use serde_json::Value;
use warden::WardenError;
use warden::aws::Clients;
use warden::config::Config;
use warden::delivery::{Report, Said};
use warden::handler::{Base, Context};
use warden::invocation::Invocation;
use warden::notify::events::{FUNCTION, for_event};
use warden::outcome::{Decision, Outcome};
use warden::policy::Policy;

#[derive(Debug)]
pub struct Notify {
    pub(crate) base: Base,
}

impl Notify {
    pub fn new(policy: Policy, config: Config, clients: Clients) -> Result<Self, WardenError> {
        Ok(Self { base: Base::new(FUNCTION, policy, config, clients)? })
    }

    pub async fn handle(&self, payload: Value, invocation: &Invocation) -> Result<Outcome, WardenError> {
        // Boxed: the future of the whole send path (claim, publish, release on failure) is too deep a type for
        // the compiler's layout query when nested in the runtime's.
        self.base.run(payload, invocation, async |cx| Box::pin(self.notify(cx)).await).await
    }

    async fn notify(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        let notification = match for_event(cx.event, &self.base.policy, &cx.at) {
            Ok(notification) => notification,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
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

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
