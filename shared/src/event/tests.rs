//! Tests of the event model: every sample in `events/` parses into the expected variant, every sample in
//! `events/invalid/` fails with an error that names the problem, hand-built edge cases, and property tests that
//! parsing never panics.

use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::LazyLock;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const PUSH_DIGEST: &str = "sha256:7a6a95028731dbae7ab5e36a95ae1087234d240b81be3464060d7314b4c74d26";
const MOVED_DIGEST: &str = "sha256:9879c546333f36f5d34063ebf385952ed69a10aac53e0e1c1da5066edd05012b";
const INSPECTOR_DIGEST: &str = "sha256:6acea1b877bac2682db3652df3de9bf1930e81c9ffc7265cae361458643f1143";
const INDEX_DIGEST: &str = "sha256:1f4410bb4cbb07b61025058849341a727251d8464be53f07448f4e96b732406d";
const FINDING_ARN: &str = "arn:aws:inspector2:us-east-1:123456789012:finding/34e7aab8022deac5555c573db78616aa";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("events")
}

fn read_sample(relative: &str) -> String {
    let path = events_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// File names (not paths) of the regular `*.json` files directly inside `dir`, sorted.
fn json_files_in(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.file_type().expect("file type").is_file())
        .map(|entry| entry.file_name().into_string().expect("UTF-8 file name"))
        .filter(|name| name.ends_with(".json"))
        .collect()
}

fn parse_ok(value: Value) -> Event {
    parse(value.clone()).unwrap_or_else(|e| panic!("should parse: {e}\n{value:#}"))
}

fn parse_err(value: Value) -> EventError {
    match parse(value.clone()) {
        Ok(event) => panic!("should fail, parsed as {}: {value:#}", event.kind.name()),
        Err(e) => e,
    }
}

/// The `(detail_type, path, message)` of a `Detail` error; panics on any other outcome.
fn detail_err(value: Value) -> (String, String, String) {
    match parse_err(value) {
        EventError::Detail { detail_type, path, message } => (detail_type, path, message),
        other => panic!("expected a Detail error, got {other:?}"),
    }
}

/// A well-formed envelope around `detail`.
fn envelope(source: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-11-20T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    })
}

fn image_action_detail() -> Value {
    json!({
        "result": "SUCCESS",
        "repository-name": "prod/payments-api",
        "image-digest": PUSH_DIGEST,
        "action-type": "PUSH",
        "image-tag": "v1.4.2",
        "manifest-media-type": OCI_MANIFEST,
    })
}

fn image_action_event(detail: Value) -> Value {
    envelope("aws.ecr", "ECR Image Action", detail)
}

fn rn(name: &str) -> RepositoryName {
    RepositoryName::from_name_or_arn(name).expect("valid repository name")
}

/// Borrows the detail of the expected `EventKind` variant, or fails with the variant actually found.
macro_rules! expect_kind {
    ($event:expr, $variant:ident) => {
        match &$event.kind {
            EventKind::$variant(detail) => detail,
            other => panic!("expected {}, got {}", stringify!($variant), other.name()),
        }
    };
}

// ---------------------------------------------------------------------------------------------------------------
// 1. every sample in events/
// ---------------------------------------------------------------------------------------------------------------

struct Sample {
    file: &'static str,
    kind: &'static str,
    repository: Option<&'static str>,
    check: fn(&Event),
}

