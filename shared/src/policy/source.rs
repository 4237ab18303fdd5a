//! Where a deployed function's policy comes from when it is published rather than compiled in
//! (`WARDEN_POLICY_SOURCE`), and which policy it acts on when the published one cannot be used.
//!
//! The compiled-in policy stays the default and the last resort. A published policy that does not validate
//! never replaces a valid one: the function acts on the last valid policy published there (kept in the ledger)
//! or, failing that, on the compiled-in one, and says so loudly (a critical notification naming the errors).

use super::{Policy, PolicyErrors};

/// `s3://bucket/key`, `ssm:/parameter/name` (or `ssm:name`), or `appconfig:application/environment/profile`.
pub const POLICY_SOURCE_ENV: &str = "WARDEN_POLICY_SOURCE";

/// A place a policy is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    S3 { bucket: String, key: String },
    Ssm { name: String },
    AppConfig { application: String, environment: String, profile: String },
}

impl PolicySource {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let usage = || {
            format!(
                "`{text}` is not a policy source: use s3://bucket/key, ssm:/parameter/name or \
                 appconfig:application/environment/profile"
            )
        };
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').ok_or_else(usage)?;
            if bucket.is_empty() || key.is_empty() {
                return Err(usage());
            }
            return Ok(Self::S3 { bucket: bucket.to_owned(), key: key.to_owned() });
        }
        if let Some(name) = text.strip_prefix("ssm:") {
            if name.is_empty() || name == "/" {
                return Err(usage());
            }
            return Ok(Self::Ssm { name: name.to_owned() });
        }
        if let Some(rest) = text.strip_prefix("appconfig:") {
            let parts: Vec<&str> = rest.split('/').collect();
            if let [application, environment, profile] = parts[..]
                && parts.iter().all(|p| !p.is_empty())
            {
                return Ok(Self::AppConfig {
                    application: application.to_owned(),
                    environment: environment.to_owned(),
                    profile: profile.to_owned(),
                });
            }
        }
        Err(usage())
    }

    /// The source as written in `WARDEN_POLICY_SOURCE`: what errors and the ledger name it by.
    pub fn describe(&self) -> String {
        match self {
            Self::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            Self::Ssm { name } => format!("ssm:{name}"),
            Self::AppConfig { application, environment, profile } => {
                format!("appconfig:{application}/{environment}/{profile}")
            }
        }
    }
}

/// The policy a function acts on, and what is wrong with the published one if it could not be used.
#[derive(Debug)]
pub struct Chosen {
    pub policy: Policy,
    pub problem: Option<PolicyProblem>,
}

/// Why the published policy is not the one acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub source: String,
    /// The validation errors (`source:line:column: key: message`) or why it could not be read.
    pub errors: Vec<String>,
    /// What the function acts on instead.
    pub acting_on: String,
    /// Names this problem: the same published text and errors are told once (and weekly).
    pub fingerprint: String,
}

/// What was read from a source: the text, or why there is none.
pub type Read = Result<String, String>;

