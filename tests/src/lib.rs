//! The test kit shared by the integration tests and the demo: real SDK clients against the moto server that
//! scripts/test or scripts/demo starts (`WARDEN_TEST_ENDPOINT`), with a fresh ledger table, topic and SQS
//! subscriber per stack, and helpers that push images the way a registry client does.
//!
//! Every integration test also proves it deleted nothing it must not: [`Stack::safety_snapshot`] before the
//! test acts, [`SafetyGuard::assert_nothing_unsafe_deleted`] after (see [`SafetyGuard`]).

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_ecr::types::ImageTagMutability;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use warden::policy::{Classification, EMBEDDED_POLICY, Policy};

pub mod fault_proxy;
pub mod inspector;
pub mod org;

pub const ACCOUNT: &str = "123456789012";

/// An invocation of a function serving moto's default account in us-east-1, as Lambda would hand it.
pub fn invocation() -> warden::invocation::Invocation {
    warden::invocation::Invocation::serving(ACCOUNT, "us-east-1")
}

/// The shipped policy (warden.toml) at step two of its rollout: every `apply = false` (native lifecycle
/// policies, retention) switched on, and with `min_age_days` every retention's age protection replaced (the
/// images of a test or the demo are minutes old). Panics if the policy no longer reads that way.
pub fn enforcing(policy: &str, min_age_days: Option<u32>) -> String {
    let mut flipped = 0;
    let mut lines = Vec::new();
    for line in policy.lines() {
        let key = line.split('=').next().unwrap_or_default().trim();
        if key == "apply" && line.contains("false") {
            flipped += 1;
            lines.push("apply = true".to_owned());
        } else if key == "protect-younger-than-days" && min_age_days.is_some() {
            continue;
        } else {
            lines.push(line.to_owned());
        }
        if let (Some(days), "[class.lifecycle.retention]") = (min_age_days, line.trim()) {
            lines.push(format!("protect-younger-than-days = {days}"));
        }
    }
    assert!(flipped > 0, "the policy observes nothing: no `apply = false` to switch on");
    let text = lines.join("\n");
    Policy::from_toml(&text, "enforcing.toml").expect("the enforcing policy is valid");
    text
}

/// Runs `scenario` to its end on a thread with a main thread's 8 MiB stack, as the functions and the CLI run,
/// rather than a test thread's 2 MiB: Security Hub's finding type is 31 KB, and its deserialiser's frames in a
/// debug build overflow the smaller stack.
pub fn on_a_main_stack<F>(scenario: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let run = move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(scenario());
    };
    let thread = std::thread::Builder::new().stack_size(8 << 20).spawn(run).expect("thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// The IAM actions a role of `infra/template.yaml` allows (`ecr:PutImage`, ...), read from the template's text:
/// the `Action:` entries between `  <role>:` and the next resource.
pub fn role_actions(template: &str, role: &str) -> std::collections::BTreeSet<String> {
    let start = template.find(&format!("\n  {role}:\n")).unwrap_or_else(|| panic!("no role {role} in the template"));
    let body = &template[start + role.len() + 5..];
    let end = body.find("\n  ").and_then(|_| {
        body.match_indices('\n').map(|(i, _)| i).find(|&i| {
            let line = &body[i + 1..];
            line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':')
        })
    });
    let body = &body[..end.unwrap_or(body.len())];
    let mut actions = std::collections::BTreeSet::new();
    let mut in_list = false;
    for line in body.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue; // a comment inside a list does not end it
        }
        if let Some(value) = line.strip_prefix("Action:") {
            let value = value.trim();
            in_list = value.is_empty();
            let names = value.trim_matches(|c| c == '[' || c == ']').split(',');
            actions.extend(names.map(|a| a.trim().trim_matches('"').to_owned()).filter(|a| a.contains(':')));
        } else if in_list && let Some(action) = line.strip_prefix("- ") {
            actions.insert(action.trim().trim_matches('"').to_owned());
        } else {
            in_list = false;
        }
    }
    actions
}

