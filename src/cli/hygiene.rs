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
