//! A hub's sweeps (`crate::fanout`): the schedule that plans one work item per governed registry, and the
//! batches of work items the sweep queue hands back.

use crate::WardenError;
use crate::event::{EventKind, ScheduledSweep};
use crate::fanout::{BatchItemFailure, Record, work_item};
use crate::handler::{Base, Context, Dispatch};
use crate::invocation::Invocation;
use crate::outcome::{Decision, Outcome};
use crate::reach::Reach;

impl Base {
    /// The sweep a hub's own schedule asks for (the event comes from the hub's account and region and is not a
    /// work item): it is planned, not run. `None` outside a hub and for every other event.
    pub(crate) fn hub_schedule<'e>(&self, cx: &Context<'e>) -> Option<&'e ScheduledSweep> {
        let Reach::Hub(_) = &self.config.reach else { return None };
        let EventKind::Scheduled(sweep) = &cx.event.kind else { return None };
        let home = cx.home.as_ref()?;
        let from_home = cx.event.account.as_deref() == Some(home.account.as_str())
            && cx.event.region.as_deref() == Some(home.region.as_str());
        (from_home && !sweep.work_item).then_some(sweep)
    }

    /// Queues one work item per governed registry for `sweep` and reports how many.
    pub(crate) async fn plan(&self, cx: &Context<'_>, sweep: &ScheduledSweep) -> Result<Outcome, WardenError> {
        let (Reach::Hub(hub), Some(home)) = (&self.config.reach, cx.home.as_ref()) else {
            return Err(WardenError::Config("only a hub plans sweeps".into()));
        };
        let queue = self.config.sweep_queue.as_deref().ok_or_else(|| {
            WardenError::Config(format!("a hub's sweep needs its queue: {} is not set", crate::config::SWEEP_QUEUE_ENV))
        })?;
        let sqs = self.clients.sqs().ok_or_else(|| WardenError::Config("no SDK configuration for SQS".into()))?;
        let members = match &hub.organization {
            Some(_) => {
                let organizations = self
                    .clients
                    .organizations()
                    .ok_or_else(|| WardenError::Config("no SDK configuration for Organizations".into()))?;
                crate::aws::fanout::organization_accounts(&organizations).await?
            }
            None => Vec::new(),
        };
        let registries = hub.sweep_items(home, &members);
        let items: Vec<_> = registries.iter().map(|registry| work_item(cx.event, sweep, registry)).collect();
        crate::aws::fanout::queue(&sqs, queue, &items).await?;
        let accounts = registries.iter().map(|r| r.account.as_str()).collect::<std::collections::BTreeSet<_>>();
        let mut outcome = self.skipped(cx, "");
        outcome.decision = Decision::Planned;
        outcome.reasons = vec![format!(
            "{} work items queued: {} accounts × {} regions, one registry each",
            items.len(),
            accounts.len(),
            items.len().checked_div(accounts.len()).unwrap_or_default()
        )];
        Ok(outcome)
    }

    /// Runs each work item of a batch from the sweep queue as its own event. A failed item is reported for SQS to
    /// deliver again; so is every item after it, unrun (a FIFO queue keeps an account's items in order).
    pub(crate) async fn run_batch(
        &self,
        records: Vec<Record>,
        invocation: &Invocation,
        function: &impl Dispatch,
    ) -> Outcome {
        let started = self.start();
        let mut batch = Outcome {
            function: self.function,
            event_id: records.first().map(|r| r.message_id.clone()).unwrap_or_default(),
            event: format!("sweep queue batch of {}", records.len()),
            decision: Decision::Batch,
            ..Outcome::default()
        };
        for record in records {
            if !batch.batch_item_failures.is_empty() {
                batch.reasons.push(format!("{}: not run, after a failed item", record.message_id));
            } else {
                let result = match serde_json::from_str(&record.body) {
                    Ok(payload) => Box::pin(self.run_one(payload, invocation, function)).await,
                    Err(error) => Err(WardenError::Unexpected(format!("a work item that is not JSON: {error}"))),
                };
                match result {
                    Ok(outcome) => {
                        batch.notified |= outcome.notified;
                        batch.items.push(outcome);
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(function = self.function, message_id = %record.message_id, %error, "work item failed");
                        batch.reasons.push(format!("{}: {error}", record.message_id));
                    }
                }
            }
            batch.batch_item_failures.push(BatchItemFailure { item_identifier: record.message_id });
        }
        self.finish(batch, started)
    }
}
