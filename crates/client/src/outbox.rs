//! The device's offline outbox: what was recorded and not yet settled by the server,
//! the photos it needs, the session and the pull cursor, in one SQLite file (WAL).
//!
//! Every id made here is a UUIDv7: time-ordered keys keep SQLite's b-trees appending
//! (random v4 text keys made batched inserts ~5x slower when measured). A mutation's
//! JSON is written once, at record time, and sent byte for byte on every push, so the
//! server can tell a replay from a conflict.

use crate::client::{Session, TokenStore};
use crate::error::{ClientError, Result};
use baithak_api_types::{
    Change, FeedbackData, FieldError, MeetingData, Mutation, MutationOp, MutationResult,
    MutationStatus,
};
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data TEXT,
    refresh_pending INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mutations (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'rejected')),
    status TEXT,
    code TEXT,
    message TEXT,
    errors TEXT,
    version INTEGER,
    server_entity_id TEXT,
    push_attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    settled_at TEXT
);
CREATE INDEX IF NOT EXISTS mutations_state ON mutations (state);
CREATE INDEX IF NOT EXISTS mutations_entity ON mutations (entity_id);
CREATE TABLE IF NOT EXISTS photos (
    sha256 TEXT PRIMARY KEY NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'uploaded', 'failed')),
    upload_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    code TEXT,
    message TEXT,
    uploaded_at TEXT
);
CREATE TABLE IF NOT EXISTS mutation_photos (
    mutation_id TEXT NOT NULL REFERENCES mutations (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (mutation_id, sha256)
);
CREATE INDEX IF NOT EXISTS mutation_photos_sha ON mutation_photos (sha256);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    received_at TEXT NOT NULL
);
";

/// A photo file to attach, hashed once when recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoFile {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

impl PhotoFile {
    /// Reads and hashes the file (blocking).
    pub fn from_path(path: impl Into<PathBuf>) -> std::io::Result<PhotoFile> {
        let path = path.into();
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(PhotoFile {
            path,
            sha256: hex::encode(hasher.finalize()),
            bytes,
        })
    }
}

/// The ids of a recorded mutation and the entity it creates or edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub mutation_id: Uuid,
    pub entity_id: Uuid,
}

/// Where a mutation stands.
#[derive(Debug, Clone, PartialEq)]
pub enum MutationState {
    /// Not yet settled by the server.
    Pending { push_attempts: u32 },
    /// Applied (or found applied before) by the server.
    Done {
        entity_id: Option<Uuid>,
        version: Option<i64>,
    },
    /// Refused for good; kept so the user can see why.
    Rejected { code: String, message: String },
}

/// A refused mutation, for the user to see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedMutation {
    pub id: Uuid,
    pub kind: String,
    pub entity_id: Uuid,
    pub code: String,
    pub message: String,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub done: u64,
    pub rejected: u64,
    pub photos_pending: u64,
    pub photos_uploaded: u64,
    pub photos_failed: u64,
}

/// A photo still to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPhoto {
    pub sha256: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub upload_id: Option<Uuid>,
    /// Earlier tries; after one, the photo may already be on the server.
    pub attempts: u32,
}

/// A mutation ready to push: its exact JSON and its photos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMutation {
    pub id: Uuid,
    pub kind: String,
    pub entity_id: Uuid,
    pub body: String,
    pub photos: Vec<String>,
}

/// What a push's results changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    pub done: Vec<Uuid>,
    pub rejected: Vec<Uuid>,
    /// Still pending: photos to upload first.
    pub missing_media: Vec<Uuid>,
}

/// A handle on the outbox file; clones share one connection. Every method blocks
/// briefly: async code calls them through `spawn_blocking` (see [`crate::Device`]).
#[derive(Clone)]
pub struct Outbox {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).finish()
    }
}

fn now() -> String {
    Utc::now().to_rfc3339()
}

fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| ClientError::Invalid(format!("outbox holds a bad id {s:?}")))
}

fn kind_of(op: &MutationOp) -> (&'static str, Uuid) {
    match op {
        MutationOp::MeetingUpsert(m) => ("meeting.upsert", m.id),
        MutationOp::FeedbackCreate(f) => ("feedback.create", f.id),
    }
}