/// The IAM action an outcome's AWS call needs (`DynamoDB.UpdateItem` → `dynamodb:UpdateItem`); `None` for
/// TransactWriteItems, which is authorised by the actions of the writes it holds.
pub fn iam_action(call: &str) -> Option<String> {
    let (service, operation) = call.split_once('.')?;
    (operation != "TransactWriteItems").then(|| format!("{}:{operation}", service.to_lowercase()))
}

/// The AWS calls (`Service.Operation`) of a function (`TagGuard`, ...) its role in `infra/template.yaml` does not
/// allow: what a deploy would answer `AccessDenied`.
pub fn calls_its_role_denies<'a>(function: &str, calls: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let allowed = role_actions(include_str!("../../infra/template.yaml"), &format!("{function}Role"));
    calls.into_iter().filter_map(|c| iam_action(c)).filter(|a| !allowed.contains(a)).collect()
}

/// The `Inspector2 Finding` event EventBridge carries for `finding` (an [`inspector_finding`]): its timestamps
/// as strings, at 09:30 on 2026-11-28 (the image pushed at 08:00), with the image's tags as Inspector saw them.
pub fn finding_event(finding: &serde_json::Value, image_tags: &[&str]) -> serde_json::Value {
    let mut detail = finding.clone();
    for key in ["firstObservedAt", "lastObservedAt", "updatedAt"] {
        detail[key] = "Sat Nov 28 09:30:00.000 UTC 2026".into();
    }
    let image = &mut detail["resources"][0]["details"]["awsEcrContainerImage"];
    image["pushedAt"] = "Sat Nov 28 08:00:00.000 UTC 2026".into();
    image["imageTags"] = serde_json::json!(image_tags);
    let mut event = envelope("aws.inspector2", "Inspector2 Finding", detail);
    event["time"] = "2026-11-28T09:30:00Z".into();
    event
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}-{:x}-{}", std::process::id(), nanos, NEXT.fetch_add(1, Ordering::Relaxed))
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("WARDEN_TEST_ENDPOINT").expect(
        "integration tests need a moto server: run scripts/test (it sets WARDEN_TEST_ENDPOINT), \
         or start one and export WARDEN_TEST_ENDPOINT=http://127.0.0.1:<port>",
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecr::config::Credentials::new("test", "test", None, None, "moto"))
        // moto answers unimplemented calls with HTML 500s; retrying them only slows tests down.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// One test's AWS resources.
#[derive(Debug)]
pub struct Stack {
    pub sdk: aws_config::SdkConfig,
    pub ecr: aws_sdk_ecr::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    pub topic_arn: String,
    pub queue_url: String,
    /// Amazon Inspector's ListCoverage, which moto lacks (see [`inspector`]).
    pub inspector: inspector::InspectorStandIn,
}

impl Stack {
    /// A stack of its own: table and topic names no other test uses.
    pub async fn new() -> Self {
        Self::with_names(&unique("ledger-"), &unique("topic-")).await
    }

    /// A stack with the given ledger table and topic names (the demo configures the functions with them).
    pub async fn with_names(table: &str, topic: &str) -> Self {
        let sdk = sdk_config().await;
        let (ecr, dynamodb) = (aws_sdk_ecr::Client::new(&sdk), aws_sdk_dynamodb::Client::new(&sdk));
        let (sns, sqs) = (aws_sdk_sns::Client::new(&sdk), aws_sdk_sqs::Client::new(&sdk));
        let table = table.to_owned();
        create_ledger_table(&dynamodb, &table).await;
        let (topic_arn, queue_url) = topic_with_queue(&sns, &sqs, topic).await;
        let moto = std::env::var("WARDEN_TEST_ENDPOINT").expect("WARDEN_TEST_ENDPOINT");
        let inspector =
            inspector::InspectorStandIn::start(&moto, inspector::CoverageStore::Memory(Default::default())).await;
        Self { sdk, ecr, dynamodb, sqs, table, topic_arn, queue_url, inspector }
    }

    /// The SDK config for the functions' Inspector client: moto, with ListCoverage from the stand-in.
    pub fn inspector_sdk(&self) -> aws_config::SdkConfig {
        self.sdk.to_builder().endpoint_url(self.inspector.endpoint()).build()
    }

