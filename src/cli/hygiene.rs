//! The arguments of the secret-hygiene commands: `audit` (rotation, access, exposure from git
//! history) and `guard` (declared values found outside the manifests).

use clap::Args;

use super::OutputFormat;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How to print the report (json: schemas/audit.schema.json).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
    /// Exit 2 when a value is overdue for rotation or readable by a former recipient (0
    /// otherwise), for a scheduled CI job.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// Search the staged changes (what `git commit` would record), for a pre-commit hook.
    #[arg(long, conflicts_with = "history")]
    pub staged: bool,
    /// Search every commit reachable from a branch, a tag or HEAD.
    #[arg(long)]
    pub history: bool,
    /// How to print the findings (json: schemas/guard.schema.json).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
}
