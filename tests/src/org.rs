//! An organization in one moto server: the hub (moto's default account) and member accounts in two regions.
//! moto's STS AssumeRole returns credentials that act in the role's account, as AWS's do.

use crate::{digest_of, manifest};
use warden::reach::{ACCOUNTS_ENV, MEMBER_ROLE_ENV, REGIONS_ENV, Reach};

/// Governed member accounts.
pub const MEMBER_A: &str = "222222222222";
pub const MEMBER_B: &str = "333333333333";
/// An account the hub's allow-list does not name.
pub const FOREIGN: &str = "444444444444";
/// The regions the hub governs.
pub const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// The member role the spoke stack creates (infra/spoke.yaml).
pub const MEMBER_ROLE: &str = "arn:aws:iam::{account}:role/ecr-warden-member";

/// A hub governing `accounts` in [`REGIONS`] through [`MEMBER_ROLE`].
pub fn hub_reach(accounts: &[&str]) -> Reach {
    let accounts = accounts.join(",");
    let regions = REGIONS.join(",");
    let vars = [(ACCOUNTS_ENV, accounts.as_str()), (REGIONS_ENV, regions.as_str()), (MEMBER_ROLE_ENV, MEMBER_ROLE)];
    Reach::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())).expect("hub reach")
}

/// ECR acting in `account`'s registry in `region`: the member role assumed with `sdk`'s credentials, as an
/// operator in that account would act (and as the hub does).
pub async fn registry_ecr(sdk: &aws_config::SdkConfig, account: &str, region: &str) -> aws_sdk_ecr::Client {
    let role = MEMBER_ROLE.replace("{account}", account);
    let provider = aws_config::sts::AssumeRoleProvider::builder(role).session_name("test").configure(sdk).build().await;
    let config = aws_sdk_ecr::config::Builder::from(sdk)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(provider)
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

/// Pushes an image manifest under `tag` (or by digest only) the way a registry client does; its digest.
pub async fn push_to(ecr: &aws_sdk_ecr::Client, repository: &str, seed: &str, tag: Option<&str>) -> String {
    let manifest = manifest(seed);
    let digest = digest_of(&manifest);
    let mut request = ecr
        .put_image()
        .repository_name(repository)
        .image_manifest(&manifest)
        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
        .image_digest(&digest);
    if let Some(tag) = tag {
        request = request.image_tag(tag);
    }
    request.send().await.expect("push");
    digest
}

/// All tags of an image, sorted; None when the image is gone.
pub async fn tags_in(ecr: &aws_sdk_ecr::Client, repository: &str, digest: &str) -> Option<Vec<String>> {
    let images = ecr.list_images().repository_name(repository).send().await.expect("list images");
    let ids: Vec<_> = images.image_ids().iter().filter(|id| id.image_digest() == Some(digest)).collect();
    if ids.is_empty() {
        return None;
    }
    let mut tags: Vec<String> = ids.iter().filter_map(|id| id.image_tag().map(str::to_owned)).collect();
    tags.sort();
    Some(tags)
}

/// `event` as EventBridge delivers it from `account` in `region`.
pub fn from(mut event: serde_json::Value, account: &str, region: &str) -> serde_json::Value {
    event["account"] = account.into();
    event["region"] = region.into();
    event
}

/// The AWS calls a hub made in a member's registry (ECR, Inspector) that infra/spoke.yaml's member role does not
/// allow: what a member account would answer `AccessDenied`.
pub fn calls_the_member_role_denies<'a>(calls: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let allowed = crate::role_actions(include_str!("../../infra/spoke.yaml"), "MemberRole");
    calls
        .into_iter()
        .filter_map(|call| crate::iam_action(call))
        .filter(|action| action.starts_with("ecr:") || action.starts_with("inspector2:"))
        .filter(|action| !allowed.contains(action))
        .collect()
}

/// A FIFO sweep queue as infra/template.yaml deploys it (redrive to a FIFO dead-letter queue after
/// `max_receives` deliveries), with no visibility timeout so that a failed item comes back at once: (queue URL,
/// dead-letter queue URL).
pub async fn sweep_queue(sqs: &aws_sdk_sqs::Client, max_receives: u32) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let name = crate::unique("sweep-");
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(A::FifoQueue, "true")
        .send()
        .await
        .expect("dead-letter queue");
    let dlq_url = dlq.queue_url().expect("url").to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .expect("arn")
        .attributes()
        .and_then(|a| a.get(&A::QueueArn).cloned())
        .expect("arn");
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}).to_string();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(A::FifoQueue, "true")
        .attributes(A::VisibilityTimeout, "0")
        .attributes(A::RedrivePolicy, redrive)
        .send()
        .await
        .expect("queue");
    (queue.queue_url().expect("url").to_owned(), dlq_url)
}

/// One delivery of a work item: its event (the message body) and what the function answered.
#[derive(Debug)]
pub struct Delivery {
    pub event: serde_json::Value,
    pub outcome: Result<warden::Outcome, warden::WardenError>,
}

/// Lambda's SQS event source mapping, played by the test as infra/template.yaml configures it (batch size 1,
/// partial batch responses): receives one work item at a time, hands it to `handle` as an SQS batch, and deletes
/// it unless the answer reports it failed. Until the queue is empty (at most `limit` deliveries).
pub async fn drain<F, Fut>(sqs: &aws_sdk_sqs::Client, queue_url: &str, limit: usize, handle: F) -> Vec<Delivery>
where
    F: Fn(serde_json::Value) -> Fut,
    Fut: std::future::Future<Output = Result<warden::Outcome, warden::WardenError>>,
{
    let mut deliveries = Vec::new();
    while deliveries.len() < limit {
        let received =
            sqs.receive_message().queue_url(queue_url).max_number_of_messages(1).send().await.expect("receive");
        let Some(message) = received.messages().first() else { break };
        let (id, body) = (message.message_id().expect("id"), message.body().expect("body"));
        let batch = serde_json::json!({"Records": [{
            "messageId": id, "receiptHandle": message.receipt_handle(), "body": body, "attributes": {},
            "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        }]});
        let outcome = handle(batch).await;
        let failed = outcome.as_ref().map_or(true, |o| o.batch_item_failures.iter().any(|f| f.item_identifier == id));
        if !failed {
            let handle = message.receipt_handle().expect("receipt");
            sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await.expect("delete");
        }
        deliveries.push(Delivery { event: serde_json::from_str(body).expect("work item"), outcome });
    }
    deliveries
}
