// As in lib.rs: stdout through the commands' writers, stderr through `castsync::say!`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

// The static release binaries (x86_64/aarch64-unknown-linux-musl) use mimalloc: musl's own
// allocator serialises threads on one lock and made `validate` slower than the glibc build
// (BENCHMARKS.md, Release archives). glibc and macOS builds keep the system allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // The shell's completion function calls castsync with CASTSYNC_COMPLETE set: answer, exit.
    castsync::cli::complete_if_asked();
    let cli = match castsync::cli::parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and succeed; every usage error (unknown
            // flag, bad value, missing argument) exits 1, never clap's default 2, which
            // `--exit-code` reserves for "there are changes".
            let _ = err.print();
            return std::process::ExitCode::from(if err.use_stderr() { 1 } else { 0 });
        }
    };
    let long_running = matches!(
        cli.command,
        castsync::cli::Command::Watch(_) | castsync::cli::Command::Emulator(_)
    );
    castsync::commands::init_tracing(&cli.global, long_running);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            castsync::say!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(castsync::run(cli)) {
        Ok(exit) => exit.into(),
        Err(err) => {
            castsync::commands::print_error(&err);
            std::process::ExitCode::from(1)
        }
    }
}
