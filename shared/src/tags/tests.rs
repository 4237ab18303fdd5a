use super::*;
use crate::policy::{EcrMutability, Policy};

const A: &str = "sha256:aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111";
const B: &str = "sha256:bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222";
const C: &str = "sha256:cccccccccccc3333333333333333333333333333333333333333333333333333";

/// Tag rules of a one-class policy with the given `[class.tags]` body.
fn tag_rules(tags: &str) -> TagRules {
    let text = format!("version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.tags]\n{tags}\n");
    let policy = Policy::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("test policy invalid: {e}"));
    policy.classes[0].tags.clone().expect("class has tag rules")
}

fn prod(remediation: &str) -> TagRules {
    tag_rules(&format!(
        "allowed = [\"v*.*.*\", \"sha-*\", \"latest\"]\nprotected = [\"v*.*.*\"]\nmutable = [\"latest\"]\nremediation = \"{remediation}\""
    ))
}

fn image(digest: &str, tags: &[&str]) -> ImageState {
    ImageState { digest: digest.into(), tags: tags.iter().map(|t| (*t).to_owned()).collect() }
}

fn pointer(digest: &str, since: &str) -> TagPointer {
    TagPointer { digest: digest.into(), since: since.into(), deleted_at: None }
}

#[test]
fn check_push_table() {
    let rules = prod("revert");
    let cases: &[(&str, PushCheck)] = &[
        ("v1.2.3", PushCheck::Conforming { protected: true }),
        ("sha-abc123", PushCheck::Conforming { protected: false }),
        ("latest", PushCheck::Conforming { protected: false }),
        ("quarantine-0123456789ab", PushCheck::OwnTag(crate::policy::OwnTagKind::Quarantine)),
        ("v1.2", PushCheck::NotAllowed { reason: String::new() }),
        ("feature-x", PushCheck::NotAllowed { reason: String::new() }),
        ("quarantine-xyz", PushCheck::NotAllowed { reason: String::new() }),
    ];
    for (tag, expected) in cases {
        let got = check_push(&rules, tag);
        match (expected, &got) {
            (PushCheck::NotAllowed { .. }, PushCheck::NotAllowed { reason }) => {
                assert!(reason.contains(tag) && reason.contains("v*.*.*"), "{tag}: {reason}");
            }
            _ => assert_eq!(&got, expected, "{tag}"),
        }
    }
    // No allowed list: every tag is allowed.
    let open = tag_rules("remediation = \"report\"");
    assert_eq!(check_push(&open, "anything"), PushCheck::Conforming { protected: false });
}

#[test]
fn remedy_for_tags_not_allowed() {
    struct Case {
        name: &'static str,
        remediation: &'static str,
        quarantine: Option<&'static str>,
        current: Option<ImageState>,
        verdict: Verdict,
        steps: Vec<Step>,
        notify: bool,
    }
    let remove = Step::RemoveTag { tag: "bad".into(), digest: A.into() };
    let cases = vec![
        Case {
            name: "tag already gone",
            remediation: "untag",
            quarantine: None,
            current: None,
            verdict: Verdict::Skipped,
            steps: vec![],
            notify: false,
        },
        Case {
            name: "tag moved on to another image",
            remediation: "untag",
            quarantine: None,
            current: Some(image(B, &["bad"])),
            verdict: Verdict::Skipped,
            steps: vec![],
            notify: false,
        },
        Case {
            name: "report mode changes nothing",
            remediation: "report",
            quarantine: None,
            current: Some(image(A, &["bad", "v1.0.0"])),
            verdict: Verdict::NotAllowed,
            steps: vec![],
            notify: true,
        },
        Case {
            name: "other tags: just remove",
            remediation: "untag",
            quarantine: None,
            current: Some(image(A, &["bad", "v1.0.0"])),
            verdict: Verdict::NotAllowed,
            steps: vec![remove.clone()],
            notify: true,
        },
        Case {
            name: "revert mode untags too",
            remediation: "revert",
            quarantine: None,
            current: Some(image(A, &["v1.0.0", "bad"])),
            verdict: Verdict::NotAllowed,
            steps: vec![remove.clone()],
            notify: true,
        },
        Case {
            name: "last tag: quarantine first",
            remediation: "untag",
            quarantine: None,
            current: Some(image(A, &["bad"])),
            verdict: Verdict::NotAllowed,
            steps: vec![Step::Quarantine { tag: "quarantine-aaaaaaaaaaaa".into(), digest: A.into() }, remove.clone()],
            notify: true,
        },
        Case {
            name: "last tag with a custom template",
            remediation: "untag",
            quarantine: Some("held-{tag}"),
            current: Some(image(A, &["bad"])),
            verdict: Verdict::NotAllowed,
            steps: vec![Step::Quarantine { tag: "held-bad".into(), digest: A.into() }, remove.clone()],
            notify: true,
        },
        Case {
            name: "last tag, quarantine disabled: report only",
            remediation: "untag",
            quarantine: Some(""),
            current: Some(image(A, &["bad"])),
            verdict: Verdict::NotAllowed,
            steps: vec![],
            notify: true,
        },
    ];
    for case in cases {
        let quarantine = case.quarantine.map_or(String::new(), |q| format!("\nquarantine-tag = \"{q}\""));
        let rules = tag_rules(&format!("allowed = [\"v*\"]\nremediation = \"{}\"{quarantine}", case.remediation));
        let decision = remedy_not_allowed(&rules, "bad", A, "not allowed", case.current.as_ref());
        assert_eq!(decision.verdict, case.verdict, "{}", case.name);
        assert_eq!(decision.steps, case.steps, "{}", case.name);
        assert_eq!(decision.notify, case.notify, "{}", case.name);
        assert!(!decision.reasons.is_empty(), "{}", case.name);
    }
}

