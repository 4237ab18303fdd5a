//! The EventBridge event model: the envelope is parsed once, then `source` + `detail-type` select the typed
//! detail. Every event ecr-warden may receive has a variant here, including those no function acts on yet, so
//! each function only matches on what it handles and reports the rest as skipped.
//!
//! `aws_lambda_events` is deliberately not used: its ECR scan type makes `repository-name` optional (so a
//! broken event would pass silently), its envelope types `time` as a `DateTime` (AWS's own pull-through-cache
//! sample carries 2023-02-29), and its CloudTrail type rejects `PolicyExecutionEvent`.

mod cloudtrail;
mod ecr;
mod inspector;
mod schedule;

pub use cloudtrail::{
    ApiCall, LifecycleEventImage, LifecycleEventPolicy, LifecycleImageAction, LifecyclePolicyExecution,
    LifecycleRuleSummary, RepositoryApiCall, ServiceEventDetails,
};
pub use ecr::{
    BasicScan, ImageAction, ImageActionType, PullThroughCacheAction, ReplicationAction, ScanFrequencyChange,
    ScanResourceChange, SeverityCounts,
};
pub use inspector::{
    EcrImageDetails, InspectorCoverage, InspectorFinding, InspectorScan, PackageVulnerability, ScanStatus,
    VulnerablePackage,
};
pub use schedule::{ScheduledSweep, WORK_ITEM_DETAIL_TYPE, WORK_ITEM_SOURCE};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// A repository name, normalised once from whatever the event carried (plain name or repository ARN).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Accepts `team/app` or `arn:aws:ecr:<region>:<account>:repository/team/app`.
    pub fn from_name_or_arn(value: &str) -> Result<Self, String> {
        let name = if value.starts_with("arn:") {
            match value.split_once(":repository/") {
                Some((_, name)) if !name.is_empty() => name,
                _ => return Err(format!("`{value}` is an ARN but not an ECR repository ARN")),
            }
        } else {
            value
        };
        if name.is_empty() {
            return Err("repository name is empty".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RepositoryName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::from_name_or_arn(&raw).map_err(serde::de::Error::custom)
    }
}

/// The envelope fields every EventBridge event carries. `time` stays a string: AWS samples contain impossible
/// dates, and a bad timestamp must not make the whole event unreadable.
#[derive(Debug, Clone, Deserialize)]
struct Envelope {
    #[serde(default)]
    version: Option<String>,
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    detail: serde_json::Value,
}

/// A parsed event: envelope metadata plus the typed detail.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub detail_type: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub time: Option<String>,
    pub resources: Vec<String>,
    pub kind: EventKind,
}

impl Event {
    /// How the event is named in outcomes and logs.
    pub fn describe(&self) -> String {
        match &self.kind {
            EventKind::ImageAction(action) => format!("{} {}", self.detail_type, action.action_type.as_str()),
            EventKind::CreateRepository(_) => "CloudTrail CreateRepository".into(),
            EventKind::DeleteRepository(_) => "CloudTrail DeleteRepository".into(),
            _ => self.detail_type.clone(),
        }
    }
}

/// Every event ecr-warden knows, by `source` + `detail-type`.
#[derive(Debug, Clone)]
pub enum EventKind {
    ImageAction(ImageAction),
    ReferrerAction(ImageAction),
    BasicScan(BasicScan),
    ScanResourceChange(ScanResourceChange),
    Replication(ReplicationAction),
    PullThroughCache(PullThroughCacheAction),
    InspectorScan(InspectorScan),
    InspectorFinding(Box<InspectorFinding>),
    InspectorCoverage(InspectorCoverage),
    /// CloudTrail `CreateRepository`.
    CreateRepository(RepositoryApiCall),
    /// CloudTrail `DeleteRepository`.
    DeleteRepository(RepositoryApiCall),
    /// Any other ECR API call recorded by CloudTrail (`PutImageTagMutability`, `PutLifecyclePolicy`, ...).
    OtherApiCall(ApiCall),
    /// CloudTrail `PolicyExecutionEvent`: what ECR's own lifecycle policy did.
    LifecyclePolicyExecution(Box<LifecyclePolicyExecution>),
    /// EventBridge scheduled rule or EventBridge Scheduler: a sweep over all repositories.
    Scheduled(ScheduledSweep),
    /// A well-formed event of a `source` / `detail-type` ecr-warden does not know.
    Unsupported,
}

impl EventKind {
    /// A short, stable name for logs and outcomes.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ImageAction(_) => "image-action",
            Self::ReferrerAction(_) => "referrer-action",
            Self::BasicScan(_) => "basic-scan",
            Self::ScanResourceChange(_) => "scan-resource-change",
            Self::Replication(_) => "replication",
            Self::PullThroughCache(_) => "pull-through-cache",
            Self::InspectorScan(_) => "inspector-scan",
            Self::InspectorFinding(_) => "inspector-finding",
            Self::InspectorCoverage(_) => "inspector-coverage",
            Self::CreateRepository(_) => "create-repository",
            Self::DeleteRepository(_) => "delete-repository",
            Self::OtherApiCall(_) => "api-call",
            Self::LifecyclePolicyExecution(_) => "lifecycle-policy-execution",
            Self::Scheduled(_) => "scheduled",
            Self::Unsupported => "unsupported",
        }
    }

    /// The repository the event is about, when it is about exactly one.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Self::ImageAction(d) | Self::ReferrerAction(d) => Some(&d.repository_name),
            Self::BasicScan(d) => Some(&d.repository_name),
            Self::Replication(d) => Some(&d.repository_name),
            Self::PullThroughCache(d) => Some(&d.repository_name),
            Self::InspectorScan(d) => Some(&d.repository_name),
            Self::InspectorFinding(d) => d.ecr_image().map(|image| &image.repository_name),
            Self::CreateRepository(d) | Self::DeleteRepository(d) => Some(&d.repository_name),
            Self::LifecyclePolicyExecution(d) => Some(&d.service_event_details.repository_name),
            Self::ScanResourceChange(_)
            | Self::InspectorCoverage(_)
            | Self::OtherApiCall(_)
            | Self::Scheduled(_)
            | Self::Unsupported => None,
        }
    }
}

