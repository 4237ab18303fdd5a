use super::*;
use proptest::prelude::*;
use serde_json::json;

const NOW: i64 = 1_764_000_000;
const DAY: i64 = 86_400;

fn policy(rules: serde_json::Value) -> LifecyclePolicy {
    LifecyclePolicy::parse(&json!({ "rules": rules }).to_string()).unwrap_or_else(|e| panic!("invalid: {e}"))
}

fn image(digest: &str, tags: &[&str], days_ago: i64) -> Image {
    Image {
        digest: digest.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        pushed_at: NOW - days_ago * DAY,
        last_pulled_at: None,
        storage_class: StorageClass::Standard,
        archived_at: None,
        activated_at: None,
        ..Default::default()
    }
}

fn acted(preview: &Preview) -> Vec<(String, u32)> {
    preview.preview_results.iter().map(|r| (r.image_digest.to_owned(), r.applied_rule_priority)).collect()
}

fn expire(priority: u32, selection: serde_json::Value) -> serde_json::Value {
    json!({"rulePriority": priority, "selection": selection, "action": {"type": "expire"}})
}

#[test]
fn the_reference_illustration() {
    // Newest first: e dev-9 · d v1.1, dev-8 · c dev-7 · b untagged · a v1.0.
    let images = vec![
        image("e", &["dev-9"], 1),
        image("d", &["v1.1", "dev-8"], 2),
        image("c", &["dev-7"], 3),
        image("b", &[], 4),
        image("a", &["v1.0"], 5),
    ];
    let policy = policy(json!([
        expire(
            1,
            json!({"tagStatus": "tagged", "tagPatternList": ["v*"], "countType": "imageCountMoreThan", "countNumber": 1})
        ),
        expire(2, json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2})),
    ]));
    let preview = evaluate(&policy, &images, NOW);
    assert_eq!(acted(&preview), vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 2)]);
    assert_eq!(preview.summary.expiring_image_total_count, 3);
}

#[test]
fn selection_table() {
    let s = |tags: &[&str]| tags.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
    let patterns = |p: &[&str]| {
        TagSelection::Patterns(p.iter().map(|x| crate::pattern::Pattern::wildcard(x).expect("pattern")).collect())
    };
    let prefixes = |p: &[&str]| TagSelection::Prefixes(p.iter().map(|x| (*x).to_owned()).collect());
    let cases: Vec<(&str, TagSelection, Vec<String>, bool)> = vec![
        ("any selects untagged", TagSelection::Any, s(&[]), true),
        ("untagged", TagSelection::Untagged, s(&[]), true),
        ("untagged rejects tagged", TagSelection::Untagged, s(&["a"]), false),
        ("prefix", prefixes(&["prod"]), s(&["prod-1"]), true),
        ("prefix needs a tag", prefixes(&["prod"]), s(&[]), false),
        ("prefix list is AND over entries", prefixes(&["prod", "v"]), s(&["prod-1"]), false),
        ("... satisfied by different tags", prefixes(&["prod", "v"]), s(&["prod-1", "v2"]), true),
        ("pattern is anchored", patterns(&["abc"]), s(&["abcd"]), false),
        ("pattern begins-with", patterns(&["abc*"]), s(&["abcd"]), true),
        ("pattern contains", patterns(&["*abc*"]), s(&["xabcx"]), true),
        ("pattern list AND", patterns(&["v*", "*-rc"]), s(&["v1"]), false),
        ("pattern list AND across tags", patterns(&["v*", "*-rc"]), s(&["v1", "2-rc"]), true),
    ];
    for (case, selection, tags, expected) in cases {
        assert_eq!(selects(&selection, &tags), expected, "{case}");
    }
}

