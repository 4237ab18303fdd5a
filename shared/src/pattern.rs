//! Name patterns used by the policy file: ECR-style wildcards (`*` matches any run of characters, everything
//! else is literal, the whole name must match: the same semantics as ECR's `tagPatternList` and tag-mutability
//! exclusion filters), or regular expressions written `regex:<expr>` (also matched against the whole name).
//!
//! Wildcards can be reasoned about exactly, which the policy validator uses to reject overlapping and
//! impossible rules and to derive ECR exclusion filters; regexes are accepted where no such reasoning is needed.

use memchr::memmem::Finder;
use regex::Regex;
use std::fmt;

/// The regex prefix in policy files.
pub const REGEX_PREFIX: &str = "regex:";

#[derive(Clone)]
pub enum Pattern {
    /// `parts` is the text split at each `*`: matched without a regex (compiling one per pattern dominated
    /// policy load time), by the same rule ECR applies. The inner parts have prebuilt substring finders: the
    /// lifecycle evaluator matches millions of tags.
    Wildcard {
        source: String,
        parts: Vec<String>,
        finders: Vec<Finder<'static>>,
    },
    Regex {
        source: String,
        compiled: Regex,
    },
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.source())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source() == other.source()
    }
}

impl Pattern {
    /// Parses `regex:<expr>` as an anchored regex and anything else as a wildcard.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(expr) = text.strip_prefix(REGEX_PREFIX) {
            if expr.is_empty() {
                return Err("empty regex".into());
            }
            let compiled = Regex::new(&format!("^(?:{expr})$")).map_err(|e| format!("invalid regex: {e}"))?;
            Ok(Self::Regex { source: text.to_owned(), compiled })
        } else {
            Self::wildcard(text)
        }
    }

    /// A wildcard pattern: `*` is the only metacharacter.
    pub fn wildcard(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        let parts: Vec<String> = text.split('*').map(str::to_owned).collect();
        let inner = if parts.len() > 2 { &parts[1..parts.len() - 1] } else { &[][..] };
        let finders = inner.iter().map(|p| Finder::new(p.as_bytes()).into_owned()).collect();
        Ok(Self::Wildcard { source: text.to_owned(), parts, finders })
    }

    pub fn source(&self) -> &str {
        match self {
            Self::Wildcard { source, .. } | Self::Regex { source, .. } => source,
        }
    }

    pub fn is_match(&self, name: &str) -> bool {
        match self {
            Self::Wildcard { parts, finders, .. } => wildcard_match(parts, finders, name),
            Self::Regex { compiled, .. } => compiled.is_match(name),
        }
    }

    /// Text every matching name starts with (a wildcard's part before its first `*`); empty for regexes.
    pub fn leading_literal(&self) -> &str {
        match self {
            Self::Wildcard { parts, .. } => parts.first().map_or("", String::as_str),
            Self::Regex { .. } => "",
        }
    }

    /// Text every matching name contains (the longest literal part of a wildcard), for prefiltering many names
    /// with one substring search; empty when there is none to rely on (regexes, `*`).
    pub fn required_literal(&self) -> &str {
        match self {
            Self::Wildcard { parts, .. } => parts.iter().max_by_key(|p| p.len()).map_or("", String::as_str),
            Self::Regex { .. } => "",
        }
    }

    /// The wildcard text, when this pattern is one.
    pub fn as_wildcard(&self) -> Option<&str> {
        match self {
            Self::Wildcard { source, .. } => Some(source),
            Self::Regex { .. } => None,
        }
    }

    /// True when every name is matched (`*`, `**`, ...).
    pub fn matches_everything(&self) -> bool {
        self.as_wildcard().is_some_and(|w| w.chars().all(|c| c == '*'))
    }

    /// Whether some name matches both patterns. Exact for two wildcards; for a regex it is only known
    /// when the other side is a literal (no `*`), otherwise `None`.
    pub fn overlaps(&self, other: &Pattern) -> Option<bool> {
        match (self.as_wildcard(), other.as_wildcard()) {
            (Some(a), Some(b)) => Some(wildcards_intersect(a.as_bytes(), b.as_bytes())),
            (Some(literal), None) if !literal.contains('*') => Some(other.is_match(literal)),
            (None, Some(literal)) if !literal.contains('*') => Some(self.is_match(literal)),
            _ => None,
        }
    }

    /// Whether every name `other` matches is also matched by `self`. Exact for two wildcards; `None` when
    /// a regex is involved (unless `other` is a literal).
    pub fn covers(&self, other: &Pattern) -> Option<bool> {
        match (self.as_wildcard(), other.as_wildcard()) {
            (Some(a), Some(b)) => Some(wildcard_covers(a.as_bytes(), b.as_bytes())),
            (_, Some(literal)) if !literal.contains('*') => Some(self.is_match(literal)),
            _ => None,
        }
    }
}

