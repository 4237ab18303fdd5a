//! The registry an event's steps act on: the function's own clients (single account), or, in a hub, clients in
//! the event's account and region through the member role (`reach::Hub`).
//!
//! A member registry's clients are the function's own with the region and credentials swapped, so they keep its
//! endpoint, retry budget and call counter. Credentials are assumed once per account and cached by the SDK for
//! their lifetime; clients are built once per (account, region) and live as long as the Lambda instance.

use super::CallCounter;
use super::ledger::Ledger;
use crate::WardenError;
use crate::invocation::Home;
use crate::reach::Hub;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider, error::CredentialsError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What one registry is read and changed through.
#[derive(Debug)]
pub struct Registry {
    pub ecr: aws_sdk_ecr::Client,
    /// Amazon Inspector in the registry's account and region (functions that read findings or coverage).
    pub inspector: Option<aws_sdk_inspector2::Client>,
    /// The ledger, its repository records kept apart per registry in a hub.
    pub ledger: Ledger,
}

/// The registries a function reaches.
#[derive(Debug)]
pub struct Registries {
    own: Arc<Registry>,
    hub: Option<HubAccess>,
}

#[derive(Debug)]
struct HubAccess {
    hub: Hub,
    /// `false` for a function that reads and changes no registry (notify): its members' ledger records only,
    /// no role assumed.
    clients: bool,
    sdk: aws_config::SdkConfig,
    calls: CallCounter,
    session: String,
    credentials: Mutex<HashMap<String, SharedCredentialsProvider>>,
    registries: Mutex<HashMap<(String, String), Arc<Registry>>>,
}

impl Registries {
    /// A function acting on its own registry only.
    pub fn own(registry: Registry) -> Self {
        Self { own: Arc::new(registry), hub: None }
    }

    /// A hub: its own clients, and member registries reached through `hub`'s role, assumed with `sdk`'s
    /// credentials under the session name `session`.
    pub fn hub(registry: Registry, hub: Hub, sdk: aws_config::SdkConfig, calls: CallCounter, session: &str) -> Self {
        let access = HubAccess {
            hub,
            clients: true,
            sdk,
            calls,
            session: session.to_owned(),
            credentials: Mutex::default(),
            registries: Mutex::default(),
        };
        Self { own: Arc::new(registry), hub: Some(access) }
    }

    /// For a function that acts on no registry (notify): a member's registry is its ledger records only, and
    /// no member role is assumed. Its ECR client stays the function's own, whose role allows no ECR action.
    #[must_use]
    pub fn ledger_only(mut self) -> Self {
        if let Some(access) = &mut self.hub {
            access.clients = false;
        }
        self
    }

    /// The function's own registry (its credentials, its region, the ledger unscoped).
    pub fn own_registry(&self) -> Arc<Registry> {
        self.own.clone()
    }

    /// The registry at `target`: the function's own outside a hub; in a hub, `target`'s account and region
    /// through the member role, built on first use. The hub's own account too: its function roles may change only
    /// their own region's repositories, and the member role (the spoke is deployed there as well) is how every
    /// governed registry is reached.
    pub async fn registry(&self, target: &Home) -> Result<Arc<Registry>, WardenError> {
        let Some(access) = &self.hub else { return Ok(self.own.clone()) };
        let key = (target.account.clone(), target.region.clone());
        if let Some(registry) = access.registries.lock().ok().and_then(|r| r.get(&key).cloned()) {
            return Ok(registry);
        }
        let ledger = self.own.ledger.scoped(&format!("{}:{}", target.account, target.region));
        if !access.clients {
            let registry = Registry { ecr: self.own.ecr.clone(), inspector: None, ledger };
            return Ok(access.keep(key, registry));
        }
        let credentials = access.credentials(target).await?;
        let region = aws_config::Region::new(target.region.clone());
        let inspector = self.own.inspector.as_ref().map(|own| {
            let builder = own.config().to_builder().region(region.clone()).credentials_provider(credentials.clone());
            aws_sdk_inspector2::Client::from_conf(builder.build())
        });
        let ecr = self.own.ecr.config().to_builder().region(region).credentials_provider(credentials);
        let ecr = aws_sdk_ecr::Client::from_conf(ecr.interceptor(RegistryId(target.account.clone())).build());
        Ok(access.keep(key, Registry { ecr, inspector, ledger }))
    }
}

