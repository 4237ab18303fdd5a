//! The code's shape, checked: the modules of `shared/src` import one another without a circle, and no function
//! of the library, the Lambda functions or the `warden` command outgrows what a reader takes in at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest function allowed, in lines (signature to closing brace), outside tests.
const MAX_FUNCTION_LINES: usize = 80;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// Every `.rs` file under `dir` that is not a test (`tests.rs`, `*_tests.rs`, `tests/`) or a benchmark.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() && name != "tests" && name != "benches" {
            found.extend(sources(&path));
        } else if name.ends_with(".rs") && !name.contains("tests") && name != "testing.rs" {
            found.push(path);
        }
    }
    found
}

/// The text before a file's `#[cfg(test)] mod tests { ... }` block, if it has one inline.
fn without_inline_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {").map_or(text, |at| &text[..at])
}

/// `shared/src`'s top-level modules and the ones each names (`crate::<module>`).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("shared/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources(&src) {
        let relative = path.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("component").as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        let text = std::fs::read_to_string(&path).expect("source");
        let uses = graph.entry(module.clone()).or_default();
        for (at, _) in without_inline_tests(&text).match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

/// A circle through `module`, if there is one (depth-first).
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, module: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![module.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty");
        for next in graph.get(last).into_iter().flatten() {
            if next == module {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

#[test]
fn the_modules_of_shared_import_one_another_without_a_circle() {
    let graph = import_graph();
    assert!(graph.len() > 10 && graph["handler"].contains("policy"), "the graph was not read: {graph:?}");
    let circles: Vec<String> = graph.keys().filter_map(|m| circle_through(&graph, m)).map(|c| c.join(" → ")).collect();
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert_eq!(circle_through(&graph, "a"), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(circle_through(&graph, "d"), None);
}

/// Functions longer than [`MAX_FUNCTION_LINES`] in a file: (name, lines). A function starts at a line whose first
/// word after the indent and qualifiers is `fn` and ends at the first line holding only `}` at its indent.
fn long_functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = without_inline_tests(text).lines().collect();
    let mut long = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let words: Vec<&str> = line.split_whitespace().collect();
        let qualifiers = ["pub", "pub(crate)", "pub(super)", "async", "const", "unsafe"];
        let at = words.iter().position(|w| !qualifiers.contains(w));
        if let Some(at) = at.filter(|&at| words[at] == "fn" && !line.trim_end().ends_with(';')) {
            let name = words.get(at + 1).map_or("", |n| n.split(['(', '<']).next().unwrap_or_default()).to_owned();
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_end() == format!("{}}}", " ".repeat(indent)))
                .unwrap_or(lines.len() - 1);
            if end - i + 1 > MAX_FUNCTION_LINES {
                long.push((name, end - i + 1));
            }
            i = end;
        }
        i += 1;
    }
    long
}

#[test]
fn no_function_of_the_library_the_lambdas_or_the_command_is_longer_than_80_lines() {
    let root = root();
    let mut dirs = vec![root.join("shared/src"), root.join("cli/src")];
    for entry in std::fs::read_dir(root.join("functions")).expect("functions") {
        dirs.push(entry.expect("entry").path().join("src"));
    }
    let mut long = Vec::new();
    let mut files = 0;
    for path in dirs.iter().flat_map(|d| sources(d)) {
        files += 1;
        let text = std::fs::read_to_string(&path).expect("source");
        for (name, lines) in long_functions(&text) {
            long.push(format!("{}: {name} ({lines} lines)", path.strip_prefix(&root).expect("in root").display()));
        }
    }
    assert!(files > 40, "only {files} files read");
    assert!(long.is_empty(), "functions over {MAX_FUNCTION_LINES} lines:\n{}", long.join("\n"));
}

#[test]
fn the_length_check_measures_functions() {
    let body = "    let x = 1;\n".repeat(MAX_FUNCTION_LINES);
    let text = format!("pub async fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
    assert_eq!(long_functions(&text), vec![("long".to_owned(), MAX_FUNCTION_LINES + 2)]);
}