/// Whole-name match of a wildcard split at its stars: the first part is a prefix, the last a suffix, and the
/// parts between occur in order (leftmost occurrence is always a safe choice when `*` is the only wildcard).
fn wildcard_match(parts: &[String], finders: &[Finder<'static>], name: &str) -> bool {
    let [first, .., last] = parts else {
        return parts.first().is_some_and(|only| only == name);
    };
    let name = name.as_bytes();
    let (first, last) = (first.as_bytes(), last.as_bytes());
    if name.len() < first.len() + last.len()
        || !short_eq(&name[..first.len()], first)
        || !short_eq(&name[name.len() - last.len()..], last)
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for finder in finders {
        match short_find(rest, finder) {
            Some(at) => rest = &rest[at + finder.needle().len()..],
            None => return false,
        }
    }
    true
}

/// Byte equality without a libc `memcmp` call: tags are short, and the lifecycle evaluator compares millions of
/// them, where the call itself dominated.
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Leftmost occurrence of the finder's needle: a plain scan for tag-sized haystacks, the vectorised finder
/// beyond.
fn short_find(haystack: &[u8], finder: &Finder<'static>) -> Option<usize> {
    let needle = finder.needle();
    if haystack.len() > 64 {
        return finder.find(haystack);
    }
    let Some((&head, _)) = needle.split_first() else { return Some(0) };
    let last_start = haystack.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| haystack[i] == head && short_eq(&haystack[i..i + needle.len()], needle))
}

/// Characters ECR accepts in a tag-mutability exclusion filter (and in `tagPatternList`), besides `*`.
pub fn is_ecr_wildcard_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*')
}

/// Why ECR would reject this text as a tag-mutability exclusion filter, if it would.
pub fn ecr_exclusion_filter_problem(filter: &str) -> Option<String> {
    if filter.is_empty() || filter.len() > 128 {
        return Some(format!("`{filter}`: an exclusion filter has 1 to 128 characters"));
    }
    if let Some(bad) = filter.chars().find(|c| !is_ecr_wildcard_char(*c)) {
        return Some(format!("`{filter}`: `{bad}` is not allowed in an ECR exclusion filter (0-9 a-z A-Z . _ - *)"));
    }
    None
}

/// Whether some string matches both wildcard patterns.
fn wildcards_intersect(a: &[u8], b: &[u8]) -> bool {
    align_wildcards(a, b, true)
}

/// Whether wildcard `a` matches every string wildcard `b` matches: `a` must match `b`'s text with each of
/// `b`'s stars standing for an arbitrary string, which only a star of `a` can absorb.
fn wildcard_covers(a: &[u8], b: &[u8]) -> bool {
    align_wildcards(a, b, false)
}

