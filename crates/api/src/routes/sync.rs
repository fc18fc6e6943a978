//! `/v1/sync`: the idempotent batch push and the scoped pull feed.
//!
//! Each mutation runs in its own transaction and is answered only after it committed,
//! so a response the device receives describes durable state, and a batch cut short by
//! a failure leaves every earlier mutation applied (a retry reports them `duplicate`).

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::quota::{days_touched_by_meeting, load_policy, reevaluate_days};
use crate::routes::{Json, decode_cursor, encode_cursor};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use baithak_api_types::{
    Change, FieldError, MAX_MUTATIONS_PER_PUSH, MutationResult, MutationStatus, Problem,
    PullResponse, PushRequest, PushResponse,
};
use baithak_domain::meeting::{RawFeedback, RawMeeting};
use baithak_domain::quota::local_day;
use baithak_domain::{AreaKind, Role, validate_feedback, validate_meeting};
use baithak_store::{
    FeedViewer, FeedbackWrite, LedgerWrite, MeetingWrite, StoreError, UpsertOutcome, now_utc,
};
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(paths(push, pull))]
pub struct Doc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sync/push", web::post().to(push))
        .route("/sync/pull", web::get().to(pull));
}

fn rejected(id: Uuid, code: &str, message: impl Into<String>) -> MutationResult {
    MutationResult {
        id,
        status: MutationStatus::Rejected,
        entity_id: None,
        version: None,
        code: Some(code.to_owned()),
        message: Some(message.into()),
        errors: Vec::new(),
        missing: Vec::new(),
    }
}

fn applied_result(id: Uuid, entity: Uuid, version: Option<i64>) -> MutationResult {
    MutationResult {
        id,
        status: MutationStatus::Applied,
        entity_id: Some(entity),
        version,
        code: None,
        message: None,
        errors: Vec::new(),
        missing: Vec::new(),
    }
}

/// The result as the ledger keeps it, to replay for a retry.
fn stored_result(r: &MutationResult) -> Result<String, StoreError> {
    serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn invalid(id: Uuid, errors: Vec<FieldError>) -> MutationResult {
    MutationResult {
        errors,
        ..rejected(id, "validation_failed", "the mutation has invalid fields")
    }
}

/// A stored result, replayed for a retried mutation.
fn replay(id: Uuid, stored: &str) -> MutationResult {
    match serde_json::from_str::<MutationResult>(stored) {
        Ok(mut r) => {
            r.status = MutationStatus::Duplicate;
            r
        }
        Err(_) => MutationResult {
            id,
            status: MutationStatus::Duplicate,
            entity_id: None,
            version: None,
            code: None,
            message: None,
            errors: Vec::new(),
            missing: Vec::new(),
        },
    }
}

/// The content a mutation id is bound to: type and data, canonical JSON (serde_json
/// maps are ordered, so key order on the wire does not matter).
fn content_hash(kind: &str, data: &serde_json::Value) -> String {
    let canonical = serde_json::json!({"type": kind, "data": data}).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn serde_errors(prefix: &str, e: &serde_json::Error) -> Vec<FieldError> {
    vec![FieldError {
        field: prefix.to_owned(),
        message: e.to_string(),
    }]
}

struct Ctx<'a> {
    state: &'a AppState,
    user: &'a AuthUser,
    device_id: &'a str,
}

async fn apply(ctx: &Ctx<'_>, raw: serde_json::Value) -> ApiResult<MutationResult> {
    let id = raw
        .get("id")
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok());
    let Some(id) = id else {
        return Ok(invalid(
            Uuid::nil(),
            vec![FieldError {
                field: "id".into(),
                message: "every mutation needs a UUID id".into(),
            }],
        ));
    };
    let Some(obj) = raw.as_object() else {
        return Ok(invalid(
            id,
            vec![FieldError {
                field: "mutation".into(),
                message: "must be an object".into(),
            }],
        ));
    };
    if let Some(extra) = obj
        .keys()
        .find(|k| !["id", "type", "data"].contains(&k.as_str()))
    {
        return Ok(invalid(
            id,
            vec![FieldError {
                field: extra.clone(),
                message: "unknown field".into(),
            }],
        ));
    }
    let kind = obj
        .get("type")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let data = obj.get("data").cloned().unwrap_or(serde_json::Value::Null);
    let hash = content_hash(&kind, &data);

    // Fast path for retries; the store re-checks inside the transaction.
    let (dev, uid) = (ctx.device_id.to_owned(), ctx.user.id);
    if let Some(prior) = ctx.state.store.run(move |s| s.ledger_get(&dev, id)).await? {
        return Ok(if prior.content_hash == hash && prior.user_id == uid {
            replay(id, &prior.result)
        } else {
            rejected(
                id,
                "idempotency_conflict",
                "this mutation id was used for other content",
            )
        });
    }
    let ledger = LedgerWrite {
        device_id: ctx.device_id.to_owned(),
        mutation_id: id,
        user_id: ctx.user.id,
        content_hash: hash,
    };
    match kind.as_str() {
        "meeting.upsert" => meeting_upsert(ctx, id, data, ledger).await,
        "feedback.create" => feedback_create(ctx, id, data, ledger).await,
        other => Ok(rejected(
            id,
            "unknown_type",
            format!("unknown mutation type {other:?}; expected meeting.upsert or feedback.create"),
        )),
    }
}

