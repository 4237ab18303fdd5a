//! `warden`: the ecr-warden command line.
//!
//! - `warden policy check [FILE]`: validate a policy file and summarise each class.
//! - `warden tags check REPOSITORY TAG [--policy FILE]`: what tag-guard would decide about pushing a tag.
//! - `warden tags history REPOSITORY TAG [--table NAME]`: what a tag pointed to over time (from the ledger).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use warden::aws::ledger::Ledger;
use warden::config::LEDGER_TABLE_ENV;
use warden::policy::{Classification, EMBEDDED_POLICY, EMBEDDED_POLICY_NAME, Policy, PolicyErrors};
use warden::tags::{PushCheck, check_push};

#[derive(Debug, Parser)]
#[command(name = "warden", version, about = "Govern Amazon ECR registries: check policies, inspect tag history")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Policy file commands.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tag commands.
    #[command(subcommand)]
    Tags(TagsCommand),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (default: the policy compiled into this build) and summarise each class.
    Check { file: Option<PathBuf> },
}

#[derive(Debug, Subcommand)]
enum TagsCommand {
    /// Show which class governs a repository and what tag-guard decides about pushing TAG (no AWS calls).
    Check {
        repository: String,
        tag: String,
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Print what TAG pointed to over time, from the tag-guard ledger.
    History {
        repository: String,
        tag: String,
        /// The ledger table (default: $WARDEN_LEDGER_TABLE).
        #[arg(long, env = LEDGER_TABLE_ENV)]
        table: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn load_policy(file: Option<&PathBuf>) -> Result<Policy, PolicyErrors> {
    match file {
        Some(path) => Policy::load(path),
        None => Policy::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Policy(PolicyCommand::Check { file }) => {
            let policy = load_policy(file.as_ref()).map_err(|e| e.to_string())?;
            print!("{}", policy.summary());
            Ok(())
        }
        Command::Tags(TagsCommand::Check { repository, tag, policy }) => {
            let policy = load_policy(policy.as_ref()).map_err(|e| e.to_string())?;
            println!("{}", describe_tag_check(&policy, &repository, &tag));
            Ok(())
        }
        Command::Tags(TagsCommand::History { repository, tag, table, json }) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let ledger = Ledger::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            let entries = ledger.history(&repository, &tag).await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?);
            } else if entries.is_empty() {
                println!("{repository}:{tag}: no history recorded");
            } else {
                println!("{repository}:{tag}");
                for entry in entries {
                    println!("  {:<25} {:<14} {}  {}", entry.at, entry.what, entry.digest, entry.detail);
                }
            }
            Ok(())
        }
    }
}

fn describe_tag_check(policy: &Policy, repository: &str, tag: &str) -> String {
    let class = match policy.classify(repository) {
        Classification::Managed(class) => class,
        Classification::Unmanaged(Some(name)) => {
            return format!("{repository}: unmanaged (class {name}); tag-guard leaves it alone");
        }
        Classification::Unmanaged(None) => {
            return format!("{repository}: no class matches and the default is unmanaged");
        }
    };
    let Some(rules) = &class.tags else {
        return format!("{repository}: class {} declares no tag rules; `{tag}` is recorded only", class.name);
    };
    let verdict = match check_push(rules, tag) {
        PushCheck::Conforming { protected: true } => "allowed, protected (may never move)".to_owned(),
        PushCheck::Conforming { protected: false } if rules.is_mutable(tag) => "allowed, mutable".to_owned(),
        PushCheck::Conforming { protected: false } => "allowed".to_owned(),
        PushCheck::OwnTag => "a tag ecr-warden adds itself (quarantine or promotion)".to_owned(),
        PushCheck::NotAllowed { reason } => {
            format!("NOT allowed: {reason}; remediation `{}`", rules.remediation.as_str())
        }
    };
    format!("{repository}: class {}\n{tag}: {verdict}", class.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_check_reports_class_and_verdict() {
        let policy = load_policy(None).expect("embedded policy is valid");
        let cases = [
            ("prod/payments-api", "v1.2.3", "allowed, protected"),
            ("prod/payments-api", "latest", "allowed, mutable"),
            ("prod/payments-api", "feature-x", "NOT allowed"),
            ("prod/payments-api", "quarantine-0123456789ab", "adds itself"),
            ("sandbox/mine", "anything", "unmanaged"),
        ];
        for (repository, tag, expected) in cases {
            let text = describe_tag_check(&policy, repository, tag);
            assert!(text.contains(expected), "{repository}:{tag} -> {text}");
        }
    }

    #[test]
    fn cli_parses_every_command() {
        Cli::try_parse_from(["warden", "policy", "check", "warden.toml"]).expect("policy check");
        Cli::try_parse_from(["warden", "tags", "check", "prod/a", "v1"]).expect("tags check");
        Cli::try_parse_from(["warden", "tags", "history", "prod/a", "v1", "--table", "t"]).expect("history");
        assert!(Cli::try_parse_from(["warden", "tags", "history", "prod/a"]).is_err());
    }
}