    /// Another topic with its own SQS subscriber: (topic ARN, queue URL).
    pub async fn extra_topic(&self, name: &str) -> (String, String) {
        topic_with_queue(&aws_sdk_sns::Client::new(&self.sdk), &self.sqs, name).await
    }

    pub async fn create_repository(&self, name: &str, mutability: ImageTagMutability) {
        self.ecr.create_repository().repository_name(name).image_tag_mutability(mutability).send().await.expect("repo");
    }

    /// Pushes an image manifest under `tag` (or by digest only) the way a registry client does, and returns
    /// its digest (sha256 of the manifest bytes, as ECR computes it).
    pub async fn push(&self, repository: &str, seed: &str, tag: Option<&str>) -> String {
        org::push_to(&self.ecr, repository, seed, tag).await
    }

    /// Pushes a multi-platform OCI image index under `tag`: two child manifests pushed by digest first (as
    /// `docker buildx` does), then the index referencing them. Returns (index digest, child digests).
    pub async fn push_index(&self, repository: &str, seed: &str, tag: &str) -> (String, Vec<String>) {
        let mut children = Vec::new();
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let child = manifest(&format!("{seed}-{arch}"));
            let digest = self.push(repository, &format!("{seed}-{arch}"), None).await;
            entries.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": child.len(),
                "platform": {"architecture": arch, "os": "linux"}
            }));
            children.push(digest);
        }
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries
        })
        .to_string();
        let digest = digest_of(&index);
        self.ecr
            .put_image()
            .repository_name(repository)
            .image_manifest(&index)
            .image_manifest_media_type("application/vnd.oci.image.index.v1+json")
            .image_digest(&digest)
            .image_tag(tag)
            .send()
            .await
            .expect("push index");
        (digest, children)
    }

    /// Every item of the stack's ledger table (all pages), each as attribute → value text, sorted: a
    /// comparable picture of the ledger.
    pub async fn ledger_items(&self) -> Vec<BTreeMap<String, String>> {
        let mut pages = self.dynamodb.scan().table_name(&self.table).into_paginator().send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            for item in page.expect("scan ledger").items() {
                items.push(
                    item.iter()
                        .map(|(k, v)| {
                            let text =
                                v.as_s().cloned().or_else(|_| v.as_n().cloned()).unwrap_or_else(|_| format!("{v:?}"));
                            (k.clone(), text)
                        })
                        .collect::<BTreeMap<_, _>>(),
                );
            }
        }
        items.sort();
        items
    }

    /// The digest a tag points at, or None.
    pub async fn tag_digest(&self, repository: &str, tag: &str) -> Option<String> {
        let images = self.ecr.list_images().repository_name(repository).send().await.expect("list images");
        images
            .image_ids()
            .iter()
            .find(|id| id.image_tag() == Some(tag))
            .and_then(|id| id.image_digest().map(str::to_owned))
    }

    /// All tags of an image; None when the image is gone.
    pub async fn tags_of(&self, repository: &str, digest: &str) -> Option<Vec<String>> {
        org::tags_in(&self.ecr, repository, digest).await
    }

    /// Every SNS message that reached the stack's queue so far (the SNS JSON envelopes).
    pub async fn messages(&self) -> Vec<serde_json::Value> {
        self.messages_in(&self.queue_url).await
    }

    /// Every SNS message that reached `queue_url` so far.
    pub async fn messages_in(&self, queue_url: &str) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        for _ in 0..3 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            let batch = received.messages();
            if batch.is_empty() {
                break;
            }
            for message in batch {
                all.push(serde_json::from_str(message.body().unwrap_or("{}")).expect("SNS envelope"));
                if let Some(handle) = message.receipt_handle() {
                    self.sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await.expect("delete");
                }
            }
        }
        all
    }
}

impl Stack {
    /// Records every image of `repository` that no function may ever delete, judged by the embedded
    /// `warden.toml` (see [`SafetyGuard`]). Take it after the test's setup, before the handlers act.
    pub async fn safety_snapshot(&self, repository: &str) -> SafetyGuard {
        let policy = Policy::from_toml(EMBEDDED_POLICY, "warden.toml").expect("embedded policy");
        self.safety_snapshot_with(repository, &policy).await
    }

