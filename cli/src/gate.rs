//! `warden gate evaluate REPOSITORY (DIGEST|TAG)`: what scan-gate would decide about an image or a
//! multi-architecture index now, from the same registry reads it makes (each platform image's scan for an
//! index) and the gate's supply-chain criteria, without changing anything.

use crate::{Scanner, load_policy};
use std::path::PathBuf;
use warden::aws::findings::{RegistryScan, promotion_evidence, registry_scan};
use warden::aws::{Clients, Found, ecr, supply_chain};
use warden::gate::index::{ChildScan, decide_index, gated_children, parse_index};
use warden::gate::supply_chain::Criterion;
use warden::gate::{GateResult, Trigger, promotion_tags};
use warden::policy::{Classification, GateRules};

/// What the evaluation found: the scan verdict (per platform for an index), why a passing image would still
/// not be promoted, and the supply-chain criteria.
struct Evaluation {
    result: GateResult,
    refusal: Option<String>,
    criteria: Vec<Criterion>,
    index: bool,
}

pub(crate) async fn evaluate(
    repository: String,
    image: String,
    scanner: Scanner,
    policy: Option<PathBuf>,
    json: bool,
) -> Result<(), String> {
    let policy = load_policy(policy.as_ref()).map_err(|e| e.to_string())?;
    let Classification::Managed(class) = policy.classify(&repository) else {
        return Err(format!("{repository} is not managed by ecr-warden"));
    };
    let gate = class.gate.as_ref().ok_or_else(|| format!("class {} declares no gate", class.name))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = Clients::new(&sdk);
    let lookup = if image.starts_with("sha256:") {
        ecr::describe_digest(&clients.ecr, &repository, &image).await
    } else {
        ecr::describe_tag(&clients.ecr, &repository, &image).await
    };
    let state = match lookup.map_err(|e| e.to_string())? {
        Found::Yes(state) => state,
        Found::NoImage => return Err(format!("{repository}: no image {image}")),
        Found::NoRepository => return Err(format!("no repository {repository}")),
    };
    let scanner = match scanner {
        Scanner::Basic => warden::gate::Scanner::Basic,
        Scanner::Enhanced => warden::gate::Scanner::Enhanced,
    };
    let evaluation = evaluation(&clients, &sdk, gate, scanner, (&repository, &state.digest)).await?;
    let own = |t: &str| class.own_tag_kind(t).is_some();
    let (promotion, _) = promotion_tags(&gate.promote, &state.digest, &state.tags, own);
    if json {
        let report = serde_json::json!({"repository": repository, "digest": state.digest, "tags": state.tags,
            "class": class.name, "index": evaluation.index, "result": evaluation.result,
            "criteria": evaluation.criteria, "promotion-tags": promotion,
            "not-promoted-because": evaluation.refusal});
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", describe_gate(&repository, &state.digest, &class.name, &evaluation.result, &promotion));
        for criterion in &evaluation.criteria {
            println!("  {}", criterion.describe());
        }
        if let Some(why) = evaluation.refusal.filter(|_| evaluation.result.pass) {
            println!("but scan-gate would not promote it: {why}");
        }
    }
    Ok(())
}

