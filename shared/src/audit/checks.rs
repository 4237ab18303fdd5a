//! The checks of one repository against its class.

use super::documents::{broad_statements, public_statements};
use super::{At, Check, Finding, Read, Repository, Snapshot, incomplete};
use crate::kinds::Severity;
use crate::policy::{Class, Classification, Encryption, Policy, Remediation, TagRules};

/// Untagged images above this many in one repository are an accumulation worth a look.
pub const UNTAGGED_COUNT_THRESHOLD: usize = 100;
/// Or above this many bytes (10 GiB).
pub const UNTAGGED_BYTES_THRESHOLD: u64 = 10 * 1024 * 1024 * 1024;

/// Every finding of one repository: its reads that failed, then each check that applies to its class.
pub fn repository(snapshot: &Snapshot, repository: &Repository, policy: &Policy) -> Vec<Finding> {
    let at = At { account: &snapshot.account, region: &snapshot.region, resource: &repository.name };
    let mut findings: Vec<Finding> = [
        incomplete(&at, &repository.lifecycle_policy),
        incomplete(&at, &repository.policy),
        incomplete(&at, &repository.untagged),
        incomplete(&at, &repository.inactive_coverage),
        incomplete(&at, &repository.critical_images),
        incomplete(&at, &repository.unrecorded_own_tags),
        repository.finding_ids.as_ref().and_then(|ids| incomplete(&at, ids)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(Some(document)) = repository.policy.got() {
        let show = format!("aws ecr get-repository-policy --repository-name {}", repository.name);
        findings.extend(documents(&at, document, &snapshot.account, &show));
    }
    findings.extend(untagged_accumulation(&at, repository));
    let class = match policy.classify_in(Some(&snapshot.account), &repository.name) {
        Classification::Managed(class) => class,
        Classification::Unmanaged(class) => {
            findings.push(unmanaged(&at, class));
            return findings;
        }
    };
    if let Some(rules) = &class.tags {
        findings.extend(tag_mutability_drift(&at, repository, class, rules));
        findings.extend(mutable_release_tags(&at, repository, class, rules));
    }
    findings.extend(lifecycle(&at, repository, class));
    findings.extend(scan_coverage_gap(&at, repository, snapshot));
    findings.extend(findings_unacted(&at, repository, class));
    findings.extend(encryption_aes256(&at, repository, class));
    findings.extend(forged_approval(&at, repository));
    findings
}

fn unmanaged(at: &At<'_>, class: Option<&str>) -> Finding {
    let message = match class {
        Some(class) => format!(
            "class `{class}` leaves this repository alone (managed = false): its tags, scans and lifecycle go unchecked"
        ),
        None => "no class of the policy matches this repository: its tags, scans and lifecycle go unchecked".to_owned(),
    };
    let fix = (
        "add a class whose `repositories` match it in warden.toml, or accept it as unmanaged".into(),
        "warden.toml classes".into(),
    );
    at.finding(Check::UnmanagedRepository, Severity::Info, message, fix)
}

/// The repository's tag mutability differs from its class's.
pub fn tag_mutability_drift(at: &At<'_>, repository: &Repository, class: &Class, rules: &TagRules) -> Option<Finding> {
    if repository.mutability == rules.mutability {
        return None;
    }
    let message =
        format!("tag mutability is {}; class `{}` requires {}", repository.mutability, class.name, rules.mutability);
    let fix =
        format!("aws ecr put-image-tag-mutability --repository-name {} {}", repository.name, mutability_flags(rules));
    let source = format!("class `{}` tags.mutability", class.name);
    Some(at.finding(Check::TagMutabilityDrift, Severity::Warning, message, (fix, source)))
}

/// The `aws ecr` options that set a class's tag mutability (mode and exclusion filters).
pub fn mutability_flags(rules: &TagRules) -> String {
    let mut flags = format!("--image-tag-mutability {}", rules.mutability.mode.as_str());
    if !rules.mutability.filters.is_empty() {
        let filters: Vec<String> =
            rules.mutability.filters.iter().map(|f| format!("filterType=WILDCARD,filter={f}")).collect();
        flags.push_str(&format!(" --image-tag-mutability-exclusion-filters {}", filters.join(" ")));
    }
    flags
}

/// Release (protected) tags ECR lets move, and tag-guard does not move back.
pub fn mutable_release_tags(at: &At<'_>, repository: &Repository, class: &Class, rules: &TagRules) -> Option<Finding> {
    if rules.protected.is_empty()
        || repository.mutability.covers(&rules.protected)
        || rules.remediation == Remediation::Revert
    {
        return None;
    }
    let protected: Vec<&str> = rules.protected.iter().map(|p| p.source()).collect();
    let message = format!(
        "release tags [{}] can be moved in ECR ({}), and class `{}` only {}s a move: a deploy can pull another image",
        protected.join(", "),
        repository.mutability,
        class.name,
        rules.remediation.as_str()
    );
    let fix = format!(
        "make ECR reject the moves ({}), or set remediation = \"revert\" in class `{}`",
        rules.mutability, class.name
    );
    let source = "ECR guide: broad mutable tags as the only promotion strategy".to_owned();
    Some(at.finding(Check::MutableReleaseTags, Severity::Critical, message, (fix, source)))
}

/// No lifecycle at all (native or retention), or a native policy other than the class's.
pub fn lifecycle(at: &At<'_>, repository: &Repository, class: &Class) -> Option<Finding> {
    let Read::Got(current) = &repository.lifecycle_policy else { return None };
    let rules = class.lifecycle.as_ref();
    if let Some(native) = rules.and_then(|l| l.native.as_ref()) {
        if native.is_current(current.as_deref()) {
            return None;
        }
        let message = format!("the lifecycle policy is not class `{}`'s native policy", class.name);
        let fix = format!(
            "`warden lifecycle preview --repository {} --class`, then set `[class.lifecycle] apply = true` (lifecycle puts it after checking it) or put it by hand",
            repository.name
        );
        let source = format!("class `{}` lifecycle.native", class.name);
        return Some(at.finding(Check::LifecyclePolicyDrift, Severity::Warning, message, (fix, source)));
    }
    if current.is_some() || rules.is_some_and(|l| l.retention.is_some()) {
        return None;
    }
    let message = "no lifecycle policy and no retention: every image is kept forever".to_owned();
    let fix = format!("give class `{}` a `[class.lifecycle]` native policy or retention rules", class.name);
    let source = "ECR guide: keeping every image forever".to_owned();
    Some(at.finding(Check::NoLifecyclePolicy, Severity::Warning, message, (fix, source)))
}

/// Images no scan covers: no scan on push and no registry rule matching the repository, or Inspector not
/// scanning some of its images.
pub fn scan_coverage_gap(at: &At<'_>, repository: &Repository, snapshot: &Snapshot) -> Option<Finding> {
    let scanning = snapshot.scanning.got()?;
    let matched = scanning.rules.iter().any(|r| r.filters.iter().any(|f| f.is_match(&repository.name)));
    let scanned = matched || (!scanning.enhanced && repository.scan_on_push);
    let inactive = repository.inactive_coverage.got().copied().unwrap_or(0);
    let message = if !scanned {
        format!(
            "no {} scanning rule matches the repository: pushed images are never scanned",
            if scanning.enhanced { "enhanced" } else { "basic" }
        )
    } else if inactive > 0 {
        format!("Amazon Inspector does not actively scan {inactive} of its images")
    } else {
        return None;
    };
    let fix = format!(
        "aws ecr put-registry-scanning-configuration with a rule whose filter matches {} (or enable scan on push)",
        repository.name
    );
    let source = "ECR guide: skipping image scanning".to_owned();
    Some(at.finding(Check::ScanCoverageGap, Severity::Warning, message, (fix, source)))
}

/// Critical findings in a class no gate acts on.
pub fn findings_unacted(at: &At<'_>, repository: &Repository, class: &Class) -> Option<Finding> {
    let critical = *repository.critical_images.got()?;
    if critical == 0 || class.gate.is_some() {
        return None;
    }
    let message =
        format!("{critical} image(s) carry critical findings, and class `{}` has no gate acting on them", class.name);
    let fix = format!("give class `{}` a `[class.gate]` (promotion only when the findings pass)", class.name);
    let source = "ECR guide: not acting on scan results".to_owned();
    Some(at.finding(Check::FindingsUnacted, Severity::Warning, message, (fix, source)))
}

/// AES-256 where the class expects KMS.
pub fn encryption_aes256(at: &At<'_>, repository: &Repository, class: &Class) -> Option<Finding> {
    if class.encryption != Some(Encryption::Kms) || repository.encryption != "AES256" {
        return None;
    }
    let message = format!(
        "encrypted with AES256; class `{}` expects KMS (key policies, rotation, key use in CloudTrail)",
        class.name
    );
    let fix = format!(
        "ECR cannot change a repository's encryption: create it anew with --encryption-configuration encryptionType=KMS (or a repository creation template) and copy the images of {}",
        repository.name
    );
    let source = format!("class `{}` encryption", class.name);
    Some(at.finding(Check::EncryptionAes256, Severity::Info, message, (fix, source)))
}

/// Promotion- or quarantine-shaped tags ecr-warden holds no record of.
pub fn forged_approval(at: &At<'_>, repository: &Repository) -> Option<Finding> {
    let tags = repository.unrecorded_own_tags.got()?;
    let first = tags.first()?;
    let message = match tags.len() {
        1 => format!("promotion or quarantine tag `{}` on {} has no approval record", first.1, first.0),
        n => format!("{n} promotion or quarantine tags have no approval record, e.g. `{}` on {}", first.1, first.0),
    };
    let fix = "run tag-guard's sweep (it removes them where the class's remediation writes), or remove them by hand"
        .to_owned();
    let source = "gate integrity: only recorded approvals stand".to_owned();
    Some(at.finding(Check::ForgedApproval, Severity::Critical, message, (fix, source)))
}

/// Many untagged images, or many bytes of them.
pub fn untagged_accumulation(at: &At<'_>, repository: &Repository) -> Option<Finding> {
    let untagged = repository.untagged.got()?;
    if untagged.images <= UNTAGGED_COUNT_THRESHOLD && untagged.bytes <= UNTAGGED_BYTES_THRESHOLD {
        return None;
    }
    let gib = untagged.bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    let message = format!("{} untagged images hold {gib:.1} GiB", untagged.images);
    let fix = "expire untagged images: a native rule `tagStatus: untagged` or a retention rule (referrers and index children are kept)".to_owned();
    let source = "ECR guide: keeping every image forever".to_owned();
    Some(at.finding(Check::UntaggedAccumulation, Severity::Warning, message, (fix, source)))
}

/// A repository policy (a repository's, or the one a creation template gives): open to everyone, or broad to
/// other accounts. `show` is the command that prints it.
pub fn documents(at: &At<'_>, document: &serde_json::Value, account: &str, show: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(sid) = public_statements(document).first() {
        let message = format!("statement {sid} allows everyone (Principal \"*\") with no condition narrowing it");
        let fix = format!("narrow the principal or add a condition (aws:PrincipalOrgID); `{show}`");
        let source = "ECR guide: overly broad permissions to registry consumers".to_owned();
        findings.push(at.finding(Check::RepositoryPolicyPublic, Severity::Critical, message, (fix, source)));
    }
    if let Some(sid) = broad_statements(document, account).first() {
        let message = format!("statement {sid} grants ecr:* or write actions to other accounts without a condition");
        let fix = "grant pull actions only, or name the writers and add a condition".to_owned();
        let source = "ECR guide: overly broad permissions to CI systems".to_owned();
        findings.push(at.finding(Check::RepositoryPolicyBroad, Severity::Warning, message, (fix, source)));
    }
    findings
}
