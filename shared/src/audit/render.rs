//! The audit's findings where platform teams read them: a table for people, JSON for tools, SARIF for
//! code-scanning views.

use super::{Check, Finding};
use crate::kinds::Severity;
use serde_json::{Value, json};

/// The schema identifier of the JSON rendering; bumped on breaking changes.
pub const SCHEMA: &str = "ecr-warden.audit/v1";

/// Findings by severity: critical, warning, info.
pub fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
    (count(Severity::Critical), count(Severity::Warning), count(Severity::Info))
}

/// `{"schema", "findings": [...], "summary": {"critical", "warning", "info", "total"}}`.
pub fn json(findings: &[Finding]) -> Value {
    let (critical, warning, info) = counts(findings);
    json!({
        "schema": SCHEMA,
        "findings": findings,
        "summary": {"critical": critical, "warning": warning, "info": info, "total": findings.len()},
    })
}

/// A readable report: findings grouped by severity (most severe first), each with its fix, then the counts.
pub fn table(findings: &[Finding]) -> String {
    let mut out = String::new();
    for severity in [Severity::Critical, Severity::Warning, Severity::Info] {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        out.push_str(&format!("{} ({})\n", severity.as_str().to_uppercase(), group.len()));
        for finding in group {
            out.push_str(&format!(
                "  {:<27} {}/{} {}\n    {}\n    fix: {}\n",
                finding.check.id(),
                finding.account,
                finding.region,
                finding.resource,
                finding.message,
                finding.remediation
            ));
        }
    }
    let (critical, warning, info) = counts(findings);
    out.push_str(&format!("{} findings: {critical} critical, {warning} warning, {info} info\n", findings.len()));
    out
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// SARIF 2.1.0: one run of the `ecr-warden` tool, a rule per check that fired, a result per finding located
/// at its resource (`<account>/<region>/<resource>`, a logical location: registries have no files).
pub fn sarif(findings: &[Finding]) -> Value {
    let mut fired: Vec<Check> = findings.iter().map(|f| f.check).collect();
    fired.sort();
    fired.dedup();
    let rules: Vec<Value> = fired
        .iter()
        .map(|check| {
            let source = findings.iter().find(|f| f.check == *check).map_or("", |f| f.source.as_str());
            json!({"id": check.id(), "name": check.id(), "shortDescription": {"text": check.id()},
                "fullDescription": {"text": source}, "helpUri": "https://github.com/ecr-warden/ecr-warden/blob/main/docs/audit.md"})
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let name = format!("{}/{}/{}", f.account, f.region, f.resource);
            json!({
                "ruleId": f.check.id(),
                "ruleIndex": fired.iter().position(|c| *c == f.check),
                "level": level(f.severity),
                "message": {"text": format!("{} Fix: {}", f.message, f.remediation)},
                "locations": [{"logicalLocations": [{"fullyQualifiedName": name, "kind": "resource"}]}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "ecr-warden", "informationUri": "https://github.com/ecr-warden/ecr-warden", "rules": rules}},
            "results": results}],
    })
}

/// The exit code `warden audit --fail-on` gives: 1 when a finding is at or above `threshold`, else 0.
pub fn exit_code(findings: &[Finding], threshold: Option<Severity>) -> u8 {
    u8::from(threshold.is_some_and(|t| findings.iter().any(|f| f.severity >= t)))
}
