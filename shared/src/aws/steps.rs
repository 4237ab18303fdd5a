//! Carrying out decided tag steps in ECR, shared by every function that changes tags.

use super::Found;
use super::ecr::{self, Manifest, TagRemoval, TagWrite};
use crate::WardenError;
use crate::outcome::{Action, ActionResult};
use crate::tags::Step;
use std::collections::HashMap;

/// A human name for a step, as outcomes and notifications show it.
pub fn describe(step: &Step) -> String {
    match step {
        Step::AddTag { tag, digest } => format!("add tag `{tag}` to {digest}"),
        Step::RemoveTag { tag, .. } => format!("remove tag `{tag}`"),
        Step::PointTag { tag, digest } => format!("point tag `{tag}` back at {digest}"),
        Step::SetMutability { setting } => format!("set tag mutability to {setting}"),
    }
}

/// Runs steps in order and stops at the first failure: a later step may only be safe because an earlier one
/// succeeded (a tag is removed only once the quarantine tag is in place). Each manifest is read once.
/// In a dry run nothing is called and every step is reported as `dry-run`.
pub async fn execute(
    client: &aws_sdk_ecr::Client,
    repository: &str,
    steps: &[Step],
    dry_run: bool,
) -> Result<Vec<Action>, WardenError> {
    let mut actions = Vec::with_capacity(steps.len());
    let mut manifests: HashMap<String, Option<Manifest>> = HashMap::new();
    for step in steps {
        let action = describe(step);
        if dry_run {
            actions.push(Action { action, result: ActionResult::DryRun, detail: None });
            continue;
        }
        let (result, detail) = match step {
            Step::AddTag { tag, digest } | Step::PointTag { tag, digest } => {
                if !manifests.contains_key(digest) {
                    let manifest = match ecr::get_manifest(client, repository, digest).await? {
                        Found::Yes(manifest) => Some(manifest),
                        _ => None,
                    };
                    manifests.insert(digest.clone(), manifest);
                }
                match manifests.get(digest).and_then(Option::as_ref) {
                    None => (ActionResult::Gone, Some(format!("image {digest} no longer exists"))),
                    Some(manifest) => match ecr::put_tag(client, repository, tag, manifest).await? {
                        TagWrite::Done => (ActionResult::Done, None),
                        TagWrite::AlreadyThere => (ActionResult::AlreadyDone, None),
                        TagWrite::Immutable { points_at } => (
                            ActionResult::Failed,
                            Some(format!(
                                "`{tag}` is immutable and points at {}",
                                points_at.as_deref().unwrap_or("another image")
                            )),
                        ),
                    },
                }
            }
            Step::RemoveTag { tag, .. } => match ecr::remove_tag(client, repository, tag).await? {
                TagRemoval::Done => (ActionResult::Done, None),
                TagRemoval::AlreadyGone => (ActionResult::AlreadyDone, None),
                TagRemoval::Failed { code, reason } => (ActionResult::Failed, Some(format!("{code}: {reason}"))),
            },
            Step::SetMutability { setting } => {
                if ecr::put_mutability(client, repository, setting).await? {
                    (ActionResult::Done, None)
                } else {
                    (ActionResult::Gone, Some("repository no longer exists".into()))
                }
            }
        };
        let failed = result.is_failure();
        actions.push(Action { action, result, detail });
        if failed {
            break;
        }
    }
    Ok(actions)
}
