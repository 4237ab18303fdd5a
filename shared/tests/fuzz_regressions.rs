//! The fuzz targets' bodies (`warden::fuzzing`, as fuzz/fuzz_targets/ run them) over every committed seed and regression input: what
//! `scripts/fuzz` found once keeps being checked by `cargo test`, with no cargo-fuzz and no nightly needed.

use std::path::{Path, PathBuf};
use warden::fuzzing::{event_parser, policy_parser};

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
