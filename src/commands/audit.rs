//! `castsync audit [-o FORMAT] [--exit-code]`: the audit of the committed manifests
//! (`crate::audit`), printed; exit 2 with `--exit-code` when something needs rotating.

use super::{Exit, Repo};
use crate::audit::{self, Request, render};
use crate::cli::{AuditArgs, GlobalArgs, OutputFormat};

pub(super) fn run(global: &GlobalArgs, args: &AuditArgs) -> anyhow::Result<Exit> {
    let root = Repo::locate(global)?;
    let identities = super::discover_identities(global)?;
    let report = audit::audit(&Request {
        root,
        config: global.config.clone(),
        identities: &identities,
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
    })?;
    match args.output {
        OutputFormat::Text => super::print_out(render::text(&report))?,
        OutputFormat::Json => super::print_out(format_args!("{}\n", render::json(&report)))?,
        OutputFormat::Markdown => super::print_out(render::markdown(&report))?,
    }
    if report.summary.unreadable > 0 {
        crate::say!(
            "error: {} manifest(s) could not be audited (listed above): they do not decrypt with your identities or are not valid",
            report.summary.unreadable
        );
        return Ok(Exit::Failure);
    }
    if global.quiet == 0 && args.output != OutputFormat::Text {
        crate::say!("{}", render::headline(&report));
    }
    Ok(if args.exit_code && report.summary.needs_action() {
        Exit::Changes
    } else {
        Exit::Success
    })
}
