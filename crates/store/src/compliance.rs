//! What coordinators and HQ read and decide: per-day quota results, the quota policy,
//! and reviews of in-charges.

use crate::audit::{AuditConn, AuditEvent};
use crate::db::{Store, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::schema::{areas, meetings, policy, quota_days, reviews, users};
use crate::sync::{IndexedTx, SyncTx, lock_and_catch_up};
use crate::time::now_utc;
use crate::users::UserConn;
use baithak_domain::{AreaPath, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

const CHUNK: usize = 500;

/// One in-charge's result for one local day, as the quota evaluation derived it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDay {
    pub incharge_id: UserId,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub counted: i32,
    pub submitted: i32,
    /// `met`, `short`, `none` or `exempt`.
    pub status: String,
    pub target_met: bool,
    /// The late-grace window has passed: the day can no longer change by sync.
    pub is_final: bool,
    pub updated_at: NaiveDateTime,
}

impl QuotaDay {
    /// Same result, whenever it was computed.
    pub fn same_facts(&self, other: &QuotaDay) -> bool {
        (
            &self.incharge_id,
            &self.day,
            self.counted,
            self.submitted,
            &self.status,
            self.target_met,
            self.is_final,
        ) == (
            &other.incharge_id,
            &other.day,
            other.counted,
            other.submitted,
            &other.status,
            other.target_met,
            other.is_final,
        )
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = quota_days, treat_none_as_default_value = false)]
pub(crate) struct QuotaDayRow {
    pub(crate) incharge_id: String,
    pub(crate) day: String,
    pub(crate) counted: i32,
    pub(crate) submitted: i32,
    pub(crate) status: String,
    pub(crate) target_met: bool,
    pub(crate) is_final: bool,
    pub(crate) updated_at: NaiveDateTime,
}

impl From<&QuotaDay> for QuotaDayRow {
    fn from(q: &QuotaDay) -> Self {
        QuotaDayRow {
            incharge_id: q.incharge_id.to_string(),
            day: q.day.clone(),
            counted: q.counted,
            submitted: q.submitted,
            status: q.status.clone(),
            target_met: q.target_met,
            is_final: q.is_final,
            updated_at: crate::time::truncate(q.updated_at),
        }
    }
}

impl TryFrom<QuotaDayRow> for QuotaDay {
    type Error = StoreError;
    fn try_from(r: QuotaDayRow) -> Result<Self> {
        Ok(QuotaDay {
            incharge_id: r.incharge_id.parse().map_err(|_| {
                StoreError::Corrupt(format!("in-charge of quota day {}", r.incharge_id))
            })?,
            day: r.day,
            counted: r.counted,
            submitted: r.submitted,
            status: r.status,
            target_met: r.target_met,
            is_final: r.is_final,
            updated_at: r.updated_at,
        })
    }
}

/// What a compliance grid shows of a stored day: [`QuotaDay`] without the columns the
/// grid works out itself or never shows, so the view decodes less per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaCell {
    pub incharge_id: UserId,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub counted: i32,
    pub submitted: i32,
    /// `met`, `short`, `none` or `exempt`.
    pub status: String,
    pub target_met: bool,
}

impl From<QuotaDay> for QuotaCell {
    fn from(q: QuotaDay) -> Self {
        QuotaCell {
            incharge_id: q.incharge_id,
            day: q.day,
            counted: q.counted,
            submitted: q.submitted,
            status: q.status,
            target_met: q.target_met,
        }
    }
}

type QuotaCellRow = (String, String, i32, i32, String, bool);

pub(crate) fn parse_quota_days(rows: Vec<QuotaDayRow>) -> Result<Vec<QuotaDay>> {
    rows.into_iter().map(QuotaDay::try_from).collect()
}

/// The stored quota policy (JSON text the domain layer parses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub body: String,
    /// 1 for the first stored policy, +1 per change.
    pub version: i64,
    pub updated_at: NaiveDateTime,
    pub updated_by: Option<UserId>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = policy, treat_none_as_default_value = false)]
pub(crate) struct PolicyRow {
    pub(crate) id: i32,
    pub(crate) body: String,
    pub(crate) version: i64,
    pub(crate) updated_at: NaiveDateTime,
    pub(crate) updated_by: Option<String>,
}