const SAMPLES: &[Sample] = &[
    Sample {
        file: "cloudtrail-create-repository-failed.json",
        kind: "create-repository",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, CreateRepository);
            assert_eq!(d.error_code.as_deref(), Some("RepositoryAlreadyExistsException"));
            assert_eq!(d.call.error_code, d.error_code);
            assert!(d.call.error_message.as_deref().is_some_and(|m| m.contains("already exists")));
            // `responseElements: null` → no ARN, and no error either.
            assert_eq!(d.repository_arn, None);
            assert_eq!(d.call.response_elements, None);
        },
    },
    Sample {
        file: "cloudtrail-create-repository.json",
        kind: "create-repository",
        repository: Some("prod/billing-worker"),
        check: |e| {
            let d = expect_kind!(e, CreateRepository);
            assert_eq!(
                d.repository_arn.as_deref(),
                Some("arn:aws:ecr:us-east-1:123456789012:repository/prod/billing-worker")
            );
            assert_eq!(d.error_code, None);
            assert_eq!(d.call.event_name, "CreateRepository");
            assert_eq!(d.call.event_source, "ecr.amazonaws.com");
            assert_eq!(d.call.event_id.as_deref(), Some("90ca1cc2-760f-4a17-b8c6-be36eb23877f"));
            assert_eq!(d.call.event_time.as_deref(), Some("2026-11-20T10:50:01Z"));
            assert_eq!(d.call.aws_region.as_deref(), Some(REGION));
            assert!(
                d.call.principal().is_some_and(|p| p.ends_with("/jane.doe@example.com")),
                "{:?}",
                d.call.principal()
            );
        },
    },
    Sample {
        file: "cloudtrail-delete-repository.json",
        kind: "delete-repository",
        repository: Some("sandbox/experiments"),
        check: |e| {
            let d = expect_kind!(e, DeleteRepository);
            assert_eq!(d.error_code, None);
            assert_eq!(
                d.repository_arn.as_deref(),
                Some("arn:aws:ecr:us-east-1:123456789012:repository/sandbox/experiments")
            );
            let force = d.call.request_parameters.as_ref().and_then(|p| p.get("force")).and_then(Value::as_bool);
            assert_eq!(force, Some(true));
        },
    },
    Sample {
        file: "cloudtrail-lifecycle-policy-execution.json",
        kind: "lifecycle-policy-execution",
        repository: Some("dev/web-frontend"),
        check: |e| {
            let d = expect_kind!(e, LifecyclePolicyExecution);
            assert_eq!(d.event_time.as_deref(), Some("2026-11-20T04:17:08Z"));
            let policy = &d.service_event_details.lifecycle_event_policy;
            assert_eq!(policy.policy_id.as_deref(), Some("e611b4ab-11c2-4f86-a87d-e1d537bcc8f0"));
            assert_eq!(policy.policy_version, Some(3));
            assert_eq!(policy.last_evaluated_at, Some(0));
            assert_eq!(policy.lifecycle_event_rules.len(), 1);
            let rule = &policy.lifecycle_event_rules[0];
            assert_eq!(rule.rule_priority, 1);
            assert_eq!(rule.action, "expire");
            assert_eq!(rule.description.as_deref(), Some("Expire untagged images older than 14 days"));

            let actions = &d.service_event_details.lifecycle_event_image_actions;
            let pushed: Vec<Option<i64>> = actions.iter().map(|a| a.lifecycle_event_image.pushed_at).collect();
            assert_eq!(pushed, [Some(1_793_205_739_337), Some(1_793_606_871_902), Some(1_793_885_344_415)]);
            assert_eq!(
                actions[0].lifecycle_event_image.digest,
                "sha256:ae66ff0e3e3e775aa44b3346b99efccaeb37a84c606e70c341c26eb8d41b6872"
            );
            // `pushedAt` is epoch *milliseconds*: read that way, every image is older than the rule's 14 days.
            let ran_at = chrono::DateTime::parse_from_rfc3339("2026-11-20T04:17:08Z").expect("RFC 3339");
            for action in actions {
                assert_eq!(action.rule_priority, 1);
                assert_eq!(action.failure_code, None);
                let image = &action.lifecycle_event_image;
                assert_eq!(image.tag_status.as_deref(), Some("Untagged"));
                assert!(image.tag_list.is_empty());
                let pushed_at = chrono::DateTime::from_timestamp_millis(image.pushed_at.expect("pushedAt"))
                    .expect("representable timestamp");
                let age = ran_at.signed_duration_since(pushed_at);
                assert!(age > chrono::TimeDelta::days(14) && age < chrono::TimeDelta::days(60), "{age}");
            }
        },
    },
    Sample {
        file: "cloudtrail-put-image-tag-mutability.json",
        kind: "api-call",
        repository: None,
        check: |e| {
            let d = expect_kind!(e, OtherApiCall);
            assert_eq!(d.event_name, "PutImageTagMutability");
            let repo = d.request_parameters.as_ref().and_then(|p| p.get("repositoryName")).and_then(Value::as_str);
            assert_eq!(repo, Some("prod/payments-api"));
            assert_eq!(d.error_code, None);
        },
    },
    Sample {
        file: "ecr-image-archive.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::UpdateStorageClass);
            assert_eq!(d.target_storage_class.as_deref(), Some("ARCHIVE"));
            assert_eq!(d.image_tag, None);
            assert_eq!(d.last_activated_at, None);
            assert!(d.succeeded());
        },
    },
    Sample {
        file: "ecr-image-delete.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::Delete);
            assert_eq!(d.image_tag.as_deref(), Some("v1.4.2"));
            assert_eq!(d.image_digest, PUSH_DIGEST);
            assert_eq!(d.manifest_media_type, None);
            assert!(!d.is_index());
        },
    },
    Sample {
        file: "ecr-image-push-dev.json",
        kind: "image-action",
        repository: Some("dev/web-frontend"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::Push);
            assert_eq!(d.image_tag.as_deref(), Some("pr-1284"));
            assert_eq!(d.manifest_media_type.as_deref(), Some(DOCKER_MANIFEST));
            assert!(!d.is_index());
        },
    },
    Sample {
        file: "ecr-image-push-digest-only.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::Push);
            assert_eq!(d.image_tag, None);
            assert_eq!(d.image_digest, "sha256:e1fac422150abc9abcef2f6f1f81f46472459aecd33598513ef00dd3052bd0ec");
            assert!(d.succeeded());
        },
    },
    Sample {
        file: "ecr-image-push-failed.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::Push);
            assert_eq!(d.result, "FAILURE");
            assert!(!d.succeeded());
            assert_eq!(d.image_tag.as_deref(), Some("v1.4.3"));
        },
    },
    Sample {
        file: "ecr-image-push-index.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert!(d.is_index());
            assert_eq!(d.manifest_media_type.as_deref(), Some(OCI_INDEX));
            assert_eq!(d.artifact_media_type, None);
            assert_eq!(d.image_tag.as_deref(), Some("v1.5.0"));
            assert_eq!(d.image_digest, INDEX_DIGEST);
        },
    },
    Sample {
        file: "ecr-image-push-nonconforming.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::Push);
            assert_eq!(d.image_tag.as_deref(), Some("feature-login-fix"));
        },
    },
    Sample {
        file: "ecr-image-push-protected-move.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.image_tag.as_deref(), Some("v1.4.2"));
            assert_eq!(d.image_digest, MOVED_DIGEST);
            assert_ne!(d.image_digest, PUSH_DIGEST);
        },
    },
    Sample {
        file: "ecr-image-push.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            assert_eq!(e.id, "f204d013-b16c-4f1d-81cf-67fd84cd2d9f");
            assert_eq!(e.time.as_deref(), Some("2026-11-20T09:12:04Z"));
            assert!(e.resources.is_empty());
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::Push);
            assert_eq!(d.action_type.as_str(), "PUSH");
            assert_eq!(d.result, "SUCCESS");
            assert!(d.succeeded());
            assert_eq!(d.image_tag.as_deref(), Some("v1.4.2"));
            assert_eq!(d.image_digest, PUSH_DIGEST);
            assert_eq!(d.manifest_media_type.as_deref(), Some(OCI_MANIFEST));
            assert_eq!(d.artifact_media_type.as_deref(), Some("application/vnd.oci.image.config.v1+json"));
            assert!(!d.is_index());
            assert_eq!(d.target_storage_class, None);
        },
    },
    Sample {
        file: "ecr-image-restore.json",
        kind: "image-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ImageAction);
            assert_eq!(d.action_type, ImageActionType::UpdateStorageClass);
            assert_eq!(d.target_storage_class.as_deref(), Some("STANDARD"));
            // Two fractional digits; kept verbatim.
            assert_eq!(d.last_activated_at.as_deref(), Some("2026-11-20T10:20:02.74Z"));
        },
    },
    Sample {
        file: "ecr-referrer-restore.json",
        kind: "referrer-action",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, ReferrerAction);
            assert_eq!(d.action_type, ImageActionType::UpdateStorageClass);
            assert_eq!(d.artifact_media_type.as_deref(), Some("text/sbom+json"));
            assert_eq!(d.target_storage_class.as_deref(), Some("STANDARD"));
            assert_eq!(d.last_activated_at.as_deref(), Some("2026-11-20T10:21:36.18Z"));
        },
    },
    Sample {
        file: "ecr-image-scan-clean.json",
        kind: "basic-scan",
        repository: Some("dev/web-frontend"),
        check: |e| {
            let d = expect_kind!(e, BasicScan);
            assert_eq!(d.scan_status, "COMPLETE");
            assert_eq!(d.image_tags, ["pr-1283"]);
            assert_eq!(d.finding_severity_counts, SeverityCounts::default());
            for severity in ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"] {
                assert_eq!(d.finding_severity_counts.get(severity), 0, "{severity}");
            }
        },
    },
    Sample {
        file: "ecr-image-scan-failed.json",
        kind: "basic-scan",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, BasicScan);
            assert_eq!(d.scan_status, "FAILED");
            assert!(d.image_tags.is_empty());
            assert!(d.finding_severity_counts.0.is_empty());
            assert_eq!(
                d.image_digest.as_deref(),
                Some("sha256:c39f9725e24b1060ca308290dbb40a288d78ee8ff994e5d6479324951d3426cc")
            );
        },
    },
    Sample {
        file: "ecr-image-scan.json",
        kind: "basic-scan",
        repository: Some("prod/payments-api"),
        check: |e| {
            assert_eq!(e.resources, ["arn:aws:ecr:us-east-1:123456789012:repository/prod/payments-api"]);
            let d = expect_kind!(e, BasicScan);
            assert_eq!(d.scan_status, "COMPLETE");
            assert_eq!(d.image_digest.as_deref(), Some(PUSH_DIGEST));
            assert_eq!(d.image_tags, ["v1.4.2"]);
            let counts = &d.finding_severity_counts;
            assert_eq!(
                [counts.get("CRITICAL"), counts.get("HIGH"), counts.get("MEDIUM"), counts.get("LOW")],
                [1, 3, 7, 2]
            );
            assert_eq!(counts.get("INFORMATIONAL"), 0);
            assert_eq!(counts.get("UNDEFINED"), 0);
        },
    },
    Sample {
        file: "ecr-scan-resource-change.json",
        kind: "scan-resource-change",
        repository: None,
        check: |e| {
            let d = expect_kind!(e, ScanResourceChange);
            assert_eq!(d.action_type, "SCAN_FREQUENCY_CHANGE");
            assert_eq!(d.resource_type.as_deref(), Some("REPOSITORY"));
            assert_eq!(d.scan_type.as_deref(), Some("ENHANCED"));
            let names: Vec<&str> = d.repositories.iter().map(|r| r.repository_name.as_str()).collect();
            assert_eq!(names, ["prod/payments-api", "dev/web-frontend"]);
            let first = &d.repositories[0];
            assert_eq!(first.scan_frequency.as_deref(), Some("CONTINUOUS_SCAN"));
            assert_eq!(first.previous_scan_frequency.as_deref(), Some("MANUAL"));
            assert_eq!(
                first.repository_arn.as_deref(),
                Some("arn:aws:ecr:us-east-1:123456789012:repository/prod/payments-api")
            );
            assert_eq!(d.repositories[1].scan_frequency.as_deref(), Some("SCAN_ON_PUSH"));
        },
    },
    Sample {
        file: "ecr-replication-success.json",
        kind: "replication",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, Replication);
            assert_eq!(d.action_type, "REPLICATE");
            assert_eq!(d.result, "SUCCESS");
            assert_eq!(d.source_region.as_deref(), Some("eu-west-1"));
            assert_eq!(d.source_account.as_deref(), Some(ACCOUNT));
            assert_eq!(d.image_tag.as_deref(), Some("v1.4.1"));
            // The envelope region is the destination.
            assert_eq!(e.region.as_deref(), Some(REGION));
        },
    },
    Sample {
        file: "ecr-replication-failed.json",
        kind: "replication",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, Replication);
            assert_eq!(d.result, "FAILED");
            assert_eq!(d.image_tag.as_deref(), Some("sha-9b31d7e"));
        },
    },
    Sample {
        file: "ecr-pull-through-cache-success.json",
        kind: "pull-through-cache",
        repository: Some("ecr-public/library/nginx"),
        check: |e| {
            let d = expect_kind!(e, PullThroughCache);
            assert_eq!(d.sync_status, "SUCCESS");
            assert_eq!(d.ecr_repository_prefix.as_deref(), Some("ecr-public"));
            assert_eq!(d.upstream_registry_url.as_deref(), Some("public.ecr.aws"));
            assert_eq!(d.image_tag.as_deref(), Some("1.27.3"));
            assert_eq!(d.rule_version.as_deref(), Some("1"));
            assert_eq!(d.failure_code, None);
            assert_eq!(d.failure_reason, None);
        },
    },
    Sample {
        file: "ecr-pull-through-cache-failed.json",
        kind: "pull-through-cache",
        repository: Some("ecr-public/library/nginx"),
        check: |e| {
            let d = expect_kind!(e, PullThroughCache);
            assert_eq!(d.sync_status, "FAILED");
            assert_eq!(d.failure_code.as_deref(), Some("UPSTREAM_UNAVAILABLE"));
            assert!(d.failure_reason.as_deref().is_some_and(|r| r.contains("timed out")));
        },
    },
    Sample {
        file: "inspector2-coverage.json",
        kind: "inspector-coverage",
        repository: None,
        check: |e| {
            let d = expect_kind!(e, InspectorCoverage);
            assert_eq!(d.scan_status.status_code_value, "INACTIVE");
            assert_eq!(d.scan_status.reason, "SCAN_ELIGIBILITY_EXPIRED");
            assert_eq!(d.scan_type.as_deref(), Some("PACKAGE"));
            assert_eq!(d.event_timestamp.as_deref(), Some("2026-11-20T10:40:11.123456Z"));
            assert_eq!(d.version.as_deref(), Some("1.0"));
        },
    },
    Sample {
        file: "inspector2-finding-closed.json",
        kind: "inspector-finding",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, InspectorFinding);
            assert_eq!(d.status, "CLOSED");
            assert_eq!(d.finding_arn, FINDING_ARN);
            assert_eq!(d.updated_at.as_deref(), Some("Mon Nov 23 08:05:44.917 UTC 2026"));
            assert_eq!(d.ecr_image().map(|i| i.image_hash.as_str()), Some(INSPECTOR_DIGEST));
        },
    },
    Sample {
        file: "inspector2-finding-ec2.json",
        kind: "inspector-finding",
        repository: None,
        check: |e| {
            let d = expect_kind!(e, InspectorFinding);
            assert!(d.ecr_image().is_none());
            assert_eq!(d.severity, "MEDIUM");
            assert_eq!(d.status, "ACTIVE");
            assert_eq!(d.resources.len(), 1);
            assert_eq!(d.resources[0].resource_type, "AWS_EC2_INSTANCE");
            assert_eq!(d.resources[0].id, "i-0a7f3c9e2b51d4e86");
            // EC2 details are not modelled; they must not be mistaken for an ECR image.
            assert!(d.resources[0].details.as_ref().is_some_and(|x| x.aws_ecr_container_image.is_none()));
        },
    },
    Sample {
        file: "inspector2-finding.json",
        kind: "inspector-finding",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, InspectorFinding);
            assert_eq!(d.finding_arn, FINDING_ARN);
            assert_eq!(d.finding_type, "PACKAGE_VULNERABILITY");
            assert_eq!(d.severity, "HIGH");
            assert_eq!(d.status, "ACTIVE");
            assert_eq!(d.aws_account_id.as_deref(), Some(ACCOUNT));
            assert_eq!(d.fix_available.as_deref(), Some("YES"));
            assert_eq!(d.exploit_available.as_deref(), Some("NO"));
            assert_eq!(d.inspector_score, Some(7.5));
            assert_eq!(d.epss.as_ref().map(|x| x.score), Some(0.0213));
            // Non-RFC-3339 timestamps stay verbatim.
            assert_eq!(d.first_observed_at.as_deref(), Some("Fri Nov 20 10:30:12.118 UTC 2026"));
            let vuln = d.package_vulnerability_details.as_ref().expect("package details");
            assert_eq!(vuln.vulnerability_id, "CVE-2026-31337");
            assert_eq!(vuln.vendor_severity.as_deref(), Some("HIGH"));
            assert_eq!(vuln.reference_urls.len(), 2);
            assert_eq!(vuln.vulnerable_packages.len(), 1);
            let package = &vuln.vulnerable_packages[0];
            assert_eq!(package.name, "openssl");
            assert_eq!(package.version.as_deref(), Some("3.0.13"));
            assert_eq!(package.fixed_in_version.as_deref(), Some("3.0.15"));
            assert_eq!(package.package_manager.as_deref(), Some("OS"));
            let image = d.ecr_image().expect("ECR image");
            assert_eq!(image.image_hash, INSPECTOR_DIGEST);
            assert_eq!(image.image_tags, ["v1.5.0"]);
            assert_eq!(image.in_use_count, Some(3));
            assert_eq!(image.registry.as_deref(), Some(ACCOUNT));
            assert_eq!(image.pushed_at.as_deref(), Some("Fri Nov 20 10:15:30.000 UTC 2026"));
        },
    },
    Sample {
        file: "inspector2-scan.json",
        kind: "inspector-scan",
        repository: Some("prod/payments-api"),
        check: |e| {
            let d = expect_kind!(e, InspectorScan);
            assert_eq!(d.scan_status, "INITIAL_SCAN_COMPLETE");
            // Normalised from `arn:aws:ecr:us-east-1:123456789012:repository/prod/payments-api`.
            assert_eq!(d.repository_name.as_str(), "prod/payments-api");
            assert_eq!(d.image_digest.as_deref(), Some(INSPECTOR_DIGEST));
            assert_eq!(d.image_tags, ["v1.5.0"]);
            assert_eq!(d.version.as_deref(), Some("1.0"));
            let counts = &d.finding_severity_counts;
            assert_eq!([counts.get("CRITICAL"), counts.get("HIGH"), counts.get("MEDIUM")], [0, 2, 5]);
            // Missing keys read as zero.
            assert_eq!([counts.get("LOW"), counts.get("INFORMATIONAL"), counts.get("UNTRIAGED")], [0, 0, 0]);
            // TOTAL is kept as reported, not recomputed (it exceeds the sum of the listed keys).
            assert_eq!(counts.get("TOTAL"), 9);
            let listed: u64 = counts.0.iter().filter(|(k, _)| k.as_str() != "TOTAL").map(|(_, v)| v).sum();
            assert_eq!(listed, 7);
        },
    },
    Sample {
        file: "other-source.json",
        kind: "unsupported",
        repository: None,
        check: |e| {
            assert_eq!(e.source, "aws.s3");
            assert_eq!(e.detail_type, "Object Created");
            assert_eq!(e.resources, ["arn:aws:s3:::ecr-warden-reports-123456789012"]);
        },
    },
    Sample {
        file: "scheduled-rule.json",
        kind: "scheduled",
        repository: None,
        check: |e| {
            let d = expect_kind!(e, Scheduled);
            assert_eq!(e.source, "aws.events");
            assert_eq!(
                d.schedule_arn.as_deref(),
                Some("arn:aws:events:us-east-1:123456789012:rule/ecr-warden-tag-guard-sweep")
            );
            assert!(d.repositories.is_empty());
        },
    },
    Sample {
        file: "scheduler-repositories.json",
        kind: "scheduled",
        repository: None,
        check: |e| {
            let d = expect_kind!(e, Scheduled);
            assert_eq!(d.repositories, ["prod/payments-api"]);
            assert_eq!(
                d.schedule_arn.as_deref(),
                Some("arn:aws:events:us-east-1:123456789012:rule/ecr-warden-sweep-prod-payments-api")
            );
        },
    },
    Sample {
        file: "scheduler.json",
        kind: "scheduled",
        repository: None,
        check: |e| {
            // `detail` is the JSON *string* "{}".
            let d = expect_kind!(e, Scheduled);
            assert_eq!(e.source, "aws.scheduler");
            assert_eq!(
                d.schedule_arn.as_deref(),
                Some("arn:aws:scheduler:us-east-1:123456789012:schedule/default/ecr-warden-sweep")
            );
            assert!(d.repositories.is_empty());
        },
    },
    Sample {
        file: "unknown-detail-type.json",
        kind: "unsupported",
        repository: None,
        check: |e| {
            assert_eq!(e.source, "aws.ecr");
            assert_eq!(e.detail_type, "ECR Artifact Action");
        },
    },
];

