//! Reads a published policy (`WARDEN_POLICY_SOURCE`: S3, an SSM parameter or AWS AppConfig) at init, keeps the
//! last valid one in the ledger, and falls back as `policy::source::choose` decides.

use super::ledger::{Ledger, get, s};
use crate::WardenError;
use crate::config::Config;
use crate::policy::Policy;
use crate::policy::source::{POLICY_SOURCE_ENV, PolicySource, choose};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::HashMap;

/// The ledger item holding the last valid policy published at a source (`sk`: the source as written).
const LAST_VALID_PK: &str = "POLICY#last-valid";

/// The policy a function acts on: the compiled-in one (or `WARDEN_POLICY_FILE`) without `WARDEN_POLICY_SOURCE`;
/// with it, the published one when it validates, else the last valid one published there, else the compiled-in
/// one. A problem is recorded in `config.policy_problem` (told on the first event) and logged as the
/// `ecr-warden/PolicyInvalid` metric (CloudWatch embedded metric format), which an alarm watches.
pub async fn load(sdk: &aws_config::SdkConfig, config: &mut Config) -> Result<Policy, WardenError> {
    load_from(sdk, config, std::env::var(POLICY_SOURCE_ENV).ok().as_deref()).await
}

/// [`load`] with the source given (`None` or blank: the compiled-in policy).
pub async fn load_from(
    sdk: &aws_config::SdkConfig,
    config: &mut Config,
    source: Option<&str>,
) -> Result<Policy, WardenError> {
    let compiled = Policy::from_env()?;
    let Some(text) = source.filter(|t| !t.trim().is_empty()) else {
        return Ok(compiled);
    };
    let source = PolicySource::parse(text).map_err(|e| WardenError::Config(format!("{POLICY_SOURCE_ENV}: {e}")))?;
    let ledger = Ledger::new(aws_sdk_dynamodb::Client::new(sdk), config.require_ledger_table()?);
    let name = source.describe();
    let published = fetch(sdk, &source).await;
    let accepts = |policy: &Policy| config.check_policy(policy);
    // The published text is parsed once when it is good; the ledger is read only when it is not.
    let first = choose(&source, published.clone(), None, compiled, accepts);
    let chosen = match (&first.problem, &published) {
        (None, Ok(text)) => {
            if let Err(error) = ledger.keep_valid_policy(&name, text).await {
                tracing::warn!(%error, source = %name, "could not keep the valid policy in the ledger");
            }
            first
        }
        _ => match ledger.last_valid_policy(&name).await {
            // `first` fell back to the compiled-in policy: the last valid published one replaces it if usable.
            Ok(Some(last)) => choose(&source, published, Some(last), first.policy, accepts),
            Ok(None) => first,
            Err(error) => {
                tracing::warn!(%error, "could not read the last valid policy from the ledger");
                first
            }
        },
    };
    if let Some(problem) = &chosen.problem {
        tracing::error!(source = %problem.source, errors = ?problem.errors, acting_on = %problem.acting_on, "published policy not used");
        println!("{}", policy_invalid_metric(&problem.source));
    }
    config.policy_problem = chosen.problem;
    Ok(chosen.policy)
}

/// The policy text published at `source`, or why it cannot be read.
pub async fn fetch(sdk: &aws_config::SdkConfig, source: &PolicySource) -> Result<String, String> {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| "the policy is not UTF-8 text".to_owned());
    match source {
        PolicySource::S3 { bucket, key } => {
            // An S3-compatible endpoint set by the environment (AWS_ENDPOINT_URL) takes path-style addresses.
            let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
            let object = aws_sdk_s3::Client::from_conf(config)
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| reason(&e))?;
            let bytes = object.body.collect().await.map_err(|e| e.to_string())?.into_bytes().to_vec();
            text(bytes)
        }
        PolicySource::Ssm { name } => {
            let parameter = aws_sdk_ssm::Client::new(sdk)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| reason(&e))?;
            parameter
                .parameter()
                .and_then(|p| p.value())
                .map(str::to_owned)
                .ok_or_else(|| "the parameter has no value".into())
        }
        PolicySource::AppConfig { application, environment, profile } => {
            fetch_appconfig(&aws_sdk_appconfigdata::Client::new(sdk), application, environment, profile).await
        }
    }
}

/// The configuration AppConfig has deployed to `environment` (a session started, its first configuration read).
pub async fn fetch_appconfig(
    appconfig: &aws_sdk_appconfigdata::Client,
    application: &str,
    environment: &str,
    profile: &str,
) -> Result<String, String> {
    let session = appconfig
        .start_configuration_session()
        .application_identifier(application)
        .environment_identifier(environment)
        .configuration_profile_identifier(profile)
        .send()
        .await
        .map_err(|e| reason(&e))?;
    let token = session.initial_configuration_token().ok_or("AppConfig started no session")?;
    let latest =
        appconfig.get_latest_configuration().configuration_token(token).send().await.map_err(|e| reason(&e))?;
    let bytes = latest.configuration().map(|b| b.as_ref().to_vec()).unwrap_or_default();
    if bytes.is_empty() {
        return Err("AppConfig has deployed no configuration to this environment".into());
    }
    String::from_utf8(bytes).map_err(|_| "the policy is not UTF-8 text".into())
}

