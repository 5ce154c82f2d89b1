//! castsync reads dotenv files as python-dotenv does (issue 21, point 4): on a corpus of
//! edge cases written for this test (tests/data/dotenv), every file gives python-dotenv's keys
//! and values, or a named refusal (tests/data/dotenv/refused), or a documented difference
//! (tests/data/dotenv/differs). python-dotenv itself reads the same files, so the comparison
//! cannot drift from what it does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use castsync::schema::{EnvSchema, parse_dotenv};

use crate::support::tools::python_with;

fn corpus(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dotenv")
        .join(sub)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "env"))
        .collect();
    out.sort();
    out
}

/// python-dotenv's reading of every file in `dir`: file name → key → value (None for a key
/// without `=`), variables not expanded (castsync never expands them).
fn python_dotenv(python: &Path, dir: &Path) -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let script = r#"
import glob, json, os, sys
from dotenv import dotenv_values
out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.env"))):
    out[os.path.basename(path)] = dotenv_values(path, interpolate=False)
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python-dotenv's JSON")
}

/// castsync's reading of a file as a `.env.example` (keys and placeholders).
fn castsync_example(path: &Path) -> BTreeMap<String, Option<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let schema = EnvSchema::parse(&text, path).unwrap_or_else(|e| panic!("{e}"));
    schema
        .entries
        .into_iter()
        .map(|e| (e.key, Some(e.placeholder)))
        .collect()
}

#[test]
fn every_corpus_file_gives_python_dotenvs_keys_and_values() {
    let Some(python) = python_with("dotenv", "python3 -m pip install python-dotenv==1.2.2") else {
        return;
    };
    let dir = corpus("");
    let expected = python_dotenv(&python, &dir);
    let files = files(&dir);
    assert!(files.len() >= 10, "the corpus is there");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let python = &expected[&name];
        assert_eq!(&castsync_example(&file), python, "{name} as a .env.example");
        // Read as a real .env for `import`: the same, except that a repeated key is refused.
        let text = std::fs::read_to_string(&file).unwrap();
        match parse_dotenv(&text, &file) {
            Ok(pairs) => {
                let got: BTreeMap<String, Option<String>> = pairs
                    .into_iter()
                    .map(|(k, v, _)| (k, Some(v.expose().to_owned())))
                    .collect();
                assert_eq!(&got, python, "{name} as a .env");
            }
            Err(e) => assert!(
                name == "duplicates.env" && e.to_string().contains("duplicate key KEY"),
                "{name}: {e}"
            ),
        }
    }
}

#[test]
fn what_python_dotenv_reads_differently_is_refused_by_name() {
    let Some(python) = python_with("dotenv", "python3 -m pip install python-dotenv==1.2.2") else {
        return;
    };
    let dir = corpus("refused");
    let theirs = python_dotenv(&python, &dir);
    let expected = [
        // python-dotenv: the second line is a key `second`` without a value.
        ("backtick-multiline.env", 2, "backtick"),
        // python-dotenv: a key `MY-KEY`, which no environment variable can be named.
        ("bad-key.env", 1, "invalid key name \"MY-KEY\""),
        // python-dotenv: a key with no value (None).
        ("no-equals.env", 2, "there is no `=`"),
        // python-dotenv: the line is skipped with a warning.
        (
            "trailing-text.env",
            1,
            "unexpected text after the closing quote",
        ),
        // python-dotenv: the line is skipped and the next one read as a key.
        ("unterminated.env", 2, "quote is never closed"),
    ];
    for (name, line, message) in expected {
        assert!(theirs.contains_key(name), "python-dotenv read {name}");
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let e = EnvSchema::parse(&text, &path).unwrap_err();
        assert_eq!(e.line(), line, "{name}: {e}");
        assert!(e.to_string().contains(message), "{name}: {e}");
    }
    assert_eq!(files(&dir).len(), expected.len(), "every refusal is listed");
}

/// `KEY= # optional`: castsync (and node's dotenv) read a comment, python-dotenv the value
/// `# optional`. castsync's `# optional` marker depends on it, so this difference is kept
/// and documented (docs/config.md).
#[test]
fn a_comment_right_after_the_equals_sign_is_the_one_documented_difference() {
    let Some(python) = python_with("dotenv", "python3 -m pip install python-dotenv==1.2.2") else {
        return;
    };
    let dir = corpus("differs");
    let theirs = &python_dotenv(&python, &dir)["comment-after-equals.env"];
    assert_eq!(theirs["SENTRY_DSN"].as_deref(), Some("# optional"));
    let path = dir.join("comment-after-equals.env");
    let schema = EnvSchema::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    let dsn = schema.get("SENTRY_DSN").unwrap();
    assert_eq!((dsn.placeholder.as_str(), dsn.optional), ("", true));
    assert_eq!(schema.get("REGION").unwrap().placeholder, "eu");
    assert_eq!(theirs["REGION"].as_deref(), Some("eu"));
}
