//! Supply-chain criteria: a promotion also needs a COMPLETE signature by a trusted signing profile and the
//! required referrers; FAILED signing blocks with the reason, signing in progress or a missing SBOM waits
//! quietly, and the SBOM's `ECR Referrer Action` gates its subject again. ECR's signing and referrer APIs are
//! not in moto 5.2.5: these run on aws-smithy-mocks.

use super::*;
use aws_sdk_ecr::operation::describe_image_signing_status::DescribeImageSigningStatusOutput;
use aws_sdk_ecr::operation::list_image_referrers::ListImageReferrersOutput;
use aws_sdk_ecr::types::{ImageReferrer, ImageSigningStatus, SigningStatus};

const SIGNED: &str = "signed/api";
const PROFILE: &str = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release";
const SBOM: &str = "sha256:5b0b000000000000000000000000000000000000000000000000000000000005";

fn policy() -> Policy {
    let text = format!(
        "{}\n[[class]]\nname = \"signed\"\nrepositories = [\"signed/*\"]\n[class.gate]\nmax = {{ critical = 0 }}\n\
         promote = [\"approved-{{digest12}}\"]\nrequire-signature = [\"{PROFILE}\"]\n\
         require-referrers = [\"application/spdx+json\"]\n",
        warden::policy::EMBEDDED_POLICY
    );
    Policy::from_toml(&text, "warden.toml").expect("policy")
}

fn gate(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule]) -> ScanGate {
    let clients = testing::clients(ecr, dynamodb, sns, Retries::None);
    let inspector = testing::inspector(&[], &clients, Retries::None);
    ScanGate::new(policy(), testing::config(), clients, inspector).expect("gate")
}

fn signing(status: SigningStatus) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_image_signing_status).then_output(move || {
        let mut signature = ImageSigningStatus::builder().signing_profile_arn(PROFILE).status(status.clone());
        if status == SigningStatus::Failed {
            signature = signature.failure_code("KMS_KEY_DISABLED").failure_reason("the profile's key is disabled");
        }
        DescribeImageSigningStatusOutput::builder().signing_statuses(signature.build()).build()
    })
}

fn referrers(sbom: bool) -> Rule {
    mock!(aws_sdk_ecr::Client::list_image_referrers)
        .match_requests(|r| {
            r.subject_id().map(|s| s.image_digest()) == Some(DIGEST)
                && r.filter().is_some_and(|f| f.artifact_types() == ["application/spdx+json"])
        })
        .then_output(move || {
            let found = ImageReferrer::builder()
                .digest(SBOM)
                .media_type("application/vnd.oci.image.manifest.v1+json")
                .artifact_type("application/spdx+json")
                .size(1024)
                .build()
                .expect("referrer");
            let output = ListImageReferrersOutput::builder();
            if sbom { output.referrers(found).build() } else { output.build() }
        })
}

fn scan_event() -> Value {
    basic_scan(SIGNED, serde_json::json!({}), &["v1"])
}

