//! The scheduled audit's own cost per registry size, its reads answered by aws-smithy-mocks (SDK request
//! serialisation and response parsing included, no network): what the function spends besides ECR's round
//! trips. Run: `cargo bench -p audit`.

use audit::Audit;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warden::policy::{EMBEDDED_POLICY, Policy};
use warden::testing::{self, Retries, rules};

fn audit_of(repositories: usize) -> Audit {
    let registry = rules::audited_registry(rules::repositories(repositories));
    let ecr: Vec<&aws_smithy_mocks::Rule> = registry.iter().collect();
    let (note, claim, publish) = (rules::put_item_ok(), rules::put_item_ok(), rules::published());
    let clients = testing::clients(&ecr, &[&note, &claim], &[&publish], Retries::None);
    let inspector = testing::inspector(&[], &clients, Retries::None);
    let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("policy");
    Audit::new(policy, testing::config(), clients, inspector, None).expect("audit")
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let schedule = testing::sample("scheduler.json");
    let mut group = c.benchmark_group("audit: scheduled run, mocked reads");
    group.sample_size(10);
    for repositories in [1_000, 10_000] {
        let audit = audit_of(repositories);
        group.bench_with_input(BenchmarkId::from_parameter(repositories), &repositories, |b, _| {
            b.to_async(&runtime).iter(|| async {
                let outcome = audit.handle(schedule.clone(), &testing::invocation()).await.expect("audited");
                assert!(outcome.reasons[0].starts_with(&format!("{repositories} repositories audited")));
            });
        });
    }
    group.finish();
}

criterion_group!(audit_benches, benches);
criterion_main!(audit_benches);
