//! The platform's list-key body parser on any bytes, and the error-detail renderer.
#![no_main]

use castsync::platform::castari::wire::{error_detail, parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_list(data);
    let _ = error_detail(data);
});
