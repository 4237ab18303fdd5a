//! Golden files for renderings people read (notifications, audit reports): a test renders, compares with the
//! file in the repository, and `UPDATE_GOLDEN=1` rewrites the files for review in the diff instead.

use std::path::Path;

/// Whether this run rewrites golden files (`UPDATE_GOLDEN` set) rather than comparing with them.
pub fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Compares `body` with `file` (or writes it when [`updating`]); a difference or a missing file is pushed onto
/// `mismatches`, so one run reports every file that differs.
pub fn compare(file: &Path, body: &str, mismatches: &mut Vec<String>) {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if updating() {
        std::fs::create_dir_all(file.parent().unwrap_or(Path::new("."))).expect("create the golden directory");
        std::fs::write(file, body).expect("write the golden file");
        return;
    }
    match std::fs::read_to_string(file) {
        Ok(expected) if expected == body => {}
        Ok(_) => mismatches.push(format!("{name} differs")),
        Err(_) => mismatches.push(format!("{name} is missing")),
    }
}

/// Fails the test naming every file that differed.
pub fn assert_none(mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "golden files differ (UPDATE_GOLDEN=1 to regenerate, then review the diff):\n{}",
        mismatches.join("\n")
    );
}
