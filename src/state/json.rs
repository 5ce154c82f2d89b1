//! The state as one JSON document: the file castsync kept before the state moved into SQLite
//! (read once, to migrate it), what `castsync state export` prints (the same document), and
//! the stub left in the file's place.
//!
//! The stub is a JSON document of version 3: every castsync that read the file looked at its
//! `version` first and refuses one it does not know ("has version 3, but this castsync
//! understands version 2", with the hint to upgrade), so an older castsync pointed at a
//! migrated state stops instead of starting from an empty one and re-setting every key.
//!
//! Both directions stream: the import writes one agent's records at a time into the
//! database, and the export reads one agent's at a time, so neither holds a large state
//! whole in memory.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufReader, Write};
use std::path::Path;

use base64::Engine;
use rusqlite::Connection;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use super::db::{self, Db};
use super::{AppliedFrom, Records, StateError};
use crate::atomic_write::{self, Mode, Replace};

/// The version of the JSON document: what the file held last, and what `state export`
/// prints. Version 1 had no `applied_from`.
pub const STATE_VERSION: u32 = 2;
/// The stub's version: refused by every castsync that kept its state in the file.
pub const STUB_VERSION: u32 = 3;

/// What sits where the state file used to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    Missing,
    /// The stub this build leaves beside its database.
    Stub,
    /// A state file to migrate.
    State {
        version: u32,
    },
}

/// Looks at the file at `path`: its `version` alone, streamed (the file grows with every key
/// of every agent). A version past the stub's is a newer castsync's.
pub fn look(path: &Path) -> Result<Legacy, StateError> {
    let reader = match crate::fsread::open_file(path, crate::fsread::MAX_STATE_FILE) {
        Ok(reader) => reader,
        Err(e) if e.is_not_found() => return Ok(Legacy::Missing),
        Err(e) => return Err(super::read_error(path, e)),
    };
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<serde_json::Value>,
    }
    let corrupt = |detail: String| StateError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let version = serde_json::from_reader::<_, VersionOnly>(BufReader::new(reader))
        .map_err(|e| corrupt(e.to_string()))?
        .version
        .and_then(|v| v.as_u64())
        .ok_or_else(|| corrupt("no numeric `version` field".into()))?;
    match version {
        v if v <= u64::from(STATE_VERSION) => Ok(Legacy::State { version: v as u32 }),
        v if v == u64::from(STUB_VERSION) => Ok(Legacy::Stub),
        v => Err(StateError::TooNew {
            path: path.to_owned(),
            found: u32::try_from(v).unwrap_or(u32::MAX),
        }),
    }
}

/// Writes the stub at `path`, naming the database `db` (0600, atomically).
pub fn write_stub(path: &Path, db: &Path) -> Result<(), StateError> {
    let name = db
        .file_name()
        .map_or_else(|| db.display().to_string(), |n| n.to_string_lossy().into());
    let stub = serde_json::json!({
        "version": STUB_VERSION,
        "moved_to": name,
        "note": format!(
            "castsync keeps this state in the SQLite database {name} beside this file; `castsync state export` prints it as JSON. This file only stops an older castsync from starting from an empty state."
        ),
    });
    let text = format!("{stub:#}\n");
    atomic_write::write(path, text.as_bytes(), Replace::Existing, Mode::Private).map_err(|source| {
        StateError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        }
    })
}

/// Reads the state file at `path` into `conn` (inside the caller's transaction), one agent's
/// records at a time; stores its HMAC key too.
pub fn import(path: &Path, conn: &Connection) -> Result<(), StateError> {
    let reader = crate::fsread::open_file(path, crate::fsread::MAX_STATE_FILE)
        .map_err(|e| super::read_error(path, e))?;
    let import = Import {
        conn,
        failed: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(reader));
    let parsed = FileSeed(&import)
        .deserialize(&mut de)
        .and_then(|key| de.end().map(|()| key));
    let corrupt = |detail: String| StateError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let key = match (parsed, import.failed.into_inner()) {
        (_, Some(source)) => return Err(super::db_error(path, source)),
        (Err(e), None) => return Err(corrupt(e.to_string())),
        (Ok(key), None) => key,
    };
    let key = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .map_err(|e| corrupt(format!("hmac_key: {e}")))?,
    );
    if key.len() < 32 {
        return Err(corrupt("hmac_key is shorter than 32 bytes".into()));
    }
    db::put_hmac_key(conn, &key).map_err(|e| super::db_error(path, e))
}

