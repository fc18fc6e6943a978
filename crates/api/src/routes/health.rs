//! Liveness and readiness probes.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use baithak_api_types::Problem;

/// The process is up (no dependency is checked, so a slow database cannot make an
/// orchestrator restart a healthy process).
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The database and the photo store answer: this replica may take traffic.
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health",
    responses((status = 200), (status = 503, body = Problem)))]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state
        .store
        .run(|s| s.ping())
        .await
        .map_err(|e| ApiError::Unavailable {
            retry_after_secs: 5,
            cause: e.to_string(),
        })?;
    // Any key will do: a reachable store answers "absent".
    let probe = baithak_media::Sha256::from_bytes([0u8; 32]);
    state
        .blobs
        .exists(baithak_media::Variant::Thumb, &probe)
        .await
        .map_err(|e| ApiError::Unavailable {
            retry_after_secs: 5,
            cause: e.to_string(),
        })?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"status": "ready", "database": "ok", "photos": "ok"})))
}
