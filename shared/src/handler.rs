//! What every function's handler shares: parsing the event once, the per-event context, skipped outcomes,
//! classification, notifications with dedup, and the outcome log line with the AWS calls it cost.

use crate::WardenError;
use crate::aws::Clients;
use crate::aws::lease::Lease;
use crate::aws::ledger::Ledger;
use crate::aws::registries::{Registries, Registry};
use crate::aws::steps::Executor;
use crate::config::Config;
use crate::event::{Event, EventKind, ImageAction, RepositoryApiCall};
use crate::invocation::{Home, Invocation, admit};
use crate::notify::{Notification, SCHEMA, Severity};
use crate::outcome::Outcome;
use crate::policy::{Class, Classification, Policy};
use chrono::Utc;
use std::sync::Arc;

/// A function's handling of one admitted event: boxed, since a batch of work items calls it once per item.
pub type Dispatched<'c> = std::pin::Pin<Box<dyn Future<Output = Result<Outcome, WardenError>> + Send + 'c>>;

/// A function, as [`Base::run`] hands it each admitted event.
pub trait Dispatch: Sync {
    fn dispatch_event<'c>(&'c self, cx: &'c Context<'c>) -> Dispatched<'c>;
}

/// The AWS calls counted when an invocation started.
#[derive(Debug)]
pub struct Started(std::collections::BTreeMap<String, u32>);

/// The facts about one event every step needs.
#[derive(Debug)]
pub struct Context<'a> {
    pub event: &'a Event,
    /// The event's time, or now when it has none.
    pub at: String,
    /// The account and region acted on: the function's own, or in a hub the event's registry once the door
    /// admitted it; `None`: unknown, and every event is refused at the door.
    pub home: Option<Home>,
    /// The clients and ledger of that registry.
    pub registry: Arc<Registry>,
    /// When the invocation is cut off, if the runtime says.
    pub deadline: Option<std::time::SystemTime>,
    /// Lambda's request id (the same for the retries of an invocation): who holds the notification claims.
    pub request_id: String,
}

impl Context<'_> {
    /// ECR in the registry acted on.
    pub fn ecr(&self) -> &aws_sdk_ecr::Client {
        &self.registry.ecr
    }

    /// The ledger's records of the registry acted on.
    pub fn ledger(&self) -> &Ledger {
        &self.registry.ledger
    }

    /// Amazon Inspector in the registry acted on (functions built with an Inspector client).
    pub fn inspector(&self) -> Result<&aws_sdk_inspector2::Client, WardenError> {
        self.registry
            .inspector
            .as_ref()
            .ok_or_else(|| WardenError::Config("this function has no Inspector client".into()))
    }
}

/// A function's policy, configuration, clients and ledger, built once at init.
#[derive(Debug)]
pub struct Base {
    pub function: &'static str,
    pub policy: Policy,
    pub config: Config,
    pub clients: Clients,
    /// The ledger unscoped: notification claims and the journal, keyed by event id.
    pub ledger: Ledger,
    /// The registries the function acts on (its own, or a hub's members).
    pub registries: Registries,
    /// Whether this instance told its policy problem (`Config::policy_problem`) already.
    pub(crate) policy_told: std::sync::atomic::AtomicBool,
}

impl Base {
    /// The base of `function`; `inspector` for functions that read findings or coverage. In a hub
    /// ([`crate::reach::Reach::Hub`]) the member registries' clients are derived from these.
    pub fn new(
        function: &'static str,
        policy: Policy,
        config: Config,
        clients: Clients,
        inspector: Option<aws_sdk_inspector2::Client>,
    ) -> Result<Self, WardenError> {
        let ledger = Ledger::new(clients.dynamodb.clone(), config.require_ledger_table()?);
        let own = Registry { ecr: clients.ecr.clone(), inspector, ledger: ledger.clone() };
        let registries = match (&config.reach, &clients.sdk) {
            (crate::reach::Reach::Home, _) => Registries::own(own),
            (crate::reach::Reach::Hub(hub), Some(sdk)) => {
                Registries::hub(own, hub.clone(), sdk.clone(), clients.calls.clone(), &format!("ecr-warden-{function}"))
            }
            (crate::reach::Reach::Hub(_), None) => {
                return Err(WardenError::Config("a hub needs the SDK configuration to assume member roles".into()));
            }
        };
        config.check_policy(&policy).map_err(WardenError::Config)?;
        Ok(Self { function, policy, config, clients, ledger, registries, policy_told: Default::default() })
    }

