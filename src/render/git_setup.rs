//! What `castsync git-setup` says it did (stderr), one [`Line`] each: every git config entry,
//! the `.gitattributes` lines, the pre-commit hook. A warning is said even with `-q`.

use std::path::Path;

use crate::git_setup::{Change, HookChange, HookReport, Report};

/// One line to say; `warning` lines are said even with `-q`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub warning: bool,
    pub text: String,
}

impl Line {
    fn note(text: String) -> Line {
        Line {
            warning: false,
            text,
        }
    }

    fn warning(text: String) -> Line {
        Line {
            warning: true,
            text,
        }
    }
}

/// The git config entries and the `.gitattributes` file (named relative to `root`).
pub fn setup(report: &Report, root: &Path) -> Vec<Line> {
    let mut lines: Vec<Line> = report
        .settings
        .iter()
        .map(|(setting, change)| {
            let (key, value) = (setting.key, setting.value);
            match change {
                Change::Set => Line::note(format!("set {key} = {value}")),
                Change::Unchanged => Line::note(format!("already set: {key} = {value}")),
                Change::Replaced { previous } => {
                    Line::note(format!("replaced {key} = {value} (was {previous:?})"))
                }
                Change::Kept { current } => Line::warning(format!(
                    "warning: kept {key} = {current:?}, which differs from {value:?}; pass --force to replace it"
                )),
            }
        })
        .collect();
    let file = &report.attributes_file;
    let shown = file.strip_prefix(root).unwrap_or(file).display();
    if report.added.is_empty() && report.unrouted.is_empty() {
        lines.push(Line::note(format!(
            "{shown} already routes manifests to castsync"
        )));
    } else if !report.added.is_empty() {
        lines.push(Line::note(format!(
            "added to {shown}: {}; commit it so that every clone uses it",
            report.added.join(", ")
        )));
    }
    for (path, attribute, value) in &report.unrouted {
        lines.push(Line::warning(format!(
            "warning: git still gives {path:?} {attribute}={value:?}: another attributes file (a deeper .gitattributes, or .git/info/attributes) overrides {shown}"
        )));
    }
    lines
}

/// The pre-commit hook.
pub fn hook(report: &HookReport) -> Line {
    let shown = report.path.display();
    match report.change {
        HookChange::Written => Line::note(format!(
            "wrote the pre-commit hook {shown}: it runs `castsync guard --staged` before each commit"
        )),
        HookChange::Unchanged => Line::note(format!(
            "the pre-commit hook is already installed ({shown})"
        )),
        HookChange::Replaced => Line::note(format!(
            "replaced the pre-commit hook {shown} (the previous one is kept as {shown}.before-castsync)"
        )),
        HookChange::Kept => Line::warning(format!(
            "warning: kept the pre-commit hook {shown}, which is not castsync's: pass --force to replace it (it is kept beside it), or call `castsync guard --staged` from it; with the pre-commit framework, add the castsync-guard hook to .pre-commit-config.yaml instead"
        )),
    }
}
