//! Removals racing on one image, against moto: the conflicting events are delivered at once, and the fault proxy
//! holds each invocation's answer to its DescribeImages until both have read, the interleaving in which each
//! sees the other's tag as the one that stays. Removing an image's last tag deletes the image (ECR, and
//! `scripts/moto_server.py`), so without the per-image lease both removals land and the image is gone. With it,
//! one invocation removes while the other waits for its retry (EventBridge and Lambda retry a failed invocation),
//! re-reads, and quarantines before removing the last tag. Each test reads the registry back.

mod support;

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::fault_proxy::{FaultPlan, FaultProxy, sdk_config_via};
use integration_tests::{Stack, image_action, inspector_finding, seed_basic_scan, seed_inspector_findings, unique};
use serde_json::{Value, json};
use std::time::Duration;
use support::{Function, Functions, kinds};

/// The deployed budget: the first invocation and Lambda's two retries.
const ATTEMPTS: u32 = 3;
/// Between an invocation that failed and its retry: past the other invocation's lease.
const RETRY_AFTER: Duration = support::LEASE_LOST_AFTER;

/// The functions behind a proxy at which two DescribeImages meet (each answered once both were applied).
async fn racing(stack: &Stack) -> (Functions, FaultProxy) {
    let plan = FaultPlan::new(0).gather("ecr", "DescribeImages", 2, Duration::from_millis(500));
    let proxy = FaultProxy::in_front_of(stack, plan).await;
    let functions = Functions::new(stack, &sdk_config_via(&proxy).await);
    (functions, proxy)
}

fn push(repository: &str, digest: &str, tag: &str) -> Value {
    let mut event = image_action("PUSH", repository, digest, Some(tag), "2026-11-28T09:00:00Z");
    event["id"] = unique("push-").into();
    event
}