/// The reads scan-gate makes before it promotes: the scan (each gated platform image's, for an index), the
/// evidence behind a pass (Inspector's coverage), the supply-chain criteria.
async fn evaluation(
    clients: &Clients,
    sdk: &aws_config::SdkConfig,
    gate: &GateRules,
    scanner: warden::gate::Scanner,
    (repository, digest): (&str, &str),
) -> Result<Evaluation, String> {
    let inspector = clients.inspector(sdk);
    let today = chrono::Utc::now().date_naive();
    let manifest = match ecr::get_manifest(&clients.ecr, repository, digest).await.map_err(|e| e.to_string())? {
        Found::Yes(manifest) => manifest,
        _ => return Err(format!("{repository}: no image {digest}")),
    };
    let is_index = manifest.media_type.as_deref().is_some_and(|m| warden::lifecycle::INDEX_MEDIA_TYPES.contains(&m));
    let scanned: Vec<String> = if is_index {
        let children = parse_index(&manifest.body)?;
        gated_children(&children, &gate.platforms).0.into_iter().map(|c| c.digest.clone()).collect()
    } else {
        vec![digest.to_owned()]
    };
    let mut scans = Vec::new();
    for image in &scanned {
        let read = registry_scan(&clients.ecr, &inspector, scanner, gate, repository, image, today);
        scans.push(match read.await.map_err(|e| e.to_string())? {
            RegistryScan::Judged { result, .. } => ChildScan::Judged(result),
            RegistryScan::Pending(reason) => ChildScan::Pending(reason),
            RegistryScan::NoScan { reason, .. } => ChildScan::NoScan(reason),
            RegistryScan::Gone => ChildScan::Gone,
        });
    }
    let result = match (is_index, scans.first()) {
        (false, Some(ChildScan::Judged(result))) => result.clone(),
        (false, Some(ChildScan::Pending(reason) | ChildScan::NoScan(reason))) => {
            return Err(format!("{digest}: {reason}: scan-gate would not promote"));
        }
        (false, _) => return Err(format!("{repository}: no image {digest}")),
        (true, _) => {
            let children = parse_index(&manifest.body)?;
            let gated = gated_children(&children, &gate.platforms).0;
            decide_index(&gated.into_iter().zip(scans.iter()).collect::<Vec<_>>()).result
        }
    };
    let home = match scanner {
        warden::gate::Scanner::Enhanced => match ecr::registry_home(&clients.ecr, repository).await {
            Ok(Found::Yes(home)) => Some(home),
            Ok(_) => return Err(format!("no repository {repository}")),
            Err(e) => return Err(e.to_string()),
        },
        warden::gate::Scanner::Basic => None,
    };
    let mut refusal = None;
    for image in &scanned {
        let evidence = (scanner, &Trigger::ScanCompleted);
        let read = promotion_evidence(&inspector, evidence, home.as_ref(), repository, image).await;
        if let Err(why) = read.map_err(|e| e.to_string())? {
            refusal.get_or_insert(if is_index { format!("{image}: {why}") } else { why });
        }
    }
    let criteria = match supply_chain::criteria(&clients.ecr, gate, repository, digest).await {
        Ok(Found::Yes(criteria)) => criteria,
        Ok(_) => return Err(format!("{repository}: no image {digest}")),
        Err(e) => return Err(e.to_string()),
    };
    Ok(Evaluation { result, refusal, criteria, index: is_index })
}

fn describe_gate(repository: &str, digest: &str, class: &str, result: &GateResult, promotion: &[String]) -> String {
    let counts = |c: &warden::gate::Counts| {
        c.iter().filter(|(_, n)| **n > 0).map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
    };
    let mut out = format!("{repository}@{digest} (class {class})\n");
    out.push_str(&format!("findings: {}\n", or_none(&counts(&result.counts_before))));
    out.push_str(&format!("counted:  {}\n", or_none(&counts(&result.counts_after))));
    let verdict = if result.pass {
        format!("PASS: would promote as {}", promotion.join(", "))
    } else {
        "FAIL: would not promote".into()
    };
    out.push_str(&format!("{verdict}\n"));
    for reason in &result.reasons {
        out.push_str(&format!("  - {reason}\n"));
    }
    for finding in &result.blocking {
        out.push_str(&format!("  blocking: {}\n", finding.describe()));
    }
    for allowed in &result.allowlisted {
        out.push_str(&format!("  allowlisted: {allowed}\n"));
    }
    out
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_report_reads_well() {
        let policy = load_policy(None).expect("embedded policy");
        let Classification::Managed(class) = policy.classify("prod/payments-api") else { panic!("managed") };
        let gate = class.gate.as_ref().expect("production has a gate");
        let findings = vec![
            warden::gate::Finding::new("CVE-2026-31337", warden::policy::FindingSeverity::Critical),
            warden::gate::Finding::new("CVE-2026-4242", warden::policy::FindingSeverity::High),
        ];
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
        let result = warden::gate::evaluate_findings(gate, "prod/payments-api", &findings, today);
        let text = describe_gate("prod/payments-api", "sha256:abc", &class.name, &result, &["v1-approved".into()]);
        for expected in [
            "prod/payments-api@sha256:abc (class production)",
            "findings: CRITICAL 1, HIGH 1",
            "counted:  HIGH 1",
            "FAIL: would not promote",
            "blocking: HIGH CVE-2026-4242",
            "allowlisted: CVE-2026-31337",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