impl HubAccess {
    fn keep(&self, key: (String, String), registry: Registry) -> Arc<Registry> {
        let registry = Arc::new(registry);
        if let Ok(mut registries) = self.registries.lock() {
            registries.insert(key, registry.clone());
        }
        registry
    }

    /// The member role's credentials in `target`'s account: assumed now, so that a denied role is this event's
    /// clear error, then kept for the account's regional clients until they are about to expire.
    async fn credentials(&self, target: &Home) -> Result<SharedCredentialsProvider, WardenError> {
        if let Some(known) = self.credentials.lock().ok().and_then(|c| c.get(&target.account).cloned()) {
            return Ok(known);
        }
        let role = self.hub.role_arn(target);
        let assume = AssumeRoleProvider::builder(&role).session_name(&self.session).configure(&self.sdk).build().await;
        let member = MemberCredentials { inner: assume, calls: self.calls.clone(), current: Mutex::default() };
        member.provide_credentials().await.map_err(|error| member_role_error(target, &role, &error))?;
        let provider = SharedCredentialsProvider::new(member);
        if let Ok(mut known) = self.credentials.lock() {
            known.insert(target.account.clone(), provider.clone());
        }
        Ok(provider)
    }
}

/// How long before they expire assumed credentials are replaced (the SDK's own cache uses the same margin).
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// One account's member-role credentials, shared by its regional clients (each SDK client caches identities
/// apart): assumed once and handed out until five minutes before they expire, each AssumeRole counted with the
/// function's other calls.
#[derive(Debug)]
struct MemberCredentials {
    inner: AssumeRoleProvider,
    calls: CallCounter,
    current: Mutex<Option<Credentials>>,
}

impl MemberCredentials {
    fn fresh(&self) -> Option<Credentials> {
        let current = self.current.lock().ok()?.clone()?;
        let lasts = current.expiry().is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE);
        lasts.then_some(current)
    }

    async fn assume(&self) -> provider::Result {
        self.calls.add("STS.AssumeRole");
        let assumed = self.inner.provide_credentials().await?;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(assumed.clone());
        }
        Ok(assumed)
    }
}

impl ProvideCredentials for MemberCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        match self.fresh() {
            Some(current) => provider::future::ProvideCredentials::ready(Ok(current)),
            None => provider::future::ProvideCredentials::new(self.assume()),
        }
    }
}

/// A member role that could not be assumed, named with its account: retryable when STS was throttled or out of
/// reach, not when the role refuses the hub (a deployment to fix: the spoke stack, the trust policy).
fn member_role_error(target: &Home, role: &str, error: &CredentialsError) -> WardenError {
    let text = aws_smithy_types::error::display::DisplayErrorContext(error).to_string();
    let refused = ["AccessDenied", "InvalidClientTokenId", "RegionDisabled", "MalformedPolicyDocument"]
        .iter()
        .any(|code| text.contains(code))
        || matches!(error, CredentialsError::InvalidConfiguration(_));
    WardenError::Aws {
        operation: "STS.AssumeRole",
        code: if refused { "MemberRoleRefused".into() } else { "MemberRoleUnavailable".into() },
        message: format!(
            "cannot act in account {} ({}): assuming {role} failed: {text}",
            target.account, target.region
        ),
        retryable: !refused,
    }
}

/// Names the registry on every ECR call that takes one (`registryId`): a member registry's client acts in that
/// account's registry, and a call made with any other account's credentials fails instead of reaching a registry
/// that merely holds the same repository names.
#[derive(Debug)]
struct RegistryId(String);

