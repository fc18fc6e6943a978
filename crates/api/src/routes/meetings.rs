//! `/v1/meetings`: meetings with their photos, flags and review, as in-charges
//! (their own), coordinators (their subtree) and HQ (everything) see them; and the
//! coordinator's accept/reject decision.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::quota::{PhotoSearch, load_policy, reevaluate_day, utc};
use crate::routes::{Json, Page, decode_cursor, encode_cursor};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use baithak_api_types::{
    FlagItem, LocationData, MeetingItem, MeetingPage, MeetingPhoto, Problem, ReviewDecisionRequest,
    ReviewInfo,
};
use baithak_domain::{AreaId, AreaPath, Role, UserId};
use baithak_store::{
    MeetingCursor, MeetingDecision, MeetingFilter, MeetingRecord, NewChange, StoreError, now_utc,
};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(paths(list, get, review))]
pub struct Doc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/meetings", web::get().to(list))
        .route("/meetings/{id}", web::get().to(get))
        .route("/meetings/{id}/review", web::post().to(review));
}

pub(crate) fn meeting_item(m: MeetingRecord) -> MeetingItem {
    let flags: Vec<FlagItem> = serde_json::from_str(&m.flags).unwrap_or_default();
    let location = match (m.lat, m.lon) {
        (Some(lat), Some(lon)) => Some(LocationData {
            lat,
            lon,
            accuracy_m: m.accuracy_m,
        }),
        _ => None,
    };
    MeetingItem {
        id: m.id,
        incharge_id: m.incharge_id.0,
        kind: m.kind,
        occurred_at: utc(m.occurred_at),
        received_at: utc(m.received_at),
        local_day: NaiveDate::parse_from_str(&m.local_day, "%Y-%m-%d").unwrap_or_default(),
        area_id: m.area_id.0,
        attendee_count: m.attendee_count,
        topic: m.topic,
        notes: m.notes,
        location,
        photos: m
            .photos
            .into_iter()
            .map(|sha| MeetingPhoto {
                thumb_url: format!("/v1/media/{sha}?variant=thumb"),
                sha256: sha,
            })
            .collect(),
        counts: m.counted,
        flags,
        version: m.version,
        review: m.decision.map(|decision| ReviewInfo {
            decision,
            reason: m.decision_reason.unwrap_or_default(),
            decided_by: m.decided_by.map(|u| u.0),
            decided_at: m.decided_at.map(utc),
        }),
    }
}

