//! What the functions' adapter tests share (feature `test-util`, for dev-dependencies only): SDK clients over
//! aws-smithy-mocks rules with the call counter, the deployed retry mode with millisecond backoff, a test
//! configuration, the `events/` samples, and AWS's 5xx responses as each service's wire protocol carries them.

pub mod registry;

use crate::aws::{CallCounter, Clients};
use crate::config::Config;
use aws_smithy_mocks::{Rule, RuleMode, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use std::time::Duration;

/// The account and region the samples in `events/` come from, and the test functions serve.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// An invocation of a function serving [`ACCOUNT`] in [`REGION`], without a deadline.
pub fn invocation() -> crate::invocation::Invocation {
    crate::invocation::Invocation::serving(ACCOUNT, REGION)
}

/// [`invocation`] cut off at `deadline`.
pub fn invocation_until(deadline: Option<std::time::SystemTime>) -> crate::invocation::Invocation {
    crate::invocation::Invocation { deadline, ..invocation() }
}

/// The SNS topic [`config`] publishes to.
pub const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:ecr-warden";

/// How the mocked clients retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// The SDK's test defaults: each call's first answer is its result (counting calls stays simple).
    None,
    /// The SDK's standard mode as deployed (3 attempts), with millisecond backoff: fault tests.
    Deployed,
}

impl Retries {
    fn config(self) -> Option<RetryConfig> {
        (self == Self::Deployed).then(|| {
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5))
        })
    }
}

/// ECR, DynamoDB and SNS clients answering from `rules` (the first rule that matches a request answers), each
/// counting its calls into the returned [`Clients::calls`].
pub fn clients(ecr: &[&Rule], dynamodb: &[&Rule], sns: &[&Rule], retries: Retries) -> Clients {
    let (granted, released) = (rules::lease_granted(), rules::lease_released());
    clients_with_leases(ecr, dynamodb, sns, retries, &[&granted, &released])
}

/// [`clients`] whose ledger answers lease requests (`LEASE#` items, see `aws::lease`) with `leases` before
/// anything else: [`clients`] grants and takes back every lease, so a test's own DynamoDB rules never see them.
/// Marking a published notification's claim `sent`, forgetting a standing finding that is gone, and
/// recording a tag removal succeed, and no removal is on record and no image index lists a scanned image (a
/// single-platform image), unless the test's own rules answer them.
pub fn clients_with_leases(
    ecr: &[&Rule],
    dynamodb: &[&Rule],
    sns: &[&Rule],
    retries: Retries,
    leases: &[&Rule],
) -> Clients {
    let (marked, forgotten) = (rules::notification_marked_sent(), rules::standing_forgotten());
    let (removing, no_removal) = (rules::removal_recorded(), rules::removal_unknown());
    let no_index = rules::no_index_lists_the_image();
    let defaults = [&marked, &forgotten, &removing, &no_removal, &no_index];
    let dynamodb: Vec<&Rule> = leases.iter().chain(dynamodb).copied().chain(defaults).collect();
    let dynamodb = dynamodb.as_slice();
    let calls = CallCounter::default();
    let (c1, c2, c3) = (calls.clone(), calls.clone(), calls.clone());
    let retry = retries.config();
    let (r1, r2, r3) = (retry.clone(), retry.clone(), retry);
    Clients {
        ecr: mock_client!(aws_sdk_ecr, RuleMode::MatchAny, ecr, move |c| {
            let c = c.interceptor(c1.clone());
            match &r1 {
                Some(retry) => c.retry_config(retry.clone()),
                None => c,
            }
        }),
        dynamodb: mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, dynamodb, move |c| {
            let c = c.interceptor(c2.clone());
            match &r2 {
                Some(retry) => c.retry_config(retry.clone()),
                None => c,
            }
        }),
        sns: mock_client!(aws_sdk_sns, RuleMode::MatchAny, sns, move |c| {
            let c = c.interceptor(c3.clone());
            match &r3 {
                Some(retry) => c.retry_config(retry.clone()),
                None => c,
            }
        }),
        calls,
        sdk: None,
    }
}

/// An Inspector client answering from `rules`, counting into `clients`' counter.
pub fn inspector(rules: &[&Rule], clients: &Clients, retries: Retries) -> aws_sdk_inspector2::Client {
    let calls = clients.calls.clone();
    let retry = retries.config();
    mock_client!(aws_sdk_inspector2, RuleMode::MatchAny, rules, move |c| {
        let c = c.interceptor(calls.clone());
        match &retry {
            Some(retry) => c.retry_config(retry.clone()),
            None => c,
        }
    })
}

