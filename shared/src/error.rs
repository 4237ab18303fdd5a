//! Errors a handler returns. Each maps to a Lambda `Diagnostic` whose type says whether a retry can help:
//! `Retryable.*` (throttling, 5xx, network) or `NonRetryable.*` (bad event, bad policy, access denied).

use crate::event::EventError;
use crate::policy::PolicyErrors;
#[cfg(feature = "aws")]
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
#[cfg(feature = "aws")]
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};

#[derive(Debug, thiserror::Error)]
pub enum WardenError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("invalid policy:\n{0}")]
    Policy(#[from] PolicyErrors),
    #[error("configuration: {0}")]
    Config(String),
    /// AWS answered with something ecr-warden cannot safely act on (an unreadable manifest, say).
    #[error("unexpected response: {0}")]
    Unexpected(String),
    #[error("{operation} failed ({code}): {message}")]
    Aws { operation: &'static str, code: String, message: String, retryable: bool },
    /// Another invocation is changing the same thing right now (it holds the lease): retry later.
    #[error("busy: {0}")]
    Busy(String),
}

impl WardenError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Aws { retryable: true, .. } | Self::Busy(_))
    }

    #[cfg(feature = "aws")]
    fn diagnostic_type(&self) -> &'static str {
        match self {
            Self::Event(_) => "NonRetryable.InvalidEvent",
            Self::Policy(_) => "NonRetryable.InvalidPolicy",
            Self::Config(_) => "NonRetryable.Configuration",
            Self::Unexpected(_) => "NonRetryable.UnexpectedResponse",
            Self::Aws { retryable: true, .. } => "Retryable.AwsError",
            Self::Aws { retryable: false, .. } => "NonRetryable.AwsError",
            Self::Busy(_) => "Retryable.Busy",
        }
    }
}

#[cfg(feature = "aws")]
impl From<WardenError> for lambda_runtime::Diagnostic {
    fn from(error: WardenError) -> Self {
        Self { error_type: error.diagnostic_type().to_owned(), error_message: error.to_string() }
    }
}

/// Error codes AWS uses for throttling and transient server trouble.
#[cfg(feature = "aws")]
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ServiceUnavailable",
    "ServerException",
    "InternalServerError",
    "InternalServerException",
    "InternalError",
    "KMSThrottlingException",
    "TransactionConflictException",
];

/// Wraps an SDK error (after the SDK's own retries) with whether the invocation should be retried.
#[cfg(feature = "aws")]
pub fn aws_error<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> WardenError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (code, retryable) = match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let retryable = TRANSIENT_CODES.contains(&code.as_str()) || service.raw().status().as_u16() >= 500;
            (code, retryable)
        }
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), true),
        SdkError::DispatchFailure(_) => ("DispatchFailure".to_owned(), true),
        SdkError::ResponseError(_) => ("ResponseError".to_owned(), true),
        _ => ("ConstructionFailure".to_owned(), false),
    };
    WardenError::Aws { operation, code, message: DisplayErrorContext(&error).to_string(), retryable }
}
