//! `castsync emulator`: the flags as an [`EmulatorConfig`], then the emulator until a signal.

use crate::cli::{EmulatorArgs, FailMode, Wire};
use crate::commands::Exit;
use crate::emulator::{self, EmulatorConfig};

pub(super) async fn run(args: EmulatorArgs) -> anyhow::Result<Exit> {
    let fail_mode = match args.fail_mode {
        FailMode::ServerError => emulator::FailMode::ServerError,
        FailMode::TooManyRequests => emulator::FailMode::TooManyRequests,
        FailMode::Reset => emulator::FailMode::Reset,
        FailMode::Malformed => emulator::FailMode::Malformed,
        FailMode::Mixed => emulator::FailMode::Mixed,
    };
    let wire = match args.wire {
        Wire::Sdk => emulator::Wire::Sdk,
        Wire::Docs => emulator::Wire::Docs,
    };
    let config = EmulatorConfig {
        wire,
        listen: args.listen,
        data: args.data,
        token: args.token,
        agents: args.agents,
        auto_create_agents: args.auto_create_agents,
        rate_limit: args.rate_limit,
        fail_rate: args.fail_rate,
        fail_mode,
        latency_ms: args.latency_ms,
        seed: args.seed,
    };
    emulator::run(config).await?;
    Ok(Exit::Success)
}