#[test]
fn quarantine_that_cannot_render_falls_back_to_report() {
    let rules = tag_rules("allowed = [\"v*\"]\nremediation = \"untag\"\nquarantine-tag = \"{tag}-held\"");
    let long = "x".repeat(125);
    let decision = remedy_not_allowed(&rules, &long, A, "not allowed", Some(&image(A, &[&long])));
    assert_eq!(decision.verdict, Verdict::NotAllowed);
    assert!(decision.steps.is_empty());
    assert!(decision.reasons.iter().any(|r| r.contains("no quarantine tag can be made")));
}

#[test]
fn recorded_push_decisions() {
    let t1 = "2026-11-20T09:00:00Z";
    let t2 = "2026-11-20T10:00:00Z";
    // (case, remediation, tag, what the ledger held, verdict, steps, notify)
    type Case = (&'static str, &'static str, &'static str, LedgerObservation, Verdict, Vec<Step>, bool);
    let cases: Vec<Case> = vec![
        ("new protected tag", "revert", "v1.0.0", LedgerObservation::New, Verdict::Conforming, vec![], false),
        ("replay", "revert", "v1.0.0", LedgerObservation::Unchanged, Verdict::Conforming, vec![], false),
        (
            "mutable tag moved",
            "revert",
            "latest",
            LedgerObservation::Moved { previous: pointer(A, t1) },
            Verdict::TagMoved,
            vec![],
            false,
        ),
        (
            "protected tag moved: revert",
            "revert",
            "v1.0.0",
            LedgerObservation::Moved { previous: pointer(A, t1) },
            Verdict::ProtectedTagMoved,
            vec![Step::PointTag { tag: "v1.0.0".into(), digest: A.into() }],
            true,
        ),
        (
            "protected tag moved: untag mode reports",
            "untag",
            "v1.0.0",
            LedgerObservation::Moved { previous: pointer(A, t1) },
            Verdict::ProtectedTagMoved,
            vec![],
            true,
        ),
        (
            "protected tag moved: report mode reports",
            "report",
            "v1.0.0",
            LedgerObservation::Moved { previous: pointer(A, t1) },
            Verdict::ProtectedTagMoved,
            vec![],
            true,
        ),
        (
            "out of order, mutable tag: skip",
            "revert",
            "latest",
            LedgerObservation::Newer { current: pointer(A, t2) },
            Verdict::Skipped,
            vec![],
            false,
        ),
        (
            "out of order, protected tag: the later push was the move",
            "revert",
            "v1.0.0",
            LedgerObservation::Newer { current: pointer(A, t2) },
            Verdict::ProtectedTagMoved,
            vec![Step::PointTag { tag: "v1.0.0".into(), digest: B.into() }],
            true,
        ),
        (
            "out of order, same digest: skip",
            "revert",
            "v1.0.0",
            LedgerObservation::Newer { current: pointer(B, t2) },
            Verdict::Skipped,
            vec![],
            false,
        ),
    ];
    for (name, remediation, tag, observation, verdict, steps, notify) in cases {
        let rules = prod(remediation);
        let pushed = pointer(B, t1);
        let decision = decide_recorded_push(Some(&rules), tag, &pushed, &observation);
        assert_eq!(decision.verdict, verdict, "{name}");
        assert_eq!(decision.steps, steps, "{name}");
        assert_eq!(decision.notify, notify, "{name}");
    }
    // A class without tag rules only records.
    let moved = LedgerObservation::Moved { previous: pointer(A, t1) };
    assert_eq!(decide_recorded_push(None, "v1.0.0", &pointer(B, t2), &moved).verdict, Verdict::TagMoved);
}

#[test]
fn revert_plans_against_current_state() {
    let rules = prod("revert");
    let point_back = Step::PointTag { tag: "v1.0.0".into(), digest: A.into() };
    let quarantine = Step::Quarantine { tag: "quarantine-bbbbbbbbbbbb".into(), digest: B.into() };
    let cases: Vec<(&str, Option<ImageState>, Vec<Step>)> = vec![
        ("moved image has other tags", Some(image(B, &["v1.0.0", "sha-1"])), vec![point_back.clone()]),
        ("moved image would be left untagged", Some(image(B, &["v1.0.0"])), vec![quarantine, point_back.clone()]),
        ("already reverted", Some(image(A, &["v1.0.0"])), vec![]),
        ("moved again elsewhere", Some(image(C, &["v1.0.0"])), vec![]),
        ("tag deleted meanwhile: put it back", None, vec![point_back]),
    ];
    for (name, current, expected) in cases {
        assert_eq!(plan_revert(&rules, "v1.0.0", B, A, current.as_ref()), expected, "{name}");
    }
}

#[test]
fn settings_decisions() {
    let desired = MutabilitySetting::new(EcrMutability::MutableWithExclusion, vec!["v*".into()]);
    let cases: Vec<(&str, MutabilitySetting, Remediation, Verdict, bool)> = vec![
        ("same", desired.clone(), Remediation::Revert, Verdict::SettingsOk, false),
        (
            "same filters, other order",
            MutabilitySetting::new(EcrMutability::MutableWithExclusion, vec!["v*".into(), "v*".into()]),
            Remediation::Revert,
            Verdict::SettingsOk,
            false,
        ),
        (
            "mutable repository",
            MutabilitySetting::new(EcrMutability::Mutable, vec![]),
            Remediation::Untag,
            Verdict::SettingsDrift,
            true,
        ),
        (
            "other filters",
            MutabilitySetting::new(EcrMutability::MutableWithExclusion, vec!["release-*".into()]),
            Remediation::Revert,
            Verdict::SettingsDrift,
            true,
        ),
        (
            "report mode leaves it",
            MutabilitySetting::new(EcrMutability::Immutable, vec![]),
            Remediation::Report,
            Verdict::SettingsDrift,
            false,
        ),
    ];
    for (name, observed, remediation, verdict, fixes) in cases {
        let decision = decide_settings(&desired, &observed, remediation);
        assert_eq!(decision.verdict, verdict, "{name}");
        assert_eq!(decision.notify, verdict == Verdict::SettingsDrift, "{name}");
        let expected = if fixes { vec![Step::SetMutability { setting: desired.clone() }] } else { vec![] };
        assert_eq!(decision.steps, expected, "{name}");
    }
}

#[test]
fn a_backfill_records_the_protected_tags_a_push_would_protect() {
    let rules = prod("revert");
    let at = |digest: &str, tags: &[&str], pushed_at: i64| crate::lifecycle::Image {
        digest: digest.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        pushed_at,
        ..crate::lifecycle::Image::default()
    };
    let images = [
        at(A, &["v1.2.0", "latest", "sha-abc"], 1_764_000_000),
        at(B, &["v1.10.0", "feature-x", "quarantine-0123456789ab"], 1_765_000_000),
        at(C, &[], 1_766_000_000),
    ];
    let row = |tag: &str, digest: &str, since: &str| Unrecorded {
        tag: tag.into(),
        digest: digest.into(),
        since: since.into(),
    };
    assert_eq!(
        protected_in(&rules, &images),
        [row("v1.10.0", B, "2025-12-06T05:46:40Z"), row("v1.2.0", A, "2025-11-24T16:00:00Z")],
        "latest is mutable, sha- not protected, feature-x not allowed, quarantine- ecr-warden's own"
    );
    assert!(protected_in(&tag_rules("remediation = \"revert\""), &images).is_empty(), "no protected tags: nothing");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn tag() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z0-9][a-z0-9._-]{0,12}").expect("valid strategy")
    }

    proptest! {
        /// Whatever the image's tags, a plan never removes an image's last tag without first adding another.
        #[test]
        fn never_removes_a_last_tag(pushed in tag(), others in proptest::collection::vec(tag(), 0..4), quarantine in any::<bool>()) {
            let q = if quarantine { "" } else { "\nquarantine-tag = \"\"" };
            let rules = tag_rules(&format!("allowed = [\"v*\"]\nremediation = \"untag\"{q}"));
            let mut tags: Vec<&str> = others.iter().map(String::as_str).collect();
            tags.push(&pushed);
            let state = image(A, &tags);
            let decision = remedy_not_allowed(&rules, &pushed, A, "x", Some(&state));
            let mut remaining: Vec<String> = state.tags.clone();
            for step in &decision.steps {
                match step {
                    Step::AddTag { tag, .. } | Step::Quarantine { tag, .. } => remaining.push(tag.clone()),
                    Step::RemoveTag { tag, .. } => {
                        remaining.retain(|t| t != tag);
                        prop_assert!(!remaining.is_empty(), "removed the last tag: {:?}", decision.steps);
                    }
                    other => prop_assert!(false, "unexpected step {other:?}"),
                }
            }
        }

        /// A revert only ever points the tag back at the digest it held, and only when it moved.
        #[test]
        fn revert_only_restores(current_tags in proptest::collection::vec(tag(), 0..3), at in 0usize..3) {
            let rules = prod("revert");
            let digest = [A, B, C][at];
            let mut tags: Vec<&str> = current_tags.iter().map(String::as_str).collect();
            tags.push("v1.0.0");
            let state = image(digest, &tags);
            let steps = plan_revert(&rules, "v1.0.0", B, A, Some(&state));
            if digest == B {
                prop_assert_eq!(steps.last(), Some(&Step::PointTag { tag: "v1.0.0".into(), digest: A.into() }));
            } else {
                prop_assert!(steps.is_empty());
            }
        }
    }
}
