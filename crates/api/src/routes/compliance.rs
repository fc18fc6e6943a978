//! Compliance views (daily grid, summary with per-area roll-ups, inactive list),
//! periodic reviews with their snapshot, the overdue-review list, and the quota policy.
//!
//! Every view reads the stored per-day results (`quota_days`), which pushes, reviews
//! and policy changes keep current; nothing here rescans meetings.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::quota::{PhotoSearch, policy_from, reevaluate_days, regroup_open_days, utc};
use crate::routes::Json;
use crate::routes::meetings::child_under;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use baithak_api_types::{
    AreaTotals, ComplianceDaily, ComplianceSummary, CreateReviewRequest, DayItem, InactiveItem,
    InactiveList, InchargeDays, InchargeSummary, OverdueItem, OverdueList, Problem, ReviewItem,
};
use baithak_domain::quota::{grace_deadline, is_inactive, local_day, review_overdue};
use baithak_domain::{AreaId, AreaPath, Policy, Role, UserId};
use baithak_store::{NewChange, NewReview, QuotaCell, ReviewRecord, Store, StoreError, User};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(paths(
    daily,
    summary,
    inactive,
    create_review,
    overdue,
    get_policy,
    put_policy
))]
pub struct Doc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/compliance/daily", web::get().to(daily))
        .route("/compliance/summary", web::get().to(summary))
        .route("/compliance/inactive", web::get().to(inactive))
        .route("/reviews", web::post().to(create_review))
        .route("/reviews/overdue", web::get().to(overdue))
        .service(
            web::resource("/policy")
                .route(web::get().to(get_policy))
                .route(web::put().to(put_policy)),
        );
}

/// Longest period one view covers: a quarter, which bounds the response.
const MAX_DAYS: i64 = 92;

/// `YYYY-MM-DD` (`Display` writes the same as `%Y-%m-%d` without parsing a format
/// string: this runs once per in-charge and day of a view).
fn day_str(d: NaiveDate) -> String {
    d.to_string()
}

/// The area the view is about: the caller's own when absent; 404 outside the scope.
async fn view_area(state: &AppState, user: &AuthUser, area: Option<Uuid>) -> ApiResult<AreaPath> {
    user.require(&[Role::Coordinator, Role::Hq])?;
    let Some(id) = area else {
        return Ok(user.scope.clone());
    };
    match state.store.run(move |s| s.area_place(AreaId(id))).await {
        Ok(a) if user.can_see(&a.path) => Ok(a.path),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Active in-charges in the subtree, oldest first.
fn incharges_in(store: &Store, scope: &AreaPath) -> Result<Vec<User>, StoreError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.users_in_subtree(scope, after, 1000)?;
        let done = page.len() < 1000;
        after = page.last().map(|u| u.id);
        out.extend(
            page.into_iter()
                .filter(|u| u.role == Role::Incharge && u.active),
        );
        if done {
            return Ok(out);
        }
    }
}

