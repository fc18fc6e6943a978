//! Public feedback on local leaders, collected by in-charges per parliamentary seat.
//! Devices create it through [`Store::create_feedback`](crate::Store) in `sync.rs`.

use crate::db::{Store, with_conn};
use crate::error::{Result, StoreError};
use crate::schema::feedback;
use baithak_domain::{AreaId, AreaPath, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

/// Feedback as a device sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackWrite {
    /// Client-generated.
    pub id: Uuid,
    pub incharge_id: UserId,
    pub constituency_id: AreaId,
    /// The leader the feedback is about.
    pub subject: String,
    pub rating: i32,
    pub text: String,
    /// UTC.
    pub collected_at: NaiveDateTime,
    pub respondents: i32,
    pub received_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRecord {
    pub id: Uuid,
    pub incharge_id: UserId,
    pub constituency_id: AreaId,
    pub constituency_path: AreaPath,
    pub subject: String,
    pub rating: i32,
    pub text: String,
    pub collected_at: NaiveDateTime,
    pub respondents: i32,
    pub received_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = feedback, treat_none_as_default_value = false)]
pub(crate) struct FeedbackRow {
    pub(crate) id: String,
    pub(crate) incharge_id: String,
    pub(crate) constituency_id: String,
    pub(crate) constituency_path: String,
    pub(crate) subject: String,
    pub(crate) rating: i32,
    pub(crate) text: String,
    pub(crate) collected_at: NaiveDateTime,
    pub(crate) respondents: i32,
    pub(crate) received_at: NaiveDateTime,
}

impl FeedbackRow {
    /// Whether the stored row says what `w` says (receipt time aside).
    pub(crate) fn same_content(&self, w: &FeedbackWrite) -> bool {
        self.incharge_id == w.incharge_id.to_string()
            && self.constituency_id == w.constituency_id.to_string()
            && self.subject == w.subject
            && self.rating == w.rating
            && self.text == w.text
            && self.collected_at == crate::time::truncate(w.collected_at)
            && self.respondents == w.respondents
    }
}

impl TryFrom<FeedbackRow> for FeedbackRecord {
    type Error = StoreError;
    fn try_from(r: FeedbackRow) -> Result<Self> {
        let bad = |what: &str| StoreError::Corrupt(format!("{what} of feedback {}", r.id));
        Ok(FeedbackRecord {
            id: r.id.parse().map_err(|_| bad("id"))?,
            incharge_id: r.incharge_id.parse().map_err(|_| bad("in-charge"))?,
            constituency_id: r.constituency_id.parse().map_err(|_| bad("constituency"))?,
            constituency_path: AreaPath::parse(&r.constituency_path)
                .map_err(|_| bad("constituency path"))?,
            subject: r.subject,
            rating: r.rating,
            text: r.text,
            collected_at: r.collected_at,
            respondents: r.respondents,
            received_at: r.received_at,
        })
    }
}

/// Narrows a feedback listing; every field set must hold.
#[derive(Debug, Clone, Default)]
pub struct FeedbackFilter {
    /// Only feedback on seats in this subtree (the caller's scope).
    pub scope: Option<AreaPath>,
    pub constituency_id: Option<AreaId>,
    pub subject: Option<String>,
    pub incharge_id: Option<UserId>,
}

/// Totals for one subject of one seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackSummary {
    pub subject: String,
    pub count: i64,
    pub respondents: i64,
    /// Sum of ratings; the mean is `rating_sum / count`.
    pub rating_sum: i64,
}

impl Store {
    pub fn feedback(&self, id: Uuid) -> Result<FeedbackRecord> {
        with_conn!(self, |c| {
            let row: FeedbackRow = feedback::table
                .find(id.to_string())
                .select(FeedbackRow::as_select())
                .first(c)?;
            row.try_into()
        })
    }

    /// Feedback passing `filter`, oldest first, keyset-paged by id (v7: creation order).
    pub fn feedback_list(
        &self,
        filter: &FeedbackFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<FeedbackRecord>> {
        let range = filter
            .scope
            .as_ref()
            .map(|s| (s.as_str().to_owned(), s.subtree_upper_bound()));
        with_conn!(self, |c| {
            let mut q = feedback::table.into_boxed();
            if let Some((lo, hi)) = &range {
                q = q
                    .filter(feedback::constituency_path.ge(lo.clone()))
                    .filter(feedback::constituency_path.lt(hi.clone()));
            }
            if let Some(a) = filter.constituency_id {
                q = q.filter(feedback::constituency_id.eq(a.to_string()));
            }
            if let Some(s) = &filter.subject {
                q = q.filter(feedback::subject.eq(s.clone()));
            }
            if let Some(u) = filter.incharge_id {
                q = q.filter(feedback::incharge_id.eq(u.to_string()));
            }
            if let Some(a) = after {
                q = q.filter(feedback::id.gt(a.to_string()));
            }
            let rows: Vec<FeedbackRow> = q
                .order(feedback::id.asc())
                .limit(limit)
                .select(FeedbackRow::as_select())
                .load(c)?;
            rows.into_iter().map(FeedbackRecord::try_from).collect()
        })
    }

    /// Per subject of one seat: how many entries, respondents and the rating sum.
    pub fn feedback_summary(&self, constituency_id: AreaId) -> Result<Vec<FeedbackSummary>> {
        with_conn!(self, |c| {
            let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = feedback::table
                .filter(feedback::constituency_id.eq(constituency_id.to_string()))
                .group_by(feedback::subject)
                .select((
                    feedback::subject,
                    diesel::dsl::count_star(),
                    diesel::dsl::sum(feedback::respondents),
                    diesel::dsl::sum(feedback::rating),
                ))
                .order(feedback::subject.asc())
                .load(c)?;
            Ok(rows
                .into_iter()
                .map(
                    |(subject, count, respondents, rating_sum)| FeedbackSummary {
                        subject,
                        count,
                        respondents: respondents.unwrap_or(0),
                        rating_sum: rating_sum.unwrap_or(0),
                    },
                )
                .collect())
        })
    }
}
