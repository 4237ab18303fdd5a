//! ECR reads and writes used by the functions.

use super::Found;
use crate::WardenError;
use crate::error::aws_error;
use crate::policy::{EcrMutability, MutabilitySetting};
use crate::tags::ImageState;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::{
    ImageFailureCode, ImageIdentifier, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType,
};

/// Every manifest type ecr-warden may copy: a re-tag must keep an index an index.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v1+json",
];

/// An image manifest as BatchGetImage returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub digest: String,
    pub body: String,
    pub media_type: Option<String>,
}

/// A repository's name and current tag-mutability setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    pub name: String,
    pub mutability: MutabilitySetting,
}

fn tag_id(tag: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(tag).build()
}

fn digest_id(digest: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_digest(digest).build()
}

/// Whether ECR says the image `digest` does not exist: BatchGetImage answers `ImageNotFound` for it. Anything
/// else — the image, another failure, an empty answer — is not "gone" (missing data never counts as absence).
pub async fn image_not_found(ecr: &Client, repository: &str, digest: &str) -> Result<bool, WardenError> {
    let output = ecr.batch_get_image().repository_name(repository).image_ids(digest_id(digest)).send().await;
    let output = output.map_err(|e| aws_error("ECR.BatchGetImage", e))?;
    let not_found = output.failures().iter().any(|f| f.failure_code() == Some(&ImageFailureCode::ImageNotFound));
    Ok(output.images().is_empty() && not_found)
}

/// The image a tag points at now, with all its tags (DescribeImages by tag).
pub async fn describe_tag(ecr: &Client, repository: &str, tag: &str) -> Result<Found<ImageState>, WardenError> {
    describe_image(ecr, repository, tag_id(tag)).await
}

/// An image by digest, with all its tags (DescribeImages by digest).
pub async fn describe_digest(ecr: &Client, repository: &str, digest: &str) -> Result<Found<ImageState>, WardenError> {
    describe_image(ecr, repository, digest_id(digest)).await
}

async fn describe_image(ecr: &Client, repository: &str, id: ImageIdentifier) -> Result<Found<ImageState>, WardenError> {
    let result = ecr.describe_images().repository_name(repository).image_ids(id).send().await;
    match result {
        Ok(output) => Ok(output.image_details().first().map_or(Found::NoImage, |detail| {
            Found::Yes(ImageState {
                digest: detail.image_digest().unwrap_or_default().to_owned(),
                tags: detail.image_tags().to_vec(),
            })
        })),
        Err(e) => match e.as_service_error() {
            Some(se) if se.is_repository_not_found_exception() => Ok(Found::NoRepository),
            Some(se) if se.is_image_not_found_exception() => Ok(Found::NoImage),
            _ => Err(aws_error("ECR.DescribeImages", e)),
        },
    }
}

/// The manifest of an image by digest (BatchGetImage, every manifest media type accepted).
pub async fn get_manifest(ecr: &Client, repository: &str, digest: &str) -> Result<Found<Manifest>, WardenError> {
    let mut request = ecr.batch_get_image().repository_name(repository).image_ids(digest_id(digest));
    for media_type in MANIFEST_MEDIA_TYPES {
        request = request.accepted_media_types(*media_type);
    }
    let output = match request.send().await {
        Ok(output) => output,
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
            return Ok(Found::NoRepository);
        }
        Err(e) => return Err(aws_error("ECR.BatchGetImage", e)),
    };
    let image = output.images().iter().find(|image| image.image_manifest().is_some());
    Ok(match image {
        Some(image) => Found::Yes(Manifest {
            digest: digest.to_owned(),
            body: image.image_manifest().unwrap_or_default().to_owned(),
            media_type: image.image_manifest_media_type().map(str::to_owned),
        }),
        None => Found::NoImage,
    })
}

/// What a tag write came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagWrite {
    Done,
    /// The tag already pointed at this image.
    AlreadyThere,
    /// The tag is immutable and points at another image.
    Immutable {
        points_at: Option<String>,
    },
}