/// Where an import writes, and the first database error it met (reported as itself, not as
/// a parse error).
struct Import<'c> {
    conn: &'c Connection,
    failed: RefCell<Option<rusqlite::Error>>,
}

impl Import<'_> {
    fn put<E: de::Error>(&self, written: rusqlite::Result<()>) -> Result<(), E> {
        written.map_err(|e| {
            self.failed.borrow_mut().get_or_insert(e);
            E::custom("the database refused a write")
        })
    }
}

const FIELDS: &[&str] = &[
    "version",
    "hmac_key",
    "platforms",
    "redeploy_pending",
    "applied_from",
];

/// The whole document; yields the base64 HMAC key.
struct FileSeed<'a, 'c>(&'a Import<'c>);

impl<'de> DeserializeSeed<'de> for FileSeed<'_, '_> {
    type Value = Zeroizing<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_, '_> {
    type Value = Zeroizing<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a castsync state object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let import = self.0;
        let mut version: Option<u32> = None;
        let mut key: Option<Zeroizing<String>> = None;
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "version" => version = Some(map.next_value()?),
                "hmac_key" => key = Some(Zeroizing::new(map.next_value()?)),
                "platforms" => map.next_value_seed(PerAgent::<KeyRows>::new(import))?,
                "applied_from" => map.next_value_seed(PerAgent::<AppliedRows>::new(import))?,
                "redeploy_pending" => {
                    let pending: BTreeMap<String, BTreeSet<String>> = map.next_value()?;
                    for (platform, agent) in pending
                        .iter()
                        .flat_map(|(p, agents)| agents.iter().map(move |a| (p, a)))
                    {
                        import.put(db::put_redeploy_pending(import.conn, platform, agent))?;
                    }
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        match version {
            Some(v) if v <= STATE_VERSION => {}
            Some(v) => {
                return Err(de::Error::custom(format!("unexpected version {v}")));
            }
            None => return Err(de::Error::missing_field("version")),
        }
        key.ok_or_else(|| de::Error::missing_field("hmac_key"))
    }
}

/// What one agent's entry under a platform holds, and how it is stored.
trait Rows {
    type Value: DeserializeOwned;
    fn put(
        conn: &Connection,
        platform: &str,
        agent: &str,
        value: Self::Value,
    ) -> rusqlite::Result<()>;
}

/// `platforms`: platform → agent → key → record.
struct KeyRows;

impl Rows for KeyRows {
    type Value = Records;
    fn put(
        conn: &Connection,
        platform: &str,
        agent: &str,
        records: Records,
    ) -> rusqlite::Result<()> {
        records
            .iter()
            .try_for_each(|(key, record)| db::put_record(conn, platform, agent, key, record))
    }
}

/// `applied_from`: platform → agent → what it converged from.
struct AppliedRows;

impl Rows for AppliedRows {
    type Value = AppliedFrom;
    fn put(
        conn: &Connection,
        platform: &str,
        agent: &str,
        from: AppliedFrom,
    ) -> rusqlite::Result<()> {
        db::put_applied_from(conn, platform, agent, &from)
    }
}

/// A map of platform → agent → `R::Value`, stored as it is read: outside (`platform: None`)
/// its keys are platforms, inside they are agents.
struct PerAgent<'a, 'c, R> {
    import: &'a Import<'c>,
    platform: Option<String>,
    rows: std::marker::PhantomData<R>,
}

impl<'a, 'c, R> PerAgent<'a, 'c, R> {
    fn new(import: &'a Import<'c>) -> Self {
        PerAgent {
            import,
            platform: None,
            rows: std::marker::PhantomData,
        }
    }
}

impl<'de, R: Rows> DeserializeSeed<'de> for PerAgent<'_, '_, R> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, R: Rows> Visitor<'de> for PerAgent<'_, '_, R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            match &self.platform {
                None => map.next_value_seed(PerAgent::<R> {
                    import: self.import,
                    platform: Some(name),
                    rows: std::marker::PhantomData,
                })?,
                Some(platform) => {
                    let value: R::Value = map.next_value()?;
                    let conn = self.import.conn;
                    self.import.put(R::put(conn, platform, &name, value))?;
                }
            }
        }
        Ok(())
    }
}

