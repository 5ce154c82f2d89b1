//! The audit's judgement, a pure function of each manifest's versions (newest first, each
//! with the keyed fingerprints of its values and the recipients it was encrypted to), the
//! rotation policy, the recipients' names and the time. No git, no decryption, no clock.
//!
//! A key's value last changed at the oldest version of the run of versions, from the newest
//! back, whose fingerprint equals the current one. Whoever any version of that run was
//! encrypted to and the current one is not, could read the value and still can (git keeps
//! every ciphertext): that value is exposed to them until it changes.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{
    Audit, CommitRef, ExposedValue, Exposure, FORMAT_VERSION, KeyReport, Reader, SourceKind,
    SourceReport, Status, Summary,
};
use crate::config::{Names, Period};

/// Keys whose period runs out within this many days are "due soon".
pub const DUE_SOON_DAYS: i64 = 14;
const DAY: i64 = 24 * 60 * 60;

/// One manifest's history.
pub struct Trail<'a> {
    pub kind: SourceKind,
    pub name: String,
    /// The environment of an overlay; `None` for the manifest every environment shares.
    pub environment: Option<String>,
    pub file: String,
    /// Newest first; the first is the audited version.
    pub versions: Vec<Seen<'a>>,
    /// Whether the oldest version is where the file began (false: a shallow clone's end).
    pub complete: bool,
}

/// One version of a manifest, as far as it is known.
pub struct Seen<'a> {
    pub commit: CommitRef,
    /// The recipients it was encrypted to (canonical keys), and whether the file recorded
    /// them itself (else they are the config's at that commit); `None` when unknown.
    pub readers: Option<(Vec<String>, bool)>,
    /// Key → keyed fingerprint of its value, or why the version could not be read.
    pub content: Result<&'a BTreeMap<String, u64>, &'a str>,
}

/// The rotation period of a key (`kind`, `name`, `key`), and where it was set.
pub type PolicyOf<'a> = dyn Fn(SourceKind, &str, &str) -> Option<(Period, String)> + 'a;

/// What the judgement needs besides the trails.
pub struct Context<'a> {
    pub now: i64,
    pub revision: CommitRef,
    pub names: &'a Names,
    pub policy: &'a PolicyOf<'a>,
}

