//! `warden`: the ecr-warden command line.
//!
//! - `warden policy check [FILE]`: validate a policy file and summarise each class.
//! - `warden policy publish FILE --to SOURCE`: validate it and publish it where the functions read it (S3, SSM,
//!   AppConfig; `WARDEN_POLICY_SOURCE`).
//! - `warden tags check REPOSITORY TAG [--policy FILE]`: what tag-guard would decide about pushing a tag.
//! - `warden tags backfill [REPOSITORY...]`: record the protected tags the ledger does not know yet.
//! - `warden tags history REPOSITORY TAG [--table NAME]`: what a tag pointed to over time (from the ledger).
//! - `warden tags accept REPOSITORY TAG [--digest D] --reason TEXT`: accept a legitimate move of a protected
//!   tag: the ledger records it where it points now (or at D), naming who (STS) and why.
//! - `warden gate evaluate REPOSITORY (DIGEST|TAG)`: what scan-gate decides about an image, without acting.
//! - `warden lifecycle preview ...`: what an ECR lifecycle policy (a file, a live repository's, or a class's
//!   native policy) would expire, evaluated exactly as ECR does, in a second.

mod audit;
mod gate;
mod publish;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use warden::aws::ledger::Ledger;
use warden::aws::{Clients, Found, ecr, retention};
use warden::config::LEDGER_TABLE_ENV;
use warden::lifecycle::{LifecyclePolicy, evaluate, parse_images};
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
    /// Scan gate commands.
    #[command(subcommand)]
    Gate(GateCommand),
    /// Lifecycle policy commands.
    #[command(subcommand)]
    Lifecycle(LifecycleCommand),
    /// The registry posture audit: settings, policies, scanning, replication and the policy's classes checked
    /// against the ECR guide's practices, each finding with its fix.
    Audit(audit::AuditArgs),
}

