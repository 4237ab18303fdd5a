//! What reading the policy at init costs per source (WARDEN_POLICY_SOURCE), against the local stack (moto):
//! the compiled-in policy, an S3 object and an SSM parameter, each load as a cold start makes it (its SDK client
//! built, the text fetched and validated, the last valid copy kept: one conditional PutItem). AppConfig is not
//! measured: moto has no AppConfig data plane. Needs WARDEN_TEST_ENDPOINT; run by `bench/policy-source`.

use criterion::{Criterion, criterion_group, criterion_main};
use integration_tests::{Stack, unique};
use warden::aws::policy_source::load_from;
use warden::config::Config;
use warden::policy::EMBEDDED_POLICY;

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (stack, s3_source, ssm_source) = runtime.block_on(async {
        let stack = Stack::new().await;
        let s3 =
            aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&stack.sdk).force_path_style(true).build());
        let bucket = unique("bench-policies-").to_lowercase();
        s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
        let body = aws_sdk_s3::primitives::ByteStream::from(EMBEDDED_POLICY.as_bytes().to_vec());
        s3.put_object().bucket(&bucket).key("warden.toml").body(body).send().await.expect("object");
        let name = format!("/{}/policy", unique("bench-"));
        aws_sdk_ssm::Client::new(&stack.sdk)
            .put_parameter()
            .name(&name)
            .value(EMBEDDED_POLICY)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .tier(aws_sdk_ssm::types::ParameterTier::IntelligentTiering)
            .send()
            .await
            .expect("parameter");
        (stack, format!("s3://{bucket}/warden.toml"), format!("ssm:{name}"))
    });
    let config = || Config { ledger_table: Some(stack.table.clone()), ..Config::default() };
    let mut group = c.benchmark_group("policy at init");
    group.sample_size(30);
    for (name, source) in [("compiled-in", None), ("s3", Some(s3_source.as_str())), ("ssm", Some(ssm_source.as_str()))]
    {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let mut config = config();
                let policy = load_from(&stack.sdk, &mut config, source).await.expect("loaded");
                assert!(config.policy_problem.is_none() && !policy.classes.is_empty());
            });
        });
    }
    group.finish();
}

criterion_group!(policy_source, benches);
criterion_main!(policy_source);
