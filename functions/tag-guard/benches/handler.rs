//! tag-guard's time per event without AWS round trips: the pure path (parse, classify, decide) and the whole
//! handler with the SDK clients answered in-process by aws-smithy-mocks (SDK serialisation included).
//! Run: `cargo bench -p tag-guard`. Results: BENCHMARKS.md.

use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::put_image::PutImageOutput;
use aws_sdk_ecr::types::{Image, ImageDetail};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use tag_guard::TagGuard;
use warden::aws::{CallCounter, Clients};
use warden::config::Config;
use warden::policy::{Classification, EMBEDDED_POLICY, Policy};
use warden::tags::{LedgerObservation, TagPointer, check_push, decide_recorded_push};

const A: &str = "sha256:7a6a95028731dbae7ab5e36a95ae1087234d240b81be3464060d7314b4c74d26";
const B: &str = "sha256:9879c546333f36f5d34063ebf385952ed69a10aac53e0e1c1da5066edd05012b";

fn push(tag: &str, digest: &str) -> Value {
    json!({
        "version": "0", "id": "4f7c1e52-8a0b-4d0e-9f1c-2b7e5d3a9c10", "detail-type": "ECR Image Action",
        "source": "aws.ecr", "account": "123456789012", "time": "2026-11-20T10:00:00Z", "region": "us-east-1",
        "resources": [],
        "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": "prod/payments-api",
            "image-digest": digest, "image-tag": tag,
            "manifest-media-type": "application/vnd.oci.image.manifest.v1+json"}
    })
}

fn guard(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule]) -> TagGuard {
    let clients = Clients {
        ecr: mock_client!(aws_sdk_ecr, RuleMode::MatchAny, ecr),
        dynamodb: mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, dynamodb),
        sns: mock_client!(aws_sdk_sns, RuleMode::MatchAny, sns),
        calls: CallCounter::default(),
        sdk: None,
    };
    let config = Config {
        ledger_table: Some("ledger".into()),
        topic_arn: Some("arn:aws:sns:us-east-1:1:t".into()),
        dry_run: false,
        ..Config::default()
    };
    TagGuard::new(Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("policy"), config, clients).expect("guard")
}

fn image(digest: &'static str, tags: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder()
            .image_details(
                ImageDetail::builder()
                    .image_digest(digest)
                    .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
                    .build(),
            )
            .build()
    })
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("policy");

    c.bench_function("policy load (embedded warden.toml)", |b| {
        b.iter(|| Policy::from_toml(black_box(EMBEDDED_POLICY), "warden.toml").expect("policy"))
    });

    let event = push("v1.4.2", A);
    c.bench_function("pure: parse + classify + decide (conforming push)", |b| {
        b.iter(|| {
            let parsed = warden::event::parse(black_box(event.clone())).expect("event");
            let warden::event::EventKind::ImageAction(action) = &parsed.kind else { unreachable!() };
            let Classification::Managed(class) = policy.classify(action.repository_name.as_str()) else {
                unreachable!()
            };
            let rules = class.tags.as_ref().expect("rules");
            let tag = action.image_tag.as_deref().expect("tag");
            let check = check_push(rules, tag);
            let pushed = TagPointer {
                digest: action.image_digest.clone(),
                since: "2026-11-20T10:00:00Z".into(),
                deleted_at: None,
            };
            black_box((check, decide_recorded_push(Some(rules), tag, &pushed, &LedgerObservation::New)))
        })
    });

    let update = mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| UpdateItemOutput::builder().build());
    let conforming = guard(&[], &[&update], &[]);
    c.bench_function("handler: conforming push (1 mocked call)", |b| {
        b.to_async(&runtime)
            .iter(|| async { conforming.handle(push("v1.4.2", A), &warden::testing::invocation()).await.expect("ok") })
    });

    let describe = image(A, &["feature-x"]);
    let manifest = mock!(aws_sdk_ecr::Client::batch_get_image)
        .then_output(|| BatchGetImageOutput::builder().images(Image::builder().image_manifest("{}").build()).build());
    let put = mock!(aws_sdk_ecr::Client::put_image).then_output(|| PutImageOutput::builder().build());
    let delete =
        mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build());
    let claim = warden::testing::rules::put_item_ok();
    let publish = warden::testing::rules::published();
    let sent = warden::testing::rules::notification_marked_sent();
    let released = warden::testing::rules::lease_released();
    let untag = guard(&[&describe, &manifest, &put, &delete], &[&claim, &sent, &released], &[&publish]);
    c.bench_function("handler: tag not allowed, last tag quarantined (10 mocked calls)", |b| {
        b.to_async(&runtime)
            .iter(|| async { untag.handle(push("feature-x", A), &warden::testing::invocation()).await.expect("ok") })
    });

    let moved = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .item("digest", AttributeValue::S(A.into()))
                .item("since", AttributeValue::S("2026-11-20T09:00:00Z".into()))
                .build(),
        )
    });
    let now_b = image(B, &["v1.4.2", "sha-1"]);
    let revert = guard(&[&now_b, &manifest, &put], &[&sent, &moved, &claim, &released], &[&publish]);
    c.bench_function("handler: protected tag move reverted (8 mocked calls)", |b| {
        b.to_async(&runtime)
            .iter(|| async { revert.handle(push("v1.4.2", B), &warden::testing::invocation()).await.expect("ok") })
    });

    let skip = guard(&[], &[], &[]);
    let unknown = json!({"version": "0", "id": "x", "detail-type": "Object Created", "source": "aws.s3", "detail": {}});
    c.bench_function("handler: unknown event skipped (0 calls)", |b| {
        b.to_async(&runtime)
            .iter(|| async { skip.handle(unknown.clone(), &warden::testing::invocation()).await.expect("ok") })
    });
}

criterion_group!(tag_guard, benches);
criterion_main!(tag_guard);