impl Intercept for RegistryId {
    fn name(&self) -> &'static str {
        "RegistryId"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        macro_rules! name_the_registry {
            ($($operation:ident::$input:ident),+ $(,)?) => {$(
                if let Some(input) = input.downcast_mut::<aws_sdk_ecr::operation::$operation::$input>() {
                    input.registry_id.get_or_insert_with(|| self.0.clone());
                    return Ok(());
                }
            )+};
        }
        name_the_registry!(
            batch_get_image::BatchGetImageInput,
            batch_delete_image::BatchDeleteImageInput,
            put_image::PutImageInput,
            describe_images::DescribeImagesInput,
            describe_repositories::DescribeRepositoriesInput,
            describe_image_scan_findings::DescribeImageScanFindingsInput,
            describe_image_signing_status::DescribeImageSigningStatusInput,
            list_images::ListImagesInput,
            list_image_referrers::ListImageReferrersInput,
            put_image_tag_mutability::PutImageTagMutabilityInput,
            put_lifecycle_policy::PutLifecyclePolicyInput,
            get_lifecycle_policy::GetLifecyclePolicyInput,
            get_repository_policy::GetRepositoryPolicyInput,
            describe_pull_through_cache_rules::DescribePullThroughCacheRulesInput,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::RegistryId;
    use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
    use aws_sdk_ecr::operation::describe_registry::DescribeRegistryOutput;
    use aws_sdk_ecr::operation::list_images::ListImagesOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    /// A hub's member registries share one table: the records of each (here lifecycle's deletion journal and a
    /// tag pointer) are kept under its `<account>:<region>#` scope, and a single account's keys stay as they were.
    #[tokio::test]
    async fn each_registry_keeps_its_records_apart_in_the_ledger() {
        use crate::aws::journal::JournalEntry;
        use crate::aws::ledger::Ledger;
        use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
        use aws_sdk_dynamodb::operation::query::QueryOutput;
        let pk = |r: &aws_sdk_dynamodb::operation::put_item::PutItemInput| {
            r.item().and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
        };
        let scoped = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |r| pk(r) == "222222222222:eu-west-1#JOURNAL#lifecycle")
            .then_output(|| PutItemOutput::builder().build());
        let unscoped = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |r| pk(r) == "JOURNAL#lifecycle")
            .then_output(|| PutItemOutput::builder().build());
        let read = mock!(aws_sdk_dynamodb::Client::query)
            .match_requests(|r| {
                r.expression_attribute_values()
                    .and_then(|v| v.get(":pk"))
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("333333333333:eu-west-1#JOURNAL#lifecycle")
            })
            .then_output(|| QueryOutput::builder().build());
        let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&scoped, &unscoped, &read]);
        let ledger = Ledger::new(dynamodb, "ledger");
        let entry = JournalEntry {
            repository: "prod/api".into(),
            run: "run-1".into(),
            batch: 1,
            event_id: "e-1".into(),
            holder: "h".into(),
            written_at: 0,
            digests: vec![("sha256:ab".into(), 1)],
        };
        ledger.scoped("222222222222:eu-west-1").journal_batch(&entry, 0).await.expect("scoped");
        ledger.journal_batch(&entry, 0).await.expect("single account");
        // Another member's sweep reads its own journal only.
        let other = ledger.scoped("333333333333:eu-west-1").journal(None).await.expect("read");
        assert!(other.is_empty());
        assert_eq!((scoped.num_calls(), unscoped.num_calls(), read.num_calls()), (1, 1, 1));
    }

    #[tokio::test]
    async fn a_member_registrys_calls_name_its_registry() {
        const MEMBER: &str = "222222222222";
        let delete = mock!(aws_sdk_ecr::Client::batch_delete_image)
            .match_requests(|r| r.registry_id() == Some(MEMBER))
            .then_output(|| BatchDeleteImageOutput::builder().build());
        let list = mock!(aws_sdk_ecr::Client::list_images)
            .match_requests(|r| r.registry_id() == Some(MEMBER))
            .then_output(|| ListImagesOutput::builder().build());
        // Registry-level reads take no registryId: the credentials' account answers.
        let registry =
            mock!(aws_sdk_ecr::Client::describe_registry).then_output(|| DescribeRegistryOutput::builder().build());
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&delete, &list, &registry], |c| {
            c.interceptor(RegistryId(MEMBER.to_owned()))
        });
        ecr.batch_delete_image().repository_name("prod/api").send().await.expect("named");
        ecr.list_images().repository_name("prod/api").send().await.expect("named");
        ecr.describe_registry().send().await.expect("registry");
        assert_eq!((delete.num_calls(), list.num_calls(), registry.num_calls()), (1, 1, 1));
    }
}
