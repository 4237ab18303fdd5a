//! tag-guard as an adversary would try it (aws-smithy-mocks): promotion and quarantine tags pushed by hand,
//! found by the sweep, and events about other registries. Each asserts what reached ECR.

use super::*;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use std::collections::HashMap;

const DEV: &str = "dev/web-frontend";

/// The ledger holds no record of ecr-warden having added the tag.
fn no_record() -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build())
}

fn own_item(digest: &str, tag: &str, kind: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("repository".to_owned(), AttributeValue::S(REPO.into())),
        ("digest".to_owned(), AttributeValue::S(digest.into())),
        ("tag".to_owned(), AttributeValue::S(tag.into())),
        ("kind".to_owned(), AttributeValue::S(kind.into())),
        ("event_id".to_owned(), AttributeValue::S("scan-event".into())),
        ("function".to_owned(), AttributeValue::S("scan-gate".into())),
    ])
}

/// The ledger holds scan-gate's approval of `tag` on `digest`.
fn approved(digest: &'static str, tag: &'static str) -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(move |r| {
            r.key()
                .and_then(|k| k.get("sk"))
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| *sk == format!("{digest}#{tag}"))
        })
        .then_output(move || GetItemOutput::builder().set_item(Some(own_item(digest, tag, "promotion"))).build())
}

fn any_remove() -> Rule {
    mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build())
}

fn kind_published(publish: &Rule) -> bool {
    publish.num_calls() == 1
}

