use super::*;
use crate::policy::{OnFailure, Policy};

const DIGEST: &str = "sha256:6acea1b877bac2682db3652df3de9bf1930e81c9ffc7265cae361458643f1143";

fn gate(body: &str) -> GateRules {
    let text = format!(
        "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.gate]\npromote = [\"{{tag}}-approved\", \"approved-{{digest12}}\"]\n{body}\n"
    );
    let policy = Policy::from_toml(&text, "gate.toml").unwrap_or_else(|e| panic!("invalid test policy: {e}"));
    policy.classes[0].gate.clone().expect("gate")
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
}

fn finding(id: &str, severity: FindingSeverity) -> Finding {
    Finding::new(id, severity)
}

#[test]
fn every_severity_limit() {
    for severity in FindingSeverity::ALL {
        let key = severity.as_str().to_lowercase();
        let g = gate(&format!("max = {{ {key} = 1 }}"));
        let one = vec![finding("CVE-1", severity)];
        let two = vec![finding("CVE-1", severity), finding("CVE-2", severity)];
        assert!(evaluate_findings(&g, "r", &one, date("2026-11-28")).pass, "{severity}: one is within 1");
        let result = evaluate_findings(&g, "r", &two, date("2026-11-28"));
        assert!(!result.pass, "{severity}: two exceed 1");
        assert_eq!(result.blocking.len(), 2, "{severity}");
        assert!(result.reasons[0].starts_with(severity.as_str()), "{:?}", result.reasons);
        // Other severities have no limit here.
        let other = FindingSeverity::ALL.into_iter().find(|s| *s != severity).expect("another");
        let many: Vec<Finding> = (0..50).map(|i| finding(&format!("X-{i}"), other)).collect();
        assert!(evaluate_findings(&g, "r", &many, date("2026-11-28")).pass, "{severity}: {other} is unlimited");
    }
}

#[test]
fn allowlist_table() {
    let g = gate(
        r#"max = { critical = 0, high = 0 }
[[class.gate.allow]]
id = "CVE-2026-0001"
reason = "not reachable"
expires = 2026-11-28
[[class.gate.allow]]
id = "cve-2026-0002"
reason = "payments only"
expires = 2027-01-01
repositories = ["prod/payments-*"]
[[class.gate.allow]]
id = "CVE-2026-0003"
reason = "expired long ago"
expires = 2025-01-01
[[class.gate.allow]]
id = "CVE-2026-9999"
reason = "no longer present"
expires = 2027-01-01"#,
    );
    // (case, repository, today, finding ids, pass, allowlisted, expired, stale)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
        bool,
        usize,
        usize,
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            "entry applies on its expiry day",
            "prod/api",
            "2026-11-28",
            &["CVE-2026-0001"],
            true,
            1,
            0,
            &["CVE-2026-9999"],
        ),
        ("entry expired the day after", "prod/api", "2026-11-29", &["CVE-2026-0001"], false, 0, 1, &["CVE-2026-9999"]),
        (
            "ids match case-insensitively, in scope",
            "prod/payments-api",
            "2026-11-28",
            &["CVE-2026-0002"],
            true,
            1,
            0,
            &["CVE-2026-0001", "CVE-2026-9999"],
        ),
        (
            "out of scope",
            "prod/billing",
            "2026-11-28",
            &["CVE-2026-0002"],
            false,
            0,
            0,
            &["CVE-2026-0001", "CVE-2026-9999"],
        ),
        (
            "long expired entry",
            "prod/api",
            "2026-11-28",
            &["CVE-2026-0003"],
            false,
            0,
            1,
            &["CVE-2026-0001", "CVE-2026-9999"],
        ),
        (
            "nothing found: in-scope live entries are stale",
            "prod/api",
            "2026-11-28",
            &[],
            true,
            0,
            0,
            &["CVE-2026-0001", "CVE-2026-9999"],
        ),
    ];
    for (case, repository, today, ids, pass, allowlisted, expired, stale) in cases {
        let findings: Vec<Finding> = ids.iter().map(|id| finding(id, FindingSeverity::Critical)).collect();
        let result = evaluate_findings(&g, repository, &findings, date(today));
        assert_eq!(result.pass, *pass, "{case}: {:?}", result.reasons);
        assert_eq!(result.allowlisted.len(), *allowlisted, "{case}");
        assert_eq!(result.expired.len(), *expired, "{case}: {:?}", result.expired);
        assert_eq!(result.stale, stale.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), "{case}");
        if *expired > 0 {
            assert!(result.reasons.iter().any(|r| r.contains("no longer applies")), "{case}: the notification says so");
        }
    }
}