#[test]
fn every_sample_parses_into_the_expected_kind() {
    for sample in SAMPLES {
        let text = read_sample(sample.file);
        let event = parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", sample.file));
        assert_eq!(event.kind.name(), sample.kind, "{}: kind", sample.file);
        assert_eq!(
            event.kind.repository().map(RepositoryName::as_str),
            sample.repository,
            "{}: repository",
            sample.file
        );

        // Envelope fields: every sample uses the same account and region (events/README.md).
        let raw: Value = serde_json::from_str(&text).expect("sample is JSON");
        assert_eq!(Some(event.id.as_str()), raw["id"].as_str(), "{}: id", sample.file);
        assert_eq!(Some(event.source.as_str()), raw["source"].as_str(), "{}: source", sample.file);
        assert_eq!(Some(event.detail_type.as_str()), raw["detail-type"].as_str(), "{}: detail-type", sample.file);
        assert_eq!(event.time.as_deref(), raw["time"].as_str(), "{}: time", sample.file);
        assert_eq!(event.account.as_deref(), Some(ACCOUNT), "{}: account", sample.file);
        assert_eq!(event.region.as_deref(), Some(REGION), "{}: region", sample.file);

        // `parse` on a decoded value gives the same result as `parse_str` on the text.
        let from_value = parse(raw).unwrap_or_else(|e| panic!("{}: {e}", sample.file));
        assert_eq!(format!("{from_value:?}"), format!("{event:?}"), "{}: parse vs parse_str", sample.file);

        (sample.check)(&event);
    }
}

