//! Supply-chain criteria of a gate, beside the scan: the image signed by a trusted signing profile (ECR managed
//! signing) and artifacts attached to it as OCI referrers (SBOMs, attestations). Pure: (rules, what the registry
//! holds) → one [`Criterion`] each, met / unmet / waiting; [`verdict`] combines them.

use serde::Serialize;

/// Where a criterion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CriterionState {
    Met,
    /// Fails: the image is not promoted, and operators are told why.
    Unmet,
    /// Not yet: the next event (signing done, the SBOM pushed) decides; nothing is said meanwhile.
    Waiting,
}

/// One supply-chain criterion and why it stands where it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Criterion {
    pub criterion: String,
    pub state: CriterionState,
    pub detail: String,
}

impl Criterion {
    /// One line for a notification: `signature: met (…)`.
    pub fn describe(&self) -> String {
        let state = match self.state {
            CriterionState::Met => "met",
            CriterionState::Unmet => "unmet",
            CriterionState::Waiting => "waiting",
        };
        format!("{}: {state} ({})", self.criterion, self.detail)
    }
}

/// One signing status of an image, as `DescribeImageSigningStatus` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningStatus {
    pub profile_arn: String,
    /// `COMPLETE`, `FAILED`, `IN_PROGRESS` (anything else is unknown, and never a pass).
    pub status: String,
    pub failure: Option<String>,
}

/// `require-signature`: a COMPLETE signature by one of `trusted`; a FAILED one (and none complete) is unmet with
/// ECR's reason; IN_PROGRESS waits; no signature by a trusted profile at all is unmet (fail closed).
pub fn signature(trusted: &[String], statuses: &[SigningStatus]) -> Criterion {
    let mine: Vec<&SigningStatus> = statuses.iter().filter(|s| trusted.contains(&s.profile_arn)).collect();
    let (state, detail) = if let Some(done) = mine.iter().find(|s| s.status == "COMPLETE") {
        (CriterionState::Met, format!("signed by {}", done.profile_arn))
    } else if let Some(running) = mine.iter().find(|s| s.status == "IN_PROGRESS") {
        (CriterionState::Waiting, format!("signing by {} in progress", running.profile_arn))
    } else if let Some(failed) = mine.iter().find(|s| s.status == "FAILED") {
        let why = failed.failure.as_deref().unwrap_or("no reason given");
        (CriterionState::Unmet, format!("signing by {} failed: {why}", failed.profile_arn))
    } else if let Some(odd) = mine.first() {
        (CriterionState::Unmet, format!("signing status {} by {} is not COMPLETE", odd.status, odd.profile_arn))
    } else {
        let others = statuses.iter().map(|s| s.profile_arn.as_str()).collect::<Vec<_>>();
        let others = if others.is_empty() { String::new() } else { format!("; signed by {}", others.join(", ")) };
        (CriterionState::Unmet, format!("no signature by a trusted profile ({}){others}", trusted.join(", ")))
    };
    Criterion { criterion: "signature".into(), state, detail }
}

/// The artifact type a `require-referrers` entry stands for (`custom:` dropped).
pub fn artifact_type(entry: &str) -> &str {
    entry.strip_prefix("custom:").unwrap_or(entry)
}

/// `require-referrers`: each type present among the image's referrers (`present`: their artifact types) is
/// met; a missing one waits for its push (the `ECR Referrer Action` event gates the image again).
pub fn referrers(required: &[String], present: &[String]) -> Vec<Criterion> {
    required
        .iter()
        .map(|entry| {
            let wanted = artifact_type(entry);
            let found = present.iter().any(|p| p == wanted);
            Criterion {
                criterion: format!("referrer {wanted}"),
                state: if found { CriterionState::Met } else { CriterionState::Waiting },
                detail: if found { "attached".into() } else { "none attached yet".into() },
            }
        })
        .collect()
}

/// All criteria together: unmet if any is, else waiting if any is, else met (no criteria: met).
pub fn verdict(criteria: &[Criterion]) -> CriterionState {
    if criteria.iter().any(|c| c.state == CriterionState::Unmet) {
        CriterionState::Unmet
    } else if criteria.iter().any(|c| c.state == CriterionState::Waiting) {
        CriterionState::Waiting
    } else {
        CriterionState::Met
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUSTED: &str = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release";
    const OTHER: &str = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/dev";

    fn status(profile: &str, status: &str) -> SigningStatus {
        let failure = (status == "FAILED").then(|| "KMS key disabled".to_owned());
        SigningStatus { profile_arn: profile.into(), status: status.into(), failure }
    }

    #[test]
    fn a_signature_counts_only_complete_and_by_a_trusted_profile() {
        let trusted = vec![TRUSTED.to_owned()];
        let cases: [(&str, Vec<SigningStatus>, CriterionState, &str); 7] = [
            ("complete", vec![status(TRUSTED, "COMPLETE")], CriterionState::Met, "signed by"),
            ("in progress", vec![status(TRUSTED, "IN_PROGRESS")], CriterionState::Waiting, "in progress"),
            ("failed", vec![status(TRUSTED, "FAILED")], CriterionState::Unmet, "KMS key disabled"),
            ("unknown status", vec![status(TRUSTED, "PAUSED")], CriterionState::Unmet, "not COMPLETE"),
            ("untrusted profile", vec![status(OTHER, "COMPLETE")], CriterionState::Unmet, "signed by arn"),
            ("not signed", vec![], CriterionState::Unmet, "no signature by a trusted profile"),
            (
                "one failed, one complete",
                vec![status(TRUSTED, "FAILED"), status(TRUSTED, "COMPLETE")],
                CriterionState::Met,
                "signed by",
            ),
        ];
        for (name, statuses, state, says) in cases {
            let criterion = signature(&trusted, &statuses);
            assert_eq!(criterion.state, state, "{name}");
            assert!(criterion.detail.contains(says), "{name}: {}", criterion.detail);
        }
    }

    #[test]
    fn each_required_referrer_is_met_or_waits_for_its_push() {
        let required = vec!["application/spdx+json".to_owned(), "custom:application/vnd.acme.review+json".to_owned()];
        let both = referrers(&required, &["application/vnd.acme.review+json".into(), "application/spdx+json".into()]);
        assert!(both.iter().all(|c| c.state == CriterionState::Met), "{both:?}");
        let one = referrers(&required, &["application/spdx+json".into()]);
        assert_eq!(one[1].state, CriterionState::Waiting);
        assert_eq!(one[1].describe(), "referrer application/vnd.acme.review+json: waiting (none attached yet)");
        assert_eq!(verdict(&one), CriterionState::Waiting);
        let failed = [signature(&[TRUSTED.to_owned()], &[status(TRUSTED, "FAILED")])];
        assert_eq!(verdict(&[one, failed.to_vec()].concat()), CriterionState::Unmet, "unmet outweighs waiting");
        assert_eq!(verdict(&[]), CriterionState::Met, "no criteria: nothing beyond the scan");
    }
}
