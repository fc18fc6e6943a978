//! Resumable photo uploads: how many bytes of which photo a user has sent so far. The
//! bytes themselves live in the blob store; a row here only tracks the offset, which
//! advances by compare-and-set so two racing appends cannot both succeed.

use crate::db::{Store, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::media::check_sha;
use crate::schema::uploads;
use crate::time::{now_utc, truncate};
use baithak_domain::UserId;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewUpload {
    pub user_id: UserId,
    /// The SHA-256 the finished upload must have.
    pub sha256: String,
    /// Total length in bytes.
    pub length: u64,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: Uuid,
    pub user_id: UserId,
    pub sha256: String,
    pub length: u64,
    /// Bytes received so far: the offset the next chunk must start at.
    pub received: u64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl UploadRecord {
    pub fn is_complete(&self) -> bool {
        self.received == self.length
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = uploads, treat_none_as_default_value = false)]
struct UploadRow {
    id: String,
    user_id: String,
    sha256: String,
    length: i64,
    received: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

impl TryFrom<UploadRow> for UploadRecord {
    type Error = StoreError;
    fn try_from(r: UploadRow) -> Result<Self> {
        let bad = |what: &str| StoreError::Corrupt(format!("{what} of upload {}", r.id));
        Ok(UploadRecord {
            id: r.id.parse().map_err(|_| bad("id"))?,
            user_id: r.user_id.parse().map_err(|_| bad("user"))?,
            length: u64::try_from(r.length).map_err(|_| bad("length"))?,
            received: u64::try_from(r.received).map_err(|_| bad("offset"))?,
            sha256: r.sha256,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        })
    }
}

fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} out of range")))
}

impl Store {
    /// Starts an upload at offset 0.
    pub fn create_upload(&self, new: &NewUpload) -> Result<UploadRecord> {
        check_sha(&new.sha256)?;
        let now = now_utc();
        let row = UploadRow {
            id: Uuid::now_v7().to_string(),
            user_id: new.user_id.to_string(),
            sha256: new.sha256.clone(),
            length: to_i64(new.length, "length")?,
            received: 0,
            created_at: now,
            updated_at: now,
            expires_at: truncate(new.expires_at),
        };
        with_conn!(self, |c| {
            diesel::insert_into(uploads::table)
                .values(&row)
                .execute(c)?;
            Ok::<_, StoreError>(())
        })?;
        row.try_into()
    }

    /// The user's live upload. Another user's, an expired or an unknown one is
    /// `NotFound`, so upload ids cannot be probed.
    pub fn upload(&self, id: Uuid, user_id: UserId) -> Result<UploadRecord> {
        let now = now_utc();
        with_conn!(self, |c| {
            let row: UploadRow = uploads::table
                .find(id.to_string())
                .filter(uploads::user_id.eq(user_id.to_string()))
                .filter(uploads::expires_at.gt(now))
                .select(UploadRow::as_select())
                .first(c)?;
            row.try_into()
        })
    }

    /// Moves the offset from `expected_offset` to `new_offset` after the caller has
    /// stored those bytes. `Conflict` when the stored offset is not `expected_offset`
    /// (a concurrent or replayed chunk); `NotFound` as for [`Store::upload`].
    pub fn advance_upload(
        &self,
        id: Uuid,
        user_id: UserId,
        expected_offset: u64,
        new_offset: u64,
        now: NaiveDateTime,
    ) -> Result<UploadRecord> {
        let expected = to_i64(expected_offset, "offset")?;
        let next = to_i64(new_offset, "offset")?;
        if next < expected {
            return Err(StoreError::Invalid(
                "an upload offset cannot go back".into(),
            ));
        }
        let id = id.to_string();
        let uid = user_id.to_string();
        write_tx!(self, |c| {
            let row: UploadRow = uploads::table
                .find(&id)
                .filter(uploads::user_id.eq(&uid))
                .filter(uploads::expires_at.gt(now))
                .select(UploadRow::as_select())
                .first(c)?;
            if next > row.length {
                return Err(StoreError::Invalid(
                    "more bytes than the upload's length".into(),
                ));
            }
            // Compare-and-set: the offset check is part of the update itself.
            let n = diesel::update(
                uploads::table
                    .find(&id)
                    .filter(uploads::received.eq(expected)),
            )
            .set((uploads::received.eq(next), uploads::updated_at.eq(now)))
            .execute(c)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "upload offset is {}",
                    row.received
                )));
            }
            let row: UploadRow = uploads::table
                .find(&id)
                .select(UploadRow::as_select())
                .first(c)?;
            row.try_into()
        })
    }

    /// Forgets an upload (finished, cancelled or expired). Idempotent.
    pub fn delete_upload(&self, id: Uuid) -> Result<()> {
        with_conn!(self, |c| {
            diesel::delete(uploads::table.find(id.to_string())).execute(c)?;
            Ok(())
        })
    }

    /// Uploads that expired at or before `now`, oldest expiry first, for the sweeper
    /// that deletes their partial bytes and then the rows.
    pub fn expired_uploads(&self, now: NaiveDateTime, limit: i64) -> Result<Vec<UploadRecord>> {
        with_conn!(self, |c| {
            let rows: Vec<UploadRow> = uploads::table
                .filter(uploads::expires_at.le(now))
                .order((uploads::expires_at.asc(), uploads::id.asc()))
                .limit(limit)
                .select(UploadRow::as_select())
                .load(c)?;
            rows.into_iter().map(UploadRecord::try_from).collect()
        })
    }
}
