//! ECR lifecycle policies: validation with ECR's rules, and evaluation with ECR's semantics (what
//! GetLifecyclePolicyPreview would return), offline, in milliseconds.

mod evaluate;
mod images;
mod native;
mod policy;
mod retention;
pub mod rules;

pub use evaluate::INDEX_MEDIA_TYPES;
pub use evaluate::{Decision, Image, Preview, PreviewAction, PreviewResult, PreviewSummary, decide, evaluate, selects};
pub use images::{ImagesError, parse_images};
pub use native::{NativeHit, check_native, reaches_protected_tags};
pub use policy::{
    ActionType, CountType, LifecycleError, LifecycleErrors, LifecyclePolicy, Rule, StorageClass, TagSelection,
};
pub use retention::{
    Chosen, InUse, InUseData, Observed, Protection, RetentionPlan, TagProtections, plan_retention, protection,
};

#[cfg(test)]
mod tests;