    /// The frame of every invocation: a batch from a hub's sweep queue runs item by item (`Base::run_batch`);
    /// an event is parsed once, planned (a hub's schedule), refused at the door (another account or region) or
    /// handed to `dispatch`, and the outcome finished with the AWS calls it cost.
    pub async fn run(
        &self,
        payload: serde_json::Value,
        invocation: &Invocation,
        function: &impl Dispatch,
    ) -> Result<Outcome, WardenError> {
        match crate::fanout::sqs_records(&payload) {
            Some(records) => Ok(self.run_batch(records, invocation, function).await),
            None => self.run_one(payload, invocation, function).await,
        }
    }

    /// [`Base::run`] for one event.
    pub(crate) async fn run_one(
        &self,
        payload: serde_json::Value,
        invocation: &Invocation,
        function: &impl Dispatch,
    ) -> Result<Outcome, WardenError> {
        let started = self.start();
        let event = crate::event::parse(payload)?;
        let mut cx = self.context(&event, invocation);
        if let Some(sweep) = self.hub_schedule(&cx) {
            let planned = self.plan(&cx, sweep).await?;
            return Ok(self.finish(planned, started));
        }
        self.tell_policy_problem(&cx).await;
        let outcome = match admit(cx.event, cx.home.as_ref(), &self.config.reach) {
            Err(reason) => self.refused(&cx, reason),
            Ok(registry) => {
                cx.registry = self.registries.registry(&registry).await?;
                cx.home = Some(registry);
                function.dispatch_event(&cx).await?
            }
        };
        Ok(self.finish(outcome, started))
    }

    /// Where an invocation starts: the calls made so far, to report this event's own.
    pub fn start(&self) -> Started {
        Started(self.clients.calls.snapshot())
    }

