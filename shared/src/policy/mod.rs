//! The policy file: one TOML document that groups repositories into classes and says, per class, what every
//! function enforces. Loading is strict: unknown keys, bad patterns, rules ECR would reject and rules that
//! overlap or can never apply are errors that name the file, line and key.
//!
//! Functions load it at init without any network call: the policy is compiled into the binaries
//! ([`EMBEDDED_POLICY`], the repository's `warden.toml`), and `WARDEN_POLICY_FILE` points local runs at
//! another file.

mod gate;
mod raw;
pub mod source;
mod tags;

pub use crate::lifecycle::rules::{LifecycleRules, NativePolicy, RetentionRule, RetentionRules};
pub use gate::{AllowEntry, FindingSeverity, GateRules, OnFailure};

/// What one sweep may change at most, whatever the classes say per repository: a broken policy or a surprise
/// in the registry stops after this much and tells operators, instead of sweeping everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Images lifecycle's retention deletes in one sweep.
    pub sweep_max_deleted_images: usize,
    /// Repositories one sweep changes (a native policy put, images deleted, tag mutability set).
    pub sweep_max_changed_repositories: usize,
    /// Forged promotion or quarantine tags tag-guard's sweep removes.
    pub sweep_max_tag_removals: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { sweep_max_deleted_images: 1_000, sweep_max_changed_repositories: 25, sweep_max_tag_removals: 20 }
    }
}
pub use tags::{EcrMutability, MutabilitySetting, ProtectionEnforcement, Remediation, TagRules};

use crate::pattern::Pattern;
use crate::template::TagTemplate;
use std::fmt;
use std::path::Path;

/// The repository's `warden.toml`, compiled in: the policy deployed functions enforce.
pub const EMBEDDED_POLICY: &str = include_str!("../../../warden.toml");
/// The name errors in the embedded policy are reported under.
pub const EMBEDDED_POLICY_NAME: &str = "warden.toml";
/// Environment variable naming a policy file to use instead of the embedded one.
pub const POLICY_FILE_ENV: &str = "WARDEN_POLICY_FILE";
/// The reserved `default-class` value for "leave repositories no class matches alone".
pub const UNMANAGED: &str = "unmanaged";

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub source: String,
    pub classes: Vec<Class>,
    /// Index into `classes`, or `None` when unmatched repositories are unmanaged.
    pub default_class: Option<usize>,
    pub notify: NotifyRules,
    pub limits: Limits,
    /// What `warden policy check` warns about (the policy is valid).
    pub warnings: Vec<PolicyError>,
}

/// Where notifications go beyond the default topic, and in which format.
#[derive(Debug, Clone, Default)]
pub struct NotifyRules {
    /// Format of the default topic (`WARDEN_TOPIC_ARN`).
    pub format: crate::kinds::Format,
    /// Repositories whose successful replications are reported (failures always are).
    pub replication_successes: Vec<Pattern>,
    pub routes: Vec<Route>,
}

/// One extra destination: a topic (by name; `WARDEN_TOPICS` maps names to ARNs) and what it receives.
#[derive(Debug, Clone)]
pub struct Route {
    pub topic: String,
    pub format: crate::kinds::Format,
    /// Notification kinds; empty: all.
    pub kinds: Vec<String>,
    pub min_severity: Option<crate::kinds::Severity>,
    /// Classes; empty: all (and notifications about no class).
    pub classes: Vec<String>,
}

/// A class of repositories and its rules.
#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    pub repositories: Vec<Pattern>,
    /// The accounts whose repositories the class governs (a hub's members); empty: every account.
    pub accounts: Vec<String>,
    /// `false`: ecr-warden never touches these repositories.
    pub managed: bool,
    /// Tag conventions; `None` when the class declares none.
    pub tags: Option<TagRules>,
    /// Scan gate; `None` when the class declares none.
    pub gate: Option<GateRules>,
    /// Native lifecycle policy and extended retention; `None` when the class declares neither.
    pub lifecycle: Option<LifecycleRules>,
    /// The encryption its repositories are expected to use (`encryption = "kms"`); `None`: either.
    pub encryption: Option<Encryption>,
}

