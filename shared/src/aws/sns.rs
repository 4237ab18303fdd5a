//! Publishing notifications, at most once per event and kind.

use super::ledger::Ledger;
use crate::WardenError;
use crate::error::aws_error;
use crate::notify::{Format, Notification};
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

/// Publishes one notification in a topic's format (SNS `Publish`). Returns the message id.
pub async fn publish(
    sns: &Client,
    topic_arn: &str,
    format: Format,
    notification: &Notification,
) -> Result<String, WardenError> {
    let rendered = notification.render(format);
    let mut request = sns.publish().topic_arn(topic_arn).subject(rendered.subject).message(rendered.message);
    if rendered.per_protocol {
        request = request.message_structure("json");
    }
    for (name, value) in rendered.attributes {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| WardenError::Config(e.to_string()))?;
        request = request.message_attributes(name, attribute);
    }
    let output = request.send().await.map_err(|e| aws_error("SNS.Publish", e))?;
    Ok(output.message_id().unwrap_or_default().to_owned())
}

/// One place a notification goes: the default topic or a policy route's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `default`, or the route's topic name.
    pub name: String,
    pub topic_arn: String,
    pub format: Format,
}

impl Destination {
    /// The dedup key of a notification kind at this destination.
    fn claim_key(&self, kind: &str) -> String {
        if self.name == "default" { kind.to_owned() } else { format!("{kind}@{}", self.name) }
    }
}

/// Sends a notification to each destination unless it was sent there for this event before: claim in the
/// ledger, publish, and give the claim back if publishing fails so the retried invocation sends it.
/// Returns how many messages were published now.
pub async fn deliver(
    sns: &Client,
    destinations: &[Destination],
    ledger: &Ledger,
    notification: &Notification,
    now_epoch: i64,
) -> Result<usize, WardenError> {
    deliver_as(sns, destinations, ledger, notification, &notification.kind, now_epoch).await
}

/// [`deliver`], claimed under `claim_kind` instead of the notification's kind: notifications of different kinds
/// that answer the same question about an event (scan-gate's `demoted` and `gate-failed`) share one claim, so a
/// replay that decides differently because the first delivery changed the image stays silent.
pub async fn deliver_as(
    sns: &Client,
    destinations: &[Destination],
    ledger: &Ledger,
    notification: &Notification,
    claim_kind: &str,
    now_epoch: i64,
) -> Result<usize, WardenError> {
    tracing::info!(
        kind = %notification.kind,
        repository = notification.repository.as_deref(),
        outcome = %notification.outcome,
        severity = notification.severity.as_str(),
        destinations = destinations.len(),
        "notification"
    );
    let mut sent = 0;
    for destination in destinations {
        let key = destination.claim_key(claim_kind);
        if !ledger.claim_notification(&notification.event_id, &key, now_epoch).await? {
            continue;
        }
        if let Err(error) = publish(sns, &destination.topic_arn, destination.format, notification).await {
            // A claim left behind silences this notification for good: try harder than once.
            for attempt in 1..=3 {
                match ledger.release_notification(&notification.event_id, &key).await {
                    Ok(()) => break,
                    Err(release) if attempt == 3 => {
                        tracing::error!(error = %release, "could not release the notification claim; this notification may be lost");
                    }
                    Err(_) => {}
                }
            }
            return Err(error);
        }
        sent += 1;
    }
    Ok(sent)
}
