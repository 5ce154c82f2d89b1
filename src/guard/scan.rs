//! What one file's bytes give away: the lines where a declared value occurs (one
//! Aho-Corasick automaton over every value, so a file is read once whatever the number of
//! values), whether its name makes it a plaintext dotenv file, and whether it is a manifest
//! that was never encrypted.
//!
//! Nothing here returns or keeps a part of the file's text: only line numbers and the
//! indexes of the values found.

use aho_corasick::AhoCorasick;
use zeroize::Zeroizing;

/// The values, compiled once for the run. The automaton keeps its own copy of every value
/// for the life of the run (the aho-corasick crate does not zeroize it).
pub struct Matcher {
    automaton: Option<AhoCorasick>,
}

/// A value found: the 1-based line where it starts, and which value (the pattern's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub line: usize,
    pub pattern: usize,
}

impl Matcher {
    /// A matcher of `patterns` (none: it finds nothing).
    pub fn new(patterns: &[Zeroizing<Vec<u8>>]) -> Result<Matcher, aho_corasick::BuildError> {
        if patterns.is_empty() {
            return Ok(Matcher { automaton: None });
        }
        let automaton = AhoCorasick::new(patterns.iter().map(|p| p.as_slice()))?;
        Ok(Matcher {
            automaton: Some(automaton),
        })
    }

    /// Every value in `bytes`, once per line, in line order. Overlapping values are all
    /// found (a value that contains another is two hits).
    pub fn hits(&self, bytes: &[u8]) -> Vec<Hit> {
        let Some(automaton) = &self.automaton else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        // Lines are counted as the matches come, in the order of their ends.
        let mut counted = 0;
        let mut line = 1;
        let mut found: Vec<(usize, usize)> = automaton
            .find_overlapping_iter(bytes)
            .map(|m| (m.start(), m.pattern().as_usize()))
            .collect();
        found.sort_unstable();
        for (start, pattern) in found {
            line += bytes[counted..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted = start;
            hits.push(Hit { line, pattern });
        }
        hits.sort_unstable();
        hits.dedup();
        hits
    }
}

/// Whether a file name is a dotenv file that holds values (`.env`, `.env.production`,
/// `prod.env`), not a template of one (`.env.example`, `.env.sample`, `.env.template`,
/// `.env.dist`, `.env.defaults`, `example.env`).
pub fn is_plain_dotenv(path: &str) -> bool {
    const TEMPLATES: [&str; 5] = ["example", "sample", "template", "dist", "defaults"];
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == ".env" {
        return true;
    }
    if let Some(rest) = name.strip_prefix(".env.") {
        return !rest.split('.').any(|part| TEMPLATES.contains(&part));
    }
    if let Some(stem) = name.strip_suffix(".env") {
        return !stem.is_empty()
            && !stem
                .split(['.', '-', '_'])
                .any(|part| TEMPLATES.contains(&part));
    }
    false
}

/// Largest file read as YAML to see if it is a manifest (a manifest is at most 1 MiB).
const MAX_MANIFEST: usize = 1024 * 1024;

/// Whether `bytes`, at `path`, is a castsync manifest in plaintext: a `.yaml`/`.yml` file (or
/// a `.yaml.age` one that is not an age file) holding a mapping with an `agent:` or `group:`
/// name and a `secrets:` mapping.
pub fn is_plaintext_manifest(path: &str, bytes: &[u8]) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let age = name.ends_with(".yaml.age") || name.ends_with(".yml.age");
    if !(age || name.ends_with(".yaml") || name.ends_with(".yml")) || bytes.len() > MAX_MANIFEST {
        return false;
    }
    if age && is_age_file(bytes) {
        return false;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    // Cheap tests first: most YAML files are not manifests.
    if !text.contains("secrets") || crate::yaml_depth::check(text).is_err() {
        return false;
    }
    let Ok(serde_yaml::Value::Mapping(map)) = serde_yaml::from_str::<serde_yaml::Value>(text)
    else {
        return false;
    };
    let named = ["agent", "group"]
        .iter()
        .any(|k| matches!(map.get(*k), Some(serde_yaml::Value::String(_))));
    named && matches!(map.get("secrets"), Some(serde_yaml::Value::Mapping(_)))
}

/// Whether `bytes` begin as an age file does, armored or binary.
fn is_age_file(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let rest = &bytes[start..];
    rest.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || rest.starts_with(b"age-encryption.org/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(values: &[&str]) -> Matcher {
        let patterns: Vec<_> = values
            .iter()
            .map(|v| Zeroizing::new(v.as_bytes().to_vec()))
            .collect();
        Matcher::new(&patterns).unwrap()
    }

    #[test]
    fn hits_name_the_line_of_each_value_once_per_line() {
        let m = matcher(&["secret-one-1", "secret-two-22", "one-1"]);
        let text = b"a\nx secret-one-1 secret-one-1\n\nsecret-two-22\r\nend secret-one-1";
        assert_eq!(
            m.hits(text),
            vec![
                Hit {
                    line: 2,
                    pattern: 0
                },
                Hit {
                    line: 2,
                    pattern: 2
                },
                Hit {
                    line: 4,
                    pattern: 1
                },
                Hit {
                    line: 5,
                    pattern: 0
                },
                Hit {
                    line: 5,
                    pattern: 2
                },
            ]
        );
        assert!(matcher(&[]).hits(text).is_empty());
    }

    #[test]
    fn a_value_spanning_lines_is_found_at_its_first_line() {
        let m = matcher(&["-----BEGIN KEY-----\nabc\n-----END KEY-----"]);
        let text = b"key: |\n-----BEGIN KEY-----\nabc\n-----END KEY-----\n";
        assert_eq!(
            m.hits(text),
            vec![Hit {
                line: 2,
                pattern: 0
            }]
        );
    }

    #[test]
    fn dotenv_files_with_values_are_told_from_their_templates() {
        for plain in [
            ".env",
            "app/.env",
            ".env.local",
            ".env.production",
            "prod.env",
            "a/b/staging.env",
        ] {
            assert!(is_plain_dotenv(plain), "{plain}");
        }
        for template in [
            ".env.example",
            "agents/x/.env.example",
            ".env.sample",
            ".env.template",
            ".env.dist",
            ".env.defaults",
            ".env.local.example",
            "example.env",
            "sample.env",
            ".envrc",
            "env",
            "dotenv.rs",
            ".env/readme",
        ] {
            assert!(!is_plain_dotenv(template), "{template}");
        }
    }

    #[test]
    fn a_manifest_in_plaintext_is_told_from_an_encrypted_one_and_from_other_yaml() {
        let manifest = b"agent: x\nsecrets:\n  A: b\n";
        assert!(is_plaintext_manifest("agents/x/secrets.yaml.age", manifest));
        assert!(is_plaintext_manifest("secrets.yaml", manifest));
        assert!(is_plaintext_manifest(
            "g.yml",
            b"group: openai\nsecrets: {}\n"
        ));
        assert!(!is_plaintext_manifest("notes.txt", manifest));
        assert!(!is_plaintext_manifest(
            "agents/x/secrets.yaml.age",
            b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n"
        ));
        assert!(!is_plaintext_manifest(
            "k8s.yaml",
            b"kind: Secret\nsecrets:\n  a: b\n"
        ));
        assert!(!is_plaintext_manifest(
            "c.yaml",
            b"agent: [x]\nsecrets:\n  a: b\n"
        ));
        assert!(!is_plaintext_manifest("c.yaml", b"\xff\xfe"));
        assert!(!is_plaintext_manifest(
            "c.yaml",
            b"agent: x\nsecrets: [a]\n"
        ));
    }
}
