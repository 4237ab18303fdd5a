//! The sweep's backfill: protected tags the ledger does not know are recorded where they point (conditional
//! writes, a `backfilled` history entry), known ones are not written again, and the pass stops before the
//! deadline and resumes where it stopped.

use super::*;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecr::types::ImageDetail;

/// A backfill transaction: the pointer written only where none exists, with its `backfilled` history entry.
fn backfill_written() -> Rule {
    mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(|r| {
            let items = r.transact_items();
            let update = items.first().and_then(|i| i.update());
            let history = items.get(1).and_then(|i| i.put()).map(|p| p.item());
            update.is_some_and(|u| u.condition_expression() == Some("attribute_not_exists(digest)"))
                && history.and_then(|h| h.get("what")).and_then(|w| w.as_s().ok()).is_some_and(|w| w == "backfilled")
        })
        .then_output(|| TransactWriteItemsOutput::builder().build())
}

/// Nothing an earlier attempt of the sweep left unsaid (the Query a sweep with nothing to say makes).
fn nothing_parked() -> Rule {
    mock!(aws_sdk_dynamodb::Client::query)
        .then_output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build())
}

async fn sweep(guard: &TagGuard, deadline: Option<std::time::SystemTime>) -> Outcome {
    let invocation = testing::invocation_until(deadline);
    guard.handle(sample("scheduled-rule.json"), &invocation).await.expect("handled")
}

#[tokio::test]
async fn the_sweep_records_the_protected_tags_the_ledger_does_not_know() {
    let (repositories, parked) = (one_repository(REPO), nothing_parked());
    let images = rules::images_listed(&[(A, &["v1.0.0", "latest"]), (B, &["v1.1.0", "sha-abc", "v1.1"])]);
    let (unknown, written, no_cursor) = (rules::ledger_knows_tags(false), backfill_written(), rules::no_sweep_cursor());
    let guard = guard(&[&repositories, &images], &[&unknown, &written, &no_cursor, &parked], &[]);
    let outcome = sweep(&guard, None).await;
    assert_eq!(outcome.decision, "settings-ok");
    assert_eq!(written.num_calls(), 2, "v1.0.0 and v1.1.0: latest is mutable, sha-abc unprotected, v1.1 not allowed");
    assert_eq!(unknown.num_calls(), 1, "one BatchGetItem for both");
    assert!(outcome.reasons.iter().any(|r| r.contains("backfill: 2 of 2 protected tags")), "{:?}", outcome.reasons);
    assert!(!outcome.notified, "a backfill is not news");

    // The next sweep finds them known: nothing written.
    let (known, no_cursor) = (rules::ledger_knows_tags(true), rules::no_sweep_cursor());
    let guard = super::guard(&[&repositories, &images], &[&known, &no_cursor, &parked], &[]);
    let outcome = sweep(&guard, None).await;
    assert_eq!(
        calls(&outcome).iter().find(|(c, _)| *c == "DynamoDB.TransactWriteItems"),
        None,
        "{:?}",
        calls(&outcome)
    );
}

/// A push recorded between the listing and the write wins: the conditional write fails and nothing is
/// overwritten or counted as recorded.
#[tokio::test]
async fn a_tag_recorded_meanwhile_is_not_overwritten() {
    let (repositories, parked) = (one_repository(REPO), nothing_parked());
    let images = rules::images_listed(&[(A, &["v1.0.0"])]);
    let (unknown, no_cursor) = (rules::ledger_knows_tags(false), rules::no_sweep_cursor());
    let held = rules::approval_superseded(0, "push");
    let guard = guard(&[&repositories, &images], &[&unknown, &held, &no_cursor, &parked], &[]);
    let outcome = sweep(&guard, None).await;
    assert_eq!(held.num_calls(), 1, "the conditional write was tried");
    assert!(!outcome.reasons.iter().any(|r| r.contains("backfill:")), "nothing recorded: {:?}", outcome.reasons);
}

/// Calls per 1,000 images, each with one protected tag: one DescribeImages page, ten BatchGetItem, and one
/// transaction per unknown tag; once known, no writes at all.
#[tokio::test]
async fn a_thousand_images_cost_one_listing_ten_reads_and_one_write_per_unknown_tag() {
    let (repositories, parked) = (one_repository(REPO), nothing_parked());
    let thousand = mock!(aws_sdk_ecr::Client::describe_images).then_output(|| {
        let details = (0..1000).map(|n| {
            ImageDetail::builder()
                .image_digest(format!("sha256:{n:064x}"))
                .image_tags(format!("v1.0.{n}"))
                .image_pushed_at(aws_smithy_types::DateTime::from_secs(1_764_000_000 + n))
                .build()
        });
        aws_sdk_ecr::operation::describe_images::DescribeImagesOutput::builder()
            .set_image_details(Some(details.collect()))
            .build()
    });
    for (known, writes) in [(false, 1000), (true, 0)] {
        let (ledger, written, no_cursor) =
            (rules::ledger_knows_tags(known), backfill_written(), rules::no_sweep_cursor());
        let guard = guard(&[&repositories, &thousand], &[&ledger, &written, &no_cursor, &parked], &[]);
        let outcome = sweep(&guard, None).await;
        let count = |call: &str| calls(&outcome).into_iter().find(|(c, _)| *c == call).map_or(0, |(_, n)| n);
        assert_eq!(count("ECR.DescribeImages"), 1);
        assert_eq!(count("DynamoDB.BatchGetItem"), 10);
        assert_eq!(count("DynamoDB.TransactWriteItems"), writes, "known: {known}");
    }
}

/// Out of time: the pass records where it stopped; the next sweep resumes there and, having finished, clears
/// the cursor.
#[tokio::test]
async fn the_image_pass_stops_before_the_deadline_and_resumes_where_it_stopped() {
    let (repositories, parked) = (one_repository(REPO), nothing_parked());
    let images = rules::images_listed(&[(A, &["v1.0.0"])]);
    let no_cursor = rules::no_sweep_cursor();
    let saved = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            let text = |k: &str| r.item().and_then(|i| i.get(k)).and_then(|v| v.as_s().ok()).cloned();
            text("pk").as_deref() == Some("SWEEP#tag-guard#images") && text("repository").as_deref() == Some(REPO)
        })
        .then_output(|| PutItemOutput::builder().build());
    let guard = guard(&[&repositories, &images], &[&no_cursor, &saved, &parked], &[]);
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let outcome = sweep(&guard, Some(soon)).await;
    assert_eq!((images.num_calls(), saved.num_calls()), (0, 1), "no listing started; the cursor saved");
    assert!(outcome.reasons.iter().any(|r| r.contains(&format!("stopped before the deadline in {REPO}"))));

    let cursor = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .item("repository", AttributeValue::S(REPO.into()))
            .item("phase", AttributeValue::S("images".into()))
            .build()
    });
    let cleared = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| {
            r.key()
                .and_then(|k| k.get("pk"))
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk == "SWEEP#tag-guard#images")
        })
        .then_output(|| aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput::builder().build());
    let (unknown, written) = (rules::ledger_knows_tags(false), backfill_written());
    let guard = super::guard(&[&repositories, &images], &[&cursor, &cleared, &unknown, &written, &parked], &[]);
    let outcome = sweep(&guard, None).await;
    assert_eq!((images.num_calls(), written.num_calls(), cleared.num_calls()), (1, 1, 1), "{:?}", outcome.reasons);
}
