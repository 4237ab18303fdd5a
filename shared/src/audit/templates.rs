//! Repository creation templates: the settings ECR gives the repositories it creates itself (on push, through
//! replication or a pull-through cache). A template that differs from the class its repositories fall in
//! creates them drifted; each finding names the template (`creation template <prefix>`) and the update command.
//!
//! The class of a template's repositories is the policy's class of `<prefix>/*`; the `ROOT` template (every
//! other repository) has no one class and is checked for its repository policy only.

use super::checks::{documents, mutability_flags};
use super::{At, Check, CreationTemplate, Finding, Snapshot, incomplete};
use crate::kinds::Severity;
use crate::policy::{Class, Classification, Encryption, Policy};

/// Every template's findings in one account and region (and `audit-incomplete` when they could not be read).
pub fn templates(snapshot: &Snapshot, policy: &Policy) -> Vec<Finding> {
    let registry = At { account: &snapshot.account, region: &snapshot.region, resource: "registry" };
    let mut findings: Vec<Finding> = incomplete(&registry, &snapshot.creation_templates).into_iter().collect();
    for template in snapshot.creation_templates.got().into_iter().flatten() {
        let resource = format!("creation template {}", template.prefix);
        let at = At { account: &snapshot.account, region: &snapshot.region, resource: &resource };
        if let Some(document) = &template.repository_policy {
            let show = format!("aws ecr describe-repository-creation-templates --prefixes {}", template.prefix);
            findings.extend(documents(&at, document, &snapshot.account, &show));
        }
        let class = match policy.classify(&format!("{}/*", template.prefix)) {
            Classification::Managed(class) if template.prefix != "ROOT" => class,
            _ => continue,
        };
        findings.extend(mutability(&at, template, class));
        findings.extend(lifecycle(&at, template, class));
        findings.extend(encryption(&at, template, class));
    }
    findings
}

fn update(template: &CreationTemplate) -> String {
    format!("aws ecr update-repository-creation-template --prefix {}", template.prefix)
}

/// The template creates repositories whose tag mutability is not their class's.
fn mutability(at: &At<'_>, template: &CreationTemplate, class: &Class) -> Option<Finding> {
    let rules = class.tags.as_ref()?;
    if template.mutability == rules.mutability {
        return None;
    }
    let message = format!(
        "creates repositories with tag mutability {}; class `{}` requires {}",
        template.mutability, class.name, rules.mutability
    );
    let fix = format!("{} {}", update(template), mutability_flags(rules));
    let source = format!("class `{}` tags.mutability", class.name);
    Some(at.finding(Check::TagMutabilityDrift, Severity::Warning, message, (fix, source)))
}

/// The template gives no lifecycle policy where the class has one (or keeps images forever without one).
fn lifecycle(at: &At<'_>, template: &CreationTemplate, class: &Class) -> Option<Finding> {
    let rules = class.lifecycle.as_ref();
    if let Some(native) = rules.and_then(|l| l.native.as_ref()) {
        if native.is_current(template.lifecycle_policy.as_deref()) {
            return None;
        }
        let message = format!("creates repositories without class `{}`'s native lifecycle policy", class.name);
        let fix =
            format!("{} --lifecycle-policy '<class `{}`'s native policy, as JSON>'", update(template), class.name);
        let source = format!("class `{}` lifecycle.native", class.name);
        return Some(at.finding(Check::LifecyclePolicyDrift, Severity::Warning, message, (fix, source)));
    }
    if template.lifecycle_policy.is_some() || rules.is_some_and(|l| l.retention.is_some()) {
        return None;
    }
    let message =
        "creates repositories with no lifecycle policy, in a class without retention: every image is kept forever"
            .to_owned();
    let fix = format!("give class `{}` a `[class.lifecycle]`, or the template a --lifecycle-policy", class.name);
    let source = "ECR guide: keeping every image forever".to_owned();
    Some(at.finding(Check::NoLifecyclePolicy, Severity::Warning, message, (fix, source)))
}

/// The template encrypts with AES256 where the class expects KMS: every repository it creates needs recreating.
fn encryption(at: &At<'_>, template: &CreationTemplate, class: &Class) -> Option<Finding> {
    if class.encryption != Some(Encryption::Kms) || template.encryption != "AES256" {
        return None;
    }
    let message = format!("creates repositories encrypted with AES256; class `{}` expects KMS", class.name);
    let fix = format!("{} --encryption-configuration encryptionType=KMS", update(template));
    let source = format!("class `{}` encryption", class.name);
    Some(at.finding(Check::EncryptionAes256, Severity::Info, message, (fix, source)))
}