#[test]
fn count_types() {
    let mut pulled = image("pulled-recently", &["a"], 100);
    pulled.last_pulled_at = Some(NOW - 5 * DAY);
    let never = image("never-pulled", &["b"], 100);
    let mut restored = image("restored", &["c"], 100);
    restored.activated_at = Some(NOW - 2 * DAY);
    let young = image("young", &["d"], 3);
    let images = vec![pulled, never, restored, young];

    let pushed = policy(json!([expire(
        1,
        json!({"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30})
    )]));
    let mut ids: Vec<String> = acted(&evaluate(&pushed, &images, NOW)).into_iter().map(|(d, _)| d).collect();
    ids.sort();
    assert_eq!(ids, vec!["never-pulled", "pulled-recently"], "a restored image counts from its restore");

    let by_pull = policy(json!([{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePulled",
        "countUnit": "days", "countNumber": 30}, "action": {"type": "transition", "targetStorageClass": "archive"}}]));
    let preview = evaluate(&by_pull, &images, NOW);
    let ids: Vec<&str> = preview.preview_results.iter().map(|r| r.image_digest).collect();
    assert_eq!(ids, vec!["never-pulled"], "never pulled falls back to push time; recent pull and restore protect");
    assert_eq!(preview.preview_results[0].action.action_type, "TRANSITION");
    assert_eq!(preview.summary.transitioning_image_total_counts[0].image_total_count, 1);
    assert_eq!(preview.summary.expiring_image_total_count, 0);
}

#[test]
fn archive_rules_see_only_archived_images() {
    let mut old_archive = image("archived-long-ago", &[], 400);
    old_archive.storage_class = StorageClass::Archive;
    old_archive.archived_at = Some(NOW - 200 * DAY);
    let mut new_archive = image("archived-recently", &[], 400);
    new_archive.storage_class = StorageClass::Archive;
    new_archive.archived_at = Some(NOW - 30 * DAY);
    let standard = image("standard", &[], 400);
    let rules = policy(json!([
        {"rulePriority": 1, "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
            "countUnit": "days", "countNumber": 120}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 365},
            "action": {"type": "transition", "targetStorageClass": "archive"}}
    ]));
    let images = [old_archive, new_archive, standard];
    let preview = evaluate(&rules, &images, NOW);
    let got: Vec<(&str, &str)> =
        preview.preview_results.iter().map(|r| (r.image_digest, r.action.action_type)).collect();
    assert_eq!(got, vec![("standard", "TRANSITION"), ("archived-long-ago", "EXPIRE")]);
    assert_eq!(preview.preview_results[1].storage_class, "ARCHIVE");
}