#[tokio::test]
async fn two_disallowed_tags_removed_at_once_never_delete_their_image() {
    let stack = Stack::new().await;
    let repo = unique("dev/race-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    // One image, two tags the development class does not allow, pushed together: two push events.
    let digest = stack.push(&repo, "race", Some("my-branch")).await;
    stack.push(&repo, "race", Some("wip")).await;
    let (functions, _proxy) = racing(&stack).await;

    let (first, second) = (push(&repo, &digest, "my-branch"), push(&repo, &digest, "wip"));
    let ((a, a_failed), (b, b_failed)) = tokio::join!(
        functions.deliver_spaced(Function::TagGuard, &first, ATTEMPTS, RETRY_AFTER),
        functions.deliver_spaced(Function::TagGuard, &second, ATTEMPTS, RETRY_AFTER),
    );

    let quarantine = format!("quarantine-{}", &digest[7..19]);
    assert_eq!(stack.tags_of(&repo, &digest).await, Some(vec![quarantine]), "the image stays, quarantined");
    assert_eq!((a.decision.as_str(), b.decision.as_str()), ("not-allowed", "not-allowed"));
    assert_eq!(a_failed + b_failed, 1, "one invocation found the image leased and was retried");
    assert_eq!(kinds(&stack.messages().await), vec!["tag-not-allowed", "tag-not-allowed"]);
}

#[tokio::test]
async fn a_demotion_racing_a_tag_removal_never_deletes_the_image() {
    let stack = Stack::new().await;
    let repo = unique("prod/race-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    // Promoted on a clean scan while it carried only `feature-x` (which tag-guard has not seen yet).
    let digest = stack.push(&repo, "race", Some("feature-x")).await;
    seed_basic_scan(&stack, &repo, &digest, json!([])).await;
    let direct = Functions::new(&stack, &stack.sdk);
    let scan = integration_tests::envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({"scan-status": "COMPLETE", "repository-name": repo, "image-digest": digest,
            "image-tags": ["feature-x"], "finding-severity-counts": {}}),
    );
    let promoted = direct.invoke(Function::ScanGate, &scan).await.expect("promoted");
    assert_eq!(promoted.decision, "promoted", "{promoted:?}");
    let mut tags = stack.tags_of(&repo, &digest).await.unwrap_or_default();
    tags.sort();
    assert_eq!(tags, ["feature-x", "feature-x-approved"]);
    stack.messages().await;

    // Then at once: the push of `feature-x` reaches tag-guard (not allowed in production), and a new finding
    // reaches scan-gate (demote: remove `feature-x-approved`).
    let finding = inspector_finding(&repo, &digest, "feature-x", "CVE-2026-9100", "HIGH", "YES");
    seed_inspector_findings(json!([[finding.clone()]]));
    let demote = integration_tests::finding_event(&finding, &["feature-x", "feature-x-approved"]);
    let (functions, _proxy) = racing(&stack).await;
    let removal = push(&repo, &digest, "feature-x");
    let ((untagged, _), (demoted, _)) = tokio::join!(
        functions.deliver_spaced(Function::TagGuard, &removal, ATTEMPTS, RETRY_AFTER),
        functions.deliver_spaced(Function::ScanGate, &demote, ATTEMPTS, RETRY_AFTER),
    );

    let quarantine = format!("quarantine-{}", &digest[7..19]);
    assert_eq!(stack.tags_of(&repo, &digest).await, Some(vec![quarantine]), "the image stays, quarantined");
    assert_eq!((untagged.decision.as_str(), demoted.decision.as_str()), ("not-allowed", "demoted"));
    let mut sent = kinds(&stack.messages().await);
    sent.sort();
    assert_eq!(sent, ["demoted", "tag-not-allowed"]);
}

/// The same race over mocks, with the interleaving fixed exactly: tag-guard's read of `feature-x` meets
/// scan-gate's read of the image under its lease (its second read by digest; the first decides whether there is
/// anything to demote). Without the lease both would see the other's tag and remove their own.
mod interleaved {
    use super::*;
    use std::sync::Arc;
    use warden::testing::registry::{ImageModel, Read};
    use warden::testing::rules::{coverage_active, failing_findings, transaction_ok};
    use warden::testing::{self, Retries, sample};

    const REPOSITORY: &str = "prod/payments-api";
    const DIGEST: &str = "sha256:6acea1b877bac2682db3652df3de9bf1930e81c9ffc7265cae361458643f1143";

    /// Rules for everything but the image and its lease: claims and records written, nothing parked, every
    /// transaction applied, every message published.
    fn ledger_and_topic() -> (Vec<aws_smithy_mocks::Rule>, Vec<aws_smithy_mocks::Rule>) {
        use aws_smithy_mocks::mock;
        let put = mock!(aws_sdk_dynamodb::Client::put_item)
            .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build());
        let query = mock!(aws_sdk_dynamodb::Client::query)
            .then_output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build());
        let publish = mock!(aws_sdk_sns::Client::publish)
            .then_output(|| aws_sdk_sns::operation::publish::PublishOutput::builder().message_id("m").build());
        (vec![put, query, transaction_ok()], vec![publish])
    }

    fn clients(model: &ImageModel) -> warden::aws::Clients {
        let (ecr, leases) = (model.ecr_rules(), model.lease_rules());
        let (dynamodb, sns) = ledger_and_topic();
        fn refs(rules: &[aws_smithy_mocks::Rule]) -> Vec<&aws_smithy_mocks::Rule> {
            rules.iter().collect()
        }
        let (ecr, leases, dynamodb, sns) = (refs(&ecr), refs(&leases), refs(&dynamodb), refs(&sns));
        testing::clients_with_leases(&ecr, &dynamodb, &sns, Retries::None, &leases)
    }

    fn policy() -> warden::policy::Policy {
        warden::policy::Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("policy")
    }

    /// Invokes until success, a failed invocation retried after the other has finished (3 at most).
    async fn deliver<F, Fut>(invoke: F) -> (warden::Outcome, u32)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<warden::Outcome, warden::WardenError>>,
    {
        let mut failures = 0;
        loop {
            match invoke().await {
                Ok(outcome) => return (outcome, failures),
                Err(error) => {
                    assert!(matches!(error, warden::WardenError::Busy(_)), "{error}");
                    failures += 1;
                    assert!(failures < ATTEMPTS, "the deployed budget");
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_demotion_and_a_tag_removal_meeting_on_one_image_leave_it_quarantined() {
        let model = ImageModel::new(DIGEST, &["feature-x", "feature-x-approved"])
            .meeting(&[Read::Tag("feature-x".into()), Read::DigestNth(2)]);
        let guard = Arc::new(tag_guard::TagGuard::new(policy(), testing::config(), clients(&model)).expect("guard"));
        let gate_clients = clients(&model);
        let (findings, covered) = (failing_findings("CVE-2026-9100"), coverage_active(REPOSITORY, DIGEST));
        let inspector = testing::inspector(&[&findings, &covered], &gate_clients, Retries::None);
        let gate = Arc::new(
            scan_gate::ScanGate::new(policy(), testing::config(), gate_clients, inspector).expect("scan-gate"),
        );
        let mut finding = sample("inspector2-finding.json");
        finding["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["imageTags"] =
            json!(["feature-x", "feature-x-approved"]);
        let mut removal = sample("ecr-image-push.json");
        removal["detail"]["repository-name"] = REPOSITORY.into();
        removal["detail"]["image-tag"] = "feature-x".into();
        removal["detail"]["image-digest"] = DIGEST.into();

        let as_guard = testing::invocation().with_request_id("request-1");
        let as_gate = testing::invocation().with_request_id("request-2");
        let untag = tokio::spawn(async move { deliver(|| guard.handle(removal.clone(), &as_guard)).await });
        let demote = tokio::spawn(async move { deliver(|| gate.handle(finding.clone(), &as_gate)).await });
        let ((untagged, untag_failed), (demoted, demote_failed)) =
            (untag.await.expect("task"), demote.await.expect("task"));

        assert_eq!(model.tags(), Some(vec![format!("quarantine-{}", &DIGEST[7..19])]), "the image stays");
        assert_eq!((untagged.decision.as_str(), demoted.decision.as_str()), ("not-allowed", "demoted"));
        assert_eq!(untag_failed + demote_failed, 1, "one found the image leased and was retried");
    }
}
