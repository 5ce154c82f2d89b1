//! The state's tables in SQLite: one row per platform, agent and key written; one per agent's
//! converged inputs; one per owed redeploy; the HMAC key in `meta`.
//!
//! Writes go into one transaction, begun by the first write after a commit and committed by
//! [`Db::commit`] (`State::save`, once per agent): an agent's save costs the rows it changed,
//! and a process killed at any moment leaves the last commit, whole. Reads on the same
//! connection see the writes not yet committed, as the in-memory state did before.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, params};

use super::{AppliedFrom, KeyRecord, Records};
use crate::sqlite::{self, Layout};

/// The state's layout, marked as a castsync state (`PRAGMA application_id`, "CSST"). Version 1
/// is the first layout in SQLite (the JSON file before it had versions 1 and 2).
pub const LAYOUT: Layout = Layout {
    application_id: 0x4353_5354,
    version: 1,
    schema: SCHEMA,
};

const SCHEMA: &str = "
    CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value ANY NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE keys (
        platform TEXT NOT NULL,
        agent TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        observed_at TEXT,
        revision TEXT,
        applied_at TEXT NOT NULL,
        PRIMARY KEY (platform, agent, key)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE applied_from (
        platform TEXT NOT NULL,
        agent TEXT NOT NULL,
        manifest TEXT NOT NULL,
        schema TEXT NOT NULL,
        settings TEXT NOT NULL,
        groups TEXT NOT NULL,
        revision TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (platform, agent)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE redeploy_pending (
        platform TEXT NOT NULL,
        agent TEXT NOT NULL,
        PRIMARY KEY (platform, agent)
    ) STRICT, WITHOUT ROWID;
";

/// An open state database.
pub struct Db {
    conn: Connection,
    /// A write transaction is open (begun by the first write since the last commit).
    writing: bool,
    /// The first write that failed since the last commit: the commit is refused and the
    /// transaction rolled back.
    failed: Option<rusqlite::Error>,
}

/// How to open a database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write; the layout is created in an empty file.
    Write,
    /// Read only: nothing is created or changed.
    Read,
}

impl Db {
    /// Opens the database file at `path` (created beforehand by the caller for
    /// [`Access::Write`]). Returns the database and whether its layout was created now.
    pub fn open(path: &Path, access: Access) -> Result<(Db, bool), sqlite::LayoutError> {
        let flags = match access {
            Access::Write => OpenFlags::SQLITE_OPEN_READ_WRITE,
            Access::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        let mut conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let created = match access {
            Access::Write => {
                sqlite::configure(&conn)?;
                sqlite::check_layout(&mut conn, &LAYOUT, |_| Ok(()))?
            }
            Access::Read => {
                conn.busy_timeout(sqlite::BUSY_TIMEOUT)?;
                if check_read_only(&conn)? {
                    return Ok((Db::in_memory()?, true));
                }
                false
            }
        };
        Ok((Db::with(conn), created))
    }

    /// A database in memory with the state's layout (a read-only look at a state that has
    /// no database yet).
    pub fn in_memory() -> rusqlite::Result<Db> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db::with(conn))
    }

    fn with(conn: Connection) -> Db {
        conn.set_prepared_statement_cache_capacity(32);
        Db {
            conn,
            writing: false,
            failed: None,
        }
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Closes the connection (the last one checkpoints the WAL into the file).
    pub fn close(self) -> rusqlite::Result<()> {
        self.conn.close().map_err(|(_, e)| e)
    }

    /// Runs one write in the open transaction (beginning one if needed). A failure is kept
    /// for [`Db::commit`] to report, and every later write of the transaction is skipped.
    pub fn write(&mut self, op: impl FnOnce(&Connection) -> rusqlite::Result<()>) {
        if self.failed.is_some() {
            return;
        }
        let result = if self.writing {
            op(&self.conn)
        } else {
            // IMMEDIATE takes the write lock up front: a deferred transaction that later
            // needs it could fail with "busy" instead of waiting.
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map(|()| self.writing = true)
                .and_then(|()| op(&self.conn))
        };
        if let Err(e) = result {
            self.failed = Some(e);
        }
    }

    /// Frees the connection's page cache and other memory SQLite can give back
    /// (`PRAGMA shrink_memory`); a failure only means the memory stays in use.
    pub fn release_memory(&self) {
        let _ = self.conn.execute_batch("PRAGMA shrink_memory");
    }

    /// Commits the open transaction, if any. After a failed write, rolls it back and returns
    /// that failure: nothing of it is recorded (the safe direction: what it would have
    /// recorded is written again, as unverified, by the next run). A commit that fails keeps
    /// the transaction open when SQLite does, so the next save tries again.
    pub fn commit(&mut self) -> rusqlite::Result<()> {
        if let Some(failed) = self.failed.take() {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            self.writing = false;
            return Err(failed);
        }
        if !self.writing {
            return Ok(());
        }
        let committed = self.conn.execute_batch("COMMIT");
        self.writing = !self.conn.is_autocommit();
        committed
    }

    /// The HMAC key, if one was stored.
    pub fn hmac_key(&self) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = 'hmac_key'", [], |r| {
                r.get(0)
            })
            .optional()
    }

    /// One agent's key records, in key order.
    pub fn records(&self, platform: &str, agent: &str) -> rusqlite::Result<Records> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, fingerprint, observed_at, revision, applied_at FROM keys
             WHERE platform = ?1 AND agent = ?2 ORDER BY key",
        )?;
        let rows = stmt.query_map([platform, agent], |r| {
            let record = KeyRecord {
                fingerprint: r.get(1)?,
                observed_at: r.get(2)?,
                revision: r.get(3)?,
                applied_at: r.get(4)?,
            };
            Ok((r.get(0)?, record))
        })?;
        rows.collect()
    }

    pub fn redeploy_pending(&self, platform: &str, agent: &str) -> rusqlite::Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM redeploy_pending WHERE platform = ?1 AND agent = ?2")?
            .exists([platform, agent])
    }

    pub fn applied_from(
        &self,
        platform: &str,
        agent: &str,
    ) -> rusqlite::Result<Option<AppliedFrom>> {
        self.conn
            .prepare_cached(
                "SELECT manifest, schema, settings, groups, revision, at FROM applied_from
                 WHERE platform = ?1 AND agent = ?2",
            )?
            .query_row([platform, agent], applied_from_row)
            .optional()
    }

    /// Every agent's converged inputs on `platform`.
    pub fn applied_from_all(
        &self,
        platform: &str,
    ) -> rusqlite::Result<BTreeMap<String, AppliedFrom>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT manifest, schema, settings, groups, revision, at, agent FROM applied_from
             WHERE platform = ?1 ORDER BY agent",
        )?;
        let rows = stmt.query_map([platform], |r| Ok((r.get(6)?, applied_from_row(r)?)))?;
        rows.collect()
    }

    /// Whether any agent of `platform` has its converged inputs recorded.
    pub fn has_applied_from(&self, platform: &str) -> rusqlite::Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM applied_from WHERE platform = ?1 LIMIT 1")?
            .exists([platform])
    }

    /// Whether any key of `platform` is recorded.
    pub fn has_keys(&self, platform: &str) -> rusqlite::Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM keys WHERE platform = ?1 LIMIT 1")?
            .exists([platform])
    }

    /// Whether anything is recorded for a platform other than `platform` (each test is a
    /// seek on the primary key, not a scan).
    pub fn has_other_platforms(&self, platform: &str) -> rusqlite::Result<bool> {
        let mut found = false;
        for sql in [
            "SELECT 1 FROM keys WHERE platform < ?1 LIMIT 1",
            "SELECT 1 FROM keys WHERE platform > ?1 LIMIT 1",
            "SELECT 1 FROM applied_from WHERE platform < ?1 LIMIT 1",
            "SELECT 1 FROM applied_from WHERE platform > ?1 LIMIT 1",
        ] {
            found = found || self.conn.prepare_cached(sql)?.exists([platform])?;
        }
        Ok(found)
    }

    /// The distinct values of `column` (a platform, or the agents of one platform) in
    /// `table`, in order, for `export`.
    pub fn distinct(&self, sql: &str, params: impl Params) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |r| r.get(0))?;
        rows.collect()
    }

    /// Every owed redeploy, platform → agents.
    pub fn redeploys(&self) -> rusqlite::Result<BTreeMap<String, BTreeSet<String>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT platform, agent FROM redeploy_pending")?;
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            out.entry(row.get(0)?).or_default().insert(row.get(1)?);
        }
        Ok(out)
    }
}

