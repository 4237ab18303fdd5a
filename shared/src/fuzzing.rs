//! The fuzz targets' bodies: what `fuzz/fuzz_targets/` runs under libFuzzer and `shared/tests/fuzz_regressions.rs`
//! replays over every seed and saved crash in `cargo test`. Each takes any bytes and must not panic.

use crate::event::{Event, EventError};
use crate::policy::Policy;

/// The event parser on bytes as the Lambda runtime would hand them over: UTF-8 text through
/// [`crate::event::parse_str`], any bytes through serde_json's decoder then [`crate::event::parse`]. Whatever it
/// accepts must answer the accessors the handlers use.
pub fn event_parser(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        exercise_event(crate::event::parse_str(text));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        exercise_event(crate::event::parse(value));
    }
}

fn exercise_event(result: Result<Event, EventError>) {
    match result {
        Ok(event) => {
            let _ = event.kind.name();
            let _ = event.kind.repository().map(ToString::to_string);
            let _ = event.describe();
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// The policy loader on arbitrary text ([`Policy::from_toml`], what `warden policy check`, `WARDEN_POLICY_FILE`
/// and the embedded `warden.toml` go through): it accepts or rejects with located errors. An accepted policy
/// must also summarise itself and classify repository names.
pub fn policy_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Policy::from_toml(text, "fuzz.toml") {
        Ok(policy) => {
            let _ = policy.summary();
            for repository in ["prod/payments-api", "dev/web-frontend", "team-a/x", "sandbox/y", "", "a/b/c"] {
                let _ = policy.classify(repository);
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a rejected policy names at least one problem");
            let _ = errors.to_string();
        }
    }
}
