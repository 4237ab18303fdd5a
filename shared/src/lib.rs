//! ecr-warden's shared library: the event model, the policy file, pure decisions, notifications and thin
//! adapters over the AWS SDK clients. Decisions never do I/O; adapters never decide.

pub mod aws;
pub mod config;
pub mod error;
pub mod event;
pub mod gate;
pub mod handler;
pub mod lifecycle;
pub mod notify;
pub mod outcome;
pub mod pattern;
pub mod policy;
pub mod tags;
pub mod template;

pub use error::WardenError;
pub use outcome::Outcome;
