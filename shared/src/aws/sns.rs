//! Publishing one notification to one topic. The claims that make each happen once, and who publishes when, are
//! the delivery module's.

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
