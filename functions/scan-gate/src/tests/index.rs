//! Multi-architecture images: the index is promoted once every platform image's scan passes, never a child;
//! attestation manifests are not gated; a child failing later demotes the index; the last child's scan gates
//! the index and earlier ones cost no scan reads; replays are silent.

use super::*;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecr::operation::get_registry_scanning_configuration::GetRegistryScanningConfigurationOutput;

const INDEX_DIGEST: &str = "sha256:1f4410bb4cbb07b61025058849341a727251d8464be53f07448f4e96b732406d";
const AMD: &str = "sha256:aaaa000000000000000000000000000000000000000000000000000000000001";
const ARM: &str = "sha256:bbbb000000000000000000000000000000000000000000000000000000000002";
const ATTESTATION: &str = "sha256:cccc000000000000000000000000000000000000000000000000000000000003";

fn index_manifest() -> String {
    let child = |digest: &str, os: &str, arch: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
            "platform": {"os": os, "architecture": arch}})
    };
    serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        child(AMD, "linux", "amd64"), child(ARM, "linux", "arm64"), child(ATTESTATION, "unknown", "unknown")]})
    .to_string()
}

/// BatchGetImage of the index answers its manifest.
fn the_index() -> Rule {
    mock!(aws_sdk_ecr::Client::batch_get_image)
        .match_requests(|r| r.image_ids().first().and_then(|i| i.image_digest()) == Some(INDEX_DIGEST))
        .then_output(|| {
            BatchGetImageOutput::builder()
                .images(
                    Image::builder()
                        .image_id(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(INDEX_DIGEST).build())
                        .image_manifest(index_manifest())
                        .image_manifest_media_type(INDEX)
                        .build(),
                )
                .build()
        })
}

fn basic_registry() -> Rule {
    mock!(aws_sdk_ecr::Client::get_registry_scanning_configuration).then_output(|| {
        let configuration =
            aws_sdk_ecr::types::RegistryScanningConfiguration::builder().scan_type(aws_sdk_ecr::types::ScanType::Basic);
        GetRegistryScanningConfigurationOutput::builder().scanning_configuration(configuration.build()).build()
    })
}

/// The basic scan of one child: complete with `findings`, or still running.
fn child_scan(digest: &'static str, findings: Option<Vec<ImageScanFinding>>) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .match_requests(move |r| r.image_id().and_then(|i| i.image_digest()) == Some(digest))
        .then_output(move || match &findings {
            Some(findings) => scan_page(findings.clone(), None),
            None => DescribeImageScanFindingsOutput::builder()
                .image_scan_status(ImageScanStatus::builder().status(ScanStatus::InProgress).build())
                .build(),
        })
}

/// DescribeImages of the index: its tags now.
fn index_tags(tags: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| r.image_ids().first().and_then(|i| i.image_digest()) == Some(INDEX_DIGEST))
        .then_output(move || {
            let detail = ImageDetail::builder()
                .image_digest(INDEX_DIGEST)
                .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
                .build();
            DescribeImagesOutput::builder().image_details(detail).build()
        })
}

/// DescribeImages of a platform image: untagged, as BuildKit pushes them.
fn untagged_children() -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images).then_compute_output(|r| {
        let digest = r.image_ids().first().and_then(|i| i.image_digest()).unwrap_or_default();
        DescribeImagesOutput::builder().image_details(ImageDetail::builder().image_digest(digest).build()).build()
    })
}

fn promotes_the_index() -> Rule {
    mock!(aws_sdk_ecr::Client::put_image)
        .match_requests(|r| r.image_digest() == Some(INDEX_DIGEST) && r.image_tag() == Some("v1.5.0-approved"))
        .then_output(|| PutImageOutput::builder().build())
}

/// The index's record: its children and (by the push) its CHILD# items, in one transaction.
fn index_recorded() -> Rule {
    mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(|r| {
            let puts: Vec<String> = r
                .transact_items()
                .iter()
                .filter_map(|i| i.put())
                .filter_map(|p| p.item().get("sk").and_then(|v| v.as_s().ok()).cloned())
                .collect();
            puts == [format!("{AMD}#{INDEX_DIGEST}"), format!("{ARM}#{INDEX_DIGEST}")]
        })
        .then_output(|| TransactWriteItemsOutput::builder().build())
}

