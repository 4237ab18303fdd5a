//! Multi-architecture images: an image index is gated as a whole. Amazon Inspector and ECR scan the index's
//! platform images (its children), never the index, while deploy pipelines reference the index; so the index
//! passes only when every child it is judged on has a complete scan that passes, and the promotion tag goes on
//! the index. Pure: (index manifest, platform filter, each child's scan) → [`IndexDecision`].

use super::{Counts, GateResult, zero_counts};
use crate::pattern::Pattern;
use serde::Serialize;

/// The platform BuildKit gives the attestation manifests (provenance, SBOM) it puts into an index: not an
/// image anything runs, and never scanned.
pub const ATTESTATION_PLATFORM: &str = "unknown/unknown";

/// One manifest an index lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Child {
    pub digest: String,
    /// `os/architecture[/variant]`; empty when the index names none.
    pub platform: String,
}

/// The manifests an image index lists, in its order. `Err`: not an index ecr-warden can read (it then
/// gates nothing: fail closed).
pub fn parse_index(body: &str) -> Result<Vec<Child>, String> {
    #[derive(serde::Deserialize)]
    struct Index {
        manifests: Vec<Reference>,
    }
    #[derive(serde::Deserialize)]
    struct Reference {
        digest: String,
        #[serde(default)]
        platform: Option<Platform>,
    }
    #[derive(serde::Deserialize)]
    struct Platform {
        os: String,
        architecture: String,
        #[serde(default)]
        variant: Option<String>,
    }
    let index: Index = serde_json::from_str(body).map_err(|e| format!("unreadable image index manifest: {e}"))?;
    Ok(index
        .manifests
        .into_iter()
        .map(|m| Child {
            digest: m.digest,
            platform: m.platform.map_or_else(String::new, |p| match p.variant {
                Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            }),
        })
        .collect())
}

/// The children the gate judges: those whose platform matches the class's `platforms` (every platform when
/// empty), never attestation manifests. The rest are returned with the reason they are left out.
pub fn gated_children<'a>(children: &'a [Child], platforms: &[Pattern]) -> (Vec<&'a Child>, Vec<String>) {
    let mut gated = Vec::new();
    let mut ignored = Vec::new();
    for child in children {
        if child.platform == ATTESTATION_PLATFORM {
            ignored.push(format!("{}: an attestation manifest ({ATTESTATION_PLATFORM}), not gated", short(child)));
        } else if !platforms.is_empty() && !platforms.iter().any(|p| p.is_match(&child.platform)) {
            ignored.push(format!("{}: platform outside the class's `platforms`, not gated", short(child)));
        } else {
            gated.push(child);
        }
    }
    (gated, ignored)
}

/// What the registry says about one child's scan (see `aws::findings::RegistryScan`).
#[derive(Debug, Clone, PartialEq)]
pub enum ChildScan {
    Judged(GateResult),
    /// No usable scan (none, failed, unsupported): nothing vouches for the child.
    NoScan(String),
    /// Still running: the completion event gates the index again.
    Pending(String),
    /// The child manifest is not in the repository.
    Gone,
}

/// What the index's gate concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexVerdict {
    /// Every gated child passes: the index may be promoted (with the evidence checks a promotion makes).
    Pass,
    /// A child fails the gate: the index is blocked (demoted if promoted).
    Fail,
    /// A child has no usable scan, or is missing: never promoted, operators told.
    Unscanned,
    /// A child's scan is still running: its completion decides.
    Waiting,
}

/// The index's verdict, one reason per child, and the gate's result summed over the children (a failing
/// child's blocking findings, prefixed with its platform).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDecision {
    pub verdict: IndexVerdict,
    pub reasons: Vec<String>,
    pub result: GateResult,
}

fn short(child: &Child) -> String {
    let digest = child.digest.strip_prefix("sha256:").unwrap_or(&child.digest);
    let platform = if child.platform.is_empty() { "no platform" } else { child.platform.as_str() };
    format!("{platform} ({})", &digest[..digest.len().min(12)])
}

fn add(total: &mut Counts, counts: &Counts) {
    for (severity, n) in counts {
        *total.entry(*severity).or_default() += n;
    }
}

