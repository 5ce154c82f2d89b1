//! The invariants ARCHITECTURE.md states that a grep can check: no import cycle between the
//! library's modules, `cli` seen only by `main.rs` and `commands/`, and no error message that
//! carries its own hint line. Each failure names the files to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, with its text, skipping unit-test files.
fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.components().any(|c| c.as_os_str() == "tests")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.strip_prefix(&root).unwrap().to_owned(), text));
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to: `source` for `source.rs` and `source/checkout.rs`.
fn module_of(path: &Path) -> String {
    let first = path
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without its `#[cfg(test)] mod tests { … }` block.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {")
        .map_or(text, |i| &text[..i])
}

/// `crate::NAME` references of each top-level module to the others.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in sources() {
        let from = module_of(&path);
        if from == "lib" || from == "main" {
            continue;
        }
        let code = without_tests(&text);
        for (at, _) in code.match_indices("crate::") {
            let to: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn no_import_cycle_runs_between_the_librarys_modules() {
    let graph = module_graph();
    // A depth-first search for a back edge; the path to it is the cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            cycles.push(cycle.join(" -> "));
            return;
        }
        if !done.insert(node.to_owned()) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(
        cycles.is_empty(),
        "import cycles between modules: {cycles:#?}"
    );
}

#[test]
fn only_main_and_the_commands_see_the_clap_layer() {
    let seen: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| without_tests(text).contains("crate::cli"))
        .map(|(path, _)| path.display().to_string())
        .filter(|p| {
            p != "main.rs" && p != "cli.rs" && p != "commands.rs" && !p.starts_with("commands/")
        })
        .collect();
    assert!(seen.is_empty(), "library modules that import cli: {seen:?}");
}

#[test]
fn no_message_carries_its_own_hint_line() {
    let needle = ["\\n", "  hint:"].concat();
    let found: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| without_tests(text).contains(&needle))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        found.is_empty(),
        "messages with a hint line of their own (implement hint::Hinted instead): {found:?}"
    );
}