/// The ledger says `INDEX_DIGEST` lists the scanned child.
fn listed_by_the_index() -> Rule {
    mock!(aws_sdk_dynamodb::Client::query)
        .match_requests(|r| {
            r.expression_attribute_values().and_then(|v| v.get(":pk")).and_then(|v| v.as_s().ok())
                == Some(&format!("CHILD#{PROD}"))
        })
        .then_output(|| {
            QueryOutput::builder()
                .items(std::collections::HashMap::from([("index".to_owned(), AttributeValue::S(INDEX_DIGEST.into()))]))
                .build()
        })
}

/// Counting a child's completed scan finds `scanned` of the two children scanned.
fn scans_counted(scanned: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| r.update_expression() == Some("ADD scanned :c"))
        .then_output(move || {
            let children = [AMD, ARM].map(|d| AttributeValue::S(d.into())).to_vec();
            UpdateItemOutput::builder()
                .attributes("children", AttributeValue::L(children))
                .attributes("scanned", AttributeValue::Ss(scanned.iter().map(|d| (*d).to_owned()).collect()))
                .build()
        })
}

fn push_event() -> Value {
    let mut event = sample("ecr-image-push-index.json");
    event["detail"]["repository-name"] = PROD.into();
    event
}

fn child_scan_event(child: &str) -> Value {
    let mut event = basic_scan(PROD, serde_json::json!({}), &[]);
    event["detail"]["image-digest"] = child.into();
    event
}

#[tokio::test]
async fn an_index_whose_platform_images_pass_is_promoted_once_as_the_index() {
    let (index, registry, recorded) = (the_index(), basic_registry(), index_recorded());
    let counted = scans_counted(&[AMD, ARM]);
    let (amd, arm) = (child_scan(AMD, Some(vec![])), child_scan(ARM, Some(vec![])));
    let (tags, put) = (index_tags(&["v1.5.0"]), promotes_the_index());
    let (approval, claimed, sent) = (transaction_ok(), claim(), publish());
    let ecr: [&Rule; 6] = [&index, &registry, &amd, &arm, &tags, &put];
    let gate = gate(&ecr, &[&recorded, &counted, &approval, &claimed], &[&sent], &[]);
    let outcome = gate.handle(push_event(), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "promoted", "{:?}", outcome.reasons);
    assert_eq!(outcome.digest.as_deref(), Some(INDEX_DIGEST), "the index, not a child");
    assert_eq!((put.num_calls(), recorded.num_calls(), sent.num_calls()), (1, 1, 1));
    assert_eq!((amd.num_calls(), arm.num_calls()), (1, 1), "each platform image's scan read once");
    assert!(outcome.reasons.iter().any(|r| r.contains("attestation")), "{:?}", outcome.reasons);
    assert!(outcome.reasons[0].contains("all 2 platform images pass"), "{:?}", outcome.reasons);
}

#[tokio::test]
async fn an_index_with_a_failing_platform_image_is_not_promoted() {
    let (index, registry, recorded) = (the_index(), basic_registry(), index_recorded());
    let counted = scans_counted(&[AMD, ARM]);
    let failing = vec![basic_finding("CVE-2026-0001", FindingSeverity::Critical)];
    let (amd, arm) = (child_scan(AMD, Some(vec![])), child_scan(ARM, Some(failing)));
    let (tags, put) = (index_tags(&["v1.5.0"]), promotes_the_index());
    let (claimed, sent, parked) = (claim(), publish(), nothing_parked());
    let gate =
        gate(&[&index, &registry, &amd, &arm, &tags, &put], &[&recorded, &counted, &claimed, &parked], &[&sent], &[]);
    let outcome = gate.handle(push_event(), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "blocked");
    assert_eq!(put.num_calls(), 0);
    let blocking = &outcome.gate.as_ref().expect("gate result").blocking;
    assert!(blocking[0].id.starts_with("CVE-2026-0001 [linux/arm64"), "{blocking:?}");
}

