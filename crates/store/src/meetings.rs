//! Stored meetings: rows, their photos, the coordinator's scoped listing and the review
//! decision. Writes from devices go through [`Store::upsert_meeting`](crate::Store)
//! in `sync.rs`, which owns the idempotency ledger.

use crate::audit::{AuditConn, AuditEvent};
use crate::db::{Prepared, Store, impl_both, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::schema::{meeting_head, meeting_photos, meetings};
use crate::sync::{IndexedTx, SyncTx, lock_and_catch_up};
use crate::time::truncate;
use baithak_domain::{AreaId, AreaPath, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// Parameter lists are chunked below both backends' bind limits.
const CHUNK: usize = 500;

/// A stored meeting with its photos (SHA-256s in the order the device sent them).
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingRecord {
    pub id: Uuid,
    pub incharge_id: UserId,
    pub area_id: AreaId,
    pub area_path: AreaPath,
    pub kind: String,
    /// UTC.
    pub occurred_at: NaiveDateTime,
    /// The UTC offset the device reported with `occurred_at`, in minutes.
    pub occurred_offset_minutes: i32,
    pub ended_at: Option<NaiveDateTime>,
    /// `YYYY-MM-DD` in the policy's time zone.
    pub local_day: String,
    /// When the server first received the meeting (kept on edits).
    pub received_at: NaiveDateTime,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub attendee_count: i32,
    pub topic: String,
    pub notes: String,
    /// 1 when created, +1 per edit that changed something.
    pub version: i64,
    pub decision: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_by: Option<UserId>,
    pub decided_at: Option<NaiveDateTime>,
    /// The quota evaluation's verdict, written by [`SyncTx::set_meeting_evaluation`].
    pub counted: bool,
    /// JSON array of flags, as the evaluation wrote it (`[]` before the first).
    pub flags: String,
    /// Server-assigned order of first recording: of two meetings using one photo, the
    /// one with the smaller `record_seq` is the earlier.
    pub record_seq: i64,
    pub created_at: NaiveDateTime,
    /// Last edit, review or evaluation.
    pub updated_at: NaiveDateTime,
    pub photos: Vec<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = meetings, treat_none_as_default_value = false)]
pub(crate) struct MeetingRow {
    pub(crate) id: String,
    pub(crate) incharge_id: String,
    pub(crate) area_id: String,
    pub(crate) area_path: String,
    pub(crate) kind: String,
    pub(crate) occurred_at: NaiveDateTime,
    pub(crate) occurred_offset_minutes: i32,
    pub(crate) ended_at: Option<NaiveDateTime>,
    pub(crate) local_day: String,
    pub(crate) received_at: NaiveDateTime,
    pub(crate) lat: Option<f64>,
    pub(crate) lon: Option<f64>,
    pub(crate) accuracy_m: Option<f64>,
    pub(crate) attendee_count: i32,
    pub(crate) topic: String,
    pub(crate) notes: String,
    pub(crate) version: i64,
    pub(crate) decision: Option<String>,
    pub(crate) decision_reason: Option<String>,
    pub(crate) decided_by: Option<String>,
    pub(crate) decided_at: Option<NaiveDateTime>,
    pub(crate) counted: bool,
    pub(crate) flags: String,
    pub(crate) record_seq: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

pub(crate) fn parse_meeting(r: MeetingRow, photos: Vec<String>) -> Result<MeetingRecord> {
    let bad = |what: &str| StoreError::Corrupt(format!("{what} of meeting {}", r.id));
    Ok(MeetingRecord {
        id: r.id.parse().map_err(|_| bad("id"))?,
        incharge_id: r.incharge_id.parse().map_err(|_| bad("in-charge"))?,
        area_id: r.area_id.parse().map_err(|_| bad("area"))?,
        area_path: AreaPath::parse(&r.area_path).map_err(|_| bad("area path"))?,
        decided_by: r
            .decided_by
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| bad("reviewer"))?,
        kind: r.kind,
        occurred_at: r.occurred_at,
        occurred_offset_minutes: r.occurred_offset_minutes,
        ended_at: r.ended_at,
        local_day: r.local_day,
        received_at: r.received_at,
        lat: r.lat,
        lon: r.lon,
        accuracy_m: r.accuracy_m,
        attendee_count: r.attendee_count,
        topic: r.topic,
        notes: r.notes,
        version: r.version,
        decision: r.decision,
        decision_reason: r.decision_reason,
        decided_at: r.decided_at,
        counted: r.counted,
        flags: r.flags,
        record_seq: r.record_seq,
        created_at: r.created_at,
        updated_at: r.updated_at,
        photos,
    })
}

/// Narrows a meeting listing; every field set must hold.
#[derive(Debug, Clone, Default)]
pub struct MeetingFilter {
    pub incharge_id: Option<UserId>,
    /// Only meetings in this area's subtree (in addition to the caller's scope).
    pub area: Option<AreaPath>,
    /// Local days, inclusive, `YYYY-MM-DD`.
    pub from_day: Option<String>,
    pub to_day: Option<String>,
    pub counted: Option<bool>,
    /// `Some(None)`: not yet reviewed; `Some(Some(d))`: decided `d`.
    pub decision: Option<Option<String>>,
    /// Only meetings whose flags JSON contains this code as a string.
    pub flag: Option<String>,
    /// Newest `occurred_at` first instead of oldest first.
    pub newest_first: bool,
}

/// Keyset position in a listing ordered by `(occurred_at, id)`: the last item seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingCursor {
    pub occurred_at: NaiveDateTime,
    pub id: Uuid,
}