    /// [`Stack::safety_snapshot`] judged by another policy (the one the test's functions run with).
    pub async fn safety_snapshot_with(&self, repository: &str, policy: &Policy) -> SafetyGuard {
        let images = self.images(repository).await;
        let mut guarded: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let class = match policy.classify(repository) {
            Classification::Managed(class) => Some(class),
            Classification::Unmanaged(_) => None,
        };
        for (digest, tags) in &images {
            for tag in tags {
                if class.and_then(|c| c.tags.as_ref()).is_some_and(|rules| rules.is_protected(tag)) {
                    guarded.entry(digest.clone()).or_default().push(format!("protected tag `{tag}`"));
                }
                if class.and_then(|c| c.gate.as_ref()).is_some_and(|gate| gate.is_promotion_tag(tag)) {
                    guarded.entry(digest.clone()).or_default().push(format!("promoted as `{tag}`"));
                }
            }
        }
        let digests: Vec<&String> = images.keys().collect();
        for chunk in digests.chunks(100) {
            let mut request = self.ecr.batch_get_image().repository_name(repository);
            for digest in chunk {
                request =
                    request.image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(*digest).build());
            }
            for media_type in warden::aws::ecr::MANIFEST_MEDIA_TYPES {
                request = request.accepted_media_types(*media_type);
            }
            let output = request.send().await.expect("batch get image");
            for image in output.images() {
                let index = image.image_id().and_then(|id| id.image_digest()).unwrap_or_default();
                let children = index_children(image.image_manifest().unwrap_or_default());
                for child in children.into_iter().filter(|child| images.contains_key(child)) {
                    guarded.entry(child).or_default().push(format!("referenced by image index {index}"));
                }
            }
        }
        SafetyGuard { repository: repository.to_owned(), guarded }
    }

    /// A repository's lifecycle policy text, if it has one (GetLifecyclePolicy).
    pub async fn lifecycle_policy(&self, repository: &str) -> Option<String> {
        let output = self.ecr.get_lifecycle_policy().repository_name(repository).send().await.ok()?;
        output.lifecycle_policy_text().map(str::to_owned)
    }

    /// Every image of a repository: digest → its tags (sorted; empty when untagged); none when the repository does
    /// not exist. ListImages, all pages.
    pub async fn images(&self, repository: &str) -> BTreeMap<String, Vec<String>> {
        let mut pages = self.ecr.list_images().repository_name(repository).into_paginator().send();
        let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Err(e) if e.as_service_error().is_some_and(|se| se.is_repository_not_found_exception()) => break,
                page => page.expect("list images"),
            };
            for id in page.image_ids() {
                let Some(digest) = id.image_digest() else { continue };
                let tags = images.entry(digest.to_owned()).or_default();
                if let Some(tag) = id.image_tag() {
                    tags.push(tag.to_owned());
                    tags.sort();
                }
            }
        }
        images
    }
}

