//! The fuzz targets' bodies (fuzz/fuzz_targets/) over every committed seed and regression input: what
//! `scripts/fuzz` found once keeps being checked by `cargo test`, with no cargo-fuzz and no nightly needed.

use std::path::{Path, PathBuf};
use warden::event::{Event, EventError};
use warden::policy::Policy;

fn inputs(dirs: &[&str]) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir)).ok())
        .flatten()
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_file() && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .filter(|path| path.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

fn exercise(result: Result<Event, EventError>) {
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

/// fuzz_targets/event_parser.rs
fn event_parser(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        exercise(warden::event::parse_str(text));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        exercise(warden::event::parse(value));
    }
}

/// fuzz_targets/policy_parser.rs
fn policy_parser(data: &[u8]) {
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

#[test]
fn event_parser_inputs_never_panic() {
    let files = inputs(&["events", "events/invalid", "fuzz/regressions/event_parser"]);
    assert!(files.len() > 30, "the samples are seeds: {files:?}");
    for file in files {
        event_parser(&std::fs::read(&file).expect("read"));
    }
}

#[test]
fn policy_parser_inputs_never_panic() {
    let mut files = inputs(&["fuzz/seeds/policy_parser", "fuzz/regressions/policy_parser"]);
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../warden.toml"));
    assert!(files.len() > 40, "{files:?}");
    for file in files {
        policy_parser(&std::fs::read(&file).expect("read"));
    }
}
