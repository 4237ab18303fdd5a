//! Publishing notifications, at most once per event and kind.

use super::ledger::Ledger;
use crate::WardenError;
use crate::error::aws_error;
use crate::notify::Notification;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

/// Publishes one rendered notification (SNS `Publish`, `MessageStructure=json`). Returns the message id.
pub async fn publish(sns: &Client, topic_arn: &str, notification: &Notification) -> Result<String, WardenError> {
    let rendered = notification.render();
    let mut request = sns
        .publish()
        .topic_arn(topic_arn)
        .subject(rendered.subject)
        .message(rendered.message)
        .message_structure("json");
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

/// What happened to a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent(String),
    /// This event's notification of this kind went out before (a replayed event).
    AlreadySent,
    /// No topic configured: the notification is only logged.
    NoTopic,
}

/// Sends a notification unless it was sent for this event before: claim in the ledger, publish, and give the
/// claim back if publishing fails so the retried invocation sends it.
pub async fn deliver(
    sns: &Client,
    topic_arn: Option<&str>,
    ledger: &Ledger,
    notification: &Notification,
    now_epoch: i64,
) -> Result<Delivery, WardenError> {
    tracing::info!(
        kind = %notification.kind,
        repository = notification.repository.as_deref(),
        outcome = %notification.outcome,
        severity = notification.severity.as_str(),
        "notification"
    );
    let Some(topic_arn) = topic_arn else {
        return Ok(Delivery::NoTopic);
    };
    if !ledger.claim_notification(&notification.event_id, &notification.kind, now_epoch).await? {
        return Ok(Delivery::AlreadySent);
    }
    match publish(sns, topic_arn, notification).await {
        Ok(id) => Ok(Delivery::Sent(id)),
        Err(error) => {
            if let Err(release) = ledger.release_notification(&notification.event_id, &notification.kind).await {
                tracing::error!(error = %release, "could not release the notification claim; this notification may be lost");
            }
            Err(error)
        }
    }
}