#[tokio::test]
async fn an_index_waits_for_a_platform_image_still_being_scanned_quietly() {
    let (index, registry, recorded) = (the_index(), basic_registry(), index_recorded());
    let counted = scans_counted(&[AMD, ARM]);
    let (amd, arm) = (child_scan(AMD, Some(vec![])), child_scan(ARM, None));
    let (tags, put) = (index_tags(&["v1.5.0"]), promotes_the_index());
    let gate = gate(&[&index, &registry, &amd, &arm, &tags, &put], &[&recorded, &counted], &[], &[]);
    let outcome = gate.handle(push_event(), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons[0].contains("1 of 2 platform images are still being scanned"), "{:?}", outcome.reasons);
    assert_eq!(put.num_calls(), 0);
    assert!(!outcome.notified);
}

/// The first child's scan only counts; the last one's gates the index: O(N) reads once, not per child.
#[tokio::test]
async fn only_the_last_platform_images_scan_gates_the_index() {
    let (listed, first) = (listed_by_the_index(), scans_counted(&[AMD]));
    let (amd, arm) = (child_scan(AMD, Some(vec![])), child_scan(ARM, Some(vec![])));
    let gate = super::gate(&[&amd, &arm], &[&listed, &first], &[], &[]);
    let outcome = gate.handle(child_scan_event(AMD), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped");
    assert!(outcome.reasons[0].contains("1 of its 2 platform images scanned"), "{:?}", outcome.reasons);
    assert_eq!(
        calls(&outcome),
        vec![("DynamoDB.Query", 1), ("DynamoDB.UpdateItem", 1), ("ECR.DescribeImageScanFindings", 1)],
        "its own scan read and counted; nothing else"
    );

    let (listed, last, index) = (listed_by_the_index(), scans_counted(&[AMD, ARM]), the_index());
    let (tags, put) = (index_tags(&["v1.5.0"]), promotes_the_index());
    let (approval, claimed, sent) = (transaction_ok(), claim(), publish());
    let ecr: [&Rule; 5] = [&index, &amd, &arm, &tags, &put];
    let gate = super::gate(&ecr, &[&listed, &last, &approval, &claimed], &[&sent], &[]);
    let outcome = gate.handle(child_scan_event(ARM), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "promoted", "{:?}", outcome.reasons);
    assert_eq!(
        (put.num_calls(), amd.num_calls(), arm.num_calls()),
        (1, 2, 2),
        "each child: its own event, the re-read"
    );
}

/// A promoted index whose platform image gets a new critical finding loses its promotion tag (the index's,
/// named with its digest); the child itself is never tagged.
#[tokio::test]
async fn a_failing_platform_image_demotes_its_index() {
    let listed = listed_by_the_index();
    let failing = vec![basic_finding("CVE-2026-0002", FindingSeverity::Critical)];
    let (index, amd, arm) = (the_index(), child_scan(AMD, Some(failing)), child_scan(ARM, Some(vec![])));
    let tags = index_tags(&["v1.5.0", "v1.5.0-approved"]);
    let removed = mock!(aws_sdk_ecr::Client::batch_delete_image)
        .match_requests(|r| {
            r.image_ids()
                .iter()
                .any(|i| i.image_tag() == Some("v1.5.0-approved") && i.image_digest() == Some(INDEX_DIGEST))
        })
        .then_output(|| BatchDeleteImageOutput::builder().build());
    let (revoked, claimed, sent) = (transaction_ok(), claim(), publish());
    let mut finding_changed = child_scan_event(AMD);
    finding_changed["detail"]["finding-severity-counts"] = serde_json::json!({"CRITICAL": 1});
    let counted = scans_counted(&[AMD, ARM]);
    let dynamodb: [&Rule; 4] = [&listed, &counted, &revoked, &claimed];
    let untagged = untagged_children();
    let gate = super::gate(&[&index, &amd, &arm, &tags, &untagged, &removed], &dynamodb, &[&sent], &[]);
    let outcome = gate.handle(finding_changed, &testing::invocation()).await;
    let outcome = outcome.expect("handled");
    assert_eq!(outcome.decision, "demoted", "{:?}", outcome.reasons);
    assert_eq!(removed.num_calls(), 1);
    assert_eq!(sent.num_calls(), 1, "one notification: the demotion");
}

/// A replayed push of an index already promoted: the same decision, no tag written, nothing said.
#[tokio::test]
async fn a_replayed_index_push_is_silent() {
    let (index, registry, recorded) = (the_index(), basic_registry(), index_recorded());
    let counted = scans_counted(&[AMD, ARM]);
    let (amd, arm) = (child_scan(AMD, Some(vec![])), child_scan(ARM, Some(vec![])));
    let (tags, put) = (index_tags(&["v1.5.0", "v1.5.0-approved"]), promotes_the_index());
    let approval = transaction_ok();
    let gate = gate(&[&index, &registry, &amd, &arm, &tags, &put], &[&recorded, &counted, &approval], &[], &[]);
    let outcome = gate.handle(push_event(), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "already-promoted", "{:?}", outcome.reasons);
    assert_eq!(put.num_calls(), 0);
    assert!(!outcome.notified);
}

/// A platform image whose scan event already fails the gate gates its index at once, whatever the count of
/// completed scans: an index promoted on older scans must not wait for its other platforms to lose its tag.
#[tokio::test]
async fn a_platform_image_failing_by_its_event_gates_the_index_without_waiting() {
    let (listed, index, tags) = (listed_by_the_index(), the_index(), index_tags(&["v1.5.0", "v1.5.0-approved"]));
    let failing = vec![basic_finding("CVE-2026-0003", FindingSeverity::Critical)];
    let (amd, arm) = (child_scan(AMD, Some(vec![])), child_scan(ARM, Some(failing)));
    let removed =
        mock!(aws_sdk_ecr::Client::batch_delete_image).then_output(|| BatchDeleteImageOutput::builder().build());
    let (marked, revoked, claimed, sent) = (scans_counted(&[ARM]), transaction_ok(), claim(), publish());
    let dynamodb: [&Rule; 4] = [&listed, &marked, &revoked, &claimed];
    let untagged = untagged_children();
    let gate = super::gate(&[&index, &amd, &arm, &tags, &untagged, &removed], &dynamodb, &[&sent], &[]);
    let mut event = child_scan_event(ARM);
    event["detail"]["finding-severity-counts"] = serde_json::json!({"CRITICAL": 1});
    let outcome = gate.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "demoted", "{:?}", outcome.reasons);
    assert_eq!((amd.num_calls(), arm.num_calls(), removed.num_calls()), (0, 1, 1), "only the failing image read");
}