/// A Security Hub client answering from `rules`, counting into `clients`' counter.
pub fn security_hub(rules: &[&Rule], clients: &Clients, retries: Retries) -> aws_sdk_securityhub::Client {
    let calls = clients.calls.clone();
    let retry = retries.config();
    mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules, move |c| {
        let c = c.interceptor(calls.clone());
        match &retry {
            Some(retry) => c.retry_config(retry.clone()),
            None => c,
        }
    })
}

/// A configuration with a ledger table and a default topic ([`TOPIC_ARN`]), not in dry run.
pub fn config() -> Config {
    Config {
        ledger_table: Some("ledger".into()),
        topic_arn: Some(TOPIC_ARN.into()),
        dry_run: false,
        ..Config::default()
    }
}

/// A sample event from the repository's `events/` folder.
pub fn sample(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An error's metadata with `code` (a throttling code, say), for `then_error` / `.error(..)`.
pub fn error_code(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message("injected").build()
}

/// 5xx responses as each service's protocol carries them, for `.http_status(status, body)`: the SDK sees the
/// status and the modeled exception, as it would from AWS.
pub mod wire {
    /// ECR (awsJson1.1): `ServerException`.
    pub fn ecr_500() -> (u16, Option<String>) {
        (500, Some(r#"{"__type":"ServerException","message":"internal failure"}"#.to_owned()))
    }

    /// ECR (awsJson1.1): `ServiceUnavailableException`.
    pub fn ecr_503() -> (u16, Option<String>) {
        (503, Some(r#"{"__type":"ServiceUnavailableException","message":"unavailable"}"#.to_owned()))
    }

    /// DynamoDB (awsJson1.0): `InternalServerError`.
    pub fn dynamodb_500() -> (u16, Option<String>) {
        (
            500,
            Some(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"internal"}"#.to_owned(),
            ),
        )
    }

    /// SNS (awsQuery): `InternalError`.
    pub fn sns_500() -> (u16, Option<String>) {
        let body = "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code><Message>internal</Message>\
                    </Error><RequestId>r</RequestId></ErrorResponse>";
        (500, Some(body.to_owned()))
    }

    /// Inspector (restJson1): `InternalServerException`.
    pub fn inspector_500() -> (u16, Option<String>) {
        (500, Some(r#"{"__type":"InternalServerException","message":"internal"}"#.to_owned()))
    }
}

/// Mock rules many adapter tests need, so each test names only what is particular to it.
pub mod rules {
    use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::types::ImageDetail;
    use aws_sdk_inspector2::operation::list_coverage::ListCoverageOutput;
    use aws_sdk_inspector2::types::{
        CoverageResourceType, CoveredResource, ScanStatus, ScanStatusCode, ScanStatusReason, ScanType,
    };
    use aws_smithy_mocks::{Rule, mock};
    use aws_smithy_types::DateTime;

    /// An active Amazon Inspector package-vulnerability finding `id` of `severity` (openssl 3.0.13, fixed in
    /// 3.0.15 when `fix` says so), as ListFindings returns it.
    pub fn inspector_finding(
        id: &str,
        severity: aws_sdk_inspector2::types::Severity,
        fix: aws_sdk_inspector2::types::FixAvailable,
    ) -> aws_sdk_inspector2::types::Finding {
        use aws_sdk_inspector2::types::{
            EpssDetails, Finding, FindingStatus, FindingType, PackageVulnerabilityDetails, Resource, ResourceType,
            VulnerablePackage,
        };
        let now = DateTime::from_secs(1_764_000_000);
        let package = VulnerablePackage::builder().name("openssl").version("3.0.13").fixed_in_version("3.0.15");
        Finding::builder()
            .finding_arn(format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}"))
            .aws_account_id("123456789012")
            .r#type(FindingType::PackageVulnerability)
            .description("test finding")
            .severity(severity)
            .status(FindingStatus::Active)
            .first_observed_at(now)
            .last_observed_at(now)
            .fix_available(fix)
            .epss(EpssDetails::builder().score(0.02).build())
            .package_vulnerability_details(
                PackageVulnerabilityDetails::builder()
                    .vulnerability_id(id)
                    .source("NVD")
                    .source_url(format!("https://nvd.nist.gov/vuln/detail/{id}"))
                    .vulnerable_packages(package.build().expect("package"))
                    .build()
                    .expect("details"),
            )
            .resources(
                Resource::builder().r#type(ResourceType::AwsEcrContainerImage).id("image").build().expect("resource"),
            )
            .build()
            .expect("finding")
    }

    /// Inspector's ListFindings answers one page: a HIGH finding `id` with a fix (what fails a strict gate).
    pub fn failing_findings(id: &'static str) -> Rule {
        use aws_sdk_inspector2::types::{FixAvailable, Severity};
        mock!(aws_sdk_inspector2::Client::list_findings).then_output(move || {
            aws_sdk_inspector2::operation::list_findings::ListFindingsOutput::builder()
                .findings(inspector_finding(id, Severity::High, FixAvailable::Yes))
                .build()
        })
    }

    /// Every SNS Publish succeeds (message id `m`).
    pub fn published() -> Rule {
        mock!(aws_sdk_sns::Client::publish)
            .then_output(|| aws_sdk_sns::operation::publish::PublishOutput::builder().message_id("m").build())
    }

    /// Every DynamoDB PutItem succeeds (claims, records, leases, notes alike).
    pub fn put_item_ok() -> Rule {
        mock!(aws_sdk_dynamodb::Client::put_item)
            .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build())
    }

    /// The note of the standing finding `pk` / `sk`: new or changed (`true`: written, the finding is told), or
    /// told already, unchanged within the week (`false`: the conditional write fails).
    pub fn standing_note(pk: &'static str, sk: &'static str, new: bool) -> Rule {
        use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
        use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
        mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |r| {
                let key = |name: &str| r.item().and_then(|i| i.get(name)).and_then(|v| v.as_s().ok()).cloned();
                key("pk").is_some_and(|p| p == pk) && key("sk").is_some_and(|s| s == sk)
            })
            .then_compute_response(move |_| match new {
                true => aws_smithy_mocks::MockResponse::Output(PutItemOutput::builder().build()),
                false => {
                    let failed = ConditionalCheckFailedException::builder().message("unchanged").build();
                    aws_smithy_mocks::MockResponse::Error(PutItemError::ConditionalCheckFailedException(failed))
                }
            })
    }

    /// ecr-warden's record of a tag removal it is about to make is written (a PutItem of a `REMOVAL#` item).
    pub fn removal_recorded() -> Rule {
        mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|r| pk_of(r.item()).is_some_and(|pk| pk.starts_with("REMOVAL#")))
            .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build())
    }

    /// No record of ecr-warden removing the tag (a GetItem of a `REMOVAL#` item finds nothing).
    pub fn removal_unknown() -> Rule {
        mock!(aws_sdk_dynamodb::Client::get_item)
            .match_requests(|r| pk_of(r.key()).is_some_and(|pk| pk.starts_with("REMOVAL#")))
            .then_output(|| aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build())
    }

    fn pk_of(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> Option<&str> {
        item.and_then(|i| i.get("pk")).and_then(|v| v.as_s().ok()).map(String::as_str)
    }

    /// A standing finding's note deleted (`STANDING#...`): it is gone, or its telling failed.
    pub fn standing_forgotten() -> Rule {
        mock!(aws_sdk_dynamodb::Client::delete_item)
            .match_requests(|r| {
                r.key()
                    .and_then(|k| k.get("pk"))
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("STANDING#"))
            })
            .then_output(|| aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput::builder().build())
    }

    /// Every claim of a published notification is marked `sent` (an UpdateItem of a `NOTIFY#` item).
    pub fn notification_marked_sent() -> Rule {
        mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| r.update_expression().is_some_and(|e| e.starts_with("SET #state = :sent")))
            .then_output(|| aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build())
    }

    /// Every lease on an image is granted (a conditional PutItem of a `LEASE#` item).
    pub fn lease_granted() -> Rule {
        mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|r| {
                r.item()
                    .and_then(|i| i.get("pk"))
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("LEASE#"))
            })
            .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build())
    }

    /// Every lease is given back (a conditional DeleteItem of a `LEASE#` item).
    pub fn lease_released() -> Rule {
        mock!(aws_sdk_dynamodb::Client::delete_item)
            .match_requests(|r| {
                r.key().and_then(|k| k.get("pk")).and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("LEASE#"))
            })
            .then_output(|| aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput::builder().build())
    }

    /// Every DynamoDB transaction succeeds (approvals, revocations).
    pub fn transaction_ok() -> Rule {
        mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .then_output(|| TransactWriteItemsOutput::builder().build())
    }

    /// An approval transaction fails its condition: the ledger holds a failing verdict on evidence from
    /// `evidence_at` (epoch seconds), recorded by `event_id`.
    pub fn approval_superseded(evidence_at: i64, event_id: &'static str) -> Rule {
        mock!(aws_sdk_dynamodb::Client::transact_write_items).then_error(move || {
            let reason = CancellationReason::builder()
                .code("ConditionalCheckFailed")
                .item("verdict", AttributeValue::S("fail".into()))
                .item("evidence_at", AttributeValue::N(evidence_at.to_string()))
                .item("event_id", AttributeValue::S(event_id.into()))
                .build();
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder().cancellation_reasons(reason).build(),
            )
        })
    }

    /// No image index lists the image a scan event names (a Query of `CHILD#` items finds none).
    pub fn no_index_lists_the_image() -> Rule {
        mock!(aws_sdk_dynamodb::Client::query)
            .match_requests(|r| {
                r.expression_attribute_values()
                    .and_then(|v| v.get(":pk"))
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("CHILD#"))
            })
            .then_output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build())
    }

    /// No sweep stopped before its deadline: the GetItem of a `SWEEP#` cursor finds nothing.
    pub fn no_sweep_cursor() -> Rule {
        mock!(aws_sdk_dynamodb::Client::get_item)
            .match_requests(|r| pk_of(r.key()).is_some_and(|pk| pk.starts_with("SWEEP#")))
            .then_output(|| aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build())
    }

    /// A repository's images as DescribeImages lists them: `(digest, tags)` each, all pushed at epoch
    /// 1,764,000,000.
    pub fn images_listed(images: &'static [(&'static str, &'static [&'static str])]) -> Rule {
        mock!(aws_sdk_ecr::Client::describe_images).then_output(move || {
            let details = images.iter().map(|(digest, tags)| {
                ImageDetail::builder()
                    .image_digest(*digest)
                    .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
                    .image_pushed_at(DateTime::from_secs(1_764_000_000))
                    .build()
            });
            DescribeImagesOutput::builder().set_image_details(Some(details.collect())).build()
        })
    }

    /// The ledger holds a pointer for every tag a BatchGetItem asks about (`known`) or for none.
    pub fn ledger_knows_tags(known: bool) -> Rule {
        use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
        mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(move |request| {
            let mut output = BatchGetItemOutput::builder();
            for (table, asked) in request.request_items().into_iter().flatten() {
                let items = asked.keys().iter().filter(|_| known).map(|key| {
                    let mut item = key.clone();
                    item.insert("digest".into(), AttributeValue::S("sha256:recorded".into()));
                    item
                });
                output = output.responses(table, items.collect());
            }
            output.build()
        })
    }

    /// DescribeImages answers that `digest` carries `tags`.
    pub fn image_with_tags(digest: &'static str, tags: &'static [&'static str]) -> Rule {
        mock!(aws_sdk_ecr::Client::describe_images).then_output(move || {
            let detail = ImageDetail::builder()
                .image_digest(digest)
                .set_image_tags(Some(tags.iter().map(|t| (*t).to_owned()).collect()))
                .build();
            DescribeImagesOutput::builder().image_details(detail).build()
        })
    }

    /// Amazon Inspector covers the image `repository@digest` of the test account with the given status,
    /// reason and last scan time; only a request filtered by that image's ARN matches.
    pub fn coverage(
        repository: &'static str,
        digest: &'static str,
        status: ScanStatusCode,
        reason: ScanStatusReason,
        last_scanned_at: Option<i64>,
    ) -> Rule {
        let wanted = image_arn(repository, digest);
        mock!(aws_sdk_inspector2::Client::list_coverage)
            .match_requests(move |r| {
                r.filter_criteria().is_some_and(|c| c.resource_id().iter().any(|f| f.value() == wanted))
            })
            .then_output(coverage_output(repository, digest, status, reason, last_scanned_at))
    }

    /// The ListCoverage answer of [`coverage`], for sequences.
    pub fn coverage_output(
        repository: &'static str,
        digest: &'static str,
        status: ScanStatusCode,
        reason: ScanStatusReason,
        last_scanned_at: Option<i64>,
    ) -> impl Fn() -> ListCoverageOutput + Send + Sync + 'static {
        move || {
            let scan_status =
                ScanStatus::builder().status_code(status.clone()).reason(reason.clone()).build().expect("status");
            let resource = CoveredResource::builder()
                .resource_type(CoverageResourceType::AwsEcrContainerImage)
                .resource_id(image_arn(repository, digest))
                .account_id(super::ACCOUNT)
                .scan_type(ScanType::Package)
                .scan_status(scan_status)
                .set_last_scanned_at(last_scanned_at.map(DateTime::from_secs))
                .build()
                .expect("covered resource");
            ListCoverageOutput::builder().covered_resources(resource).build()
        }
    }

    fn image_arn(repository: &str, digest: &str) -> String {
        format!("arn:aws:ecr:{}:{}:repository/{repository}/{digest}", super::REGION, super::ACCOUNT)
    }

    /// Inspector covers the image actively, its last scan complete.
    pub fn coverage_active(repository: &'static str, digest: &'static str) -> Rule {
        coverage(repository, digest, ScanStatusCode::Active, ScanStatusReason::Successful, Some(1_764_000_000))
    }

    /// A registry for the audit: `repositories` (DescribeRepositories, one page) each without lifecycle policy,
    /// repository policy or images; basic scanning without rules, no registry policy, replication or
    /// pull-through cache rules or creation templates.
    pub fn audited_registry(repositories: Vec<aws_sdk_ecr::types::Repository>) -> Vec<Rule> {
        use aws_sdk_ecr::operation::describe_pull_through_cache_rules::DescribePullThroughCacheRulesOutput;
        use aws_sdk_ecr::operation::describe_registry::DescribeRegistryOutput;
        use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
        use aws_sdk_ecr::operation::get_lifecycle_policy::GetLifecyclePolicyError;
        use aws_sdk_ecr::operation::get_registry_policy::GetRegistryPolicyError;
        use aws_sdk_ecr::operation::get_registry_scanning_configuration::GetRegistryScanningConfigurationOutput;
        use aws_sdk_ecr::operation::get_repository_policy::GetRepositoryPolicyError;
        use aws_sdk_ecr::types::error::{
            LifecyclePolicyNotFoundException, RegistryPolicyNotFoundException, RepositoryPolicyNotFoundException,
        };
        use aws_sdk_ecr::types::{RegistryScanningConfiguration, ScanType};
        vec![
            mock!(aws_sdk_ecr::Client::describe_repositories).then_output(move || {
                DescribeRepositoriesOutput::builder().set_repositories(Some(repositories.clone())).build()
            }),
            mock!(aws_sdk_ecr::Client::get_registry_scanning_configuration).then_output(|| {
                let basic = RegistryScanningConfiguration::builder().scan_type(ScanType::Basic).build();
                GetRegistryScanningConfigurationOutput::builder().scanning_configuration(basic).build()
            }),
            mock!(aws_sdk_ecr::Client::get_registry_policy).then_error(|| {
                GetRegistryPolicyError::RegistryPolicyNotFoundException(
                    RegistryPolicyNotFoundException::builder().build(),
                )
            }),
            mock!(aws_sdk_ecr::Client::describe_registry).then_output(|| DescribeRegistryOutput::builder().build()),
            mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules)
                .then_output(|| DescribePullThroughCacheRulesOutput::builder().build()),
            mock!(aws_sdk_ecr::Client::describe_repository_creation_templates).then_output(|| {
                aws_sdk_ecr::operation::describe_repository_creation_templates::DescribeRepositoryCreationTemplatesOutput::builder().build()
            }),
            mock!(aws_sdk_ecr::Client::describe_images).then_output(|| DescribeImagesOutput::builder().build()),
            mock!(aws_sdk_ecr::Client::get_lifecycle_policy).then_error(|| {
                GetLifecyclePolicyError::LifecyclePolicyNotFoundException(
                    LifecyclePolicyNotFoundException::builder().build(),
                )
            }),
            mock!(aws_sdk_ecr::Client::get_repository_policy).then_error(|| {
                GetRepositoryPolicyError::RepositoryPolicyNotFoundException(
                    RepositoryPolicyNotFoundException::builder().build(),
                )
            }),
        ]
    }

    /// `n` mutable repositories `dev/app-0000`, `dev/app-0001`, ... as DescribeRepositories lists them.
    pub fn repositories(n: usize) -> Vec<aws_sdk_ecr::types::Repository> {
        (0..n)
            .map(|i| {
                aws_sdk_ecr::types::Repository::builder()
                    .repository_name(format!("dev/app-{i:04}"))
                    .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
                    .build()
            })
            .collect()
    }
}
