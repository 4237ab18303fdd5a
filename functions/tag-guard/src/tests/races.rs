//! Two removals on one image at once, over a registry model whose reads meet (`warden::testing::registry`): each
//! invocation would see the other's tag as the one that stays. The image's lease makes one wait for its retry,
//! which re-reads and quarantines before removing the last tag.

use super::*;
use std::sync::Arc;
use warden::testing::registry::{ImageModel, Read};

/// A tag-guard of its own (a Lambda sandbox) over the model, everything else answered as success.
fn sandbox(model: &ImageModel) -> Arc<TagGuard> {
    let ecr = model.ecr_rules();
    let leases = model.lease_rules();
    let (claim, publish) = (any_put_item(), publish_ok());
    let ecr: Vec<&Rule> = ecr.iter().collect();
    let leases: Vec<&Rule> = leases.iter().collect();
    let clients = testing::clients_with_leases(&ecr, &[&claim], &[&publish], Retries::None, &leases);
    let policy = Policy::from_toml(warden::policy::EMBEDDED_POLICY, "warden.toml").expect("valid policy");
    Arc::new(TagGuard::new(policy, testing::config(), clients).expect("guard"))
}

/// Delivers `event` as EventBridge would: a failed invocation is retried (under its request id), after the
/// other has finished.
async fn deliver(guard: Arc<TagGuard>, event: Value, request_id: &str) -> (Outcome, u32) {
    let mut failures = 0;
    let invocation = testing::invocation().with_request_id(request_id);
    loop {
        match guard.handle(event.clone(), &invocation).await {
            Ok(outcome) => return (outcome, failures),
            Err(error) => {
                assert!(error.is_retryable(), "{error}");
                assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "Retryable.Busy");
                failures += 1;
                assert!(failures < 3, "the deployed budget is 3 invocations");
                tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_disallowed_tags_of_one_image_removed_at_once_leave_it_quarantined() {
    // Development removes tags it does not allow (`untag`); both pushes read the image at the same moment.
    let repository = "dev/web-frontend";
    let model =
        ImageModel::new(A, &["my-branch", "wip"]).meeting(&[Read::Tag("my-branch".into()), Read::Tag("wip".into())]);
    let first = tokio::spawn(deliver(sandbox(&model), push(repository, "my-branch", A), "request-1"));
    let second = tokio::spawn(deliver(sandbox(&model), push(repository, "wip", A), "request-2"));
    let ((a, a_failed), (b, b_failed)) = (first.await.expect("task"), second.await.expect("task"));

    assert_eq!(model.tags(), Some(vec!["quarantine-7a6a95028731".to_owned()]), "the image stays, quarantined");
    assert_eq!((a.decision.as_str(), b.decision.as_str()), ("not-allowed", "not-allowed"));
    assert_eq!(a_failed + b_failed, 1, "one found the image leased and was retried");
}

/// The ledger adapter: a lease is one conditional PutItem (free or expired) with a token, given back by a
/// DeleteItem conditional on that token; one held by another invocation is a retryable `Busy`.
mod lease {
    use super::*;
    use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
    use warden::aws::ledger::Ledger;
    use warden::aws::steps::Executor;
    use warden::tags::Step;

    const DEPLOYED: std::time::Duration = std::time::Duration::from_secs(warden::aws::lease::LEASE_SECONDS);

    fn ledger(rules: &[&Rule]) -> Ledger {
        let clients = testing::clients_with_leases(&[], rules, &[], Retries::None, &[]);
        Ledger::new(clients.dynamodb, "ledger")
    }

    #[tokio::test]
    async fn a_lease_is_taken_until_it_expires_and_given_back_by_its_token() {
        let take = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|r| {
                let item = r.item().expect("item");
                let value = |k: &str| item.get(k).and_then(|v| v.as_s().ok().or(v.as_n().ok())).cloned();
                r.condition_expression() == Some("attribute_not_exists(pk) OR expires_at < :now OR holder = :holder")
                    && value("pk").as_deref() == Some(&format!("LEASE#{REPO}@{A}"))
                    && value("expires_at").as_deref() == Some("1045")
                    && value("claim").is_some()
            })
            .then_output(|| PutItemOutput::builder().build());
        let give = mock!(aws_sdk_dynamodb::Client::delete_item)
            .match_requests(|r| {
                r.condition_expression() == Some("claim = :token")
                    && r.expression_attribute_values().and_then(|v| v.get(":token")).is_some()
            })
            .then_output(|| DeleteItemOutput::builder().build());
        let ledger = ledger(&[&take, &give]);
        let lease = ledger.lease_image(REPO, A, "tag-guard e-1", (1000, DEPLOYED)).await.expect("free");
        assert!(lease.valid());
        ledger.release(lease).await.expect("given back");
        assert_eq!((take.num_calls(), give.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_lease_another_invocation_holds_is_busy_and_retryable() {
        let held = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().item("claim", AttributeValue::S("theirs".into())).build(),
            )
        });
        let error = ledger(&[&held]).lease_image(REPO, A, "tag-guard e-2", (1000, DEPLOYED)).await.expect_err("held");
        assert!(error.is_retryable(), "{error}");
        assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "Retryable.Busy");
    }

    #[tokio::test]
    async fn no_removal_starts_under_a_lease_that_ran_out() {
        let take = any_put_item();
        let remove =
            mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build());
        let clients = testing::clients_with_leases(&[&remove], &[&take], &[], Retries::None, &[]);
        let ledger = Ledger::new(clients.dynamodb.clone(), "ledger");
        let lease = ledger.lease_image(REPO, A, "tag-guard e-3", (1000, DEPLOYED)).await.expect("free");
        let lease = lease.aged(std::time::Duration::from_secs(35));
        assert!(!lease.valid(), "too little of it left for a removal");
        let executor = Executor {
            ecr: &clients.ecr,
            ledger: &ledger,
            function: "tag-guard",
            event_id: "e-3",
            dry_run: false,
            lease: None,
        };
        let steps = [Step::RemoveTag { tag: "wip".into(), digest: A.into() }];
        let error = executor.under(Some(&lease)).run(REPO, &steps).await.expect_err("ran out");
        assert!(error.is_retryable(), "{error}");
        assert_eq!(remove.num_calls(), 0);
    }
}

