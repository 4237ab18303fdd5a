//! A hub's sweeps, fanned out on SQS: when a sweeping function's schedule fires in the hub, it plans one work item
//! per governed registry (account × region) and queues them on its own FIFO queue; Lambda's SQS event source
//! mapping hands them back to the same function, which sweeps one registry per item and reports failed items
//! (partial batch response) for SQS to redeliver, then move to the dead-letter queue.
//!
//! The queue is the engine: its message groups (one per account) keep a function's sweeps of one account one at
//! a time (ECR's quotas are per account and region), the mapping's maximum concurrency bounds the rest, and its
//! deduplication id (schedule event, account, region) makes a duplicated or replayed schedule queue nothing twice
//! within SQS's five-minute window. Nothing here schedules or retries by itself.

use crate::event::{Event, ScheduledSweep, WORK_ITEM_DETAIL_TYPE, WORK_ITEM_SOURCE};
use crate::reach::Home;
use serde::{Deserialize, Serialize};

/// One registry's share of a sweep, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    /// The FIFO message group: the account, so that one account's items run one at a time.
    pub group: String,
    /// The FIFO deduplication id: the same schedule event and registry are queued once.
    pub dedup_id: String,
    /// The event the worker receives: an EventBridge envelope from the registry's account and region.
    pub body: String,
}

/// The work item of `schedule` (the hub's scheduled event, narrowed by `sweep`) for the registry `target`.
pub fn work_item(schedule: &Event, sweep: &ScheduledSweep, target: &Home) -> WorkItem {
    let id = format!("{}:{}:{}", schedule.id, target.account, target.region);
    let body = serde_json::json!({
        "version": "0",
        "id": id,
        "detail-type": WORK_ITEM_DETAIL_TYPE,
        "source": WORK_ITEM_SOURCE,
        "account": target.account,
        "region": target.region,
        "time": schedule.time,
        "resources": schedule.resources,
        "detail": { "repositories": sweep.repositories },
    });
    // SQS deduplication ids: at most 128 characters of [A-Za-z0-9] and punctuation.
    let dedup_id = crate::fingerprint::of_lines([id.as_str()]);
    WorkItem { group: target.account.clone(), dedup_id, body: body.to_string() }
}

/// One SQS message of a batch Lambda's event source mapping delivers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub message_id: String,
    pub body: String,
    #[serde(default)]
    pub event_source: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Batch {
    records: Vec<Record>,
}

/// The SQS messages of `payload` when it is a batch from an SQS event source mapping; `None` for anything else
/// (an EventBridge event).
pub fn sqs_records(payload: &serde_json::Value) -> Option<Vec<Record>> {
    payload.get("Records")?;
    let batch: Batch = serde_json::from_value(payload.clone()).ok()?;
    batch.records.iter().all(|record| record.event_source == "aws:sqs").then_some(batch.records)
}

/// A message of the batch to deliver again (Lambda's partial batch response, `batchItemFailures`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Event {
        crate::event::parse(serde_json::json!({
            "version": "0", "id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "111111111111", "region": "us-east-1", "time": "2026-12-01T00:00:00Z",
            "resources": ["arn:aws:events:us-east-1:111111111111:rule/ecr-warden-sweep"],
            "detail": {"repositories": ["prod/api"]}
        }))
        .expect("schedule")
    }

    #[test]
    fn a_work_item_is_the_registrys_own_event_and_parses_back_as_a_sweep() {
        let schedule = schedule();
        let crate::event::EventKind::Scheduled(sweep) = &schedule.kind else { panic!("a schedule") };
        let target = Home::new("222222222222", "eu-west-1");
        let item = work_item(&schedule, sweep, &target);
        assert_eq!(item.group, "222222222222");
        let event = crate::event::parse(serde_json::from_str(&item.body).expect("json")).expect("parses");
        assert_eq!((event.account.as_deref(), event.region.as_deref()), (Some("222222222222"), Some("eu-west-1")));
        assert_eq!(event.id, "sched-1:222222222222:eu-west-1");
        let crate::event::EventKind::Scheduled(back) = &event.kind else { panic!("a sweep") };
        assert!(back.work_item && !sweep.work_item);
        assert_eq!(back.repositories, ["prod/api"]);
        assert_eq!(back.schedule_arn, sweep.schedule_arn);
        // Same schedule and registry: the same deduplication id; another registry: another.
        assert_eq!(work_item(&schedule, sweep, &target).dedup_id, item.dedup_id);
        assert_ne!(work_item(&schedule, sweep, &Home::new("222222222222", "us-east-1")).dedup_id, item.dedup_id);
        assert!(item.dedup_id.len() <= 128 && item.dedup_id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn only_sqs_batches_are_batches() {
        let batch = serde_json::json!({"Records": [
            {"messageId": "m-1", "body": "{}", "eventSource": "aws:sqs", "receiptHandle": "r"},
            {"messageId": "m-2", "body": "{}", "eventSource": "aws:sqs"}
        ]});
        let records = sqs_records(&batch).expect("a batch");
        assert_eq!(records.iter().map(|r| r.message_id.as_str()).collect::<Vec<_>>(), ["m-1", "m-2"]);
        let sns = serde_json::json!({"Records": [{"messageId": "m-1", "body": "{}", "eventSource": "aws:sns"}]});
        assert_eq!(sqs_records(&sns), None);
        assert_eq!(sqs_records(&serde_json::json!({"detail-type": "Scheduled Event"})), None);
        assert_eq!(sqs_records(&serde_json::json!({"Records": "nonsense"})), None);
    }
}