/// Points `tag` at the manifest (PutImage). Safe to repeat: ECR answers `ImageAlreadyExistsException` when the
/// tag is already there, and for an immutable tag `ImageTagAlreadyExistsException` whatever it points at, so
/// that case is settled by looking the tag up.
pub async fn put_tag(ecr: &Client, repository: &str, tag: &str, manifest: &Manifest) -> Result<TagWrite, WardenError> {
    let mut request = ecr
        .put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(&manifest.body)
        .image_digest(&manifest.digest);
    if let Some(media_type) = &manifest.media_type {
        request = request.image_manifest_media_type(media_type);
    }
    match request.send().await {
        Ok(_) => Ok(TagWrite::Done),
        Err(e) => match e.as_service_error() {
            Some(se) if se.is_image_already_exists_exception() => Ok(TagWrite::AlreadyThere),
            Some(se) if se.is_image_tag_already_exists_exception() => match describe_tag(ecr, repository, tag).await? {
                Found::Yes(current) if current.digest == manifest.digest => Ok(TagWrite::AlreadyThere),
                Found::Yes(current) => Ok(TagWrite::Immutable { points_at: Some(current.digest) }),
                _ => Ok(TagWrite::Immutable { points_at: None }),
            },
            _ => Err(aws_error("ECR.PutImage", e)),
        },
    }
}

/// What removing a tag came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagRemoval {
    Done,
    AlreadyGone,
    /// The tag points at another image now: nothing was removed.
    Moved,
    Failed {
        code: String,
        reason: String,
    },
}

/// Removes `tag` from the image `digest` (BatchDeleteImage naming both). Naming the digest makes it the only
/// conditional delete ECR has: if the tag moved to another image since it was read, ECR answers
/// `ImageTagDoesNotMatchDigest` and the other image keeps it. The caller has made sure the image keeps another
/// tag: removing the last tag deletes the image.
pub async fn remove_tag(ecr: &Client, repository: &str, tag: &str, digest: &str) -> Result<TagRemoval, WardenError> {
    let id = ImageIdentifier::builder().image_tag(tag).image_digest(digest).build();
    let output = ecr
        .batch_delete_image()
        .repository_name(repository)
        .image_ids(id)
        .send()
        .await
        .map_err(|e| aws_error("ECR.BatchDeleteImage", e))?;
    if let Some(failure) = output.failures().first() {
        return Ok(match failure.failure_code() {
            Some(ImageFailureCode::ImageNotFound) => TagRemoval::AlreadyGone,
            Some(ImageFailureCode::ImageTagDoesNotMatchDigest) => TagRemoval::Moved,
            code => TagRemoval::Failed {
                code: code.map(|c| c.as_str().to_owned()).unwrap_or_default(),
                reason: failure.failure_reason().unwrap_or_default().to_owned(),
            },
        });
    }
    Ok(TagRemoval::Done)
}

pub(crate) fn setting_from(
    mode: Option<&ImageTagMutability>,
    filters: &[ImageTagMutabilityExclusionFilter],
) -> MutabilitySetting {
    let mode = match mode {
        Some(ImageTagMutability::Immutable) => EcrMutability::Immutable,
        Some(ImageTagMutability::ImmutableWithExclusion) => EcrMutability::ImmutableWithExclusion,
        Some(ImageTagMutability::MutableWithExclusion) => EcrMutability::MutableWithExclusion,
        _ => EcrMutability::Mutable,
    };
    MutabilitySetting::new(mode, filters.iter().map(|f| f.filter().to_owned()).collect())
}

pub(crate) fn settings_of(repository: &aws_sdk_ecr::types::Repository) -> RepositorySettings {
    RepositorySettings {
        name: repository.repository_name().unwrap_or_default().to_owned(),
        mutability: setting_from(
            repository.image_tag_mutability(),
            repository.image_tag_mutability_exclusion_filters(),
        ),
    }
}

/// One repository's settings (DescribeRepositories).
pub async fn describe_repository(ecr: &Client, repository: &str) -> Result<Found<RepositorySettings>, WardenError> {
    match ecr.describe_repositories().repository_names(repository).send().await {
        Ok(output) => Ok(output.repositories().first().map_or(Found::NoRepository, |r| Found::Yes(settings_of(r)))),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
            Ok(Found::NoRepository)
        }
        Err(e) => Err(aws_error("ECR.DescribeRepositories", e)),
    }
}

/// The account, region and partition of a repository's registry, from its ARN (DescribeRepositories): what
/// the ARN of one of its images, as Amazon Inspector keys its coverage, is built from.
pub async fn registry_home(ecr: &Client, repository: &str) -> Result<Found<crate::invocation::Home>, WardenError> {
    let arn = match ecr.describe_repositories().repository_names(repository).send().await {
        Ok(output) => output.repositories().first().and_then(|r| r.repository_arn()).map(str::to_owned),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => None,
        Err(e) => return Err(aws_error("ECR.DescribeRepositories", e)),
    };
    // arn:<partition>:ecr:<region>:<account>:repository/<name>
    let home = arn.as_deref().map(|arn| arn.splitn(6, ':').collect::<Vec<_>>()).and_then(|parts| match parts[..] {
        ["arn", partition, "ecr", region, account, _] => Some(crate::invocation::Home {
            partition: partition.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
        }),
        _ => None,
    });
    Ok(home.map_or(Found::NoRepository, Found::Yes))
}