/// Read only, a database must already be the state's layout; true for an empty one (created,
/// then the process died before its layout was written), which reads as an empty state.
fn check_read_only(conn: &Connection) -> Result<bool, sqlite::LayoutError> {
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    match (app, version) {
        (a, v) if a == LAYOUT.application_id && v == LAYOUT.version => Ok(false),
        (a, v) if a == LAYOUT.application_id && v > LAYOUT.version => {
            Err(sqlite::LayoutError::Newer {
                found: v,
                known: LAYOUT.version,
            })
        }
        (a, v) if a == LAYOUT.application_id => Err(sqlite::LayoutError::Unsupported { found: v }),
        (0, 0) if tables == 0 => Ok(true),
        _ => Err(sqlite::LayoutError::Foreign),
    }
}

fn applied_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppliedFrom> {
    // Most agents use no shared group: `{}` needs no parser.
    let groups = match r.get_ref(3)?.as_str()? {
        "{}" => BTreeMap::new(),
        text => serde_json::from_str(text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
        })?,
    };
    Ok(AppliedFrom {
        manifest: r.get(0)?,
        schema: r.get(1)?,
        settings: r.get(2)?,
        groups,
        revision: r.get(4)?,
        at: r.get(5)?,
    })
}

/// Stores the HMAC key (a new database, or one migrated from a file).
pub fn put_hmac_key(conn: &Connection, key: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('hmac_key', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [key],
    )
    .map(drop)
}

