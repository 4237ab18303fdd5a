//! Tag templates such as `quarantine-{digest12}` (tag-guard) or `{tag}-approved` (scan-gate promotion):
//! rendered for an image, validated as ECR/OCI tags, and recognised again when ECR reports the push that
//! ecr-warden itself made.

use regex::Regex;
use std::fmt;
use std::sync::OnceLock;

/// The longest tag OCI registries accept.
pub const MAX_TAG_LEN: usize = 128;

/// Placeholders a template may use.
const PLACEHOLDERS: &[(&str, &str)] =
    &[("{tag}", "[A-Za-z0-9_.-]+"), ("{digest12}", "[0-9a-f]{12}"), ("{digest}", "[0-9a-f]{64}")];

#[derive(Clone)]
pub struct TagTemplate {
    source: String,
    /// The recogniser's expression, made of escaped literals and the placeholders' fixed expressions (always
    /// valid). Compiled on first use: a policy has dozens of templates and an event needs a few, and compiling
    /// them all was a third of a cold start's policy load (bench/profile_cold.py).
    pattern: String,
    recogniser: OnceLock<Regex>,
}

impl fmt::Debug for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagTemplate({})", self.source)
    }
}

impl TagTemplate {
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut pattern = String::from("^");
        let mut rest = source;
        let mut literal_len = 0;
        while !rest.is_empty() {
            if let Some((placeholder, regex)) = PLACEHOLDERS.iter().find(|(p, _)| rest.starts_with(p)) {
                pattern.push_str(regex);
                rest = &rest[placeholder.len()..];
                continue;
            }
            let c = rest.chars().next().unwrap_or_default();
            if c == '{' || c == '}' {
                return Err(format!("`{source}`: unknown placeholder; use {{tag}}, {{digest12}} or {{digest}}"));
            }
            if !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
                return Err(format!("`{source}`: `{c}` is not allowed in an image tag"));
            }
            pattern.push_str(&regex::escape(&c.to_string()));
            literal_len += 1;
            rest = &rest[c.len_utf8()..];
        }
        pattern.push('$');
        if literal_len == 0 && !source.contains("{digest") {
            return Err(format!("`{source}`: a template needs literal text or a digest placeholder"));
        }
        if source == "{tag}" {
            return Err(format!("`{source}`: the template would render the original tag itself"));
        }
        if source.starts_with('.') || source.starts_with('-') {
            return Err(format!("`{source}`: a tag must start with a letter, digit or underscore"));
        }
        let template = Self { source: source.to_owned(), pattern, recogniser: OnceLock::new() };
        // Its shortest rendering must be a tag (a digest-only template has one length): this also bounds the
        // recogniser, which is compiled on first use and so can no longer fail at load.
        let sample = template
            .render("x", &format!("sha256:{}", "0".repeat(64)))
            .map_err(|e| format!("`{source}`: even its shortest rendering is not a tag ({e})"))?;
        debug_assert!(template.matches(&sample));
        Ok(template)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template for an image. Fails when the result is not a valid tag (too long, usually).
    pub fn render(&self, tag: &str, digest: &str) -> Result<String, String> {
        let hex = digest_hex(digest);
        let rendered = self
            .source
            .replace("{tag}", tag)
            .replace("{digest12}", &hex.chars().take(12).collect::<String>())
            .replace("{digest}", &hex);
        if rendered.len() > MAX_TAG_LEN {
            return Err(format!("`{rendered}` is longer than {MAX_TAG_LEN} characters"));
        }
        Ok(rendered)
    }

    /// The wildcard pattern of the tags this template renders (`{tag}-approved` → `*-approved`), for overlap
    /// checks against other patterns.
    pub fn as_pattern(&self) -> Option<crate::pattern::Pattern> {
        let mut wildcard = self.source.clone();
        for (placeholder, _) in PLACEHOLDERS {
            wildcard = wildcard.replace(placeholder, "*");
        }
        while wildcard.contains("**") {
            wildcard = wildcard.replace("**", "*");
        }
        crate::pattern::Pattern::wildcard(&wildcard).ok()
    }

    /// Whether a tag looks like one this template renders.
    pub fn matches(&self, tag: &str) -> bool {
        self.recogniser
            .get_or_init(|| Regex::new(&self.pattern).expect("escaped literals and fixed placeholder expressions"))
            .is_match(tag)
    }
}

/// The hex part of a digest (`sha256:ab12...` → `ab12...`); digests are opaque, so anything else is kept
/// as long as it is made of tag-safe characters.
pub fn digest_hex(digest: &str) -> String {
    let hex = digest.rsplit_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// Whether a string is a valid image tag (OCI distribution rules, which ECR applies).
pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    tag.len() <= MAX_TAG_LEN
        && (first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:3b5e7a4f9c1d2e8f0a6b4c2d1e3f5a7b9c8d6e4f2a1b3c5d7e9f0a2b4c6d8e0f";

    #[test]
    fn renders_and_recognises() {
        let cases: &[(&str, &str, &str)] = &[
            ("quarantine-{digest12}", "v1", "quarantine-3b5e7a4f9c1d"),
            ("{tag}-approved", "v1.2.3", "v1.2.3-approved"),
            ("approved-{digest12}", "v1", "approved-3b5e7a4f9c1d"),
            ("q-{digest}", "v1", "q-3b5e7a4f9c1d2e8f0a6b4c2d1e3f5a7b9c8d6e4f2a1b3c5d7e9f0a2b4c6d8e0f"),
        ];
        for (source, tag, expected) in cases {
            let template = TagTemplate::parse(source).expect("valid template");
            let rendered = template.render(tag, DIGEST).expect("renders");
            assert_eq!(&rendered, expected);
            assert!(template.matches(&rendered));
            assert!(!template.matches(tag), "{source} must not recognise the original tag {tag}");
        }
    }

    #[test]
    fn rejects_bad_templates() {
        for source in ["", "{tag}", "quarantine/{digest12}", "{sha}", "-x{digest12}", "q{", "{digest12}}"] {
            assert!(TagTemplate::parse(source).is_err(), "{source} should be rejected");
        }
    }

    #[test]
    fn a_template_no_tag_could_be_rendered_from_is_rejected_at_load() {
        let too_long = format!("{{tag}}-{}", "a".repeat(MAX_TAG_LEN));
        let error = TagTemplate::parse(&too_long).expect_err("no tag fits");
        assert!(error.starts_with(&format!("`{too_long}`")), "{error}");
        assert!(TagTemplate::parse(&format!("{{tag}}-{}", "a".repeat(MAX_TAG_LEN - 3))).is_ok());
    }

    #[test]
    fn render_fails_when_too_long() {
        let template = TagTemplate::parse("{tag}-approved").expect("valid");
        assert!(template.render(&"v".repeat(120), DIGEST).is_err());
    }

    proptest::proptest! {
        /// The recogniser is compiled on first use, so it must compile for every template that parses, and
        /// recognise what the template renders.
        #[test]
        fn every_template_that_parses_recognises_its_renderings(
            source in "[A-Za-z0-9_.{}-]{0,8}(\\{tag\\}|\\{digest12\\}|\\{digest\\})?[A-Za-z0-9_.{}-]{0,8}",
            tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        ) {
            if let Ok(template) = TagTemplate::parse(&source)
                && let Ok(rendered) = template.render(&tag, DIGEST)
            {
                proptest::prop_assert!(template.matches(&rendered), "{source} rendered {rendered}");
            }
        }
    }

    #[test]
    fn valid_tags() {
        assert!(is_valid_tag("v1.2.3"));
        assert!(is_valid_tag("_x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag("a/b"));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }
}