#[derive(Debug, Subcommand)]
enum LifecycleCommand {
    /// What an ECR lifecycle policy would expire or archive, exactly as ECR evaluates it (the
    /// GetLifecyclePolicyPreview response shape), offline from files or live from a repository.
    Preview {
        /// The lifecycle policy JSON (default with --repository: the repository's current policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// With --repository: preview the native policy of the repository's class instead (what lifecycle
        /// puts once the class sets `[class.lifecycle] apply = true`).
        #[arg(long, conflicts_with_all = ["policy", "images"])]
        class: bool,
        /// The warden policy --class reads (default: the embedded warden.toml).
        #[arg(long, value_name = "FILE", requires = "class")]
        warden_policy: Option<PathBuf>,
        /// `aws ecr describe-images` output to evaluate.
        #[arg(long, conflicts_with = "repository", required_unless_present = "repository")]
        images: Option<PathBuf>,
        /// Read the images (all pages, every storage class) from this repository instead.
        #[arg(long)]
        repository: Option<String>,
        /// Evaluate as of this time (RFC 3339; default: now).
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum GateCommand {
    /// Evaluate an image against its class's gate with its current scan results; changes nothing.
    Evaluate {
        repository: String,
        /// A digest (`sha256:...`) or a tag.
        image: String,
        /// Where findings come from: ECR's scan results (`basic`) or Amazon Inspector (`enhanced`).
        #[arg(long, value_enum, default_value = "basic")]
        scanner: Scanner,
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Scanner {
    Basic,
    Enhanced,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (default: the policy compiled into this build) and summarise each class.
    Check { file: Option<PathBuf> },
    /// Validate a policy file and publish it where the functions read it (WARDEN_POLICY_SOURCE): nothing is
    /// uploaded unless it validates; S3 and SSM are read back.
    Publish {
        file: PathBuf,
        /// s3://bucket/key, ssm:/parameter/name, or appconfig:<application id>/<environment id>/<profile id>.
        #[arg(long)]
        to: String,
        /// AppConfig: the deployment strategy (id).
        #[arg(long, default_value = publish::ALL_AT_ONCE)]
        deployment_strategy: String,
    },
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
    /// Accept a protected tag where it points now (or at --digest): tag-guard's ledger records that image as
    /// the tag's from now on, with who (the caller's AWS identity) and why in its history.
    Accept {
        repository: String,
        tag: String,
        /// The image to accept (default: the one the tag points at now).
        #[arg(long)]
        digest: Option<String>,
        /// Why the move is legitimate (kept in the tag's history).
        #[arg(long)]
        reason: String,
        /// The ledger table (default: $WARDEN_LEDGER_TABLE).
        #[arg(long, env = LEDGER_TABLE_ENV)]
        table: String,
    },
    /// Record in tag-guard's ledger the protected tags it does not know yet (tags that existed before
    /// ecr-warden, or whose push events were lost), where they point now; never changes a recorded pointer.
    Backfill {
        /// Repositories to backfill (default: every repository the policy manages).
        repositories: Vec<String>,
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The ledger table (default: $WARDEN_LEDGER_TABLE).
        #[arg(long, env = LEDGER_TABLE_ENV)]
        table: String,
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
        /// A hub's member registry, as ACCOUNT:REGION (its records are kept apart in the hub's ledger).
        #[arg(long)]
        registry: Option<String>,
    },
}

/// `ACCOUNT:REGION`, checked: the scope a hub keeps that member registry's ledger records under.
fn member_registry(text: &str) -> Result<String, String> {
    match text.split_once(':') {
        Some((account, region)) if warden::reach::is_account_id(account) && warden::reach::is_region(region) => {
            Ok(format!("{account}:{region}"))
        }
        _ => Err(format!("--registry `{text}`: use ACCOUNT:REGION, e.g. 222222222222:eu-west-1")),
    }
}

/// The native lifecycle policy of `repository`'s class, from the warden policy `file` (or the embedded one).
fn class_native_policy(file: Option<&PathBuf>, repository: &str) -> Result<String, String> {
    let policy = load_policy(file).map_err(|e| e.to_string())?;
    match policy.classify(repository) {
        Classification::Managed(class) => class
            .lifecycle
            .as_ref()
            .and_then(|l| l.native.as_ref())
            .map(|native| native.text.clone())
            .ok_or_else(|| format!("class `{}` of {repository} has no native lifecycle rules", class.name)),
        Classification::Unmanaged(name) => {
            Err(format!("{repository} is not managed (class `{}`)", name.unwrap_or("default: unmanaged")))
        }
    }
}

fn load_policy(file: Option<&PathBuf>) -> Result<Policy, PolicyErrors> {
    match file {
        Some(path) => Policy::load(path),
        None => Policy::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Command::Audit(args) => return audit::run(args).await,
        command => command,
    };
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Policy(PolicyCommand::Publish { file, to, deployment_strategy }) => {
            println!("{}", publish::publish(&file, &to, &deployment_strategy).await?);
            Ok(())
        }
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
        Command::Gate(GateCommand::Evaluate { repository, image, scanner, policy, json }) => {
            gate::evaluate(repository, image, scanner, policy, json).await
        }
        // main runs the audit itself: its exit code says more than success or failure.
        Command::Audit(args) => Err(format!("{args:?} is run by main")),
        Command::Lifecycle(LifecycleCommand::Preview { policy, class, warden_policy, images, repository, now }) => {
            lifecycle_preview(policy, class, warden_policy, images, repository, now).await
        }
        Command::Tags(TagsCommand::Accept { repository, tag, digest, reason, table }) => {
            tags_accept(&repository, &tag, digest.as_deref(), &reason, table).await
        }
        Command::Tags(TagsCommand::Backfill { repositories, policy, table }) => {
            tags_backfill(repositories, policy.as_ref(), table).await
        }
        Command::Tags(TagsCommand::History { repository, tag, table, json, registry }) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let ledger = Ledger::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            let ledger = match registry.as_deref().map(member_registry).transpose()? {
                Some(scope) => ledger.scoped(&scope),
                None => ledger,
            };
            let entries = ledger.history(&repository, &tag).await.map_err(|e| e.to_string())?;
            print!("{}", render_history(&repository, &tag, &entries, json).map_err(|e| e.to_string())?);
            Ok(())
        }
    }
}

/// `warden tags accept`: the caller's identity from STS, then the acceptance (fresh reads, conditional write).
async fn tags_accept(
    repository: &str,
    tag: &str,
    digest: Option<&str>,
    reason: &str,
    table: String,
) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("--reason must say why the move is legitimate".into());
    }
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = Clients::new(&sdk);
    let identity = aws_sdk_sts::Client::new(&sdk).get_caller_identity().send().await;
    let who = identity.map_err(|e| format!("who is accepting (sts:GetCallerIdentity): {e}"))?;
    let who = who.arn().unwrap_or("an unknown caller").to_owned();
    let ledger = Ledger::new(clients.dynamodb.clone(), table);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let accepted = warden::aws::accept::accept(&clients.ecr, &ledger, (repository, tag, digest), (&who, reason), &now)
        .await
        .map_err(|e| e.to_string())?;
    match accepted {
        warden::aws::accept::Accepted::AlreadyRecorded { digest } => {
            println!("{repository}:{tag}: the ledger records {digest} already; nothing changed");
        }
        warden::aws::accept::Accepted::Moved { previous, digest } => {
            let was = previous.map_or_else(|| "nothing recorded".to_owned(), |p| format!("was {}", p.digest));
            println!("{repository}:{tag}: accepted at {digest} ({was}) by {who}: {reason}");
        }
    }
    Ok(())
}

