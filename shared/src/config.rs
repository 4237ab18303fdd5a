//! Deployment configuration, read once at init from the environment.

use crate::WardenError;

/// DynamoDB table holding the tag ledger and notification dedup records.
pub const LEDGER_TABLE_ENV: &str = "WARDEN_LEDGER_TABLE";
/// SNS topic notifications go to. Without it notifications are only logged.
pub const TOPIC_ARN_ENV: &str = "WARDEN_TOPIC_ARN";
/// `true`: decide and report, change nothing in ECR.
pub const DRY_RUN_ENV: &str = "WARDEN_DRY_RUN";

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub ledger_table: Option<String>,
    pub topic_arn: Option<String>,
    pub dry_run: bool,
}

impl Config {
    pub fn from_env() -> Result<Self, WardenError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let dry_run = match var(DRY_RUN_ENV).as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => {
                return Err(WardenError::Config(format!("{DRY_RUN_ENV}=`{other}`: use true or false")));
            }
        };
        Ok(Self { ledger_table: var(LEDGER_TABLE_ENV), topic_arn: var(TOPIC_ARN_ENV), dry_run })
    }

    /// The ledger table, required by functions that keep state.
    pub fn require_ledger_table(&self) -> Result<&str, WardenError> {
        self.ledger_table.as_deref().ok_or_else(|| WardenError::Config(format!("{LEDGER_TABLE_ENV} is not set")))
    }
}
