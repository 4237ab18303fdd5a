//! What every function's handler shares: parsing the event once, the per-event context, skipped outcomes,
//! classification, notifications with dedup, and the outcome log line with the AWS calls it cost.

use crate::WardenError;
use crate::aws::Clients;
use crate::aws::lease::Lease;
use crate::aws::ledger::Ledger;
use crate::aws::sns::{Claimed, Destination, deliver_as, deliver_claimed, publish};
use crate::aws::steps::Executor;
use crate::config::{Config, TOPICS_ENV};
use crate::event::{Event, EventKind, ImageAction, RepositoryApiCall};
use crate::invocation::{Home, Invocation, admit};
use crate::notify::{Notification, SCHEMA, Severity};
use crate::outcome::Outcome;
use crate::policy::{Class, Classification, Policy, Route};
use chrono::Utc;

/// The AWS calls counted when an invocation started.
#[derive(Debug)]
pub struct Started(std::collections::BTreeMap<String, u32>);

/// The facts about one event every step needs.
#[derive(Debug)]
pub struct Context<'a> {
    pub event: &'a Event,
    /// The event's time, or now when it has none.
    pub at: String,
    /// The account and region the function serves; `None`: unknown, and every event is refused at the door.
    pub home: Option<Home>,
    /// When the invocation is cut off, if the runtime says.
    pub deadline: Option<std::time::SystemTime>,
    /// Lambda's request id (the same for the retries of an invocation): who holds the notification claims.
    pub request_id: String,
}

/// A function's policy, configuration, clients and ledger, built once at init.
#[derive(Debug)]
pub struct Base {
    pub function: &'static str,
    pub policy: Policy,
    pub config: Config,
    pub clients: Clients,
    pub ledger: Ledger,
}

impl Base {
    pub fn new(function: &'static str, policy: Policy, config: Config, clients: Clients) -> Result<Self, WardenError> {
        let ledger = Ledger::new(clients.dynamodb.clone(), config.require_ledger_table()?);
        if let Some(route) = policy.notify.routes.iter().find(|r| !config.topics.contains_key(&r.topic)) {
            return Err(WardenError::Config(format!(
                "the policy routes notifications to topic `{}`, which {TOPICS_ENV} does not name",
                route.topic
            )));
        }
        Ok(Self { function, policy, config, clients, ledger })
    }

    /// Where a notification goes: the default topic, and every route that accepts it.
    pub fn destinations(&self, notification: &Notification) -> Vec<Destination> {
        self.topics().filter(|(route, _)| route.is_none_or(|r| r.accepts(notification))).map(|(_, d)| d).collect()
    }