/// Why an event could not be read. Always names the event type and the offending field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event is not valid JSON: {0}")]
    Json(String),
    #[error("event is not an EventBridge event: {0}")]
    Envelope(String),
    #[error("invalid `{detail_type}` event: {path}: {message}")]
    Detail { detail_type: String, path: String, message: String },
}

/// Parses raw event text (as `cargo lambda invoke --data-file` or a test fixture provides it).
pub fn parse_str(text: &str) -> Result<Event, EventError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))?;
    parse(value)
}

/// Parses an event the Lambda runtime has already decoded into JSON.
pub fn parse(value: serde_json::Value) -> Result<Event, EventError> {
    let envelope: Envelope =
        serde_path_to_error::deserialize(value).map_err(|e| EventError::Envelope(describe_path_error(&e)))?;
    if envelope.version.as_deref().is_some_and(|v| v != "0") {
        tracing::warn!(version = envelope.version.as_deref(), "unexpected envelope version; parsing anyway");
    }
    let kind = parse_detail(&envelope)?;
    Ok(Event {
        id: envelope.id,
        source: envelope.source,
        detail_type: envelope.detail_type,
        account: envelope.account,
        region: envelope.region,
        time: envelope.time,
        resources: envelope.resources,
        kind,
    })
}

fn parse_detail(envelope: &Envelope) -> Result<EventKind, EventError> {
    let kind = match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("aws.ecr", "ECR Image Action") => EventKind::ImageAction(typed(envelope, envelope.detail.clone())?),
        ("aws.ecr", "ECR Referrer Action") => EventKind::ReferrerAction(typed(envelope, envelope.detail.clone())?),
        ("aws.ecr", "ECR Image Scan") => EventKind::BasicScan(typed(envelope, envelope.detail.clone())?),
        ("aws.ecr", "ECR Scan Resource Change") => {
            EventKind::ScanResourceChange(typed(envelope, envelope.detail.clone())?)
        }
        ("aws.ecr", "ECR Replication Action") => EventKind::Replication(typed(envelope, envelope.detail.clone())?),
        ("aws.ecr", "ECR Pull Through Cache Action") => {
            EventKind::PullThroughCache(typed(envelope, envelope.detail.clone())?)
        }
        ("aws.inspector2", "Inspector2 Scan") => EventKind::InspectorScan(typed(envelope, envelope.detail.clone())?),
        ("aws.inspector2", "Inspector2 Finding") => {
            EventKind::InspectorFinding(Box::new(typed(envelope, envelope.detail.clone())?))
        }
        ("aws.inspector2", "Inspector2 Coverage") => {
            EventKind::InspectorCoverage(typed(envelope, envelope.detail.clone())?)
        }
        ("aws.ecr", "AWS API Call via CloudTrail") => {
            let call: ApiCall = typed(envelope, envelope.detail.clone())?;
            cloudtrail::classify(call).map_err(|(path, message)| detail_error(envelope, path, message))?
        }
        ("aws.ecr", "AWS Service Event via CloudTrail") => {
            let value = envelope.detail.clone();
            if value.get("eventName").and_then(|n| n.as_str()) == Some("PolicyExecutionEvent") {
                EventKind::LifecyclePolicyExecution(Box::new(typed(envelope, value)?))
            } else {
                EventKind::Unsupported
            }
        }
        ("aws.events" | "aws.scheduler", "Scheduled Event") => {
            let mut sweep: ScheduledSweep = typed(envelope, schedule::normalise_detail(&envelope.detail))?;
            sweep.schedule_arn = envelope.resources.first().cloned();
            EventKind::Scheduled(sweep)
        }
        (schedule::WORK_ITEM_SOURCE, schedule::WORK_ITEM_DETAIL_TYPE) => {
            let mut sweep: ScheduledSweep = typed(envelope, envelope.detail.clone())?;
            sweep.schedule_arn = envelope.resources.first().cloned();
            sweep.work_item = true;
            EventKind::Scheduled(sweep)
        }
        _ => EventKind::Unsupported,
    };
    Ok(kind)
}

fn typed<T: DeserializeOwned>(envelope: &Envelope, detail: serde_json::Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(detail).map_err(|e| {
        let path = e.path().to_string();
        detail_error(envelope, path, e.into_inner().to_string())
    })
}

fn detail_error(envelope: &Envelope, path: String, message: String) -> EventError {
    let path = if path == "." || path.is_empty() { "detail".to_owned() } else { format!("detail.{path}") };
    EventError::Detail { detail_type: envelope.detail_type.clone(), path, message }
}

fn describe_path_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." { e.inner().to_string() } else { format!("{path}: {}", e.inner()) }
}

/// Deserialises a string field into an enum that keeps unknown spellings (`Other`), so a new AWS value is
/// reported as such instead of failing the event.
macro_rules! open_string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            Other(String),
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Other(value),
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(other) => other,
                }
            }
        }
    };
}
pub(crate) use open_string_enum;

#[cfg(test)]
mod tests;
