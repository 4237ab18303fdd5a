//! Publishing notifications, at most once per event and kind.

use super::claims::Claim;
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
    pub fn claim_key(&self, kind: &str) -> String {
        if self.name == "default" { kind.to_owned() } else { format!("{kind}@{}", self.name) }
    }
}

/// Sends a notification to each destination unless it was sent there for this event before: claim in the
/// ledger (two-phase, see [`super::claims`]), publish, mark sent; the claim is given back if publishing fails
/// so the retried invocation sends it. `holder`: the invocation's request id. Returns how many messages were
/// published now.
pub async fn deliver(
    sns: &Client,
    destinations: &[Destination],
    ledger: &Ledger,
    notification: &Notification,
    holder: &str,
    now_epoch: i64,
) -> Result<usize, WardenError> {
    deliver_as(sns, destinations, ledger, notification, &notification.kind, holder, now_epoch).await
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
    holder: &str,
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
        let one = Claimed { key: &key, holder, now_epoch };
        sent += usize::from(deliver_claimed(sns, destination, ledger, notification, &one).await?);
    }
    Ok(sent)
}

/// One notification's claim at one destination.
#[derive(Debug, Clone, Copy)]
pub struct Claimed<'a> {
    /// The claim key (`kind`, or `kind@route`).
    pub key: &'a str,
    /// The invocation's request id.
    pub holder: &'a str,
    pub now_epoch: i64,
}

/// Claims, publishes and marks sent one notification at one destination. A claim taken over from a dead
/// attempt publishes the message stored with it, not `notification`. `Ok(true)`: published now.
pub async fn deliver_claimed(
    sns: &Client,
    destination: &Destination,
    ledger: &Ledger,
    notification: &Notification,
    claim: &Claimed<'_>,
) -> Result<bool, WardenError> {
    let json = serde_json::to_string(notification).map_err(|e| WardenError::Unexpected(e.to_string()))?;
    let event_id = notification.event_id.as_str();
    let (token, stored) =
        match ledger.claim_notification(event_id, claim.key, claim.holder, &json, claim.now_epoch).await? {
            Claim::Ours { token, notification } => (token, notification),
            Claim::Taken => return Ok(false),
        };
    let stored = stored.and_then(|json| serde_json::from_str::<Notification>(&json).ok());
    let message = stored.as_ref().unwrap_or(notification);
    if let Err(error) = publish(sns, &destination.topic_arn, destination.format, message).await {
        // A claim left behind waits for this request's retry or goes stale: try harder than once.
        for attempt in 1..=3 {
            match ledger.release_notification(event_id, claim.key, &token).await {
                Ok(()) => break,
                Err(release) if attempt == 3 => {
                    tracing::error!(error = %release, "could not release the notification claim; the retry takes it over");
                }
                Err(_) => {}
            }
        }
        return Err(error);
    }
    // Published: failing the invocation now would only make its retry publish again. Left `pending`, a
    // duplicate delivery could send it again after PENDING_STALE_SECONDS: try harder than once.
    for attempt in 1..=3 {
        match ledger.mark_sent(event_id, claim.key, &token).await {
            Ok(()) => break,
            Err(error) if attempt == 3 => {
                tracing::error!(%error, key = claim.key, "published, but could not mark the claim sent: it may be sent again");
            }
            Err(_) => {}
        }
    }
    Ok(true)
}
