//! `castsync.yaml` on any text.
#![no_main]

use std::path::Path;

use castsync::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::from_yaml(text, Path::new("castsync.yaml"));
});