#[test]
fn sample_table_covers_every_file_in_events_dir() {
    let on_disk = json_files_in(&events_dir());
    let in_table: BTreeSet<String> = SAMPLES.iter().map(|s| s.file.to_owned()).collect();
    assert_eq!(in_table.len(), SAMPLES.len(), "duplicate rows in SAMPLES");
    let missing: Vec<&String> = on_disk.difference(&in_table).collect();
    let stale: Vec<&String> = in_table.difference(&on_disk).collect();
    assert!(missing.is_empty(), "samples without a row in SAMPLES: {missing:?}");
    assert!(stale.is_empty(), "rows in SAMPLES without a file: {stale:?}");
    assert_eq!(on_disk.len(), 34);
}

#[test]
fn samples_cover_every_event_kind() {
    let names: BTreeSet<&str> = SAMPLES.iter().map(|s| s.kind).collect();
    let all = [
        "image-action",
        "referrer-action",
        "basic-scan",
        "scan-resource-change",
        "replication",
        "pull-through-cache",
        "inspector-scan",
        "inspector-finding",
        "inspector-coverage",
        "create-repository",
        "delete-repository",
        "api-call",
        "lifecycle-policy-execution",
        "scheduled",
        "unsupported",
    ];
    assert_eq!(names, all.into_iter().collect::<BTreeSet<_>>());
}

// ---------------------------------------------------------------------------------------------------------------
// 2. every sample in events/invalid/
// ---------------------------------------------------------------------------------------------------------------

const INVALID: &[&str] = &[
    "ecr-image-push-missing-repository.json",
    "inspector2-scan-bad-repository-arn.json",
    "missing-detail-type.json",
    "not-json.json",
];

fn parse_invalid(file: &str) -> EventError {
    match parse_str(&read_sample(&format!("invalid/{file}"))) {
        Ok(event) => panic!("invalid/{file} parsed as {}", event.kind.name()),
        Err(e) => e,
    }
}

