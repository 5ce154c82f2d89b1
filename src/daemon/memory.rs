//! Gives freed memory back to the system between the daemon's cycles.
//!
//! glibc's allocator keeps pages a thread freed in that thread's arena for reuse, and returns
//! them only from the top of a heap. A cycle that decrypts a thousand manifests on every core
//! (and lists as many agents) frees nearly all of it when it ends, yet the process would stay
//! resident at its peak for as long as it runs. Asking glibc to trim every arena once a
//! cycle is over brings an idle daemon back to what it really holds.
//!
//! The one `unsafe` call of the crate lives here (the crate denies `unsafe_code`
//! everywhere else). Every daemon test runs it after each cycle; what it buys is measured
//! in BENCHMARKS.md (idle RSS), not asserted in a test, since whether glibc has pages to
//! return depends on the allocator's state.

/// Returns the allocator's free pages to the system; true when any came back. Call it when
/// no work is in flight (glibc locks each arena in turn while it walks it). Does nothing
/// where the C library is not glibc: the static musl binaries run on mimalloc (see main.rs),
/// which returns freed pages to the system by itself shortly after they are freed, and the
/// other systems' allocators have no such call either.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free() -> bool {
    // SAFETY: malloc_trim takes no pointer and touches no memory of ours; glibc serialises it
    // with every other allocator call (it is MT-Safe per malloc_trim(3)).
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free() -> bool {
    false
}

/// The process's resident set size in bytes (`VmRSS` of `/proc/self/status`), where Linux
/// reports it.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_resident_size_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = super::resident_bytes().unwrap();
            assert!(rss > 1024 * 1024, "{rss}");
        }
    }
}