    /// Every topic notifications can go to, with the route that leads there (`None`: the default topic).
    fn topics(&self) -> impl Iterator<Item = (Option<&Route>, Destination)> {
        let default = self.config.topic_arn.iter().map(|arn| {
            (None, Destination { name: "default".into(), topic_arn: arn.clone(), format: self.policy.notify.format })
        });
        let routed = self.policy.notify.routes.iter().filter_map(|r| {
            let topic_arn = self.config.topics.get(&r.topic)?.clone();
            Some((Some(r), Destination { name: r.topic.clone(), topic_arn, format: r.format }))
        });
        default.chain(routed)
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
            deadline: invocation.deadline,
            request_id: invocation.request_id.clone(),
        }
    }

    /// The door every event passes first: the skipped outcome, with the reason, of an event from an account or
    /// region this function does not serve ([`admit`]); `None` for an event it may act on.
    pub fn refuse(&self, cx: &Context<'_>) -> Option<Outcome> {
        let reason = admit(cx.event, cx.home.as_ref()).err()?;
        tracing::warn!(
            function = self.function,
            event_id = %cx.event.id,
            account = cx.event.account.as_deref(),
            region = cx.event.region.as_deref(),
            %reason,
            "event refused at the door"
        );
        Some(self.skipped(cx, reason))
    }

    /// Where this event's decided steps are carried out.
    pub fn executor<'a>(&'a self, cx: &'a Context<'_>) -> Executor<'a> {
        Executor {
            ecr: &self.clients.ecr,
            ledger: &self.ledger,
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
        self.ledger.lease(subject, &holder, (Utc::now().timestamp(), lasts)).await
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

    /// The managed class of a repository, or why it is left alone.
    pub fn managed_class(&self, repository: &str) -> Result<&Class, String> {
        match self.policy.classify(repository) {
            Classification::Managed(class) => Ok(class),
            Classification::Unmanaged(Some(class)) => Err(format!("{repository} belongs to unmanaged class `{class}`")),
            Classification::Unmanaged(None) => {
                Err(format!("{repository} matches no class and the default is unmanaged"))
            }
        }
    }

    /// The managed class of a repository CloudTrail says was created, or why it is left alone (the call
    /// failed, or the class is unmanaged).
    pub fn created_repository_class(&self, call: &RepositoryApiCall) -> Result<&Class, String> {
        if let Some(code) = &call.error_code {
            return Err(format!("CreateRepository failed ({code}): no repository was created"));
        }
        self.managed_class(call.repository_name.as_str())
    }

    /// The managed class of the repository an image was pushed to, or why the push is left alone (it failed,
    /// or the class is unmanaged).
    pub fn pushed_image_class(&self, push: &ImageAction) -> Result<&Class, String> {
        if !push.succeeded() {
            return Err(format!("push result is `{}`, not SUCCESS", push.result));
        }
        self.managed_class(push.repository_name.as_str())
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
        }
    }

    /// Sends a notification at most once per event, kind and destination. `Ok(true)`: something was sent now.
    pub async fn send(&self, cx: &Context<'_>, notification: &Notification) -> Result<bool, WardenError> {
        self.send_as(cx, notification, &notification.kind).await
    }

    /// Delivers a notification about changes this invocation made: sent once per event (claimed under
    /// `claim_kind`, or published without a claim when `on_change`, see [`Base::send_on_change`]). If delivery
    /// fails, the notification is parked in the ledger before the error is returned: EventBridge's retry finds
    /// the changes made, decides there is nothing left to do, and sends the parked notification instead
    /// ([`Base::flush_parked`]), so a failed publish never loses what was done.
    pub async fn send_after_change(
        &self,
        cx: &Context<'_>,
        notification: &Notification,
        claim_kind: &str,
        on_change: bool,
    ) -> Result<bool, WardenError> {
        let result = if on_change {
            self.send_on_change(notification).await
        } else {
            self.send_as(cx, notification, claim_kind).await
        };
        if let Err(error) = &result
            && error.is_retryable()
        {
            self.park(notification, claim_kind).await;
        }
        result
    }

    /// Parks a notification about changes made whose delivery cannot happen in this invocation (it fails
    /// afterwards), for EventBridge's retry to send ([`Base::flush_parked`]). Best effort: logged if it fails.
    pub async fn park(&self, notification: &Notification, claim_kind: &str) {
        let json = match serde_json::to_string(notification) {
            Ok(json) => json,
            Err(error) => {
                tracing::error!(%error, kind = %notification.kind, "could not park an undelivered notification; it may be lost");
                return;
            }
        };
        // Unparked, the notification is lost (the retry finds nothing left to do): try harder than once.
        for attempt in 1..=3 {
            let parked =
                self.ledger.park_notification(&notification.event_id, claim_kind, &json, Utc::now().timestamp()).await;
            match parked {
                Ok(()) => return,
                Err(error) if attempt == 3 => {
                    tracing::error!(%error, kind = %notification.kind, "could not park an undelivered notification; it may be lost");
                }
                Err(_) => {}
            }
        }
    }

    /// Sends what earlier attempts of this event left unsent, each once: what they parked
    /// ([`Base::send_after_change`], then removed) and claims they took but died before sending. For the paths
    /// where a retry finds the work done: one Query. `Ok(true)`: something was sent now.
    pub async fn flush_parked(&self, cx: &Context<'_>) -> Result<bool, WardenError> {
        let event_id = &cx.event.id;
        let unfinished = self.ledger.unfinished_notifications(event_id, &cx.request_id, Utc::now().timestamp()).await?;
        let mut sent = false;
        for (claim_kind, json) in unfinished.parked {
            match serde_json::from_str::<Notification>(&json) {
                Ok(notification) => sent |= self.send_as(cx, &notification, &claim_kind).await?,
                Err(e) => tracing::error!(error = %e, "a parked notification is unreadable; dropped"),
            }
            self.ledger.unpark_notification(event_id, &claim_kind).await?;
        }
        for (key, json) in unfinished.pending {
            let destination = self.destinations_by_key(&key);
            match (serde_json::from_str::<Notification>(&json), destination) {
                (Ok(notification), Some(destination)) => {
                    let claim = Claimed { key: &key, holder: &cx.request_id, now_epoch: Utc::now().timestamp() };
                    sent |=
                        deliver_claimed(&self.clients.sns, &destination, &self.ledger, &notification, &claim).await?;
                }
                _ => tracing::error!(key, "a claimed notification is unreadable or its topic is gone; dropped"),
            }
        }
        Ok(sent)
    }

    /// The destination a claim key names: `<claim kind>@<route>` at a route's topic, the claim kind alone at
    /// the default topic (claim kinds may hold `@` themselves: `retention@<repository>#<run>`).
    fn destinations_by_key(&self, key: &str) -> Option<Destination> {
        let mut topics: Vec<Destination> = self.topics().map(|(_, d)| d).collect();
        let routed = topics.iter().position(|d| d.name != "default" && key.ends_with(&format!("@{}", d.name)));
        let at = routed.or_else(|| topics.iter().position(|d| d.name == "default"))?;
        Some(topics.swap_remove(at))
    }

    /// [`Base::send`] with the dedup claim taken under `claim_kind` (see [`deliver_as`]).
    pub async fn send_as(
        &self,
        cx: &Context<'_>,
        notification: &Notification,
        claim_kind: &str,
    ) -> Result<bool, WardenError> {
        let destinations = self.destinations(notification);
        let now = Utc::now().timestamp();
        let sent =
            deliver_as(&self.clients.sns, &destinations, &self.ledger, notification, claim_kind, &cx.request_id, now)
                .await?;
        Ok(sent > 0)
    }
}

impl Base {
    /// Publishes without a dedup claim. Only for notifications sent because this invocation changed something
    /// (a replay changes nothing, so it cannot repeat them): saves the ledger write on the hot path.
    pub async fn send_on_change(&self, notification: &Notification) -> Result<bool, WardenError> {
        let destinations = self.destinations(notification);
        for destination in &destinations {
            publish(&self.clients.sns, &destination.topic_arn, destination.format, notification).await?;
        }
        Ok(!destinations.is_empty())
    }
}
