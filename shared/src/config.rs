//! Deployment configuration, read once at init from the environment.

use crate::WardenError;

/// DynamoDB table holding the tag ledger and notification dedup records.
pub const LEDGER_TABLE_ENV: &str = "WARDEN_LEDGER_TABLE";
/// SNS topic notifications go to. Without it notifications are only logged.
pub const TOPIC_ARN_ENV: &str = "WARDEN_TOPIC_ARN";
/// `true`: decide and report, change nothing in ECR.
pub const DRY_RUN_ENV: &str = "WARDEN_DRY_RUN";
/// Topics the policy's notification routes name: `name=arn,name=arn`.
pub const TOPICS_ENV: &str = "WARDEN_TOPICS";
/// A hub's sweeping functions: the URL of the FIFO queue their sweep work items go through (see the fanout module).
pub const SWEEP_QUEUE_ENV: &str = "WARDEN_SWEEP_QUEUE";

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub ledger_table: Option<String>,
    pub topic_arn: Option<String>,
    pub dry_run: bool,
    /// Route topic names to ARNs.
    pub topics: std::collections::BTreeMap<String, String>,
    /// How long a tag-removal lease lasts (`None`: the lease module's `LEASE_SECONDS`). Not read from the
    /// environment: tests that compress Lambda's minute between retries shorten it.
    pub lease: Option<std::time::Duration>,
    /// Which registries the function acts on: its own (the default) or, as a hub, an allow-list's.
    pub reach: crate::reach::Reach,
    /// A hub's sweep queue (`WARDEN_SWEEP_QUEUE`): where a schedule's work items go.
    pub sweep_queue: Option<String>,
    /// Why the published policy (`WARDEN_POLICY_SOURCE`) is not the one acted on, found at init; told once.
    pub policy_problem: Option<crate::policy::source::PolicyProblem>,
}

impl Config {
    pub fn from_env() -> Result<Self, WardenError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a table in tests).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, WardenError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let dry_run = flag(DRY_RUN_ENV, var(DRY_RUN_ENV).as_deref())?;
        let mut topics = std::collections::BTreeMap::new();
        for pair in var(TOPICS_ENV).unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((name, arn)) if !name.trim().is_empty() && arn.trim().starts_with("arn:") => {
                    topics.insert(name.trim().to_owned(), arn.trim().to_owned());
                }
                _ => return Err(WardenError::Config(format!("{TOPICS_ENV}: `{pair}` is not name=<topic arn>"))),
            }
        }
        let reach = crate::reach::Reach::from_vars(&lookup)?;
        Ok(Self {
            ledger_table: var(LEDGER_TABLE_ENV),
            topic_arn: var(TOPIC_ARN_ENV),
            dry_run,
            topics,
            lease: None,
            reach,
            sweep_queue: var(SWEEP_QUEUE_ENV),
            policy_problem: None,
        })
    }

    /// A true/false setting of the environment (unset: false).
    pub fn flag_from_env(name: &str) -> Result<bool, WardenError> {
        flag(name, std::env::var(name).ok().as_deref().map(str::trim).filter(|v| !v.is_empty()))
    }

    /// What this deployment needs of a policy beyond its own validity: every topic its notification routes name
    /// is one `WARDEN_TOPICS` names. `Err` says what is missing.
    pub fn check_policy(&self, policy: &crate::policy::Policy) -> Result<(), String> {
        match policy.notify.routes.iter().find(|r| !self.topics.contains_key(&r.topic)) {
            Some(route) => Err(format!(
                "the policy routes notifications to topic `{}`, which {TOPICS_ENV} does not name",
                route.topic
            )),
            None => Ok(()),
        }
    }

    /// The ledger table, required by functions that keep state.
    pub fn require_ledger_table(&self) -> Result<&str, WardenError> {
        self.ledger_table.as_deref().ok_or_else(|| WardenError::Config(format!("{LEDGER_TABLE_ENV} is not set")))
    }
}

/// `true`/`1`/`yes` or `false`/`0`/`no` (any case); unset is false; anything else is a configuration error.
fn flag(name: &str, value: Option<&str>) -> Result<bool, WardenError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(WardenError::Config(format!("{name}=`{other}`: use true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, WardenError> {
        Config::from_vars(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn reads_variables_and_rejects_a_bad_dry_run() {
        let full = config(&[(LEDGER_TABLE_ENV, "ledger"), (DRY_RUN_ENV, "TRUE"), (TOPIC_ARN_ENV, " ")]).expect("valid");
        assert_eq!(full.ledger_table.as_deref(), Some("ledger"));
        assert!(full.dry_run);
        assert_eq!(full.topic_arn, None, "blank means unset");
        for (value, dry_run) in [("false", false), ("0", false), ("no", false), ("yes", true), ("1", true)] {
            assert_eq!(config(&[(DRY_RUN_ENV, value)]).expect("valid").dry_run, dry_run, "{value}");
        }
        let error = config(&[(DRY_RUN_ENV, "maybe")]).expect_err("invalid");
        assert!(error.to_string().contains(DRY_RUN_ENV));
        let routed =
            config(&[(TOPICS_ENV, "chat=arn:aws:sns:us-east-1:1:chat, security = arn:aws:sns:us-east-1:1:sec")])
                .expect("valid");
        assert_eq!(routed.topics.len(), 2);
        assert_eq!(routed.topics["security"], "arn:aws:sns:us-east-1:1:sec");
        assert!(config(&[(TOPICS_ENV, "chat")]).is_err());
        assert!(config(&[(TOPICS_ENV, "chat=not-an-arn")]).is_err());
        let empty = config(&[]).expect("valid");
        assert!(empty.require_ledger_table().expect_err("required").to_string().contains(LEDGER_TABLE_ENV));
    }
}
