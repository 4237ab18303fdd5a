//! What an approval may rest on. An event's word (its counts, a finding that closed) never promotes an image:
//! scan-gate re-reads the registry's scan state for the digest and decides on that; enhanced scanning also
//! needs Amazon Inspector to cover the digest actively with a completed scan, since a finding Inspector closed
//! because it stopped scanning (or one somebody suppressed) is no evidence the image is clean.

use super::Counts;
use crate::policy::FindingSeverity;
use serde::Serialize;

/// Which scanner's results an image is judged by: it decides what the registry re-read reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scanner {
    /// ECR basic scanning: DescribeImageScanFindings.
    Basic,
    /// Amazon Inspector: ListCoverage and ListFindings.
    Enhanced,
}

impl Scanner {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Enhanced => "enhanced",
        }
    }
}

/// What started a gate decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A scan of the image completed (`ECR Image Scan`, `Inspector2 Scan`).
    ScanCompleted,
    /// One of the image's findings was created, updated or closed (`Inspector2 Finding`).
    FindingChanged { finding: String, status: String },
    /// An OCI referrer (an SBOM, an attestation) was attached to the image (`ECR Referrer Action`): a
    /// supply-chain criterion may be met now; the scan is read as for any promotion.
    ReferrerAttached,
}

/// Amazon Inspector's coverage of one image (ListCoverage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// Inspector does not list the image.
    NotCovered,
    Covered {
        /// `ACTIVE` or `INACTIVE`.
        status: String,
        /// Why: `SUCCESSFUL`, `PENDING_INITIAL_SCAN`, `SCAN_ELIGIBILITY_EXPIRED`, ...
        reason: String,
        /// When Inspector last scanned it (epoch seconds).
        last_scanned_at: Option<i64>,
    },
}

impl Coverage {
    /// When the scan the coverage vouches for completed.
    pub fn scanned_at(&self) -> Option<i64> {
        match self {
            Self::Covered { last_scanned_at, .. } => *last_scanned_at,
            Self::NotCovered => None,
        }
    }
}

/// Whether an image the registry's findings pass may be promoted on this evidence; `Err` says why not.
/// `coverage` is `None` for basic scanning, whose re-read scan status already said COMPLETE.
pub fn may_promote(trigger: &Trigger, coverage: Option<&Coverage>) -> Result<(), String> {
    if let Trigger::FindingChanged { finding, status } = trigger
        && status.eq_ignore_ascii_case("SUPPRESSED")
    {
        return Err(format!(
            "finding {finding} was suppressed: a suppression never promotes an image by itself (the next \
             completed scan decides)"
        ));
    }
    match coverage {
        None => Ok(()),
        Some(Coverage::NotCovered) => {
            Err("Amazon Inspector does not cover the image (ListCoverage lists no such digest): no scan vouches for it"
                .into())
        }
        Some(Coverage::Covered { status, reason, .. }) if status != "ACTIVE" => Err(format!(
            "Amazon Inspector's coverage of the image is {status} ({reason}): findings it closed because it stopped \
             scanning are no evidence the image is clean"
        )),
        Some(Coverage::Covered { reason, .. }) if reason != "SUCCESSFUL" => Err(format!(
            "Amazon Inspector covers the image but its last scan is not complete ({reason}): the scan's completion \
             decides"
        )),
        Some(Coverage::Covered { last_scanned_at: None, .. }) => {
            Err("Amazon Inspector reports no time of a last scan for the image: no scan vouches for it".into())
        }
        Some(Coverage::Covered { .. }) => Ok(()),
    }
}

/// Where an event's counts disagree with the counts the registry's findings give, for the log and the
/// outcome: the registry decides. Only the severities the event reported are compared.
pub fn counts_disagreement(event: &Counts, reported: &[FindingSeverity], registry: &Counts) -> Option<String> {
    let differing: Vec<String> = FindingSeverity::ALL
        .iter()
        .filter(|s| reported.contains(s))
        .filter_map(|s| {
            let (said, found) = (event.get(s).copied().unwrap_or(0), registry.get(s).copied().unwrap_or(0));
            (said != found).then(|| format!("{s} {said} in the event, {found} in the registry"))
        })
        .collect();
    (!differing.is_empty()).then(|| {
        format!(
            "the event's counts disagree with the registry's scan ({}): decided by the registry",
            differing.join(", ")
        )
    })
}

