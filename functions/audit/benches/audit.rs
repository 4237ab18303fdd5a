//! The scheduled audit's own cost per registry size, and a hub's sweep of a simulated organization, its reads
//! answered by aws-smithy-mocks (SDK request serialisation and response parsing included, no network): what the
//! function spends besides AWS's round trips. Run: `cargo bench -p audit` (`-- hub` for the organization alone).

use audit::Audit;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warden::event::EventKind;
use warden::fanout::work_item;
use warden::invocation::Home;
use warden::policy::{EMBEDDED_POLICY, Policy};
use warden::reach::{ACCOUNTS_ENV, MEMBER_ROLE_ENV, REGIONS_ENV, Reach};
use warden::testing::{self, Retries, rules};

const ACCOUNTS: usize = 100;
const REGIONS: &str = "us-east-1,eu-west-1,ap-southeast-2";
const REPOSITORIES: usize = 200;

fn hub() -> warden::reach::Hub {
    let accounts = (0..ACCOUNTS).map(|i| format!("{:012}", 200_000_000_000 + i)).collect::<Vec<_>>().join(",");
    let vars =
        [(ACCOUNTS_ENV, accounts.as_str()), (REGIONS_ENV, REGIONS), (MEMBER_ROLE_ENV, "arn:aws:iam::{account}:role/m")];
    match Reach::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())) {
        Ok(Reach::Hub(hub)) => hub,
        other => panic!("a hub: {other:?}"),
    }
}

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

/// A hub's sweep of a simulated organization, 100 accounts × 3 regions × 200 repositories: the plan (one work
/// item per registry, queued ten per SendMessageBatch) and one work item delivered back through the sweep queue
/// (an SQS batch of one) and audited. BENCHMARKS.md turns it into the organization's throughput.
fn hub_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let hub = hub();
    let home = Home::new("111111111111", "us-east-1");
    let schedule = warden::event::parse(testing::sample("scheduler.json")).expect("schedule");
    let EventKind::Scheduled(sweep) = &schedule.kind else { panic!("a schedule") };
    let sent = mock!(aws_sdk_sqs::Client::send_message_batch).then_output(|| {
        SendMessageBatchOutput::builder().set_successful(Some(vec![])).set_failed(Some(vec![])).build().expect("output")
    });
    let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&sent]);
    let mut group = c.benchmark_group("hub: 100 accounts × 3 regions × 200 repositories");
    group.sample_size(20);
    group.bench_function("plan: 300 work items, 30 SendMessageBatch (mocked)", |b| {
        b.to_async(&runtime).iter(|| async {
            let items: Vec<_> = hub.sweep_items(&home, &[]).iter().map(|r| work_item(&schedule, sweep, r)).collect();
            assert_eq!(items.len(), 300);
            warden::aws::fanout::queue(&sqs, "https://sqs.us-east-1.amazonaws.com/111111111111/q.fifo", &items)
                .await
                .expect("queued");
        });
    });
    // One work item as the event source mapping delivers it: the registry of the function's own account here
    // (mocked clients cannot assume a member role; that is one AssumeRole per account per hour).
    let item = work_item(&schedule, sweep, &Home::new("123456789012", "us-east-1"));
    let batch = serde_json::json!({"Records": [{"messageId": "m-1", "body": item.body, "eventSource": "aws:sqs"}]});
    let audit = audit_of(REPOSITORIES);
    group.bench_function("work item: one registry of 200 repositories audited (mocked reads)", |b| {
        b.to_async(&runtime).iter(|| async {
            let outcome = audit.handle(batch.clone(), &testing::invocation()).await.expect("batch");
            assert!(outcome.batch_item_failures.is_empty(), "{:?}", outcome.reasons);
            assert!(
                outcome.items[0].reasons[0].starts_with("200 repositories audited"),
                "{:?}",
                outcome.items[0].reasons
            );
        });
    });
    group.finish();
    println!(
        "calls per work item: {:?}",
        runtime.block_on(audit.handle(batch.clone(), &testing::invocation())).map(|o| o.total_aws_calls())
    );
}

criterion_group!(audit_benches, benches, hub_benches);
criterion_main!(audit_benches);
