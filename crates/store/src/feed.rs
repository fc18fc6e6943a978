//! The pull feed: what devices and dashboards learn about since their last pull
//! (`meeting.reviewed`, `meeting.flagged`, `quota.day`, `assignment.changed`,
//! `policy.changed`, …), addressed by a server-assigned sequence number.
//!
//! # Why `seq` comes from a locked head row, not a sequence
//!
//! A reader keeps a cursor — the highest `seq` it has seen — and next asks for
//! `seq > cursor`. That is only safe if no row with a smaller `seq` can become visible
//! after a larger one. With a PostgreSQL `SEQUENCE`/`serial`, transaction A can draw 10,
//! B draw 11, B commit first, a reader see 11 and move its cursor past 10, and A then
//! commit 10 where that reader will never look: the change is lost for that device.
//!
//! So `seq` is assigned inside the writing transaction by
//! `UPDATE feed_head SET seq = seq + 1 … RETURNING seq`. The row lock that update takes
//! is held until commit, so a second appender waits at that statement until the first
//! commits (or rolls back, leaving no gap), then reads the committed value. Hence seq
//! order is commit order, and every row a reader can see has every smaller `seq`
//! already visible. On SQLite write transactions are serialised anyway. The cost is
//! that appenders serialise on one row from their append to their commit, which is
//! why callers append changes at the end of their transaction.

use crate::db::{Prepared, Store, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::schema::{changes, feed_head};
use crate::sync::SyncTx;
use baithak_domain::{AreaPath, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A change to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    /// `meeting.reviewed`, `meeting.flagged`, `quota.day`, `assignment.changed`,
    /// `policy.changed`, …
    pub kind: String,
    /// The in-charge (or other user) the change is about; `None` with `area_path`
    /// `None` makes it global (visible to everyone).
    pub user_id: Option<UserId>,
    /// Where it happened, for coordinators and HQ whose scope contains it.
    pub area_path: Option<AreaPath>,
    pub entity_id: String,
    /// JSON text, passed through untouched.
    pub data: String,
}

/// A published change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub seq: i64,
    pub kind: String,
    pub user_id: Option<UserId>,
    pub area_path: Option<String>,
    pub entity_id: String,
    pub data: String,
    pub created_at: NaiveDateTime,
}

/// Who is pulling.
#[derive(Debug, Clone)]
pub struct FeedViewer {
    pub user_id: UserId,
    /// Coordinators and HQ also see changes whose `area_path` lies in their scope.
    pub role_sees_scope: bool,
    pub scope_path: AreaPath,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = changes, treat_none_as_default_value = false)]
pub(crate) struct ChangeRow {
    pub(crate) seq: i64,
    pub(crate) kind: String,
    pub(crate) user_id: Option<String>,
    pub(crate) area_path: Option<String>,
    pub(crate) entity_id: String,
    pub(crate) data: String,
    pub(crate) created_at: NaiveDateTime,
}

impl TryFrom<ChangeRow> for ChangeRecord {
    type Error = StoreError;
    fn try_from(r: ChangeRow) -> Result<Self> {
        Ok(ChangeRecord {
            user_id: r
                .user_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| StoreError::Corrupt(format!("user of change {}", r.seq)))?,
            seq: r.seq,
            kind: r.kind,
            area_path: r.area_path,
            entity_id: r.entity_id,
            data: r.data,
            created_at: r.created_at,
        })
    }
}

/// Appends one change; the body of [`SyncTx::append_change`], expanded per backend.
/// One change appended inside the caller's transaction; see the module docs for why
/// `seq` comes from the head row.
pub(crate) trait FeedAppend {
    fn append_change_row(&mut self, change: &NewChange, now: NaiveDateTime) -> Result<i64>;
}