/// The latest verdict the ledger holds for an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecordedVerdict {
    pub pass: bool,
    /// When the evidence it rests on was produced (epoch seconds): the scan's completion for a pass, the
    /// event's time for a failure.
    pub evidence_at: i64,
    pub event_id: String,
}

/// An approval: what scan-gate records (with a conditional write, before it adds the promotion tags) so that
/// tag-guard can tell its promotion tags from forged ones, and a reader can tell why an image was promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Approval {
    pub repository: String,
    pub digest: String,
    /// The promotion tags it approves.
    pub tags: Vec<String>,
    pub scanner: Scanner,
    /// When the scan the approval rests on completed (epoch seconds), when the registry says.
    pub scanned_at: Option<i64>,
    /// [`Approval::scanned_at`], or the event's time when the registry does not say: what a later failing
    /// verdict is compared with.
    pub evidence_at: i64,
    /// The gate rules' fingerprint (`GateRules::fingerprint`).
    pub policy: String,
    pub event_id: String,
}

/// What recording an approval came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approved {
    /// Recorded (or already recorded by an earlier delivery of the same event).
    Recorded,
    /// A failing verdict based on later evidence stands: a late or replayed passing scan does not re-promote.
    Superseded(RecordedVerdict),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(status: &str, reason: &str, at: Option<i64>) -> Coverage {
        Coverage::Covered { status: status.into(), reason: reason.into(), last_scanned_at: at }
    }

    #[test]
    fn promotion_needs_active_complete_coverage_and_no_suppression() {
        let scan = Trigger::ScanCompleted;
        let finding = |status: &str| Trigger::FindingChanged { finding: "arn:f".into(), status: status.into() };
        let active = covered("ACTIVE", "SUCCESSFUL", Some(1_764_000_000));
        let table: Vec<(Trigger, Option<Coverage>, Result<(), &str>)> = vec![
            (scan.clone(), None, Ok(())),
            (scan.clone(), Some(active.clone()), Ok(())),
            (finding("CLOSED"), Some(active.clone()), Ok(())),
            (finding("ACTIVE"), Some(active.clone()), Ok(())),
            (finding("SUPPRESSED"), Some(active.clone()), Err("suppression never promotes")),
            (finding("SUPPRESSED"), None, Err("suppression never promotes")),
            (finding("CLOSED"), Some(Coverage::NotCovered), Err("does not cover")),
            (scan.clone(), Some(Coverage::NotCovered), Err("does not cover")),
            (finding("CLOSED"), Some(covered("INACTIVE", "SCAN_ELIGIBILITY_EXPIRED", Some(1))), Err("INACTIVE")),
            (finding("CLOSED"), Some(covered("ACTIVE", "PENDING_INITIAL_SCAN", None)), Err("not complete")),
            (scan.clone(), Some(covered("ACTIVE", "SCAN_IN_PROGRESS", Some(1))), Err("not complete")),
            (scan, Some(covered("ACTIVE", "SUCCESSFUL", None)), Err("no time of a last scan")),
        ];
        for (trigger, coverage, expected) in table {
            let got = may_promote(&trigger, coverage.as_ref());
            match expected {
                Ok(()) => assert_eq!(got, Ok(()), "{trigger:?} {coverage:?}"),
                Err(part) => {
                    let why = got.expect_err("refused");
                    assert!(why.contains(part), "{trigger:?} {coverage:?}: {why}");
                }
            }
        }
    }

    #[test]
    fn disagreement_names_each_differing_reported_severity() {
        let counts = |c: u64, h: u64| -> Counts {
            FindingSeverity::ALL
                .iter()
                .map(|s| (*s, 0))
                .chain([(FindingSeverity::Critical, c), (FindingSeverity::High, h)])
                .collect()
        };
        assert_eq!(
            counts_disagreement(&counts(0, 1), &[FindingSeverity::Critical, FindingSeverity::High], &counts(0, 1)),
            None
        );
        let text = counts_disagreement(&counts(0, 0), &[FindingSeverity::Critical], &counts(2, 5)).expect("differs");
        assert!(text.contains("CRITICAL 0 in the event, 2 in the registry"), "{text}");
        assert!(!text.contains("HIGH"), "HIGH was not reported by the event: {text}");
    }
}