/// Chooses the policy to act on: the published one when it validates and the deployment `accepts` it (the
/// topics its routes name exist, say); else the last valid one published (`last_valid`, as the ledger kept it),
/// when accepted too; else the compiled-in `compiled`.
pub fn choose(
    source: &PolicySource,
    published: Read,
    last_valid: Option<String>,
    compiled: Policy,
    accepts: impl Fn(&Policy) -> Result<(), String>,
) -> Chosen {
    let name = source.describe();
    let errors = match published.map(|text| Policy::from_toml(&text, &name)) {
        Ok(Ok(policy)) => match accepts(&policy) {
            Ok(()) => return Chosen { policy, problem: None },
            Err(reason) => vec![format!("{name}: {reason}")],
        },
        Ok(Err(PolicyErrors(errors))) => errors.iter().map(ToString::to_string).collect(),
        Err(unreadable) => vec![format!("{name}: cannot read: {unreadable}")],
    };
    let last = last_valid
        .and_then(|text| Policy::from_toml(&text, &format!("{name} (last valid)")).ok())
        .filter(|policy| accepts(policy).is_ok());
    let (policy, acting_on) = match last {
        Some(policy) => (policy, format!("the last valid policy published at {name}")),
        None => (compiled, "the policy compiled into this build".to_owned()),
    };
    let fingerprint = crate::fingerprint::of_lines(errors.iter().chain([&acting_on]));
    Chosen { policy, problem: Some(PolicyProblem { source: name, errors, acting_on, fingerprint }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{EMBEDDED_POLICY, EMBEDDED_POLICY_NAME};

    fn compiled() -> Policy {
        Policy::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME).expect("embedded")
    }

    fn any(_: &Policy) -> Result<(), String> {
        Ok(())
    }

    const PUBLISHED: &str = "version = 1\ndefault-class = \"only\"\n[[class]]\nname = \"only\"\n";
    const BROKEN: &str = "version = 1\ndefault-class = \"only\"\n[[class]]\nname = \"only\"\nmanaged = \"yes\"\n";

    #[test]
    fn sources_parse_and_name_themselves() {
        let table = [
            (
                "s3://policies/ecr/warden.toml",
                Some(PolicySource::S3 { bucket: "policies".into(), key: "ecr/warden.toml".into() }),
            ),
            ("ssm:/ecr-warden/policy", Some(PolicySource::Ssm { name: "/ecr-warden/policy".into() })),
            ("ssm:policy", Some(PolicySource::Ssm { name: "policy".into() })),
            (
                "appconfig:warden/prod/policy",
                Some(PolicySource::AppConfig {
                    application: "warden".into(),
                    environment: "prod".into(),
                    profile: "policy".into(),
                }),
            ),
            ("s3://bucket-only", None),
            ("s3:///key", None),
            ("ssm:", None),
            ("appconfig:warden/prod", None),
            ("appconfig:warden//policy", None),
            ("https://example.com/warden.toml", None),
        ];
        for (text, expected) in table {
            let parsed = PolicySource::parse(text).ok();
            assert_eq!(parsed, expected, "{text}");
            if let Some(source) = parsed {
                assert_eq!(source.describe(), text);
            }
        }
    }

    #[test]
    fn an_invalid_published_policy_never_replaces_a_valid_one() {
        let source = PolicySource::parse("ssm:/ecr-warden/policy").expect("source");
        // Valid: acted on, no problem.
        let chosen = choose(&source, Ok(PUBLISHED.into()), None, compiled(), any);
        assert!(chosen.problem.is_none());
        assert_eq!(chosen.policy.classes.len(), 1);
        // Invalid, a last valid one kept: that one, with the errors at their line.
        let chosen = choose(&source, Ok(BROKEN.into()), Some(PUBLISHED.into()), compiled(), any);
        let problem = chosen.problem.expect("a problem");
        assert_eq!(chosen.policy.classes.len(), 1, "the last valid published policy");
        assert!(problem.acting_on.contains("last valid"), "{problem:?}");
        assert!(problem.errors.iter().any(|e| e.starts_with("ssm:/ecr-warden/policy:5:")), "{:?}", problem.errors);
        // Invalid and nothing kept (or what was kept no longer validates): the compiled-in policy.
        for kept in [None, Some(BROKEN.to_owned())] {
            let chosen = choose(&source, Ok(BROKEN.into()), kept, compiled(), any);
            assert_eq!(chosen.policy.classes.len(), compiled().classes.len());
            assert!(chosen.problem.expect("problem").acting_on.contains("compiled"));
        }
        // Unreadable (denied, missing): the same fallbacks, the reason named.
        let chosen = choose(&source, Err("AccessDenied".into()), Some(PUBLISHED.into()), compiled(), any);
        let problem = chosen.problem.expect("a problem");
        assert_eq!(problem.errors, ["ssm:/ecr-warden/policy: cannot read: AccessDenied"]);
        // The same problem has the same fingerprint; another one another.
        let again = choose(&source, Err("AccessDenied".into()), Some(PUBLISHED.into()), compiled(), any);
        assert_eq!(again.problem.expect("problem").fingerprint, problem.fingerprint);
        let other = choose(&source, Err("NoSuchKey".into()), Some(PUBLISHED.into()), compiled(), any);
        assert_ne!(other.problem.expect("problem").fingerprint, problem.fingerprint);
    }

    #[test]
    fn a_valid_policy_the_deployment_cannot_run_is_not_acted_on() {
        let source = PolicySource::parse("ssm:/ecr-warden/policy").expect("source");
        // Say the deployment refuses every policy with one class (a route to a topic it lacks, in practice).
        let refuses_one_class =
            |policy: &Policy| if policy.classes.len() == 1 { Err("routes to topic `x`".to_owned()) } else { Ok(()) };
        let chosen = choose(&source, Ok(PUBLISHED.into()), Some(PUBLISHED.into()), compiled(), refuses_one_class);
        let problem = chosen.problem.expect("a problem");
        assert_eq!(problem.errors, ["ssm:/ecr-warden/policy: routes to topic `x`"]);
        assert!(problem.acting_on.contains("compiled"), "the last valid one is refused too: {problem:?}");
        assert_eq!(chosen.policy.classes.len(), compiled().classes.len());
    }
}
