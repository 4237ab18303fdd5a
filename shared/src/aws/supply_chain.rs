//! Reading the supply-chain evidence of an image: its signing statuses (ECR managed signing,
//! `DescribeImageSigningStatus`) and its OCI referrers (`ListImageReferrers`), and the subject a referrer is
//! attached to. Read right before a promotion, never taken from an event.

use super::Found;
use crate::WardenError;
use crate::error::aws_error;
use crate::gate::supply_chain::{self, Criterion, SigningStatus, artifact_type};
use crate::policy::GateRules;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::{ImageIdentifier, ListImageReferrersFilter, SubjectIdentifier};

/// The image a referrer is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub digest: String,
    pub tags: Vec<String>,
    /// An image index (multi-architecture image): gated on its platform images.
    pub is_index: bool,
}

/// The gate's supply-chain criteria for `digest`, read from the registry: no call when the gate has none.
/// `Found::NoImage` / `NoRepository` when the image or its repository is gone.
pub async fn criteria(
    ecr: &Client,
    gate: &GateRules,
    repository: &str,
    digest: &str,
) -> Result<Found<Vec<Criterion>>, WardenError> {
    let mut criteria = Vec::new();
    if !gate.require_signature.is_empty() {
        match signing_statuses(ecr, repository, digest).await? {
            Found::Yes(statuses) => criteria.push(supply_chain::signature(&gate.require_signature, &statuses)),
            Found::NoImage => return Ok(Found::NoImage),
            Found::NoRepository => return Ok(Found::NoRepository),
        }
    }
    if !gate.require_referrers.is_empty() {
        let present = referrer_types(ecr, repository, digest, &gate.require_referrers).await?;
        criteria.extend(supply_chain::referrers(&gate.require_referrers, &present));
    }
    Ok(Found::Yes(criteria))
}

/// Every signing status of the image (one DescribeImageSigningStatus).
pub async fn signing_statuses(
    ecr: &Client,
    repository: &str,
    digest: &str,
) -> Result<Found<Vec<SigningStatus>>, WardenError> {
    let id = ImageIdentifier::builder().image_digest(digest).build();
    let output = match ecr.describe_image_signing_status().repository_name(repository).image_id(id).send().await {
        Ok(output) => output,
        Err(e) if e.as_service_error().is_some_and(|se| se.is_image_not_found_exception()) => {
            return Ok(Found::NoImage);
        }
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
            return Ok(Found::NoRepository);
        }
        Err(e) => return Err(aws_error("ECR.DescribeImageSigningStatus", e)),
    };
    Ok(Found::Yes(
        output
            .signing_statuses()
            .iter()
            .map(|s| SigningStatus {
                profile_arn: s.signing_profile_arn().unwrap_or_default().to_owned(),
                status: s.status().map_or_else(|| "UNKNOWN".to_owned(), |s| s.as_str().to_owned()),
                failure: s.failure_reason().or(s.failure_code()).map(str::to_owned),
            })
            .collect(),
    ))
}

/// The artifact types among `wanted` attached to the image as active referrers (ListImageReferrers filtered by
/// those types). The SDK has no paginator for this operation: pages are followed only while a wanted type is
/// still missing.
pub async fn referrer_types(
    ecr: &Client,
    repository: &str,
    digest: &str,
    wanted: &[String],
) -> Result<Vec<String>, WardenError> {
    let types: Vec<String> = wanted.iter().map(|w| artifact_type(w).to_owned()).collect();
    let subject =
        SubjectIdentifier::builder().image_digest(digest).build().map_err(|e| WardenError::Config(e.to_string()))?;
    let filter = ListImageReferrersFilter::builder().set_artifact_types(Some(types.clone())).build();
    let mut present: Vec<String> = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = ecr
            .list_image_referrers()
            .repository_name(repository)
            .subject_id(subject.clone())
            .filter(filter.clone())
            .max_results(50)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| aws_error("ECR.ListImageReferrers", e))?;
        present.extend(page.referrers().iter().filter_map(|r| r.artifact_type().map(str::to_owned)));
        present.sort();
        present.dedup();
        next = page.next_token().map(str::to_owned);
        if next.is_none() || types.iter().all(|t| present.contains(t)) {
            return Ok(present);
        }
    }
}

/// The subject of `referrer` (DescribeImages of the referrer, then of its subject: tags and media type).
/// `Ok(None)`: the image names no subject (not a referrer).
pub async fn subject_of(ecr: &Client, repository: &str, referrer: &str) -> Result<Found<Option<Subject>>, WardenError> {
    let detail = match detail_of(ecr, repository, referrer).await? {
        Found::Yes(detail) => detail,
        Found::NoImage => return Ok(Found::NoImage),
        Found::NoRepository => return Ok(Found::NoRepository),
    };
    let Some(subject) = detail.subject_manifest_digest() else { return Ok(Found::Yes(None)) };
    Ok(match detail_of(ecr, repository, subject).await? {
        Found::Yes(detail) => Found::Yes(Some(Subject {
            digest: subject.to_owned(),
            tags: detail.image_tags().to_vec(),
            is_index: detail
                .image_manifest_media_type()
                .is_some_and(|m| crate::lifecycle::INDEX_MEDIA_TYPES.contains(&m)),
        })),
        Found::NoImage => Found::NoImage,
        Found::NoRepository => Found::NoRepository,
    })
}

async fn detail_of(
    ecr: &Client,
    repository: &str,
    digest: &str,
) -> Result<Found<aws_sdk_ecr::types::ImageDetail>, WardenError> {
    let id = ImageIdentifier::builder().image_digest(digest).build();
    match ecr.describe_images().repository_name(repository).image_ids(id).send().await {
        Ok(output) => Ok(output.image_details().first().cloned().map_or(Found::NoImage, Found::Yes)),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_image_not_found_exception()) => Ok(Found::NoImage),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
            Ok(Found::NoRepository)
        }
        Err(e) => Err(aws_error("ECR.DescribeImages", e)),
    }
}
