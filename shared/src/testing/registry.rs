//! One image in a registry, and the ledger's leases, as mock rules over shared state: for tests in which
//! several invocations act on the same image at once, with the interleaving under the test's control.
//!
//! ECR's semantics as far as tag removal goes: DescribeImages by tag or digest answers the image's current tags;
//! BatchDeleteImage naming a tag and the digest removes that tag (`ImageTagDoesNotMatchDigest` when it is not
//! the image's), and removing the image's last tag deletes the image; PutImage adds a tag. Leases (`LEASE#`
//! items) are granted while free and given back by their token, like the ledger's conditional writes.
//!
//! [`ImageModel::meeting`] names reads that must meet: each waits (blocking its worker thread, so run the
//! invocations as tasks of a multi-threaded runtime) until all have happened or a second has passed. The race
//! in which two invocations each read the other's tag as the one that stays is exactly that meeting.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ecr::operation::put_image::PutImageOutput;
use aws_sdk_ecr::types::error::ImageNotFoundException;
use aws_sdk_ecr::types::{Image, ImageDetail, ImageFailure, ImageFailureCode, ImageIdentifier};
use aws_smithy_mocks::{MockResponse, Rule, mock};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A read of the image: by one of its tags, or the `n`-th read by its digest (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Tag(String),
    DigestNth(usize),
}

#[derive(Debug, Default)]
struct State {
    tags: Vec<String>,
    exists: bool,
    lease: Option<String>,
    digest_reads: usize,
    /// Reads that must meet, and those that happened.
    meeting: Vec<Read>,
    met: Vec<Read>,
}

