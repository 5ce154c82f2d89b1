//! No output ever shows a value, whatever form it takes in the YAML (issue 11, point 1).
//!
//! A property test writes canary values in every YAML form — plain, quoted, number-like, hex,
//! octal, float, timestamp, multi-line, flow mappings with typos, tags, anchors, nested and
//! too deep — each in its own agent, and runs `validate`, `reconcile --dry-run` in all three
//! formats, `edit` (a scripted editor adds one more broken value), `show` without `--reveal`,
//! `diff` and `textconv`. No canary, nor what a YAML reader would turn it into (a hex key read
//! as decimal), nor a 10-character piece of either, may appear on stdout or stderr. Bool-like
//! words cannot be unique canaries, so for those the lines naming their key must not show the
//! word. The case count is small: every case runs the binary some fifty times.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::*;

/// One agent's manifest and what its outputs must never contain.
#[derive(Debug, Clone)]
struct Form {
    name: &'static str,
    /// The body of `secrets:` (indented by two), or a whole document when `whole` is set.
    yaml: String,
    whole: bool,
    never: Vec<String>,
    /// Bool-like words under their keys: `(key, word)`.
    words: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Payload {
    hex: String,
    hex16: String,
    digits25: String,
    digits15: String,
    octal: String,
    frac: (String, String),
    year: String,
    word: usize,
}

fn payload() -> impl Strategy<Value = Payload> {
    let hex = || proptest::collection::vec(0u8..16, 12).prop_map(|v| render(&v, 16));
    let hex16 = proptest::collection::vec(0u8..16, 16).prop_map(|v| render(&v, 16));
    let digits = |n: usize| {
        (1u8..10, proptest::collection::vec(0u8..10, n - 1))
            .prop_map(|(first, rest)| format!("{first}{}", render(&rest, 10)))
    };
    let octal = proptest::collection::vec(0u8..8, 15).prop_map(|v| format!("7{}", render(&v, 8)));
    (
        hex(),
        hex16,
        digits(25),
        digits(15),
        octal,
        (digits(7), digits(9)),
        (100u32..999).prop_map(|y| format!("2{y}")),
        0usize..WORDS.len(),
    )
        .prop_map(
            |(hex, hex16, digits25, digits15, octal, frac, year, word)| Payload {
                hex,
                hex16,
                digits25,
                digits15,
                octal,
                frac,
                year,
                word,
            },
        )
}

fn render(digits: &[u8], radix: u32) -> String {
    digits
        .iter()
        .map(|d| char::from_digit(u32::from(*d), radix).unwrap())
        .collect()
}

const WORDS: [&str; 8] = ["yes", "No", "ON", "off", "True", "FALSE", "Y", "n"];

fn forms(p: &Payload) -> Vec<Form> {
    let c = |tag: &str| format!("cnry-{}-{tag}", p.hex);
    let f = |name, yaml: String, never: Vec<String>| Form {
        name,
        yaml,
        whole: false,
        never,
        words: Vec::new(),
    };
    let hex_value = u64::from_str_radix(&p.hex16, 16).unwrap();
    let octal_value = u64::from_str_radix(&p.octal, 8).unwrap();
    let float = format!("{}.{}", p.frac.0, p.frac.1);
    let float_reading = format!("{:?}", float.parse::<f64>().unwrap());
    let stamp = format!("{}-07-19T13:47:02Z", p.year);
    let word = WORDS[p.word];
    vec![
        f(
            "valid",
            format!(
                "  PLAIN: {}\n  DOUBLE: \"{}\"\n  SINGLE: '{}'\n  NUMBER: {}\n",
                c("plain"),
                c("dq"),
                c("sq"),
                p.digits15
            ),
            vec![c("plain"), c("dq"), c("sq"), p.digits15.clone()],
        ),
        f(
            "big-number",
            format!("  PIN: {}\n", p.digits25),
            vec![p.digits25.clone()],
        ),
        f(
            "hex",
            format!("  PRIVATE_KEY: 0x{}\n", p.hex16),
            vec![p.hex16.clone(), hex_value.to_string()],
        ),
        f(
            "long-hex",
            format!("  PRIVATE_KEY: 0x{}{}{}\n", p.hex16, p.hex, p.hex),
            vec![p.hex16.clone(), p.hex.clone()],
        ),
        f(
            "octal-0o",
            format!("  MODE: 0o{}\n", p.octal),
            vec![p.octal.clone(), octal_value.to_string()],
        ),
        f(
            "octal-leading-zero",
            format!("  PIN: 0{}\n", p.octal),
            vec![p.octal.clone(), octal_value.to_string()],
        ),
        f(
            "float",
            format!("  RATE: {float}\n"),
            vec![float.clone(), float_reading, p.frac.1.clone()],
        ),
        f(
            "exponent",
            format!("  RATE: {}e{}\n", p.frac.1, p.frac.0.len()),
            vec![p.frac.1.clone()],
        ),
        f(
            "timestamp",
            format!("  SINCE: {stamp}\n"),
            vec![stamp.clone(), format!("{}-07-19", p.year)],
        ),
        Form {
            name: "bool-like",
            yaml: format!("  SECRET: \"{}\"\n  FLAG: {word}\n", c("beside-bool")),
            whole: false,
            never: vec![c("beside-bool")],
            words: vec![("FLAG".into(), word.into())],
        },
        f(
            "block-literal",
            format!("  CERT: |\n    {}\n    {}\n", c("l1"), c("l2")),
            vec![c("l1"), c("l2")],
        ),
        f(
            "block-then-number",
            format!("  CERT: >\n    {}\n  PIN: 0x{}\n", c("folded"), p.hex16),
            vec![c("folded"), p.hex16.clone(), hex_value.to_string()],
        ),
        f(
            "multi-line-plain",
            format!("  TOKEN: {}\n    {}\n  RATE: {float}\n", c("m1"), c("m2")),
            vec![c("m1"), c("m2"), float.clone()],
        ),
        f(
            "multi-line-quoted",
            format!(
                "  TOKEN: \"{}\n    {}\"\n  PIN: {}\n",
                c("q1"),
                c("q2"),
                p.digits25
            ),
            vec![c("q1"), c("q2"), p.digits25.clone()],
        ),
        Form {
            name: "flow-missing-colon",
            yaml: format!(
                "agent: AGENT\nsecrets: {{API_KEY: x, TOKEN {}}}\n",
                c("flow")
            ),
            whole: true,
            never: vec![c("flow")],
            words: Vec::new(),
        },
        Form {
            name: "flow-value-as-key",
            yaml: format!("agent: AGENT\nsecrets: {{API_KEY: x, {}}}\n", c("flowkey")),
            whole: true,
            never: vec![c("flowkey")],
            words: Vec::new(),
        },
        Form {
            name: "flow-number-typo",
            yaml: format!(
                "agent: AGENT\nsecrets: {{PIN: 0x{}, 0o{} }}\n",
                p.hex16, p.octal
            ),
            whole: true,
            never: vec![p.hex16.clone(), hex_value.to_string(), p.octal.clone()],
            words: Vec::new(),
        },
        f(
            "tag",
            format!(
                "  BLOB: !!binary {}\n  OTHER: !secret {}\n",
                c("bin"),
                c("tag")
            ),
            vec![c("bin"), c("tag")],
        ),
        f(
            "anchor",
            format!(
                "  A: &shared {}\n  B: *shared\n  C: &n 0x{}\n  D: *n\n",
                c("anchor"),
                p.hex16
            ),
            vec![c("anchor"), p.hex16.clone(), hex_value.to_string()],
        ),
        f(
            "nested",
            format!("  DB:\n    password: {}\n", c("nested")),
            vec![c("nested")],
        ),
        f(
            "list",
            format!("  HOSTS: [{}, {}]\n", c("li1"), p.digits25),
            vec![c("li1"), p.digits25.clone()],
        ),
        f(
            "duplicate",
            format!("  KEY: {}\n  KEY: {}\n", c("dup1"), c("dup2")),
            vec![c("dup1"), c("dup2")],
        ),
        f(
            "too-deep",
            format!("  KEY: {}{}{}\n", "[".repeat(30), c("deep"), "]".repeat(30)),
            vec![c("deep")],
        ),
        Form {
            name: "value-at-top-level",
            yaml: format!(
                "agent: AGENT\nsecrets:\n  A: x\n{}: 1\nTOKEN {}\n",
                c("top"),
                c("top2")
            ),
            whole: true,
            never: vec![c("top"), c("top2")],
            words: Vec::new(),
        },
        Form {
            name: "wrong-agent",
            yaml: format!("agent: Cnry-{}!\nsecrets:\n  A: {}\n", p.hex, c("wa")),
            whole: true,
            never: vec![p.hex.clone(), c("wa")],
            words: Vec::new(),
        },
    ]
}

/// `s` and every 10-character piece of it.
fn pieces(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 10 {
        return vec![s.to_owned()];
    }
    chars.windows(10).map(|w| w.iter().collect()).collect()
}

fn assert_clean(what: &str, output: &str, forms: &[Form]) {
    for form in forms {
        for never in &form.never {
            for piece in pieces(never) {
                assert!(
                    !output.contains(&piece),
                    "{what} shows {piece:?} (of {never:?}, form {}):\n{output}",
                    form.name
                );
            }
        }
        for (key, word) in &form.words {
            for line in output.lines().filter(|l| l.contains(key.as_str())) {
                let shown =
                    line.contains(&format!(" {word} ")) || line.contains(&format!("\"{word}\""));
                assert!(!shown, "{what} shows the value of {key}: {line}");
            }
        }
    }
}

/// Runs `test`; no form may show on stdout or stderr.
fn run(what: &str, test: Test, forms: &[Form]) -> Run {
    let run = test.run();
    assert_clean(&format!("stdout of {what}"), run.stdout(), forms);
    assert_clean(&format!("stderr of {what}"), run.stderr(), forms);
    run
}

fn write_forms(repo: &SecretsRepo, forms: &[Form]) {
    for (i, form) in forms.iter().enumerate() {
        // "form": letters no hex digit is, so no 10-character piece of a canary
        // ("…f18-anchor" of cnry-…f18-anchor) can be found in the agent's own name.
        let agent = format!("form{i:02}-{}", form.name);
        let text = if form.whole {
            form.yaml.replace("AGENT", &agent)
        } else {
            format!("agent: {agent}\nsecrets:\n{}", form.yaml)
        };
        repo.raw_manifest(&agent, &text);
        // Only the manifest rules judge the forms (a valid one then reaches the plan).
        let _ = std::fs::remove_file(repo.path(&format!("agents/{agent}/.env.example")));
    }
}

fn editor(dir: &Path, p: &Payload) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("editor.sh");
    let body = format!(
        "#!/bin/sh\nprintf '  ADDED: 0x{}\\n  MORE: {{a: cnry-{}-edit}}\\n' >> \"$1\"\n",
        p.hex16, p.hex
    );
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn one_case(emu: &Emulator, p: &Payload) {
    let mut forms = forms(p);
    let repo = SecretsRepo::new("");
    // A committed version first, so that `diff` has two sides.
    for (i, form) in forms.iter().enumerate() {
        repo.agent(
            &format!("form{i:02}-{}", form.name),
            &[("OLD", "old-value")],
        );
    }
    repo.commit_all("before");
    write_forms(&repo, &forms);
    let edit = editor(&repo.home, p);
    let edited = Form {
        name: "edited",
        yaml: String::new(),
        whole: false,
        never: vec![p.hex16.clone(), format!("cnry-{}-edit", p.hex)],
        words: Vec::new(),
    };
    forms.push(edited);

    run("validate", repo.test().arg("validate"), &forms).failure();
    run(
        "reconcile --dry-run",
        repo.test_reconcile(&emu.url).arg("--dry-run"),
        &forms,
    )
    // The valid forms reach the plan; the bad agents make the run fail.
    .failure()
    .stdout_has("+ PLAIN")
    .stdout_has("+ CERT");
    for format in ["json", "markdown"] {
        run(
            &format!("reconcile --dry-run --output {format}"),
            repo.test_reconcile(&emu.url)
                .args(["--dry-run", "--output", format]),
            &forms,
        )
        .failure();
    }
    run("diff", repo.test().arg("diff"), &forms);
    for (i, form) in forms.iter().enumerate().filter(|(_, f)| f.name != "edited") {
        let agent = format!("form{i:02}-{}", form.name);
        run(
            &format!("show {agent}"),
            repo.test().args(["show", &agent]),
            &forms,
        );
        let file = repo.path(&format!("agents/{agent}/secrets.yaml.age"));
        run(
            &format!("textconv {agent}"),
            repo.test().arg("textconv").arg(&file),
            &forms,
        );
        // The editor saves a broken manifest: refused.
        run(
            &format!("edit {agent}"),
            repo.test()
                .env("EDITOR", &edit)
                .env("TMPDIR", &repo.home)
                .args(["edit", &agent]),
            &forms,
        )
        .failure();
    }
}

#[test]
fn no_output_shows_a_canary_in_any_yaml_form() {
    let emu = Emulator::start(&["--auto-create-agents"]);
    let mut runner = TestRunner::new(Config {
        cases: 3,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&payload(), |p| {
            one_case(&emu, &p);
            Ok(())
        })
        .unwrap();
}