async fn meeting_upsert(
    ctx: &Ctx<'_>,
    id: Uuid,
    data: serde_json::Value,
    ledger: LedgerWrite,
) -> ApiResult<MutationResult> {
    if ctx.user.role != Role::Incharge {
        return Ok(rejected(id, "forbidden", "only in-charges record meetings"));
    }
    let raw: RawMeeting = match serde_json::from_value(data) {
        Ok(r) => r,
        Err(e) => return Ok(invalid(id, serde_errors("data", &e))),
    };
    let input = match validate_meeting(&raw) {
        Ok(m) => m,
        Err(errs) => return Ok(invalid(id, errs.into_iter().map(Into::into).collect())),
    };
    let area_id = input.area_id;
    let area = match ctx.state.store.run(move |s| s.area_place(area_id)).await {
        Ok(a) => Some(a),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    if !area.is_some_and(|a| ctx.user.can_see(&a.path)) {
        return Ok(rejected(
            id,
            "forbidden_area",
            "the area is not in your scope",
        ));
    }
    let policy = ctx
        .state
        .store
        .run(|s| crate::quota::policy_from(s.policy()?))
        .await?;
    let occurred_utc = input.occurred_at.with_timezone(&Utc);
    let write = MeetingWrite {
        id: input.id.0,
        incharge_id: ctx.user.id,
        area_id: input.area_id,
        kind: input.kind.as_str().to_owned(),
        occurred_at: occurred_utc.naive_utc(),
        occurred_offset_minutes: input.occurred_at.offset().local_minus_utc() / 60,
        ended_at: input.ended_at.map(|t| t.with_timezone(&Utc).naive_utc()),
        local_day: local_day(occurred_utc, policy.timezone)
            .format("%Y-%m-%d")
            .to_string(),
        received_at: now_utc(),
        lat: input.location.map(|l| l.point.lat()),
        lon: input.location.map(|l| l.point.lon()),
        accuracy_m: input.location.and_then(|l| l.accuracy_m),
        attendee_count: i32::try_from(input.attendee_count).unwrap_or(i32::MAX),
        topic: input.topic,
        notes: input.notes,
        photos: input.photos,
        expected_version: raw.base_version,
    };
    let photos = write.photos.clone();
    let outcome = ctx
        .state
        .store
        .run(move |s| {
            s.upsert_meeting(&write, &ledger, |tx, applied| {
                let policy = load_policy(tx)?;
                let touched = days_touched_by_meeting(tx, &policy, applied, &photos)?;
                reevaluate_days(tx, &policy, touched.days, touched.search, Utc::now())?;
                stored_result(&applied_result(
                    id,
                    applied.meeting_id,
                    Some(applied.version),
                ))
            })
        })
        .await;
    Ok(match outcome {
        Ok(UpsertOutcome::Applied { result, .. }) => serde_json::from_str(&result)
            .map_err(|e| ApiError::internal(format!("stored result: {e}")))?,
        Ok(UpsertOutcome::Duplicate(stored)) => replay(id, &stored),
        Ok(UpsertOutcome::Conflict) => rejected(
            id,
            "idempotency_conflict",
            "this id was used for other content",
        ),
        Ok(UpsertOutcome::MissingMedia(missing)) => MutationResult {
            id,
            status: MutationStatus::MissingMedia,
            entity_id: Some(raw_id(&raw)),
            version: None,
            code: None,
            message: Some("upload these photos, then push again".into()),
            errors: Vec::new(),
            missing,
        },
        Ok(UpsertOutcome::Forbidden) => {
            rejected(id, "forbidden", "this meeting belongs to another in-charge")
        }
        Ok(UpsertOutcome::VersionConflict {
            current_version,
            decided,
        }) => MutationResult {
            version: Some(current_version),
            ..rejected(
                id,
                "version_conflict",
                if decided {
                    "a reviewer has decided on this meeting; it can no longer be edited"
                } else {
                    "the meeting changed since the version this edit was based on"
                },
            )
        },
        Err(StoreError::Invalid(msg)) => rejected(id, "validation_failed", msg),
        Err(e) => return Err(e.into()),
    })
}

fn raw_id(raw: &RawMeeting) -> Uuid {
    raw.id
        .as_deref()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_default()
}

async fn feedback_create(
    ctx: &Ctx<'_>,
    id: Uuid,
    data: serde_json::Value,
    ledger: LedgerWrite,
) -> ApiResult<MutationResult> {
    let raw: RawFeedback = match serde_json::from_value(data) {
        Ok(r) => r,
        Err(e) => return Ok(invalid(id, serde_errors("data", &e))),
    };
    let input = match validate_feedback(&raw) {
        Ok(f) => f,
        Err(errs) => return Ok(invalid(id, errs.into_iter().map(Into::into).collect())),
    };
    let cid = input.constituency_id;
    let seat = match ctx.state.store.run(move |s| s.area_place(cid)).await {
        Ok(a) => Some(a),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    // The seat containing the caller's area, or one inside the caller's scope.
    let allowed = seat.is_some_and(|a| {
        a.kind == AreaKind::Constituency
            && (ctx.user.can_see(&a.path) || a.path.contains(&ctx.user.scope))
    });
    if !allowed {
        return Ok(rejected(
            id,
            "forbidden_area",
            "the constituency is neither yours nor in your scope",
        ));
    }
    let write = FeedbackWrite {
        id: input.id.0,
        incharge_id: ctx.user.id,
        constituency_id: input.constituency_id,
        subject: input.subject,
        rating: i32::from(input.rating),
        text: input.text,
        collected_at: input.collected_at.with_timezone(&Utc).naive_utc(),
        respondents: i32::try_from(input.respondents).unwrap_or(i32::MAX),
        received_at: now_utc(),
    };
    let outcome = ctx
        .state
        .store
        .run(move |s| {
            s.create_feedback(&write, &ledger, |_tx, applied| {
                stored_result(&applied_result(id, applied.feedback_id, None))
            })
        })
        .await;
    Ok(match outcome {
        Ok(UpsertOutcome::Applied { result, .. }) => serde_json::from_str(&result)
            .map_err(|e| ApiError::internal(format!("stored result: {e}")))?,
        Ok(UpsertOutcome::Duplicate(stored)) => replay(id, &stored),
        Ok(UpsertOutcome::Conflict | UpsertOutcome::Forbidden) => rejected(
            id,
            "idempotency_conflict",
            "this id was used for other content",
        ),
        Ok(UpsertOutcome::MissingMedia(_) | UpsertOutcome::VersionConflict { .. }) => {
            rejected(id, "validation_failed", "unexpected outcome for feedback")
        }
        Err(StoreError::Invalid(msg)) => rejected(id, "validation_failed", msg),
        Err(e) => return Err(e.into()),
    })
}

/// Apply a batch of offline mutations, each exactly once, answering one result per
/// mutation in order.
#[utoipa::path(post, operation_id = "sync_push", path = "/v1/sync/push", tag = "sync",
    request_body = PushRequest, security(("bearer" = [])),
    responses((status = 200, body = PushResponse), (status = 400, body = Problem),
              (status = 413, body = Problem, description = "more than 500 mutations")))]
