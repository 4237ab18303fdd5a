use super::*;
use crate::notify::{Format, SCHEMA, Severity};

fn notification(kind: &str, severity: Severity, class: Option<&str>) -> Notification {
    Notification {
        schema: SCHEMA,
        kind: kind.into(),
        severity,
        function: "tag-guard".into(),
        repository: Some("prod/api".into()),
        digest: None,
        tags: vec![],
        tags_omitted: 0,
        outcome: "untagged".into(),
        reasons: vec![],
        reasons_omitted: 0,
        actions: vec![],
        actions_omitted: 0,
        class: class.map(str::to_owned),
        dry_run: false,
        event_id: "e-1".into(),
        time: "2026-12-06T10:00:00Z".into(),
        account: None,
        region: None,
    }
}

fn said(kind: &str) -> Said {
    Said::once(notification(kind, Severity::Warning, Some("production")))
}

#[test]
fn each_report_is_carried_out_by_its_steps() {
    use Step::*;
    let standing = Report::Standing {
        said: said("retention"),
        pk: "PLAN#prod/api".into(),
        sk: "retention".into(),
        fingerprint: "f".into(),
    };
    let cleared = Report::Cleared { pk: "STANDING#tag-guard".into(), sk: "tag-mutability-drift".into() };
    let table: [(Report, &[Step]); 8] = [
        (Report::Silent, &[]),
        (Report::Settle, &[Flush]),
        (Report::Tell(said("forged-approval")), &[Send]),
        (Report::TellChanged(said("tag-not-allowed")), &[Send, ParkIfUnsent]),
        (Report::Owed(said("protected-tag-moved")), &[Park]),
        (Report::Recovered(said("tag-not-allowed")), &[Flush, SendUnlessFlushed]),
        (standing, &[NoteStanding, Send, ForgetIfUnsent]),
        (cleared, &[Forget]),
    ];
    for (report, steps) in table {
        assert_eq!(report.steps(), steps, "{report:?}");
        // Every step that tells or parks has something to tell.
        let needs_said = steps.iter().any(|s| !matches!(s, Flush | Forget));
        assert_eq!(report.said().is_some(), needs_said, "{report:?}");
    }
}

#[test]
fn a_change_made_now_is_told_so_that_a_failed_publish_parks_it() {
    assert_eq!(Report::about(said("x"), true), Report::TellChanged(said("x")));
    assert_eq!(Report::about(said("x"), false), Report::Tell(said("x")));
    assert_eq!(Report::nothing_left(None), Report::Settle);
    assert_eq!(Report::nothing_left(Some(said("x"))), Report::Recovered(said("x")));
}

#[test]
fn claim_keys_name_what_counts_as_the_same_notification() {
    let table = [
        (Claim::OwnKind, "tag-not-allowed", "tag-not-allowed"),
        (Claim::Shared("gate-failed".into()), "demoted", "gate-failed"),
        (Claim::PerRepository { repository: "dev/api".into(), run: None }, "retention", "retention@dev/api"),
        (
            Claim::PerRepository { repository: "dev/api".into(), run: Some("r1".into()) },
            "retention",
            "retention@dev/api#r1",
        ),
        (Claim::Interrupted, "lifecycle-policy-applied", "lifecycle-policy-applied:interrupted"),
    ];
    for (claim, kind, key) in table {
        assert_eq!(claim.key(kind), key);
    }
}

#[test]
fn a_route_takes_the_kinds_severities_and_classes_it_names() {
    let route = |kinds: &[&str], min: Option<Severity>, classes: &[&str]| Route {
        topic: "chat".into(),
        format: Format::default(),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        min_severity: min,
        classes: classes.iter().map(|c| (*c).to_owned()).collect(),
    };
    let critical = notification("forged-approval", Severity::Critical, Some("production"));
    let classless = notification("forged-approval", Severity::Info, None);
    let table = [
        (route(&[], None, &[]), &critical, true),
        (route(&["forged-approval"], None, &[]), &critical, true),
        (route(&["retention"], None, &[]), &critical, false),
        (route(&[], Some(Severity::Critical), &[]), &critical, true),
        (route(&[], Some(Severity::Warning), &[]), &classless, false),
        (route(&[], None, &["production"]), &critical, true),
        (route(&[], None, &["development"]), &critical, false),
        (route(&[], None, &["production"]), &classless, false),
        (route(&[], None, &[]), &classless, true),
    ];
    for (route, notification, taken) in table {
        assert_eq!(accepts(&route, notification), taken, "{route:?} / {}", notification.kind);
    }
}
