//! audit: the registry posture audit on a schedule. Reads this account's registry in this region, checks it
//! against the policy (`warden::audit`), and tells operators when the findings change, and weekly while they
//! stand: one summary, never one message per run or per finding. Read-only: it changes nothing in ECR.

use chrono::Utc;
use serde_json::Value;
use warden::WardenError;
use warden::audit::security_hub::unseen;
use warden::audit::{Finding, evaluate};
use warden::aws::Clients;
use warden::aws::audit::{Readers, snapshot};
use warden::aws::security_hub::publish;
use warden::config::Config;
use warden::delivery::{Report, Said};
use warden::event::EventKind;
use warden::handler::{Base, Context};
use warden::invocation::Invocation;
use warden::kinds::Severity;
use warden::outcome::{AuditDecision, Outcome};
use warden::policy::Policy;

pub const FUNCTION: &str = "audit";
/// `true`: the audit also publishes its findings to Security Hub (ASFF), archiving the ones resolved.
pub const SECURITY_HUB_ENV: &str = "WARDEN_SECURITY_HUB";
/// Reading stops this long before the invocation's deadline, leaving time to check, tell and publish (Security
/// Hub takes a batch of 100 findings per call); what was not read is reported as `audit-incomplete`.
pub const MARGIN: std::time::Duration = std::time::Duration::from_secs(90);
/// The notification kind of the audit's summary.
pub const KIND: &str = "audit-findings";

#[derive(Debug)]
pub struct Audit {
    pub(crate) base: Base,
    /// Where findings are published besides the summary, when the deployment enables it.
    security_hub: Option<aws_sdk_securityhub::Client>,
}

impl Audit {
    pub fn new(
        policy: Policy,
        config: Config,
        clients: Clients,
        inspector: aws_sdk_inspector2::Client,
        security_hub: Option<aws_sdk_securityhub::Client>,
    ) -> Result<Self, WardenError> {
        Ok(Self { base: Base::new(FUNCTION, policy, config, clients, Some(inspector))?, security_hub })
    }

    pub async fn handle(&self, payload: Value, invocation: &Invocation) -> Result<Outcome, WardenError> {
        self.base.run(payload, invocation, self).await
    }

    async fn audit(&self, cx: &Context<'_>) -> Result<Outcome, WardenError> {
        // The door admitted the event, so the function knows its account and region.
        let home = cx.home.as_ref().ok_or_else(|| WardenError::Config("the function's account is unknown".into()))?;
        let readers = Readers { ecr: cx.ecr(), inspector: cx.inspector()?, ledger: Some(cx.ledger()) };
        let stop_at = cx.deadline.and_then(|deadline| deadline.checked_sub(MARGIN));
        let at = (home.account.as_str(), home.region.as_str());
        let registry = snapshot(readers, &self.base.policy, at, stop_at, &mut |_, _| {}).await?;
        let repositories = registry.repositories.len();
        let registry = [registry];
        let findings = evaluate(&registry, &self.base.policy, Utc::now().date_naive());
        let mut outcome = self.base.skipped(cx, "");
        outcome.reasons = vec![summary(repositories, &findings)];
        outcome.reasons.extend(findings.iter().map(line));
        if findings.is_empty() {
            outcome.decision = AuditDecision::Clean.into();
            // Forgotten, so that findings coming back are told at once rather than within the week.
            let cleared = Report::Cleared { pk: format!("STANDING#{FUNCTION}"), sk: KIND.to_owned() };
            outcome.notified = self.base.report(cx, cleared).await?;
        } else {
            outcome.decision = AuditDecision::Findings.into();
            let severity = findings.iter().map(|f| f.severity).max().unwrap_or(Severity::Info);
            let notification =
                self.base.notification(cx, KIND, &outcome, "reported", outcome.reasons.clone(), severity);
            outcome.notified = self.base.report(cx, standing(notification, &findings)).await?;
        }
        // After the summary: a failed publication retries the invocation, and the standing summary is not
        // told twice for the same findings.
        if let Some(hub) = &self.security_hub {
            let blind = unseen(&registry);
            let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let published = publish(hub, &findings, &blind, (&home.account, &home.region), &now).await?;
            outcome.reasons.insert(1, published.to_string());
        }
        Ok(outcome)
    }
}

/// The summary's first line: how much was read, how much was found.
fn summary(repositories: usize, findings: &[Finding]) -> String {
    let (critical, warning, info) = warden::audit::render::counts(findings);
    format!("{repositories} repositories audited: {critical} critical, {warning} warning, {info} info findings")
}

/// One finding as a line of the summary.
fn line(finding: &Finding) -> String {
    format!("{} {} {}: {}", finding.severity.as_str(), finding.check.id(), finding.resource, finding.message)
}

/// The standing report of a set of findings: told when the set changes (its fingerprint), and weekly.
fn standing(notification: warden::notify::Notification, findings: &[Finding]) -> Report {
    let lines: Vec<String> = findings.iter().map(line).collect();
    Report::Standing {
        said: Said::once(notification),
        pk: format!("STANDING#{FUNCTION}"),
        sk: KIND.to_owned(),
        fingerprint: warden::fingerprint::of_lines(&lines),
    }
}

#[cfg(test)]
mod tests;

impl warden::handler::Dispatch for Audit {
    // Boxed: the read and delivery futures together are too deep a type nested in the runtime's.
    fn dispatch_event<'c>(&'c self, cx: &'c Context<'c>) -> warden::handler::Dispatched<'c> {
        match &cx.event.kind {
            EventKind::Scheduled(_) => Box::pin(self.audit(cx)),
            _ => Box::pin(std::future::ready(Ok(self.base.not_handled(cx)))),
        }
    }
}
