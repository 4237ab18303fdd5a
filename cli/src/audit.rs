//! `warden audit`: the registry posture audit of one or more regions, as a table, JSON or SARIF, with an exit
//! code for CI (0 clean, 1 findings at or above `--fail-on`, 2 could not audit or publish); `--security-hub`
//! also publishes the findings as ASFF.

use std::path::PathBuf;
use std::process::ExitCode;
use warden::audit::security_hub::unseen;
use warden::audit::{Finding, Snapshot, evaluate, render};
use warden::aws::Clients;
use warden::aws::audit::{Readers, snapshot};
use warden::aws::ledger::Ledger;
use warden::aws::security_hub::publish;
use warden::config::LEDGER_TABLE_ENV;
use warden::kinds::Severity;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Regions to audit, comma-separated (default: the configured region).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// The policy file (default: the policy compiled into this build).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The ledger table with ecr-warden's approval records (without it, repositories holding promotion tags
    /// are reported as `audit-incomplete`, never as forged).
    #[arg(long, env = LEDGER_TABLE_ENV)]
    table: Option<String>,
    /// Print `ecr-warden.audit/v1` JSON.
    #[arg(long, conflicts_with = "sarif")]
    json: bool,
    /// Print SARIF 2.1.0 (code-scanning views).
    #[arg(long)]
    sarif: bool,
    /// Also publish the findings to AWS Security Hub (ASFF, BatchImportFindings) in each audited region, and
    /// archive the ones published before that this audit no longer finds (where it could see).
    #[arg(long)]
    security_hub: bool,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum)]
    fail_on: Option<FailOn>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FailOn {
    Info,
    Warning,
    Critical,
}

impl From<FailOn> for Severity {
    fn from(level: FailOn) -> Self {
        match level {
            FailOn::Info => Severity::Info,
            FailOn::Warning => Severity::Warning,
            FailOn::Critical => Severity::Critical,
        }
    }
}

pub async fn run(args: AuditArgs) -> ExitCode {
    let (findings, unpublished) = match audit(&args).await {
        Ok(audited) => audited,
        Err(message) => {
            eprintln!("could not audit: {message}");
            return ExitCode::from(2);
        }
    };
    let printed = if args.sarif {
        serde_json::to_string_pretty(&render::sarif(&findings)).map(|s| s + "\n")
    } else if args.json {
        serde_json::to_string_pretty(&render::json(&findings)).map(|s| s + "\n")
    } else {
        Ok(render::table(&findings))
    };
    match printed {
        Ok(text) => print!("{text}"),
        Err(error) => {
            eprintln!("could not render the findings: {error}");
            return ExitCode::from(2);
        }
    }
    // The report is printed either way; a publication that failed still fails the command.
    if let Some(message) = unpublished {
        eprintln!("could not publish to Security Hub: {message}");
        return ExitCode::from(2);
    }
    ExitCode::from(render::exit_code(&findings, args.fail_on.map(Severity::from)))
}

/// One audited region: where it is, and the clients that read it (and publish to its Security Hub).
struct Audited {
    account: String,
    region: String,
    sdk: aws_config::SdkConfig,
    clients: Clients,
}

/// The findings, and why publishing them to Security Hub failed (`--security-hub`), if it did.
async fn audit(args: &AuditArgs) -> Result<(Vec<Finding>, Option<String>), String> {
    let policy = crate::load_policy(args.policy.as_ref()).map_err(|e| e.to_string())?;
    let (audited, snapshots) = read(args, &policy).await?;
    let findings = evaluate(&snapshots, &policy, chrono::Utc::now().date_naive());
    let unpublished = match args.security_hub {
        true => publish_all(&audited, &snapshots, &findings).await.err(),
        false => None,
    };
    Ok((findings, unpublished))
}

/// Publishes the findings to each audited region's Security Hub, the calls of each on stderr.
async fn publish_all(audited: &[Audited], snapshots: &[Snapshot], findings: &[Finding]) -> Result<(), String> {
    let blind = unseen(snapshots);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for Audited { account, region, sdk, clients } in audited {
        let hub = clients.security_hub(sdk);
        let published = publish(&hub, findings, &blind, (account, region), &now).await;
        let published = published.map_err(|e| format!("{region}: {e}"))?;
        let calls = clients.calls.snapshot();
        let hub_calls: Vec<String> =
            calls.iter().filter(|(c, _)| c.starts_with("SecurityHub.")).map(|(c, n)| format!("{c}×{n}")).collect();
        eprintln!("{region}: {published} (AWS calls {})", hub_calls.join(", "));
    }
    Ok(())
}

/// Every region's snapshot, with the clients that read it; the calls each region took on stderr.
async fn read(args: &AuditArgs, policy: &warden::policy::Policy) -> Result<(Vec<Audited>, Vec<Snapshot>), String> {
    let regions = if args.regions.is_empty() {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        vec![sdk.region().map(|r| r.to_string()).ok_or("no region: set AWS_REGION or give --regions")?]
    } else {
        args.regions.clone()
    };
    let (mut audited, mut snapshots) = (Vec::with_capacity(regions.len()), Vec::with_capacity(regions.len()));
    for region in &regions {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .load()
            .await;
        let clients = Clients::new(&sdk);
        let inspector = clients.inspector(&sdk);
        let registry = clients.ecr.describe_registry().send().await.map_err(|e| format!("{region}: {e}"))?;
        let account = registry.registry_id().unwrap_or_default().to_owned();
        let ledger = args.table.as_ref().map(|t| Ledger::new(clients.dynamodb.clone(), t.clone()));
        let readers = Readers { ecr: &clients.ecr, inspector: &inspector, ledger: ledger.as_ref() };
        let mut progress = |done: usize, total: usize| {
            if done.is_multiple_of(100) || done == total {
                eprintln!("{region}: {done} of {total} repositories read");
            }
        };
        let read = snapshot(readers, policy, (&account, region), None, &mut progress).await;
        snapshots.push(read.map_err(|e| format!("{region}: {e}"))?);
        let calls: Vec<String> = clients.calls.snapshot().iter().map(|(call, n)| format!("{call}×{n}")).collect();
        eprintln!("{region}: AWS calls {}", calls.join(", "));
        audited.push(Audited { account, region: region.clone(), sdk, clients });
    }
    Ok((audited, snapshots))
}