fn change_row(change: &NewChange, seq: i64, now: NaiveDateTime) -> ChangeRow {
    ChangeRow {
        seq,
        kind: change.kind.clone(),
        user_id: change.user_id.map(|u| u.to_string()),
        area_path: change.area_path.as_ref().map(|p| p.as_str().to_owned()),
        entity_id: change.entity_id.clone(),
        data: change.data.clone(),
        created_at: now,
    }
}

impl FeedAppend for diesel::SqliteConnection {
    // In-process: two statements cost next to nothing here.
    fn append_change_row(&mut self, change: &NewChange, now: NaiveDateTime) -> Result<i64> {
        let seq: i64 = diesel::update(feed_head::table.find(1))
            .set(feed_head::seq.eq(feed_head::seq + 1))
            .returning(feed_head::seq)
            .get_result(self)?;
        diesel::insert_into(changes::table)
            .values(&change_row(change, seq, now))
            .execute(self)?;
        Ok(seq)
    }
}

#[derive(QueryableByName)]
struct SeqRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
}

impl FeedAppend for diesel::PgConnection {
    // One round trip instead of two: appends happen while the meeting lock is held,
    // where every round trip is time other pushes wait. The data-modifying CTE takes
    // the same head row lock as the two-statement form.
    fn append_change_row(&mut self, change: &NewChange, now: NaiveDateTime) -> Result<i64> {
        use diesel::sql_types::{Nullable, Text, Timestamp};
        let row = change_row(change, 0, now);
        let out: SeqRow = Prepared(
            diesel::sql_query(
                "WITH s AS (UPDATE feed_head SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
             INSERT INTO changes (seq, kind, user_id, area_path, entity_id, data, created_at) \
             SELECT s.seq, $1, $2, $3, $4, $5, $6 FROM s RETURNING seq",
            )
            .bind::<Text, _>(&row.kind)
            .bind::<Nullable<Text>, _>(&row.user_id)
            .bind::<Nullable<Text>, _>(&row.area_path)
            .bind::<Text, _>(&row.entity_id)
            .bind::<Text, _>(&row.data)
            .bind::<Timestamp, _>(row.created_at),
        )
        .get_result(self)?;
        Ok(out.seq)
    }
}

impl Store {
    /// Publishes one change in its own transaction; inside a larger one use
    /// [`SyncTx::append_change`].
    pub fn append_change(&self, change: &NewChange) -> Result<i64> {
        write_tx!(self, |c| SyncTx::append_change(c, change))
    }

    /// The highest `seq` published so far: where a device that needs no history starts.
    pub fn feed_head(&self) -> Result<i64> {
        with_conn!(self, |c| Ok(feed_head::table
            .find(1)
            .select(feed_head::seq)
            .first(c)?))
    }

    /// Changes with `seq > after_seq` that `viewer` may see, oldest first: those about
    /// the viewer, global ones, and for coordinators and HQ those in their scope.
    pub fn changes_after(
        &self,
        after_seq: i64,
        viewer: &FeedViewer,
        limit: i64,
    ) -> Result<Vec<ChangeRecord>> {
        let uid = viewer.user_id.to_string();
        let lo = viewer.scope_path.as_str().to_owned();
        let hi = viewer.scope_path.subtree_upper_bound();
        with_conn!(self, |c| {
            let mine_or_global = changes::user_id
                .eq(uid.clone())
                .or(changes::user_id.is_null().and(changes::area_path.is_null()));
            let mut q = changes::table
                .filter(changes::seq.gt(after_seq))
                .into_boxed();
            q = if viewer.role_sees_scope {
                q.filter(
                    mine_or_global.or(changes::area_path
                        .ge(lo.clone())
                        .and(changes::area_path.lt(hi.clone()))),
                )
            } else {
                q.filter(mine_or_global)
            };
            let rows: Vec<ChangeRow> = q
                .order(changes::seq.asc())
                .limit(limit)
                .select(ChangeRow::as_select())
                .load(c)?;
            rows.into_iter().map(ChangeRecord::try_from).collect()
        })
    }
}