impl MeetingRecord {
    pub fn cursor(&self) -> MeetingCursor {
        MeetingCursor {
            occurred_at: self.occurred_at,
            id: self.id,
        }
    }
}

/// A review decision to record.
#[derive(Debug, Clone)]
pub struct MeetingDecision {
    pub meeting_id: Uuid,
    /// `accepted` or `rejected` (the caller validates).
    pub decision: String,
    pub reason: String,
    pub actor: UserId,
    /// The reviewer's scope: a meeting outside it is `NotFound`. `None` for HQ.
    pub scope: Option<AreaPath>,
    pub now: NaiveDateTime,
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

pub(crate) trait MeetingConn {
    /// Attaches photos to rows, keeping the rows' order.
    fn with_photos(&mut self, rows: Vec<MeetingRow>) -> Result<Vec<MeetingRecord>>;
    fn meeting_row(&mut self, id: &str) -> Result<Option<MeetingRow>>;
    fn meeting_record(&mut self, id: &str) -> Result<Option<MeetingRecord>>;
    /// Takes the meeting write lock and returns the current `record_seq` head. Every
    /// transaction that writes meetings or their reviews calls this first, so on
    /// PostgreSQL they run one at a time (as on SQLite) and each sees the last one's
    /// committed rows: the duplicate-photo check cannot miss a concurrent meeting.
    fn lock_meetings(&mut self) -> Result<i64>;
    fn next_record_seq(&mut self) -> Result<i64>;
}

impl_both!(MeetingConn {
    fn with_photos(&mut self, rows: Vec<MeetingRow>) -> Result<Vec<MeetingRecord>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut photos: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let found: Vec<(String, String)> = meeting_photos::table
                .filter(meeting_photos::meeting_id.eq_any(chunk))
                .order((meeting_photos::meeting_id.asc(), meeting_photos::position.asc()))
                .select((meeting_photos::meeting_id, meeting_photos::sha256))
                .load(self)?;
            for (m, sha) in found {
                photos.entry(m).or_default().push(sha);
            }
        }
        rows.into_iter()
            .map(|r| {
                let p = photos.remove(&r.id).unwrap_or_default();
                parse_meeting(r, p)
            })
            .collect()
    }

    fn meeting_row(&mut self, id: &str) -> Result<Option<MeetingRow>> {
        Ok(meetings::table
            .find(id)
            .select(MeetingRow::as_select())
            .first(self)
            .optional()?)
    }

    fn meeting_record(&mut self, id: &str) -> Result<Option<MeetingRecord>> {
        match self.meeting_row(id)? {
            Some(row) => Ok(self.with_photos(vec![row])?.pop()),
            None => Ok(None),
        }
    }

    fn lock_meetings(&mut self) -> Result<i64> {
        Ok(Prepared(
            diesel::update(meeting_head::table.find(1))
                .set(meeting_head::seq.eq(meeting_head::seq))
                .returning(meeting_head::seq),
        )
        .get_result(self)?)
    }

    fn next_record_seq(&mut self) -> Result<i64> {
        Ok(Prepared(
            diesel::update(meeting_head::table.find(1))
                .set(meeting_head::seq.eq(meeting_head::seq + 1))
                .returning(meeting_head::seq),
        )
        .get_result(self)?)
    }
});

impl Store {
    pub fn meeting(&self, id: Uuid) -> Result<MeetingRecord> {
        with_conn!(self, |c| c
            .meeting_record(&id.to_string())?
            .ok_or(StoreError::NotFound))
    }