#[test]
fn invalid_table_covers_every_file_in_invalid_dir() {
    let on_disk = json_files_in(&events_dir().join("invalid"));
    let in_table: BTreeSet<String> = INVALID.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(on_disk, in_table);
}

#[test]
fn invalid_not_json_is_a_json_error() {
    let err = parse_invalid("not-json.json");
    let EventError::Json(message) = &err else { panic!("expected Json error, got {err:?}") };
    assert!(!message.is_empty());
    assert!(err.to_string().starts_with("event is not valid JSON: "), "{err}");
}

#[test]
fn invalid_missing_detail_type_is_an_envelope_error() {
    let err = parse_invalid("missing-detail-type.json");
    let EventError::Envelope(message) = &err else { panic!("expected Envelope error, got {err:?}") };
    assert!(message.contains("`detail-type`"), "{message}");
    assert!(err.to_string().contains("not an EventBridge event"), "{err}");
}

#[test]
fn invalid_missing_repository_is_a_detail_error() {
    let err = parse_invalid("ecr-image-push-missing-repository.json");
    let EventError::Detail { detail_type, path, message } = &err else { panic!("expected Detail error, got {err:?}") };
    assert_eq!(detail_type, "ECR Image Action");
    assert_eq!(path, "detail");
    assert!(message.contains("`repository-name`"), "{message}");
    let text = err.to_string();
    assert!(text.contains("ECR Image Action") && text.contains("repository-name"), "{text}");
}

#[test]
fn invalid_repository_arn_is_a_detail_error_naming_the_field() {
    let err = parse_invalid("inspector2-scan-bad-repository-arn.json");
    let EventError::Detail { detail_type, path, message } = &err else { panic!("expected Detail error, got {err:?}") };
    assert_eq!(detail_type, "Inspector2 Scan");
    assert_eq!(path, "detail.repository-name");
    assert!(message.contains("not an ECR repository ARN"), "{message}");
    assert!(message.contains("arn:aws:ecr:us-east-1:123456789012:registry/foo"), "{message}");
    let text = err.to_string();
    assert!(text.contains("detail.repository-name") && text.contains("Inspector2 Scan"), "{text}");
}

// ---------------------------------------------------------------------------------------------------------------
// 3. edge cases
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn unknown_fields_are_ignored() {
    let mut value: Value = serde_json::from_str(&read_sample("ecr-image-push.json")).expect("JSON");
    let plain = format!("{:?}", parse_ok(value.clone()));
    // The Inspector guide's sample carries this literal top-level key.
    value["detail.resources.tags.testkey"] = json!("testvalue");
    value["detail"]["future-field"] = json!({"nested": [1, 2, 3]});
    value["detail"]["image-tags"] = json!(["also", "unknown"]);
    assert_eq!(format!("{:?}", parse_ok(value)), plain);

    let mut finding: Value = serde_json::from_str(&read_sample("inspector2-finding.json")).expect("JSON");
    finding["detail.resources.tags.testkey"] = json!("testvalue");
    finding["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["newField"] = json!(true);
    finding["detail"]["brandNewBlock"] = json!({"a": null});
    let event = parse_ok(finding);
    assert_eq!(event.kind.repository().map(RepositoryName::as_str), Some("prod/payments-api"));
}

#[test]
fn impossible_envelope_time_still_parses() {
    // AWS's own pull-through-cache sample carries 2023-02-29.
    let mut value = envelope(
        "aws.ecr",
        "ECR Pull Through Cache Action",
        json!({"sync-status": "SUCCESS", "repository-name": "ecr-public/library/nginx", "rule-version": "1"}),
    );
    value["time"] = json!("2023-02-29T13:12:08Z");
    let event = parse_ok(value.clone());
    assert_eq!(event.time.as_deref(), Some("2023-02-29T13:12:08Z"));
    assert_eq!(event.kind.name(), "pull-through-cache");

    // Garbage and missing times too.
    value["time"] = json!("yesterday");
    assert_eq!(parse_ok(value.clone()).time.as_deref(), Some("yesterday"));
    value.as_object_mut().expect("object").remove("time");
    assert_eq!(parse_ok(value).time, None);
}

#[test]
fn optional_envelope_fields_may_be_missing() {
    let mut value = image_action_event(image_action_detail());
    let object = value.as_object_mut().expect("object");
    for key in ["version", "account", "region", "time", "resources"] {
        object.remove(key);
    }
    let event = parse_ok(value);
    assert_eq!((event.account, event.region, event.time), (None, None, None));
    assert!(event.resources.is_empty());
    assert_eq!(event.kind.name(), "image-action");
}

#[test]
fn unexpected_envelope_version_is_parsed_anyway() {
    let mut value = image_action_event(image_action_detail());
    value["version"] = json!("1");
    assert_eq!(parse_ok(value).kind.name(), "image-action");
}

#[test]
fn missing_required_envelope_fields_are_envelope_errors() {
    for key in ["id", "source", "detail-type"] {
        let mut value = image_action_event(image_action_detail());
        value.as_object_mut().expect("object").remove(key);
        match parse_err(value) {
            EventError::Envelope(message) => assert!(message.contains(&format!("`{key}`")), "{key}: {message}"),
            other => panic!("{key}: expected Envelope error, got {other:?}"),
        }
    }
    // Not an object at all.
    for value in [json!(null), json!([]), json!("event"), json!(42)] {
        assert!(matches!(parse(value.clone()), Err(EventError::Envelope(_))), "{value}");
    }
    // Wrong type in the envelope names the field.
    let mut value = image_action_event(image_action_detail());
    value["resources"] = json!("arn:aws:ecr:us-east-1:123456789012:repository/prod/payments-api");
    match parse_err(value) {
        EventError::Envelope(message) => assert!(message.starts_with("resources"), "{message}"),
        other => panic!("expected Envelope error, got {other:?}"),
    }
}

#[test]
fn unknown_action_type_is_kept_as_other() {
    let mut detail = image_action_detail();
    detail["action-type"] = json!("COPY");
    let event = parse_ok(image_action_event(detail));
    let d = expect_kind!(event, ImageAction);
    assert_eq!(d.action_type, ImageActionType::Other("COPY".to_owned()));
    assert_eq!(d.action_type.as_str(), "COPY");
    assert_eq!(String::from(d.action_type.clone()), "COPY");

    // Case matters: AWS spells these in upper case.
    assert_eq!(ImageActionType::from("push".to_owned()), ImageActionType::Other("push".to_owned()));
    for (text, expected) in [
        ("PUSH", ImageActionType::Push),
        ("DELETE", ImageActionType::Delete),
        ("UPDATE_STORAGE_CLASS", ImageActionType::UpdateStorageClass),
    ] {
        assert_eq!(ImageActionType::from(text.to_owned()), expected);
        assert_eq!(expected.as_str(), text);
    }
}

#[test]
fn empty_or_missing_severity_counts_read_as_zero() {
    let scan = |counts: Option<Value>| {
        let mut detail = json!({"scan-status": "COMPLETE", "repository-name": "prod/payments-api"});
        if let Some(counts) = counts {
            detail["finding-severity-counts"] = counts;
        }
        let event = parse_ok(envelope("aws.ecr", "ECR Image Scan", detail));
        expect_kind!(event, BasicScan).finding_severity_counts.clone()
    };
    for counts in [scan(Some(json!({}))), scan(None)] {
        assert_eq!(counts, SeverityCounts::default());
        for severity in ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED", "TOTAL"] {
            assert_eq!(counts.get(severity), 0, "{severity}");
        }
    }
    // Present zeros and unknown severities are kept as given.
    let counts = scan(Some(json!({"CRITICAL": 0, "UNTRIAGED": 4})));
    assert_eq!((counts.get("CRITICAL"), counts.get("UNTRIAGED"), counts.get("HIGH")), (0, 4, 0));

    // A negative count is a Detail error naming the key.
    let (_, path, _) = detail_err(envelope(
        "aws.ecr",
        "ECR Image Scan",
        json!({"scan-status": "COMPLETE", "repository-name": "r", "finding-severity-counts": {"HIGH": -1}}),
    ));
    assert_eq!(path, "detail.finding-severity-counts.HIGH");
}

