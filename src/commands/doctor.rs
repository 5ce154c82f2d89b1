//! `castsync doctor`: the checks (`crate::doctor`) on the repository this command line names,
//! rendered as text or JSON. Exit 0 when nothing failed, 1 otherwise.

use super::{Exit, Repo};
use crate::cli::{DoctorArgs, DoctorFormat, GlobalArgs};
use crate::doctor::{self, Report, Setup, Status};
use crate::render;

pub(super) async fn run(global: &GlobalArgs, args: &DoctorArgs) -> anyhow::Result<Exit> {
    // The same discovery every command uses: `-C DIR`, else the nearest castsync.yaml up.
    let report = match Repo::locate(global) {
        Ok(root) => {
            let setup = Setup {
                root: &root,
                explicit_config: global.config.as_deref(),
                identity_files: &global.identity,
                platform: &super::platform_choice(&args.platform),
                envs: &args.envs,
                environment: crate::environment::Environment::IMPLICIT,
                timeout: args.timeout,
                hint_of: super::report::hint_of_error,
            };
            doctor::examine(&setup).await
        }
        Err(e) => {
            let mut report = Report::default();
            let fix = super::hint_of(&e);
            report.push("repository", None, Status::Fail, format!("{e:#}"), fix);
            report
        }
    };
    match args.output {
        DoctorFormat::Json => super::print_out(format_args!(
            "{}\n",
            serde_json::to_string_pretty(&render::doctor::json(&report))?
        ))?,
        DoctorFormat::Text => super::print_out(render::doctor::text(&report))?,
    }
    Ok(if report.problems() == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}