#[test]
fn validation_table() {
    let base = |selection: serde_json::Value, action: serde_json::Value| json!([{"rulePriority": 1, "selection": selection, "action": action}]);
    let any_count = json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1});
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("V1 no rules", json!([]), "at least one rule"),
        (
            "V1 more than 50 rules",
            serde_json::Value::Array((1..=51).map(|p| json!({"rulePriority": p, "selection": {"tagStatus": "tagged", "tagPrefixList": [format!("p{p}-")], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}})).collect()),
            "at most 50",
        ),
        ("V3 non-positive priority", json!([{"rulePriority": 0, "selection": any_count, "action": {"type": "expire"}}]), "positive"),
        (
            "V3 duplicate priority",
            json!([expire(1, json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})),
                   expire(1, json!({"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1}))]),
            "not unique",
        ),
        ("V4 tagged without list", base(json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}), json!({"type": "expire"})), "needs a tagPatternList"),
        ("V4 both lists", base(json!({"tagStatus": "tagged", "tagPatternList": ["a*"], "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1}), json!({"type": "expire"})), "cannot both"),
        ("V4 empty list", base(json!({"tagStatus": "tagged", "tagPrefixList": [], "countType": "imageCountMoreThan", "countNumber": 1}), json!({"type": "expire"})), "empty"),
        ("V5 any with a list", base(json!({"tagStatus": "any", "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1}), json!({"type": "expire"})), "takes no"),
        ("V6 five wildcards", base(json!({"tagStatus": "tagged", "tagPatternList": ["*a*b*c*d*"], "countType": "imageCountMoreThan", "countNumber": 1}), json!({"type": "expire"})), "more than four"),
        ("V7 since without unit", base(json!({"tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 1}), json!({"type": "expire"})), "countUnit days is required"),
        ("V7 count with unit", base(json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countUnit": "days", "countNumber": 1}), json!({"type": "expire"})), "not allowed"),
        ("V8 zero count", base(json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0}), json!({"type": "expire"})), "at least 1"),
        ("V9 archive class with pushed", base(json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}), json!({"type": "expire"})), "only goes with sinceImageTransitioned"),
        ("V10 transition without target", base(any_count.clone(), json!({"type": "transition"})), "needs targetStorageClass"),
        ("V10 expire with target", base(any_count.clone(), json!({"type": "expire", "targetStorageClass": "archive"})), "no targetStorageClass"),
        ("V11 pulled cannot expire", base(json!({"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 1}), json!({"type": "expire"})), "cannot expire"),
        ("V12 transitioned needs archive class", base(json!({"tagStatus": "any", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 100}), json!({"type": "expire"})), "needs storageClass archive"),
        ("V12 transitioned only expires", base(json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 100}), json!({"type": "transition", "targetStorageClass": "archive"})), "only expire"),
        (
            "V13 any not last",
            json!([expire(1, any_count.clone()), expire(2, json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}))]),
            "highest rulePriority",
        ),
        (
            "V14 two untagged rules",
            json!([expire(1, json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})),
                   expire(2, json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}))]),
            "only one rule per storage class may select untagged",
        ),
        (
            "V15 repeated prefix",
            json!([expire(1, json!({"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1})),
                   expire(2, json!({"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}))]),
            "already used by rule 1",
        ),
        ("V16 archive minimum", base(json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 30}), json!({"type": "expire"})), "90 days"),
        ("missing tagStatus", base(json!({"countType": "imageCountMoreThan", "countNumber": 1}), json!({"type": "expire"})), "tagStatus is required"),
        ("unknown countType", base(json!({"tagStatus": "any", "countType": "sinceForever", "countNumber": 1}), json!({"type": "expire"})), "not a lifecycle policy"),
    ];
    for (case, rules, expected) in cases {
        let error = LifecyclePolicy::parse(&json!({ "rules": rules }).to_string()).expect_err(case).to_string();
        assert!(error.contains(expected), "{case}: {error}");
    }
    let long = format!("{{\"rules\": [], \"pad\": \"{}\"}}", "x".repeat(31_000));
    assert!(LifecyclePolicy::parse(&long).expect_err("V2").to_string().contains("30720"));
    let error = LifecyclePolicy::parse(
        &json!({"rules": [{"rulePriority": 7, "selection": any_count, "action": {"type": "transition"}}]}).to_string(),
    )
    .expect_err("names the rule");
    assert!(error.to_string().starts_with("rule 7:"), "{error}");
}

#[test]
fn inventories_in_both_timestamp_forms() {
    let text = json!({"imageDetails": [
        {"imageDigest": "sha256:a", "imageTags": ["v1"], "imagePushedAt": "2026-11-20T09:12:04.123000+00:00",
         "lastRecordedPullTime": 1_764_000_000.5, "imageStatus": "ACTIVE"},
        {"imageDigest": "sha256:b", "imagePushedAt": 1_700_000_000, "imageStatus": "ARCHIVED", "lastArchivedAt": "2026-01-01T00:00:00Z"}
    ]})
    .to_string();
    let images = parse_images(&text).expect("inventory");
    assert_eq!(images[0].pushed_at, 1_795_165_924);
    assert_eq!(images[0].last_pulled_at, Some(1_764_000_000));
    assert!(images[1].tags.is_empty());
    assert_eq!(images[1].storage_class, StorageClass::Archive);
    let bad = json!({"imageDetails": [{"imageDigest": "sha256:c", "imagePushedAt": "yesterday"}]}).to_string();
    assert!(parse_images(&bad).expect_err("bad time").to_string().contains("sha256:c"));
    assert!(parse_images("[]").is_err());
}

fn arbitrary_images() -> impl Strategy<Value = Vec<Image>> {
    proptest::collection::vec((proptest::collection::vec("(v|dev|rc)-[0-9]", 0..3), 0i64..400), 0..40).prop_map(
        |items| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, (tags, days))| Image {
                    digest: format!("sha256:{i:04}"),
                    tags,
                    pushed_at: NOW - days * DAY - i as i64,
                    last_pulled_at: None,
                    storage_class: StorageClass::Standard,
                    archived_at: None,
                    activated_at: None,
                    ..Default::default()
                })
                .collect()
        },
    )
}

fn mixed_policy(keep: u32) -> LifecyclePolicy {
    policy(json!([
        expire(
            1,
            json!({"tagStatus": "tagged", "tagPrefixList": ["v-"], "countType": "imageCountMoreThan", "countNumber": keep})
        ),
        expire(
            2,
            json!({"tagStatus": "tagged", "tagPatternList": ["dev-*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30})
        ),
        expire(3, json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 2})),
        expire(4, json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep + 5}))
    ]))
}

proptest! {
    #[test]
    fn no_image_is_acted_on_twice(images in arbitrary_images(), keep in 1u32..6) {
        let preview = evaluate(&mixed_policy(keep), &images, NOW);
        let mut digests: Vec<&str> = preview.preview_results.iter().map(|r| r.image_digest).collect();
        let before = digests.len();
        digests.sort();
        digests.dedup();
        prop_assert_eq!(before, digests.len());
    }

    #[test]
    fn results_do_not_depend_on_input_order(images in arbitrary_images(), keep in 1u32..6) {
        let policy = mixed_policy(keep);
        let mut reversed = images.clone();
        reversed.reverse();
        prop_assert_eq!(evaluate(&policy, &images, NOW), evaluate(&policy, &reversed, NOW));
    }

    #[test]
    fn a_higher_keep_count_never_expires_more(images in arbitrary_images(), keep in 1u32..6) {
        let fewer = evaluate(&mixed_policy(keep + 1), &images, NOW);
        let more = evaluate(&mixed_policy(keep), &images, NOW);
        prop_assert!(fewer.summary.expiring_image_total_count <= more.summary.expiring_image_total_count);
    }

    #[test]
    fn images_a_higher_rule_tag_matches_are_never_taken_by_lower_rules(images in arbitrary_images(), keep in 1u32..6) {
        let preview = evaluate(&mixed_policy(keep), &images, NOW);
        for result in &preview.preview_results {
            if result.image_tags.iter().any(|t| t.starts_with("v-")) {
                prop_assert_eq!(result.applied_rule_priority, 1, "{:?}", result);
            }
        }
    }
}

/// The evaluation written as plainly as the semantics read: every rule tests every image's tags directly. The
/// evaluator lays tags out contiguously and prefilters by substring search; it must agree with this exactly.
fn reference_decisions(policy: &LifecyclePolicy, images: &[Image]) -> Vec<(String, u32)> {
    let mut acted = Vec::new();
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let mut ranked: Vec<&Image> = images.iter().filter(|i| i.storage_class == class).collect();
        let rank_time = |i: &Image| match class {
            StorageClass::Archive => i.archived_at.unwrap_or(i.pushed_at),
            StorageClass::Standard => i.activated_at.map_or(i.pushed_at, |a| a.max(i.pushed_at)),
        };
        ranked.sort_by(|a, b| rank_time(b).cmp(&rank_time(a)).then_with(|| a.digest.cmp(&b.digest)));
        let mut taken = vec![false; ranked.len()];
        for rule in policy.rules.iter().filter(|r| r.storage_class == class) {
            let mut rule_acted = Vec::new();
            let mut rank = 0;
            for (p, image) in ranked.iter().enumerate() {
                if !selects(&rule.tags, &image.tags) {
                    continue;
                }
                rank += 1;
                let acts = match rule.count_type {
                    CountType::ImageCountMoreThan => rank > rule.count,
                    CountType::SinceImagePushed => NOW - rank_time(image) > i64::from(rule.count) * DAY,
                    _ => unreachable!("not generated"),
                };
                if acts && !taken[p] {
                    rule_acted.push((image.digest.clone(), rule.priority));
                }
                taken[p] = true;
            }
            rule_acted.reverse();
            acted.extend(rule_acted);
        }
    }
    acted
}

fn arbitrary_policy() -> impl Strategy<Value = LifecyclePolicy> {
    let selection = prop_oneof![
        proptest::collection::vec("(v|dev|rc)-?[0-9]?", 1..3)
            .prop_map(|p| json!({"tagStatus": "tagged", "tagPrefixList": p})),
        proptest::collection::vec("\\*?(v|dev|-|[0-9])\\*?(v|[0-9])?\\*?", 1..3)
            .prop_map(|p| json!({"tagStatus": "tagged", "tagPatternList": p})),
    ];
    let count = prop_oneof![
        (1u32..5).prop_map(|n| json!({"countType": "imageCountMoreThan", "countNumber": n})),
        (1u32..300).prop_map(|n| json!({"countType": "sinceImagePushed", "countUnit": "days", "countNumber": n})),
    ];
    proptest::collection::vec((selection, count), 1..5).prop_map(|rules| {
        let mut seen_prefixes = std::collections::HashSet::new();
        let rules: Vec<serde_json::Value> = rules
            .into_iter()
            .enumerate()
            .filter_map(|(i, (mut selection, count))| {
                // ECR rejects a prefix used twice in a policy: drop rules that would repeat one.
                if let Some(list) = selection.get("tagPrefixList").and_then(|l| l.as_array()) {
                    let list: Vec<String> = list.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect();
                    if list.iter().any(|p| !seen_prefixes.insert(p.clone())) {
                        return None;
                    }
                }
                selection.as_object_mut().expect("object").extend(count.as_object().expect("object").clone());
                Some(expire(i as u32 + 1, selection))
            })
            .collect();
        let rules = if rules.is_empty() {
            vec![expire(1, json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}))]
        } else {
            rules
        };
        policy(serde_json::Value::Array(rules))
    })
}

proptest! {
    #[test]
    fn the_evaluator_agrees_with_the_plain_reference(images in arbitrary_images(), policy in arbitrary_policy()) {
        let fast: Vec<(String, u32)> = decide(&policy, &images, NOW)
            .into_iter()
            .map(|d| (images[d.image].digest.clone(), d.rule_priority))
            .collect();
        prop_assert_eq!(fast, reference_decisions(&policy, &images));
    }
}

fn retention_rules(keep: u32, days: u32, min_age_days: u32) -> crate::policy::RetentionRules {
    let text = format!(
        r#"version = 1
default-class = "c"
[[class]]
name = "c"
[class.lifecycle.retention]
protect = ["v-*"]
protect-younger-than-days = {min_age_days}
require-in-use-coverage = false
[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "tagged"
tags = ["regex:(dev|rc)-[0-9]"]
group-by = "^(dev|rc)-"
count-type = "image-count-more-than"
count = {keep}
[[class.lifecycle.retention.rule]]
priority = 2
tag-status = "any"
count-type = "since-image-pushed"
count = {days}
"#
    );
    let policy = crate::policy::Policy::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    policy.classes[0].lifecycle.clone().and_then(|l| l.retention).expect("retention")
}

fn planned(plan: &RetentionPlan, images: &[Image]) -> Vec<(String, u32)> {
    plan.delete.iter().map(|c| (images[c.image].digest.clone(), c.rule_priority)).collect()
}

#[test]
fn retention_table() {
    let protect = crate::pattern::Pattern::parse("v-*").expect("pattern");
    let patterns = [&protect];
    let promotion = [crate::template::TagTemplate::parse("approved-{digest12}").expect("template")];
    let tags = TagProtections { patterns: &patterns, promotion: &promotion };
    let images = vec![
        image("a", &["dev-3"], 1),
        image("b", &["dev-2"], 2),
        image("c", &["dev-1"], 3),
        image("d", &["rc-1"], 4),
        image("e", &["v-1"], 100),
        image("f", &[], 100),
        image("g", &["approved-000000000000"], 100),
        image("h", &[], 5),
    ];
    let none = Observed::default();
    // Keep 1 per group (dev, rc); then anything older than 30 days.
    let plan = plan_retention(&retention_rules(1, 30, 0), &tags, &images, &none, NOW);
    assert_eq!(planned(&plan, &images), vec![("c".into(), 1), ("b".into(), 1), ("f".into(), 2)]);
    let spared: Vec<(&str, Protection)> =
        plan.spared.iter().map(|(c, why)| (images[c.image].digest.as_str(), why.clone())).collect();
    assert_eq!(
        spared,
        vec![("g", Protection::Promoted("approved-000000000000".into())), ("e", Protection::Tag("v-1".into()))]
    );
    // A minimum age keeps the recent dev builds.
    let plan = plan_retention(&retention_rules(1, 30, 3), &tags, &images, &none, NOW);
    assert_eq!(planned(&plan, &images), vec![("c".into(), 1), ("f".into(), 2)]);
    // In use: kept.
    let in_use = Observed {
        in_use: InUseData::Read([("f".to_owned(), InUse { count: 0, last_in_use_at: Some(NOW - 2 * DAY) })].into()),
        ..Observed::default()
    };
    let plan = plan_retention(&retention_rules(1, 30, 0), &tags, &images, &in_use, NOW);
    assert!(plan.spared.iter().any(|(c, why)| images[c.image].digest == "f" && *why == Protection::InUse));
    // Last used long ago: not in use.
    let stale = Observed {
        in_use: InUseData::Read([("f".to_owned(), InUse { count: 0, last_in_use_at: Some(NOW - 90 * DAY) })].into()),
        ..Observed::default()
    };
    assert!(plan_retention(&retention_rules(1, 30, 0), &tags, &images, &stale, NOW).delete.len() == 3);
    // A kept index keeps its children, transitively; a deleted index does not.
    let mut index = image("i", &["v-2"], 100);
    index.media_type = Some(INDEX_MEDIA_TYPES[0].into());
    let mut nested = image("j", &[], 100);
    nested.media_type = Some(INDEX_MEDIA_TYPES[1].into());
    let with_index = [images.clone(), vec![index, nested, image("k", &[], 100), image("l", &[], 100)]].concat();
    let observed = Observed {
        index_children: [("i".to_owned(), vec!["j".to_owned()]), ("j".to_owned(), vec!["k".to_owned()])].into(),
        ..Observed::default()
    };
    let plan = plan_retention(&retention_rules(1, 30, 0), &tags, &with_index, &observed, NOW);
    let mut deleted: Vec<String> = planned(&plan, &with_index).into_iter().map(|(d, _)| d).collect();
    deleted.sort();
    assert_eq!(deleted, vec!["b", "c", "f", "l"]);
    assert!(
        plan.spared
            .iter()
            .any(|(c, why)| with_index[c.image].digest == "k" && *why == Protection::IndexChild("j".into()))
    );
}

#[test]
fn archived_images_are_kept_until_their_90_billed_days_are_over() {
    let tags = TagProtections { patterns: &[], promotion: &[] };
    let archived = |digest: &str, days_in_archive: Option<i64>| Image {
        storage_class: StorageClass::Archive,
        archived_at: days_in_archive.map(|days| NOW - days * DAY),
        ..image(digest, &[], 400)
    };
    let images = vec![archived("recent", Some(10)), archived("unknown", None), archived("old", Some(120))];
    let mut rules = retention_rules(1, 30, 0);
    rules.max_fraction = 1.0;
    let plan = plan_retention(&rules, &tags, &images, &Observed::default(), NOW);
    assert_eq!(planned(&plan, &images), vec![("old".into(), 2)]);
    let mut spared: Vec<(&str, Protection)> =
        plan.spared.iter().map(|(c, why)| (images[c.image].digest.as_str(), why.clone())).collect();
    spared.sort_by_key(|(digest, _)| *digest);
    assert_eq!(spared, vec![("recent", Protection::ArchiveMinimum), ("unknown", Protection::ArchiveMinimum)]);
    assert!(Protection::ArchiveMinimum.describe().contains("90 days"));
}

#[test]
fn retention_caps() {
    let tags = TagProtections { patterns: &[], promotion: &[] };
    let images: Vec<Image> = (0..10).map(|i| image(&format!("d{i}"), &[], 100)).collect();
    let mut rules = retention_rules(1, 30, 0);
    rules.max_images = 5;
    rules.max_fraction = 1.0;
    let plan = plan_retention(&rules, &tags, &images, &Observed::default(), NOW);
    assert_eq!(plan.delete.len(), 10);
    assert!(plan.over_cap.as_deref().is_some_and(|c| c.contains("max-images = 5")));
    rules.max_images = 100;
    rules.max_fraction = 0.5;
    let plan = plan_retention(&rules, &tags, &images, &Observed::default(), NOW);
    assert!(plan.over_cap.as_deref().is_some_and(|c| c.contains("10 of 10")));
    rules.max_fraction = 1.0;
    assert!(plan_retention(&rules, &tags, &images, &Observed::default(), NOW).over_cap.is_none());
}

#[test]
fn a_plan_fingerprint_names_what_it_would_do_not_the_inventory_order() {
    let tags = TagProtections { patterns: &[], promotion: &[] };
    let mut rules = retention_rules(1, 30, 0);
    rules.max_fraction = 1.0;
    let images: Vec<Image> =
        vec![image("a", &[], 100), image("b", &["dev-1"], 90), image("c", &["dev-2"], 1), image("d", &[], 2)];
    let plan = |images: &[Image], rules: &crate::policy::RetentionRules| {
        plan_retention(rules, &tags, images, &Observed::default(), NOW).fingerprint(images)
    };
    let base = plan(&images, &rules);
    assert_eq!(base.len(), 32, "{base}");
    // Same choices from a reordered inventory, or with a kept image added: the same plan.
    let reordered: Vec<Image> = images.iter().rev().cloned().collect();
    assert_eq!(plan(&reordered, &rules), base);
    let with_kept = [images.clone(), vec![image("e", &[], 3)]].concat();
    assert_eq!(plan(&with_kept, &rules), base);
    // Another image chosen, the same image chosen by another rule, or a cap now stopping it: another plan.
    let more = [images.clone(), vec![image("f", &[], 60)]].concat();
    assert_ne!(plan(&more, &rules), base);
    let by_age_only = vec![image("a", &[], 100), image("b", &[], 90), image("c", &["dev-2"], 1), image("d", &[], 2)];
    assert_ne!(plan(&by_age_only, &rules), base, "b is now chosen by rule 2, not rule 1");
    rules.max_images = 1;
    assert_ne!(plan(&images, &rules), base);
}

fn arbitrary_retention_images() -> impl Strategy<Value = Vec<Image>> {
    proptest::collection::vec(
        (proptest::collection::vec("(v|dev|rc)-[0-9]", 0..3), 0i64..200, proptest::bool::ANY),
        0..40,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (tags, days, index))| {
                let mut image = image(&format!("sha256:{i:04}"), &[], days);
                image.tags = tags;
                image.pushed_at -= i as i64;
                if index {
                    image.media_type = Some(INDEX_MEDIA_TYPES[0].into());
                }
                image
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn retention_never_deletes_a_protected_image_or_a_kept_index_child(
        images in arbitrary_retention_images(), keep in 1u32..4, days in 1u32..150, used in 0usize..40,
    ) {
        let protect = crate::pattern::Pattern::parse("v-*").expect("pattern");
        let patterns = [&protect];
        let tags = TagProtections { patterns: &patterns, promotion: &[] };
        // Every index references the next image; one image is in use.
        let mut observed = Observed::default();
        for (i, image) in images.iter().enumerate() {
            if image.is_index() && i + 1 < images.len() {
                observed.index_children.insert(image.digest.clone(), vec![images[i + 1].digest.clone()]);
            }
        }
        let mut in_use = std::collections::HashMap::new();
        if let Some(image) = images.get(used) {
            in_use.insert(image.digest.clone(), InUse { count: 1, last_in_use_at: None });
        }
        observed.in_use = InUseData::Read(in_use.clone());
        let rules = retention_rules(keep, days, 0);
        let plan = plan_retention(&rules, &tags, &images, &observed, NOW);
        let deleted: std::collections::HashSet<&str> =
            plan.delete.iter().map(|c| images[c.image].digest.as_str()).collect();
        prop_assert_eq!(deleted.len(), plan.delete.len(), "no image deleted twice");
        for image in &images {
            if deleted.contains(image.digest.as_str()) {
                prop_assert!(!image.tags.iter().any(|t| t.starts_with("v-")), "protected {:?}", image);
                prop_assert!(!in_use.contains_key(&image.digest), "in use {:?}", image);
            } else if let Some(children) = observed.index_children.get(&image.digest) {
                for child in children {
                    prop_assert!(!deleted.contains(child.as_str()), "child {} of kept index {}", child, image.digest);
                }
            }
        }
        // Independent of input order.
        let mut reversed = images.clone();
        reversed.reverse();
        let again = plan_retention(&rules, &tags, &reversed, &observed, NOW);
        let mut a: Vec<(String, u32)> = planned(&plan, &images);
        let mut b: Vec<(String, u32)> = planned(&again, &reversed);
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
        // Keeping more never deletes more.
        let more = plan_retention(&retention_rules(keep + 1, days, 0), &tags, &images, &observed, NOW);
        prop_assert!(more.delete.len() <= plan.delete.len());
    }
}

/// A class whose retention deletes untagged images after a day, requiring Inspector's coverage (the default).
fn untagged_rules(extra: &str) -> crate::policy::RetentionRules {
    let text = format!(
        "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.lifecycle.retention]\n{extra}\n\
         [[class.lifecycle.retention.rule]]\npriority = 1\ntag-status = \"untagged\"\n\
         count-type = \"since-image-pushed\"\ncount = 1\n"
    );
    let policy = crate::policy::Policy::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    policy.classes[0].lifecycle.clone().and_then(|l| l.retention).expect("retention")
}

fn deleted(plan: &RetentionPlan, images: &[Image]) -> Vec<String> {
    let mut digests: Vec<String> = plan.delete.iter().map(|c| images[c.image].digest.clone()).collect();
    digests.sort();
    digests
}

#[test]
fn retention_fails_safe_without_knowing_what_is_in_use() {
    let tags = TagProtections { patterns: &[], promotion: &[] };
    let images = vec![image("covered", &[], 10), image("uncovered", &[], 10)];
    let covered = InUseData::Read([("covered".to_owned(), InUse { count: 0, last_in_use_at: None })].into());
    let table: Vec<(&str, &str, InUseData, Vec<&str>)> = vec![
        ("coverage lists only one image", "", covered.clone(), vec!["covered"]),
        ("coverage not required", "require-in-use-coverage = false", covered, vec!["covered", "uncovered"]),
        ("coverage unreadable", "", InUseData::Unavailable("AccessDeniedException".into()), vec![]),
        (
            "in use not protected",
            "protect-in-use = false",
            InUseData::Unavailable("denied".into()),
            vec!["covered", "uncovered"],
        ),
    ];
    for (case, extra, in_use, expected) in table {
        let observed = Observed { in_use, ..Observed::default() };
        let plan = plan_retention(&untagged_rules(extra), &tags, &images, &observed, NOW);
        assert_eq!(deleted(&plan, &images), expected, "{case}");
        if expected.len() < images.len() && !extra.contains("protect-in-use") {
            assert!(
                plan.spared.iter().any(|(_, why)| matches!(why, Protection::InUseUnknown(_))),
                "{case}: {:?}",
                plan.spared
            );
        }
    }
}

#[test]
fn a_recent_pull_counts_as_in_use_and_the_default_minimum_age_is_a_day() {
    let tags = TagProtections { patterns: &[], promotion: &[] };
    let mut pulled = image("pulled", &[], 40);
    pulled.last_pulled_at = Some(NOW - 3 * DAY);
    let mut long_ago = image("long-ago", &[], 40);
    long_ago.last_pulled_at = Some(NOW - 45 * DAY);
    let mut fresh = image("fresh", &[], 0);
    fresh.pushed_at = NOW - 3_600;
    let mut newest = image("newest", &[], 0);
    newest.pushed_at = NOW - 600;
    let images = vec![pulled, long_ago, fresh, newest];
    // Keep the newest untagged image: the others are chosen, the hour-old one too.
    let text = "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.lifecycle.retention]\n\
                require-in-use-coverage = false\n[[class.lifecycle.retention.rule]]\npriority = 1\n\
                tag-status = \"untagged\"\ncount-type = \"image-count-more-than\"\ncount = 1\n";
    let policy = crate::policy::Policy::from_toml(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let rules = policy.classes[0].lifecycle.clone().and_then(|l| l.retention).expect("retention");
    assert_eq!(rules.min_age_days, 1, "the default minimum age");
    let plan = plan_retention(&rules, &tags, &images, &Observed::default(), NOW);
    assert_eq!(deleted(&plan, &images), vec!["long-ago"]);
    let why: Vec<(&str, &Protection)> = plan.spared.iter().map(|(c, w)| (images[c.image].digest.as_str(), w)).collect();
    assert!(why.contains(&("pulled", &Protection::RecentlyPulled)), "{why:?}");
    assert!(why.contains(&("fresh", &Protection::Young)), "{why:?}");
}

#[test]
fn referrers_are_never_counted_as_builds() {
    let tags = TagProtections { patterns: &[], promotion: &[] };
    let mut signature = image("signature", &[], 10);
    signature.subject = Some("release".into());
    let mut sbom = image("sbom", &[], 10);
    sbom.subject = Some("gone-build".into());
    let images = vec![image("release", &["v1"], 10), signature, sbom, image("leftover", &[], 10)];
    let plan =
        plan_retention(&untagged_rules("require-in-use-coverage = false"), &tags, &images, &Observed::default(), NOW);
    assert_eq!(deleted(&plan, &images), vec!["leftover"], "untagged referrers are not untagged builds");
    assert_eq!(plan.referrers, 2);
}

fn native(rules: serde_json::Value) -> LifecyclePolicy {
    LifecyclePolicy::parse(&json!({ "rules": rules }).to_string()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn native_policies_are_checked_against_what_the_class_protects() {
    let release = crate::pattern::Pattern::parse("v*").expect("pattern");
    let patterns = [&release];
    let promotion = [crate::template::TagTemplate::parse("{tag}-approved").expect("template")];
    let tags = TagProtections { patterns: &patterns, promotion: &promotion };
    let rules = untagged_rules("");
    let mut signature = image("signature", &[], 40);
    signature.subject = Some("release".into());
    let mut index = image("index", &["main"], 40);
    index.media_type = Some(INDEX_MEDIA_TYPES[0].into());
    let images = vec![
        image("release", &["v1.0.0", "sha-1"], 40),
        image("approved", &["sha-2", "sha-2-approved"], 40),
        image("running", &["sha-3"], 40),
        image("build", &["sha-4"], 40),
        signature,
        index,
        image("child", &[], 40),
    ];
    let observed = Observed {
        in_use: InUseData::Read([("running".to_owned(), InUse { count: 2, last_in_use_at: None })].into()),
        index_children: [("index".to_owned(), vec!["child".to_owned()])].into(),
    };
    // The classic mistake: every image older than 30 days goes, whatever its tags.
    let any = native(json!([{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePushed",
        "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}]));
    let hits = check_native(&any, &images, &rules, &tags, &observed, NOW);
    let mut named: Vec<(&str, String)> =
        hits.iter().map(|h| (images[h.image].digest.as_str(), format!("{:?}", h.why))).collect();
    named.sort();
    let digests: Vec<&str> = named.iter().map(|(d, _)| *d).collect();
    assert_eq!(digests, vec!["approved", "release", "running"], "{named:?}");
    // Untagged leftovers only: nothing protected is touched (the index keeps its child in ECR itself, and the
    // signature of a kept release stays: ECR removes referrers after their subject).
    let untagged =
        native(json!([{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
        "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}}]));
    let hits = check_native(&untagged, &images, &rules, &tags, &observed, NOW);
    let digests: Vec<&str> = hits.iter().map(|h| images[h.image].digest.as_str()).collect();
    assert_eq!(digests, vec!["signature"], "the release's signature would go while the release stays");
}

#[test]
fn rules_that_reach_protected_tags_are_named() {
    let protected = vec![
        crate::pattern::Pattern::parse("v*.*.*").expect("pattern"),
        crate::template::TagTemplate::parse("{tag}-approved").expect("template").as_pattern().expect("wildcard"),
    ];
    let patterns =
        |p: &[&str]| TagSelection::Patterns(p.iter().map(|s| crate::pattern::Pattern::parse(s).expect("p")).collect());
    let table: Vec<(TagSelection, Option<&str>)> = vec![
        (TagSelection::Untagged, None),
        (TagSelection::Any, Some("tagStatus any")),
        (patterns(&["sha-*"]), Some("*-approved")),
        (patterns(&["nightly"]), None),
        (patterns(&["v*"]), Some("v*.*.*")),
        (patterns(&["*-approved"]), Some("*-approved")),
        (TagSelection::Prefixes(vec!["v1".into()]), Some("v*.*.*")),
        (TagSelection::Prefixes(vec!["pr-".into()]), Some("*-approved")),
    ];
    for (selection, expected) in table {
        let got = reaches_protected_tags(&selection, &protected);
        match expected {
            None => assert_eq!(got, None, "{selection:?}"),
            Some(part) => assert!(got.as_deref().is_some_and(|g| g.contains(part)), "{selection:?}: {got:?}"),
        }
    }
}