/// The child manifests an image index (or Docker manifest list) references: `manifests[].digest`.
pub fn index_children(manifest: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(manifest).unwrap_or_default();
    value["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["digest"].as_str().map(str::to_owned))
        .collect()
}

/// The safety net every integration test uses: no function may ever delete an image that is **protected**
/// (a tag matching its class's `tags.protected`), **promoted** (a tag matching its class's `gate.promote`),
/// **in use** (declared by the test with [`SafetyGuard::in_use`]) or **referenced by an image index**
/// (a `manifests[].digest` of any image in the repository).
///
/// ```ignore
/// let safety = stack.safety_snapshot(&repo).await;   // after setup, before the handlers act
/// let safety = safety.in_use(&deployed_digest);      // optional: images the test says are running
/// /* ... handlers act ... */
/// safety.assert_nothing_unsafe_deleted(&stack).await; // panics naming each lost image and why it mattered
/// ```
///
/// The snapshot is a list of digests and reasons; images pushed after it are not covered (take another).
/// Tags may move (a revert moves a protected tag back): only the images themselves must survive.
#[derive(Debug, Clone)]
pub struct SafetyGuard {
    repository: String,
    /// digest → why it must survive.
    guarded: BTreeMap<String, Vec<String>>,
}

impl SafetyGuard {
    /// Also guards `digest`: an image the test says is in use (deployed, pulled by a running service).
    #[must_use]
    pub fn in_use(mut self, digest: &str) -> Self {
        self.guarded.entry(digest.to_owned()).or_default().push("in use".into());
        self
    }

    /// The guarded images: digest → reasons. Lets a test check its setup guards what it means to.
    pub fn guarded(&self) -> &BTreeMap<String, Vec<String>> {
        &self.guarded
    }

    /// Panics if any guarded image is gone from the repository.
    pub async fn assert_nothing_unsafe_deleted(&self, stack: &Stack) {
        let images = stack.images(&self.repository).await;
        let lost: Vec<String> = self
            .guarded
            .iter()
            .filter(|(digest, _)| !images.contains_key(*digest))
            .map(|(digest, why)| format!("{digest} ({})", why.join(", ")))
            .collect();
        assert!(
            lost.is_empty(),
            "{}: images that must never be deleted are gone:\n{}",
            self.repository,
            lost.join("\n")
        );
    }
}

/// A topic (created if needed) with a new SQS queue subscribed to it.
async fn topic_with_queue(sns: &aws_sdk_sns::Client, sqs: &aws_sdk_sqs::Client, topic: &str) -> (String, String) {
    let topic_arn = sns.create_topic().name(topic).send().await.expect("topic").topic_arn.expect("arn");
    let queue_url =
        sqs.create_queue().queue_name(unique("queue-")).send().await.expect("queue").queue_url.expect("url");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue_arn).send().await.expect("subscribe");
    (topic_arn, queue_url)
}

pub async fn create_ledger_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str) {
    let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let attribute =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash).expect("key"))
        .key_schema(key("sk", KeyType::Range).expect("key"))
        .attribute_definitions(attribute("pk").expect("attr"))
        .attribute_definitions(attribute("sk").expect("attr"))
        .send()
        .await
        .expect("create table");
}

/// A small but real OCI image manifest; `seed` makes its digest unique.
pub fn manifest(seed: &str) -> String {
    let config = format!("sha256:{}", hex(&Sha256::digest(format!("config-{seed}").as_bytes())));
    let layer = format!("sha256:{}", hex(&Sha256::digest(format!("layer-{seed}").as_bytes())));
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1469},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 3_623_807}]
    })
    .to_string()
}

pub fn digest_of(manifest: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(manifest.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An `ECR Image Action` event as EventBridge delivers it.
pub fn image_action(action: &str, repository: &str, digest: &str, tag: Option<&str>, time: &str) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "action-type": action,
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "manifest-media-type": "application/vnd.oci.image.manifest.v1+json",
    });
    if let Some(tag) = tag {
        detail["image-tag"] = tag.into();
    }
    serde_json::json!({
        "version": "0", "id": unique("event-"), "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": ACCOUNT, "time": time, "region": "us-east-1", "resources": [], "detail": detail
    })
}