    /// Meetings in `scope`'s subtree (all meetings with `None`) that pass `filter`,
    /// ordered by `(occurred_at, id)` (descending with `newest_first`), keyset-paged
    /// after `after`.
    pub fn meetings_in_scope(
        &self,
        scope: Option<&AreaPath>,
        filter: &MeetingFilter,
        after: Option<&MeetingCursor>,
        limit: i64,
    ) -> Result<Vec<MeetingRecord>> {
        let ranges: Vec<(String, String)> = scope
            .into_iter()
            .chain(filter.area.as_ref())
            .map(|p| (p.as_str().to_owned(), p.subtree_upper_bound()))
            .collect();
        let incharge = filter.incharge_id.map(|u| u.to_string());
        let flag_pattern = filter
            .flag
            .as_ref()
            .map(|f| format!("%\"{}\"%", like_escape(f)));
        let cursor = after.map(|a| (a.occurred_at, a.id.to_string()));
        with_conn!(self, |c| {
            let mut q = meetings::table.into_boxed();
            for (lo, hi) in &ranges {
                q = q
                    .filter(meetings::area_path.ge(lo.clone()))
                    .filter(meetings::area_path.lt(hi.clone()));
            }
            if let Some(u) = &incharge {
                q = q.filter(meetings::incharge_id.eq(u.clone()));
            }
            if let Some(d) = &filter.from_day {
                q = q.filter(meetings::local_day.ge(d.clone()));
            }
            if let Some(d) = &filter.to_day {
                q = q.filter(meetings::local_day.le(d.clone()));
            }
            if let Some(counted) = filter.counted {
                q = q.filter(meetings::counted.eq(counted));
            }
            match &filter.decision {
                Some(None) => q = q.filter(meetings::decision.is_null()),
                Some(Some(d)) => q = q.filter(meetings::decision.eq(d.clone())),
                None => {}
            }
            if let Some(p) = &flag_pattern {
                q = q.filter(meetings::flags.like(p.clone()).escape('\\'));
            }
            if let Some((t, id)) = &cursor {
                q = if filter.newest_first {
                    q.filter(
                        meetings::occurred_at.lt(*t).or(meetings::occurred_at
                            .eq(*t)
                            .and(meetings::id.lt(id.clone()))),
                    )
                } else {
                    q.filter(
                        meetings::occurred_at.gt(*t).or(meetings::occurred_at
                            .eq(*t)
                            .and(meetings::id.gt(id.clone()))),
                    )
                };
            }
            q = if filter.newest_first {
                q.order((meetings::occurred_at.desc(), meetings::id.desc()))
            } else {
                q.order((meetings::occurred_at.asc(), meetings::id.asc()))
            };
            let rows: Vec<MeetingRow> = q.limit(limit).select(MeetingRow::as_select()).load(c)?;
            c.with_photos(rows)
        })
    }

    /// Records a reviewer's decision (a later decision replaces an earlier one) and
    /// runs `after` in the same transaction with the updated meeting, for the quota
    /// re-evaluation and the `meeting.reviewed` change. `NotFound` when the meeting
    /// does not exist or lies outside `d.scope`.
    pub fn decide_meeting<F>(&self, d: &MeetingDecision, after: F) -> Result<MeetingRecord>
    where
        F: FnOnce(&mut dyn SyncTx, &MeetingRecord) -> Result<()>,
    {
        let id = d.meeting_id.to_string();
        let now = truncate(d.now);
        write_tx!(self, |c| {
            lock_and_catch_up(c, &self.photo_index)?;
            let before = c.meeting_row(&id)?.ok_or(StoreError::NotFound)?;
            if let Some(scope) = &d.scope {
                let inside = AreaPath::parse(&before.area_path)
                    .map(|p| scope.contains(&p))
                    .unwrap_or(false);
                if !inside {
                    return Err(StoreError::NotFound);
                }
            }
            diesel::update(meetings::table.find(&id))
                .set((
                    meetings::decision.eq(&d.decision),
                    meetings::decision_reason.eq(&d.reason),
                    meetings::decided_by.eq(d.actor.to_string()),
                    meetings::decided_at.eq(now),
                    meetings::updated_at.eq(now),
                ))
                .execute(c)?;
            c.append_audit(
                &AuditEvent::new(
                    Some(d.actor),
                    "meeting.review",
                    "meeting",
                    &id,
                    serde_json::json!({
                        "decision": d.decision,
                        "reason": d.reason,
                        "previous": before.decision,
                        "version": before.version,
                    }),
                ),
                now,
            )?;
            let rec = c.meeting_record(&id)?.ok_or(StoreError::NotFound)?;
            after(&mut IndexedTx::caught_up(c, &self.photo_index), &rec)?;
            // The hook may have re-evaluated the meeting itself.
            c.meeting_record(&id)?.ok_or(StoreError::NotFound)
        })
    }
}
