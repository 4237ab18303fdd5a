//! Thin adapters over the real SDK clients: they read state and carry out decided steps, and never decide.
//! Tests drive them with `aws-smithy-mocks`; integration tests with moto server.

pub mod accept;
pub mod approvals;
pub mod audit;
pub mod backfill;
pub mod claims;
pub mod ecr;
pub mod fanout;
pub mod findings;
pub mod indexes;
pub mod journal;
pub mod lease;
pub mod ledger;
pub mod policy_source;
pub mod registries;
pub mod removals;
pub mod retention;
pub mod security_hub;
pub mod sns;
pub mod steps;
pub mod supply_chain;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Counts AWS operations per `Service.Operation` (once per operation, whatever its retries), so every outcome reports what it cost. Attached to each
/// client as an interceptor; one Lambda instance handles one event at a time, so a snapshot before and after
/// a handler is that event's cost.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u32>>>);

impl CallCounter {
    pub fn snapshot(&self) -> BTreeMap<String, u32> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Counts one `operation` made outside the SDK's interceptors (the member role's AssumeRole, whose STS
    /// client the SDK's credentials provider builds).
    pub fn add(&self, operation: &str) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(operation.to_owned()).or_default() += 1;
        }
    }

    /// Calls made since `before` (a snapshot).
    pub fn since(&self, before: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
        self.snapshot()
            .into_iter()
            .filter_map(|(op, n)| {
                let delta = n - before.get(&op).copied().unwrap_or(0);
                (delta > 0).then_some((op, delta))
            })
            .collect()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation =
            cfg.load::<Metadata>().map_or_else(|| "unknown".to_owned(), |m| format!("{}.{}", m.service(), m.name()));
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

/// The SDK clients a function uses, built once at init from one shared config, each counting its calls.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ecr: aws_sdk_ecr::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub calls: CallCounter,
    /// The configuration the clients were built from: a hub assumes member roles with its credentials.
    pub sdk: Option<aws_config::SdkConfig>,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let calls = CallCounter::default();
        Self {
            ecr: aws_sdk_ecr::Client::from_conf(
                aws_sdk_ecr::config::Builder::from(sdk).interceptor(calls.clone()).build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(calls.clone()).build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(sdk).interceptor(calls.clone()).build(),
            ),
            calls,
            sdk: Some(sdk.clone()),
        }
    }

    /// An Amazon Inspector client from the same config, counting into the same counter: scan-gate (findings,
    /// coverage) and lifecycle (coverage: what is in use) build one; tag-guard and notify never call Inspector.
    pub fn inspector(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_inspector2::Client {
        aws_sdk_inspector2::Client::from_conf(
            aws_sdk_inspector2::config::Builder::from(sdk).interceptor(self.calls.clone()).build(),
        )
    }

    /// An SQS client from the same config, counting into the same counter: a hub's sweeping functions queue
    /// their work items with it (`crate::fanout`). `None` without the SDK configuration (mocked clients).
    pub fn sqs(&self) -> Option<aws_sdk_sqs::Client> {
        let sdk = self.sdk.as_ref()?;
        Some(aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk).interceptor(self.calls.clone()).build(),
        ))
    }

    /// An Organizations client from the same config, counting into the same counter: an organization-wide hub
    /// lists the accounts its sweeps cover. `None` without the SDK configuration (mocked clients).
    pub fn organizations(&self) -> Option<aws_sdk_organizations::Client> {
        let sdk = self.sdk.as_ref()?;
        let config = aws_sdk_organizations::config::Builder::from(sdk).interceptor(self.calls.clone()).build();
        Some(aws_sdk_organizations::Client::from_conf(config))
    }

    /// A Security Hub client from the same config, counting into the same counter: only the audit builds one,
    /// and only when it publishes its findings there.
    pub fn security_hub(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_securityhub::Client {
        aws_sdk_securityhub::Client::from_conf(
            aws_sdk_securityhub::config::Builder::from(sdk).interceptor(self.calls.clone()).build(),
        )
    }
}

/// The result of looking something up that may have been deleted since the event was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    Yes(T),
    NoRepository,
    NoImage,
}
