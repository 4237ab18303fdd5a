//! Policy loading and validation: the embedded policy, classification, every rejection (with its line and
//! key), the ECR tag-mutability derivation and the error format.
//!
//! Test policies start at line 1 (`version = 1`), so the line numbers in the tables are the lines of the
//! text as written; [`tags_policy`] puts the first line of its body on line [`TAGS_BODY_LINE`].

use super::*;
use crate::pattern::Pattern;

const SOURCE: &str = "test.toml";

/// The line of the first body line in [`tags_policy`].
const TAGS_BODY_LINE: usize = 6;

/// A one-class policy (class `c`, the default, no repository patterns) whose `[class.tags]` table has these
/// lines; the first one is on line [`TAGS_BODY_LINE`].
fn tags_policy(body: &[&str]) -> String {
    format!("version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.tags]\n{}\n", body.join("\n"))
}

fn valid(case: &str, text: &str) -> Policy {
    Policy::from_toml(text, SOURCE).unwrap_or_else(|e| panic!("{case}: policy should be valid, got:\n{e}\n---\n{text}"))
}

fn invalid(case: &str, text: &str) -> Vec<PolicyError> {
    match Policy::from_toml(text, SOURCE) {
        Ok(_) => panic!("{case}: policy should be rejected\n---\n{text}"),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "{case}: rejected without an error");
            assert!(errors.0.iter().all(|e| e.source == SOURCE), "{case}: errors must name the file: {errors}");
            errors.0
        }
    }
}

fn tag_rules(case: &str, body: &[&str]) -> TagRules {
    let policy = valid(case, &tags_policy(body));
    policy.classes[0].tags.clone().unwrap_or_else(|| panic!("{case}: class has no tag rules"))
}

fn patterns(texts: &[&str]) -> Vec<Pattern> {
    texts.iter().map(|t| Pattern::parse(t).unwrap_or_else(|e| panic!("pattern {t}: {e}"))).collect()
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------------------
// 1. The embedded policy

/// The test that keeps an invalid `warden.toml` from ever being deployed.
#[test]
fn embedded_policy_is_valid() {
    let policy = Policy::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME)
        .unwrap_or_else(|e| panic!("the embedded warden.toml is invalid:\n{e}"));
    assert!(!policy.classes.is_empty(), "warden.toml declares no class");
    let summary = policy.summary();
    assert!(summary.starts_with("warden.toml: "), "summary names the file:\n{summary}");
    for class in &policy.classes {
        assert!(
            summary.contains(&format!("\nclass {}", class.name)),
            "summary misses class `{}`:\n{summary}",
            class.name
        );
    }
}

#[test]
fn summary_marks_default_and_unmanaged_classes() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "managed default",
            r#"version = 1
