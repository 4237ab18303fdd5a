//! The image inventory a preview evaluates: what `aws ecr describe-images` prints (`{"imageDetails": [...]}`),
//! with timestamps as ISO-8601 strings (the AWS CLI) or epoch seconds (the raw API).

use super::evaluate::Image;
use super::policy::StorageClass;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImagesError(pub String);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inventory {
    image_details: Vec<RawImage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawImage {
    image_digest: String,
    #[serde(default)]
    image_tags: Vec<String>,
    image_pushed_at: serde_json::Value,
    #[serde(default)]
    last_recorded_pull_time: Option<serde_json::Value>,
    #[serde(default)]
    image_status: Option<String>,
    #[serde(default)]
    last_archived_at: Option<serde_json::Value>,
    #[serde(default)]
    last_activated_at: Option<serde_json::Value>,
    #[serde(default)]
    image_size_in_bytes: Option<i64>,
    #[serde(default)]
    image_manifest_media_type: Option<String>,
    #[serde(default)]
    subject_manifest_digest: Option<String>,
}

/// Epoch seconds from an ISO-8601 string or a number.
fn timestamp(value: &serde_json::Value, field: &str, digest: &str) -> Result<i64, ImagesError> {
    match value {
        serde_json::Value::Number(n) => n.as_f64().map(|f| f.floor() as i64),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp()),
        _ => None,
    }
    .ok_or_else(|| ImagesError(format!("{digest}: {field} `{value}` is neither an ISO-8601 time nor epoch seconds")))
}

fn optional(value: Option<&serde_json::Value>, field: &str, digest: &str) -> Result<Option<i64>, ImagesError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => timestamp(v, field, digest).map(Some),
    }
}

/// Parses a DescribeImages inventory.
pub fn parse_images(text: &str) -> Result<Vec<Image>, ImagesError> {
    let inventory: Inventory = serde_json::from_str(text)
        .map_err(|e| ImagesError(format!("not a describe-images output ({{\"imageDetails\": [...]}}): {e}")))?;
    inventory
        .image_details
        .into_iter()
        .map(|raw| {
            let digest = raw.image_digest;
            let storage_class = match raw.image_status.as_deref() {
                Some("ARCHIVED" | "ACTIVATING") => StorageClass::Archive,
                _ => StorageClass::Standard,
            };
            Ok(Image {
                pushed_at: timestamp(&raw.image_pushed_at, "imagePushedAt", &digest)?,
                last_pulled_at: optional(raw.last_recorded_pull_time.as_ref(), "lastRecordedPullTime", &digest)?,
                archived_at: optional(raw.last_archived_at.as_ref(), "lastArchivedAt", &digest)?,
                activated_at: optional(raw.last_activated_at.as_ref(), "lastActivatedAt", &digest)?,
                size_bytes: raw.image_size_in_bytes,
                media_type: raw.image_manifest_media_type,
                subject: raw.subject_manifest_digest,
                tags: raw.image_tags,
                storage_class,
                digest,
            })
        })
        .collect()
}