/// POSTs JSON to one of moto's own endpoints (`/moto-api/...`, used to seed scan results). A plain HTTP/1.1
/// request over a TCP stream: the only HTTP moto needs from us that the AWS SDK does not make.
pub fn moto_post(path: &str, body: &serde_json::Value) -> u16 {
    use std::io::{Read, Write};
    let endpoint = std::env::var("WARDEN_TEST_ENDPOINT").expect("WARDEN_TEST_ENDPOINT");
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to moto");
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// Seeds what ECR's DescribeImageScanFindings returns for an image (moto's scan-finding-results endpoint).
pub async fn seed_basic_scan(stack: &Stack, repository: &str, digest: &str, findings: serde_json::Value) {
    seed_basic_scan_completed(stack, repository, digest, findings, None).await;
}

/// [`seed_basic_scan`], the scan completed at `completed_at` (epoch seconds) when given.
pub async fn seed_basic_scan_completed(
    stack: &Stack,
    repository: &str,
    digest: &str,
    findings: serde_json::Value,
    completed_at: Option<i64>,
) {
    let started = stack
        .ecr
        .start_image_scan()
        .repository_name(repository)
        .image_id(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build())
        .send()
        .await;
    // A rescan (ECR allows one scan a day per image, and so does moto): the seed below replaces the results.
    if let Err(e) = started
        && !e.as_service_error().is_some_and(|se| se.is_limit_exceeded_exception())
    {
        panic!("start scan: {e:?}");
    }
    let mut counts = serde_json::Map::new();
    for finding in findings.as_array().into_iter().flatten() {
        let severity = finding["severity"].as_str().unwrap_or("UNDEFINED").to_owned();
        let entry = counts.entry(severity).or_insert(serde_json::json!(0));
        *entry = serde_json::json!(entry.as_u64().unwrap_or(0) + 1);
    }
    let mut scan = serde_json::json!({"findingSeverityCounts": counts, "findings": findings});
    if let Some(at) = completed_at {
        scan["imageScanCompletedAt"] = at.into();
    }
    let seed = serde_json::json!({"results": [{
        "registryId": ACCOUNT, "repositoryName": repository, "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
        "imageScanFindings": scan
    }]});
    assert_eq!(moto_post("/moto-api/static/ecr/scan-finding-results", &seed), 201);
    // Pinned to its image now: moto hands a seeded result that names no tag to whichever untagged image of the
    // repository is read first (platform images of an index are all untagged).
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
    let pinned = stack.ecr.describe_image_scan_findings().repository_name(repository).image_id(id).send().await;
    pinned.expect("the seeded scan");
}

/// Held by a test from seeding Inspector findings until its handler has read them: moto hands seeded answers,
/// in order, to whichever requests with new parameters come next, so two tests of one binary seeding at once
/// would take each other's answers (and leave some for the next binary).
pub static INSPECTOR_SEEDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Seeds the findings Amazon Inspector's ListFindings returns next (moto's findings-results endpoint): one
/// inner list per answer, handed out in order to requests with new parameters.
pub fn seed_inspector_findings(pages: serde_json::Value) {
    let seed = serde_json::json!({"results": pages});
    assert_eq!(moto_post("/moto-api/static/inspector2/findings-results", &seed), 201);
}

/// A complete Inspector finding (the SDK silently fills missing required members, which would make tests
/// pass vacuously).
pub fn inspector_finding(
    repository: &str,
    digest: &str,
    tag: &str,
    id: &str,
    severity: &str,
    fix: &str,
) -> serde_json::Value {
    serde_json::json!({
        "findingArn": format!("arn:aws:inspector2:us-east-1:{ACCOUNT}:finding/{}", id.to_lowercase()),
        "awsAccountId": ACCOUNT, "type": "PACKAGE_VULNERABILITY", "title": format!("{id} - openssl"),
        "description": "A flaw in openssl.", "severity": severity, "status": "ACTIVE", "inspectorScore": 7.5,
        "fixAvailable": fix, "exploitAvailable": "NO",
        "firstObservedAt": 1_764_000_000.0, "lastObservedAt": 1_764_000_000.0, "updatedAt": 1_764_000_000.0,
        "remediation": {"recommendation": {"text": "Upgrade openssl."}},
        "packageVulnerabilityDetails": {"vulnerabilityId": id, "source": "NVD",
            "sourceUrl": format!("https://nvd.nist.gov/vuln/detail/{id}"),
            "vulnerablePackages": [{"name": "openssl", "version": "3.0.13", "fixedInVersion": "3.0.15", "packageManager": "OS"}]},
        "resources": [{"type": "AWS_ECR_CONTAINER_IMAGE",
            "id": format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repository}/{digest}"), "region": "us-east-1",
            "details": {"awsEcrContainerImage": {"repositoryName": repository, "imageHash": digest, "imageTags": [tag],
                "registry": ACCOUNT, "platform": "AMAZON_LINUX_2023", "architecture": "amd64", "pushedAt": 1_764_000_000.0}}}]
    })
}

/// An EventBridge envelope around a detail.
pub fn envelope(source: &str, detail_type: &str, detail: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": unique("event-"), "detail-type": detail_type, "source": source,
        "account": ACCOUNT, "time": "2026-11-28T09:00:00Z", "region": "us-east-1", "resources": [], "detail": detail
    })
}
