//! CloudTrail records delivered through EventBridge (`detail` is camelCase).

use super::{EventKind, RepositoryName};
use serde::Deserialize;

/// An ECR API call recorded by CloudTrail (`AWS API Call via CloudTrail`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCall {
    pub event_source: String,
    pub event_name: String,
    #[serde(default)]
    pub event_time: Option<String>,
    #[serde(default)]
    pub aws_region: Option<String>,
    #[serde(default, rename = "eventID")]
    pub event_id: Option<String>,
    #[serde(default)]
    pub user_identity: Option<serde_json::Value>,
    #[serde(default)]
    pub request_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub response_elements: Option<serde_json::Value>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

impl ApiCall {
    /// Who made the call (the IAM principal's ARN), for notifications.
    pub fn principal(&self) -> Option<&str> {
        self.user_identity.as_ref()?.get("arn")?.as_str()
    }
}

/// `CreateRepository` / `DeleteRepository`, with the repository name pulled out of the request.
#[derive(Debug, Clone)]
pub struct RepositoryApiCall {
    pub repository_name: RepositoryName,
    pub repository_arn: Option<String>,
    /// Set when the call itself failed (CloudTrail records failed calls too).
    pub error_code: Option<String>,
    pub call: ApiCall,
}

pub(super) fn classify(call: ApiCall) -> Result<EventKind, (String, String)> {
    if call.event_source != "ecr.amazonaws.com" {
        return Ok(EventKind::OtherApiCall(call));
    }
    let repository_call = |call: ApiCall| -> Result<RepositoryApiCall, (String, String)> {
        let path = "requestParameters.repositoryName".to_owned();
        let raw = call
            .request_parameters
            .as_ref()
            .and_then(|p| p.get("repositoryName"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| (path.clone(), "missing field `repositoryName`".to_owned()))?;
        let repository_name = RepositoryName::from_name_or_arn(raw).map_err(|message| (path, message))?;
        let repository_arn = call
            .response_elements
            .as_ref()
            .and_then(|r| r.pointer("/repository/repositoryArn"))
            .and_then(|a| a.as_str())
            .map(str::to_owned);
        Ok(RepositoryApiCall { repository_name, repository_arn, error_code: call.error_code.clone(), call })
    };
    Ok(match call.event_name.as_str() {
        "CreateRepository" => EventKind::CreateRepository(repository_call(call)?),
        "DeleteRepository" => EventKind::DeleteRepository(repository_call(call)?),
        _ => EventKind::OtherApiCall(call),
    })
}

/// `PolicyExecutionEvent`: ECR's lifecycle policy expired or archived images.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyExecution {
    #[serde(default)]
    pub event_time: Option<String>,
    #[serde(default)]
    pub aws_region: Option<String>,
    pub service_event_details: ServiceEventDetails,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEventDetails {
    pub repository_name: RepositoryName,
    pub lifecycle_event_policy: LifecycleEventPolicy,
    #[serde(default)]
    pub lifecycle_event_image_actions: Vec<LifecycleImageAction>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEventPolicy {
    #[serde(default)]
    pub policy_id: Option<String>,
    #[serde(default)]
    pub policy_version: Option<i64>,
    #[serde(default)]
    pub last_evaluated_at: Option<i64>,
    #[serde(default)]
    pub lifecycle_event_rules: Vec<LifecycleRuleSummary>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRuleSummary {
    pub rule_priority: i64,
    #[serde(default)]
    pub description: Option<String>,
    pub action: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleImageAction {
    pub rule_priority: i64,
    pub lifecycle_event_image: LifecycleEventImage,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEventImage {
    pub digest: String,
    #[serde(default)]
    pub tag_status: Option<String>,
    #[serde(default)]
    pub tag_list: Vec<String>,
    /// Epoch milliseconds.
    #[serde(default)]
    pub pushed_at: Option<i64>,
}