#[tracing::instrument(skip_all, fields(device_id = %body.device_id, n = body.mutations.len()))]
pub async fn push(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<PushRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if body.device_id.trim().is_empty() || body.device_id.len() > 128 {
        return Err(ApiError::field("device_id", "must be 1 to 128 characters"));
    }
    if body.mutations.len() > MAX_MUTATIONS_PER_PUSH {
        return Err(ApiError::TooLarge(format!(
            "at most {MAX_MUTATIONS_PER_PUSH} mutations per push"
        )));
    }
    let ctx = Ctx {
        state: &state,
        user: &user,
        device_id: &body.device_id,
    };
    let mut results = Vec::with_capacity(body.mutations.len());
    for m in body.mutations {
        results.push(apply(&ctx, m).await?);
    }
    Ok(HttpResponse::Ok().json(PushResponse {
        results,
        server_time: Utc::now(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PullQuery {
    /// From the previous pull; absent for the first.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Changes about the caller and its scope since `cursor`, oldest first.
#[utoipa::path(get, operation_id = "sync_pull", path = "/v1/sync/pull", tag = "sync",
    params(PullQuery), security(("bearer" = [])),
    responses((status = 200, body = PullResponse), (status = 400, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn pull(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<PullQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let page = crate::routes::Page::new(q.limit)?;
    let after: i64 = match q.cursor.as_deref() {
        None => 0,
        Some(c) => decode_cursor(c)?
            .parse()
            .map_err(|_| ApiError::field("cursor", "not a cursor from this feed"))?,
    };
    let viewer = FeedViewer {
        user_id: user.id,
        role_sees_scope: matches!(user.role, Role::Coordinator | Role::Hq),
        scope_path: user.scope.clone(),
    };
    let (head, mut rows) = state
        .store
        .run(move |s| {
            // Read the head first: every seq up to it is committed (seq order is commit
            // order), so a caller with nothing visible may jump its cursor there
            // instead of rescanning other people's changes on every pull.
            let head = s.feed_head()?;
            let rows = s.changes_after(after, &viewer, page.fetch())?;
            Ok((head, rows))
        })
        .await?;
    let has_more = page.trim(&mut rows).is_some();
    let last = rows.last().map(|r| r.seq).unwrap_or(after);
    let cursor = if has_more {
        last
    } else {
        last.max(head).max(after)
    };
    let changes = rows
        .into_iter()
        .map(|r| Change {
            seq: r.seq,
            kind: r.kind,
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(HttpResponse::Ok().json(PullResponse {
        changes,
        cursor: encode_cursor(&cursor.to_string()),
        has_more,
    }))
}