/// One image (its digest and tags) and the leases on it.
#[derive(Debug, Clone)]
pub struct ImageModel {
    pub digest: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl ImageModel {
    pub fn new(digest: &str, tags: &[&str]) -> Self {
        let state = State { tags: tags.iter().map(|t| (*t).to_owned()).collect(), exists: true, ..State::default() };
        Self { digest: digest.to_owned(), state: Arc::new((Mutex::new(state), Condvar::new())) }
    }

    /// Makes `reads` meet (see the module's documentation).
    #[must_use]
    pub fn meeting(self, reads: &[Read]) -> Self {
        self.state.0.lock().expect("model").meeting = reads.to_vec();
        self
    }

    /// The image's tags, sorted; `None` once it is deleted.
    pub fn tags(&self) -> Option<Vec<String>> {
        let state = self.state.0.lock().expect("model");
        state.exists.then(|| {
            let mut tags = state.tags.clone();
            tags.sort();
            tags
        })
    }

    /// Records a read and, if it is one of the meeting, waits for the others (at most a second).
    fn read(&self, read: Read) {
        let (lock, met) = &*self.state;
        let mut state = lock.lock().expect("model");
        if !state.meeting.contains(&read) {
            return;
        }
        state.met.push(read);
        met.notify_all();
        let everyone = |s: &mut State| s.meeting.iter().all(|r| s.met.contains(r));
        let _ = met.wait_timeout_while(state, Duration::from_secs(1), |s| !everyone(s));
    }

    fn describe(&self, tag: Option<&str>) -> MockResponse<DescribeImagesOutput, DescribeImagesError> {
        let read = match tag {
            Some(tag) => Read::Tag(tag.to_owned()),
            None => {
                let mut state = self.state.0.lock().expect("model");
                state.digest_reads += 1;
                Read::DigestNth(state.digest_reads)
            }
        };
        // The answer is what the image holds when the read arrives; the meeting only delays its delivery.
        let answer = {
            let state = self.state.0.lock().expect("model");
            if !state.exists || tag.is_some_and(|t| !state.tags.iter().any(|held| held == t)) {
                let missing = ImageNotFoundException::builder().message("not found").build();
                MockResponse::Error(DescribeImagesError::ImageNotFoundException(missing))
            } else {
                let detail = ImageDetail::builder()
                    .image_digest(&self.digest)
                    .set_image_tags(Some(state.tags.clone()))
                    .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                    .build();
                MockResponse::Output(DescribeImagesOutput::builder().image_details(detail).build())
            }
        };
        self.read(read);
        answer
    }

    fn remove(&self, ids: &[ImageIdentifier]) -> BatchDeleteImageOutput {
        let mut state = self.state.0.lock().expect("model");
        let mut output = BatchDeleteImageOutput::builder();
        for id in ids {
            let tag = id.image_tag().unwrap_or_default();
            if !state.exists || !state.tags.iter().any(|t| t == tag) || id.image_digest() != Some(&self.digest) {
                let code = if state.exists && state.tags.iter().any(|t| t == tag) {
                    ImageFailureCode::ImageTagDoesNotMatchDigest
                } else {
                    ImageFailureCode::ImageNotFound
                };
                output = output.failures(ImageFailure::builder().image_id(id.clone()).failure_code(code).build());
                continue;
            }
            state.tags.retain(|t| t != tag);
            // ECR deletes an image whose last tag is removed.
            state.exists = !state.tags.is_empty();
            output = output.image_ids(id.clone());
        }
        output.build()
    }

    /// ECR's DescribeImages, BatchDeleteImage, BatchGetImage and PutImage on the image.
    pub fn ecr_rules(&self) -> Vec<Rule> {
        let (describe, remove, put) = (self.clone(), self.clone(), self.clone());
        let digest = self.digest.clone();
        vec![
            mock!(aws_sdk_ecr::Client::describe_images)
                .then_compute_response(move |r| describe.describe(r.image_ids().first().and_then(|id| id.image_tag()))),
            mock!(aws_sdk_ecr::Client::batch_delete_image).then_compute_output(move |r| remove.remove(r.image_ids())),
            mock!(aws_sdk_ecr::Client::batch_get_image).then_output(move || {
                let image = Image::builder()
                    .image_id(ImageIdentifier::builder().image_digest(&digest).build())
                    .image_manifest(r#"{"schemaVersion":2}"#)
                    .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                    .build();
                BatchGetImageOutput::builder().images(image).build()
            }),
            mock!(aws_sdk_ecr::Client::put_image).then_compute_output(move |r| {
                let mut state = put.state.0.lock().expect("model");
                if let Some(tag) = r.image_tag().filter(|t| !state.tags.iter().any(|held| held == t)) {
                    state.tags.push(tag.to_owned());
                }
                PutImageOutput::builder().build()
            }),
        ]
    }

    /// The ledger's leases on the image: granted while free, given back by their holder's token.
    pub fn lease_rules(&self) -> Vec<Rule> {
        let (take, give) = (self.clone(), self.clone());
        let is_lease =
            |pk: Option<&AttributeValue>| pk.and_then(|v| v.as_s().ok()).is_some_and(|p| p.starts_with("LEASE#"));
        vec![
            mock!(aws_sdk_dynamodb::Client::put_item)
                .match_requests(move |r| is_lease(r.item().and_then(|i| i.get("pk"))))
                .then_compute_response(move |r| {
                    let token = r.item().and_then(|i| i.get("claim")).and_then(|v| v.as_s().ok()).cloned();
                    let mut state = take.state.0.lock().expect("model");
                    match &state.lease {
                        Some(held) => {
                            let failed = ConditionalCheckFailedException::builder()
                                .item("claim", AttributeValue::S(held.clone()))
                                .build();
                            MockResponse::Error(PutItemError::ConditionalCheckFailedException(failed))
                        }
                        None => {
                            state.lease = token;
                            MockResponse::Output(PutItemOutput::builder().build())
                        }
                    }
                }),
            mock!(aws_sdk_dynamodb::Client::delete_item)
                .match_requests(move |r| is_lease(r.key().and_then(|k| k.get("pk"))))
                .then_compute_output(move |r| {
                    let token =
                        r.expression_attribute_values().and_then(|v| v.get(":token")).and_then(|v| v.as_s().ok());
                    let mut state = give.state.0.lock().expect("model");
                    if state.lease.as_ref() == token {
                        state.lease = None;
                    }
                    DeleteItemOutput::builder().build()
                }),
        ]
    }
}
