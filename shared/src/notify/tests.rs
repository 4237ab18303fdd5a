use super::*;
use crate::outcome::ActionResult;

fn sample() -> Notification {
    Notification {
        schema: SCHEMA,
        kind: "tag-not-allowed".into(),
        severity: Severity::Warning,
        function: "tag-guard".into(),
        repository: Some("prod/payments-api".into()),
        digest: Some("sha256:7a6a95028731dbae7ab5e36a95ae1087234d240b81be3464060d7314b4c74d26".into()),
        tags: vec!["feature-login-fix".into()],
        tags_omitted: 0,
        outcome: "untagged".into(),
        reasons: vec!["tag `feature-login-fix` matches none of the allowed patterns: v*.*.*, sha-*, latest".into()],
        reasons_omitted: 0,
        actions: vec![Action {
            action: "remove tag `feature-login-fix`".into(),
            result: ActionResult::Done,
            detail: None,
        }],
        actions_omitted: 0,
        class: Some("production".into()),
        dry_run: false,
        event_id: "4f7c1e52-8a0b-4d0e-9f1c-2b7e5d3a9c10".into(),
        time: "2026-11-20T09:12:04Z".into(),
        account: None,
        region: None,
    }
}

#[test]
fn json_schema_fields() {
    let json = serde_json::to_value(sample()).expect("serialises");
    for key in [
        "schema",
        "kind",
        "severity",
        "function",
        "repository",
        "digest",
        "tags",
        "outcome",
        "reasons",
        "actions",
        "class",
        "dry-run",
        "event-id",
        "time",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["schema"], SCHEMA);
    assert_eq!(json["severity"], "warning");
    assert!(json.get("tags-omitted").is_none(), "zero counts are left out");
}

#[test]
fn subject_is_short_ascii_one_line() {
    let mut n = sample();
    assert_eq!(n.subject(), "ecr-warden tag-guard: tag not allowed prod/payments-api:feature-login-fix");
    n.repository = Some(format!("prod/{}", "très-long-".repeat(20)));
    let subject = n.subject();
    assert!(subject.chars().count() <= MAX_SUBJECT_CHARS, "{subject}");
    assert!(subject.is_ascii() && !subject.contains('\n'));
    assert!(subject.ends_with("..."));
}

#[test]
fn text_reads_well() {
    let text = sample().text();
    for expected in [
        "ecr-warden tag-guard: tag not allowed (warning)",
        "Repository: prod/payments-api (class production)",
        "Tags:       feature-login-fix",
        "Outcome:    untagged",
        "Why:\n  - tag `feature-login-fix`",
        "Actions:\n  - remove tag `feature-login-fix`: done",
        "Event 4f7c1e52-8a0b-4d0e-9f1c-2b7e5d3a9c10 at 2026-11-20T09:12:04Z.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let mut dry = sample();
    dry.dry_run = true;
    assert!(dry.text().contains("Dry run: nothing was changed."));
}

#[test]
fn message_structure_has_text_for_people_and_json_for_programs() {
    let rendered = sample().render(Format::Standard);
    let body: serde_json::Value = serde_json::from_str(&rendered.message).expect("json message structure");
    assert_eq!(body["default"], body["email"]);
    assert!(body["email"].as_str().is_some_and(|t| t.starts_with("ecr-warden tag-guard")));
    for protocol in ["sqs", "lambda", "https", "email-json"] {
        let inner: serde_json::Value =
            serde_json::from_str(body[protocol].as_str().expect("string")).expect("inner json");
        assert_eq!(inner["kind"], "tag-not-allowed", "{protocol}");
    }
}

#[test]
fn attributes_for_filter_policies() {
    let attributes = sample().attributes();
    assert!(attributes.len() <= 10);
    assert_eq!(attributes["kind"], "tag-not-allowed");
    assert_eq!(attributes["repository"], "prod/payments-api");
    assert_eq!(attributes["outcome"], "untagged");
    assert_eq!(attributes["severity"], "warning");
    let mut bare = sample();
    bare.repository = None;
    bare.class = None;
    assert!(!bare.attributes().contains_key("repository"), "empty attributes are left out");
}

#[test]
fn oversized_content_is_truncated_with_counts() {
    let mut n = sample();
    n.reasons = (0..20_000).map(|i| format!("repository team-{i}/service: tag mutability drifted")).collect();
    n.tags = (0..3_000).map(|i| format!("tag-{i}")).collect();
    let rendered = n.render(Format::Standard);
    assert!(rendered.message.len() <= MAX_MESSAGE_BYTES, "{} bytes", rendered.message.len());
    let body: serde_json::Value = serde_json::from_str(&rendered.message).expect("json");
    let inner: serde_json::Value = serde_json::from_str(body["sqs"].as_str().expect("string")).expect("inner");
    let kept = inner["reasons"].as_array().expect("reasons").len();
    assert_eq!(kept as u64 + inner["reasons-omitted"].as_u64().expect("count"), 20_000);
    assert_eq!(
        inner["tags"].as_array().expect("tags").len() as u64 + inner["tags-omitted"].as_u64().expect("count"),
        3_000
    );
    assert!(body["email"].as_str().expect("text").contains("more"));
}

#[test]
fn one_huge_reason_is_cut() {
    let mut n = sample();
    n.reasons = vec!["é".repeat(400_000)];
    let rendered = n.render(Format::Standard);
    assert!(rendered.message.len() <= MAX_MESSAGE_BYTES);
}

#[test]
fn a_deletion_is_ecr_wardens_own_only_with_a_removal_record_close_to_it() {
    let removal = OwnRemoval { at: 1_000_000, function: "scan-gate".into(), event_id: "e-1".into() };
    let table = [
        (None, 1_000_005, false),
        (Some(&removal), 1_000_002, true),
        (Some(&removal), 1_000_000 - 30, true),
        (Some(&removal), 1_000_000 - 120, false),
        (Some(&removal), 1_000_000 + OWN_REMOVAL_WINDOW_SECONDS, true),
        (Some(&removal), 1_000_000 + OWN_REMOVAL_WINDOW_SECONDS + 1, false),
    ];
    for (record, deleted_at, own) in table {
        let reason = own_removal(record, deleted_at);
        assert_eq!(reason.is_some(), own, "{record:?} at {deleted_at}");
        if let Some(reason) = reason {
            assert!(reason.starts_with("ecr-warden's scan-gate removed this tag (event e-1)"), "{reason}");
        }
    }
}
