//! ECR lifecycle policies: validation with ECR's rules, and evaluation with ECR's semantics (what
//! GetLifecyclePolicyPreview would return), offline, in milliseconds.

mod evaluate;
mod images;
mod policy;

pub use evaluate::{Image, Preview, PreviewAction, PreviewResult, PreviewSummary, evaluate, selects};
pub use images::{ImagesError, parse_images};
pub use policy::{
    ActionType, CountType, LifecycleError, LifecycleErrors, LifecyclePolicy, Rule, StorageClass, TagSelection,
};

#[cfg(test)]
mod tests;