impl TryFrom<PolicyRow> for PolicyRecord {
    type Error = StoreError;
    fn try_from(r: PolicyRow) -> Result<Self> {
        Ok(PolicyRecord {
            updated_by: r
                .updated_by
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| StoreError::Corrupt("author of the policy".into()))?,
            body: r.body,
            version: r.version,
            updated_at: r.updated_at,
        })
    }
}

/// A coordinator's periodic review of one in-charge.
#[derive(Debug, Clone)]
pub struct NewReview {
    pub incharge_id: UserId,
    pub reviewer_id: UserId,
    /// Local days, inclusive, `YYYY-MM-DD`.
    pub period_from: String,
    pub period_to: String,
    pub notes: String,
    /// `ok`, `warn`, `activate` or `replace` (the caller validates).
    pub action: String,
    /// JSON text: the compliance snapshot the server attached.
    pub snapshot: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRecord {
    pub id: Uuid,
    pub incharge_id: UserId,
    pub reviewer_id: UserId,
    /// The in-charge's area path when the review was made.
    pub area_path: String,
    pub period_from: String,
    pub period_to: String,
    pub notes: String,
    pub action: String,
    pub snapshot: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = reviews, treat_none_as_default_value = false)]
struct ReviewRow {
    id: String,
    incharge_id: String,
    reviewer_id: String,
    area_path: String,
    period_from: String,
    period_to: String,
    notes: String,
    action: String,
    snapshot: String,
    created_at: NaiveDateTime,
}

impl TryFrom<ReviewRow> for ReviewRecord {
    type Error = StoreError;
    fn try_from(r: ReviewRow) -> Result<Self> {
        let bad = |what: &str| StoreError::Corrupt(format!("{what} of review {}", r.id));
        Ok(ReviewRecord {
            id: r.id.parse().map_err(|_| bad("id"))?,
            incharge_id: r.incharge_id.parse().map_err(|_| bad("in-charge"))?,
            reviewer_id: r.reviewer_id.parse().map_err(|_| bad("reviewer"))?,
            area_path: r.area_path,
            period_from: r.period_from,
            period_to: r.period_to,
            notes: r.notes,
            action: r.action,
            snapshot: r.snapshot,
            created_at: r.created_at,
        })
    }
}

fn parse_reviews(rows: Vec<ReviewRow>) -> Result<Vec<ReviewRecord>> {
    rows.into_iter().map(ReviewRecord::try_from).collect()
}

fn parse_user_times(
    rows: Vec<(String, Option<NaiveDateTime>)>,
) -> Result<Vec<(UserId, NaiveDateTime)>> {
    rows.into_iter()
        .filter_map(|(u, t)| t.map(|t| (u, t)))
        .map(|(u, t)| {
            u.parse()
                .map(|u| (u, t))
                .map_err(|_| StoreError::Corrupt(format!("user id {u}")))
        })
        .collect()
}

impl Store {
    /// Quota days of the given in-charges within `[from, to]` (local days, inclusive),
    /// ordered by in-charge and day.
    pub fn quota_days(
        &self,
        incharge_ids: &[UserId],
        from: &str,
        to: &str,
    ) -> Result<Vec<QuotaDay>> {
        let ids: Vec<String> = incharge_ids.iter().map(ToString::to_string).collect();
        with_conn!(self, |c| {
            let mut out = Vec::new();
            for chunk in ids.chunks(CHUNK) {
                let rows: Vec<QuotaDayRow> = quota_days::table
                    .filter(quota_days::incharge_id.eq_any(chunk))
                    .filter(quota_days::day.ge(from))
                    .filter(quota_days::day.le(to))
                    .order((quota_days::incharge_id.asc(), quota_days::day.asc()))
                    .select(QuotaDayRow::as_select())
                    .load(c)?;
                out.extend(parse_quota_days(rows)?);
            }
            out.sort_by(|a, b| (a.incharge_id, &a.day).cmp(&(b.incharge_id, &b.day)));
            Ok(out)
        })
    }