fn period(
    policy: &Policy,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    default_days: i64,
) -> ApiResult<(NaiveDate, NaiveDate)> {
    let today = local_day(Utc::now(), policy.timezone);
    let to = to.unwrap_or(today).min(today);
    let from = from.unwrap_or(to - Duration::days(default_days - 1));
    if from > to {
        return Err(ApiError::field("from", "must not be after to"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::field(
            "from",
            &format!("a view covers at most {MAX_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// The local days of a period, each with its key as stored and whether its grace
/// window has closed: the same for every in-charge, so worked out once per view.
struct Calendar {
    days: Vec<(NaiveDate, String, bool)>,
}

impl Calendar {
    fn new(policy: &Policy, from: NaiveDate, to: NaiveDate, now: DateTime<Utc>) -> Self {
        let mut days = Vec::with_capacity(usize::try_from((to - from).num_days() + 1).unwrap_or(0));
        let mut d = from;
        while d <= to {
            days.push((d, day_str(d), now > grace_deadline(d, policy)));
            d += Duration::days(1);
        }
        Calendar { days }
    }
}

/// One in-charge's row of the grid: a cell per calendar day, from `rows` (that
/// in-charge's stored days, sorted by day) or, where none is stored, `none` (or
/// `exempt` before the in-charge joined).
fn days_of(policy: &Policy, user: &User, rows: &[QuotaCell], cal: &Calendar) -> Vec<DayItem> {
    let joined = local_day(utc(user.created_at), policy.timezone);
    let mut rows = rows.iter().peekable();
    let mut out = Vec::with_capacity(cal.days.len());
    for (d, key, is_final) in &cal.days {
        while rows.next_if(|r| r.day < *key).is_some() {}
        let item = match rows.next_if(|r| r.day == *key) {
            Some(r) => DayItem {
                date: *d,
                counted: u32::try_from(r.counted).unwrap_or(0),
                submitted: u32::try_from(r.submitted).unwrap_or(0),
                status: r.status.clone(),
                target_met: r.target_met,
                is_final: *is_final,
            },
            None => DayItem {
                date: *d,
                counted: 0,
                submitted: 0,
                status: if *d < joined { "exempt" } else { "none" }.into(),
                target_met: false,
                is_final: *is_final,
            },
        };
        out.push(item);
    }
    out
}

struct Grid {
    policy: Policy,
    from: NaiveDate,
    to: NaiveDate,
    incharges: Vec<(User, Vec<DayItem>)>,
}

fn grid(
    store: &Store,
    scope: &AreaPath,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Grid, StoreError> {
    let policy = policy_from(store.policy()?)?;
    let users = incharges_in(store, scope)?;
    // Sorted by in-charge, then day: each in-charge's rows are one run of the list.
    let rows = store.quota_days_in_scope(scope, &day_str(from), &day_str(to))?;
    let mut runs: HashMap<UserId, (usize, usize)> = HashMap::with_capacity(users.len());
    for (i, r) in rows.iter().enumerate() {
        runs.entry(r.incharge_id).or_insert((i, i)).1 = i + 1;
    }
    let cal = Calendar::new(&policy, from, to, Utc::now());
    let incharges = users
        .into_iter()
        .map(|u| {
            let mine = runs
                .get(&u.id)
                .and_then(|&(a, b)| rows.get(a..b))
                .unwrap_or(&[]);
            let days = days_of(&policy, &u, mine, &cal);
            (u, days)
        })
        .collect();
    Ok(Grid {
        policy,
        from,
        to,
        incharges,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// Defaults to the caller's area.
    pub area_id: Option<Uuid>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Per in-charge and local day: counted and submitted meetings and the day's status.
#[utoipa::path(get, operation_id = "compliance_daily", path = "/v1/compliance/daily",
    tag = "compliance", params(PeriodQuery), security(("bearer" = [])),
    responses((status = 200, body = ComplianceDaily), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn daily(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<PeriodQuery>,
) -> ApiResult<HttpResponse> {
    let scope = view_area(&state, &user, q.area_id).await?;
    let policy = state.store.run(|s| policy_from(s.policy()?)).await?;
    let (from, to) = period(&policy, q.from, q.to, 7)?;
    let g = state.store.run(move |s| grid(s, &scope, from, to)).await?;
    Ok(HttpResponse::Ok().json(ComplianceDaily {
        policy: serde_json::to_value(&g.policy).map_err(ApiError::internal)?,
        incharges: g
            .incharges
            .into_iter()
            .map(|(u, days)| InchargeDays {
                incharge_id: u.id.0,
                name: u.name,
                area_id: u.area_id.0,
                days,
            })
            .collect(),
    }))
}

/// Met days over days that count (met, short, none); 0 when there are none.
fn met_rate(met: u32, considered: u32) -> f64 {
    if considered == 0 {
        0.0
    } else {
        f64::from(met) / f64::from(considered)
    }
}

/// When each in-charge's last counted meeting happened.
fn last_counted(
    store: &Store,
    ids: &[UserId],
) -> Result<HashMap<UserId, DateTime<Utc>>, StoreError> {
    Ok(store
        .last_counted_at(ids)?
        .into_iter()
        .map(|(u, t)| (u, utc(t)))
        .collect())
}

fn summarise(
    policy: &Policy,
    u: &User,
    days: &[DayItem],
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> InchargeSummary {
    let count = |s: &str| u32::try_from(days.iter().filter(|d| d.status == s).count()).unwrap_or(0);
    let (met, short, none, exempt) = (count("met"), count("short"), count("none"), count("exempt"));
    let considered = met + short + none;
    let streak = days.iter().rev().take_while(|d| d.status == "met").count();
    InchargeSummary {
        incharge_id: u.id.0,
        name: u.name.clone(),
        area_id: u.area_id.0,
        days_met: met,
        days_short: short,
        days_none: none,
        days_exempt: exempt,
        rate: met_rate(met, considered),
        current_streak: u32::try_from(streak).unwrap_or(0),
        inactive: is_inactive(last, utc(u.created_at), now, policy),
        last_counted_at: last,
    }
}

/// Per in-charge: days met, short and none, rate, streak and inactivity; plus totals
/// per child area of the requested area.
#[utoipa::path(get, operation_id = "compliance_summary", path = "/v1/compliance/summary",
    tag = "compliance", params(PeriodQuery), security(("bearer" = [])),
    responses((status = 200, body = ComplianceSummary), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn summary(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<PeriodQuery>,
) -> ApiResult<HttpResponse> {
    let scope = view_area(&state, &user, q.area_id).await?;
    let policy = state.store.run(|s| policy_from(s.policy()?)).await?;
    let (from, to) = period(&policy, q.from, q.to, 30)?;
    let out = state
        .store
        .run(move |s| {
            let g = grid(s, &scope, from, to)?;
            let ids: Vec<UserId> = g.incharges.iter().map(|(u, _)| u.id).collect();
            let last = last_counted(s, &ids)?;
            let now = Utc::now();
            let rows: Vec<(InchargeSummary, Option<AreaId>)> = g
                .incharges
                .iter()
                .map(|(u, days)| {
                    (
                        summarise(&g.policy, u, days, last.get(&u.id).copied(), now),
                        child_under(&scope, &u.area_path),
                    )
                })
                .collect();
            let child_ids: Vec<AreaId> = rows
                .iter()
                .filter_map(|(_, c)| *c)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let children = s.areas_by_ids(&child_ids)?;
            let mut areas: Vec<AreaTotals> = children
                .into_iter()
                .map(|a| {
                    let mine: Vec<&InchargeSummary> = rows
                        .iter()
                        .filter(|(_, c)| *c == Some(a.id))
                        .map(|(r, _)| r)
                        .collect();
                    let met: u32 = mine.iter().map(|r| r.days_met).sum();
                    let short: u32 = mine.iter().map(|r| r.days_short).sum();
                    let none: u32 = mine.iter().map(|r| r.days_none).sum();
                    let considered = met + short + none;
                    AreaTotals {
                        area_id: a.id.0,
                        code: a.code,
                        name: a.name,
                        incharges: u32::try_from(mine.len()).unwrap_or(0),
                        days_met: met,
                        days_short: short,
                        days_none: none,
                        rate: met_rate(met, considered),
                        inactive: u32::try_from(mine.iter().filter(|r| r.inactive).count())
                            .unwrap_or(0),
                    }
                })
                .collect();
            areas.sort_by(|a, b| a.code.cmp(&b.code));
            Ok(ComplianceSummary {
                from: g.from,
                to: g.to,
                incharges: rows.into_iter().map(|(r, _)| r).collect(),
                areas,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InactiveQuery {
    pub area_id: Option<Uuid>,
    /// Days without a counted meeting; defaults to the policy's `inactive_after_days`.
    pub days: Option<u32>,
}

/// In-charges with no counted meeting in the last `days` days.
#[utoipa::path(get, operation_id = "compliance_inactive", path = "/v1/compliance/inactive",
    tag = "compliance", params(InactiveQuery), security(("bearer" = [])),
    responses((status = 200, body = InactiveList), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn inactive(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<InactiveQuery>,
) -> ApiResult<HttpResponse> {
    let scope = view_area(&state, &user, q.area_id).await?;
    let days_q = q.days;
    if days_q.is_some_and(|d| d == 0 || d > 365) {
        return Err(ApiError::field("days", "must be between 1 and 365"));
    }
    let out = state
        .store
        .run(move |s| {
            let mut policy = policy_from(s.policy()?)?;
            if let Some(d) = days_q {
                policy.inactive_after_days = d;
            }
            let users = incharges_in(s, &scope)?;
            let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
            let last = last_counted(s, &ids)?;
            let now = Utc::now();
            let items = users
                .into_iter()
                .filter(|u| is_inactive(last.get(&u.id).copied(), utc(u.created_at), now, &policy))
                .map(|u| InactiveItem {
                    incharge_id: u.id.0,
                    last_counted_at: last.get(&u.id).copied(),
                    name: u.name,
                    area_id: u.area_id.0,
                })
                .collect();
            Ok(InactiveList {
                days: policy.inactive_after_days,
                items,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

fn review_item(r: ReviewRecord) -> ReviewItem {
    ReviewItem {
        id: r.id,
        incharge_id: r.incharge_id.0,
        reviewer_id: r.reviewer_id.0,
        period_from: r.period_from,
        period_to: r.period_to,
        notes: r.notes,
        action: r.action,
        snapshot: serde_json::from_str(&r.snapshot).unwrap_or(serde_json::Value::Null),
        created_at: utc(r.created_at),
    }
}

/// Record a coordinator's periodic review of one in-charge; the server attaches the
/// in-charge's compliance over the period as it stands now.
#[utoipa::path(post, operation_id = "create_review", path = "/v1/reviews", tag = "compliance",
    request_body = CreateReviewRequest, security(("bearer" = [])),
    responses((status = 201, body = ReviewItem), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn create_review(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<CreateReviewRequest>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Coordinator, Role::Hq])?;
    let body = body.into_inner();
    if !matches!(body.action.as_str(), "ok" | "warn" | "activate" | "replace") {
        return Err(ApiError::field(
            "action",
            "must be ok, warn, activate or replace",
        ));
    }
    if body.notes.chars().count() > 5000 {
        return Err(ApiError::field("notes", "at most 5000 characters"));
    }
    if body.period_from > body.period_to
        || (body.period_to - body.period_from).num_days() >= MAX_DAYS
    {
        return Err(ApiError::field(
            "period_from",
            "the period must be 1 to 92 days, from before to",
        ));
    }
    let target = UserId(body.incharge_id);
    let incharge = state.store.run(move |s| s.user(target)).await?;
    if incharge.role != Role::Incharge || !user.can_see(&incharge.area_path) {
        return Err(ApiError::NotFound);
    }
    let reviewer = user.id;
    let rec = state
        .store
        .run(move |s| {
            let policy = policy_from(s.policy()?)?;
            let (from, to) = (body.period_from, body.period_to);
            let mut rows: Vec<QuotaCell> = s
                .quota_days(&[incharge.id], &day_str(from), &day_str(to))?
                .into_iter()
                .map(Into::into)
                .collect();
            rows.sort_unstable_by(|a, b| a.day.cmp(&b.day));
            let now = Utc::now();
            let days = days_of(
                &policy,
                &incharge,
                &rows,
                &Calendar::new(&policy, from, to, now),
            );
            let last = s
                .last_counted_at(&[incharge.id])?
                .first()
                .map(|(_, t)| utc(*t));
            let snapshot = serde_json::json!({
                "summary": summarise(&policy, &incharge, &days, last, now),
                "days": days,
            });
            s.create_review(&NewReview {
                incharge_id: incharge.id,
                reviewer_id: reviewer,
                period_from: day_str(from),
                period_to: day_str(to),
                notes: body.notes,
                action: body.action,
                snapshot: snapshot.to_string(),
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(review_item(rec)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AreaQuery {
    pub area_id: Option<Uuid>,
}

/// In-charges whose last review is older than the policy's review interval (or who
/// were never reviewed).
#[utoipa::path(get, operation_id = "reviews_overdue", path = "/v1/reviews/overdue",
    tag = "compliance", params(AreaQuery), security(("bearer" = [])),
    responses((status = 200, body = OverdueList), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn overdue(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<AreaQuery>,
) -> ApiResult<HttpResponse> {
    let scope = view_area(&state, &user, q.area_id).await?;
    let out = state
        .store
        .run(move |s| {
            let policy = policy_from(s.policy()?)?;
            let users = incharges_in(s, &scope)?;
            let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
            let latest: HashMap<UserId, DateTime<Utc>> = s
                .latest_reviews(&ids)?
                .into_iter()
                .map(|r| (r.incharge_id, utc(r.created_at)))
                .collect();
            let now = Utc::now();
            let items = users
                .into_iter()
                .filter(|u| review_overdue(latest.get(&u.id).copied(), now, &policy))
                .map(|u| OverdueItem {
                    incharge_id: u.id.0,
                    last_review_at: latest.get(&u.id).copied(),
                    name: u.name,
                    area_id: u.area_id.0,
                })
                .collect();
            Ok(OverdueList { items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

fn policy_body(policy: &Policy, version: i64) -> ApiResult<serde_json::Value> {
    let mut v = serde_json::to_value(policy).map_err(ApiError::internal)?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("version".into(), version.into());
    }
    Ok(v)
}

/// The quota policy in force, with its `version` (0 while the defaults apply).
#[utoipa::path(get, operation_id = "get_policy", path = "/v1/policy", tag = "compliance",
    security(("bearer" = [])), responses((status = 200, body = Object)))]
#[tracing::instrument(skip_all)]
pub async fn get_policy(state: web::Data<AppState>, _user: AuthUser) -> ApiResult<HttpResponse> {
    let rec = state.store.run(|s| s.policy()).await?;
    let version = rec.as_ref().map_or(0, |r| r.version);
    let policy = policy_from(rec)?;
    Ok(HttpResponse::Ok().json(policy_body(&policy, version)?))
}

/// Replace the policy (HQ). Send back what GET gave, edited; its `version` guards
/// against overwriting a change made in between (409). Days still open (not final) are
/// re-evaluated under the new rules in the same transaction; final days keep the
/// verdict of the policy they were settled under. A new time zone moves the meetings
/// of open days to their local day in that zone.
#[utoipa::path(put, operation_id = "put_policy", path = "/v1/policy", tag = "compliance",
    request_body = Object, security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn put_policy(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Hq])?;
    let mut body = body.into_inner();
    let expected = match body.as_object_mut().and_then(|o| o.remove("version")) {
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| ApiError::field("version", "must be an integer"))?,
        ),
        None => None,
    };
    let new: Policy = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    new.validate()?;
    let old = state.store.run(|s| policy_from(s.policy()?)).await?;
    let text = serde_json::to_string(&new).map_err(ApiError::internal)?;
    let actor = user.id;
    let days_back = i64::from(old.late_grace_days.max(new.late_grace_days)) + 1;
    let rec = state
        .store
        .run(move |s| {
            s.put_policy(&text, expected, Some(actor), |tx, rec| {
                let now = Utc::now();
                // The earlier of the two zones' "today", so a zone change cannot skip
                // the first open day.
                let today = local_day(now, new.timezone).min(local_day(now, old.timezone));
                let from = day_str(today - Duration::days(days_back));
                let mut days: BTreeSet<(UserId, String)> = tx
                    .meeting_days(None, &from, "9999-12-31")?
                    .into_iter()
                    .collect();
                if old.change_impact(&new).regroup_days {
                    days.extend(regroup_open_days(tx, &new, &from)?);
                }
                reevaluate_days(tx, &new, days, PhotoSearch::Every, now)?;
                tx.append_change(&NewChange {
                    kind: "policy.changed".into(),
                    user_id: None,
                    area_path: None,
                    entity_id: "policy".into(),
                    data: serde_json::json!({"version": rec.version, "policy": new}).to_string(),
                })?;
                Ok(())
            })
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict {
                code: "version_conflict",
                detail: "the policy changed since you read it; reload and edit again".into(),
            },
            e => e.into(),
        })?;
    let policy = policy_from(Some(rec.clone()))?;
    Ok(HttpResponse::Ok().json(policy_body(&policy, rec.version)?))
}
