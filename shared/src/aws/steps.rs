//! Carrying out decided tag steps in ECR, shared by every function that changes tags.

use super::Found;
use super::ecr::{self, Manifest, TagRemoval, TagWrite};
use super::lease::Lease;
use super::ledger::Ledger;
use crate::WardenError;
use crate::outcome::{Action, ActionResult};
use crate::tags::Step;
use std::collections::HashMap;

/// A human name for a step, as outcomes and notifications show it.
pub fn describe(step: &Step) -> String {
    match step {
        Step::AddTag { tag, digest } => format!("add tag `{tag}` to {digest}"),
        Step::Quarantine { tag, digest } => format!("add quarantine tag `{tag}` to {digest}"),
        Step::RemoveTag { tag, digest } => format!("remove tag `{tag}` from {digest}"),
        Step::PointTag { tag, digest } => format!("point tag `{tag}` back at {digest}"),
        Step::SetMutability { setting } => format!("set tag mutability to {setting}"),
    }
}

/// Where decided steps are carried out: the registry, the ledger that records the tags ecr-warden adds
/// itself, and on whose behalf (function and event), or nowhere in a dry run.
#[derive(Debug, Clone, Copy)]
pub struct Executor<'a> {
    pub ecr: &'a aws_sdk_ecr::Client,
    pub ledger: &'a Ledger,
    pub function: &'a str,
    pub event_id: &'a str,
    pub dry_run: bool,
    /// The lease held on the image whose tags are removed: no removal starts once it is no longer valid.
    pub lease: Option<&'a Lease>,
}

impl<'a> Executor<'a> {
    /// The same executor, removing tags only while `lease` is valid.
    pub fn under(self, lease: Option<&'a Lease>) -> Self {
        Self { lease, ..self }
    }

    /// Runs steps in order and stops at the first failure: a later step may only be safe because an earlier
    /// one succeeded (a tag is removed only once the quarantine tag is in place). Each manifest is read once.
    /// In a dry run nothing is called and every step is reported as `dry-run`.
    pub async fn run(&self, repository: &str, steps: &[Step]) -> Result<Vec<Action>, WardenError> {
        let mut actions = Vec::with_capacity(steps.len());
        let mut manifests: HashMap<String, Option<Manifest>> = HashMap::new();
        for step in steps {
            let action = describe(step);
            if self.dry_run {
                actions.push(Action { action, result: ActionResult::DryRun, detail: None });
                continue;
            }
            let (result, detail) = match step {
                Step::AddTag { tag, digest } | Step::PointTag { tag, digest } => {
                    self.put_tag(repository, tag, digest, &mut manifests).await?
                }
                Step::Quarantine { tag, digest } => {
                    // Recorded first: the push event the tag causes finds it, and tag-guard knows it as its own.
                    self.ledger.record_quarantine(repository, digest, tag, self.event_id, self.function).await?;
                    self.put_tag(repository, tag, digest, &mut manifests).await?
                }
                Step::RemoveTag { tag, digest } if self.lease.is_some_and(|l| !l.valid()) => {
                    // Taken too long since the read the removal was decided on: the retry reads again.
                    return Err(WardenError::Busy(format!(
                        "the lease on {repository}@{digest} ran out before `{tag}` was removed"
                    )));
                }
                Step::RemoveTag { tag, digest } => {
                    // Recorded first: the deletion event the removal causes is then known as ecr-warden's.
                    self.ledger.record_removal((repository, tag, digest), self.function, self.event_id).await?;
                    self.remove(repository, tag, digest).await?
                }
                Step::SetMutability { setting } => {
                    if ecr::put_mutability(self.ecr, repository, setting).await? {
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

    /// Removes `tag` from `digest` (named both, so a tag moved meanwhile is left alone).
    async fn remove(
        &self,
        repository: &str,
        tag: &str,
        digest: &str,
    ) -> Result<(ActionResult, Option<String>), WardenError> {
        Ok(match ecr::remove_tag(self.ecr, repository, tag, digest).await? {
            TagRemoval::Done => (ActionResult::Done, None),
            TagRemoval::AlreadyGone => (ActionResult::AlreadyDone, None),
            TagRemoval::Moved => {
                (ActionResult::Moved, Some(format!("`{tag}` points at another image now, not {digest}: left alone")))
            }
            TagRemoval::Failed { code, reason } => (ActionResult::Failed, Some(format!("{code}: {reason}"))),
        })
    }

    async fn put_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &str,
        manifests: &mut HashMap<String, Option<Manifest>>,
    ) -> Result<(ActionResult, Option<String>), WardenError> {
        if !manifests.contains_key(digest) {
            let manifest = match ecr::get_manifest(self.ecr, repository, digest).await? {
                Found::Yes(manifest) => Some(manifest),
                _ => None,
            };
            manifests.insert(digest.to_owned(), manifest);
        }
        Ok(match manifests.get(digest).and_then(Option::as_ref) {
            None => (ActionResult::Gone, Some(format!("image {digest} no longer exists"))),
            Some(manifest) => match ecr::put_tag(self.ecr, repository, tag, manifest).await? {
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
        })
    }
}