/// How a class expects its repositories' images to be encrypted at rest: what the audit checks (ECR cannot
/// change a repository's encryption after it is created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// ECR's default, AES-256 with keys ECR manages.
    Aes256,
    /// AWS KMS (`KMS` or `KMS_DSSE`): key policies, rotation and CloudTrail records of key use.
    Kms,
}

/// A tag ecr-warden adds itself. Pushed by anyone else it is a forgery: tag-guard believes one only when the
/// ledger holds the record ecr-warden writes before adding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnTagKind {
    /// A gate promotion tag: an approval deploy pipelines trust.
    Promotion,
    /// The tag that keeps an image reachable before its last tag is removed.
    Quarantine,
}

impl OwnTagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promotion => "promotion",
            Self::Quarantine => "quarantine",
        }
    }
}

impl Class {
    /// The quarantine tag of the class: its tag rules' (`""` there disables quarantine), or the default when
    /// the class declares no tag rules.
    pub fn quarantine(&self) -> Option<TagTemplate> {
        match &self.tags {
            Some(rules) => rules.quarantine.clone(),
            None => TagTemplate::parse(raw::DEFAULT_QUARANTINE).ok(),
        }
    }

    /// Patterns of every tag that protects its image in this class: tag-guard's `protected` tags, retention's
    /// `protect` tags, and the gate's promotion tags (as wildcards).
    pub fn protected_tag_patterns(&self) -> Vec<Pattern> {
        let protected = self.tags.iter().flat_map(|t| t.protected.iter().cloned());
        let retained = self.lifecycle.iter().flat_map(|l| l.retention.iter()).flat_map(|r| r.protect.iter().cloned());
        let promoted = self.gate.iter().flat_map(|g| g.promote.iter()).filter_map(|t| t.as_pattern());
        protected.chain(retained).chain(promoted).collect()
    }

    /// Which of ecr-warden's own tags `tag` is shaped like in this class, if any.
    pub fn own_tag_kind(&self, tag: &str) -> Option<OwnTagKind> {
        match &self.tags {
            Some(rules) => rules.own_tag_kind(tag),
            None if self.gate.as_ref().is_some_and(|gate| gate.is_promotion_tag(tag)) => Some(OwnTagKind::Promotion),
            None => self.quarantine().filter(|q| q.matches(tag)).map(|_| OwnTagKind::Quarantine),
        }
    }
}