default-class = "std"
[[class]]
name = "ext"
repositories = ["ext/*"]
managed = false
[[class]]
name = "std"
"#,
            &[
                "test.toml: 2 classes, valid\n",
                "class ext\n  repositories: ext/*\n  unmanaged: ecr-warden leaves these repositories alone\n",
                "class std (default)\n  repositories: (none: default class only)\n  tags: no conventions\n",
            ],
        ),
        (
            "unmanaged default",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "p"
repositories = ["p/*", "regex:q-.+"]
[class.tags]
protected = ["v*"]
remediation = "untag"
"#,
            &[
                "class p\n  repositories: p/*, regex:q-.+\n",
                "  protected: v*\n",
                "  ECR tag mutability: MUTABLE_WITH_EXCLUSION [v*]\n",
                "  protection: ECR rejects moves of protected tags\n",
                "  remediation: untag\n",
                "  quarantine tag: quarantine-{digest12}\n",
                "\nrepositories no class matches: unmanaged\n",
            ],
        ),
        (
            "unmanaged default, lifecycle observed and enforced",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "p"
repositories = ["p/*"]
[[class.lifecycle.native]]
rulePriority = 1
selection = { tagStatus = "untagged", countType = "imageCountMoreThan", countNumber = 5 }
action = { type = "expire" }
[class.lifecycle.retention]
apply = true
require-in-use-coverage = false
[[class.lifecycle.retention.rule]]
priority = 1
tag-status = "untagged"
count-type = "image-count-more-than"
count = 1
[limits]
sweep-max-tag-removals = 3
"#,
            &[
                "  native lifecycle policy: 1 rules, observed (apply = false): drift reported, nothing put\n",
                "  retention: 1 rules (sweep), deletes (apply = true); caps ",
                "younger than 1 days kept; in use: protected (30 days), uncovered images may go\n",
                "sweep limits: 1000 images deleted, 25 repositories changed, 3 tags removed\n",
            ],
        ),
    ];
    for (case, text, expected) in cases {
        let summary = valid(case, text).summary();
        for part in *expected {
            assert!(summary.contains(part), "{case}: summary lacks {part:?}:\n{summary}");
        }
        assert_eq!(summary.contains("(default)"), !case.starts_with("unmanaged"), "{case}:\n{summary}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2. Classification

/// What a repository should classify as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Managed(&'static str),
    Unmanaged(Option<&'static str>),
}

impl Expect {
    /// Whether the class is managed, and its name.
    fn parts(self) -> (bool, Option<&'static str>) {
        match self {
            Self::Managed(name) => (true, Some(name)),
            Self::Unmanaged(name) => (false, name),
        }
    }
}

fn classify<'a>(policy: &'a Policy, repository: &str) -> (bool, Option<&'a str>) {
    match policy.classify(repository) {
        Classification::Managed(class) => (true, Some(class.name.as_str())),
        Classification::Unmanaged(name) => (false, name),
    }
}

#[test]
fn classification_table() {
    let layered = r#"version = 1
default-class = "standard"
[[class]]
name = "api"
repositories = ["prod/api"]
[[class]]
name = "caches"
repositories = ["*-cache"]
[[class]]
name = "production"
repositories = ["prod/*"]
[[class]]
name = "teams"
repositories = ["regex:team-[a-z]+/.+"]
[[class]]
name = "external"
repositories = ["ecr-public/*"]
managed = false
[[class]]
name = "standard"
"#;
    let unmanaged_default = r#"version = 1
default-class = "unmanaged"
[[class]]
name = "prod"
repositories = ["prod/*"]
"#;
    let unmanaged_default_class = r#"version = 1
default-class = "legacy"
[[class]]
name = "prod"
repositories = ["prod/*"]
[[class]]
name = "legacy"
managed = false
"#;
    let no_classes = r#"version = 1
default-class = "unmanaged"
"#;

    let cases: &[(&str, &str, &str, Expect)] = &[
        // (case, policy, repository, expected)
        ("exact pattern listed first", layered, "prod/api", Expect::Managed("api")),
        ("first match wins over a later class", layered, "prod/x-cache", Expect::Managed("caches")),
        ("later class when the first does not match", layered, "prod/web", Expect::Managed("production")),
        ("* crosses /", layered, "prod/a/b", Expect::Managed("production")),
        ("* matches the empty string", layered, "prod/", Expect::Managed("production")),
        ("wildcards are anchored", layered, "prod", Expect::Managed("standard")),
        ("wildcards are anchored at the start", layered, "x-prod/api", Expect::Managed("standard")),
        ("leading * matches a prefix with /", layered, "a/b/redis-cache", Expect::Managed("caches")),
        ("regex pattern", layered, "team-blue/svc", Expect::Managed("teams")),
        ("regex . crosses /", layered, "team-blue/a/b", Expect::Managed("teams")),
        ("regex is anchored at the end", layered, "team-blue", Expect::Managed("standard")),
        ("regex is anchored at the start", layered, "xteam-blue/svc", Expect::Managed("standard")),
        ("regex character class", layered, "team-42/svc", Expect::Managed("standard")),
        ("unmanaged class", layered, "ecr-public/nginx", Expect::Unmanaged(Some("external"))),
        ("managed default class", layered, "something/else", Expect::Managed("standard")),
        ("unmanaged default", unmanaged_default, "other", Expect::Unmanaged(None)),
        ("unmanaged default, matching class", unmanaged_default, "prod/a", Expect::Managed("prod")),
        ("default class that is unmanaged", unmanaged_default_class, "other", Expect::Unmanaged(Some("legacy"))),
        ("no classes at all", no_classes, "prod/a", Expect::Unmanaged(None)),
    ];
    for (case, text, repository, expected) in cases {
        let policy = valid(case, text);
        assert_eq!(classify(&policy, repository), expected.parts(), "{case}: `{repository}`");
    }
}

#[test]
fn default_class_index() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "named default",
            r#"version = 1
default-class = "b"
[[class]]
name = "a"
repositories = ["a/*"]
[[class]]
name = "b"
"#,
            Some("b"),
        ),
        (
            "default with its own patterns",
            r#"version = 1
default-class = "a"
[[class]]
name = "a"
repositories = ["a/*"]
"#,
            Some("a"),
        ),
        (
            "unmanaged default",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["a/*"]
"#,
            None,
        ),
    ];
    for (case, text, expected) in cases {
        let policy = valid(case, text);
        let got = policy.default_class.map(|i| policy.classes[i].name.as_str());
        assert_eq!(got, *expected, "{case}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Rejections

/// One invalid policy and an error it must produce.
struct Rejection {
    case: &'static str,
    text: String,
    line: usize,
    /// The exact key (empty for errors the TOML deserializer reports, which name the key in the message).
    key: &'static str,
    message: &'static str,
}

fn rejection(case: &'static str, text: &str, line: usize, key: &'static str, message: &'static str) -> Rejection {
    Rejection { case, text: text.to_owned(), line, key, message }
}

fn tags_rejection(
    case: &'static str,
    body: &[&str],
    line: usize,
    key: &'static str,
    message: &'static str,
) -> Rejection {
    Rejection { case, text: tags_policy(body), line, key, message }
}

#[test]
fn invalid_policies_are_rejected_with_line_and_key() {
    let cases = [
        // --- TOML and structure
        rejection(
            "syntax: unclosed table header",
            r#"version = 1
default-class = "a"
[[class]
"#,
            3,
            "",
            "unclosed",
        ),
        rejection(
            "syntax: unterminated string",
            r#"version = 1
default-class = "a
"#,
            2,
            "",
            "string",
        ),
        rejection(
            "syntax: duplicate key",
            r#"version = 1
version = 1
default-class = "a"
"#,
            2,
            "",
            "duplicate key",
        ),
        rejection(
            "unknown top-level key",
            r#"version = 1
default-class = "unmanaged"
owner = "platform"
"#,
            3,
            "",
            "unknown field `owner`",
        ),
        rejection(
            "unknown class key",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repos = ["a/*"]
"#,
            5,
            "",
            "unknown field `repos`",
        ),
        tags_rejection(
            "unknown tags key (typo)",
            &[r#"allowed = ["v*"]"#, r#"protect = ["v*"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "",
            "unknown field `protect`",
        ),
        rejection("missing default-class", "version = 1\n", 1, "", "missing field `default-class`"),
        rejection(
            "missing version",
            r#"default-class = "unmanaged"
"#,
            1,
            "",
            "missing field `version`",
        ),
        tags_rejection("missing remediation", &[r#"allowed = ["v*"]"#], 5, "", "missing field `remediation`"),
        rejection(
            "version is not a number",
            r#"version = "1"
default-class = "unmanaged"
"#,
            1,
            "",
            "invalid type",
        ),
        rejection(
            "version 2",
            r#"version = 2
default-class = "unmanaged"
"#,
            1,
            "version",
            "unsupported policy version",
        ),
        rejection(
            "version 0",
            r#"default-class = "unmanaged"
version = 0
"#,
            2,
            "version",
            "unsupported policy version",
        ),
        // --- classes
        rejection(
            "default-class names no class",
            r#"version = 1
default-class = "prod"
[[class]]
name = "production"
repositories = ["prod/*"]
"#,
            2,
            "default-class",
            "`prod` is not a class name",
        ),
        rejection(
            "duplicate class names",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["a/*"]
[[class]]
name = "a"
repositories = ["b/*"]
"#,
            7,
            "class[1].name",
            "duplicate class name `a`",
        ),
        rejection(
            "duplicate class names up to surrounding spaces",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["a/*"]
[[class]]
name = "a "
repositories = ["b/*"]
"#,
            7,
            "class[1].name",
            "duplicate class name `a`",
        ),
        rejection(
            "class named unmanaged",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "unmanaged"
repositories = ["a/*"]
"#,
            4,
            "class[0].name",
            "is not a usable class name",
        ),
        rejection(
            "class named unmanaged, padded",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = " unmanaged "
repositories = ["a/*"]
"#,
            4,
            "class[0].name",
            "is not a usable class name",
        ),
        rejection(
            "blank class name",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "  "
repositories = ["a/*"]
"#,
            4,
            "class[0].name",
            "is not a usable class name",
        ),
        rejection(
            "non-default class without repositories",
            r#"version = 1
default-class = "b"
[[class]]
name = "a"
[[class]]
name = "b"
"#,
            4,
            "class[0].repositories",
            "class `a` matches no repository",
        ),
        rejection(
            "empty repositories with an unmanaged default",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = []
"#,
            4,
            "class[0].repositories",
            "matches no repository",
        ),
        // --- repository patterns
        rejection(
            "bad regex",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["a/*", "regex:("]
"#,
            5,
            "class[0].repositories[1]",
            "`regex:(`: invalid regex",
        ),
        rejection(
            "empty regex",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["regex:"]
"#,
            5,
            "class[0].repositories[0]",
            "empty regex",
        ),
        rejection(
            "empty pattern",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = [""]
"#,
            5,
            "class[0].repositories[0]",
            "empty pattern",
        ),
        rejection(
            "uppercase repository wildcard",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["Prod/*"]
"#,
            5,
            "class[0].repositories[0]",
            "`Prod/*` can never match: names cannot contain `P`",
        ),
        rejection(
            "repository literal with a space",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["my repo"]
"#,
            5,
            "class[0].repositories[0]",
            "names cannot contain ` `",
        ),
        rejection(
            "redundant repository pattern",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["prod/*", "prod/api"]
"#,
            5,
            "class[0].repositories[1]",
            "`prod/api` is redundant: `prod/*` already matches",
        ),
        rejection(
            "redundant repository pattern, broader one listed second",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["prod/api", "prod/*"]
"#,
            5,
            "class[0].repositories[0]",
            "`prod/api` is redundant: `prod/*` already matches",
        ),
        rejection(
            "shadowed by an earlier *",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "all"
repositories = ["*"]
[[class]]
name = "api"
repositories = ["prod/api"]
"#,
            8,
            "class[1].repositories[0]",
            "`prod/api` never applies: class `all` comes first and its `*` matches all of it",
        ),
        rejection(
            "shadowed by an earlier prod/*",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "prod"
repositories = ["prod/*"]
[[class]]
name = "api"
repositories = ["dev/api",
  "prod/api-*"]
"#,
            9,
            "class[1].repositories[1]",
            "class `prod` comes first",
        ),
        rejection(
            "literal shadowed by an earlier regex",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "teams"
repositories = ["regex:team-.+"]
[[class]]
name = "blue"
repositories = ["team-blue"]
"#,
            8,
            "class[1].repositories[0]",
            "class `teams` comes first",
        ),
        rejection(
            "shadowed by an earlier unmanaged class",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "ext"
repositories = ["ext/*"]
managed = false
[[class]]
name = "x"
repositories = ["ext/x"]
"#,
            9,
            "class[1].repositories[0]",
            "class `ext` comes first",
        ),
        rejection(
            "unmanaged class with tags",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "ext"
repositories = ["ext/*"]
managed = false
[class.tags]
remediation = "report"
"#,
            7,
            "class[0].tags",
            "an unmanaged class cannot declare tag rules",
        ),
        // --- tag patterns
        tags_rejection(
            "tag wildcard with /",
            &[r#"allowed = ["feat/*"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE,
            "class[0].tags.allowed[0]",
            "`feat/*` can never match: names cannot contain `/`",
        ),
        tags_rejection(
            "bad tag regex",
            &[r#"remediation = "report""#, r#"protected = ["regex:v["]"#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.protected[0]",
            "invalid regex",
        ),
        tags_rejection(
            "redundant tag pattern",
            &[r#"allowed = ["v*", "v1*"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE,
            "class[0].tags.allowed[1]",
            "`v1*` is redundant: `v*` already matches everything it matches",
        ),
        tags_rejection(
            "redundant tag pattern, broader one listed second",
            &[r#"remediation = "report""#, r#"allowed = ["v1*", "sha-*", "v*"]"#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.allowed[0]",
            "`v1*` is redundant: `v*` already matches everything it matches",
        ),
        tags_rejection(
            "literal made redundant by a later regex",
            &[r#"remediation = "report""#, r#"allowed = ["pr-1", "regex:pr-[0-9]+"]"#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.allowed[0]",
            "`pr-1` is redundant: `regex:pr-[0-9]+`",
        ),
        tags_rejection(
            "duplicate tag pattern",
            &[r#"mutable = ["latest", "main", "latest"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE,
            "class[0].tags.mutable[2]",
            "`latest` is redundant",
        ),
        tags_rejection(
            "remediation not report/untag/revert",
            &[r#"remediation = "fix""#],
            TAGS_BODY_LINE,
            "",
            "unknown variant `fix`",
        ),
        tags_rejection(
            "protected tag no allowed tag matches",
            &[r#"allowed = ["v*", "latest"]"#, r#"protected = ["sha-*"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.protected[0]",
            "`sha-*` can never apply: no allowed tag matches it",
        ),
        tags_rejection(
            "mutable tag no allowed tag matches",
            &[r#"allowed = ["v*"]"#, r#"remediation = "report""#, r#"mutable = ["main"]"#],
            TAGS_BODY_LINE + 2,
            "class[0].tags.mutable[0]",
            "`main` can never apply",
        ),
        tags_rejection(
            "mutable overlaps protected",
            &[r#"protected = ["v*"]"#, r#"mutable = ["latest", "v-next"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutable[1]",
            "`v-next` overlaps protected `v*`: a tag cannot be both mutable and protected",
        ),
        tags_rejection(
            "mutable partly overlaps protected",
            &[r#"protected = ["*-rc"]"#, r#"mutable = ["v*"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutable[0]",
            "overlaps protected `*-rc`",
        ),
        // --- mutability
        tags_rejection(
            "unknown mutability",
            &[r#"mutability = "SOMETIMES""#, r#"remediation = "report""#],
            TAGS_BODY_LINE,
            "class[0].tags.mutability",
            "`SOMETIMES` is not one of derive, MUTABLE, IMMUTABLE",
        ),
        tags_rejection(
            "mutability is case-sensitive",
            &[r#"remediation = "report""#, r#"mutability = "immutable""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutability",
            "`immutable` is not one of",
        ),
        tags_rejection(
            "IMMUTABLE with mutable tags",
            &[r#"mutable = ["latest"]"#, r#"mutability = "IMMUTABLE""#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutability",
            "IMMUTABLE makes every tag immutable, but `latest` is declared mutable",
        ),
        tags_rejection(
            "MUTABLE_WITH_EXCLUSION without exclusion-filters",
            &[r#"protected = ["v*"]"#, r#"mutability = "MUTABLE_WITH_EXCLUSION""#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutability",
            "MUTABLE_WITH_EXCLUSION needs `exclusion-filters`",
        ),
        tags_rejection(
            "IMMUTABLE_WITH_EXCLUSION without exclusion-filters",
            &[r#"remediation = "report""#, r#"mutability = "IMMUTABLE_WITH_EXCLUSION""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutability",
            "IMMUTABLE_WITH_EXCLUSION needs `exclusion-filters`",
        ),
        tags_rejection(
            "exclusion-filters with mutability = derive",
            &[
                r#"protected = ["v*"]"#,
                r#"mutability = "derive""#,
                r#"exclusion-filters = ["v*"]"#,
                r#"remediation = "report""#,
            ],
            TAGS_BODY_LINE + 2,
            "class[0].tags.exclusion-filters",
            "exclusion-filters are derived unless `mutability` names a *_WITH_EXCLUSION mode",
        ),
        tags_rejection(
            "exclusion-filters with mutability omitted",
            &[r#"protected = ["v*"]"#, r#"exclusion-filters = ["v*"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.exclusion-filters",
            "exclusion-filters are derived",
        ),
        tags_rejection(
            "exclusion-filters with IMMUTABLE",
            &[r#"mutability = "IMMUTABLE""#, r#"exclusion-filters = ["latest"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.exclusion-filters",
            "IMMUTABLE takes no exclusion filters",
        ),
        tags_rejection(
            "exclusion-filters with MUTABLE",
            &[r#"mutability = "MUTABLE""#, r#"exclusion-filters = ["latest"]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.exclusion-filters",
            "MUTABLE takes no exclusion filters",
        ),
        tags_rejection(
            "more than 5 exclusion filters",
            &[
                r#"remediation = "report""#,
                r#"mutability = "MUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["a*", "b*", "c*", "d*", "e*", "f*"]"#,
            ],
            TAGS_BODY_LINE + 2,
            "class[0].tags.exclusion-filters",
            "ECR takes 1 to 5 exclusion filters",
        ),
        tags_rejection(
            "empty exclusion-filters",
            &[r#"mutability = "MUTABLE_WITH_EXCLUSION""#, "exclusion-filters = []", r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.exclusion-filters",
            "ECR takes 1 to 5 exclusion filters",
        ),
        tags_rejection(
            "exclusion filter with an invalid character",
            &[
                r#"mutability = "MUTABLE_WITH_EXCLUSION""#,
                r#"remediation = "report""#,
                r#"exclusion-filters = ["v*", "feat/*"]"#,
            ],
            TAGS_BODY_LINE + 2,
            "class[0].tags.exclusion-filters[1]",
            "`feat/*`: `/` is not allowed in an ECR exclusion filter",
        ),
        tags_rejection(
            "empty exclusion filter",
            &[r#"mutability = "MUTABLE_WITH_EXCLUSION""#, r#"exclusion-filters = [""]"#, r#"remediation = "report""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.exclusion-filters[0]",
            "an exclusion filter has 1 to 128 characters",
        ),
        tags_rejection(
            "IMMUTABLE_WITH_EXCLUSION filter overlaps a protected tag",
            &[
                r#"protected = ["v*"]"#,
                r#"mutable = ["latest"]"#,
                r#"mutability = "IMMUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["latest", "v1*"]"#,
                r#"remediation = "report""#,
            ],
            TAGS_BODY_LINE + 2,
            "class[0].tags.mutability",
            "exclusion filter `v1*` would let protected `v*` move",
        ),
        tags_rejection(
            "IMMUTABLE_WITH_EXCLUSION filter may overlap a protected regex",
            &[
                r#"protected = ["regex:v[0-9]+"]"#,
                r#"mutability = "IMMUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["v*"]"#,
                r#"remediation = "report""#,
            ],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutability",
            "exclusion filter `v*` would let protected `regex:v[0-9]+` move",
        ),
        tags_rejection(
            "IMMUTABLE_WITH_EXCLUSION leaves a mutable tag immutable",
            &[
                r#"mutable = ["latest", "main"]"#,
                r#"mutability = "IMMUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["latest"]"#,
                r#"remediation = "report""#,
            ],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutability",
            "mutable `main` is not covered by an exclusion filter",
        ),
        tags_rejection(
            "MUTABLE_WITH_EXCLUSION filter freezes a mutable tag",
            &[
                r#"mutable = ["latest"]"#,
                r#"mutability = "MUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["*"]"#,
                r#"remediation = "report""#,
            ],
            TAGS_BODY_LINE + 1,
            "class[0].tags.mutability",
            "exclusion filter `*` would make mutable `latest` immutable",
        ),
        // --- quarantine
        tags_rejection(
            "quarantine tag with /",
            &[r#"remediation = "untag""#, r#"quarantine-tag = "quarantine/{digest12}""#],
            TAGS_BODY_LINE + 1,
            "class[0].tags.quarantine-tag",
            "`/` is not allowed in an image tag",
        ),
        tags_rejection(
            "quarantine tag with an unknown placeholder",
            &[r#"quarantine-tag = "held-{sha}""#, r#"remediation = "untag""#],
            TAGS_BODY_LINE,
            "class[0].tags.quarantine-tag",
            "unknown placeholder",
        ),
        tags_rejection(
            "quarantine tag that is the original tag",
            &[r#"quarantine-tag = "{tag}""#, r#"remediation = "untag""#],
            TAGS_BODY_LINE,
            "class[0].tags.quarantine-tag",
            "`{tag}`: a template needs literal text or a digest placeholder",
        ),
        // --- errors in a later class are keyed by its index
        rejection(
            "error in the second class",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["a/*"]
[[class]]
name = "b"
repositories = ["b/*"]
[class.tags]
remediation = "report"
protected = ["v*"]
mutable = ["v2"]
"#,
            12,
            "class[1].tags.mutable[0]",
            "overlaps protected `v*`",
        ),
    ];

    for c in &cases {
        let errors = invalid(c.case, &c.text);
        let all = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(
            errors.iter().any(|e| e.line == c.line && e.key == c.key && e.message.contains(c.message)),
            "{}: expected an error on line {} for key `{}` containing {:?}, got:\n{all}\n---\n{}",
            c.case,
            c.line,
            c.key,
            c.message,
            c.text
        );
        assert!(errors.iter().all(|e| e.line > 0 && e.column > 0), "{}: every error is located:\n{all}", c.case);
    }
}

#[test]
fn every_error_in_a_file_is_reported() {
    // (case, policy, every (line, key) reported)
    type Case<'a> = (&'a str, &'a str, &'a [(usize, &'a str)]);
    let cases: &[Case<'_>] = &[
        (
            "errors across the file",
            r#"version = 2
default-class = "nope"
[[class]]
name = "a"
repositories = ["regex:("]
[class.tags]
allowed = ["feat/*"]
remediation = "report"
[[class]]
name = "a"
repositories = ["b/*"]
"#,
            &[
                (1, "version"),
                (2, "default-class"),
                (5, "class[0].repositories[0]"),
                (7, "class[0].tags.allowed[0]"),
                (10, "class[1].name"),
            ],
        ),
        (
            "several errors in one tags table",
            r#"version = 1
default-class = "c"
[[class]]
name = "c"
[class.tags]
allowed = ["v*", "v1*"]
protected = ["a/b"]
mutable = ["Latest", "x*", "x1"]
remediation = "report"
"#,
            &[(6, "class[0].tags.allowed[1]"), (7, "class[0].tags.protected[0]"), (8, "class[0].tags.mutable[2]")],
        ),
        (
            "one error per shadowed pattern",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "all"
repositories = ["*"]
[[class]]
name = "b"
repositories = ["b/*"]
[[class]]
name = "c"
repositories = ["c"]
"#,
            &[(8, "class[1].repositories[0]"), (11, "class[2].repositories[0]")],
        ),
    ];
    for (case, text, expected) in cases {
        let errors = invalid(case, text);
        // Reported in validation order, not file order.
        let mut got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
        got.sort_unstable();
        assert_eq!(&got, expected, "{case}:\n{}", PolicyErrors(errors.clone()));
    }
}

/// Policies close to a rejection that must still load (guards against over-eager validation).
#[test]
fn near_misses_are_accepted() {
    let cases: &[(&str, &str)] = &[
        (
            "specific class before a general one",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "api"
repositories = ["prod/api"]
[[class]]
name = "prod"
repositories = ["prod/*"]
"#,
        ),
        (
            "overlapping but not covering repository patterns in two classes",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "caches"
repositories = ["*-cache"]
[[class]]
name = "prod"
repositories = ["prod/*"]
"#,
        ),
        (
            "a later regex is not checked against an earlier wildcard",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "prod"
repositories = ["prod/*"]
[[class]]
name = "teams"
repositories = ["regex:prod/team-.+"]
"#,
        ),
        (
            "class name with surrounding spaces is the default",
            r#"version = 1
default-class = "a"
[[class]]
name = " a "
"#,
        ),
        (
            "a default class may also have patterns, and an unmanaged class no tags",
            r#"version = 1
default-class = "std"
[[class]]
name = "ext"
repositories = ["ext/*"]
managed = false
[[class]]
name = "std"
repositories = ["std/*"]
managed = true
"#,
        ),
        (
            "disjoint and partly overlapping tag patterns in one list",
            &tags_policy(&[r#"allowed = ["v*", "*-rc", "sha-*", "regex:[0-9]+"]"#, r#"remediation = "report""#]),
        ),
        (
            "protected and mutable patterns that only touch allowed tags in part",
            &tags_policy(&[
                r#"allowed = ["v*", "latest"]"#,
                r#"protected = ["*.*.*"]"#,
                r#"mutable = ["latest"]"#,
                r#"remediation = "revert""#,
            ]),
        ),
        (
            "mutable regex beside a protected wildcard (overlap unknown)",
            &tags_policy(&[r#"protected = ["v*"]"#, r#"mutable = ["regex:pr-[0-9]+"]"#, r#"remediation = "report""#]),
        ),
        (
            "5 exclusion filters",
            &tags_policy(&[
                r#"mutability = "MUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["a*", "b*", "c*", "d*", "e*"]"#,
                r#"remediation = "report""#,
            ]),
        ),
    ];
    for (case, text) in cases {
        valid(case, text);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 4. Tag mutability

/// Expected protection enforcement; `Ledger` holds a fragment of the reason.
#[derive(Debug, Clone, Copy)]
enum Enforced {
    Nothing,
    Ecr,
    Ledger(&'static str),
}

fn assert_enforcement(case: &str, got: &ProtectionEnforcement, expected: Enforced) {
    let ok = match (got, expected) {
        (ProtectionEnforcement::None, Enforced::Nothing) | (ProtectionEnforcement::Ecr, Enforced::Ecr) => true,
        (ProtectionEnforcement::Ledger(why), Enforced::Ledger(fragment)) => why.contains(fragment),
        _ => false,
    };
    assert!(ok, "{case}: enforcement {got:?}, expected {expected:?}");
}

#[test]
fn derive_mutability_table() {
    let six = ["a*", "b*", "c*", "d*", "e*", "f*"];
    let long = format!("v{}*", "1".repeat(128));
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], EcrMutability, &'a [&'a str], Enforced);
    let cases: &[Case<'_>] = &[
        // (case, protected, mutable, mode, filters, enforcement)
        ("nothing protected", &[], &[], EcrMutability::Mutable, &[], Enforced::Nothing),
        ("nothing protected, mutable tags", &[], &["latest"], EcrMutability::Mutable, &[], Enforced::Nothing),
        ("everything protected", &["*"], &[], EcrMutability::Immutable, &[], Enforced::Ecr),
        ("** protects everything too", &["**"], &[], EcrMutability::Immutable, &[], Enforced::Ecr),
        (
            "everything protected but latest",
            &["*"],
            &["latest"],
            EcrMutability::ImmutableWithExclusion,
            &["latest"],
            Enforced::Ecr,
        ),
        (
            "everything protected but some, sorted and deduplicated",
            &["*"],
            &["main", "latest", "main"],
            EcrMutability::ImmutableWithExclusion,
            &["latest", "main"],
            Enforced::Ecr,
        ),
        (
            "everything protected, mutable regex",
            &["*"],
            &["regex:pr-[0-9]+"],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("mutable tags: `regex:pr-[0-9]+` is a regex"),
        ),
        (
            "everything protected, 6 mutable wildcards",
            &["*"],
            &six,
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("mutable tags: 6 patterns, ECR allows at most 5"),
        ),
        (
            "release tags protected",
            &["v*.*.*"],
            &["latest"],
            EcrMutability::MutableWithExclusion,
            &["v*.*.*"],
            Enforced::Ecr,
        ),
        (
            "protected filters are sorted",
            &["v*", "release-*"],
            &[],
            EcrMutability::MutableWithExclusion,
            &["release-*", "v*"],
            Enforced::Ecr,
        ),
        ("5 protected wildcards fit", &six[..5], &[], EcrMutability::MutableWithExclusion, &six[..5], Enforced::Ecr),
        (
            "protected regex",
            &["regex:v[0-9]+"],
            &[],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("protected tags: `regex:v[0-9]+` is a regex, ECR exclusion filters are wildcards"),
        ),
        (
            "6 protected wildcards",
            &six,
            &[],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("protected tags: 6 patterns, ECR allows at most 5 exclusion filters"),
        ),
        (
            "protected wildcard longer than an ECR filter",
            &[long.as_str()],
            &[],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("1 to 128 characters"),
        ),
    ];
    for (case, protected, mutable, mode, filters, enforced) in cases {
        let (setting, enforcement) = tags::derive_mutability(&patterns(protected), &patterns(mutable));
        assert_eq!(setting, MutabilitySetting { mode: *mode, filters: strings(filters) }, "{case}");
        assert_enforcement(case, &enforcement, *enforced);
    }
}

#[test]
fn policy_mutability_table() {
    type Case<'a> = (&'a str, &'a [&'a str], EcrMutability, &'a [&'a str], Enforced);
    let cases: &[Case<'_>] = &[
        // (case, [class.tags] body, mode, filters, enforcement)
        (
            "no tag rules but remediation",
            &[r#"remediation = "report""#],
            EcrMutability::Mutable,
            &[],
            Enforced::Nothing,
        ),
        (
            "no protected tags",
            &[r#"allowed = ["latest", "sha-*"]"#, r#"mutable = ["latest"]"#, r#"remediation = "untag""#],
            EcrMutability::Mutable,
            &[],
            Enforced::Nothing,
        ),
        (
            "everything protected",
            &[r#"protected = ["*"]"#, r#"remediation = "revert""#],
            EcrMutability::Immutable,
            &[],
            Enforced::Ecr,
        ),
        (
            "release tags protected (the production class)",
            &[
                r#"allowed = ["v*.*.*", "sha-*", "latest"]"#,
                r#"protected = ["v*.*.*"]"#,
                r#"mutable = ["latest"]"#,
                r#"remediation = "revert""#,
            ],
            EcrMutability::MutableWithExclusion,
            &["v*.*.*"],
            Enforced::Ecr,
        ),
        (
            "mutability = derive is the default",
            &[r#"protected = ["v*.*.*"]"#, r#"mutability = "derive""#, r#"remediation = "revert""#],
            EcrMutability::MutableWithExclusion,
            &["v*.*.*"],
            Enforced::Ecr,
        ),
        (
            "protected regex",
            &[r#"protected = ["regex:v[0-9]+"]"#, r#"remediation = "revert""#],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("is a regex"),
        ),
        (
            "6 protected wildcards",
            &[r#"protected = ["a*", "b*", "c*", "d*", "e*", "f*"]"#, r#"remediation = "revert""#],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("6 patterns"),
        ),
        (
            "everything protected, mutable regex",
            &[r#"protected = ["*"]"#, r#"mutable = ["regex:pr-[0-9]+"]"#, r#"remediation = "revert""#],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("mutable tags"),
        ),
        (
            "explicit MUTABLE with protected tags",
            &[r#"protected = ["v*"]"#, r#"mutability = "MUTABLE""#, r#"remediation = "revert""#],
            EcrMutability::Mutable,
            &[],
            Enforced::Ledger("MUTABLE does not make every protected tag immutable"),
        ),
        (
            "explicit MUTABLE, nothing protected",
            &[r#"mutability = "MUTABLE""#, r#"remediation = "report""#],
            EcrMutability::Mutable,
            &[],
            Enforced::Nothing,
        ),
        (
            "explicit IMMUTABLE with protected tags",
            &[r#"protected = ["v*"]"#, r#"mutability = "IMMUTABLE""#, r#"remediation = "report""#],
            EcrMutability::Immutable,
            &[],
            Enforced::Ecr,
        ),
        (
            "explicit IMMUTABLE, nothing protected",
            &[r#"mutability = "IMMUTABLE""#, r#"remediation = "report""#],
            EcrMutability::Immutable,
            &[],
            Enforced::Nothing,
        ),
        (
            "explicit IMMUTABLE_WITH_EXCLUSION consistent with the rules (sorted, deduplicated)",
            &[
                r#"protected = ["v*"]"#,
                r#"mutable = ["latest", "main"]"#,
                r#"mutability = "IMMUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["main", "latest", "main"]"#,
                r#"remediation = "revert""#,
            ],
            EcrMutability::ImmutableWithExclusion,
            &["latest", "main"],
            Enforced::Ecr,
        ),
        (
            "explicit IMMUTABLE_WITH_EXCLUSION, a filter covers the mutable tags",
            &[
                r#"protected = ["v*"]"#,
                r#"mutable = ["latest", "latest-*"]"#,
                r#"mutability = "IMMUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["latest*"]"#,
                r#"remediation = "revert""#,
            ],
            EcrMutability::ImmutableWithExclusion,
            &["latest*"],
            Enforced::Ecr,
        ),
        (
            "explicit IMMUTABLE_WITH_EXCLUSION, literal filter beside a protected regex",
            &[
                r#"protected = ["regex:v[0-9]+"]"#,
                r#"mutable = ["latest"]"#,
                r#"mutability = "IMMUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["latest"]"#,
                r#"remediation = "revert""#,
            ],
            EcrMutability::ImmutableWithExclusion,
            &["latest"],
            Enforced::Ecr,
        ),
        (
            "explicit MUTABLE_WITH_EXCLUSION covering the protected tags",
            &[
                r#"protected = ["v*.*.*", "release-*"]"#,
                r#"mutable = ["latest"]"#,
                r#"mutability = "MUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["v*", "release-*"]"#,
                r#"remediation = "revert""#,
            ],
            EcrMutability::MutableWithExclusion,
            &["release-*", "v*"],
            Enforced::Ecr,
        ),
        (
            "explicit MUTABLE_WITH_EXCLUSION missing a protected tag",
            &[
                r#"protected = ["v*"]"#,
                r#"mutability = "MUTABLE_WITH_EXCLUSION""#,
                r#"exclusion-filters = ["v1*"]"#,
                r#"remediation = "revert""#,
            ],
            EcrMutability::MutableWithExclusion,
            &["v1*"],
            Enforced::Ledger("MUTABLE_WITH_EXCLUSION [v1*] does not make every protected tag immutable"),
        ),
    ];
    for (case, body, mode, filters, enforced) in cases {
        let rules = tag_rules(case, body);
        assert_eq!(rules.mutability, MutabilitySetting { mode: *mode, filters: strings(filters) }, "{case}");
        assert_enforcement(case, &rules.enforcement, *enforced);
    }
}

/// `protected = ["*"]` with mutable tags reads "every tag is protected except these": it loads, derives
/// IMMUTABLE_WITH_EXCLUSION with the mutable tags as exclusion filters, and the mutable tags are not protected.
#[test]
fn everything_protected_except_mutable_tags() {
    let rules = tag_rules(
        "protected * with mutable latest",
        &[r#"protected = ["*"]"#, r#"mutable = ["latest", "main"]"#, r#"remediation = "revert""#],
    );
    assert_eq!(
        rules.mutability,
        MutabilitySetting { mode: EcrMutability::ImmutableWithExclusion, filters: strings(&["latest", "main"]) }
    );
    assert_enforcement("protected * with mutable latest", &rules.enforcement, Enforced::Ecr);
    assert!(rules.is_protected("v1.0.0") && rules.is_protected("anything"));
    assert!(!rules.is_protected("latest") && !rules.is_protected("main"));
    // A narrower protected pattern still may not overlap a mutable one.
    let errors = invalid(
        "protected v* with mutable v-latest",
        &tags_policy(&[r#"protected = ["v*"]"#, r#"mutable = ["v-latest"]"#, r#"remediation = "revert""#]),
    );
    assert!(
        errors.iter().any(|e| e.key == "class[0].tags.mutable[0]" && e.message.contains("overlaps protected `v*`"))
    );
}

#[test]
fn mutability_setting_is_sorted_and_deduplicated() {
    // (case, mode, filters given, filters kept, display)
    type Case<'a> = (&'a str, EcrMutability, &'a [&'a str], &'a [&'a str], &'a str);
    let cases: &[Case<'_>] = &[
        ("no filters", EcrMutability::Mutable, &[], &[], "MUTABLE"),
        ("one filter", EcrMutability::MutableWithExclusion, &["v*"], &["v*"], "MUTABLE_WITH_EXCLUSION [v*]"),
        (
            "unsorted with duplicates",
            EcrMutability::ImmutableWithExclusion,
            &["main", "latest", "main", "dev-*"],
            &["dev-*", "latest", "main"],
            "IMMUTABLE_WITH_EXCLUSION [dev-*, latest, main]",
        ),
    ];
    for (case, mode, given, sorted, display) in cases {
        let setting = MutabilitySetting::new(*mode, strings(given));
        assert_eq!(setting.filters, strings(sorted), "{case}");
        assert_eq!(setting.to_string(), *display, "{case}");
        let mut reversed = strings(given);
        reversed.reverse();
        assert_eq!(MutabilitySetting::new(*mode, reversed), setting, "{case}: order must not matter");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 5. Quarantine tag

#[test]
fn quarantine_tag_table() {
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        // (case, quarantine-tag value, resulting template)
        ("omitted: the default", None, Some("quarantine-{digest12}")),
        ("empty: disabled", Some(""), None),
        ("custom", Some("held-{digest12}"), Some("held-{digest12}")),
        ("full digest", Some("q-{digest}"), Some("q-{digest}")),
    ];
    for (case, value, expected) in cases {
        let line = value.map(|v| format!("quarantine-tag = \"{v}\""));
        let mut body = vec![r#"remediation = "untag""#];
        body.extend(line.as_deref());
        let rules = tag_rules(case, &body);
        assert_eq!(rules.quarantine.as_ref().map(|q| q.source()), *expected, "{case}");
        assert_eq!(
            rules.is_own_tag("quarantine-0123456789ab"),
            expected.is_some_and(|e| e.starts_with("quarantine-")),
            "{case}"
        );
        assert!(!rules.is_own_tag("v1.2.3"), "{case}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 6. Error format

#[test]
fn error_display_table() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "semantic error",
            r#"version = 2
default-class = "unmanaged"
"#,
            "test.toml:1:11: version: unsupported policy version; this ecr-warden reads version 1",
        ),
        (
            "error in an array",
            r#"version = 1
default-class = "unmanaged"
[[class]]
name = "a"
repositories = ["a/*", "Ab"]
"#,
            "test.toml:5:24: class[0].repositories[1]: `Ab` can never match: names cannot contain `A`",
        ),
        (
            "deserializer error: no key",
            r#"version = 1
default-class = "unmanaged"
  owner = 1
"#,
            "test.toml:3:3: unknown field `owner`",
        ),
    ];
    for (case, text, expected) in cases {
        let errors = invalid(case, text);
        let first = errors[0].to_string();
        assert!(first.starts_with(expected), "{case}: got `{first}`, expected it to start with `{expected}`");
    }

    let two = PolicyErrors(vec![
        PolicyError { source: "a.toml".into(), line: 3, column: 7, key: "k".into(), message: "m1".into() },
        PolicyError { source: "a.toml".into(), line: 0, column: 0, key: String::new(), message: "m2".into() },
    ]);
    assert_eq!(two.to_string(), "a.toml:3:7: k: m1\na.toml: m2", "one error per line; line 0 is omitted");
}

#[test]
fn unreadable_policy_file() {
    let path = Path::new("/nonexistent/ecr-warden/policy.toml");
    let errors = match Policy::load(path) {
        Ok(_) => panic!("a missing file loads"),
        Err(errors) => errors,
    };
    assert_eq!(errors.0.len(), 1);
    let e = &errors.0[0];
    assert_eq!((e.source.as_str(), e.line, e.column, e.key.as_str()), (path.to_str().unwrap_or_default(), 0, 0, ""));
    assert!(e.to_string().starts_with("/nonexistent/ecr-warden/policy.toml: cannot read: "), "{e}");
}

#[test]
fn a_policy_file_overrides_the_embedded_one() {
    let embedded = Policy::from_override(None).expect("embedded");
    assert_eq!(embedded.source, EMBEDDED_POLICY_NAME);
    assert_eq!(Policy::from_override(Some(std::ffi::OsStr::new(""))).expect("embedded").source, EMBEDDED_POLICY_NAME);
    let path = std::env::temp_dir().join(format!("warden-override-{}.toml", std::process::id()));
    std::fs::write(&path, "version = 1\ndefault-class = \"unmanaged\"\n").expect("write");
    let file = Policy::from_override(Some(path.as_os_str())).expect("file policy");
    assert_eq!(file.source, path.display().to_string());
    assert!(file.classes.is_empty());
    std::fs::remove_file(&path).expect("cleanup");
    let missing = Policy::from_override(Some(std::ffi::OsStr::new("/nonexistent/warden.toml"))).expect_err("missing");
    assert!(missing.to_string().contains("cannot read"));
}

fn lifecycle_policy(body: &str) -> String {
    format!("version = 1\ndefault-class = \"builds\"\n\n[[class]]\nname = \"builds\"\n\n{body}")
}

#[test]
fn lifecycle_sections_are_validated_with_ecr_rules_and_located() {
    let rule = |extra: &str| {
        format!(
            "[class.lifecycle.retention]\n[[class.lifecycle.retention.rule]]\npriority = 1\ntag-status = \"tagged\"\ncount-type = \"image-count-more-than\"\ncount = 1\n{extra}"
        )
    };
    let cases: [(&str, String, &str, &str); 9] = [
        (
            "native: ECR's own validation, naming the rule",
            lifecycle_policy(
                "[[class.lifecycle.native]]\nrulePriority = 1\nselection = { tagStatus = \"any\", countType = \"imageCountMoreThan\", countNumber = 1 }\naction = { type = \"expire\" }\n[[class.lifecycle.native]]\nrulePriority = 2\nselection = { tagStatus = \"untagged\", countType = \"sinceImagePushed\", countUnit = \"days\", countNumber = 1 }\naction = { type = \"expire\" }\n",
            ),
            "class[0].lifecycle.native",
            "rule 1: a tagStatus any rule must have the highest rulePriority",
        ),
        (
            "native: sinceImagePulled cannot expire",
            lifecycle_policy(
                "[[class.lifecycle.native]]\nrulePriority = 1\nselection = { tagStatus = \"untagged\", countType = \"sinceImagePulled\", countUnit = \"days\", countNumber = 1 }\naction = { type = \"expire\" }\n",
            ),
            "class[0].lifecycle.native",
            "rule 1: sinceImagePulled can only transition",
        ),
        (
            "retention: no selection",
            lifecycle_policy(&rule("")),
            "class[0].lifecycle.retention.rule[0].tag-status",
            "needs either",
        ),
        (
            "retention: both patterns and prefixes",
            lifecycle_policy(&rule("tags = [\"pr-*\"]\ntag-prefixes = [\"pr-\"]\n")),
            "class[0].lifecycle.retention.rule[0].tag-status",
            "not both",
        ),
        (
            "retention: group-by without a capture group",
            lifecycle_policy(&rule("tags = [\"pr-*\"]\ngroup-by = \"^pr-[0-9]+\"\n")),
            "class[0].lifecycle.retention.rule[0].group-by",
            "capture group",
        ),
        (
            "retention: invalid group-by regex",
            lifecycle_policy(&rule("tags = [\"pr-*\"]\ngroup-by = \"^(pr-\"\n")),
            "class[0].lifecycle.retention.rule[0].group-by",
            "invalid regex",
        ),
        (
            "retention: a pattern no tag can match",
            lifecycle_policy(&rule("tags = [\"pr/*\"]\n")),
            "class[0].lifecycle.retention.rule[0].tags[0]",
            "can never match",
        ),
        (
            "retention: cap fraction out of range",
            lifecycle_policy(
                "[class.lifecycle.retention]\nmax-fraction = 1.5\n[[class.lifecycle.retention.rule]]\npriority = 1\ntag-status = \"untagged\"\ncount-type = \"since-image-pushed\"\ncount = 3\n",
            ),
            "class[0].lifecycle.retention.max-fraction",
            "at most 1",
        ),
        (
            "retention: `any` before another rule",
            lifecycle_policy(
                "[class.lifecycle.retention]\n[[class.lifecycle.retention.rule]]\npriority = 1\ntag-status = \"any\"\ncount-type = \"since-image-pushed\"\ncount = 3\n[[class.lifecycle.retention.rule]]\npriority = 2\ntag-status = \"untagged\"\ncount-type = \"since-image-pulled\"\ncount = 3\n",
            ),
            "class[0].lifecycle.retention.rule[0].tag-status",
            "highest priority",
        ),
    ];
    for (case, text, key, message) in cases {
        let errors = invalid(case, &text);
        let all = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(
            errors.iter().any(|e| e.key == key && e.message.contains(message) && e.line > 0),
            "{case}: expected `{key}` with {message:?}, got:\n{all}"
        );
    }
    // Retention without rules: located at the retention table.
    let empty = invalid("no rules", &lifecycle_policy("[class.lifecycle.retention]\napply = true\n"));
    assert!(
        empty.iter().any(|e| e.key == "class[0].lifecycle.retention.rule" && e.line == 7),
        "{:?}",
        empty.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    // Unmanaged classes cannot declare lifecycle rules.
    let unmanaged = lifecycle_policy(
        "managed = false\n[class.lifecycle.retention]\n[[class.lifecycle.retention.rule]]\npriority = 1\ntag-status = \"untagged\"\ncount-type = \"since-image-pushed\"\ncount = 3\n",
    );
    assert!(invalid("unmanaged", &unmanaged).iter().any(|e| e.key == "class[0].lifecycle"));
}

#[test]
fn the_embedded_lifecycle_rules_compile_to_what_ecr_accepts() {
    let policy = Policy::from_toml(crate::policy::EMBEDDED_POLICY, "warden.toml").expect("valid");
    let production = policy.classes.iter().find(|c| c.name == "production").expect("production");
    let lifecycle = production.lifecycle.as_ref().expect("lifecycle");
    let native = lifecycle.native.as_ref().expect("native");
    assert!(crate::lifecycle::LifecyclePolicy::parse(&native.text).is_ok());
    assert!(native.is_current(Some(&native.text)));
    assert!(!native.is_current(None) && !native.is_current(Some("not json")));
    let retention = lifecycle.retention.as_ref().expect("retention");
    assert!(!retention.apply, "production retention starts as a dry run");
    let development = policy.classes.iter().find(|c| c.name == "development").expect("development");
    let rules = &development.lifecycle.as_ref().and_then(|l| l.retention.as_ref()).expect("retention").rules;
    assert!(rules[0].group_by.as_ref().is_some_and(|g| g.captures("pr-12-3").is_some_and(|c| &c[1] == "pr-12")));
}

#[test]
fn a_native_policy_read_back_in_another_order_is_not_drift() {
    let text = r#"version = 1
default-class = "c"
[[class]]
name = "c"
[[class.lifecycle.native]]
rulePriority = 1
selection = { tagStatus = "tagged", tagPrefixList = ["rc", "beta"], countType = "imageCountMoreThan", countNumber = 5 }
action = { type = "expire" }
[[class.lifecycle.native]]
rulePriority = 2
selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 3 }
action = { type = "expire" }
"#;
    let policy = Policy::from_toml(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let native = policy.classes[0].lifecycle.as_ref().and_then(|l| l.native.as_ref()).expect("native");
    let rule = |priority: u32, prefixes: &str, count: u32, extra: &str| {
        format!(
            r#"{{"rulePriority":{priority},"action":{{"type":"expire"}},"selection":{{"tagStatus":"tagged","tagPrefixList":[{prefixes}],"countType":"imageCountMoreThan","countNumber":{count}{extra}}}}}"#
        )
    };
    let untagged = r#"{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":3},"action":{"type":"expire"}}"#;
    let read_back = |first: String| format!(r#"{{"rules":[{untagged},{first}]}}"#);
    // Rules in another order, prefixes in another order, an empty pattern list: the same policy.
    assert!(native.is_current(Some(&read_back(rule(1, r#""beta","rc""#, 5, r#","tagPatternList":[]"#)))));
    assert!(native.is_current(Some(&read_back(rule(1, r#""rc","beta""#, 5, "")))));
    // Another count, another prefix: drift.
    assert!(!native.is_current(Some(&read_back(rule(1, r#""beta","rc""#, 6, "")))));
    assert!(!native.is_current(Some(&read_back(rule(1, r#""beta","ga""#, 5, "")))));
}

// ---------------------------------------------------------------------------------------------------------
// Safety: sweep limits, the native apply flag, warnings about native rules

#[test]
fn sweep_limits_default_and_validate() {
    let base = "version = 1\ndefault-class = \"unmanaged\"\n";
    assert_eq!(valid("no limits", base).limits, Limits::default());
    let limits = valid(
        "limits",
        &format!("{base}[limits]\nsweep-max-deleted-images = 50\nsweep-max-changed-repositories = 3\nsweep-max-tag-removals = 1\n"),
    )
    .limits;
    assert_eq!(
        limits,
        Limits { sweep_max_deleted_images: 50, sweep_max_changed_repositories: 3, sweep_max_tag_removals: 1 }
    );
    let errors = invalid("zero", &format!("{base}[limits]\nsweep-max-deleted-images = 0\n"));
    assert_eq!((errors[0].line, errors[0].key.as_str()), (4, "limits.sweep-max-deleted-images"));
    invalid("unknown", &format!("{base}[limits]\nmax = 3\n"));
}

#[test]
fn native_policies_are_put_only_where_a_class_says_apply() {
    let native = "[[class.lifecycle.native]]\nrulePriority = 1\nselection = { tagStatus = \"untagged\", countType = \
                  \"sinceImagePushed\", countUnit = \"days\", countNumber = 3 }\naction = { type = \"expire\" }\n";
    let class = "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n";
    let observe = valid("observe", &format!("{class}{native}"));
    assert!(!observe.classes[0].lifecycle.as_ref().expect("lifecycle").apply_native, "default: report drift only");
    let enforce = valid("enforce", &format!("{class}[class.lifecycle]\napply = true\n{native}"));
    assert!(enforce.classes[0].lifecycle.as_ref().expect("lifecycle").apply_native);
    // The shipped policy is safe by default: nothing is applied or deleted until a class says so.
    let shipped = Policy::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME).expect("embedded");
    for class in shipped.classes.iter().filter(|c| c.managed) {
        if let Some(lifecycle) = &class.lifecycle {
            assert!(!lifecycle.apply_native, "class {} applies its native policy", class.name);
            assert!(lifecycle.retention.as_ref().is_none_or(|r| !r.apply), "class {} deletes", class.name);
        }
    }
}

#[test]
fn native_rules_that_can_expire_protected_tags_are_warned_about() {
    let text = "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.tags]\nallowed = [\"v*\", \
                \"sha-*\"]\nprotected = [\"v*\"]\nremediation = \"report\"\n\
                [[class.lifecycle.native]]\nrulePriority = 1\nselection = { tagStatus = \"tagged\", \
                tagPrefixList = [\"v1\"], countType = \"imageCountMoreThan\", countNumber = 5 }\naction = { type = \
                \"expire\" }\n";
    let policy = valid("warned", text);
    assert_eq!(policy.warnings.len(), 1, "{:?}", policy.warnings);
    let warning = &policy.warnings[0];
    assert!(warning.message.contains("rule 1") && warning.message.contains("v*"), "{warning}");
    assert_eq!(warning.key, "class[0].lifecycle.native");
    assert!(warning.line > 0, "located: {warning}");
    assert!(policy.summary().contains("warning: "), "warden policy check prints it");
    // The shipped policy's native rules take untagged images only: nothing to warn about.
    let shipped = Policy::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME).expect("embedded");
    assert!(shipped.warnings.is_empty(), "{:?}", shipped.warnings);
}

/// `[class.gate] platforms`: which platform images of a multi-architecture image decide for its index.
#[test]
fn gate_platforms_are_patterns_of_os_and_architecture() {
    let gate = |platforms: &str| {
        format!(
            "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.gate]\nmax = {{ critical = 0 }}\npromote = [\"{{tag}}-approved\"]\nplatforms = {platforms}\n"
        )
    };
    let policy = valid("platforms", &gate("[\"linux/amd64\", \"linux/arm64/*\"]"));
    let rules = policy.classes[0].gate.as_ref().expect("gate");
    let platforms: Vec<&str> = rules.platforms.iter().map(Pattern::source).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/*"]);
    assert!(rules.platforms[1].is_match("linux/arm64/v8"));
    let every = valid("no platforms", &gate("[]"));
    assert!(every.classes[0].gate.as_ref().expect("gate").platforms.is_empty(), "every platform");
    assert_ne!(
        rules.fingerprint(),
        every.classes[0].gate.as_ref().expect("gate").fingerprint(),
        "approvals tell them apart"
    );
    let errors = invalid("a space", &gate("[\"linux amd64\"]"));
    assert_eq!(errors[0].key, "class[0].gate.platforms[0]", "{errors:?}");
}

/// `require-signature` takes signing profile ARNs, `require-referrers` known artifact types or `custom:` ones.
#[test]
fn supply_chain_keys_are_validated() {
    let gate = |keys: &str| {
        format!(
            "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\n[class.gate]\nmax = {{ critical = 0 }}\npromote = [\"{{tag}}-approved\"]\n{keys}\n"
        )
    };
    let profile = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release_2026";
    let policy = valid(
        "supply chain",
        &gate(&format!(
            "require-signature = [\"{profile}\"]\nrequire-referrers = [\"application/spdx+json\", \"custom:application/vnd.acme.review+json\"]"
        )),
    );
    let rules = policy.classes[0].gate.as_ref().expect("gate");
    assert_eq!(rules.require_signature, [profile]);
    assert!(rules.has_supply_chain_criteria());
    assert!(policy.summary().contains("referrers required: application/spdx+json"), "{}", policy.summary());
    let cases: [(&str, &str, &str); 5] = [
        (
            "require-signature = [\"arn:aws:kms:us-east-1:123456789012:key/x\"]",
            "require-signature[0]",
            "not a signing profile ARN",
        ),
        (
            "require-signature = [\"arn:aws:signer:us-east-1:1234:/signing-profiles/a\"]",
            "require-signature[0]",
            "not a signing profile ARN",
        ),
        ("require-referrers = [\"application/sbom\"]", "require-referrers[0]", "write custom:application/sbom"),
        ("require-referrers = [\"custom:sbom\"]", "require-referrers[0]", "a custom artifact type is a media type"),
        ("require-referrers = [\"text/spdx\", \"text/spdx\"]", "require-referrers[1]", "listed twice"),
    ];
    for (keys, key, says) in cases {
        let errors = invalid(keys, &gate(keys));
        assert_eq!(errors[0].key, format!("class[0].gate.{key}"), "{keys}: {errors:?}");
        assert!(errors[0].message.contains(says), "{keys}: {}", errors[0].message);
    }
}

#[test]
fn classes_may_select_by_account() {
    let text = "version = 1\ndefault-class = \"standard\"\n\
        [[class]]\nname = \"payments-prod\"\nrepositories = [\"prod/*\"]\naccounts = [\"222222222222\"]\n\
        [[class]]\nname = \"prod\"\nrepositories = [\"prod/*\"]\n\
        [[class]]\nname = \"standard\"\n";
    let policy = valid("accounts", text);
    let name = |c: Classification<'_>| match c {
        Classification::Managed(class) => class.name.clone(),
        Classification::Unmanaged(class) => format!("unmanaged {class:?}"),
    };
    assert_eq!(name(policy.classify_in(Some("222222222222"), "prod/api")), "payments-prod");
    assert_eq!(name(policy.classify_in(Some("333333333333"), "prod/api")), "prod", "another account: the next class");
    assert_eq!(name(policy.classify("prod/api")), "prod", "no account known: account-scoped classes do not match");
    assert_eq!(name(policy.classify_in(Some("222222222222"), "dev/api")), "standard", "patterns still decide");
    assert!(policy.summary().contains("accounts: 222222222222"), "{}", policy.summary());
    let text =
        "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\nrepositories = [\"*\"]\naccounts = [\"2222\"]\n";
    let errors = invalid("bad account", text);
    assert_eq!((errors[0].line, errors[0].key.as_str()), (6, "class[0].accounts[0]"), "{errors:?}");
    assert!(errors[0].message.contains("12-digit"), "{}", errors[0].message);
    // The default class governs whatever matches no class, in every account.
    let scoped_default = "version = 1\ndefault-class = \"c\"\n[[class]]\nname = \"c\"\naccounts = [\"222222222222\"]\n";
    let errors = invalid("default with accounts", scoped_default);
    assert_eq!((errors[0].line, errors[0].key.as_str()), (5, "class[0].accounts"), "{errors:?}");
    // A class for every account before an account's own class leaves the latter nothing.
    let shadowed = "version = 1\ndefault-class = \"prod\"\n[[class]]\nname = \"prod\"\nrepositories = [\"prod/*\"]\n\
        [[class]]\nname = \"payments\"\nrepositories = [\"prod/*\"]\naccounts = [\"222222222222\"]\n";
    let errors = invalid("shadowed", shadowed);
    assert!(errors[0].message.contains("never applies"), "{errors:?}");
}
