//! OCI referrers: an artifact attached to an image (an SBOM, an attestation, a managed signature) may meet the
//! last supply-chain criterion of its subject's gate, so its `ECR Referrer Action` gates the subject again ("promote when the SBOM
//! arrives", without polling). The subject, its scan and its criteria are read from the registry; the event
//! only says where to look.

use super::index::IndexEvent;
use super::{ScanGate, Scanned};
use warden::WardenError;
use warden::aws::Found;
use warden::aws::findings::registry_scanner;
use warden::aws::supply_chain::subject_of;
use warden::event::{ImageAction, ImageActionType};
use warden::gate::Trigger;
use warden::handler::Context;
use warden::outcome::Outcome;

impl ScanGate {
    pub(crate) async fn on_referrer(&self, cx: &Context<'_>, referrer: &ImageAction) -> Result<Outcome, WardenError> {
        let attached = match referrer.action_type {
            ImageActionType::Push => true,
            ImageActionType::UpdateStorageClass => referrer.target_storage_class.as_deref() == Some("STANDARD"),
            _ => false,
        };
        if !attached || !referrer.succeeded() {
            return Ok(self.base.skipped(cx, "no referrer was attached or restored: no criterion can be met by it"));
        }
        let repository = referrer.repository_name.as_str();
        let class = match self.base.managed_class(cx, repository) {
            Ok(class) => class,
            Err(reason) => return Ok(self.base.skipped(cx, reason)),
        };
        // A managed signature is itself a referrer of the image it signs (a Notation signature): its arrival can
        // meet require-signature as an SBOM's meets require-referrers.
        let Some(gate) = class.gate.as_ref().filter(|g| g.has_supply_chain_criteria()) else {
            return Ok(self.base.skipped(cx, format!("class `{}` requires no signature or referrers", class.name)));
        };
        let subject = match subject_of(cx.ecr(), repository, &referrer.image_digest).await? {
            Found::Yes(Some(subject)) => subject,
            Found::Yes(None) => return Ok(self.base.skipped(cx, "the artifact names no subject image")),
            _ => return Ok(self.base.skipped(cx, "the artifact or its repository no longer exists")),
        };
        let scanner = registry_scanner(cx.ecr()).await?;
        let trigger = Trigger::ReferrerAttached;
        if subject.is_index {
            let index = IndexEvent {
                repository: &referrer.repository_name,
                scanner,
                trigger: &trigger,
                index: &subject.digest,
                children: None,
            };
            return self.gate_index(cx, class, gate, index).await;
        }
        let scanned = Scanned {
            scanner,
            trigger,
            repository: &referrer.repository_name,
            digest: Some(&subject.digest),
            tags: &subject.tags,
            counts: None,
            status: "COMPLETE",
        };
        self.gate(cx, &scanned).await
    }
}