/// Every repository of the registry (DescribeRepositories, all pages).
pub async fn list_repositories(ecr: &Client) -> Result<Vec<RepositorySettings>, WardenError> {
    let mut pages = ecr.describe_repositories().max_results(1000).into_paginator().send();
    let mut repositories = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("ECR.DescribeRepositories", e))?;
        repositories.extend(page.repositories().iter().map(settings_of));
    }
    Ok(repositories)
}

/// Sets a repository's tag mutability (PutImageTagMutability). `Ok(false)`: the repository is gone.
pub async fn put_mutability(ecr: &Client, repository: &str, setting: &MutabilitySetting) -> Result<bool, WardenError> {
    let mode = ImageTagMutability::from(setting.mode.as_str());
    let mut request = ecr.put_image_tag_mutability().repository_name(repository).image_tag_mutability(mode);
    for filter in &setting.filters {
        let filter = ImageTagMutabilityExclusionFilter::builder()
            .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
            .filter(filter)
            .build()
            .map_err(|e| WardenError::Config(format!("exclusion filter `{filter}`: {e}")))?;
        request = request.image_tag_mutability_exclusion_filters(filter);
    }
    match request.send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => Ok(false),
        Err(e) => Err(aws_error("ECR.PutImageTagMutability", e)),
    }
}

/// Every image of a repository in every storage class, as the lifecycle evaluator sees them
/// (DescribeImages, all pages, `imageStatus` ANY). `Found::NoRepository` when it is gone.
pub async fn lifecycle_inventory(
    ecr: &Client,
    repository: &str,
) -> Result<Found<Vec<crate::lifecycle::Image>>, WardenError> {
    Ok(match inventory_until(ecr, repository, None).await? {
        Found::Yes(Some(images)) => Found::Yes(images),
        Found::NoImage | Found::Yes(None) => Found::NoImage,
        Found::NoRepository => Found::NoRepository,
    })
}

/// [`lifecycle_inventory`], giving up (`Found::Yes(None)`) before a page when `deadline` has passed: a sweep
/// must stop in time to record where it was, whatever the size of the repository.
pub async fn inventory_until(
    ecr: &Client,
    repository: &str,
    deadline: Option<std::time::SystemTime>,
) -> Result<Found<Option<Vec<crate::lifecycle::Image>>>, WardenError> {
    use aws_sdk_ecr::types::{DescribeImagesFilter, ImageStatus, ImageStatusFilter};
    let filter = DescribeImagesFilter::builder().image_status(ImageStatusFilter::Any).build();
    let mut pages =
        ecr.describe_images().repository_name(repository).filter(filter).max_results(1000).into_paginator().send();
    let seconds = |t: Option<&aws_smithy_types::DateTime>| t.map(aws_smithy_types::DateTime::secs);
    let mut images = Vec::new();
    loop {
        if deadline.is_some_and(|d| std::time::SystemTime::now() >= d) {
            return Ok(Found::Yes(None));
        }
        let Some(page) = pages.next().await else { break };
        let page = match page {
            Ok(page) => page,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => {
                return Ok(Found::NoRepository);
            }
            Err(e) => return Err(aws_error("ECR.DescribeImages", e)),
        };
        images.extend(page.image_details().iter().map(|d| crate::lifecycle::Image {
            digest: d.image_digest().unwrap_or_default().to_owned(),
            tags: d.image_tags().to_vec(),
            pushed_at: seconds(d.image_pushed_at()).unwrap_or(0),
            last_pulled_at: seconds(d.last_recorded_pull_time()),
            storage_class: match d.image_status() {
                Some(ImageStatus::Archived | ImageStatus::Activating) => crate::lifecycle::StorageClass::Archive,
                _ => crate::lifecycle::StorageClass::Standard,
            },
            archived_at: seconds(d.last_archived_at()),
            activated_at: seconds(d.last_activated_at()),
            size_bytes: d.image_size_in_bytes(),
            media_type: d.image_manifest_media_type().map(str::to_owned),
            subject: d.subject_manifest_digest().map(str::to_owned),
        }));
    }
    Ok(Found::Yes(Some(images)))
}