/// Who may read which meetings: in-charges their own, coordinators and HQ their
/// subtree; admins manage accounts, not reports.
fn may_read(user: &AuthUser, m: &MeetingRecord) -> bool {
    match user.role {
        Role::Incharge => m.incharge_id == user.id,
        Role::Coordinator | Role::Hq => user.can_see(&m.area_path),
        Role::Admin => false,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeetingQuery {
    pub incharge_id: Option<Uuid>,
    /// Only meetings in this area's subtree.
    pub area_id: Option<Uuid>,
    /// First local day, inclusive.
    pub from: Option<NaiveDate>,
    /// Last local day, inclusive.
    pub to: Option<NaiveDate>,
    /// `counted`, `not_counted`, `pending` (no decision yet), `accepted`, `rejected`.
    pub status: Option<String>,
    /// Only meetings carrying this flag code.
    pub flag: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

fn parse_cursor(c: &str) -> ApiResult<MeetingCursor> {
    let raw = decode_cursor(c)?;
    let bad = || ApiError::field("cursor", "not a cursor from this list");
    let (micros, id) = raw.split_once('/').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(MeetingCursor {
        occurred_at: chrono::DateTime::from_timestamp_micros(micros)
            .ok_or_else(bad)?
            .naive_utc(),
        id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

/// Meetings the caller may see, oldest first, filtered.
#[utoipa::path(get, operation_id = "list_meetings", path = "/v1/meetings", tag = "meetings",
    params(MeetingQuery), security(("bearer" = [])),
    responses((status = 200, body = MeetingPage), (status = 400, body = Problem),
              (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<MeetingQuery>,
) -> ApiResult<HttpResponse> {
    if user.role == Role::Admin {
        return Err(ApiError::Forbidden);
    }
    let q = q.into_inner();
    let page = Page::new(q.limit)?;
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut filter = MeetingFilter {
        incharge_id: q.incharge_id.map(UserId),
        from_day: q.from.map(|d| d.format("%Y-%m-%d").to_string()),
        to_day: q.to.map(|d| d.format("%Y-%m-%d").to_string()),
        flag: q.flag.clone(),
        ..MeetingFilter::default()
    };
    if user.role == Role::Incharge {
        if q.incharge_id.is_some_and(|i| i != user.id.0) {
            return Ok(HttpResponse::Ok().json(MeetingPage {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        filter.incharge_id = Some(user.id);
    }
    match q.status.as_deref() {
        None => {}
        Some("counted") => filter.counted = Some(true),
        Some("not_counted") => filter.counted = Some(false),
        Some("pending") => filter.decision = Some(None),
        Some(d @ ("accepted" | "rejected")) => filter.decision = Some(Some(d.to_owned())),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be counted, not_counted, pending, accepted or rejected",
            ));
        }
    }
    if let Some(area) = q.area_id {
        let found = state.store.run(move |s| s.area_place(AreaId(area))).await;
        match found {
            Ok(a) if user.can_see(&a.path) => filter.area = Some(a.path),
            Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::NotFound),
            Err(e) => return Err(e.into()),
        }
    }
    let scope = user.scope.clone();
    let mut rows = state
        .store
        .run(move |s| s.meetings_in_scope(Some(&scope), &filter, after.as_ref(), page.fetch()))
        .await?;
    let next = page.trim(&mut rows).map(|m| {
        encode_cursor(&format!(
            "{}/{}",
            m.occurred_at.and_utc().timestamp_micros(),
            m.id
        ))
    });
    Ok(HttpResponse::Ok().json(MeetingPage {
        items: rows.into_iter().map(meeting_item).collect(),
        next_cursor: next,
    }))
}

async fn visible_meeting(state: &AppState, user: &AuthUser, id: Uuid) -> ApiResult<MeetingRecord> {
    let m = state.store.run(move |s| s.meeting(id)).await?;
    if may_read(user, &m) {
        Ok(m)
    } else {
        Err(ApiError::NotFound)
    }
}

/// One meeting, if the caller may see it (404 otherwise).
#[utoipa::path(get, operation_id = "get_meeting", path = "/v1/meetings/{id}", tag = "meetings",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = MeetingItem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let m = visible_meeting(&state, &user, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(meeting_item(m)))
}

/// Accept or reject a meeting (coordinator in scope, or HQ), with a reason the
/// in-charge receives through the pull feed. The day's quota is re-evaluated at once.
#[utoipa::path(post, operation_id = "review_meeting", path = "/v1/meetings/{id}/review",
    tag = "meetings", params(("id" = Uuid, Path)), request_body = ReviewDecisionRequest,
    security(("bearer" = [])),
    responses((status = 200, body = MeetingItem), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn review(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: Json<ReviewDecisionRequest>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Coordinator, Role::Hq])?;
    let body = body.into_inner();
    if !matches!(body.decision.as_str(), "accepted" | "rejected") {
        return Err(ApiError::field("decision", "must be accepted or rejected"));
    }
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(ApiError::field(
            "reason",
            "is required (1 to 2000 characters)",
        ));
    }
    let decision = MeetingDecision {
        meeting_id: id.into_inner(),
        decision: body.decision,
        reason,
        actor: user.id,
        scope: (user.role != Role::Hq).then(|| user.scope.clone()),
        now: now_utc(),
    };
    let m = state
        .store
        .run(move |s| {
            s.decide_meeting(&decision, |tx, m| {
                let policy = load_policy(tx)?;
                let search = PhotoSearch::Only(m.id);
                reevaluate_day(tx, &policy, m.incharge_id, &m.local_day, search, Utc::now())?;
                tx.append_change(&NewChange {
                    kind: "meeting.reviewed".into(),
                    user_id: Some(m.incharge_id),
                    area_path: Some(m.area_path.clone()),
                    entity_id: m.id.to_string(),
                    data: serde_json::json!({
                        "meeting_id": m.id,
                        "incharge_id": m.incharge_id,
                        "decision": decision.decision,
                        "reason": decision.reason,
                        "decided_by": decision.actor,
                    })
                    .to_string(),
                })?;
                Ok(())
            })?;
            s.meeting(decision.meeting_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(meeting_item(m)))
}

/// Every area path of `scope`'s subtree contains this prefix; used to tell which child
/// area an in-charge falls under.
pub(crate) fn child_under(parent: &AreaPath, path: &AreaPath) -> Option<AreaId> {
    let ids = path.ids();
    let depth = parent.ids().len();
    ids.get(depth).copied()
}