fn finding_detail(resources: Value) -> Value {
    json!({
        "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/0001",
        "type": "PACKAGE_VULNERABILITY",
        "severity": "LOW",
        "status": "ACTIVE",
        "resources": resources,
    })
}

#[test]
fn inspector_finding_for_ec2_has_no_ecr_image() {
    let ec2 = json!({
        "type": "AWS_EC2_INSTANCE",
        "id": "i-0123456789abcdef0",
        "details": {"awsEc2Instance": {"imageId": "ami-0123"}},
    });
    let event = parse_ok(envelope("aws.inspector2", "Inspector2 Finding", finding_detail(json!([ec2.clone()]))));
    let d = expect_kind!(event, InspectorFinding);
    assert!(d.ecr_image().is_none());
    assert!(event.kind.repository().is_none());

    // Lambda without details, an ECR resource without details: still no image.
    let bare = json!([{"type": "AWS_LAMBDA_FUNCTION", "id": "fn"}, {"type": "AWS_ECR_CONTAINER_IMAGE", "id": "img"}]);
    let event = parse_ok(envelope("aws.inspector2", "Inspector2 Finding", finding_detail(bare)));
    assert!(event.kind.repository().is_none());

    // An ECR image listed after an EC2 instance is still found, and its repository name is normalised.
    let ecr = json!({
        "type": "AWS_ECR_CONTAINER_IMAGE",
        "id": "arn:aws:ecr:us-east-1:123456789012:repository/team/app/sha256:00",
        "details": {"awsEcrContainerImage": {
            "repositoryName": "arn:aws:ecr:us-east-1:123456789012:repository/team/app",
            "imageHash": "sha256:00",
        }},
    });
    let event = parse_ok(envelope("aws.inspector2", "Inspector2 Finding", finding_detail(json!([ec2, ecr]))));
    let d = expect_kind!(event, InspectorFinding);
    assert_eq!(d.ecr_image().map(|i| i.image_hash.as_str()), Some("sha256:00"));
    assert_eq!(event.kind.repository(), Some(&rn("team/app")));

    // Image details under a non-ECR resource type are not taken for an ECR image.
    let mislabelled = json!([{
        "type": "AWS_EC2_INSTANCE",
        "id": "i-1",
        "details": {"awsEcrContainerImage": {"repositoryName": "team/app", "imageHash": "sha256:00"}},
    }]);
    let event = parse_ok(envelope("aws.inspector2", "Inspector2 Finding", finding_detail(mislabelled)));
    assert!(event.kind.repository().is_none());
}

#[test]
fn result_other_than_success_is_not_a_success() {
    for (result, expected) in
        [("SUCCESS", true), ("FAILURE", false), ("FAILED", false), ("success", false), ("", false)]
    {
        let mut detail = image_action_detail();
        detail["result"] = json!(result);
        let event = parse_ok(image_action_event(detail));
        assert_eq!(expect_kind!(event, ImageAction).succeeded(), expected, "{result:?}");
    }
}

#[test]
fn index_media_types_are_indexes() {
    for (media_type, expected) in [
        (Some(OCI_INDEX), true),
        (Some(DOCKER_MANIFEST_LIST), true),
        (Some(OCI_MANIFEST), false),
        (Some(DOCKER_MANIFEST), false),
        (Some("application/vnd.oci.image.index.v1+json; charset=utf-8"), false),
        (None, false),
    ] {
        let mut detail = image_action_detail();
        match media_type {
            Some(m) => detail["manifest-media-type"] = json!(m),
            None => {
                detail.as_object_mut().expect("object").remove("manifest-media-type");
            }
        }
        let event = parse_ok(image_action_event(detail));
        assert_eq!(expect_kind!(event, ImageAction).is_index(), expected, "{media_type:?}");
    }
}

