//! ecr-warden's shared library: the event model, the policy file, pure decisions, notifications and thin
//! adapters over the AWS SDK clients. Decisions never do I/O; adapters never decide.
//!
//! The `aws` feature (on by default) brings the adapters, the handler base and the Lambda error mapping, and
//! with them the AWS SDK. Without it the crate is the pure part only: what the fuzz targets build.

pub mod audit;
#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod delivery;
pub mod error;
pub mod event;
pub mod fanout;
pub mod fingerprint;
pub mod fuzzing;
pub mod gate;
#[cfg(any(test, feature = "test-util"))]
pub mod golden;
#[cfg(feature = "aws")]
pub mod handler;
#[cfg(feature = "aws")]
pub mod hub;
pub mod invocation;
pub mod kinds;
pub mod lifecycle;
pub mod notify;
pub mod outcome;
pub mod pattern;
pub mod policy;
pub mod reach;
pub mod tags;
pub mod template;
#[cfg(feature = "test-util")]
pub mod testing;

pub use error::WardenError;
pub use outcome::Outcome;
