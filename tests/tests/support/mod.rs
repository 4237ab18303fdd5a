//! What the reliability tests (replay, faults, load) share: the four functions built on one SDK config, and
//! delivery the way EventBridge does it (a failed invocation is retried).

#![allow(dead_code)]

pub mod chaos;

use integration_tests::{Stack, invocation};
use lifecycle::Lifecycle;
use notify::Notify;
use scan_gate::ScanGate;
use serde_json::Value;
use tag_guard::TagGuard;
use warden::WardenError;
use warden::aws::Clients;
use warden::config::Config;
use warden::invocation::Invocation;
use warden::outcome::Outcome;
use warden::policy::{EMBEDDED_POLICY, Policy};

/// Which function an event is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    TagGuard,
    ScanGate,
    Notify,
    Lifecycle,
}

/// How long a tag-removal lease lasts in these tests (45 s deployed), and how long after a failed invocation a
/// retry waits when another invocation may hold one (a minute deployed): past the lease's expiry.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(1);
pub const LEASE_LOST_AFTER: std::time::Duration = std::time::Duration::from_millis(2200);

pub const ALL: [Function; 4] = [Function::TagGuard, Function::ScanGate, Function::Notify, Function::Lifecycle];

/// The four functions as deployed, with the stack's ledger and topic, their AWS clients built
/// from `sdk` (moto directly, or the fault proxy).
#[derive(Debug)]
pub struct Functions {
    pub tag_guard: TagGuard,
    pub scan_gate: ScanGate,
    pub notify: Notify,
    pub lifecycle: Lifecycle,
}

impl Functions {
    /// The functions with the shipped policy (warden.toml: native lifecycle policies and retention observed).
    pub fn new(stack: &Stack, sdk: &aws_config::SdkConfig) -> Self {
        Self::with_policy(stack, sdk, EMBEDDED_POLICY)
    }

    /// The functions with the shipped policy at step two of its rollout ([`integration_tests::enforcing`]):
    /// lifecycle sets native policies and retention deletes.
    pub fn enforcing(stack: &Stack, sdk: &aws_config::SdkConfig) -> Self {
        Self::with_policy(stack, sdk, &integration_tests::enforcing(EMBEDDED_POLICY, None))
    }

    pub fn with_policy(stack: &Stack, sdk: &aws_config::SdkConfig, text: &str) -> Self {
        let policy = || Policy::from_toml(text, "warden.toml").expect("valid policy");
        let config = Config {
            ledger_table: Some(stack.table.clone()),
            topic_arn: Some(stack.topic_arn.clone()),
            dry_run: false,
            // Lambda retries a failed invocation after a minute; the tests' retries wait LEASE_LOST_AFTER.
            lease: Some(LEASE),
            ..Config::default()
        };
        // Straight to moto, Inspector goes to the stack's stand-in (ListCoverage); a proxy routes it there itself.
        let inspector_sdk =
            if sdk.endpoint_url() == stack.sdk.endpoint_url() { stack.inspector_sdk() } else { sdk.clone() };
        let clients = Clients::new(sdk);
        let inspector = clients.inspector(&inspector_sdk);
        let lifecycle_clients = Clients::new(sdk);
        let lifecycle_inspector = lifecycle_clients.inspector(&inspector_sdk);
        Self {
            tag_guard: TagGuard::new(policy(), config.clone(), Clients::new(sdk)).expect("tag-guard"),
            scan_gate: ScanGate::new(policy(), config.clone(), clients, inspector).expect("scan-gate"),
            notify: Notify::new(policy(), config.clone(), Clients::new(sdk)).expect("notify"),
            lifecycle: Lifecycle::new(policy(), config, lifecycle_clients, lifecycle_inspector).expect("lifecycle"),
        }
    }

    /// One invocation of one function.
    pub async fn invoke(&self, function: Function, event: &Value) -> Result<Outcome, WardenError> {
        self.invoke_as(function, event, &invocation()).await
    }

    /// One invocation of one function, as `invocation` (its request id, its deadline).
    pub async fn invoke_as(
        &self,
        function: Function,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Outcome, WardenError> {
        match function {
            Function::TagGuard => self.tag_guard.handle(event.clone(), invocation).await,
            Function::ScanGate => self.scan_gate.handle(event.clone(), invocation).await,
            Function::Notify => self.notify.handle(event.clone(), invocation).await,
            Function::Lifecycle => self.lifecycle.handle(event.clone(), invocation).await,
        }
    }

    /// Delivers like EventBridge to a Lambda target: a failed invocation is retried (here at once, up to
    /// `attempts` invocations in all). Every failure must be retryable; returns the final outcome and how many
    /// invocations failed before it.
    pub async fn deliver(&self, function: Function, event: &Value, attempts: u32) -> (Outcome, u32) {
        self.deliver_spaced(function, event, attempts, std::time::Duration::ZERO).await
    }

    /// [`Functions::deliver`] with `spacing` between a failed invocation and its retry (Lambda waits a minute
    /// and more; a test, long enough for a concurrent invocation to finish).
    pub async fn deliver_spaced(
        &self,
        function: Function,
        event: &Value,
        attempts: u32,
        spacing: std::time::Duration,
    ) -> (Outcome, u32) {
        let mut failures = 0;
        // One request id for the delivery and its retries, as Lambda does; another delivery has its own.
        let invocation = invocation().with_request_id(&integration_tests::unique("request-"));
        loop {
            match self.invoke_as(function, event, &invocation).await {
                Ok(outcome) => return (outcome, failures),
                Err(error) => {
                    eprintln!("{function:?} {}: invocation failed, EventBridge retries: {error}", event["id"]);
                    assert!(error.is_retryable(), "{function:?}: a non-retryable error under faults: {error}");
                    failures += 1;
                    assert!(failures < attempts, "{function:?}: still failing after {attempts} invocations: {error}");
                    tokio::time::sleep(spacing).await;
                }
            }
        }
    }
}

/// The `event-id` of each notification received (from the schema JSON in the SNS envelope).
pub fn event_ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| body(m)["event-id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The `kind` attribute of each message.
pub fn kinds(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["MessageAttributes"]["kind"]["Value"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The notification schema JSON inside an SNS envelope.
pub fn body(message: &Value) -> Value {
    serde_json::from_str(message["Message"].as_str().unwrap_or("{}")).unwrap_or_default()
}