#[test]
fn repository_name_from_name_or_arn() {
    let ok = [
        ("payments-api", "payments-api"),
        ("prod/payments-api", "prod/payments-api"),
        ("ecr-public/library/nginx", "ecr-public/library/nginx"),
        ("arn:aws:ecr:us-east-1:123456789012:repository/prod/payments-api", "prod/payments-api"),
        ("arn:aws:ecr:eu-west-1:123456789012:repository/app", "app"),
        ("arn:aws-cn:ecr:cn-north-1:123456789012:repository/team/app", "team/app"),
    ];
    for (input, expected) in ok {
        let name = RepositoryName::from_name_or_arn(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(name.as_str(), expected, "{input}");
        assert_eq!(name.to_string(), expected, "{input}: Display");
        assert_eq!(serde_json::to_value(&name).expect("serialize"), json!(expected), "{input}: Serialize");
    }

    let err = [
        ("arn:aws:ecr:us-east-1:123456789012:registry/foo", "not an ECR repository ARN"),
        ("arn:aws:ecr:us-east-1:123456789012:repository/", "not an ECR repository ARN"),
        ("arn:aws:s3:::bucket", "not an ECR repository ARN"),
        ("arn:", "not an ECR repository ARN"),
        ("", "empty"),
    ];
    for (input, fragment) in err {
        let message = RepositoryName::from_name_or_arn(input).expect_err(input);
        assert!(message.contains(fragment), "{input}: {message}");
    }

    // Deserialising goes through the same normalisation.
    let name: RepositoryName =
        serde_json::from_value(json!("arn:aws:ecr:us-east-1:123456789012:repository/prod/payments-api"))
            .expect("repository ARN");
    assert_eq!(name, rn("prod/payments-api"));
    assert!(serde_json::from_value::<RepositoryName>(json!("")).is_err());
    assert!(serde_json::from_value::<RepositoryName>(json!(7)).is_err());
}

#[test]
fn wrong_json_type_is_a_detail_error_with_the_path() {
    let mut detail = image_action_detail();
    detail["image-digest"] = json!(42);
    let (detail_type, path, message) = detail_err(image_action_event(detail));
    assert_eq!(detail_type, "ECR Image Action");
    assert_eq!(path, "detail.image-digest");
    assert!(message.contains("integer `42`"), "{message}");

    let mut detail = image_action_detail();
    detail["repository-name"] = json!(42);
    let (_, path, _) = detail_err(image_action_event(detail));
    assert_eq!(path, "detail.repository-name");

    // Nested paths keep array indices.
    let detail = json!({
        "action-type": "SCAN_FREQUENCY_CHANGE",
        "repositories": [{"repository-name": "a"}, {"repository-name": 7}],
    });
    let (detail_type, path, _) = detail_err(envelope("aws.ecr", "ECR Scan Resource Change", detail));
    assert_eq!(detail_type, "ECR Scan Resource Change");
    assert_eq!(path, "detail.repositories[1].repository-name");

    let mut finding: Value = serde_json::from_str(&read_sample("inspector2-finding.json")).expect("JSON");
    finding["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["imageHash"] = json!(["sha256:00"]);
    let (detail_type, path, _) = detail_err(finding);
    assert_eq!(detail_type, "Inspector2 Finding");
    assert_eq!(path, "detail.resources[0].details.awsEcrContainerImage.imageHash");

    let mut lifecycle: Value =
        serde_json::from_str(&read_sample("cloudtrail-lifecycle-policy-execution.json")).expect("JSON");
    lifecycle["detail"]["serviceEventDetails"]["lifecycleEventImageActions"][2]["lifecycleEventImage"]["pushedAt"] =
        json!("1793885344415");
    let (_, path, _) = detail_err(lifecycle);
    assert_eq!(path, "detail.serviceEventDetails.lifecycleEventImageActions[2].lifecycleEventImage.pushedAt");
}

#[test]
fn missing_detail_fails_for_image_action_but_not_for_scheduled_event() {
    let mut value = image_action_event(json!(null));
    value.as_object_mut().expect("object").remove("detail");
    let (detail_type, path, _) = detail_err(value.clone());
    assert_eq!((detail_type.as_str(), path.as_str()), ("ECR Image Action", "detail"));
    value["detail"] = json!(null);
    assert!(matches!(parse(value), Err(EventError::Detail { .. })));

    for source in ["aws.events", "aws.scheduler"] {
        let mut value = envelope(source, "Scheduled Event", json!(null));
        value["resources"] = json!(["arn:aws:events:us-east-1:123456789012:rule/sweep"]);
        for detail in [None, Some(json!(null)), Some(json!({})), Some(json!("{}")), Some(json!("")), Some(json!("  "))]
        {
            match &detail {
                Some(d) => value["detail"] = d.clone(),
                None => {
                    value.as_object_mut().expect("object").remove("detail");
                }
            }
            let event = parse_ok(value.clone());
            let sweep = expect_kind!(event, Scheduled);
            assert_eq!(sweep.repositories, Vec::<String>::new(), "{source} {detail:?}");
            assert_eq!(sweep.schedule_arn.as_deref(), Some("arn:aws:events:us-east-1:123456789012:rule/sweep"));
        }
    }
}

#[test]
fn scheduled_event_detail_variants() {
    // Scheduler's string detail may carry repositories too.
    let event = parse_ok(envelope("aws.scheduler", "Scheduled Event", json!(r#"{"repositories": ["a/b", "c"]}"#)));
    assert_eq!(expect_kind!(event, Scheduled).repositories, ["a/b", "c"]);
    // No resources → no schedule ARN.
    assert_eq!(expect_kind!(event, Scheduled).schedule_arn, None);

    // A string detail that is not JSON, or repositories of the wrong type, is a Detail error.
    let (detail_type, path, _) = detail_err(envelope("aws.events", "Scheduled Event", json!("not json")));
    assert_eq!((detail_type.as_str(), path.as_str()), ("Scheduled Event", "detail"));
    let (_, path, _) = detail_err(envelope("aws.events", "Scheduled Event", json!({"repositories": "a/b"})));
    assert_eq!(path, "detail.repositories");

    // Only the two scheduling sources count as a sweep.
    let event = parse_ok(envelope("aws.ecr", "Scheduled Event", json!({})));
    assert_eq!(event.kind.name(), "unsupported");
}

#[test]
fn dispatch_needs_both_source_and_detail_type() {
    // An Inspector detail type from the ECR source (and vice versa) is not trusted.
    let scan = json!({"scan-status": "COMPLETE", "repository-name": "prod/payments-api"});
    assert_eq!(parse_ok(envelope("aws.ecr", "Inspector2 Scan", scan.clone())).kind.name(), "unsupported");
    assert_eq!(parse_ok(envelope("aws.inspector2", "ECR Image Scan", scan.clone())).kind.name(), "unsupported");
    assert_eq!(parse_ok(envelope("aws.ecr", "ecr image scan", scan.clone())).kind.name(), "unsupported");
    assert_eq!(parse_ok(envelope("aws.ecr", "ECR Image Scan", scan.clone())).kind.name(), "basic-scan");
    assert_eq!(parse_ok(envelope("aws.inspector2", "Inspector2 Scan", scan)).kind.name(), "inspector-scan");

    // Unsupported events don't look at the detail at all.
    assert_eq!(parse_ok(envelope("aws.s3", "Object Created", json!("anything"))).kind.name(), "unsupported");

    // A replication detail under "ECR Image Action" is an image action: the detail type decides.
    let replication = json!({
        "result": "SUCCESS", "repository-name": "prod/payments-api", "image-digest": PUSH_DIGEST,
        "action-type": "REPLICATE", "source-region": "eu-west-1",
    });
    let event = parse_ok(image_action_event(replication.clone()));
    assert_eq!(expect_kind!(event, ImageAction).action_type, ImageActionType::Other("REPLICATE".to_owned()));
    let event = parse_ok(envelope("aws.ecr", "ECR Replication Action", replication));
    assert_eq!(event.kind.name(), "replication");
}

#[test]
fn cloudtrail_classification() {
    let sample: Value = serde_json::from_str(&read_sample("cloudtrail-create-repository.json")).expect("JSON");

    // A call from another service delivered under aws.ecr is not a repository creation.
    let mut other = sample.clone();
    other["detail"]["eventSource"] = json!("iam.amazonaws.com");
    let event = parse_ok(other);
    assert_eq!(event.kind.name(), "api-call");
    assert!(event.kind.repository().is_none());

    // CreateRepository without a repository name in the request names the path.
    let mut missing = sample.clone();
    missing["detail"]["requestParameters"] = json!(null);
    let (detail_type, path, message) = detail_err(missing);
    assert_eq!(detail_type, "AWS API Call via CloudTrail");
    assert_eq!(path, "detail.requestParameters.repositoryName");
    assert!(message.contains("repositoryName"), "{message}");

    let mut empty = sample.clone();
    empty["detail"]["requestParameters"]["repositoryName"] = json!("");
    let (_, path, message) = detail_err(empty);
    assert_eq!(path, "detail.requestParameters.repositoryName");
    assert!(message.contains("empty"), "{message}");

    let mut numeric = sample.clone();
    numeric["detail"]["requestParameters"]["repositoryName"] = json!(5);
    assert_eq!(detail_err(numeric).1, "detail.requestParameters.repositoryName");

    // The envelope fields that CloudTrail needs are required.
    let mut no_name = sample;
    no_name["detail"].as_object_mut().expect("object").remove("eventName");
    let (_, path, message) = detail_err(no_name);
    assert_eq!(path, "detail");
    assert!(message.contains("`eventName`"), "{message}");
}

#[test]
fn service_event_other_than_policy_execution_is_unsupported() {
    let mut value: Value =
        serde_json::from_str(&read_sample("cloudtrail-lifecycle-policy-execution.json")).expect("JSON");
    value["detail"]["eventName"] = json!("SomeOtherServiceEvent");
    assert_eq!(parse_ok(value.clone()).kind.name(), "unsupported");
    value["detail"] = json!("PolicyExecutionEvent");
    assert_eq!(parse_ok(value).kind.name(), "unsupported");

    // A PolicyExecutionEvent without its details is an error, not a silent skip.
    let mut value: Value =
        serde_json::from_str(&read_sample("cloudtrail-lifecycle-policy-execution.json")).expect("JSON");
    value["detail"].as_object_mut().expect("object").remove("serviceEventDetails");
    let (detail_type, path, message) = detail_err(value);
    assert_eq!((detail_type.as_str(), path.as_str()), ("AWS Service Event via CloudTrail", "detail"));
    assert!(message.contains("serviceEventDetails"), "{message}");
}

#[test]
fn error_display_names_type_and_path() {
    let err = EventError::Detail {
        detail_type: "ECR Image Action".to_owned(),
        path: "detail.image-digest".to_owned(),
        message: "invalid type".to_owned(),
    };
    assert_eq!(err.to_string(), "invalid `ECR Image Action` event: detail.image-digest: invalid type");
    assert_eq!(EventError::Json("x".to_owned()).to_string(), "event is not valid JSON: x");
    assert_eq!(EventError::Envelope("y".to_owned()).to_string(), "event is not an EventBridge event: y");
    assert!(matches!(parse_str(""), Err(EventError::Json(_))));
    assert!(matches!(parse_str("{} trailing"), Err(EventError::Json(_))));
}

// ---------------------------------------------------------------------------------------------------------------
// 4. parsing never panics
// ---------------------------------------------------------------------------------------------------------------

/// Every valid sample, decoded once.
static SAMPLE_VALUES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    json_files_in(&events_dir())
        .iter()
        .map(|file| serde_json::from_str(&read_sample(file)).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
});

const KNOWN_TYPES: &[(&str, &str)] = &[
    ("aws.ecr", "ECR Image Action"),
    ("aws.ecr", "ECR Referrer Action"),
    ("aws.ecr", "ECR Image Scan"),
    ("aws.ecr", "ECR Scan Resource Change"),
    ("aws.ecr", "ECR Replication Action"),
    ("aws.ecr", "ECR Pull Through Cache Action"),
    ("aws.inspector2", "Inspector2 Scan"),
    ("aws.inspector2", "Inspector2 Finding"),
    ("aws.inspector2", "Inspector2 Coverage"),
    ("aws.ecr", "AWS API Call via CloudTrail"),
    ("aws.ecr", "AWS Service Event via CloudTrail"),
    ("aws.events", "Scheduled Event"),
    ("aws.scheduler", "Scheduled Event"),
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete,
    Replace(Value),
    /// Replace the node by its own JSON text (as Scheduler does with `detail`).
    Stringify,
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN / infinities become null
        Just(json!("")),
        Just(json!("arn:aws:ecr:us-east-1:123456789012:registry/foo")),
        Just(json!("arn:aws:ecr:us-east-1:123456789012:repository/")),
        Just(json!("{}")),
        Just(json!("PolicyExecutionEvent")),
        Just(json!("CreateRepository")),
        Just(json!("ecr.amazonaws.com")),
        Just(json!("AWS_ECR_CONTAINER_IMAGE")),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z-]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Delete),
        4 => arb_scalar().prop_map(Mutation::Replace),
        2 => arb_json().prop_map(Mutation::Replace),
        1 => Just(Mutation::Stringify),
    ]
}

/// JSON pointers to every node below the root, in document order.
fn node_pointers(value: &Value, prefix: &str, out: &mut Vec<String>) {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let pointer = format!("{prefix}/{}", escape(key));
                out.push(pointer.clone());
                node_pointers(child, &pointer, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let pointer = format!("{prefix}/{index}");
                out.push(pointer.clone());
                node_pointers(child, &pointer, out);
            }
        }
        _ => {}
    }
}