/// `warden tags backfill`: each managed repository with protected tags (or those named), what the ledger did not
/// know recorded; one line per repository, the AWS calls on stderr.
async fn tags_backfill(named: Vec<String>, policy: Option<&PathBuf>, table: String) -> Result<(), String> {
    use warden::aws::Found;
    let policy = load_policy(policy).map_err(|e| e.to_string())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = Clients::new(&sdk);
    let ledger = Ledger::new(clients.dynamodb.clone(), table);
    let repositories = match named.is_empty() {
        true => warden::aws::ecr::list_repositories(&clients.ecr).await.map_err(|e| e.to_string())?,
        false => vec![],
    };
    let names = if named.is_empty() { repositories.into_iter().map(|r| r.name).collect() } else { named };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let run = format!("warden-tags-backfill-{now}");
    let (mut recorded, mut protected) = (0, 0);
    for repository in &names {
        let rules = match policy.classify(repository) {
            Classification::Managed(class) => class.tags.as_ref().filter(|rules| !rules.protected.is_empty()),
            Classification::Unmanaged(_) => None,
        };
        let Some(rules) = rules else {
            println!("{repository}: no protected tags in its class; skipped");
            continue;
        };
        let done =
            warden::aws::backfill::backfill_repository(&clients.ecr, &ledger, (repository, rules), (&now, &run), None)
                .await
                .map_err(|e| format!("{repository}: {e}"))?;
        let Found::Yes(done) = done else {
            println!("{repository}: no such repository; skipped");
            continue;
        };
        let tags: Vec<String> = done.recorded.iter().map(|(tag, digest)| format!("{tag}={digest}")).collect();
        println!(
            "{repository}: {} protected tags, {} recorded now{}",
            done.protected,
            done.recorded.len(),
            if tags.is_empty() { String::new() } else { format!(": {}", tags.join(", ")) }
        );
        (recorded, protected) = (recorded + done.recorded.len(), protected + done.protected);
    }
    println!("{recorded} of {protected} protected tags recorded now; the rest were known to the ledger");
    let calls: Vec<String> = clients.calls.snapshot().iter().map(|(call, n)| format!("{call}×{n}")).collect();
    eprintln!("AWS calls {}", calls.join(", "));
    Ok(())
}

/// `warden tags history`: a tag's history oldest first, one row per change (or JSON).
fn render_history(
    repository: &str,
    tag: &str,
    entries: &[warden::aws::ledger::HistoryEntry],
    json: bool,
) -> Result<String, serde_json::Error> {
    if json {
        return Ok(serde_json::to_string_pretty(entries)? + "\n");
    }
    if entries.is_empty() {
        return Ok(format!("{repository}:{tag}: no history recorded\n"));
    }
    let mut out = format!("{repository}:{tag}\n");
    for entry in entries {
        out.push_str(&format!("  {:<25} {:<14} {}  {}\n", entry.at, entry.what, entry.digest, entry.detail));
    }
    Ok(out)
}

