//! Carrying reports out against SNS and the ledger: the claim → publish → sent protocol, parking, flushing and
//! standing findings (see the module [`crate::delivery`] for the tables).

use super::{Report, Said, Step, accepts};
use crate::WardenError;
use crate::aws::claims::Claim as Claimed;
use crate::aws::sns::{Destination, publish};
use crate::handler::{Base, Context};
use crate::notify::Notification;
use crate::policy::Route;
use chrono::Utc;

impl Base {
    /// Carries out what a path has to say, step by step ([`Report::steps`]). `Ok(true)`: something was sent
    /// now. An error is returned after what it owes was parked.
    pub async fn report(&self, cx: &Context<'_>, report: Report) -> Result<bool, WardenError> {
        let said = report.said();
        let (mut sent, mut failed) = (false, None::<WardenError>);
        for step in report.steps() {
            match (step, said) {
                (Step::Flush, _) => sent |= self.flush(cx).await?,
                (Step::Send, Some(said)) => match self.tell(cx, &said.notification, &said.key()).await {
                    Ok(now) => sent |= now,
                    Err(error) => failed = Some(error),
                },
                (Step::SendUnlessFlushed, Some(said)) if !sent => {
                    sent = self.tell(cx, &said.notification, &said.key()).await?;
                }
                (Step::Park, Some(said)) => self.park(said).await,
                (Step::ParkIfUnsent, Some(said)) if failed.as_ref().is_some_and(WardenError::is_retryable) => {
                    self.park(said).await;
                }
                (Step::NoteStanding, _) if !self.note_standing(cx, &report).await? => return Ok(false),
                (Step::ForgetIfUnsent, _) if failed.is_some() => self.forget_standing(cx, &report).await,
                (Step::Forget, _) => self.forget_standing(cx, &report).await,
                _ => {}
            }
        }
        failed.map_or(Ok(sent), Err)
    }

    /// [`Base::report`] for several reports, in order; the first error stops them.
    pub async fn report_all(
        &self,
        cx: &Context<'_>,
        reports: impl IntoIterator<Item = Report>,
    ) -> Result<bool, WardenError> {
        let mut sent = false;
        for report in reports {
            sent |= self.report(cx, report).await?;
        }
        Ok(sent)
    }