#[tokio::test]
async fn a_hand_pushed_tag_templated_promotion_is_removed_and_reported_as_critical() {
    let (record, claim, publish) = (no_record(), any_put_item(), publish_ok());
    let describe = tag_points_at("v1.4.2-approved", A, &["v1.4.2", "v1.4.2-approved"]);
    let remove = remove_ok("v1.4.2-approved", A);
    let guard = guard(&[&describe, &remove], &[&record, &claim], &[&publish]);
    let outcome = guard.handle(push(REPO, "v1.4.2-approved", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    assert_eq!(remove.num_calls(), 1, "the forged tag is removed, naming its digest");
    assert!(outcome.reasons[0].contains("forged approval"), "{:?}", outcome.reasons);
    assert!(kind_published(&publish) && outcome.notified);
}

#[tokio::test]
async fn a_hand_pushed_digest_templated_promotion_is_removed() {
    let (record, claim, publish) = (no_record(), any_put_item(), publish_ok());
    let describe = tag_points_at("approved-7a6a95028731", A, &["pr-12", "approved-7a6a95028731"]);
    let remove = remove_ok("approved-7a6a95028731", A);
    let guard = guard(&[&describe, &remove], &[&record, &claim], &[&publish]);
    let outcome = guard.handle(push(DEV, "approved-7a6a95028731", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    assert_eq!(remove.num_calls(), 1);
}

#[tokio::test]
async fn a_forged_promotion_that_is_the_images_only_tag_is_quarantined_before_removal() {
    let (record, puts, publish) = (no_record(), any_put_item(), publish_ok());
    let describe = tag_points_at("approved-7a6a95028731", A, &["approved-7a6a95028731"]);
    let manifest = manifest_of(A);
    let quarantine = put_image_ok("quarantine-7a6a95028731", A);
    let remove = remove_ok("approved-7a6a95028731", A);
    let guard = guard(&[&describe, &manifest, &quarantine, &remove], &[&record, &puts], &[&publish]);
    let outcome = guard.handle(push(DEV, "approved-7a6a95028731", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    assert_eq!((quarantine.num_calls(), remove.num_calls()), (1, 1), "quarantine first, then remove");
    assert_eq!(puts.num_calls(), 3, "the quarantine tag's record, the removal's record, the notification's claim");
}

#[tokio::test]
async fn a_hand_pushed_quarantine_tag_is_removed() {
    let (record, claim, publish) = (no_record(), any_put_item(), publish_ok());
    let describe = tag_points_at("quarantine-7a6a95028731", A, &["v1.4.2", "quarantine-7a6a95028731"]);
    let remove = remove_ok("quarantine-7a6a95028731", A);
    let guard = guard(&[&describe, &remove], &[&record, &claim], &[&publish]);
    let outcome =
        guard.handle(push(REPO, "quarantine-7a6a95028731", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    assert!(outcome.reasons[0].contains("quarantine"), "{:?}", outcome.reasons);
    assert_eq!(remove.num_calls(), 1);
}

#[tokio::test]
async fn an_approval_scan_gate_recorded_is_left_alone() {
    let record = approved(A, "v1.4.2-approved");
    let remove = any_remove();
    let guard = guard(&[&remove], &[&record], &[]);
    let outcome = guard.handle(push(REPO, "v1.4.2-approved", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "recorded");
    assert_eq!(calls(&outcome), vec![("DynamoDB.GetItem", 1)], "one strongly consistent read");
    assert_eq!(remove.num_calls(), 0);
}

#[tokio::test]
async fn an_approval_of_another_digest_does_not_vouch_for_this_one() {
    // scan-gate approved `v1.4.2-approved` on B; somebody pushes the same tag onto A.
    let (record, claim, publish) = (approved(B, "v1.4.2-approved"), any_put_item(), publish_ok());
    let none = no_record();
    let describe = tag_points_at("v1.4.2-approved", A, &["v1.4.2", "v1.4.2-approved"]);
    let remove = remove_ok("v1.4.2-approved", A);
    let guard = guard(&[&describe, &remove], &[&record, &none, &claim], &[&publish]);
    let outcome = guard.handle(push(REPO, "v1.4.2-approved", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    assert_eq!((record.num_calls(), remove.num_calls()), (0, 1));
}

#[tokio::test]
async fn a_forged_tag_in_a_report_class_is_reported_and_left() {
    // The standard class reports; its quarantine tag is the default `quarantine-{digest12}`.
    let (record, claim, publish) = (no_record(), any_put_item(), publish_ok());
    let describe = tag_points_at("quarantine-7a6a95028731", A, &["v2", "quarantine-7a6a95028731"]);
    let remove = any_remove();
    let guard = guard(&[&describe, &remove], &[&record, &claim], &[&publish]);
    let outcome =
        guard.handle(push("tools/builder", "quarantine-7a6a95028731", A), &testing::invocation()).await.expect("ok");
    assert_eq!(outcome.decision, "forged-approval");
    assert_eq!(remove.num_calls(), 0, "report: left in place");
    assert!(outcome.notified, "reported in every class");
}

#[tokio::test]
async fn a_forged_tag_that_moved_since_the_push_is_not_touched() {
    let record = no_record();
    let describe = tag_points_at("v1.4.2-approved", B, &["v1.4.2-approved"]);
    let remove = any_remove();
    // Stale: only what an earlier attempt of the event parked is looked for.
    let parked = mock!(aws_sdk_dynamodb::Client::query).then_output(|| QueryOutput::builder().build());
    let guard = guard(&[&describe, &remove], &[&record, &parked], &[]);
    let outcome = guard.handle(push(REPO, "v1.4.2-approved", A), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert_eq!(remove.num_calls(), 0);
}

#[tokio::test]
async fn the_sweep_removes_promotion_tags_without_an_approval_and_keeps_approved_ones() {
    let repositories = one_repository(REPO);
    let images = rules::images_listed(&[(A, &["v1.4.2", "v1.4.2-approved"]), (B, &["v1.4.3", "v1.4.3-approved"])]);
    let (known, no_cursor) = (rules::ledger_knows_tags(true), rules::no_sweep_cursor());
    // B's approval is recorded; A's tag was pushed while tag-guard was down.
    let records = mock!(aws_sdk_dynamodb::Client::query)
        .then_output(|| QueryOutput::builder().items(own_item(B, "v1.4.3-approved", "promotion")).build());
    let describe = tag_points_at("v1.4.2-approved", A, &["v1.4.2", "v1.4.2-approved"]);
    let remove = remove_ok("v1.4.2-approved", A);
    let (claim, publish) = (any_put_item(), publish_ok());
    let guard =
        guard(&[&repositories, &images, &describe, &remove], &[&records, &claim, &known, &no_cursor], &[&publish]);
    let outcome = guard.handle(sample("scheduled-rule.json"), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "forged-approval");
    assert_eq!(remove.num_calls(), 1, "only A's forged tag");
    assert_eq!(outcome.items.len(), 1);
    assert_eq!(publish.num_calls(), 1, "one summary");
}

#[tokio::test]
async fn the_sweep_removes_no_more_forged_tags_than_its_limit() {
    let repositories = one_repository(REPO);
    let images = rules::images_listed(&[(A, &["v1.4.2", "v1.4.2-approved"]), (B, &["v1.4.3", "v1.4.3-approved"])]);
    let (known, no_cursor) = (rules::ledger_knows_tags(true), rules::no_sweep_cursor());
    let no_records = mock!(aws_sdk_dynamodb::Client::query).then_output(|| QueryOutput::builder().build());
    let describe_a = tag_points_at("v1.4.2-approved", A, &["v1.4.2", "v1.4.2-approved"]);
    let describe_b = tag_points_at("v1.4.3-approved", B, &["v1.4.3", "v1.4.3-approved"]);
    let (remove, claim, publish) = (any_remove(), any_put_item(), publish_ok());
    let ecr: [&Rule; 5] = [&repositories, &images, &describe_a, &describe_b, &remove];
    let clients = testing::clients(&ecr, &[&no_records, &claim, &known, &no_cursor], &[&publish], Retries::None);
    let text = format!("{}\n[limits]\nsweep-max-tag-removals = 1\n", warden::policy::EMBEDDED_POLICY);
    let guard = TagGuard::new(Policy::from_toml(&text, "warden.toml").expect("policy"), testing::config(), clients)
        .expect("guard");
    let outcome = guard.handle(sample("scheduled-rule.json"), &testing::invocation()).await.expect("handled");
    assert_eq!(remove.num_calls(), 1, "one removal: the limit");
    assert_eq!(outcome.items.len(), 2, "both forged tags reported");
    let left = outcome.items.iter().find(|i| i.actions.is_empty()).expect("one left for the next sweep");
    assert!(left.reasons.iter().any(|r| r.contains("(its limit): left for the next")), "{:?}", left.reasons);
}

#[tokio::test]
async fn events_about_other_accounts_or_regions_are_refused_at_the_door() {
    let remove = any_remove();
    let guard = guard(&[&remove], &[], &[]);
    for (account, region) in [("999999999999", "us-east-1"), ("123456789012", "eu-west-1")] {
        for mut event in
            [push(REPO, "feature-x", A), sample("scheduled-rule.json"), sample("cloudtrail-create-repository.json")]
        {
            event["account"] = account.into();
            event["region"] = region.into();
            let outcome = guard.handle(event, &testing::invocation()).await.expect("skipped");
            assert_eq!(outcome.decision, "skipped", "{account} {region}");
            assert!(outcome.reasons[0].contains(if account == "999999999999" { "account" } else { "region" }));
            assert!(outcome.aws_calls.is_empty(), "{:?}", outcome.aws_calls);
        }
    }
    // A function that cannot tell where it runs acts on nothing.
    let unknown = warden::invocation::Invocation::default();
    let outcome = guard.handle(push(REPO, "feature-x", A), &unknown).await.expect("skipped");
    assert_eq!(outcome.decision, "skipped");
    assert_eq!(remove.num_calls(), 0);
}

#[test]
fn forged_approvals_can_be_routed_to_a_security_topic() {
    let policy = format!(
        "{}\n[[notify.route]]\ntopic = \"security\"\nkinds = [\"forged-approval\"]\nmin-severity = \"critical\"\n",
        warden::policy::EMBEDDED_POLICY
    );
    assert!(Policy::from_toml(&policy, "routed.toml").is_ok(), "forged-approval is a known notification kind");
}