impl Outbox {
    /// Opens (creating when absent) the outbox at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(&path)?;
        // WAL: readers never block the writer. FULL: a recorded meeting survives a
        // power cut, which is the point of an outbox (bookkeeping opts out, see
        // `unsynced`).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(ClientError::Invalid(format!(
                "outbox {} was written by a newer client (schema {version})",
                path.display()
            )));
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?1)",
            params![Uuid::now_v7().to_string()],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO session (id, data, refresh_pending) VALUES (1, NULL, 0)",
            [],
        )?;
        Ok(Outbox {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| ClientError::Invalid("outbox lock poisoned".into()))
    }

    /// The connection for a write that must survive a power cut once it returns:
    /// what the user recorded, a settled result, the session. Each such write sets
    /// FULL itself, so no earlier unsynced write can leave it otherwise.
    fn durable(&self) -> Result<MutexGuard<'_, Connection>> {
        let conn = self.conn()?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(conn)
    }

    /// Runs bookkeeping whose commit need not wait for the disk: an upload
    /// attempt, a resumable upload's id, "the server has this photo", a pulled page.
    /// A power cut can lose only such commits made since the last synced one (in
    /// WAL mode a synced commit makes every frame before it durable too), and losing
    /// them only means sending or fetching again what the server deduplicates. On a
    /// phone that is two fewer flash syncs per photo.
    fn unsynced<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let out = f(&mut conn);
        let restored = conn.pragma_update(None, "synchronous", "FULL");
        let out = out?;
        restored?;
        Ok(out)
    }

    /// This installation's id, made once.
    pub fn device_id(&self) -> Result<String> {
        Ok(self
            .conn()?
            .query_row("SELECT value FROM meta WHERE key = 'device_id'", [], |r| {
                r.get(0)
            })?)
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()?
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    // ---- recording ------------------------------------------------------------------------

    /// Queues a meeting with its photo files. A nil `data.id` gets a new UUIDv7 (an
    /// existing id makes this an edit); the photos' hashes are appended to `data.photos`.
    pub fn record_meeting(&self, mut data: MeetingData, photos: &[PhotoFile]) -> Result<Recorded> {
        if data.id.is_nil() {
            data.id = Uuid::now_v7();
        }
        for p in photos {
            if !data.photos.contains(&p.sha256) {
                data.photos.push(p.sha256.clone());
            }
        }
        self.record(MutationOp::MeetingUpsert(data), photos)
    }

    /// Queues a feedback record; a nil `data.id` gets a new UUIDv7.
    pub fn record_feedback(&self, mut data: FeedbackData) -> Result<Recorded> {
        if data.id.is_nil() {
            data.id = Uuid::now_v7();
        }
        self.record(MutationOp::FeedbackCreate(data), &[])
    }

    fn record(&self, op: MutationOp, photos: &[PhotoFile]) -> Result<Recorded> {
        let mutation = Mutation {
            id: Uuid::now_v7(),
            op,
        };
        let (kind, entity_id) = kind_of(&mutation.op);
        let shas: Vec<String> = match &mutation.op {
            MutationOp::MeetingUpsert(m) => m.photos.clone(),
            MutationOp::FeedbackCreate(_) => Vec::new(),
        };
        let body = serde_json::to_string(&mutation)
            .map_err(|e| ClientError::Invalid(format!("cannot serialise the mutation: {e}")))?;
        let mut conn = self.durable()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO mutations (id, kind, entity_id, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![mutation.id.to_string(), kind, entity_id.to_string(), body, now()],
        )?;
        for p in photos {
            tx.execute(
                "INSERT INTO photos (sha256, path, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sha256) DO UPDATE SET path = excluded.path
                 WHERE photos.state = 'failed' AND photos.code = 'photo_file_missing'",
                params![
                    p.sha256,
                    p.path.to_string_lossy(),
                    i64::try_from(p.bytes).unwrap_or(i64::MAX)
                ],
            )?;
        }
        for sha in &shas {
            tx.execute(
                "INSERT OR IGNORE INTO mutation_photos (mutation_id, sha256) VALUES (?1, ?2)",
                params![mutation.id.to_string(), sha],
            )?;
        }
        tx.commit()?;
        Ok(Recorded {
            mutation_id: mutation.id,
            entity_id,
        })
    }

    // ---- what to send ---------------------------------------------------------------------

    /// Photos not yet confirmed on the server that a pending mutation needs, oldest first.
    pub fn photos_to_upload(&self) -> Result<Vec<PendingPhoto>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT p.sha256, p.path, p.bytes, p.upload_id, p.attempts FROM photos p
             WHERE p.state = 'pending' AND EXISTS (
                SELECT 1 FROM mutation_photos mp JOIN mutations m ON m.id = mp.mutation_id
                WHERE mp.sha256 = p.sha256 AND m.state = 'pending')
             ORDER BY p.rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sha256, path, bytes, upload_id, attempts) = row?;
            out.push(PendingPhoto {
                sha256,
                path: PathBuf::from(path),
                bytes: u64::try_from(bytes).unwrap_or(0),
                upload_id: upload_id.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }

    /// Up to `limit` pending mutations, in the order they were recorded, whose photos
    /// are all confirmed (a hash this device never had is left to the server to judge).
    pub fn pushable(&self, limit: usize) -> Result<Vec<PendingMutation>> {
        self.mutations_where(
            "m.state = 'pending' AND NOT EXISTS (
                SELECT 1 FROM mutation_photos mp JOIN photos p ON p.sha256 = mp.sha256
                WHERE mp.mutation_id = m.id AND p.state <> 'uploaded')",
            limit,
            true,
        )
    }

    /// Up to `limit` pending mutations in the order they were recorded, whether or not
    /// their photos are uploaded yet.
    pub fn pending(&self, limit: usize) -> Result<Vec<PendingMutation>> {
        self.mutations_where("m.state = 'pending'", limit, true)
    }

    /// Up to `limit` mutations matching `condition` (SQL over `mutations m`), in
    /// recorded order; their photo hashes only `with_photos`.
    fn mutations_where(
        &self,
        condition: &str,
        limit: usize,
        with_photos: bool,
    ) -> Result<Vec<PendingMutation>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT m.id, m.kind, m.entity_id, m.body FROM mutations m
             WHERE {condition} ORDER BY m.rowid LIMIT ?1"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, entity_id, body) = row?;
            out.push(PendingMutation {
                id: parse_uuid(&id)?,
                kind,
                entity_id: parse_uuid(&entity_id)?,
                body,
                photos: Vec::new(),
            });
        }
        drop(stmt);
        if !with_photos {
            return Ok(out);
        }
        let mut photos = conn
            .prepare("SELECT sha256 FROM mutation_photos WHERE mutation_id = ?1 ORDER BY rowid")?;
        for m in &mut out {
            m.photos = photos
                .query_map([m.id.to_string()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(out)
    }

    // ---- photo outcomes -------------------------------------------------------------------

    /// Counts a try at uploading `sha256` (before it is made).
    pub fn note_photo_attempt(&self, sha256: &str) -> Result<()> {
        self.unsynced(|c| {
            c.execute(
                "UPDATE photos SET attempts = attempts + 1 WHERE sha256 = ?1",
                [sha256],
            )?;
            Ok(())
        })
    }

    /// Remembers the resumable upload carrying `sha256`, to resume it after a restart.
    pub fn set_photo_upload_id(&self, sha256: &str, upload_id: Option<Uuid>) -> Result<()> {
        self.unsynced(|c| {
            c.execute(
                "UPDATE photos SET upload_id = ?2 WHERE sha256 = ?1",
                params![sha256, upload_id.map(|u| u.to_string())],
            )?;
            Ok(())
        })
    }

    pub fn mark_photo_uploaded(&self, sha256: &str) -> Result<()> {
        self.unsynced(|c| {
            c.execute(
                "UPDATE photos SET state = 'uploaded', upload_id = NULL, code = NULL,
                    message = NULL, uploaded_at = ?2 WHERE sha256 = ?1",
                params![sha256, now()],
            )?;
            Ok(())
        })
    }

    /// The photo can never be sent (the server refused it, or the file is gone or
    /// changed): it and every pending mutation that needs it are rejected with `code`.
    pub fn fail_photo(&self, sha256: &str, code: &str, message: &str) -> Result<u64> {
        let mut conn = self.durable()?;
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE photos SET state = 'failed', code = ?2, message = ?3 WHERE sha256 = ?1",
            params![sha256, code, message],
        )?;
        let n = tx.execute(
            "UPDATE mutations SET state = 'rejected', status = 'rejected', code = ?2, message = ?3,
                settled_at = ?4
             WHERE state = 'pending' AND id IN (
                SELECT mutation_id FROM mutation_photos WHERE sha256 = ?1)",
            params![sha256, code, format!("photo {sha256}: {message}"), now()],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    // ---- push results ---------------------------------------------------------------------

    /// Settles the mutations `sent` (in the order pushed) by the server's `results`.
    pub fn apply_results(&self, sent: &[Uuid], results: &[MutationResult]) -> Result<Settled> {
        let mut conn = self.durable()?;
        let tx = conn.transaction()?;
        let sent_set: HashSet<Uuid> = sent.iter().copied().collect();
        let mut settled = Settled::default();
        for (i, r) in results.iter().enumerate() {
            // A nil id means the server could not read the mutation's id.
            let id = if r.id.is_nil() {
                match sent.get(i) {
                    Some(id) => *id,
                    None => continue,
                }
            } else {
                r.id
            };
            if !sent_set.contains(&id) {
                continue;
            }
            apply_one(&tx, id, r, &mut settled)?;
        }
        tx.commit()?;
        Ok(settled)
    }

    // ---- pull -----------------------------------------------------------------------------

    /// The cursor after the last pulled change.
    pub fn cursor(&self) -> Result<Option<String>> {
        self.meta("pull_cursor")
    }

    /// Stores a page of pulled changes and its cursor together.
    pub fn save_pull(&self, changes: &[Change], cursor: &str) -> Result<()> {
        self.unsynced(|conn| {
            let tx = conn.transaction()?;
            let at = now();
            for c in changes {
                tx.execute(
                    "INSERT OR REPLACE INTO changes (seq, kind, data, received_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![c.seq, c.kind, c.data.to_string(), at],
                )?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('pull_cursor', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [cursor],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Pulled changes after `after_seq`, oldest first.
    pub fn changes(&self, after_seq: i64, limit: usize) -> Result<Vec<Change>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT seq, kind, data FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after_seq, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, data) = row?;
            out.push(Change {
                seq,
                kind,
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }

    // ---- looking ----------------------------------------------------------------------------

    pub fn counts(&self) -> Result<OutboxCounts> {
        let conn = self.conn()?;
        let mut c = OutboxCounts::default();
        let mut stmt = conn.prepare("SELECT state, count(*) FROM mutations GROUP BY state")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (state, n) = row?;
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "pending" => c.pending = n,
                "done" => c.done = n,
                _ => c.rejected = n,
            }
        }
        let mut stmt = conn.prepare("SELECT state, count(*) FROM photos GROUP BY state")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (state, n) = row?;
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "pending" => c.photos_pending = n,
                "uploaded" => c.photos_uploaded = n,
                _ => c.photos_failed = n,
            }
        }
        Ok(c)
    }

    pub fn mutation_state(&self, id: Uuid) -> Result<Option<MutationState>> {
        let conn = self.conn()?;
        let row = conn
            .query_row(
                "SELECT state, push_attempts, code, message, version, server_entity_id
                 FROM mutations WHERE id = ?1",
                [id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(
            |(state, attempts, code, message, version, entity)| match state.as_str() {
                "pending" => MutationState::Pending {
                    push_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                },
                "done" => MutationState::Done {
                    entity_id: entity.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
                    version,
                },
                _ => MutationState::Rejected {
                    code: code.unwrap_or_default(),
                    message: message.unwrap_or_default(),
                },
            },
        ))
    }

    /// Refused mutations, for the user to see.
    pub fn rejected(&self) -> Result<Vec<RejectedMutation>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, kind, entity_id, code, message, errors FROM mutations
             WHERE state = 'rejected' ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, entity_id, code, message, errors) = row?;
            out.push(RejectedMutation {
                id: parse_uuid(&id)?,
                kind,
                entity_id: parse_uuid(&entity_id)?,
                code: code.unwrap_or_default(),
                message: message.unwrap_or_default(),
                errors: errors
                    .as_deref()
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// The exact JSON of every settled (`done`) mutation, in recorded order: what a
    /// replay check pushes again.
    pub fn done_mutations(&self) -> Result<Vec<PendingMutation>> {
        self.mutations_where("m.state = 'done'", usize::MAX, false)
    }

    /// The last version of a meeting the server confirmed, for an edit's `base_version`.
    pub fn meeting_version(&self, meeting_id: Uuid) -> Result<Option<i64>> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT version FROM mutations WHERE entity_id = ?1 AND state = 'done'
                 AND version IS NOT NULL ORDER BY rowid DESC LIMIT 1",
                [meeting_id.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }
}

fn apply_one(
    tx: &Transaction<'_>,
    id: Uuid,
    r: &MutationResult,
    settled: &mut Settled,
) -> Result<()> {
    let key = id.to_string();
    let at = now();
    match r.status {
        MutationStatus::Applied | MutationStatus::Duplicate => {
            let status = if r.status == MutationStatus::Applied {
                "applied"
            } else {
                "duplicate"
            };
            let n = tx.execute(
                "UPDATE mutations SET state = 'done', status = ?2, version = ?3,
                    server_entity_id = ?4, code = NULL, message = NULL, errors = NULL,
                    push_attempts = push_attempts + 1, settled_at = ?5
                 WHERE id = ?1 AND state = 'pending'",
                params![
                    key,
                    status,
                    r.version,
                    r.entity_id.map(|e| e.to_string()),
                    at
                ],
            )?;
            if n > 0 {
                settled.done.push(id);
            }
        }
        MutationStatus::Rejected => {
            let errors = serde_json::to_string(&r.errors).unwrap_or_else(|_| "[]".into());
            let n = tx.execute(
                "UPDATE mutations SET state = 'rejected', status = 'rejected', code = ?2,
                    message = ?3, errors = ?4, version = ?5, push_attempts = push_attempts + 1,
                    settled_at = ?6
                 WHERE id = ?1 AND state = 'pending'",
                params![
                    key,
                    r.code.as_deref().unwrap_or("rejected"),
                    r.message.as_deref().unwrap_or(""),
                    errors,
                    r.version,
                    at
                ],
            )?;
            if n > 0 {
                settled.rejected.push(id);
            }
        }
        MutationStatus::MissingMedia => {
            tx.execute(
                "UPDATE mutations SET status = 'missing_media', push_attempts = push_attempts + 1
                 WHERE id = ?1 AND state = 'pending'",
                [&key],
            )?;
            let mut unknown = Vec::new();
            for sha in &r.missing {
                let known = tx.execute(
                    "UPDATE photos SET state = 'pending' WHERE sha256 = ?1 AND state = 'uploaded'",
                    [sha],
                )? > 0
                    || tx
                        .query_row(
                            "SELECT 1 FROM photos WHERE sha256 = ?1 AND state = 'pending'",
                            [sha],
                            |_| Ok(()),
                        )
                        .optional()?
                        .is_some();
                if !known {
                    unknown.push(sha.clone());
                }
                // The mutation needs it even if it was not linked when recorded.
                tx.execute(
                    "INSERT OR IGNORE INTO mutation_photos (mutation_id, sha256) VALUES (?1, ?2)",
                    params![key, sha],
                )?;
            }
            if unknown.is_empty() {
                settled.missing_media.push(id);
            } else {
                // This device cannot supply those photos: waiting would never end.
                tx.execute(
                    "UPDATE mutations SET state = 'rejected', status = 'rejected',
                        code = 'missing_media', message = ?2, settled_at = ?3
                     WHERE id = ?1 AND state = 'pending'",
                    params![
                        key,
                        format!("photos not on this device: {}", unknown.join(", ")),
                        at
                    ],
                )?;
                settled.rejected.push(id);
            }
        }
    }
    Ok(())
}

impl TokenStore for Outbox {
    fn load(&self) -> Result<(Option<Session>, bool)> {
        let (data, pending): (Option<String>, i64) = self.conn()?.query_row(
            "SELECT data, refresh_pending FROM session WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let session = data.as_deref().and_then(|d| serde_json::from_str(d).ok());
        Ok((session, pending != 0))
    }

    fn save(&self, session: Option<&Session>) -> Result<()> {
        let data = session
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| ClientError::Invalid(format!("cannot store the session: {e}")))?;
        self.durable()?.execute(
            "UPDATE session SET data = ?1, refresh_pending = 0 WHERE id = 1",
            params![data],
        )?;
        Ok(())
    }

    fn set_refresh_pending(&self, pending: bool) -> Result<()> {
        self.durable()?.execute(
            "UPDATE session SET refresh_pending = ?1 WHERE id = 1",
            [i64::from(pending)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const FULL: i64 = 2;
    const NORMAL: i64 = 1;

    fn synchronous(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn bookkeeping_skips_its_own_sync_and_every_write_after_it_is_synced_again() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        assert_eq!(synchronous(&outbox.conn().unwrap()), FULL);

        let inside = outbox.unsynced(|c| Ok(synchronous(c))).unwrap();
        assert_eq!(inside, NORMAL);
        assert_eq!(synchronous(&outbox.conn().unwrap()), FULL);

        // A failed bookkeeping write leaves the connection synced as well.
        let failed = outbox.unsynced(|c| {
            c.execute("UPDATE no_such_table SET x = 1", [])?;
            Ok(())
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&outbox.conn().unwrap()), FULL);

        outbox.note_photo_attempt("ab").unwrap();
        outbox.mark_photo_uploaded("ab").unwrap();
        outbox.save_pull(&[], "7").unwrap();
        assert_eq!(synchronous(&outbox.conn().unwrap()), FULL);
        assert_eq!(outbox.cursor().unwrap().as_deref(), Some("7"));

        // Whatever the connection was left at, a durable write syncs.
        outbox
            .conn()
            .unwrap()
            .pragma_update(None, "synchronous", "NORMAL")
            .unwrap();
        assert_eq!(synchronous(&outbox.durable().unwrap()), FULL);
    }
}
