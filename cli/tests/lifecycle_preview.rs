//! `warden lifecycle preview` as users run it: files in, the GetLifecyclePolicyPreview shape out, clear
//! errors and a non-zero exit for bad input.

use std::path::PathBuf;
use std::process::Command;

fn write(name: &str, text: &str) -> PathBuf {
    // Tests run in parallel: every file gets its own name.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("warden-preview-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write");
    path
}

fn preview(policy: &str, images: &str) -> std::process::Output {
    let (policy, images) = (write("policy.json", policy), write("images.json", images));
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["lifecycle", "preview", "--now", "2026-11-28T00:00:00Z", "--policy"])
        .arg(&policy)
        .arg("--images")
        .arg(&images)
        .output()
        .expect("run warden")
}

const IMAGES: &str = r#"{"imageDetails": [
  {"imageDigest": "sha256:new", "imageTags": ["v2"], "imagePushedAt": "2026-11-27T00:00:00+00:00"},
  {"imageDigest": "sha256:old", "imageTags": ["v1"], "imagePushedAt": 1735689600},
  {"imageDigest": "sha256:loose", "imagePushedAt": "2025-06-01T00:00:00Z"}
]}"#;

#[test]
fn prints_the_preview_response_shape() {
    let policy = r#"{"rules": [
      {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
      {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}
    ]}"#;
    let out = preview(policy, IMAGES);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let results = json["previewResults"].as_array().expect("results");
    let acted: Vec<(&str, u64)> = results
        .iter()
        .map(|r| (r["imageDigest"].as_str().unwrap_or(""), r["appliedRulePriority"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(acted, vec![("sha256:old", 1), ("sha256:loose", 2)]);
    assert_eq!(results[0]["action"]["type"], "EXPIRE");
    assert_eq!(json["summary"]["expiringImageTotalCount"], 2);
}

#[test]
fn an_invalid_policy_exits_non_zero_with_the_reason() {
    let policy = r#"{"rules": [{"rulePriority": 3, "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 5}, "action": {"type": "expire"}}]}"#;
    let out = preview(policy, IMAGES);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rule 3:") && stderr.contains("cannot expire"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_invalid_inventory_exits_non_zero_with_the_reason() {
    let policy = r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}"#;
    let out = preview(policy, r#"{"images": []}"#);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("describe-images"));
}
