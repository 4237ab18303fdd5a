//! Short, stable names for sets of findings: what a standing report (a dry-run plan, a drift, a refusal) is
//! compared by, so it is sent again only when it changes.

use sha2::{Digest, Sha256};

/// The first 16 bytes of the SHA-256 of the lines, sorted (their order does not count), as hex.
pub fn of_lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> String {
    let mut sorted: Vec<String> = lines.into_iter().map(|l| l.as_ref().to_owned()).collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for line in &sorted {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_order_of_lines_does_not_count_their_content_does() {
        assert_eq!(super::of_lines(["a", "b"]), super::of_lines(["b", "a"]));
        assert_ne!(super::of_lines(["a", "b"]), super::of_lines(["a", "c"]));
        assert_eq!(super::of_lines(["a"]).len(), 32);
    }
}
