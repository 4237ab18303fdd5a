//! Reading IAM-style policy documents (repository and registry policies) for what the audit flags.

use serde_json::Value;

/// The statements of a policy document (`Statement` may be one object or a list).
fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => vec![],
    }
}

/// A string or a list of strings, as policy documents write principals and actions.
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// The AWS principals a statement names (`"*"` for everyone).
fn principals(statement: &Value) -> Vec<&str> {
    match statement.get("Principal") {
        Some(Value::String(everyone)) => vec![everyone.as_str()],
        Some(Value::Object(map)) => strings(map.get("AWS")),
        _ => vec![],
    }
}

fn allows(statement: &Value) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
}

fn conditioned(statement: &Value) -> bool {
    statement.get("Condition").is_some_and(|c| c.as_object().is_some_and(|m| !m.is_empty()))
}

fn name(statement: &Value, index: usize) -> String {
    statement.get("Sid").and_then(Value::as_str).map_or_else(|| format!("#{}", index + 1), |sid| format!("`{sid}`"))
}

/// Whether an action changes the registry (pushes, deletes, settings, replication) or is every action.
pub fn writes(action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    let Some(operation) = action.strip_prefix("ecr:") else { return action == "*" };
    operation.contains('*')
        || ["put", "batchdelete", "delete", "set", "initiatelayerupload", "uploadlayerpart", "completelayerupload"]
            .iter()
            .any(|prefix| operation.starts_with(prefix))
        || ["createrepository", "replicateimage", "tagresource", "untagresource", "startlifecyclepolicypreview"]
            .contains(&operation)
}

/// The statements (their Sid, or position) that allow everyone without a condition.
pub fn public_statements(document: &Value) -> Vec<String> {
    statements(document)
        .into_iter()
        .enumerate()
        .filter(|(_, s)| allows(s) && !conditioned(s) && principals(s).contains(&"*"))
        .map(|(i, s)| name(s, i))
        .collect()
}

/// The statements that allow `ecr:*` (or `*`), or write actions to principals of accounts other than
/// `account`, without a condition.
pub fn broad_statements(document: &Value, account: &str) -> Vec<String> {
    statements(document)
        .into_iter()
        .enumerate()
        .filter(|(_, s)| allows(s) && !conditioned(s))
        .filter(|(_, s)| {
            let actions = strings(s.get("Action"));
            let everything = actions.iter().any(|a| *a == "*" || a.eq_ignore_ascii_case("ecr:*"));
            let foreign = principals(s).iter().any(|p| *p != "*" && !p.contains(account));
            everything || (foreign && actions.iter().any(|a| writes(a)))
        })
        .map(|(i, s)| name(s, i))
        .collect()
}