#[tokio::test]
async fn a_tag_that_moves_between_the_read_and_the_removal_stays_on_its_new_image() {
    // Read at A (with another tag), moved to B before the removal lands: ECR's conditional removal (tag and
    // digest) refuses, and nothing is retried against B.
    let describe = tag_points_at("feature-x", A, &["feature-x", "v1.4.2"]);
    let remove = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .match_requests(|r| {
            let id = &r.image_ids()[0];
            r.image_ids().len() == 1 && id.image_tag() == Some("feature-x") && id.image_digest() == Some(A)
        })
        .then_output(|| {
            let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("feature-x").image_digest(A).build();
            let failure = aws_sdk_ecr::types::ImageFailure::builder()
                .image_id(id)
                .failure_code(aws_sdk_ecr::types::ImageFailureCode::ImageTagDoesNotMatchDigest)
                .failure_reason("Invalid request parameters: given tag does not map to the given digest")
                .build();
            BatchDeleteImageOutput::builder().failures(failure).build()
        });
    let (claim, publish) = (any_put_item(), publish_ok());
    let guard = guard(&[&describe, &remove], &[&claim], &[&publish]);
    let outcome = guard.handle(push(REPO, "feature-x", A), &testing::invocation()).await.expect("handled");
    assert_eq!(remove.num_calls(), 1, "one conditional removal, never one by tag alone");
    assert_eq!(outcome.actions.len(), 1);
    assert_eq!(outcome.actions[0].result, ActionResult::Moved, "{:?}", outcome.actions);
    assert!(outcome.actions[0].detail.as_deref().is_some_and(|d| d.contains("points at another image")));
}
