use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = castsync::cli::Cli::parse();
    let long_running = matches!(
        cli.command,
        castsync::cli::Command::Watch(_) | castsync::cli::Command::Emulator(_)
    );
    castsync::commands::init_tracing(&cli.global, long_running);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
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