    /// Quota days within `[from, to]` of every user whose area lies in `scope`'s
    /// subtree now, ordered by in-charge and day.
    pub fn quota_days_in_scope(
        &self,
        scope: &AreaPath,
        from: &str,
        to: &str,
    ) -> Result<Vec<QuotaCell>> {
        let upper = scope.subtree_upper_bound();
        with_conn!(self, |c| {
            let rows: Vec<QuotaCellRow> = quota_days::table
                .inner_join(users::table.inner_join(areas::table))
                .filter(areas::path.ge(scope.as_str()))
                .filter(areas::path.lt(upper.as_str()))
                .filter(quota_days::day.ge(from))
                .filter(quota_days::day.le(to))
                .select((
                    quota_days::incharge_id,
                    quota_days::day,
                    quota_days::counted,
                    quota_days::submitted,
                    quota_days::status,
                    quota_days::target_met,
                ))
                .load(c)?;
            // Sorted here, not by the database: the join walks in-charges area by
            // area, so an ORDER BY costs a sort there (~10 ms of 30 k rows on SQLite).
            let mut out = rows
                .into_iter()
                .map(|(id, day, counted, submitted, status, target_met)| {
                    Ok(QuotaCell {
                        incharge_id: id.parse().map_err(|_| {
                            StoreError::Corrupt(format!("in-charge of quota day {id}"))
                        })?,
                        day,
                        counted,
                        submitted,
                        status,
                        target_met,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            out.sort_unstable_by(|a, b| (a.incharge_id, &a.day).cmp(&(b.incharge_id, &b.day)));
            Ok(out)
        })
    }

    /// For each given in-charge that has one, the `occurred_at` of its latest counted
    /// meeting (for "inactive" and "last counted at").
    pub fn last_counted_at(&self, incharge_ids: &[UserId]) -> Result<Vec<(UserId, NaiveDateTime)>> {
        let ids: Vec<String> = incharge_ids.iter().map(ToString::to_string).collect();
        with_conn!(self, |c| {
            let mut out = Vec::new();
            for chunk in ids.chunks(CHUNK) {
                let rows: Vec<(String, Option<NaiveDateTime>)> = meetings::table
                    .filter(meetings::incharge_id.eq_any(chunk))
                    .filter(meetings::counted.eq(true))
                    .group_by(meetings::incharge_id)
                    .select((
                        meetings::incharge_id,
                        diesel::dsl::max(meetings::occurred_at),
                    ))
                    .load(c)?;
                out.extend(parse_user_times(rows)?);
            }
            Ok(out)
        })
    }

    /// The stored policy, or `None` while the defaults apply.
    pub fn policy(&self) -> Result<Option<PolicyRecord>> {
        with_conn!(self, |c| SyncTx::policy(c))
    }

    /// Replaces the policy. `expected_version` (0 when none is stored yet) guards
    /// against overwriting a change the caller has not seen: a mismatch is `Conflict`.
    /// `after` runs in the same transaction with the new record — for re-evaluating
    /// days and publishing `policy.changed` — and holds the meeting write lock, so no
    /// meeting write interleaves with the re-evaluation.
    pub fn put_policy<F>(
        &self,
        body: &str,
        expected_version: Option<i64>,
        actor: Option<UserId>,
        after: F,
    ) -> Result<PolicyRecord>
    where
        F: FnOnce(&mut dyn SyncTx, &PolicyRecord) -> Result<()>,
    {
        let now = now_utc();
        write_tx!(self, |c| {
            lock_and_catch_up(c, &self.photo_index)?;
            let current = SyncTx::policy(c)?;
            let current_version = current.as_ref().map_or(0, |p| p.version);
            if let Some(v) = expected_version
                && v != current_version
            {
                return Err(StoreError::Conflict(format!(
                    "policy version is {current_version}"
                )));
            }
            let row = PolicyRow {
                id: 1,
                body: body.to_owned(),
                version: current_version + 1,
                updated_at: now,
                updated_by: actor.map(|a| a.to_string()),
            };
            if current.is_some() {
                diesel::update(policy::table.find(1))
                    .set((
                        policy::body.eq(&row.body),
                        policy::version.eq(row.version),
                        policy::updated_at.eq(row.updated_at),
                        policy::updated_by.eq(&row.updated_by),
                    ))
                    .execute(c)?;
            } else {
                diesel::insert_into(policy::table).values(&row).execute(c)?;
            }
            let detail = serde_json::from_str::<serde_json::Value>(body)
                .unwrap_or_else(|_| serde_json::Value::String(body.to_owned()));
            c.append_audit(
                &AuditEvent::new(
                    actor,
                    "policy.update",
                    "policy",
                    row.version,
                    serde_json::json!({"version": row.version, "body": detail}),
                ),
                now,
            )?;
            let rec = PolicyRecord::try_from(row)?;
            after(&mut IndexedTx::caught_up(c, &self.photo_index), &rec)?;
            Ok(rec)
        })
    }

    /// Stores a review; the in-charge's current area path is copied for scoped
    /// listing. An unknown in-charge is `Invalid`.
    pub fn create_review(&self, new: &NewReview) -> Result<ReviewRecord> {
        let now = now_utc();
        let id = Uuid::now_v7();
        write_tx!(self, |c| {
            let incharge = match c.user_with_hash(new.incharge_id) {
                Err(StoreError::NotFound) => {
                    return Err(StoreError::Invalid("in-charge does not exist".into()));
                }
                other => other?.0,
            };
            let row = ReviewRow {
                id: id.to_string(),
                incharge_id: new.incharge_id.to_string(),
                reviewer_id: new.reviewer_id.to_string(),
                area_path: incharge.area_path.as_str().to_owned(),
                period_from: new.period_from.clone(),
                period_to: new.period_to.clone(),
                notes: new.notes.clone(),
                action: new.action.clone(),
                snapshot: new.snapshot.clone(),
                created_at: now,
            };
            diesel::insert_into(reviews::table)
                .values(&row)
                .execute(c)?;
            c.append_audit(
                &AuditEvent::new(
                    Some(new.reviewer_id),
                    "review.create",
                    "review",
                    id,
                    serde_json::json!({
                        "incharge_id": new.incharge_id,
                        "period_from": new.period_from,
                        "period_to": new.period_to,
                        "action": new.action,
                    }),
                ),
                now,
            )?;
            ReviewRecord::try_from(row)
        })
    }

    /// An in-charge's reviews, newest first.
    pub fn reviews_of(&self, incharge_id: UserId, limit: i64) -> Result<Vec<ReviewRecord>> {
        with_conn!(self, |c| {
            let rows: Vec<ReviewRow> = reviews::table
                .filter(reviews::incharge_id.eq(incharge_id.to_string()))
                .order((reviews::created_at.desc(), reviews::id.desc()))
                .limit(limit)
                .select(ReviewRow::as_select())
                .load(c)?;
            parse_reviews(rows)
        })
    }

    /// Reviews of in-charges in `scope`'s subtree (by their area at review time),
    /// newest first, keyset-paged by id (v7, so id order is creation order).
    pub fn reviews_in_scope(
        &self,
        scope: &AreaPath,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ReviewRecord>> {
        let upper = scope.subtree_upper_bound();
        with_conn!(self, |c| {
            let mut q = reviews::table
                .filter(reviews::area_path.ge(scope.as_str()))
                .filter(reviews::area_path.lt(upper.as_str()))
                .into_boxed();
            if let Some(b) = before {
                q = q.filter(reviews::id.lt(b.to_string()));
            }
            let rows: Vec<ReviewRow> = q
                .order(reviews::id.desc())
                .limit(limit)
                .select(ReviewRow::as_select())
                .load(c)?;
            parse_reviews(rows)
        })
    }

    /// The latest review of each given in-charge that has one (for "overdue").
    pub fn latest_reviews(&self, incharge_ids: &[UserId]) -> Result<Vec<ReviewRecord>> {
        let ids: Vec<String> = incharge_ids.iter().map(ToString::to_string).collect();
        with_conn!(self, |c| {
            let mut out = Vec::new();
            for chunk in ids.chunks(CHUNK) {
                let latest: Vec<(String, Option<NaiveDateTime>)> = reviews::table
                    .filter(reviews::incharge_id.eq_any(chunk))
                    .group_by(reviews::incharge_id)
                    .select((reviews::incharge_id, diesel::dsl::max(reviews::created_at)))
                    .load(c)?;
                for (incharge, at) in latest {
                    let Some(at) = at else { continue };
                    let row: Option<ReviewRow> = reviews::table
                        .filter(reviews::incharge_id.eq(&incharge))
                        .filter(reviews::created_at.eq(at))
                        .order(reviews::id.desc())
                        .select(ReviewRow::as_select())
                        .first(c)
                        .optional()?;
                    if let Some(row) = row {
                        out.push(ReviewRecord::try_from(row)?);
                    }
                }
            }
            out.sort_by_key(|a| a.incharge_id);
            Ok(out)
        })
    }
}