/// `warden lifecycle preview`: what an ECR lifecycle policy would do, evaluated exactly as ECR does.
async fn lifecycle_preview(
    policy: Option<PathBuf>,
    class: bool,
    warden_policy: Option<PathBuf>,
    images: Option<PathBuf>,
    repository: Option<String>,
    now: Option<String>,
) -> Result<(), String> {
    let now = match now {
        Some(text) => {
            chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| format!("--now `{text}`: {e}"))?.timestamp()
        }
        None => chrono::Utc::now().timestamp(),
    };
    let read = |path: &PathBuf| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let (policy_text, inventory) = match (repository, images) {
        (Some(repository), _) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let clients = Clients::new(&sdk);
            let policy_text = match &policy {
                Some(path) => read(path)?,
                None if class => class_native_policy(warden_policy.as_ref(), &repository)?,
                None => match retention::current_policy(&clients.ecr, &repository).await.map_err(|e| e.to_string())? {
                    Found::Yes(Some(text)) => text,
                    Found::Yes(None) => {
                        return Err(format!("{repository} has no lifecycle policy; give one with --policy"));
                    }
                    _ => return Err(format!("no repository {repository}")),
                },
            };
            let inventory =
                match ecr::lifecycle_inventory(&clients.ecr, &repository).await.map_err(|e| e.to_string())? {
                    Found::Yes(images) => images,
                    _ => return Err(format!("no repository {repository}")),
                };
            (policy_text, inventory)
        }
        (None, Some(images)) => {
            let policy = policy.as_ref().ok_or("--policy is required with --images")?;
            (read(policy)?, parse_images(&read(&images)?).map_err(|e| format!("{}: {e}", images.display()))?)
        }
        (None, None) => return Err("give --images or --repository".into()),
    };
    let policy = LifecyclePolicy::parse(&policy_text).map_err(|e| format!("invalid lifecycle policy:\n{e}"))?;
    let preview = evaluate(&policy, &inventory, now);
    println!("{}", serde_json::to_string_pretty(&preview).map_err(|e| e.to_string())?);
    Ok(())
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
        PushCheck::OwnTag(kind) => format!(
            "shaped like a {} tag ecr-warden adds itself: accepted only with its record in the ledger, otherwise \
             a forgery (removed with remediation `{}`)",
            kind.as_str(),
            rules.remediation.as_str()
        ),
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
    fn a_member_registry_is_named_account_colon_region() {
        assert_eq!(member_registry("222222222222:eu-west-1"), Ok("222222222222:eu-west-1".to_owned()));
        for bad in ["222222222222", "2222:eu-west-1", "222222222222:Europe", ":eu-west-1"] {
            assert!(member_registry(bad).expect_err(bad).contains("ACCOUNT:REGION"), "{bad}");
        }
    }

    #[test]
    fn tag_history_renders_oldest_first_as_a_table_or_json() {
        use warden::aws::ledger::HistoryEntry;
        let entry = |at: &str, what: &str, digest: &str, detail: &str| HistoryEntry {
            at: at.into(),
            what: what.into(),
            digest: digest.into(),
            detail: detail.into(),
            event_id: if what == "moved" { "e-2".into() } else { String::new() },
        };
        let entries = [
            entry("2026-11-20T09:00:00Z", "current", "sha256:aaa", "first seen"),
            entry("2026-11-21T10:30:00Z", "moved", "sha256:aaa", "moved to sha256:bbb"),
            entry("2026-11-21T10:30:01Z", "reverted", "sha256:aaa", "pointed back at sha256:aaa"),
        ];
        let table = render_history("prod/api", "v1.2.3", &entries, false).expect("table");
        assert_eq!(
            table,
            "prod/api:v1.2.3\n\
             \x20 2026-11-20T09:00:00Z      current        sha256:aaa  first seen\n\
             \x20 2026-11-21T10:30:00Z      moved          sha256:aaa  moved to sha256:bbb\n\
             \x20 2026-11-21T10:30:01Z      reverted       sha256:aaa  pointed back at sha256:aaa\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_history("prod/api", "v1.2.3", &entries, true).expect("json")).expect("valid");
        assert_eq!(
            json[1],
            serde_json::json!({"at": "2026-11-21T10:30:00Z", "what": "moved", "digest": "sha256:aaa",
            "detail": "moved to sha256:bbb", "event_id": "e-2"})
        );
        assert!(json[0].get("event_id").is_none(), "an empty event id is left out");
        assert_eq!(render_history("prod/api", "v9", &[], false).expect("empty"), "prod/api:v9: no history recorded\n");
    }

    #[test]
    fn cli_parses_every_command() {
        Cli::try_parse_from(["warden", "policy", "check", "warden.toml"]).expect("policy check");
        Cli::try_parse_from(["warden", "tags", "check", "prod/a", "v1"]).expect("tags check");
        Cli::try_parse_from(["warden", "tags", "history", "prod/a", "v1", "--table", "t"]).expect("history");
        Cli::try_parse_from(["warden", "gate", "evaluate", "prod/a", "v1", "--scanner", "enhanced"]).expect("gate");
        assert!(Cli::try_parse_from(["warden", "gate", "evaluate", "prod/a", "v1", "--scanner", "both"]).is_err());
        Cli::try_parse_from(["warden", "lifecycle", "preview", "--policy", "p.json", "--images", "i.json"])
            .expect("preview");
        Cli::try_parse_from(["warden", "lifecycle", "preview", "--repository", "prod/a"]).expect("live preview");
        Cli::try_parse_from(["warden", "lifecycle", "preview", "--repository", "prod/a", "--class"]).expect("class");
        Cli::try_parse_from(["warden", "lifecycle", "preview", "--repository", "a", "--class", "--warden-policy", "w"])
            .expect("class of a policy file");
        assert!(
            Cli::try_parse_from(["warden", "lifecycle", "preview", "--images", "i.json", "--class"]).is_err(),
            "--class needs a live repository"
        );
        assert!(
            Cli::try_parse_from(["warden", "lifecycle", "preview", "--policy", "p.json"]).is_err(),
            "images or repository"
        );
        assert!(Cli::try_parse_from(["warden", "tags", "history", "prod/a"]).is_err());
        Cli::try_parse_from(["warden", "tags", "accept", "prod/a", "v1", "--reason", "CHG-1", "--table", "t"])
            .expect("accept");
        assert!(Cli::try_parse_from(["warden", "tags", "accept", "prod/a", "v1", "--table", "t"]).is_err(), "why");
    }
}