/// Which class governs a repository.
#[derive(Debug, Clone, Copy)]
pub enum Classification<'a> {
    Managed(&'a Class),
    /// Matched an unmanaged class (`Some(name)`) or no class with an unmanaged default (`None`).
    Unmanaged(Option<&'a str>),
}

impl Policy {
    /// Parses and validates policy text; `source` names it in errors (a path or `warden.toml`).
    pub fn from_toml(text: &str, source: &str) -> Result<Self, PolicyErrors> {
        raw::compile(text, source)
    }

    pub fn load(path: &Path) -> Result<Self, PolicyErrors> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyErrors(vec![PolicyError {
                source: source.clone(),
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::from_toml(&text, &source)
    }

    /// The policy the functions enforce: `WARDEN_POLICY_FILE` if set, else the embedded `warden.toml`.
    pub fn from_env() -> Result<Self, PolicyErrors> {
        Self::from_override(std::env::var_os(POLICY_FILE_ENV).as_deref())
    }

    /// The policy file at `path` when one is given (and not empty), else the embedded one.
    pub fn from_override(path: Option<&std::ffi::OsStr>) -> Result<Self, PolicyErrors> {
        match path {
            Some(path) if !path.is_empty() => Self::load(Path::new(path)),
            _ => Self::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME),
        }
    }

    /// First class whose pattern matches wins; then the default.
    /// The class of `repository` where the account is not known: classes that name accounts do not match.
    pub fn classify(&self, repository: &str) -> Classification<'_> {
        self.classify_in(None, repository)
    }

    /// The class of `repository` in `account`'s registry: the first class whose patterns match and whose
    /// accounts (if it names any) include `account`, else the default class.
    pub fn classify_in(&self, account: Option<&str>, repository: &str) -> Classification<'_> {
        let in_account =
            |c: &&Class| c.accounts.is_empty() || account.is_some_and(|a| c.accounts.iter().any(|x| x == a));
        let class = self
            .classes
            .iter()
            .filter(in_account)
            .find(|c| c.repositories.iter().any(|p| p.is_match(repository)))
            .or_else(|| self.default_class.map(|i| &self.classes[i]));
        match class {
            Some(class) if class.managed => Classification::Managed(class),
            Some(class) => Classification::Unmanaged(Some(&class.name)),
            None => Classification::Unmanaged(None),
        }
    }

    /// A human summary of each class, as `warden policy check` prints it.
    pub fn summary(&self) -> String {
        let mut out = format!("{}: {} classes, valid\n", self.source, self.classes.len());
        for (i, class) in self.classes.iter().enumerate() {
            let default = if self.default_class == Some(i) { " (default)" } else { "" };
            let repos: Vec<&str> = class.repositories.iter().map(Pattern::source).collect();
            let repos = if repos.is_empty() { "(none: default class only)".to_owned() } else { repos.join(", ") };
            out.push_str(&format!("\nclass {}{default}\n  repositories: {repos}\n", class.name));
            if !class.accounts.is_empty() {
                out.push_str(&format!("  accounts: {}\n", class.accounts.join(", ")));
            }
            if !class.managed {
                out.push_str("  unmanaged: ecr-warden leaves these repositories alone\n");
                continue;
            }
            match &class.tags {
                None => out.push_str("  tags: no conventions\n"),
                Some(tags) => out.push_str(&tags.summary()),
            }
            match &class.gate {
                None => out.push_str("  gate: none\n"),
                Some(gate) => out.push_str(&gate.summary()),
            }
            match &class.lifecycle {
                None => out.push_str("  lifecycle: none\n"),
                Some(lifecycle) => out.push_str(&lifecycle.summary()),
            }
        }
        let limits = &self.limits;
        out.push_str(&format!(
            "\nsweep limits: {} images deleted, {} repositories changed, {} tags removed\n",
            limits.sweep_max_deleted_images, limits.sweep_max_changed_repositories, limits.sweep_max_tag_removals
        ));
        if self.default_class.is_none() {
            out.push_str("\nrepositories no class matches: unmanaged\n");
        }
        for warning in &self.warnings {
            out.push_str(&format!("\nwarning: {warning}\n"));
        }
        let format = |f: crate::kinds::Format| {
            serde_json::to_value(f).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        };
        out.push_str(&format!("\nnotifications: default topic ({})\n", format(self.notify.format)));
        for route in &self.notify.routes {
            let kinds = if route.kinds.is_empty() { "all kinds".to_owned() } else { route.kinds.join(", ") };
            let severity = route.min_severity.map_or(String::new(), |s| format!(", severity ≥ {}", s.as_str()));
            let classes = if route.classes.is_empty() {
                String::new()
            } else {
                format!(", classes {}", route.classes.join(", "))
            };
            out.push_str(&format!(
                "  route to topic `{}` ({}): {kinds}{severity}{classes}\n",
                route.topic,
                format(route.format)
            ));
        }
        out
    }
}

/// One problem in a policy file, located by line and column (1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub source: String,
    pub line: usize,
    pub column: usize,
    /// The dotted key the problem is about, e.g. `class[1].tags.protected[0]`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a policy file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

#[cfg(test)]
mod tests;