/// Judges an index on its gated children's scans. A failing child outweighs one still being scanned (the
/// index cannot pass either way, and a promoted index must lose its tag now), which outweighs a missing scan.
pub fn decide_index(children: &[(&Child, &ChildScan)]) -> IndexDecision {
    let mut result = GateResult {
        pass: false,
        evidence: "findings",
        counts_before: zero_counts(),
        counts_after: zero_counts(),
        blocking: vec![],
        allowlisted: vec![],
        expired: vec![],
        stale: vec![],
        reasons: vec![],
    };
    let (mut failing, mut waiting, mut unscanned) = (0, 0, 0);
    let mut reasons = Vec::new();
    for (child, scan) in children {
        let name = short(child);
        match scan {
            ChildScan::Judged(judged) => {
                add(&mut result.counts_before, &judged.counts_before);
                add(&mut result.counts_after, &judged.counts_after);
                result.allowlisted.extend(judged.allowlisted.iter().map(|a| format!("{name}: {a}")));
                result.expired.extend(judged.expired.iter().cloned());
                let verdict = if judged.pass { "passes" } else { "fails" };
                reasons.push(format!("{name} {verdict}: {}", judged.reasons.join("; ")));
                if !judged.pass {
                    failing += 1;
                    result.blocking.extend(judged.blocking.iter().map(|f| {
                        let mut finding = f.clone();
                        finding.id = format!("{} [{}]", f.id, name);
                        finding
                    }));
                }
            }
            ChildScan::NoScan(why) => {
                unscanned += 1;
                reasons.push(format!("{name}: {why}"));
            }
            ChildScan::Pending(why) => {
                waiting += 1;
                reasons.push(format!("{name}: waiting — {why}"));
            }
            ChildScan::Gone => {
                unscanned += 1;
                reasons.push(format!("{name}: the index lists it but the repository does not hold it"));
            }
        }
    }
    let verdict = if children.is_empty() {
        reasons.push("the index lists no platform image the gate judges: nothing vouches for it".into());
        IndexVerdict::Unscanned
    } else if failing > 0 {
        IndexVerdict::Fail
    } else if waiting > 0 {
        IndexVerdict::Waiting
    } else if unscanned > 0 {
        IndexVerdict::Unscanned
    } else {
        IndexVerdict::Pass
    };
    result.pass = verdict == IndexVerdict::Pass;
    let summary = match verdict {
        IndexVerdict::Pass => format!("all {} platform images pass the gate", children.len()),
        IndexVerdict::Fail => format!("{failing} of {} platform images fail the gate", children.len()),
        IndexVerdict::Waiting => format!("{waiting} of {} platform images are still being scanned", children.len()),
        IndexVerdict::Unscanned => "not every platform image has a usable scan".to_owned(),
    };
    reasons.insert(0, summary);
    result.reasons = reasons.clone();
    IndexDecision { verdict, reasons, result }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Finding;
    use crate::policy::FindingSeverity;

    const AMD: &str = "sha256:aaaa000000000000000000000000000000000000000000000000000000000001";
    const ARM: &str = "sha256:bbbb000000000000000000000000000000000000000000000000000000000002";
    const ATT: &str = "sha256:cccc000000000000000000000000000000000000000000000000000000000003";

    fn index() -> String {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": AMD, "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ARM, "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ATT, "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": AMD}}
            ]
        })
        .to_string()
    }

    fn judged(pass: bool, blocking: &[&str]) -> ChildScan {
        let mut counts = zero_counts();
        counts.insert(FindingSeverity::Critical, blocking.len() as u64);
        ChildScan::Judged(GateResult {
            pass,
            evidence: "findings",
            counts_before: counts.clone(),
            counts_after: counts,
            blocking: blocking.iter().map(|id| Finding::new(*id, FindingSeverity::Critical)).collect(),
            allowlisted: vec![],
            expired: vec![],
            stale: vec![],
            reasons: vec![if pass { "within limits".into() } else { "CRITICAL: 1 finding, at most 0 allowed".into() }],
        })
    }

    #[test]
    fn an_index_lists_its_platforms_and_attestations_are_never_gated() {
        let children = parse_index(&index()).expect("an index");
        let platforms: Vec<&str> = children.iter().map(|c| c.platform.as_str()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8", "unknown/unknown"]);
        let (gated, ignored) = gated_children(&children, &[]);
        assert_eq!(gated.iter().map(|c| c.digest.as_str()).collect::<Vec<_>>(), [AMD, ARM]);
        assert!(ignored[0].contains("attestation"), "{ignored:?}");
        let amd_only = [Pattern::parse("linux/amd64").expect("pattern")];
        let (gated, ignored) = gated_children(&children, &amd_only);
        assert_eq!(gated.iter().map(|c| c.digest.as_str()).collect::<Vec<_>>(), [AMD]);
        assert_eq!(ignored.len(), 2);
        assert!(parse_index(r#"{"schemaVersion":2,"config":{}}"#).is_err(), "a manifest is not an index");
    }

    /// Every combination of the children's states, and what the index gets.
    #[test]
    fn the_index_passes_only_when_every_gated_child_passes() {
        let children = parse_index(&index()).expect("an index");
        let (amd, arm) = (&children[0], &children[1]);
        let pass = judged(true, &[]);
        let fail = judged(false, &["CVE-2026-0001"]);
        let pending = ChildScan::Pending("the scan is still running".into());
        let none = ChildScan::NoScan("the registry holds no scan of the image".into());
        let cases: [(&str, &ChildScan, &ChildScan, IndexVerdict); 7] = [
            ("both pass", &pass, &pass, IndexVerdict::Pass),
            ("one fails", &pass, &fail, IndexVerdict::Fail),
            ("one fails while the other is scanned", &fail, &pending, IndexVerdict::Fail),
            ("one still scanning", &pass, &pending, IndexVerdict::Waiting),
            ("one never scanned", &pass, &none, IndexVerdict::Unscanned),
            ("one missing", &pass, &ChildScan::Gone, IndexVerdict::Unscanned),
            ("scanning outweighs unscanned", &none, &pending, IndexVerdict::Waiting),
        ];
        for (name, a, b, expected) in cases {
            let decision = decide_index(&[(amd, a), (arm, b)]);
            assert_eq!(decision.verdict, expected, "{name}");
            assert_eq!(decision.result.pass, expected == IndexVerdict::Pass, "{name}");
            assert_eq!(decision.reasons.len(), 3, "a summary and one line per child: {name}");
        }
        let failed = decide_index(&[(amd, &pass), (arm, &fail)]);
        assert_eq!(failed.result.blocking[0].id, "CVE-2026-0001 [linux/arm64/v8 (bbbb00000000)]");
        assert_eq!(failed.result.counts_after[&FindingSeverity::Critical], 1);
        assert_eq!(decide_index(&[]).verdict, IndexVerdict::Unscanned, "no platform image: nothing vouches");
    }
}
