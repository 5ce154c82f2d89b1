//! The manifest reader on any text: it must refuse or accept, never panic, and a refusal
//! must never quote the input's values (the canary below is never in a message).
#![no_main]

use std::path::PathBuf;

use castsync::manifest::{Kind, ManifestContext, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As an agent's manifest and as a shared group's (`group:`, no `uses:`).
    let contexts = [Kind::Agent, Kind::Group].map(|kind| ManifestContext {
        path: PathBuf::from("agents/fuzz/secrets.yaml.age"),
        expected_agent: "fuzz".to_owned(),
        kind,
        unmanaged_keys: vec!["ANTHROPIC_API_KEY".to_owned()],
    });
    // The same text with a canary in value position: no error may show it.
    let with_canary = format!("{text}\n  K: cnry0x4c08fuzzcanary\n");
    for ctx in &contexts {
        for input in [text, with_canary.as_str()] {
            if let Err(e) = parse(input, ctx) {
                let message = e.to_string();
                assert!(!message.contains("cnry0x4c08fuzzcanary"), "{message}");
            }
        }
    }
});
