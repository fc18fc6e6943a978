//! The append-only, hash-chained audit log. Every state change appends an entry in the
//! same transaction as the change, so the log and the data cannot disagree.

use crate::db::{Prepared, Store, with_conn};
use crate::error::{Result, StoreError};
use crate::schema::{audit_head, audit_log};
use baithak_domain::UserId;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before it gets its place in the chain.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor_id: Option<UserId>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(
        actor_id: Option<UserId>,
        action: &str,
        entity_type: &str,
        entity_id: impl ToString,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            actor_id,
            action: action.to_owned(),
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_string(),
            detail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: NaiveDateTime,
    pub actor_id: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    pub ok: bool,
    pub entries: i64,
    pub head_hash: String,
    pub first_bad_seq: Option<i64>,
}

const AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Length-prefixed so no two different field splits hash alike.
fn hash_part(h: &mut Sha256, part: &str) {
    h.update((part.len() as u64).to_be_bytes());
    h.update(part.as_bytes());
}

/// The fields of an entry that follow `prev_hash` and `seq` in its hash, already in
/// [`hash_part`]'s framing (PostgreSQL appends them to the two it reads itself).
fn hashed_tail(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + r.detail.len());
    for part in [
        r.at.format(AT_FORMAT).to_string().as_str(),
        r.actor_id.as_deref().unwrap_or(""),
        &r.action,
        &r.entity_type,
        &r.entity_id,
        &r.detail,
    ] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn entry_hash(r: &AuditRecord) -> String {
    chain_hash(&r.prev_hash, r.seq, &hashed_tail(r))
}

fn chain_hash(prev_hash: &str, seq: i64, tail: &[u8]) -> String {
    let mut h = Sha256::new();
    hash_part(&mut h, prev_hash);
    hash_part(&mut h, &seq.to_string());
    h.update(tail);
    hex::encode(h.finalize())
}

pub(crate) trait AuditConn {
    /// Appends `ev` to the chain. Must run inside the caller's write transaction: the
    /// head row update serialises concurrent appenders until commit.
    fn append_audit(&mut self, ev: &AuditEvent, at: NaiveDateTime) -> Result<AuditRecord>;
}

/// The entry `ev` becomes at `seq` after `prev_hash`, with its hash computed.
fn chained(ev: &AuditEvent, at: NaiveDateTime, seq: i64, prev_hash: String) -> AuditRecord {
    let mut rec = chained_at(ev, at, seq, prev_hash);
    rec.hash = entry_hash(&rec);
    rec
}

/// The entry `ev` becomes at `seq` after `prev_hash`, hash not yet computed.
fn chained_at(ev: &AuditEvent, at: NaiveDateTime, seq: i64, prev_hash: String) -> AuditRecord {
    AuditRecord {
        seq,
        at,
        actor_id: ev.actor_id.map(|u| u.to_string()),
        action: ev.action.clone(),
        entity_type: ev.entity_type.clone(),
        entity_id: ev.entity_id.clone(),
        detail: ev.detail.to_string(),
        prev_hash,
        hash: String::new(),
    }
}

impl AuditConn for diesel::SqliteConnection {
    fn append_audit(&mut self, ev: &AuditEvent, at: NaiveDateTime) -> Result<AuditRecord> {
        let c = self;
        // Taking the chain's next place locks the head row until commit.
        let (seq, prev_hash): (i64, String) = diesel::update(audit_head::table.find(1))
            .set(audit_head::seq.eq(audit_head::seq + 1))
            .returning((audit_head::seq, audit_head::hash))
            .get_result(c)?;
        let rec = chained(ev, at, seq, prev_hash);
        diesel::update(audit_head::table.find(1))
            .set(audit_head::hash.eq(&rec.hash))
            .execute(c)?;
        diesel::insert_into(audit_log::table)
            .values(&rec)
            .execute(c)?;
        Ok(rec)
    }
}

#[derive(QueryableByName)]
struct ChainPlace {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    prev_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    hash: String,
}