/// Walks pairs of positions (i in `a`, j in `b`): a star of `a` may match nothing or absorb `b`'s next symbol
/// (letter or star), literals must be equal, and, when `b_stars_free`, a star of `b` may do the same with `a`.
fn align_wildcards(a: &[u8], b: &[u8], b_stars_free: bool) -> bool {
    let (n, m) = (a.len(), b.len());
    // reachable[i][j]: a[..i] and b[..j] can be aligned.
    let mut reachable = vec![vec![false; m + 1]; n + 1];
    reachable[0][0] = true;
    for i in 0..=n {
        for j in 0..=m {
            if !reachable[i][j] {
                continue;
            }
            if i < n && a[i] == b'*' {
                reachable[i + 1][j] = true;
                if j < m {
                    reachable[i][j + 1] = true;
                }
            }
            if b_stars_free && j < m && b[j] == b'*' {
                reachable[i][j + 1] = true;
                if i < n {
                    reachable[i + 1][j] = true;
                }
            }
            if i < n && j < m && a[i] != b'*' && b[j] != b'*' && a[i] == b[j] {
                reachable[i + 1][j + 1] = true;
            }
        }
    }
    reachable[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn wildcard_matching_is_anchored_and_literal() {
        let cases: &[(&str, &str, bool)] = &[
            ("latest", "latest", true),
            ("latest", "latest-foo", false),
            ("v*", "v1.2.3", true),
            ("v*", "v", true),
            ("v*", "xv1", false),
            ("v*.*.*", "v1.2.3", true),
            ("v*.*.*", "v1.2", false),
            ("rel.1", "relX1", false),
            ("*-rc", "1.0-rc", true),
            ("*", "anything", true),
            ("sha-*", "sha-", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(p(pattern).is_match(name), *expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn regex_patterns_match_the_whole_name() {
        let pr = p("regex:pr-[0-9]+");
        assert!(pr.is_match("pr-12"));
        assert!(!pr.is_match("pr-12x"));
        assert!(!pr.is_match("xpr-12"));
        assert!(Pattern::parse("regex:(").is_err());
        assert!(Pattern::parse("regex:").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn overlap_and_cover_table() {
        let cases: &[(&str, &str, Option<bool>, Option<bool>)] = &[
            // a, b, overlaps, a covers b
            ("v*", "v1.*", Some(true), Some(true)),
            ("v1.*", "v*", Some(true), Some(false)),
            ("v*", "*-rc", Some(true), Some(false)),
            ("v*", "sha-*", Some(false), Some(false)),
            ("latest", "latest", Some(true), Some(true)),
            ("latest", "v*", Some(false), Some(false)),
            ("*", "anything*", Some(true), Some(true)),
            ("a*c", "ab*", Some(true), Some(false)),
            ("*a*", "*a*b*", Some(true), Some(true)),
            ("regex:pr-[0-9]+", "pr-1", Some(true), Some(true)),
            ("regex:pr-[0-9]+", "v*", None, None),
        ];
        for (a, b, overlaps, covers) in cases {
            assert_eq!(p(a).overlaps(&p(b)), *overlaps, "{a} overlaps {b}");
            assert_eq!(p(a).covers(&p(b)), *covers, "{a} covers {b}");
        }
    }

    #[test]
    fn exclusion_filter_rules() {
        assert_eq!(ecr_exclusion_filter_problem("release-*"), None);
        assert!(ecr_exclusion_filter_problem("").is_some());
        assert!(ecr_exclusion_filter_problem(&"a".repeat(129)).is_some());
        assert!(ecr_exclusion_filter_problem("feat/x").is_some());
    }

    /// Patterns over a tiny alphabet, so random patterns collide often. Short enough that the brute-force
    /// witnesses below are exhaustive: a shortest common string is never longer than both patterns' letters
    /// together, and a shortest counterexample to cover needs at most one extra letter per star.
    fn small_wildcard() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab*]{1,4}").expect("valid strategy")
    }

    proptest! {
        /// Wildcard matching agrees with the equivalent anchored regex.
        #[test]
        fn wildcard_match_agrees_with_regex(pattern in "[ab.*]{1,6}", name in "[ab.]{0,8}") {
            let body = pattern.split('*').map(regex::escape).collect::<Vec<_>>().join(".*");
            let oracle = Regex::new(&format!("^{body}$")).expect("valid regex");
            prop_assert_eq!(p(&pattern).is_match(&name), oracle.is_match(&name), "{} vs {}", pattern, name);
        }

        /// `overlaps` agrees with brute force: a witness exists among short strings over the same alphabet.
        #[test]
        fn overlap_agrees_with_brute_force(a in small_wildcard(), b in small_wildcard()) {
            let (pa, pb) = (p(&a), p(&b));
            let witnesses = all_strings(b"ab", 8);
            let brute = witnesses.iter().any(|s| pa.is_match(s) && pb.is_match(s));
            prop_assert_eq!(pa.overlaps(&pb), Some(brute));
        }

        #[test]
        fn cover_agrees_with_brute_force(a in small_wildcard(), b in small_wildcard()) {
            let (pa, pb) = (p(&a), p(&b));
            let witnesses = all_strings(b"abc", 7);
            let brute = witnesses.iter().filter(|s| pb.is_match(s)).all(|s| pa.is_match(s));
            prop_assert_eq!(pa.covers(&pb), Some(brute));
        }
    }

    fn all_strings(alphabet: &[u8], max_len: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..max_len {
            let mut next = Vec::new();
            for s in &frontier {
                for &c in alphabet {
                    let mut t = s.clone();
                    t.push(c as char);
                    next.push(t);
                }
            }
            out.extend(next.iter().cloned());
            frontier = next;
        }
        out
    }
}