/// Pushed before its platform images' scans exist: nothing to say yet (their scan events gate the index), as
/// for any image whose scan has not started.
#[tokio::test]
async fn an_index_pushed_before_its_platform_images_are_scanned_is_quiet() {
    let (index, registry, recorded) = (the_index(), basic_registry(), index_recorded());
    let counted = scans_counted(&[]);
    let no_scan = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .then_error(|| DescribeImageScanFindingsError::ScanNotFoundException(ScanNotFoundException::builder().build()));
    let (tags, put) = (index_tags(&["v1.5.0"]), promotes_the_index());
    let gate = gate(&[&index, &registry, &no_scan, &tags, &put], &[&recorded, &counted], &[], &[]);
    let outcome = gate.handle(push_event(), &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "skipped", "{:?}", outcome.reasons);
    assert_eq!((no_scan.num_calls(), put.num_calls(), counted.num_calls()), (2, 0, 0), "nothing scanned to count");
    assert!(!outcome.notified);
}

/// A platform image scanned before its index's push is handled is, for now, an image on its own: untagged, it
/// is not promoted, even where the promotion tag needs no tag of its own (`approved-{digest12}`).
#[tokio::test]
async fn an_untagged_platform_image_is_never_promoted_by_itself() {
    let (scan, untagged) = (child_scan(AMD, Some(vec![])), untagged_children());
    let put = mock!(aws_sdk_ecr::Client::put_image).then_output(|| PutImageOutput::builder().build());
    let gate = gate(&[&scan, &untagged, &put], &[], &[], &[]);
    let mut event = basic_scan(DEV, serde_json::json!({}), &[]);
    event["detail"]["image-digest"] = AMD.into();
    let outcome = gate.handle(event, &testing::invocation()).await.expect("handled");
    assert_eq!(outcome.decision, "not-promoted", "{:?}", outcome.reasons);
    assert!(outcome.reasons.iter().any(|r| r.contains("no tag of its own")), "{:?}", outcome.reasons);
    assert_eq!(put.num_calls(), 0);
    assert!(!outcome.notified);
}