impl AuditConn for diesel::PgConnection {
    // One statement instead of two (take the head, then write the entry and the new
    // head): audit appends happen while the meeting lock is held, where each round
    // trip makes other pushes wait. PostgreSQL hashes the entry itself, from the head
    // it locks and the rest of the entry framed here; the result is checked against
    // this code's own hash before the transaction can commit.
    //
    // Under READ COMMITTED the `FOR UPDATE` waits for a concurrent appender and then
    // reads the head it committed, and the UPDATE follows that same newest version.
    fn append_audit(&mut self, ev: &AuditEvent, at: NaiveDateTime) -> Result<AuditRecord> {
        use diesel::sql_types::{Binary, Nullable, Text, Timestamp};
        let c = self;
        let mut rec = chained_at(ev, at, 0, String::new());
        let tail = hashed_tail(&rec);
        let place: ChainPlace = Prepared(diesel::sql_query(
            "WITH prev AS (SELECT seq + 1 AS seq, hash AS prev_hash FROM audit_head \
                           WHERE id = 1 FOR UPDATE), \
                  e AS (SELECT seq, prev_hash, encode(sha256( \
                            int8send(octet_length(prev_hash)::int8) || convert_to(prev_hash, 'UTF8') \
                            || int8send(octet_length(seq::text)::int8) || convert_to(seq::text, 'UTF8') \
                            || $7), 'hex') AS hash FROM prev), \
                  h AS (UPDATE audit_head SET seq = e.seq, hash = e.hash FROM e \
                        WHERE audit_head.id = 1) \
             INSERT INTO audit_log \
             (seq, at, actor_id, action, entity_type, entity_id, detail, prev_hash, hash) \
             SELECT e.seq, $1, $2, $3, $4, $5, $6, e.prev_hash, e.hash FROM e \
             RETURNING seq, prev_hash, hash",
        )
        .bind::<Timestamp, _>(rec.at)
        .bind::<Nullable<Text>, _>(&rec.actor_id)
        .bind::<Text, _>(&rec.action)
        .bind::<Text, _>(&rec.entity_type)
        .bind::<Text, _>(&rec.entity_id)
        .bind::<Text, _>(&rec.detail)
        .bind::<Binary, _>(&tail))
        .get_result(c)?;
        rec.seq = place.seq;
        rec.prev_hash = place.prev_hash;
        rec.hash = chain_hash(&rec.prev_hash, rec.seq, &tail);
        if rec.hash != place.hash {
            return Err(StoreError::Corrupt(format!(
                "audit entry {}: the database hashed it as {}, this server as {}",
                rec.seq, place.hash, rec.hash
            )));
        }
        Ok(rec)
    }
}

impl Store {
    /// Entries with `seq > after`, oldest first.
    pub fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        with_conn!(self, |c| {
            Ok(audit_log::table
                .filter(audit_log::seq.gt(after))
                .order(audit_log::seq.asc())
                .limit(limit)
                .select(AuditRecord::as_select())
                .load(c)?)
        })
    }

    /// Walks the whole chain: every entry's hash recomputed, every link and sequence
    /// number checked, and the head must point at the last entry.
    pub fn audit_verify(&self) -> Result<AuditVerification> {
        const PAGE: i64 = 2000;
        let mut prev = GENESIS_HASH.to_owned();
        let mut expect_seq = 1i64;
        let mut entries = 0i64;
        let mut first_bad = None;
        loop {
            let page = self.audit_page(expect_seq - 1, PAGE)?;
            let n = page.len();
            for r in page {
                entries += 1;
                if first_bad.is_none()
                    && (r.seq != expect_seq || r.prev_hash != prev || entry_hash(&r) != r.hash)
                {
                    first_bad = Some(r.seq);
                }
                prev = r.hash;
                expect_seq = r.seq + 1;
            }
            if (n as i64) < PAGE {
                break;
            }
        }
        let (head_seq, head_hash): (i64, String) = with_conn!(self, |c| {
            audit_head::table
                .find(1)
                .select((audit_head::seq, audit_head::hash))
                .first(c)
                .map_err(StoreError::from)
        })?;
        if first_bad.is_none() && (head_seq != expect_seq - 1 || head_hash != prev) {
            first_bad = Some(expect_seq);
        }
        Ok(AuditVerification {
            ok: first_bad.is_none(),
            entries,
            head_hash,
            first_bad_seq: first_bad,
        })
    }
}