/// The report.
pub fn analyze(trails: &[Trail<'_>], ctx: &Context<'_>, mut notes: Vec<String>) -> Audit {
    let mut sources = Vec::with_capacity(trails.len());
    let mut exposed: BTreeMap<String, Vec<ExposedValue>> = BTreeMap::new();
    let mut inexact = 0usize;
    for trail in trails {
        let (report, values) = judge(trail, ctx);
        inexact += report.keys.iter().filter(|k| !k.exact).count();
        for (key, value) in values {
            exposed.entry(key).or_default().push(value);
        }
        sources.push(report);
    }
    sources
        .sort_by(|a, b| (a.kind, &a.name, &a.environment).cmp(&(b.kind, &b.name, &b.environment)));
    if inexact > 0 {
        notes.push(format!(
            "{inexact} value(s) may be older than their date says: an older version of their manifest could not be read with your identities (or the clone is shallow), so the date is the oldest version known to hold the value"
        ));
    }
    let exposures = exposures(exposed, ctx.names);
    let summary = summarize(&sources, &exposures);
    Audit {
        format_version: FORMAT_VERSION,
        revision: ctx.revision.clone(),
        generated_at: super::model::rfc3339(ctx.now),
        summary,
        sources,
        exposures,
        notes,
    }
}

/// One manifest's report, and the values it exposes (former reader's key → value).
fn judge(trail: &Trail<'_>, ctx: &Context<'_>) -> (SourceReport, Vec<(String, ExposedValue)>) {
    let mut report = SourceReport {
        kind: trail.kind,
        name: trail.name.clone(),
        environment: trail.environment.clone(),
        file: trail.file.clone(),
        readers: Vec::new(),
        readers_recorded: false,
        error: None,
        keys: Vec::new(),
    };
    let Some(current) = trail.versions.first() else {
        report.error = Some("no version of the file in the history".to_owned());
        return (report, Vec::new());
    };
    let now_readers: BTreeSet<&str> = match &current.readers {
        Some((keys, recorded)) => {
            report.readers = keys.iter().map(|k| reader(ctx.names, k)).collect();
            report.readers.sort();
            report.readers_recorded = *recorded;
            keys.iter().map(String::as_str).collect()
        }
        None => BTreeSet::new(),
    };
    let keys = match current.content {
        Ok(keys) => keys,
        Err(why) => {
            report.error = Some(why.to_owned());
            return (report, Vec::new());
        }
    };
    let former = former_readers(trail, &now_readers);
    let mut values = Vec::new();
    for (key, fingerprint) in keys {
        let (since, exact) = unchanged_since(trail, key, *fingerprint);
        let changed = &trail.versions[since].commit;
        report
            .keys
            .push(key_report(trail, ctx, key, changed, exact));
        for (reader_key, newest) in &former {
            if *newest <= since {
                let lost = &trail.versions[*newest - 1].commit;
                values.push((
                    reader_key.clone(),
                    ExposedValue {
                        kind: trail.kind,
                        name: trail.name.clone(),
                        environment: trail.environment.clone(),
                        key: key.clone(),
                        lost_access: lost.clone(),
                        last_changed: changed.clone(),
                    },
                ));
            }
        }
    }
    (report, values)
}

/// The index of the oldest version of the run, from the newest, holding `fingerprint` for
/// `key`, and whether that is where the value began (not an unreadable version or the end
/// of a shallow clone).
fn unchanged_since(trail: &Trail<'_>, key: &str, fingerprint: u64) -> (usize, bool) {
    let mut since = 0;
    loop {
        let Some(older) = trail.versions.get(since + 1) else {
            return (since, trail.complete);
        };
        match older.content {
            Ok(keys) if keys.get(key) == Some(&fingerprint) => since += 1,
            Ok(_) => return (since, true),
            Err(_) => return (since, false),
        }
    }
}

/// Each recipient of an older version who is not a reader now, with the index of the newest
/// version encrypted to them.
fn former_readers(trail: &Trail<'_>, now: &BTreeSet<&str>) -> BTreeMap<String, usize> {
    let mut newest = BTreeMap::new();
    for (i, version) in trail.versions.iter().enumerate().skip(1) {
        let Some((keys, _)) = &version.readers else {
            continue;
        };
        for key in keys {
            if !now.contains(key.as_str()) {
                newest.entry(key.clone()).or_insert(i);
            }
        }
    }
    newest
}

fn key_report(
    trail: &Trail<'_>,
    ctx: &Context<'_>,
    key: &str,
    changed: &CommitRef,
    exact: bool,
) -> KeyReport {
    let age = ctx.now - changed.time;
    let policy = (ctx.policy)(trail.kind, &trail.name, key);
    let status = match policy {
        None => Status::NoPolicy,
        Some((period, _)) => {
            let period = period.as_secs() as i64;
            if age > period {
                Status::Overdue
            } else if age > period - DUE_SOON_DAYS * DAY {
                Status::DueSoon
            } else {
                Status::Ok
            }
        }
    };
    KeyReport {
        key: key.to_owned(),
        last_changed: changed.clone(),
        exact,
        age_days: age.max(0) / DAY,
        rotate_after: policy.as_ref().map(|(p, _)| p.to_string()),
        policy_from: policy.as_ref().map(|(_, from)| from.clone()),
        status,
        due: policy.map(|(p, _)| super::model::rfc3339(changed.time + p.as_secs() as i64)),
    }
}

fn reader(names: &Names, key: &str) -> Reader {
    Reader {
        label: names.label(key),
        name: names.name(key).map(str::to_owned),
        key: key.to_owned(),
    }
}

fn exposures(by_reader: BTreeMap<String, Vec<ExposedValue>>, names: &Names) -> Vec<Exposure> {
    let mut out: Vec<Exposure> = by_reader
        .into_iter()
        .filter_map(|(key, values)| {
            let lost_access = values
                .iter()
                .map(|v| &v.lost_access)
                .max_by_key(|c| c.time)?;
            Some(Exposure {
                reader: reader(names, &key),
                lost_access: lost_access.clone(),
                values,
            })
        })
        .collect();
    out.sort_by(|a, b| a.reader.cmp(&b.reader));
    out
}

fn summarize(sources: &[SourceReport], exposures: &[Exposure]) -> Summary {
    let keys = sources.iter().flat_map(|s| &s.keys);
    let count = |status: Status| {
        sources
            .iter()
            .flat_map(|s| &s.keys)
            .filter(|k| k.status == status)
            .count()
    };
    let exposed: BTreeSet<(SourceKind, &str, Option<&str>, &str)> = exposures
        .iter()
        .flat_map(|e| &e.values)
        .map(|v| {
            (
                v.kind,
                v.name.as_str(),
                v.environment.as_deref(),
                v.key.as_str(),
            )
        })
        .collect();
    Summary {
        agents: sources
            .iter()
            .filter(|s| s.kind == SourceKind::Agent)
            .count(),
        groups: sources
            .iter()
            .filter(|s| s.kind == SourceKind::Group)
            .count(),
        keys: keys.count(),
        overdue: count(Status::Overdue),
        due_soon: count(Status::DueSoon),
        without_policy: count(Status::NoPolicy),
        exposed_values: exposed.len(),
        former_readers: exposures.len(),
        unreadable: sources.iter().filter(|s| s.error.is_some()).count(),
    }
}

#[cfg(test)]
mod tests;