#[test]
fn filters_table() {
    let mut unfixed = finding("CVE-A", FindingSeverity::High);
    unfixed.fix_available = Some(false);
    let mut fixed = finding("CVE-B", FindingSeverity::High);
    fixed.fix_available = Some(true);
    let unknown_fix = finding("CVE-C", FindingSeverity::High);
    let mut low_epss = finding("CVE-D", FindingSeverity::High);
    low_epss.epss = Some(0.01);
    let mut at_epss = finding("CVE-E", FindingSeverity::High);
    at_epss.epss = Some(0.1);
    let mut no_exploit = finding("CVE-F", FindingSeverity::High);
    no_exploit.exploit_available = Some(false);
    let mut exploit = finding("CVE-G", FindingSeverity::High);
    exploit.exploit_available = Some(true);
    // (case, gate body, findings, how many count)
    let cases: Vec<(&str, &str, Vec<Finding>, u64)> = vec![
        ("no filters: all count", "max = { high = 0 }", vec![unfixed.clone(), fixed.clone(), unknown_fix.clone()], 3),
        (
            "fixable-only drops unfixable, keeps unknown",
            "max = { high = 0 }\nfixable-only = true",
            vec![unfixed, fixed, unknown_fix.clone()],
            2,
        ),
        (
            "min-epss drops lower scores, keeps equal and unknown",
            "max = { high = 0 }\nmin-epss = 0.1",
            vec![low_epss, at_epss, unknown_fix.clone()],
            2,
        ),
        (
            "exploitable-only drops known-unexploitable",
            "max = { high = 0 }\nexploitable-only = true",
            vec![no_exploit, exploit, unknown_fix],
            2,
        ),
    ];
    for (case, body, findings, counted) in cases {
        let result = evaluate_findings(&gate(body), "r", &findings, date("2026-11-28"));
        assert_eq!(result.counts_after[&FindingSeverity::High], counted, "{case}");
        assert_eq!(result.counts_before[&FindingSeverity::High], findings.len() as u64, "{case}");
        assert_eq!(result.blocking.len() as u64, counted, "{case}");
    }
}

#[test]
fn blocking_findings_most_severe_first() {
    let g = gate("max = { critical = 0, high = 0, low = 5 }");
    let findings = vec![
        finding("CVE-3", FindingSeverity::High),
        finding("CVE-9", FindingSeverity::Low),
        finding("CVE-2", FindingSeverity::Critical),
        finding("CVE-1", FindingSeverity::High),
    ];
    let result = evaluate_findings(&g, "r", &findings, date("2026-11-28"));
    let ids: Vec<&str> = result.blocking.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, vec!["CVE-2", "CVE-1", "CVE-3"], "LOW is within its limit, so it does not block");
}

#[test]
fn counts_from_events() {
    let counts: SeverityCounts =
        serde_json::from_value(serde_json::json!({"CRITICAL": 0, "HIGH": 2, "MEDIUM": 5, "TOTAL": 9})).expect("counts");
    let (read, reported) = counts_from_event(&counts);
    assert_eq!((read[&FindingSeverity::High], read[&FindingSeverity::Low]), (2, 0));
    assert_eq!(reported, vec![FindingSeverity::Critical, FindingSeverity::High, FindingSeverity::Medium]);
    let g = gate("max = { critical = 0, high = 1 }");
    assert!(!evaluate_counts(&g, &read).pass);
    assert!(decidable_from_counts(&g, &reported, false), "Inspector reported every limited severity");
    let low = gate("max = { low = 1 }");
    assert!(!decidable_from_counts(&low, &reported, false), "LOW is not in Inspector's scan event");
    assert!(decidable_from_counts(&low, &reported, true), "basic scanning omits only zero counts");
    let allow = gate("max = { low = 1 }\n[[class.gate.allow]]\nid = \"X\"\nreason = \"r\"\nexpires = 2027-01-01");
    assert!(!decidable_from_counts(&allow, &reported, true), "an allowlist needs the findings");
}

#[test]
fn promotion_tags_and_steps() {
    let g = gate("max = { critical = 0 }");
    let tags = vec!["v1.5.0".to_owned(), "v1.5.0-approved".to_owned(), "quarantine-6acea1b877ba".to_owned()];
    let own = |t: &str| g.is_promotion_tag(t) || t.starts_with("quarantine-");
    let (rendered, problems) = promotion_tags(&g.promote, DIGEST, &tags, own);
    assert_eq!(rendered, vec!["v1.5.0-approved", "approved-6acea1b877ba"]);
    assert!(problems.is_empty());
    let steps = plan_promotion(&rendered, DIGEST, &tags);
    assert_eq!(steps, vec![Step::AddTag { tag: "approved-6acea1b877ba".into(), digest: DIGEST.into() }]);
    let long = vec!["x".repeat(125)];
    let (rendered, problems) = promotion_tags(&g.promote, DIGEST, &long, own);
    assert_eq!(rendered, vec!["approved-6acea1b877ba"], "the too-long render is skipped");
    assert_eq!(problems.len(), 1);
    let (untagged, _) = promotion_tags(&g.promote, DIGEST, &[], own);
    assert_eq!(untagged, vec!["approved-6acea1b877ba"], "digest-only pushes still get digest templates");
}