    /// The context for a parsed event of an invocation.
    pub fn context<'a>(&self, event: &'a Event, invocation: &Invocation) -> Context<'a> {
        let at = event.time.clone().unwrap_or_else(|| Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        Context {
            event,
            at,
            home: invocation.home(),
            registry: self.registries.own_registry(),
            deadline: invocation.deadline,
            request_id: invocation.request_id.clone(),
        }
    }

    /// The skipped outcome, with the reason, of an event the door refused ([`admit`]): from an account or region
    /// this function does not serve.
    fn refused(&self, cx: &Context<'_>, reason: String) -> Outcome {
        tracing::warn!(
            function = self.function,
            event_id = %cx.event.id,
            account = cx.event.account.as_deref(),
            region = cx.event.region.as_deref(),
            %reason,
            "event refused at the door"
        );
        self.skipped(cx, reason)
    }

    /// Where this event's decided steps are carried out.
    pub fn executor<'a>(&'a self, cx: &'a Context<'_>) -> Executor<'a> {
        Executor {
            ecr: cx.ecr(),
            ledger: cx.ledger(),
            function: self.function,
            event_id: &cx.event.id,
            dry_run: self.config.dry_run,
            lease: None,
        }
    }

    /// Takes the lease on an image before re-reading its tags to remove some (see `aws::lease`); `Err`
    /// (retryable) while another invocation holds it.
    pub async fn lease(&self, cx: &Context<'_>, repository: &str, digest: &str) -> Result<Lease, WardenError> {
        let lasts = self.config.lease.unwrap_or(std::time::Duration::from_secs(crate::aws::lease::LEASE_SECONDS));
        self.lease_for(cx, &format!("{repository}@{digest}"), lasts).await
    }

    /// A lease on `subject` (see `aws::lease`) for `lasts`, held by this invocation's request.
    pub async fn lease_for(
        &self,
        cx: &Context<'_>,
        subject: &str,
        lasts: std::time::Duration,
    ) -> Result<Lease, WardenError> {
        let holder = format!("{} {}", self.function, cx.request_id);
        cx.ledger().lease(subject, &holder, (Utc::now().timestamp(), lasts)).await
    }

    /// Gives a lease back. A failure costs only the lease's remaining seconds (it expires): logged, not raised.
    pub async fn release(&self, lease: Option<Lease>) {
        if let Some(lease) = lease
            && let Err(error) = self.ledger.release(lease).await
        {
            tracing::warn!(%error, "could not give a lease back: it expires by itself");
        }
    }

    /// Completes the outcome (dry run, AWS calls since `started`) and logs it.
    pub fn finish(&self, mut outcome: Outcome, started: Started) -> Outcome {
        outcome.dry_run = self.config.dry_run;
        outcome.aws_calls = self.clients.calls.since(&started.0);
        tracing::info!(
            function = self.function,
            event_id = %outcome.event_id,
            event = %outcome.event,
            repository = outcome.repository.as_deref(),
            decision = %outcome.decision,
            actions = outcome.actions.len(),
            notified = outcome.notified,
            aws_calls = outcome.total_aws_calls(),
            reasons = ?outcome.reasons,
            "outcome"
        );
        outcome
    }

    /// The registry acted on, in a hub: what its notifications name.
    pub fn hub_registry<'a>(&self, cx: &'a Context<'_>) -> Option<&'a Home> {
        matches!(self.config.reach, crate::reach::Reach::Hub(_)).then_some(cx.home.as_ref()).flatten()
    }

    pub fn skipped(&self, cx: &Context<'_>, reason: impl Into<String>) -> Outcome {
        let mut outcome = Outcome::skipped(self.function, &cx.event.id, &cx.event.describe(), reason);
        outcome.repository = cx.event.kind.repository().map(ToString::to_string);
        outcome
    }

    /// The skipped outcome for an event of a kind this function does not act on.
    pub fn not_handled(&self, cx: &Context<'_>) -> Outcome {
        let event = cx.event;
        match &event.kind {
            EventKind::Unsupported => {
                self.skipped(cx, format!("unknown event `{}` / `{}`", event.source, event.detail_type))
            }
            other => self.skipped(cx, format!("{} does not handle {} events", self.function, other.name())),
        }
    }

    /// The managed class of a repository of the registry acted on, or why it is left alone.
    pub fn managed_class(&self, cx: &Context<'_>, repository: &str) -> Result<&Class, String> {
        match self.policy.classify_in(cx.home.as_ref().map(|h| h.account.as_str()), repository) {
            Classification::Managed(class) => Ok(class),
            Classification::Unmanaged(Some(class)) => Err(format!("{repository} belongs to unmanaged class `{class}`")),
            Classification::Unmanaged(None) => {
                Err(format!("{repository} matches no class and the default is unmanaged"))
            }
        }
    }

    /// The managed class of a repository CloudTrail says was created, or why it is left alone (the call
    /// failed, or the class is unmanaged).
    pub fn created_repository_class(&self, cx: &Context<'_>, call: &RepositoryApiCall) -> Result<&Class, String> {
        if let Some(code) = &call.error_code {
            return Err(format!("CreateRepository failed ({code}): no repository was created"));
        }
        self.managed_class(cx, call.repository_name.as_str())
    }

    /// The managed class of the repository an image was pushed to, or why the push is left alone (it failed,
    /// or the class is unmanaged).
    pub fn pushed_image_class(&self, cx: &Context<'_>, push: &ImageAction) -> Result<&Class, String> {
        if !push.succeeded() {
            return Err(format!("push result is `{}`, not SUCCESS", push.result));
        }
        self.managed_class(cx, push.repository_name.as_str())
    }

    pub fn outcome_for(
        &self,
        cx: &Context<'_>,
        class: &Class,
        repository: &str,
        digest: Option<&str>,
        tags: &[String],
    ) -> Outcome {
        Outcome {
            function: self.function,
            event_id: cx.event.id.clone(),
            event: cx.event.describe(),
            repository: Some(repository.to_owned()),
            digest: digest.map(str::to_owned),
            tags: tags.to_vec(),
            class: Some(class.name.clone()),
            ..Outcome::default()
        }
    }

    /// A notification about `outcome`; `result` is the one word operators filter on (`untagged`, `promoted`).
    pub fn notification(
        &self,
        cx: &Context<'_>,
        kind: &str,
        outcome: &Outcome,
        result: &str,
        reasons: Vec<String>,
        severity: Severity,
    ) -> Notification {
        Notification {
            schema: SCHEMA,
            kind: kind.to_owned(),
            severity,
            function: self.function.to_owned(),
            repository: outcome.repository.clone(),
            digest: outcome.digest.clone(),
            tags: outcome.tags.clone(),
            tags_omitted: 0,
            outcome: result.to_owned(),
            reasons,
            reasons_omitted: 0,
            actions: outcome.actions.clone(),
            actions_omitted: 0,
            class: outcome.class.clone(),
            dry_run: self.config.dry_run,
            event_id: cx.event.id.clone(),
            time: cx.at.clone(),
            account: self.hub_registry(cx).map(|home| home.account.clone()),
            region: self.hub_registry(cx).map(|home| home.region.clone()),
        }
    }
}
