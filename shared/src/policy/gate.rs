//! A class's scan gate: severity limits, finding filters, the allowlist and the promotion tags.

use crate::pattern::Pattern;
use crate::template::TagTemplate;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::fmt;

/// Finding severities, most severe first (ECR basic scanning and Amazon Inspector use the same names;
/// Inspector's `UNTRIAGED` is `Undefined`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingSeverity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl FindingSeverity {
    pub const ALL: [FindingSeverity; 6] =
        [Self::Critical, Self::High, Self::Medium, Self::Low, Self::Informational, Self::Undefined];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "CRITICAL",
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
            Self::Low => "LOW",
            Self::Informational => "INFORMATIONAL",
            Self::Undefined => "UNDEFINED",
        }
    }

    /// Parses AWS's spelling (any case); unknown values are `Undefined` so they are never silently dropped.
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_uppercase().as_str() {
            "CRITICAL" => Self::Critical,
            "HIGH" => Self::High,
            "MEDIUM" => Self::Medium,
            "LOW" => Self::Low,
            "INFORMATIONAL" => Self::Informational,
            _ => Self::Undefined,
        }
    }
}

impl fmt::Display for FindingSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Artifact types `require-referrers` accepts as they are; anything else is written `custom:<type>`.
pub const KNOWN_ARTIFACT_TYPES: &[&str] = &[
    "application/spdx+json",
    "text/spdx",
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.in-toto+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.dev.cosign.artifact.sbom.v1+json",
    "application/vnd.cncf.notary.signature",
    "application/vnd.syft+json",
];

/// What a failed gate does to an image that is already promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Notify; the promotion tags stay.
    Notify,
    /// Remove the promotion tags (never deleting the image) and notify.
    Demote,
}

/// One allowlisted vulnerability.
#[derive(Debug, Clone)]
pub struct AllowEntry {
    pub id: String,
    pub reason: String,
    /// The last day the entry applies.
    pub expires: NaiveDate,
    /// Repositories it applies to; empty: every repository of the class.
    pub repositories: Vec<Pattern>,
}

impl AllowEntry {
    pub fn in_scope(&self, repository: &str) -> bool {
        self.repositories.is_empty() || self.repositories.iter().any(|p| p.is_match(repository))
    }

    pub fn expired(&self, today: NaiveDate) -> bool {
        today > self.expires
    }
}

/// A class's gate, validated.
#[derive(Debug, Clone)]
pub struct GateRules {
    /// Maximum allowed findings per severity; severities without a limit never block.
    pub max: BTreeMap<FindingSeverity, u64>,
    /// Findings without an available fix do not count (unknown fix status counts).
    pub fixable_only: bool,
    /// Enhanced findings with an EPSS score below this do not count (findings without a score count).
    pub min_epss: Option<f64>,
    /// Only findings with a known exploit count (unknown counts).
    pub exploitable_only: bool,
    pub promote: Vec<TagTemplate>,
    pub on_failure: OnFailure,
    pub allow: Vec<AllowEntry>,
    /// The platforms of a multi-architecture image (`os/architecture[/variant]`) whose scans decide for the
    /// index; empty: every platform. Attestation manifests (`unknown/unknown`) are never gated.
    pub platforms: Vec<Pattern>,
    /// Signing profile ARNs one of which must have signed the image (ECR managed signing, status COMPLETE).
    pub require_signature: Vec<String>,
    /// Artifact types that must be attached to the image as OCI referrers (`custom:` kept as written).
    pub require_referrers: Vec<String>,
}

impl GateRules {
    /// Whether promotion needs more than the scan: a signature or attached artifacts.
    pub fn has_supply_chain_criteria(&self) -> bool {
        !self.require_signature.is_empty() || !self.require_referrers.is_empty()
    }

    /// Whether the decision needs the findings themselves, not just the counts.
    pub fn needs_findings(&self) -> bool {
        !self.allow.is_empty() || self.fixable_only || self.min_epss.is_some() || self.exploitable_only
    }

    pub fn is_promotion_tag(&self, tag: &str) -> bool {
        self.promote.iter().any(|t| t.matches(tag))
    }

    /// A short, stable name for the rules this gate judges by (limits, filters, allowlist, promotion tags).
    /// Every approval records it, so a reader can tell which rules approved an image.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for (severity, limit) in &self.max {
            hasher.update(format!("max {severity} {limit}\n"));
        }
        hasher.update(format!(
            "fixable-only {}\nmin-epss {:?}\nexploitable-only {}\non-failure {:?}\n",
            self.fixable_only, self.min_epss, self.exploitable_only, self.on_failure
        ));
        for template in &self.promote {
            hasher.update(format!("promote {}\n", template.source()));
        }
        for platform in &self.platforms {
            hasher.update(format!("platform {}\n", platform.source()));
        }
        for profile in &self.require_signature {
            hasher.update(format!("signature {profile}\n"));
        }
        for artifact in &self.require_referrers {
            hasher.update(format!("referrer {artifact}\n"));
        }
        for entry in &self.allow {
            let scope: Vec<&str> = entry.repositories.iter().map(Pattern::source).collect();
            hasher.update(format!("allow {} until {} in {}\n", entry.id, entry.expires, scope.join(",")));
        }
        hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect()
    }

    pub(super) fn summary(&self) -> String {
        let limits: Vec<String> =
            self.max.iter().map(|(s, n)| format!("{} ≤ {n}", s.as_str().to_lowercase())).collect();
        let mut filters = Vec::new();
        if self.fixable_only {
            filters.push("fixable only".to_owned());
        }
        if let Some(epss) = self.min_epss {
            filters.push(format!("EPSS ≥ {epss}"));
        }
        if self.exploitable_only {
            filters.push("exploitable only".to_owned());
        }
        let promote: Vec<&str> = self.promote.iter().map(TagTemplate::source).collect();
        let platforms: Vec<&str> = self.platforms.iter().map(Pattern::source).collect();
        let platforms = if platforms.is_empty() { "every platform".to_owned() } else { platforms.join(", ") };
        format!(
            "  gate: {}{}\n  promotion tags: {}\n  on failure: {}\n  allowlist: {} entries\n  multi-architecture: the index passes when each platform image passes ({platforms}; attestations never gated)\n{}",
            limits.join(", "),
            if filters.is_empty() { String::new() } else { format!(" ({})", filters.join(", ")) },
            promote.join(", "),
            match self.on_failure {
                OnFailure::Notify => "notify",
                OnFailure::Demote => "demote and notify",
            },
            self.allow.len(),
            self.supply_chain_summary()
        )
    }

    fn supply_chain_summary(&self) -> String {
        let mut lines = String::new();
        if !self.require_signature.is_empty() {
            lines.push_str(&format!("  signed by one of: {}\n", self.require_signature.join(", ")));
        }
        if !self.require_referrers.is_empty() {
            lines.push_str(&format!("  referrers required: {}\n", self.require_referrers.join(", ")));
        }
        lines
    }
}