    /// Where a notification goes: the default topic, and every route that accepts it.
    pub fn destinations(&self, notification: &Notification) -> Vec<Destination> {
        self.topics().filter(|(route, _)| route.is_none_or(|r| accepts(r, notification))).map(|(_, d)| d).collect()
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

    /// The destination a claim key names: `<key>@<route>` at a route's topic, the key alone at the default
    /// topic (keys may hold `@` themselves: `retention@<repository>#<run>`).
    fn destination_of(&self, key: &str) -> Option<Destination> {
        let mut topics: Vec<Destination> = self.topics().map(|(_, d)| d).collect();
        let routed = topics.iter().position(|d| d.name != "default" && key.ends_with(&format!("@{}", d.name)));
        let at = routed.or_else(|| topics.iter().position(|d| d.name == "default"))?;
        Some(topics.swap_remove(at))
    }

    /// Sends a notification once per event under `key` at each of its destinations. `Ok(true)`: sent now.
    async fn tell(&self, cx: &Context<'_>, notification: &Notification, key: &str) -> Result<bool, WardenError> {
        let destinations = self.destinations(notification);
        tracing::info!(
            kind = %notification.kind,
            repository = notification.repository.as_deref(),
            outcome = %notification.outcome,
            severity = notification.severity.as_str(),
            destinations = destinations.len(),
            "notification"
        );
        let mut sent = false;
        for destination in &destinations {
            let key = destination.claim_key(key);
            sent |= self.send_claimed(cx, destination, notification, &key).await?;
        }
        Ok(sent)
    }

    /// Claims, publishes and marks sent one notification at one destination. A claim taken over from a dead
    /// attempt publishes the message stored with it, not `notification`. `Ok(true)`: published now.
    async fn send_claimed(
        &self,
        cx: &Context<'_>,
        destination: &Destination,
        notification: &Notification,
        key: &str,
    ) -> Result<bool, WardenError> {
        let json = serde_json::to_string(notification).map_err(|e| WardenError::Unexpected(e.to_string()))?;
        let (event_id, now) = (notification.event_id.as_str(), Utc::now().timestamp());
        let (token, stored) = match self.ledger.claim_notification(event_id, key, &cx.request_id, &json, now).await? {
            Claimed::Ours { token, notification } => (token, notification),
            Claimed::Taken => return Ok(false),
        };
        let stored = stored.and_then(|json| serde_json::from_str::<Notification>(&json).ok());
        let message = stored.as_ref().unwrap_or(notification);
        if let Err(error) = publish(&self.clients.sns, &destination.topic_arn, destination.format, message).await {
            // A claim left behind waits for this request's retry or goes stale: try harder than once.
            let released = thrice(|| self.ledger.release_notification(event_id, key, &token)).await;
            if let Err(release) = released {
                tracing::error!(error = %release, "could not release the notification claim; the retry takes it over");
            }
            return Err(error);
        }
        // Published: failing the invocation now would only make its retry publish again. Left `pending`, a
        // duplicate delivery could send it again after it goes stale: try harder than once.
        if let Err(error) = thrice(|| self.ledger.mark_sent(event_id, key, &token)).await {
            tracing::error!(%error, key, "published, but could not mark the claim sent: it may be sent again");
        }
        Ok(true)
    }

    /// Parks a notification about changes made whose delivery cannot happen in this invocation, for the
    /// retry's flush. Best effort, tried thrice: unparked, it is lost (the retry finds nothing left to do).
    async fn park(&self, said: &Said) {
        let notification = &said.notification;
        let parked = match serde_json::to_string(notification) {
            Ok(json) => {
                let (key, now) = (said.key(), Utc::now().timestamp());
                thrice(|| self.ledger.park_notification(&notification.event_id, &key, &json, now)).await
            }
            Err(error) => Err(WardenError::Unexpected(error.to_string())),
        };
        if let Err(error) = parked {
            tracing::error!(%error, kind = %notification.kind, "could not park an undelivered notification; it may be lost");
        }
    }

    /// Sends what earlier attempts of this event left unsent, each once: what they parked (then removed) and
    /// claims they took but died before sending. One Query. `Ok(true)`: something was sent now.
    async fn flush(&self, cx: &Context<'_>) -> Result<bool, WardenError> {
        let event_id = &cx.event.id;
        let unfinished = self.ledger.unfinished_notifications(event_id, &cx.request_id, Utc::now().timestamp()).await?;
        let mut sent = false;
        for (key, json) in unfinished.parked {
            match serde_json::from_str::<Notification>(&json) {
                Ok(notification) => sent |= self.tell(cx, &notification, &key).await?,
                Err(e) => tracing::error!(error = %e, "a parked notification is unreadable; dropped"),
            }
            self.ledger.unpark_notification(event_id, &key).await?;
        }
        for (key, json) in unfinished.pending {
            match (serde_json::from_str::<Notification>(&json), self.destination_of(&key)) {
                (Ok(notification), Some(destination)) => {
                    sent |= self.send_claimed(cx, &destination, &notification, &key).await?;
                }
                _ => tracing::error!(key, "a claimed notification is unreadable or its topic is gone; dropped"),
            }
        }
        Ok(sent)
    }

    /// Records a standing finding's fingerprint: `false` when it was told already (unchanged, within a week).
    async fn note_standing(&self, cx: &Context<'_>, report: &Report) -> Result<bool, WardenError> {
        let Report::Standing { pk, sk, fingerprint, .. } = report else { return Ok(true) };
        // The registry's ledger: in a hub, each member's standing findings are its own.
        let noted = cx.ledger().note_standing(pk, sk, fingerprint, Utc::now().timestamp()).await?;
        if !noted {
            tracing::info!(pk, sk, "standing finding unchanged since its last report");
        }
        Ok(noted)
    }

    /// Forgets a standing finding whose telling failed (so the retry finds it new), or that is gone (so its
    /// return is told). Best effort: at worst it waits a week.
    async fn forget_standing(&self, cx: &Context<'_>, report: &Report) {
        let (Report::Standing { pk, sk, .. } | Report::Cleared { pk, sk }) = report else { return };
        if let Err(error) = cx.ledger().forget_standing(pk, sk).await {
            tracing::warn!(%error, pk, sk, "could not forget an unreported standing finding");
        }
    }
}

/// A ledger write that must not be lost to one transient failure: up to three tries (each already carries the
/// SDK's own retries), the last error returned.
async fn thrice<F, Fut>(write: F) -> Result<(), WardenError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), WardenError>>,
{
    let mut result = write().await;
    for _ in 1..3 {
        if result.is_ok() {
            break;
        }
        result = write().await;
    }
    result
}

impl Base {
    /// Tells, on this instance's first event, why the published policy is not the one it acts on
    /// (`Config::policy_problem`): a critical standing finding in the function's own ledger scope, so that every
    /// cold start does not tell it again (the same problem is told once a week) and a hub tells it once, not once
    /// per member. A failure to tell is logged and tried again on the next event.
    pub(crate) async fn tell_policy_problem(&self, cx: &Context<'_>) {
        use std::sync::atomic::Ordering;
        let Some(problem) = &self.config.policy_problem else { return };
        if self.policy_told.swap(true, Ordering::Relaxed) {
            return;
        }
        let own = Context {
            event: cx.event,
            at: cx.at.clone(),
            home: cx.home.clone(),
            registry: self.registries.own_registry(),
            deadline: cx.deadline,
            request_id: cx.request_id.clone(),
        };
        let mut reasons = problem.errors.clone();
        reasons.push(format!("acting on {}", problem.acting_on));
        let notification = Notification {
            schema: crate::notify::SCHEMA,
            kind: "policy-invalid".to_owned(),
            severity: crate::notify::Severity::Critical,
            function: self.function.to_owned(),
            repository: None,
            digest: None,
            tags: vec![],
            tags_omitted: 0,
            outcome: if problem.acting_on.contains("last valid") { "kept-last-valid" } else { "kept-compiled-in" }
                .to_owned(),
            reasons,
            reasons_omitted: 0,
            actions: vec![],
            actions_omitted: 0,
            class: None,
            dry_run: self.config.dry_run,
            event_id: cx.event.id.clone(),
            time: cx.at.clone(),
            account: None,
            region: None,
        };
        let report = Report::Standing {
            said: Said::once(notification),
            pk: format!("STANDING#{}#policy", self.function),
            sk: problem.source.clone(),
            fingerprint: problem.fingerprint.clone(),
        };
        if let Err(error) = self.report(&own, report).await {
            tracing::warn!(%error, "could not tell the policy problem: the next event tries again");
            self.policy_told.store(false, Ordering::Relaxed);
        }
    }
}
