//! Multi-architecture images: the index is gated as a whole, on its platform images' scans.
//!
//! - The index's PUSH: its manifest read (BatchGetImage), its gated children recorded in the ledger, and the
//!   index gated at once (its platform images were pushed first and may be scanned already).
//! - A scan event naming a child: the child's scan is read; failing, it fails (demotes) each index listing it at
//!   once; passing, it is counted, and the last child's completion re-reads the whole index (O(N) reads in all).
//! - Gating re-reads the index manifest and every gated child's scan; the promotion tag goes on the index, never
//!   on a child, and a failing child demotes the index.

use super::{Evidence, GatedImage, ScanGate, Scanned, today};
use warden::WardenError;
use warden::aws::findings::{RegistryScan, registry_scan, registry_scanner};
use warden::aws::{Found, ecr};
use warden::event::{ImageAction, RepositoryName};
use warden::gate::Trigger;
use warden::gate::index::{Child, ChildScan, IndexVerdict, decide_index, gated_children, parse_index};
use warden::handler::Context;
use warden::outcome::{Decision, GateDecision, Outcome};
use warden::policy::{Class, GateRules};

impl ScanGate {
    /// An image index pushed to a gated class.
    pub(crate) async fn on_index_push(&self, cx: &Context<'_>, push: &ImageAction) -> Result<Outcome, WardenError> {
        let repository = push.repository_name.as_str();
        let class = match self.base.pushed_image_class(cx, push) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let Some(gate) = &class.gate else {
            return Ok(self.base.skipped(cx, format!("class `{}` declares no gate", class.name)));
        };
        let children = match self.index_children(cx, repository, &push.image_digest).await? {
            Ok(children) => children,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        let (gated, _) = gated_children(&children, &gate.platforms);
        cx.ledger().record_index(repository, &push.image_digest, &gated, &cx.event.id).await?;
        let scanner = registry_scanner(cx.ecr()).await?;
        let trigger = Trigger::ScanCompleted;
        let index = IndexEvent {
            repository: &push.repository_name,
            scanner,
            trigger: &trigger,
            index: &push.image_digest,
            children: Some(children),
        };
        self.gate_index(cx, class, gate, index).await
    }

    /// A scan event about `child`, which the ledger says `indexes` list. The named platform image is judged
    /// first (one read): failing, it fails each index at once (demoting a promoted one) without reading the
    /// others, and loses promotion tags of its own; passing, its scan is counted, and an index is re-read in full
    /// only when every platform has a scan and it is not promoted already. So N platform images cost O(N) reads.
    pub(crate) async fn regate_indexes(
        &self,
        cx: &Context<'_>,
        (class, gate): (&Class, &GateRules),
        scanned: &Scanned<'_>,
        child: &str,
        indexes: &[String],
    ) -> Result<Outcome, WardenError> {
        let repository = scanned.repository.as_str();
        let (own, _) = self.child_scan(cx, scanned.scanner, gate, repository, child).await?;
        let mut outcomes = Vec::new();
        for index in indexes {
            let waiting = |why: String| {
                let mut outcome = self.base.skipped(cx, format!("platform image of index {index}: {why}"));
                outcome.digest = Some(index.clone());
                outcome
            };
            outcomes.push(match &own {
                ChildScan::Judged(result) if !result.pass => {
                    self.fail_index(cx, (class, gate), scanned, (index, child), result.clone()).await?
                }
                ChildScan::Judged(_) => match self.index_to_regate(cx, gate, scanned, index, child).await? {
                    Ok(()) => {
                        let event = IndexEvent {
                            repository: scanned.repository,
                            scanner: scanned.scanner,
                            trigger: &scanned.trigger,
                            index,
                            children: None,
                        };
                        self.gate_index(cx, class, gate, event).await?
                    }
                    Err(why) => waiting(why),
                },
                ChildScan::Pending(why) | ChildScan::NoScan(why) => waiting(why.clone()),
                ChildScan::Gone => waiting("the platform image no longer exists".into()),
            });
        }
        if let ChildScan::Judged(result) = own
            && !result.pass
        {
            outcomes.extend(self.demote_child(cx, (class, gate), scanned, child, result).await?);
        }
        // One index is the common case; more (a platform image shared by several indexes) are listed as items.
        let mut outcomes = outcomes.into_iter();
        let mut outcome = outcomes.next().unwrap_or_else(|| self.base.skipped(cx, "no index lists the image"));
        outcome.items.extend(outcomes);
        Ok(outcome)
    }

    /// After a passing platform image: `Ok` when the index must be re-read in full — every platform has a scan
    /// (this one counted now) and the index is not promoted already (a passing platform cannot change a promoted
    /// index; a failing one is handled without this). `Err`: why not.
    async fn index_to_regate(
        &self,
        cx: &Context<'_>,
        gate: &GateRules,
        scanned: &Scanned<'_>,
        index: &str,
        child: &str,
    ) -> Result<Result<(), String>, WardenError> {
        let repository = scanned.repository.as_str();
        let progress = cx.ledger().child_scanned(repository, index, child).await?;
        if !progress.complete() {
            return Ok(Err(format!(
                "{} of its {} platform images scanned; the last scan to complete gates the index",
                progress.scanned, progress.children
            )));
        }
        Ok(match ecr::describe_digest(cx.ecr(), repository, index).await? {
            Found::Yes(image) if image.tags.iter().any(|t| gate.is_promotion_tag(t)) => {
                Err("this platform image passes and the index is promoted already: nothing changes".into())
            }
            Found::Yes(_) => Ok(()),
            _ => Err(format!("the index {index} no longer exists")),
        })
    }

    /// A failing platform image fails its index: blocked, and demoted if promoted, on this one registry read.
    async fn fail_index(
        &self,
        cx: &Context<'_>,
        (class, gate): (&Class, &GateRules),
        scanned: &Scanned<'_>,
        (index, child): (&str, &str),
        mut result: warden::gate::GateResult,
    ) -> Result<Outcome, WardenError> {
        let repository = scanned.repository.as_str();
        let Found::Yes(image) = ecr::describe_digest(cx.ecr(), repository, index).await? else {
            return Ok(self.base.skipped(cx, format!("the index {index} no longer exists")));
        };
        let mut outcome = self.base.outcome_for(cx, class, repository, Some(index), &image.tags);
        let name = &child[..child.len().min(19)];
        result.reasons.insert(0, format!("platform image {name}… fails the gate: the index cannot pass"));
        for finding in &mut result.blocking {
            finding.id = format!("{} [{name}…]", finding.id);
        }
        outcome.reasons = result.reasons.clone();
        let for_index = Scanned { digest: Some(index), tags: &image.tags, counts: None, ..scanned.clone() };
        let evidence = Evidence { result, from_registry: true };
        self.block(cx, &mut outcome, GatedImage { class, gate, digest: index }, &for_index, evidence).await?;
        Ok(outcome)
    }

    /// A failing platform image that carries promotion tags of its own (promoted as an image before an index
    /// listed it) loses them as any failing image does. One DescribeImages; nothing more when it has none.
    async fn demote_child(
        &self,
        cx: &Context<'_>,
        (class, gate): (&Class, &GateRules),
        scanned: &Scanned<'_>,
        child: &str,
        result: warden::gate::GateResult,
    ) -> Result<Option<Outcome>, WardenError> {
        let repository = scanned.repository.as_str();
        let Found::Yes(image) = ecr::describe_digest(cx.ecr(), repository, child).await? else {
            return Ok(None);
        };
        if !image.tags.iter().any(|t| gate.is_promotion_tag(t)) {
            return Ok(None);
        }
        let mut outcome = self.base.outcome_for(cx, class, repository, Some(child), &image.tags);
        outcome.reasons = result.reasons.clone();
        let as_image = Scanned { tags: &image.tags, ..scanned.clone() };
        let evidence = Evidence { result, from_registry: true };
        self.block(cx, &mut outcome, GatedImage { class, gate, digest: child }, &as_image, evidence).await?;
        Ok(Some(outcome))
    }

    /// The manifests the index lists, read fresh. `Err`: why there is nothing to gate.
    async fn index_children(
        &self,
        cx: &Context<'_>,
        repository: &str,
        index: &str,
    ) -> Result<Result<Vec<Child>, String>, WardenError> {
        Ok(match ecr::get_manifest(cx.ecr(), repository, index).await? {
            Found::Yes(manifest) => {
                parse_index(&manifest.body).map_err(|why| format!("{repository}@{index} is no index to gate: {why}"))
            }
            _ => Err(format!("the index {index} or its repository no longer exists")),
        })
    }

    /// Gates the index on every gated child's scan, read from the registry now: promotes, blocks (demoting a
    /// promoted index), tells that a child has no usable scan, or waits for a scan still running.
    pub(crate) async fn gate_index(
        &self,
        cx: &Context<'_>,
        class: &Class,
        gate: &GateRules,
        event: IndexEvent<'_>,
    ) -> Result<Outcome, WardenError> {
        let repository = event.repository.to_string();
        // Quiet about a missing scan when the event is no scan's: the index's push, or an artifact attached.
        let quiet = event.children.is_some() || *event.trigger == Trigger::ReferrerAttached;
        let children = match event.children {
            Some(children) => children,
            None => match self.index_children(cx, &repository, event.index).await? {
                Ok(children) => children,
                Err(reason) => return Ok(self.base.skipped(cx, reason)),
            },
        };
        let (gated, ignored) = gated_children(&children, &gate.platforms);
        let mut scans = Vec::with_capacity(gated.len());
        for child in &gated {
            scans.push(self.child_scan(cx, event.scanner, gate, &repository, &child.digest).await?);
        }
        let pairs: Vec<(&Child, &ChildScan)> = gated.iter().copied().zip(scans.iter().map(|(scan, _)| scan)).collect();
        let decision = decide_index(&pairs);
        // Every child found scanned counts as such, so a later rescan of one gates the index at once (scans that
        // completed before the index was recorded found no index to count for).
        let judged: Vec<&str> = pairs
            .iter()
            .filter(|(_, scan)| matches!(scan, ChildScan::Judged(_)))
            .map(|(child, _)| child.digest.as_str())
            .collect();
        cx.ledger().children_scanned(&repository, event.index, &judged).await?;
        let Found::Yes(image) = ecr::describe_digest(cx.ecr(), &repository, event.index).await? else {
            return Ok(self.base.skipped(cx, format!("the index {} no longer exists", event.index)));
        };
        let mut outcome = self.base.outcome_for(cx, class, &repository, Some(event.index), &image.tags);
        outcome.reasons = decision.reasons.clone();
        outcome.reasons.extend(ignored);
        let scanned = Scanned {
            scanner: event.scanner,
            trigger: event.trigger.clone(),
            repository: event.repository,
            digest: Some(event.index),
            tags: &image.tags,
            counts: None,
            status: "COMPLETE",
        };
        let image = GatedImage { class, gate, digest: event.index };
        match decision.verdict {
            // Right after the push a platform image's scan may not have started: its scan event decides, as
            // for any image (a repository that never scans never promotes, and says so on no push either).
            IndexVerdict::Waiting => {
                outcome.decision = Decision::Skipped;
                Ok(outcome)
            }
            IndexVerdict::Unscanned if quiet => {
                outcome.decision = Decision::Skipped;
                outcome.reasons.push("the platform images' scan events gate the index".into());
                Ok(outcome)
            }
            IndexVerdict::Unscanned => {
                let reason = "not every platform image of the index has a usable scan".to_owned();
                outcome.reasons.remove(0);
                self.unscanned(cx, outcome, GateDecision::NotScanned, reason).await
            }
            IndexVerdict::Fail => {
                let evidence = Evidence { result: decision.result, from_registry: true };
                self.block(cx, &mut outcome, image, &scanned, evidence).await?;
                Ok(outcome)
            }
            IndexVerdict::Pass => {
                let scanned_at = scans.iter().filter_map(|(_, at)| *at).max();
                self.promote_index(cx, &mut outcome, image, &scanned, (&gated, scanned_at)).await?;
                outcome.gate.get_or_insert(decision.result);
                Ok(outcome)
            }
        }
    }

    /// One child's scan as the registry holds it, and when it completed (basic scanning says).
    async fn child_scan(
        &self,
        cx: &Context<'_>,
        scanner: warden::gate::Scanner,
        gate: &GateRules,
        repository: &str,
        child: &str,
    ) -> Result<(ChildScan, Option<i64>), WardenError> {
        let read = registry_scan(cx.ecr(), cx.inspector()?, scanner, gate, repository, child, today());
        Ok(match read.await? {
            RegistryScan::Judged { result, scanned_at } => (ChildScan::Judged(result), scanned_at),
            RegistryScan::NoScan { reason, .. } => (ChildScan::NoScan(reason), None),
            RegistryScan::Pending(reason) => (ChildScan::Pending(reason), None),
            RegistryScan::Gone => (ChildScan::Gone, None),
        })
    }

    /// Every child passes: each must also be vouched for as a single image would be (Inspector's coverage of its
    /// digest with enhanced scanning), then the index is promoted — the approval dated by its latest evidence.
    async fn promote_index(
        &self,
        cx: &Context<'_>,
        outcome: &mut Outcome,
        image: GatedImage<'_>,
        scanned: &Scanned<'_>,
        (children, scanned_at): (&[&Child], Option<i64>),
    ) -> Result<(), WardenError> {
        let labels: Vec<String> = children.iter().map(|c| format!("{} ({})", c.platform, c.digest)).collect();
        let images: Vec<(&str, &str)> =
            labels.iter().zip(children).map(|(label, c)| (label.as_str(), c.digest.as_str())).collect();
        let Some(covered_at) = self.vouched_for(cx, outcome, scanned, &images).await? else {
            return Ok(());
        };
        let scanned_at = scanned_at.max(covered_at);
        self.promote_checked(cx, outcome, image, scanned, scanned_at).await
    }
}

/// The index to gate and what the event says about the scan.
pub(crate) struct IndexEvent<'a> {
    pub(crate) repository: &'a RepositoryName,
    pub(crate) scanner: warden::gate::Scanner,
    pub(crate) trigger: &'a Trigger,
    pub(crate) index: &'a str,
    /// The index's children when already read: the event is the index's push.
    pub(crate) children: Option<Vec<Child>>,
}
