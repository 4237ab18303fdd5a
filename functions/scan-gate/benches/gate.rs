//! scan-gate's decision without AWS round trips: an image with 5,000 findings against a gate with a
//! 200-entry allowlist (target < 5 ms), and the counts-only decision. Run: `cargo bench -p scan-gate`.

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use warden::gate::{Finding, evaluate_counts, evaluate_findings};
use warden::policy::{FindingSeverity, Policy};

fn policy_with_allowlist(entries: usize) -> Policy {
    let mut text = String::from(
        "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.gate]\nmax = { critical = 0, high = 5 }\nfixable-only = true\nmin-epss = 0.01\npromote = [\"{tag}-approved\"]\n",
    );
    for i in 0..entries {
        let scope = if i % 2 == 0 { "\nrepositories = [\"prod/*\"]" } else { "" };
        text.push_str(&format!(
            "[[class.gate.allow]]\nid = \"CVE-2026-{:05}\"\nreason = \"accepted risk {i}\"\nexpires = 2027-{:02}-15{scope}\n",
            i * 25,
            1 + i % 12
        ));
    }
    Policy::from_toml(&text, "bench.toml").expect("valid policy")
}

fn findings(n: usize) -> Vec<Finding> {
    (0..n)
        .map(|i| {
            let mut f = Finding::new(format!("CVE-2026-{i:05}"), FindingSeverity::ALL[i % 6]);
            f.package = Some(format!("package-{}", i % 300));
            f.installed_version = Some("1.0.0".into());
            f.fixed_version = (i % 3 != 0).then(|| "1.0.1".into());
            f.fix_available = Some(i % 3 != 0);
            f.epss = (i % 5 != 0).then_some((i % 100) as f64 / 1000.0);
            f
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let policy = policy_with_allowlist(200);
    let gate = policy.classes[0].gate.as_ref().expect("gate");
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    let many = findings(5_000);
    c.bench_function("gate: 5,000 findings, 200-entry allowlist", |b| {
        b.iter(|| evaluate_findings(black_box(gate), "prod/payments-api", black_box(&many), today))
    });
    let few = findings(50);
    c.bench_function("gate: 50 findings, 200-entry allowlist", |b| {
        b.iter(|| evaluate_findings(black_box(gate), "prod/payments-api", black_box(&few), today))
    });
    let counts = evaluate_findings(gate, "prod/payments-api", &many, today).counts_before;
    c.bench_function("gate: event counts only", |b| b.iter(|| evaluate_counts(black_box(gate), black_box(&counts))));
}

criterion_group!(gate, benches);
criterion_main!(gate);
