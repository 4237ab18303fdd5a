//! The policy published to S3 or an SSM parameter (WARDEN_POLICY_SOURCE), against moto: a valid one is acted on
//! and kept; an invalid one never replaces a valid one (the last valid published policy, else the compiled-in
//! one) and is told once, as a critical notification naming the errors at their line.

use aws_sdk_ecr::types::ImageTagMutability;
use integration_tests::{Stack, image_action, invocation, unique};
use tag_guard::TagGuard;
use warden::aws::Clients;
use warden::aws::policy_source::load_from;
use warden::config::Config;
use warden::policy::{EMBEDDED_POLICY, Policy};

/// The shipped policy with one more class, so that the test can tell which policy a function acts on.
fn published() -> String {
    format!("{EMBEDDED_POLICY}\n[[class]]\nname = \"published-only\"\nrepositories = [\"published-only/*\"]\n")
}

/// The published policy with an error on its last line (`managed` must be true or false).
fn broken() -> (String, usize) {
    let text = format!("{}managed = \"sometimes\"\n", published());
    let line = text.lines().count();
    (text, line)
}

fn config(stack: &Stack) -> Config {
    Config { ledger_table: Some(stack.table.clone()), topic_arn: Some(stack.topic_arn.clone()), ..Config::default() }
}

fn has_published_class(policy: &Policy) -> bool {
    policy.classes.iter().any(|c| c.name == "published-only")
}

async fn s3_source(stack: &Stack) -> (aws_sdk_s3::Client, String, String) {
    let s3 =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&stack.sdk).force_path_style(true).build());
    let bucket = unique("policies-").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let source = format!("s3://{bucket}/ecr-warden/warden.toml");
    (s3, bucket, source)
}

async fn put_object(s3: &aws_sdk_s3::Client, bucket: &str, text: &str) {
    let body = aws_sdk_s3::primitives::ByteStream::from(text.as_bytes().to_vec());
    s3.put_object().bucket(bucket).key("ecr-warden/warden.toml").body(body).send().await.expect("put");
}

#[tokio::test]
async fn an_invalid_policy_published_to_s3_never_replaces_the_last_valid_one_and_is_told_once() {
    let stack = Stack::new().await;
    let (s3, bucket, source) = s3_source(&stack).await;

    put_object(&s3, &bucket, &published()).await;
    let mut first = config(&stack);
    let policy = load_from(&stack.sdk, &mut first, Some(&source)).await.expect("loaded");
    assert!(has_published_class(&policy), "the published policy is acted on");
    assert!(first.policy_problem.is_none());

    let (text, line) = broken();
    put_object(&s3, &bucket, &text).await;
    let mut second = config(&stack);
    let policy = load_from(&stack.sdk, &mut second, Some(&source)).await.expect("loaded");
    assert!(has_published_class(&policy), "still the last valid published policy, not the compiled-in one");
    let problem = second.policy_problem.clone().expect("the problem is kept for telling");
    assert!(problem.errors.iter().any(|e| e.starts_with(&format!("{source}:{line}:"))), "{:?}", problem.errors);

    // The function tells it on its first event, as one critical notification, and not again.
    let guard = TagGuard::new(policy.clone(), second.clone(), Clients::new(&stack.sdk)).expect("guard");
    let repo = unique("dev/web-");
    stack.create_repository(&repo, ImageTagMutability::Mutable).await;
    let digest = stack.push(&repo, "x", Some("v1.0.0")).await;
    for _ in 0..2 {
        guard
            .handle(image_action("PUSH", &repo, &digest, Some("v1.0.0"), "2026-12-01T00:00:00Z"), &invocation())
            .await
            .expect("handled");
    }
    // Another instance (a cold start) with the same problem does not tell it again either.
    let other = TagGuard::new(policy, second, Clients::new(&stack.sdk)).expect("guard");
    other
        .handle(image_action("PUSH", &repo, &digest, Some("v1.0.0"), "2026-12-01T00:00:00Z"), &invocation())
        .await
        .expect("handled");
    let messages = stack.messages().await;
    let told: Vec<_> =
        messages.iter().filter(|m| m["MessageAttributes"]["kind"]["Value"] == "policy-invalid").collect();
    assert_eq!(told.len(), 1, "{messages:?}");
    assert_eq!(told[0]["MessageAttributes"]["severity"]["Value"], "critical");
    let body: serde_json::Value = serde_json::from_str(told[0]["Message"].as_str().expect("text")).expect("json");
    let reasons = body["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r.as_str().is_some_and(|r| r.starts_with(&format!("{source}:{line}:")))),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.as_str().is_some_and(|r| r.contains("last valid"))), "{reasons:?}");
}

#[tokio::test]
async fn an_ssm_parameter_is_read_and_an_unreadable_one_falls_back_to_the_compiled_in_policy() {
    let stack = Stack::new().await;
    let ssm = aws_sdk_ssm::Client::new(&stack.sdk);
    let name = format!("/{}/policy", unique("ecr-warden-"));
    let source = format!("ssm:{name}");

    // Nothing published yet, nothing kept: the compiled-in policy, the reason named.
    let mut missing = config(&stack);
    let policy = load_from(&stack.sdk, &mut missing, Some(&source)).await.expect("loaded");
    assert!(!has_published_class(&policy));
    let problem = missing.policy_problem.expect("a problem");
    assert!(problem.acting_on.contains("compiled"), "{problem:?}");
    assert!(problem.errors[0].contains("ParameterNotFound"), "{:?}", problem.errors);

    // Published (the policy is over 4 KB: SSM's intelligent tiering makes it an advanced parameter).
    ssm.put_parameter()
        .name(&name)
        .value(published())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tier(aws_sdk_ssm::types::ParameterTier::IntelligentTiering)
        .send()
        .await
        .expect("parameter");
    let mut found = config(&stack);
    let policy = load_from(&stack.sdk, &mut found, Some(&source)).await.expect("loaded");
    assert!(has_published_class(&policy) && found.policy_problem.is_none());

    // No source: the compiled-in policy, no AWS call.
    let mut none = config(&stack);
    assert!(!has_published_class(&load_from(&stack.sdk, &mut none, None).await.expect("loaded")));
    let bad = load_from(&stack.sdk, &mut config(&stack), Some("https://example.com/policy")).await;
    assert!(bad.expect_err("not a source").to_string().contains("WARDEN_POLICY_SOURCE"));
}
