//! Feedback read-back and the audit log.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::quota::utc;
use crate::routes::{Page, decode_cursor, encode_cursor};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use baithak_api_types::{
    AuditEntry, AuditPage, AuditVerifyResponse, FeedbackItem, FeedbackPage, FeedbackSubjectSummary,
    FeedbackSummaryResponse, Problem,
};
use baithak_domain::{AreaId, Role};
use baithak_store::{FeedbackFilter, FeedbackRecord, StoreError};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(paths(feedback_list, feedback_summary, audit_list, audit_verify))]
pub struct Doc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/feedback", web::get().to(feedback_list))
        .route("/feedback/summary", web::get().to(feedback_summary))
        .route("/audit", web::get().to(audit_list))
        .route("/audit/verify", web::get().to(audit_verify));
}

fn feedback_item(f: FeedbackRecord) -> FeedbackItem {
    FeedbackItem {
        id: f.id,
        incharge_id: f.incharge_id.0,
        constituency_id: f.constituency_id.0,
        subject: f.subject,
        rating: f.rating,
        text: f.text,
        collected_at: utc(f.collected_at),
        respondents: f.respondents,
        received_at: utc(f.received_at),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedbackQuery {
    pub constituency_id: Option<Uuid>,
    pub subject: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Feedback the caller may see: in-charges what they collected, coordinators and HQ
/// feedback on seats in their scope.
#[utoipa::path(get, operation_id = "list_feedback", path = "/v1/feedback", tag = "feedback",
    params(FeedbackQuery), security(("bearer" = [])),
    responses((status = 200, body = FeedbackPage), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn feedback_list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<FeedbackQuery>,
) -> ApiResult<HttpResponse> {
    if user.role == Role::Admin {
        return Err(ApiError::Forbidden);
    }
    let q = q.into_inner();
    let page = Page::new(q.limit)?;
    let after = match q.cursor.as_deref() {
        Some(c) => Some(
            Uuid::parse_str(&decode_cursor(c)?)
                .map_err(|_| ApiError::field("cursor", "not a cursor from this list"))?,
        ),
        None => None,
    };
    let filter = FeedbackFilter {
        scope: (user.role != Role::Incharge).then(|| user.scope.clone()),
        constituency_id: q.constituency_id.map(AreaId),
        subject: q.subject,
        incharge_id: (user.role == Role::Incharge).then_some(user.id),
    };
    let mut rows = state
        .store
        .run(move |s| s.feedback_list(&filter, after, page.fetch()))
        .await?;
    let next = page
        .trim(&mut rows)
        .map(|f| encode_cursor(&f.id.to_string()));
    Ok(HttpResponse::Ok().json(FeedbackPage {
        items: rows.into_iter().map(feedback_item).collect(),
        next_cursor: next,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    pub constituency_id: Uuid,
}

/// Per subject (leader) of one seat: how many feedbacks, respondents, mean rating.
#[utoipa::path(get, operation_id = "feedback_summary", path = "/v1/feedback/summary",
    tag = "feedback", params(SummaryQuery), security(("bearer" = [])),
    responses((status = 200, body = FeedbackSummaryResponse), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn feedback_summary(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<SummaryQuery>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Coordinator, Role::Hq])?;
    let id = AreaId(q.constituency_id);
    let seat = match state.store.run(move |s| s.area_place(id)).await {
        Ok(a) if user.can_see(&a.path) => a,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let rows = state.store.run(move |s| s.feedback_summary(id)).await?;
    Ok(HttpResponse::Ok().json(FeedbackSummaryResponse {
        constituency_id: seat.id.0,
        subjects: rows
            .into_iter()
            .map(|r| FeedbackSubjectSummary {
                mean_rating: if r.count == 0 {
                    0.0
                } else {
                    r.rating_sum as f64 / r.count as f64
                },
                subject: r.subject,
                count: r.count,
                respondents: r.respondents,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// The hash-chained audit log, oldest first (HQ).
#[utoipa::path(get, operation_id = "list_audit", path = "/v1/audit", tag = "audit",
    params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn audit_list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Hq])?;
    let q = q.into_inner();
    let page = Page::new(q.limit)?;
    let after: i64 = match q.cursor.as_deref() {
        Some(c) => decode_cursor(c)?
            .parse()
            .map_err(|_| ApiError::field("cursor", "not a cursor from this list"))?,
        None => 0,
    };
    let mut rows = state
        .store
        .run(move |s| s.audit_page(after, page.fetch()))
        .await?;
    let next = page
        .trim(&mut rows)
        .map(|r| encode_cursor(&r.seq.to_string()));
    Ok(HttpResponse::Ok().json(AuditPage {
        items: rows
            .into_iter()
            .map(|r| AuditEntry {
                seq: r.seq,
                at: utc(r.at),
                actor_id: r.actor_id,
                action: r.action,
                entity_type: r.entity_type,
                entity_id: r.entity_id,
                detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
                prev_hash: r.prev_hash,
                hash: r.hash,
            })
            .collect(),
        next_cursor: next,
    }))
}

/// Re-computes the whole hash chain and says where it first breaks, if anywhere (HQ).
#[utoipa::path(get, operation_id = "verify_audit", path = "/v1/audit/verify", tag = "audit",
    security(("bearer" = [])),
    responses((status = 200, body = AuditVerifyResponse), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn audit_verify(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    user.require(&[Role::Hq])?;
    let v = state.store.run(|s| s.audit_verify()).await?;
    Ok(HttpResponse::Ok().json(AuditVerifyResponse {
        ok: v.ok,
        entries: v.entries,
        head_hash: v.head_hash,
        first_bad_seq: v.first_bad_seq,
    }))
}
