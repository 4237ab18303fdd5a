//! The lifecycle function's AWS calls: native lifecycle policies, index manifests, deletions in batches, and
//! Amazon Inspector's in-use data.

use super::Found;
use crate::WardenError;
use crate::error::aws_error;
use crate::lifecycle::{INDEX_MEDIA_TYPES, InUse, InUseData};
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::ImageIdentifier;
use std::collections::HashMap;

/// BatchGetImage and BatchDeleteImage take at most 100 image ids per call.
pub const BATCH_LIMIT: usize = 100;

fn digest_ids(digests: &[String]) -> Vec<ImageIdentifier> {
    digests.iter().map(|d| ImageIdentifier::builder().image_digest(d).build()).collect()
}

/// A repository's lifecycle policy text (`Found::Yes(None)`: it has none).
pub async fn current_policy(ecr: &Client, repository: &str) -> Result<Found<Option<String>>, WardenError> {
    match ecr.get_lifecycle_policy().repository_name(repository).send().await {
        Ok(output) => Ok(Found::Yes(output.lifecycle_policy_text().map(str::to_owned))),
        Err(e) => match e.as_service_error() {
            Some(se) if se.is_lifecycle_policy_not_found_exception() => Ok(Found::Yes(None)),
            Some(se) if se.is_repository_not_found_exception() => Ok(Found::NoRepository),
            _ => Err(aws_error("ECR.GetLifecyclePolicy", e)),
        },
    }
}

/// Sets a repository's lifecycle policy. `Ok(false)`: the repository is gone.
pub async fn put_policy(ecr: &Client, repository: &str, text: &str) -> Result<bool, WardenError> {
    match ecr.put_lifecycle_policy().repository_name(repository).lifecycle_policy_text(text).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => Ok(false),
        Err(e) => Err(aws_error("ECR.PutLifecyclePolicy", e)),
    }
}

/// The manifests each image index references (BatchGetImage in batches of 100, index media types only).
/// Indexes that vanished meanwhile are left out.
pub async fn index_children(
    ecr: &Client,
    repository: &str,
    indexes: &[String],
) -> Result<Found<HashMap<String, Vec<String>>>, WardenError> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Reference>,
    }
    #[derive(serde::Deserialize)]
    struct Reference {
        digest: String,
    }
    let mut children = HashMap::new();
    for batch in indexes.chunks(BATCH_LIMIT) {
        let mut request = ecr.batch_get_image().repository_name(repository).set_image_ids(Some(digest_ids(batch)));
        for media_type in INDEX_MEDIA_TYPES {
            request = request.accepted_media_types(*media_type);
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
                return Ok(Found::NoRepository);
            }
            Err(e) => return Err(aws_error("ECR.BatchGetImage", e)),
        };
        for image in output.images() {
            let digest = image.image_id().and_then(|id| id.image_digest()).unwrap_or_default();
            let Some(body) = image.image_manifest() else { continue };
            // An index that cannot be read keeps nothing alive; refuse rather than risk breaking it.
            let index: Index = serde_json::from_str(body).map_err(|e| {
                WardenError::Unexpected(format!("{repository}@{digest}: unreadable image index manifest: {e}"))
            })?;
            children.insert(digest.to_owned(), index.manifests.into_iter().map(|m| m.digest).collect());
        }
    }
    Ok(Found::Yes(children))
}

/// What happened to one image of a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Done,
    /// Already gone (an earlier run, ECR's own lifecycle, a person).
    AlreadyGone,
    Failed {
        code: String,
        reason: String,
    },
    /// Its batch failed past the SDK's retries (it may still be gone: an answer can be lost after the delete),
    /// or a batch before it did, so it was not tried.
    Interrupted,
}

/// What a deletion did, image by image, in the order asked.
#[derive(Debug)]
pub struct Deletion {
    pub results: Vec<(String, Deleted)>,
    /// Set when a batch failed retryably: the images from that batch on are `Deleted::Interrupted`, and the
    /// invocation should fail with this error once what was done is reported, so EventBridge retries the rest.
    pub interrupted: Option<WardenError>,
}

