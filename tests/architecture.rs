//! The invariants ARCHITECTURE.md states that a grep can check: no import cycle between the
//! library's modules or its files, no module importing one of a layer above its own (the
//! layers are read from ARCHITECTURE.md), `cli` seen only by `main.rs` and `commands/`, no
//! error message that carries its own hint line, and thin commands (`src/commands/` under
//! 2,500 lines, tests aside). Each failure names the files to fix.

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

/// The cycles of `graph`, each as the path that closes it.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
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
        visit(node, graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    cycles
}

#[test]
fn no_import_cycle_runs_between_the_librarys_modules() {
    let cycles = cycles(&module_graph());
    assert!(
        cycles.is_empty(),
        "import cycles between modules: {cycles:#?}"
    );
}

/// The paths a `crate::`/`super::` reference names, from just after its prefix: `a::b::C`
/// gives one, `a::{b::C, d}` two. `at` is where to read; returns where it stopped.
fn use_paths(code: &str, mut at: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    let bytes = code.as_bytes();
    let skip = |at: &mut usize, also: &[u8]| {
        while *at < bytes.len() && (bytes[*at].is_ascii_whitespace() || also.contains(&bytes[*at]))
        {
            *at += 1;
        }
    };
    loop {
        skip(&mut at, b"");
        if bytes.get(at) == Some(&b'{') {
            at += 1;
            loop {
                skip(&mut at, b",");
                if at >= bytes.len() || bytes[at] == b'}' {
                    return at + 1;
                }
                at = use_paths(code, at, path.clone(), out);
            }
        }
        let name: String = code[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            out.push(path);
            return at;
        }
        at += name.len();
        path.push(name);
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            out.push(path);
            return at;
        }
    }
}

/// The library's files as module paths (`source::remote::origin` for
/// `source/remote/origin.rs`), each with the other files it names through `crate::` or
/// `super::`. A file's references to its own ancestors or descendants are left out: a
/// parent declares its children and they may use what it holds.
fn file_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files: BTreeMap<String, String> = sources()
        .into_iter()
        .filter(|(path, _)| path != Path::new("lib.rs") && path != Path::new("main.rs"))
        .map(|(path, text)| {
            let module = path
                .with_extension("")
                .display()
                .to_string()
                .replace('/', "::");
            (module, without_tests(&text).to_owned())
        })
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, code) in &files {
        let parts: Vec<String> = from.split("::").map(str::to_owned).collect();
        let starts = code
            .match_indices("crate::")
            .chain(code.match_indices("super::"));
        for (at, prefix) in starts {
            // `super::super::` is read from its first `super`; `foo_crate::` is no reference.
            if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut base = if prefix == "crate::" {
                Vec::new()
            } else {
                parts[..parts.len() - 1].to_vec()
            };
            let mut start = at + prefix.len();
            while code[start..].starts_with("super::") {
                base.pop();
                start += "super::".len();
            }
            let mut named = Vec::new();
            use_paths(code, start, base, &mut named);
            for path in named {
                let to = (1..=path.len())
                    .rev()
                    .map(|n| path[..n].join("::"))
                    .find(|m| files.contains_key(m));
                let Some(to) = to else { continue };
                let related = to == *from
                    || from.starts_with(&format!("{to}::"))
                    || to.starts_with(&format!("{from}::"));
                if !related {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    graph
}

#[test]
fn no_two_files_import_each_other_even_through_others() {
    let graph = file_graph();
    assert!(
        graph.contains_key("reconcile") && graph["reconcile"].contains("load"),
        "the file graph misses reconcile.rs -> load.rs: {graph:#?}"
    );
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between files: {cycles:#?}"
    );
}

/// The layers declared in ARCHITECTURE.md's "Layers" section, top first: its first `text`
/// block, one layer a line, the layer's name and its modules after two or more spaces.
fn declared_layers() -> Vec<(String, Vec<String>)> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let section = doc
        .split_once("\n## Layers\n")
        .expect("ARCHITECTURE.md has a \"## Layers\" section")
        .1;
    let block = section
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the Layers section has a ```text block")
        .0;
    block
        .lines()
        .filter_map(|line| line.trim().split_once("  "))
        .map(|(name, modules)| {
            let modules = modules.split(',').map(|m| m.trim().to_owned()).collect();
            (name.trim().to_owned(), modules)
        })
        .collect()
}

#[test]
fn no_module_imports_one_of_a_layer_above_its_own() {
    let layers = declared_layers();
    let layer_of: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(n, (_, modules))| modules.iter().map(move |m| (m.as_str(), n)))
        .collect();
    // Every module is placed, once.
    let placed: usize = layers.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        placed,
        layer_of.len(),
        "a module listed twice in ARCHITECTURE.md's layers"
    );
    let modules: BTreeSet<String> = sources()
        .iter()
        .map(|(path, _)| module_of(path))
        .filter(|m| m != "lib")
        .collect();
    let unplaced: Vec<&String> = modules
        .iter()
        .filter(|m| !layer_of.contains_key(m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from ARCHITECTURE.md's layers: {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (from, tos) in module_graph() {
        for to in tos {
            let (Some(&a), Some(&b)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
            else {
                continue;
            };
            if b < a {
                upward.push(format!(
                    "{from} ({}) imports {to} ({})",
                    layers[a].0, layers[b].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run up a layer: {upward:#?}"
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

/// The commands stay thin: `src/commands/` (its files, each without its `#[cfg(test)] mod
/// tests` block) holds at most this many lines. A command that grows logic grows a library
/// module instead, where it can be tested without the command line.
const COMMANDS_MAX_LINES: usize = 2_500;

#[test]
fn the_commands_stay_thin() {
    let mut sizes: Vec<(usize, String)> = sources()
        .into_iter()
        .filter(|(path, _)| path.starts_with("commands"))
        .map(|(path, text)| {
            (
                without_tests(&text).lines().count(),
                path.display().to_string(),
            )
        })
        .collect();
    let total: usize = sizes.iter().map(|(n, _)| n).sum();
    sizes.sort();
    sizes.reverse();
    assert!(
        total <= COMMANDS_MAX_LINES,
        "src/commands/ has {total} lines outside its tests (at most {COMMANDS_MAX_LINES}): move \
         decisions and data gathering into the library and formatting into `render`; the \
         largest files: {:?}",
        &sizes[..sizes.len().min(5)]
    );
}
