//! `/v1/auth/*`: login, refresh, logout.

use crate::auth::{AuthUser, new_refresh_token, refresh_hash};
use crate::error::{ApiError, ApiResult};
use crate::routes::Json;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use baithak_api_types::{LoginRequest, Problem, RefreshRequest, TokenResponse, TokenUser};
use baithak_store::{NewSession, RotateOutcome, SessionPrincipal, StoreError, now_utc};

fn token_response(
    state: &AppState,
    p: &SessionPrincipal,
    refresh_token: String,
) -> ApiResult<TokenResponse> {
    let access = state
        .keys
        .issue(p.user_id, p.role, p.session_id, chrono::Utc::now())?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: u64::try_from(state.config.access_ttl.num_seconds()).unwrap_or(0),
        refresh_token,
        user: TokenUser {
            id: p.user_id.0,
            name: p.name.clone(),
            role: p.role,
            area_id: p.area_id.0,
        },
    })
}

fn device_field(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::field(
            field,
            &format!("must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// Log in a device. Wrong login and wrong password get the same answer after the same
/// work; repeated failures are rate-limited per login and per client address.
#[utoipa::path(post, operation_id = "login", path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, body = Problem, description = "invalid_credentials"),
              (status = 429, body = Problem)))]
#[tracing::instrument(skip_all, fields(device_id = %body.device_id))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    device_field("device_id", &body.device_id, 128)?;
    if let Some(name) = &body.device_name {
        device_field("device_name", name, 128)?;
    }
    if body.password.len() > 1024 {
        return Err(ApiError::field("password", "too long"));
    }
    let login = body.login.trim().to_lowercase();
    let ip = req.peer_addr().map(|a| a.ip());
    if let Some(wait) = state.limiter.blocked(&state.store, &login, ip).await? {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait,
        });
    }
    let lookup_login = login.clone();
    let found = match state
        .store
        .run(move |s| s.user_by_login(&lookup_login))
        .await
    {
        Ok((user, hash)) => Some((user, hash)),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let hash = found.as_ref().map(|(_, h)| h.clone());
    let ok = state.passwords.verify(body.password, hash).await?;
    let user = match found {
        Some((user, _)) if ok && user.active => user,
        _ => {
            if let Some(wait) = state.limiter.failed(&state.store, &login, ip).await? {
                return Err(ApiError::TooManyRequests {
                    retry_after_secs: wait,
                });
            }
            return Err(ApiError::Unauthorized("invalid_credentials"));
        }
    };
    let refresh = new_refresh_token();
    let new = NewSession {
        user_id: user.id,
        device_id: body.device_id,
        device_name: body.device_name,
        refresh_hash: refresh_hash(&refresh),
        refresh_ttl: state.config.refresh_ttl,
    };
    let principal = state
        .store
        .run(move |s| s.create_session(&new, now_utc()))
        .await?;
    Ok(HttpResponse::Ok().json(token_response(&state, &principal, refresh)?))
}

/// Trade a refresh token for new tokens. The presented token is spent; presenting it
/// again revokes the device session.
#[utoipa::path(post, operation_id = "refresh", path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, body = Problem, description = "invalid_refresh_token or refresh_token_reused")))]
#[tracing::instrument(skip_all)]
pub async fn refresh(
    state: web::Data<AppState>,
    body: Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let token = body.into_inner().refresh_token;
    if token.is_empty() || token.len() > 256 {
        return Err(ApiError::Unauthorized("invalid_refresh_token"));
    }
    let old = refresh_hash(&token);
    let next = new_refresh_token();
    let next_hash = refresh_hash(&next);
    let ttl = state.config.refresh_ttl;
    let outcome = state
        .store
        .run(move |s| s.rotate_refresh(&old, &next_hash, ttl, now_utc()))
        .await?;
    match outcome {
        RotateOutcome::Rotated(p) => Ok(HttpResponse::Ok().json(token_response(&state, &p, next)?)),
        RotateOutcome::Reused => Err(ApiError::Unauthorized("refresh_token_reused")),
        RotateOutcome::Invalid => Err(ApiError::Unauthorized("invalid_refresh_token")),
    }
}

/// End this device's session: its access and refresh tokens stop working at once.
#[utoipa::path(post, operation_id = "logout", path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let (sid, uid) = (user.session_id, user.id);
    state
        .store
        .run(move |s| s.revoke_session(sid, "logout", Some(uid), now_utc()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
