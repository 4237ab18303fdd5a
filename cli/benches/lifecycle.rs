//! The lifecycle evaluator's scaling: 10k, 100k and 1M images against a 50-rule policy.
//! Run: `cargo bench -p warden-cli --bench lifecycle`. Results: BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use warden::lifecycle::{Image, LifecyclePolicy, StorageClass, decide, evaluate};

const NOW: i64 = 1_795_000_000;

/// 50 rules: 24 prefix rules, 23 pattern rules, one untagged, one archive expiry, `any` last.
pub fn fifty_rules() -> LifecyclePolicy {
    let mut rules = Vec::new();
    for i in 0..24 {
        rules.push(
            json!({"rulePriority": i + 1, "selection": {"tagStatus": "tagged", "tagPrefixList": [format!("team{i}-")],
            "countType": "imageCountMoreThan", "countNumber": 20}, "action": {"type": "expire"}}),
        );
    }
    for i in 0..23 {
        rules.push(json!({"rulePriority": 100 + i, "selection": {"tagStatus": "tagged", "tagPatternList": [format!("*-build{i}-*")],
            "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}));
    }
    rules.push(json!({"rulePriority": 200, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}));
    rules.push(json!({"rulePriority": 201, "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 180}, "action": {"type": "expire"}}));
    rules.push(json!({"rulePriority": 300, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5000}, "action": {"type": "expire"}}));
    LifecyclePolicy::parse(&json!({ "rules": rules }).to_string()).expect("valid 50-rule policy")
}

pub fn images(n: usize) -> Vec<Image> {
    (0..n)
        .map(|i| Image {
            digest: format!("sha256:{i:064x}"),
            tags: if i % 7 == 0 { vec![] } else { vec![format!("team{}-build{}-{i}", i % 30, i % 25)] },
            pushed_at: NOW - (i as i64 % 400) * 86_400 - i as i64,
            last_pulled_at: None,
            storage_class: if i % 50 == 0 { StorageClass::Archive } else { StorageClass::Standard },
            archived_at: (i % 50 == 0).then_some(NOW - 200 * 86_400),
            activated_at: None,
            ..Default::default()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let policy = fifty_rules();
    let mut group = c.benchmark_group("lifecycle: 50 rules");
    group.sample_size(10);
    // `cargo test --all-targets` runs benches once as a smoke test (no `--bench` argument): keep that quick.
    let sizes: &[usize] =
        if std::env::args().any(|a| a == "--bench") { &[10_000, 100_000, 1_000_000] } else { &[10_000] };
    for &n in sizes {
        let inventory = images(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &inventory, |b, inventory| {
            b.iter(|| evaluate(black_box(&policy), black_box(inventory), NOW))
        });
    }
    group.finish();
    // The fixed part: ranking and laying out the inventory, and writing the preview, under a single rule.
    let single = LifecyclePolicy::parse(
        r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5000}, "action": {"type": "expire"}}]}"#,
    )
    .expect("valid");
    let mut group = c.benchmark_group("lifecycle: 1 rule");
    group.sample_size(10);
    for &n in sizes {
        let inventory = images(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &inventory, |b, inventory| {
            b.iter(|| evaluate(black_box(&single), black_box(inventory), NOW))
        });
        group.bench_with_input(BenchmarkId::new("decide only", n), &inventory, |b, inventory| {
            b.iter(|| decide(black_box(&single), black_box(inventory), NOW))
        });
    }
    group.finish();
}

criterion_group!(lifecycle, benches);
criterion_main!(lifecycle);