#[tokio::test]
async fn a_signed_image_with_its_sbom_is_promoted_listing_each_criterion() {
    let (scan, signed, sbom) = (registry_scan(vec![]), signing(SigningStatus::Complete), referrers(true));
    let (get, put) = (manifest("application/vnd.oci.image.manifest.v1+json"), put_ok("approved-6acea1b877ba"));
    let (approval, claimed, sent, tags) = (transaction_ok(), claim(), publish(), image_tags(&["v1"]));
    let gate = gate(&[&scan, &signed, &sbom, &tags, &get, &put], &[&approval, &claimed], &[&sent]);
    let outcome = gate.handle(scan_event(), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "promoted", "{:?}", outcome.reasons);
    assert_eq!(outcome.criteria.len(), 2);
    assert!(outcome.criteria.iter().all(|c| c.state == CriterionState::Met), "{:?}", outcome.criteria);
    assert!(outcome.reasons.iter().any(|r| r.starts_with("signature: met (signed by arn:aws:signer")));
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn failed_signing_blocks_with_ecr_s_reason() {
    let (scan, signed, sbom) = (registry_scan(vec![]), signing(SigningStatus::Failed), referrers(true));
    let put = put_ok("approved-6acea1b877ba");
    let (claimed, sent) = (claim(), publish());
    let gate = gate(&[&scan, &signed, &sbom, &put], &[&claimed], &[&sent]);
    let outcome = gate.handle(scan_event(), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "blocked");
    assert_eq!(put.num_calls(), 0);
    assert!(outcome.notified);
    let said = outcome.reasons.iter().find(|r| r.starts_with("signature: unmet")).expect("the signature's line");
    assert!(said.contains("the profile's key is disabled"), "{said}");
}

#[tokio::test]
async fn signing_in_progress_or_a_missing_sbom_waits_quietly() {
    for (status, sbom, waiting) in
        [(SigningStatus::InProgress, true, "signature"), (SigningStatus::Complete, false, "referrer")]
    {
        let (scan, signed, attached) = (registry_scan(vec![]), signing(status), referrers(sbom));
        let put = put_ok("approved-6acea1b877ba");
        let gate = gate(&[&scan, &signed, &attached, &put], &[], &[]);
        let outcome = gate.handle(scan_event(), &testing::invocation()).await.expect("handled");
        assert_eq!(outcome.decision, "not-promoted", "{waiting}");
        assert_eq!(put.num_calls(), 0);
        assert!(!outcome.notified, "{waiting}: the next event decides");
        let pending: Vec<&str> = outcome
            .criteria
            .iter()
            .filter(|c| c.state == CriterionState::Waiting)
            .map(|c| c.criterion.as_str())
            .collect();
        assert!(pending.len() == 1 && pending[0].starts_with(waiting), "{pending:?}");
    }
}

/// The SBOM's push gates its subject again: the subject is read from the registry (the referrer's
/// subjectManifestDigest), then its scan and criteria, and it is promoted.
#[tokio::test]
async fn the_sbom_arriving_promotes_its_subject() {
    let subject = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| r.image_ids().first().and_then(|i| i.image_digest()) == Some(SBOM))
        .then_output(|| {
            let detail = ImageDetail::builder().image_digest(SBOM).subject_manifest_digest(DIGEST).build();
            DescribeImagesOutput::builder().image_details(detail).build()
        });
    let tags = image_tags(&["v1"]);
    let basic = mock!(aws_sdk_ecr::Client::get_registry_scanning_configuration).then_output(|| {
        aws_sdk_ecr::operation::get_registry_scanning_configuration::GetRegistryScanningConfigurationOutput::builder()
            .build()
    });
    let (scan, signed, sbom) = (registry_scan(vec![]), signing(SigningStatus::Complete), referrers(true));
    let (get, put) = (manifest("application/vnd.oci.image.manifest.v1+json"), put_ok("approved-6acea1b877ba"));
    let (approval, claimed, sent) = (transaction_ok(), claim(), publish());
    let ecr: [&Rule; 8] = [&subject, &tags, &basic, &scan, &signed, &sbom, &get, &put];
    let gate = gate(&ecr, &[&approval, &claimed], &[&sent]);
    let mut event = sample("ecr-referrer-restore.json");
    event["detail"]["repository-name"] = SIGNED.into();
    event["detail"]["image-digest"] = SBOM.into();
    event["detail"]["action-type"] = "PUSH".into();
    let outcome = gate.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "promoted", "{:?}", outcome.reasons);
    assert_eq!(outcome.digest.as_deref(), Some(DIGEST), "the subject, not the SBOM");
    assert_eq!(put.num_calls(), 1);
}

/// Classes that require no referrers skip referrer events before any AWS call.
#[tokio::test]
async fn a_referrer_in_a_class_without_require_referrers_costs_nothing() {
    let gate = gate(&[], &[], &[]);
    let mut event = sample("ecr-referrer-restore.json");
    event["detail"]["action-type"] = "PUSH".into();
    let outcome = gate.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.aws_calls.is_empty(), "{:?}", outcome.aws_calls);
}