/// Writes the state in `db` as the JSON document the state file held (compact, one line),
/// through a buffer that is wiped afterwards (it passes the HMAC key).
pub fn export(db: &Db, hmac_key: &[u8], out: &mut dyn Write) -> std::io::Result<()> {
    let key = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(hmac_key));
    let mut buffered = WipingWriter::new(out);
    let document = Document { db, key: &key };
    // An I/O error (a closed pipe) keeps its kind.
    serde_json::to_writer(&mut buffered, &document).map_err(std::io::Error::from)?;
    buffered.write_all(b"\n")?;
    buffered.flush()
}

struct Document<'a> {
    db: &'a Db,
    key: &'a str,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let db = self.db;
        let failed = |e: rusqlite::Error| S::Error::custom(format!("database: {e}"));
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("version", &STATE_VERSION)?;
        map.serialize_entry("hmac_key", self.key)?;
        map.serialize_entry("platforms", &KeysByPlatform(db))?;
        let pending = db.redeploys().map_err(failed)?;
        if !pending.is_empty() {
            map.serialize_entry("redeploy_pending", &pending)?;
        }
        let applied = db
            .distinct(
                "SELECT DISTINCT platform FROM applied_from ORDER BY platform",
                [],
            )
            .map_err(failed)?;
        if !applied.is_empty() {
            map.serialize_entry("applied_from", &AppliedByPlatform { db, applied })?;
        }
        map.end()
    }
}

/// `platforms`, one agent's records read at a time.
struct KeysByPlatform<'a>(&'a Db);

impl Serialize for KeysByPlatform<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let db = self.0;
        let failed = |e: rusqlite::Error| S::Error::custom(format!("database: {e}"));
        let platforms = db
            .distinct("SELECT DISTINCT platform FROM keys ORDER BY platform", [])
            .map_err(failed)?;
        let mut map = s.serialize_map(Some(platforms.len()))?;
        for platform in &platforms {
            map.serialize_entry(platform, &KeysOf { db, platform })?;
        }
        map.end()
    }
}

struct KeysOf<'a> {
    db: &'a Db,
    platform: &'a str,
}

impl Serialize for KeysOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let failed = |e: rusqlite::Error| S::Error::custom(format!("database: {e}"));
        let agents = self
            .db
            .distinct(
                "SELECT DISTINCT agent FROM keys WHERE platform = ?1 ORDER BY agent",
                [self.platform],
            )
            .map_err(failed)?;
        let mut map = s.serialize_map(Some(agents.len()))?;
        for agent in &agents {
            let records = self.db.records(self.platform, agent).map_err(failed)?;
            map.serialize_entry(agent, &records)?;
        }
        map.end()
    }
}

/// `applied_from`, one platform's records at a time.
struct AppliedByPlatform<'a> {
    db: &'a Db,
    applied: Vec<String>,
}

impl Serialize for AppliedByPlatform<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let failed = |e: rusqlite::Error| S::Error::custom(format!("database: {e}"));
        let mut map = s.serialize_map(Some(self.applied.len()))?;
        for platform in &self.applied {
            let records = self.db.applied_from_all(platform).map_err(failed)?;
            map.serialize_entry(platform, &records)?;
        }
        map.end()
    }
}

/// A write buffer of fixed capacity (it never reallocates, so it leaves no stray copy of
/// what passed through it) that is zeroed when dropped.
struct WipingWriter<'a> {
    inner: &'a mut dyn Write,
    buf: Zeroizing<Vec<u8>>,
}

impl<'a> WipingWriter<'a> {
    const CAPACITY: usize = 64 * 1024;

    fn new(inner: &'a mut dyn Write) -> Self {
        WipingWriter {
            inner,
            buf: Zeroizing::new(Vec::with_capacity(Self::CAPACITY)),
        }
    }

    fn drain(&mut self) -> std::io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for WipingWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > Self::CAPACITY {
            self.drain()?;
        }
        if data.len() >= Self::CAPACITY {
            self.inner.write_all(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}
