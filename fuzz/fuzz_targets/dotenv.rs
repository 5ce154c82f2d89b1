//! The dotenv line parser, as an `.env.example` schema and as a real `.env` for import.
#![no_main]

use std::path::Path;

use castsync::schema::{EnvSchema, parse_dotenv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = EnvSchema::parse(text, Path::new("agents/fuzz/.env.example"));
    let _ = parse_dotenv(text, Path::new("import.env"));
});
