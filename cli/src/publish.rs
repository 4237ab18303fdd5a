//! `warden policy publish FILE --to SOURCE`: validates a policy file and publishes it where the functions read it
//! (`WARDEN_POLICY_SOURCE`). Nothing is uploaded unless the file validates; S3 and SSM are read back after the
//! write and must hand over exactly the published text.

use std::path::Path;
use warden::policy::Policy;
use warden::policy::source::PolicySource;

/// AppConfig's predefined strategy that deploys at once (no bake time): the default of `--deployment-strategy`.
pub const ALL_AT_ONCE: &str = "AppConfig.AllAtOnce";

/// Validates `file`, publishes it to `to` and returns what to print.
pub async fn publish(file: &Path, to: &str, strategy: &str) -> Result<String, String> {
    let source = PolicySource::parse(to)?;
    Policy::load(file).map_err(|errors| format!("not published, the policy is invalid:\n{errors}"))?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let name = source.describe();
    let done = match &source {
        PolicySource::S3 { bucket, key } => {
            let config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(sdk.endpoint_url().is_some()).build();
            let body = aws_sdk_s3::primitives::ByteStream::from(text.clone().into_bytes());
            let put = aws_sdk_s3::Client::from_conf(config)
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("application/toml")
                .body(body)
                .send()
                .await
                .map_err(|e| failed(&name, &e))?;
            format!("object version {}", put.version_id().unwrap_or("(bucket not versioned)"))
        }
        PolicySource::Ssm { name: parameter } => {
            // Intelligent tiering: an advanced parameter (8 KB) only when the policy is over the standard 4 KB.
            let put = aws_sdk_ssm::Client::new(&sdk)
                .put_parameter()
                .name(parameter)
                .value(&text)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .tier(aws_sdk_ssm::types::ParameterTier::IntelligentTiering)
                .overwrite(true)
                .send()
                .await
                .map_err(|e| failed(&name, &e))?;
            format!("parameter version {}", put.version())
        }
        PolicySource::AppConfig { application, environment, profile } => {
            let appconfig = aws_sdk_appconfig::Client::new(&sdk);
            return to_appconfig(&appconfig, (application, environment, profile), &text, strategy).await;
        }
    };
    let read = warden::aws::policy_source::fetch(&sdk, &source).await?;
    if read != text {
        return Err(format!("{name}: the text read back differs from the file published"));
    }
    Ok(format!("published {} ({} bytes, {done}); read back unchanged", name, text.len()))
}

/// A hosted configuration version of `text`, deployed to the environment with `strategy`. AppConfig's control
/// plane takes ids, not names: WARDEN_POLICY_SOURCE names the same ids (its data plane takes either).
pub async fn to_appconfig(
    appconfig: &aws_sdk_appconfig::Client,
    (application, environment, profile): (&str, &str, &str),
    text: &str,
    strategy: &str,
) -> Result<String, String> {
    let name = format!("appconfig:{application}/{environment}/{profile}");
    let version = appconfig
        .create_hosted_configuration_version()
        .application_id(application)
        .configuration_profile_id(profile)
        .content_type("application/toml")
        .content(aws_sdk_appconfig::primitives::Blob::new(text.as_bytes()))
        .send()
        .await
        .map_err(|e| failed(&name, &e))?
        .version_number();
    let deployment = appconfig
        .start_deployment()
        .application_id(application)
        .environment_id(environment)
        .configuration_profile_id(profile)
        .configuration_version(version.to_string())
        .deployment_strategy_id(strategy)
        .description("warden policy publish")
        .send()
        .await
        .map_err(|e| failed(&name, &e))?;
    Ok(format!(
        "published {name} ({} bytes): hosted configuration version {version}, deployment {} ({}) with {strategy}",
        text.len(),
        deployment.deployment_number(),
        deployment.state().map_or("state unknown", |s| s.as_str()),
    ))
}

fn failed(name: &str, error: &impl std::error::Error) -> String {
    format!("{name}: not published: {}", aws_smithy_types::error::display::DisplayErrorContext(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_appconfig::operation::create_hosted_configuration_version::CreateHostedConfigurationVersionOutput;
    use aws_sdk_appconfig::operation::start_deployment::StartDeploymentOutput;
    use aws_sdk_appconfig::types::DeploymentState;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    // moto has AppConfig's hosted configurations but no environments or deployments: mocked here.
    #[tokio::test]
    async fn appconfig_gets_a_version_and_a_deployment_of_exactly_the_text() {
        let text = "version = 1\n";
        let create = mock!(aws_sdk_appconfig::Client::create_hosted_configuration_version)
            .match_requests(move |r| {
                (r.application_id(), r.configuration_profile_id(), r.content_type())
                    == (Some("app1"), Some("prof1"), Some("application/toml"))
                    && r.content().map(|b| b.as_ref()) == Some(text.as_bytes())
            })
            .then_output(|| CreateHostedConfigurationVersionOutput::builder().version_number(7).build());
        let deploy = mock!(aws_sdk_appconfig::Client::start_deployment)
            .match_requests(|r| {
                (r.environment_id(), r.configuration_version(), r.deployment_strategy_id())
                    == (Some("env1"), Some("7"), Some(ALL_AT_ONCE))
            })
            .then_output(|| {
                StartDeploymentOutput::builder().deployment_number(3).state(DeploymentState::Deploying).build()
            });
        let client = mock_client!(aws_sdk_appconfig, RuleMode::MatchAny, [&create, &deploy]);
        let said = to_appconfig(&client, ("app1", "env1", "prof1"), text, ALL_AT_ONCE).await.expect("published");
        assert!(said.contains("hosted configuration version 7, deployment 3 (DEPLOYING)"), "{said}");
        assert_eq!((create.num_calls(), deploy.num_calls()), (1, 1));
    }
}