/// Deletes images by digest (BatchDeleteImage in batches of 100). Per-image failures are returned, not
/// raised: the next run retries them. A batch that fails retryably stops the deletion without losing what
/// the batches before it did ([`Deletion::interrupted`]). `Found::NoRepository` when the repository is gone.
pub async fn delete_images(ecr: &Client, repository: &str, digests: &[String]) -> Result<Found<Deletion>, WardenError> {
    use aws_sdk_ecr::types::ImageFailureCode;
    let mut results = Vec::with_capacity(digests.len());
    for batch in digests.chunks(BATCH_LIMIT) {
        let output = match ecr
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(digest_ids(batch)))
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
                return Ok(Found::NoRepository);
            }
            Err(e) => {
                let error = aws_error("ECR.BatchDeleteImage", e);
                if !error.is_retryable() {
                    return Err(error);
                }
                let rest = digests[results.len()..].iter().map(|d| (d.clone(), Deleted::Interrupted));
                results.extend(rest);
                return Ok(Found::Yes(Deletion { results, interrupted: Some(error) }));
            }
        };
        let mut failed: HashMap<&str, Deleted> = HashMap::new();
        for failure in output.failures() {
            let digest = failure.image_id().and_then(|id| id.image_digest()).unwrap_or_default();
            let result = match failure.failure_code() {
                Some(ImageFailureCode::ImageNotFound) => Deleted::AlreadyGone,
                code => Deleted::Failed {
                    code: code.map(|c| c.as_str().to_owned()).unwrap_or_default(),
                    reason: format!("{} (retried next run)", failure.failure_reason().unwrap_or_default()),
                },
            };
            failed.insert(digest, result);
        }
        results.extend(batch.iter().map(|d| (d.clone(), failed.remove(d.as_str()).unwrap_or(Deleted::Done))));
    }
    Ok(Found::Yes(Deletion { results, interrupted: None }))
}

/// Amazon Inspector's in-use data for a repository's images (ListCoverage filtered by repository, all pages):
/// digest → in-use count and last use; images Inspector does not cover are absent. A read a retry cannot mend
/// (access denied, Inspector not enabled) is [`InUseData::Unavailable`], never an empty "nothing is used".
pub async fn images_in_use(inspector: &aws_sdk_inspector2::Client, repository: &str) -> Result<InUseData, WardenError> {
    use aws_sdk_inspector2::types::{CoverageFilterCriteria, CoverageStringComparison, CoverageStringFilter};
    let filter = |value: &str| {
        CoverageStringFilter::builder()
            .comparison(CoverageStringComparison::Equals)
            .value(value)
            .build()
            .map_err(|e| WardenError::Unexpected(format!("coverage filter: {e}")))
    };
    let criteria = CoverageFilterCriteria::builder()
        .ecr_repository_name(filter(repository)?)
        .resource_type(filter("AWS_ECR_CONTAINER_IMAGE")?)
        .build();
    let mut pages = inspector.list_coverage().filter_criteria(criteria).max_results(200).into_paginator().send();
    let mut in_use = HashMap::new();
    while let Some(page) = pages.next().await {
        let page = match page.map_err(|e| aws_error("Inspector2.ListCoverage", e)) {
            Ok(page) => page,
            Err(WardenError::Aws { retryable: false, code, .. }) => return Ok(InUseData::Unavailable(code)),
            Err(error) => return Err(error),
        };
        for resource in page.covered_resources() {
            // The resource id of an ECR image is its ARN: `arn:aws:ecr:region:account:repository/name/sha256:...`.
            let Some((_, digest)) = resource.resource_id().rsplit_once('/') else { continue };
            let Some(image) = resource.resource_metadata().and_then(|m| m.ecr_image()) else { continue };
            in_use.insert(
                digest.to_owned(),
                InUse {
                    count: image.in_use_count().unwrap_or(0),
                    last_in_use_at: image.last_in_use_at().map(aws_smithy_types::DateTime::secs),
                },
            );
        }
    }
    Ok(InUseData::Read(in_use))
}

/// Every image's tags right now, in every storage class (ListImages, all pages, 1,000 per call, `imageStatus`
/// ANY): digest → tags, sorted. Retention compares them with its inventory just before deleting, so an image
/// tagged meanwhile (a promotion, a release) is not deleted on the strength of a stale picture, and an archived
/// image is not taken for one already gone.
pub async fn current_tags(ecr: &Client, repository: &str) -> Result<Found<HashMap<String, Vec<String>>>, WardenError> {
    use aws_sdk_ecr::types::{ImageStatusFilter, ListImagesFilter};
    let every_status = ListImagesFilter::builder().image_status(ImageStatusFilter::Any).build();
    let mut pages =
        ecr.list_images().repository_name(repository).filter(every_status).max_results(1000).into_paginator().send();
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
                return Ok(Found::NoRepository);
            }
            Err(e) => return Err(aws_error("ECR.ListImages", e)),
        };
        for id in page.image_ids() {
            let entry = tags.entry(id.image_digest().unwrap_or_default().to_owned()).or_default();
            entry.extend(id.image_tag().map(str::to_owned));
        }
    }
    for list in tags.values_mut() {
        list.sort();
    }
    Ok(Found::Yes(tags))
}