fn apply(value: &mut Value, at: prop::sample::Index, mutation: &Mutation) {
    let mut pointers = Vec::new();
    node_pointers(value, "", &mut pointers);
    if pointers.is_empty() {
        return;
    }
    let pointer = &pointers[at.index(pointers.len())];
    match mutation {
        Mutation::Replace(new) => *value.pointer_mut(pointer).expect("pointer exists") = new.clone(),
        Mutation::Stringify => {
            let node = value.pointer_mut(pointer).expect("pointer exists");
            *node = Value::String(node.to_string());
        }
        Mutation::Delete => {
            let (parent, last) = pointer.rsplit_once('/').expect("pointer starts with /");
            let key = last.replace("~1", "/").replace("~0", "~");
            match value.pointer_mut(parent).expect("parent exists") {
                Value::Object(map) => {
                    map.remove(&key);
                }
                Value::Array(items) => {
                    items.remove(key.parse::<usize>().expect("array index"));
                }
                _ => unreachable!("a parent is a container"),
            }
        }
    }
}

/// What must hold for any result: an `Ok` names a known kind and any repository is non-empty; an `Err` says why.
fn check_outcome(result: Result<Event, EventError>) -> Result<(), TestCaseError> {
    match result {
        Ok(event) => {
            prop_assert!(!event.kind.name().is_empty());
            if let Some(repository) = event.kind.repository() {
                prop_assert!(!repository.as_str().is_empty());
            }
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Samples with keys deleted and values replaced at random paths parse or fail, but never panic.
    #[test]
    fn mutated_samples_never_panic(
        file in any::<prop::sample::Index>(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), arb_mutation()), 1..5),
    ) {
        let mut value = file.get(&SAMPLE_VALUES).clone();
        for (at, mutation) in &mutations {
            apply(&mut value, *at, mutation);
        }
        check_outcome(parse(value.clone()))?;
        // The same through the text path.
        check_outcome(parse_str(&value.to_string()))?;
    }

    /// Arbitrary JSON as the detail of every known event type.
    #[test]
    fn arbitrary_details_never_panic(kind in any::<prop::sample::Index>(), detail in arb_json()) {
        let (source, detail_type) = *kind.get(KNOWN_TYPES);
        check_outcome(parse(envelope(source, detail_type, detail)))?;
    }

    /// Arbitrary JSON values as the whole event.
    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        check_outcome(parse(value))?;
    }

    /// Arbitrary text, and sample text cut short or spliced with junk.
    #[test]
    fn arbitrary_text_never_panics(
        text in any::<String>(),
        file in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        check_outcome(parse_str(&text))?;
        let sample = file.get(&SAMPLE_VALUES).to_string();
        let boundaries: Vec<usize> = sample.char_indices().map(|(i, _)| i).collect();
        let at = *cut.get(&boundaries);
        check_outcome(parse_str(&sample[..at]))?;
        check_outcome(parse_str(&format!("{}{text}{}", &sample[..at], &sample[at..])))?;
    }
}
