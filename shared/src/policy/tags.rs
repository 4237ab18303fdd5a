//! A class's tag rules and the ECR tag-mutability setting derived from them.

use crate::pattern::{Pattern, ecr_exclusion_filter_problem};
use crate::template::TagTemplate;
use std::fmt;

/// ECR allows at most five exclusion filters.
pub const MAX_EXCLUSION_FILTERS: usize = 5;

/// What tag-guard does about a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remediation {
    /// Notify only; change nothing (repository settings drift is reported, not fixed).
    Report,
    /// Remove non-conforming tags (never deleting an image); report moved protected tags.
    Untag,
    /// As `untag`, and move protected tags back to the digest they pointed to.
    Revert,
}

impl Remediation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Untag => "untag",
            Self::Revert => "revert",
        }
    }

    /// Whether tag-guard changes anything in ECR in this mode.
    pub fn writes(self) -> bool {
        self != Self::Report
    }
}

/// ECR's `imageTagMutability` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EcrMutability {
    Mutable,
    Immutable,
    MutableWithExclusion,
    ImmutableWithExclusion,
}

impl EcrMutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutable => "MUTABLE",
            Self::Immutable => "IMMUTABLE",
            Self::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
            Self::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Mutable, Self::Immutable, Self::MutableWithExclusion, Self::ImmutableWithExclusion]
            .into_iter()
            .find(|m| m.as_str() == text)
    }

    pub fn takes_filters(self) -> bool {
        matches!(self, Self::MutableWithExclusion | Self::ImmutableWithExclusion)
    }
}

/// The tag-mutability setting a repository must carry: mode plus exclusion filters (sorted, so two settings
/// compare equal whatever order ECR returns the filters in).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MutabilitySetting {
    pub mode: EcrMutability,
    pub filters: Vec<String>,
}

impl MutabilitySetting {
    pub fn new(mode: EcrMutability, mut filters: Vec<String>) -> Self {
        filters.sort();
        filters.dedup();
        Self { mode, filters }
    }
}

impl MutabilitySetting {
    /// Whether this setting alone makes ECR reject moves of every tag `protected` matches.
    pub fn covers(&self, protected: &[Pattern]) -> bool {
        let filters: Vec<Pattern> = self.filters.iter().filter_map(|f| Pattern::wildcard(f).ok()).collect();
        match self.mode {
            EcrMutability::Immutable => true,
            EcrMutability::Mutable => false,
            EcrMutability::ImmutableWithExclusion => {
                protected.iter().all(|p| filters.iter().all(|f| f.overlaps(p) == Some(false)))
            }
            EcrMutability::MutableWithExclusion => {
                protected.iter().all(|p| filters.iter().any(|f| f.covers(p) == Some(true)))
            }
        }
    }
}

impl fmt::Display for MutabilitySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode.as_str())?;
        if !self.filters.is_empty() {
            write!(f, " [{}]", self.filters.join(", "))?;
        }
        Ok(())
    }
}

/// Who keeps protected tags from moving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectionEnforcement {
    /// No protected tags.
    None,
    /// ECR rejects moves itself (the mutability setting expresses the protected set exactly); tag-guard's
    /// ledger is the second line of defence for drifted repositories.
    Ecr,
    /// ECR cannot express the rules (the reason says why): tag-guard detects moves through its ledger.
    Ledger(String),
}

/// A class's tag conventions, validated.
#[derive(Debug, Clone)]
pub struct TagRules {
    /// Tags that may be pushed; empty means every tag.
    pub allowed: Vec<Pattern>,
    /// Tags that must never move once set.
    pub protected: Vec<Pattern>,
    /// Tags that are meant to move (`latest`); never protected.
    pub mutable: Vec<Pattern>,
    pub mutability: MutabilitySetting,
    pub enforcement: ProtectionEnforcement,
    pub remediation: Remediation,
    /// Tag that keeps an image reachable before its last tag is removed; `None`: never remove a last tag.
    pub quarantine: Option<TagTemplate>,
    /// The class's scan-gate promotion tags: ecr-warden's own, never checked against `allowed`.
    pub promotion: Vec<TagTemplate>,
}

