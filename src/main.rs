use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = castsync::cli::Cli::parse();
    castsync::commands::init_tracing(&cli.global);
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