pub fn put_record(
    conn: &Connection,
    platform: &str,
    agent: &str,
    key: &str,
    record: &KeyRecord,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO keys
         (platform, agent, key, fingerprint, observed_at, revision, applied_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        platform,
        agent,
        key,
        record.fingerprint,
        record.observed_at,
        record.revision,
        record.applied_at
    ])
    .map(drop)
}

pub fn delete_record(
    conn: &Connection,
    platform: &str,
    agent: &str,
    key: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM keys WHERE platform = ?1 AND agent = ?2 AND key = ?3")?
        .execute([platform, agent, key])
        .map(drop)
}

pub fn put_applied_from(
    conn: &Connection,
    platform: &str,
    agent: &str,
    from: &AppliedFrom,
) -> rusqlite::Result<()> {
    let groups = serde_json::to_string(&from.groups)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO applied_from
         (platform, agent, manifest, schema, settings, groups, revision, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        platform,
        agent,
        from.manifest,
        from.schema,
        from.settings,
        groups,
        from.revision,
        from.at
    ])
    .map(drop)
}

pub fn delete_applied_from(conn: &Connection, platform: &str, agent: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM applied_from WHERE platform = ?1 AND agent = ?2")?
        .execute([platform, agent])
        .map(drop)
}

pub fn put_redeploy_pending(
    conn: &Connection,
    platform: &str,
    agent: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO redeploy_pending (platform, agent) VALUES (?1, ?2)")?
        .execute([platform, agent])
        .map(drop)
}

pub fn delete_redeploy_pending(
    conn: &Connection,
    platform: &str,
    agent: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM redeploy_pending WHERE platform = ?1 AND agent = ?2")?
        .execute([platform, agent])
        .map(drop)
}