impl TagRules {
    pub fn is_allowed(&self, tag: &str) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|p| p.is_match(tag))
    }

    /// Protected unless declared mutable: `protected = ["*"]` with `mutable = ["latest"]` protects all but `latest`.
    pub fn is_protected(&self, tag: &str) -> bool {
        self.protected.iter().any(|p| p.is_match(tag)) && !self.is_mutable(tag)
    }

    pub fn is_mutable(&self, tag: &str) -> bool {
        self.mutable.iter().any(|p| p.is_match(tag))
    }

    /// A quarantine or promotion tag that ecr-warden itself adds.
    pub fn is_own_tag(&self, tag: &str) -> bool {
        self.own_tag_kind(tag).is_some()
    }

    /// Which of ecr-warden's own tags `tag` is shaped like, if any.
    pub fn own_tag_kind(&self, tag: &str) -> Option<super::OwnTagKind> {
        if self.promotion.iter().any(|p| p.matches(tag)) {
            Some(super::OwnTagKind::Promotion)
        } else if self.quarantine.as_ref().is_some_and(|q| q.matches(tag)) {
            Some(super::OwnTagKind::Quarantine)
        } else {
            None
        }
    }

    pub(super) fn summary(&self) -> String {
        let list = |patterns: &[Pattern]| -> String {
            if patterns.is_empty() {
                "-".into()
            } else {
                patterns.iter().map(Pattern::source).collect::<Vec<_>>().join(", ")
            }
        };
        let allowed = if self.allowed.is_empty() { "any tag".to_owned() } else { list(&self.allowed) };
        let enforcement = match &self.enforcement {
            ProtectionEnforcement::None => "no protected tags".to_owned(),
            ProtectionEnforcement::Ecr => "ECR rejects moves of protected tags".to_owned(),
            ProtectionEnforcement::Ledger(why) => format!("tag-guard ledger detects moves ({why})"),
        };
        let quarantine = self.quarantine.as_ref().map_or("none (a last tag is never removed)", TagTemplate::source);
        format!(
            "  tags allowed: {allowed}\n  protected: {}\n  mutable: {}\n  ECR tag mutability: {}\n  protection: {enforcement}\n  remediation: {}\n  quarantine tag: {quarantine}\n",
            list(&self.protected),
            list(&self.mutable),
            self.mutability,
            self.remediation.as_str(),
        )
    }
}

/// The setting ECR must carry for these rules, when the user did not set one, and who enforces protection.
/// Pure: used at policy load and in tests.
pub fn derive_mutability(protected: &[Pattern], mutable: &[Pattern]) -> (MutabilitySetting, ProtectionEnforcement) {
    let mutable_setting = MutabilitySetting::new(EcrMutability::Mutable, vec![]);
    if protected.is_empty() {
        return (mutable_setting, ProtectionEnforcement::None);
    }
    if protected.iter().any(Pattern::matches_everything) {
        if mutable.is_empty() {
            return (MutabilitySetting::new(EcrMutability::Immutable, vec![]), ProtectionEnforcement::Ecr);
        }
        return match as_exclusion_filters(mutable) {
            Ok(filters) => {
                (MutabilitySetting::new(EcrMutability::ImmutableWithExclusion, filters), ProtectionEnforcement::Ecr)
            }
            Err(why) => (mutable_setting, ProtectionEnforcement::Ledger(format!("mutable tags: {why}"))),
        };
    }
    match as_exclusion_filters(protected) {
        Ok(filters) => {
            (MutabilitySetting::new(EcrMutability::MutableWithExclusion, filters), ProtectionEnforcement::Ecr)
        }
        Err(why) => (mutable_setting, ProtectionEnforcement::Ledger(format!("protected tags: {why}"))),
    }
}

/// The patterns as ECR exclusion filters, or why they cannot be.
pub fn as_exclusion_filters(patterns: &[Pattern]) -> Result<Vec<String>, String> {
    if patterns.len() > MAX_EXCLUSION_FILTERS {
        return Err(format!(
            "{} patterns, ECR allows at most {MAX_EXCLUSION_FILTERS} exclusion filters",
            patterns.len()
        ));
    }
    patterns
        .iter()
        .map(|p| match p.as_wildcard() {
            Some(w) => ecr_exclusion_filter_problem(w).map_or_else(|| Ok(w.to_owned()), Err),
            None => Err(format!("`{}` is a regex, ECR exclusion filters are wildcards", p.source())),
        })
        .collect()
}