#[test]
fn demotion_never_leaves_an_image_without_a_tag() {
    let g = gate("max = { critical = 0 }\non-failure = \"demote\"");
    assert_eq!(g.on_failure, OnFailure::Demote);
    let quarantine = TagTemplate::parse("quarantine-{digest12}").expect("template");
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let remove = |t: &str| Step::RemoveTag { tag: t.into(), digest: DIGEST.into() };
    type Case<'a> = (&'a str, Vec<String>, Option<&'a TagTemplate>, Result<Vec<Step>, ()>);
    let cases: Vec<Case<'_>> = vec![
        ("not promoted", strings(&["v1.5.0"]), Some(&quarantine), Ok(vec![])),
        (
            "other tags stay",
            strings(&["v1.5.0", "v1.5.0-approved"]),
            Some(&quarantine),
            Ok(vec![remove("v1.5.0-approved")]),
        ),
        (
            "only promotion tags: quarantine first",
            strings(&["approved-6acea1b877ba"]),
            Some(&quarantine),
            Ok(vec![
                Step::Quarantine { tag: "quarantine-6acea1b877ba".into(), digest: DIGEST.into() },
                remove("approved-6acea1b877ba"),
            ]),
        ),
        ("only promotion tags, no quarantine", strings(&["approved-6acea1b877ba"]), None, Err(())),
    ];
    for (case, tags, quarantine, expected) in cases {
        let planned = plan_demotion(&g, DIGEST, &tags, quarantine).map_err(|_| ());
        assert_eq!(planned, expected, "{case}");
    }
}

#[test]
fn scan_states() {
    let cases = [
        ("COMPLETE", ScanState::Complete),
        ("ACTIVE", ScanState::Complete),
        ("INITIAL_SCAN_COMPLETE", ScanState::Complete),
        ("IN_PROGRESS", ScanState::Pending),
        ("PENDING", ScanState::Pending),
        ("FAILED", ScanState::Failed("scan status FAILED: boom".into())),
        ("UNSUPPORTED_IMAGE", ScanState::Failed("scan status UNSUPPORTED_IMAGE: boom".into())),
        ("SCAN_ELIGIBILITY_EXPIRED", ScanState::Failed("scan status SCAN_ELIGIBILITY_EXPIRED: boom".into())),
    ];
    for (status, expected) in cases {
        assert_eq!(scan_state(status, Some("boom")), expected, "{status}");
    }
}

#[test]
fn gate_policy_errors() {
    let cases = [
        ("max = {}", "at least one severity limit"),
        ("max = { critcal = 0 }", "unknown field"),
        ("max = { high = 0 }\nmin-epss = 1.5", "between 0 and 1"),
        ("max = { high = 0 }\non-failure = \"delete\"", "unknown variant"),
        (
            "max = { high = 0 }\n[[class.gate.allow]]\nid = \"\"\nreason = \"r\"\nexpires = 2027-01-01",
            "empty vulnerability id",
        ),
        ("max = { high = 0 }\n[[class.gate.allow]]\nid = \"X\"\nreason = \" \"\nexpires = 2027-01-01", "say why"),
        ("max = { high = 0 }\n[[class.gate.allow]]\nid = \"X\"\nreason = \"r\"\nexpires = 10:00:00", "give a date"),
        (
            "max = { high = 0 }\n[[class.gate.allow]]\nid = \"X\"\nreason = \"r\"\nexpires = 2027-01-01\n[[class.gate.allow]]\nid = \"x\"\nreason = \"r\"\nexpires = 2027-02-01",
            "allowlisted twice",
        ),
    ];
    for (body, expected) in cases {
        let text = format!(
            "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.gate]\npromote = [\"ok-{{digest12}}\"]\n{body}\n"
        );
        let error = Policy::from_toml(&text, "gate.toml").expect_err(body).to_string();
        assert!(error.contains(expected), "{body}: {error}");
        assert!(error.starts_with("gate.toml:"), "{error}");
    }
    for (promote, expected) in [
        ("[]", "at least one promotion tag"),
        ("[\"{tag}\"]", "template"),
        ("[\"a/{tag}\"]", "not allowed"),
        ("[\"x-{digest12}\", \"x-{digest12}\"]", "twice"),
    ] {
        let text = format!(
            "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.gate]\nmax = {{ high = 0 }}\npromote = {promote}\n"
        );
        let error = Policy::from_toml(&text, "gate.toml").expect_err(promote).to_string();
        assert!(error.contains(expected), "{promote}: {error}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Allowlisting a finding, or removing one, never turns a passing image into a failing one.
        #[test]
        fn fewer_counted_findings_never_fail_more(severities in proptest::collection::vec(0usize..6, 0..40), drop in 0usize..40) {
            let g = gate("max = { critical = 0, high = 2, medium = 5 }");
            let findings: Vec<Finding> = severities.iter().enumerate().map(|(i, s)| finding(&format!("CVE-{i}"), FindingSeverity::ALL[*s])).collect();
            let today = date("2026-11-28");
            let all = evaluate_findings(&g, "r", &findings, today);
            let mut fewer = findings.clone();
            if !fewer.is_empty() { fewer.remove(drop % fewer.len()); }
            let less = evaluate_findings(&g, "r", &fewer, today);
            prop_assert!(!all.pass || less.pass);
            // Counting by findings and counting by event counts agree without allowlist or filters.
            prop_assert_eq!(all.pass, evaluate_counts(&g, &all.counts_before).pass);
        }
    }
}