/// Why a read failed, as the service said it (code and message): no request id, so that the same failure is
/// the same problem (its fingerprint) on every cold start.
fn reason<E: ProvideErrorMetadata + std::error::Error + 'static>(error: &SdkError<E, HttpResponse>) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(error).to_string(),
    }
}

/// One `ecr-warden/PolicyInvalid` data point in CloudWatch's embedded metric format (a log line Lambda turns
/// into the metric).
fn policy_invalid_metric(source: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    serde_json::json!({
        "_aws": {
            "Timestamp": now,
            "CloudWatchMetrics": [{
                "Namespace": "ecr-warden",
                "Dimensions": [[]],
                "Metrics": [{"Name": "PolicyInvalid", "Unit": "Count"}]
            }]
        },
        "PolicyInvalid": 1,
        "source": source,
    })
}

impl Ledger {
    /// The last valid policy published at `source`, as kept by [`Ledger::keep_valid_policy`].
    pub async fn last_valid_policy(&self, source: &str) -> Result<Option<String>, WardenError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(LAST_VALID_PK))
            .key("sk", s(source))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::error::aws_error("DynamoDB.GetItem", e))?;
        Ok(output.item().and_then(|item| get(item, "text")))
    }

    /// Keeps `text` as the last valid policy published at `source` (written only when it changed).
    pub async fn keep_valid_policy(&self, source: &str, text: &str) -> Result<(), WardenError> {
        let fingerprint = crate::fingerprint::of_lines([text]);
        let item = HashMap::from([
            ("pk".to_owned(), s(LAST_VALID_PK)),
            ("sk".to_owned(), s(source)),
            ("text".to_owned(), s(text)),
            ("fingerprint".to_owned(), s(&fingerprint)),
        ]);
        let values = [(":fingerprint", s(&fingerprint))];
        self.put_claimed(item, "attribute_not_exists(pk) OR fingerprint <> :fingerprint", &values).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::fetch_appconfig;
    use aws_sdk_appconfigdata::operation::get_latest_configuration::GetLatestConfigurationOutput;
    use aws_sdk_appconfigdata::operation::start_configuration_session::StartConfigurationSessionOutput;
    use aws_sdk_appconfigdata::primitives::Blob;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    // moto has no AppConfig data plane (StartConfigurationSession, GetLatestConfiguration): mocked here.
    async fn read(configuration: &'static [u8]) -> Result<String, String> {
        let session = mock!(aws_sdk_appconfigdata::Client::start_configuration_session)
            .match_requests(|r| {
                (r.application_identifier(), r.environment_identifier(), r.configuration_profile_identifier())
                    == (Some("warden"), Some("prod"), Some("policy"))
            })
            .then_output(|| StartConfigurationSessionOutput::builder().initial_configuration_token("token-1").build());
        let latest = mock!(aws_sdk_appconfigdata::Client::get_latest_configuration)
            .match_requests(|r| r.configuration_token() == Some("token-1"))
            .then_output(move || {
                GetLatestConfigurationOutput::builder().configuration(Blob::new(configuration)).build()
            });
        let client = mock_client!(aws_sdk_appconfigdata, RuleMode::MatchAny, [&session, &latest]);
        fetch_appconfig(&client, "warden", "prod", "policy").await
    }

    /// The line CloudWatch turns into the metric infra/template.yaml's PolicyInvalidAlarm watches.
    #[test]
    fn a_policy_problem_is_the_metric_the_alarm_watches() {
        let line = super::policy_invalid_metric("s3://b/k");
        let template = include_str!("../../../infra/template.yaml");
        let alarm = &template[template.find("  PolicyInvalidAlarm:").expect("the alarm")..];
        let metric = &line["_aws"]["CloudWatchMetrics"][0];
        let namespace = metric["Namespace"].as_str().expect("namespace");
        let name = metric["Metrics"][0]["Name"].as_str().expect("name");
        assert!(alarm.contains(&format!("Namespace: {namespace}\n")), "{namespace}");
        assert!(alarm.contains(&format!("MetricName: {name}\n")), "{name}");
        assert_eq!(metric["Dimensions"], serde_json::json!([[]]), "the alarm names no dimension");
        assert_eq!(line[name], 1);
        assert!(line["_aws"]["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
    }

    #[tokio::test]
    async fn appconfig_hands_over_the_deployed_configuration() {
        assert_eq!(read(b"version = 1\n").await, Ok("version = 1\n".to_owned()));
        let nothing = read(b"").await.expect_err("nothing deployed");
        assert!(nothing.contains("deployed no configuration"), "{nothing}");
        assert!(read(&[0xff, 0xfe]).await.expect_err("binary").contains("UTF-8"));
    }
}
