//! `AuthUser`: the authenticated caller, as a handler argument.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use baithak_domain::{AreaId, AreaPath, DeviceSessionId, Role, UserId};
use std::future::Future;
use std::pin::Pin;

/// The caller behind a valid access token whose device session is still live. Role and
/// area come from the database, not the token, so a demotion or move applies at once.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub session_id: DeviceSessionId,
    pub name: String,
    pub role: Role,
    pub area_id: AreaId,
    pub scope: AreaPath,
}

impl AuthUser {
    /// The one scope rule every object fetch goes through.
    pub fn can_see(&self, target: &AreaPath) -> bool {
        baithak_domain::can_see(&self.scope, target)
    }

    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing_token"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("invalid_token"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("invalid_token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("invalid_token"));
    }
    Ok(token.trim().to_owned())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("app state missing"))?;
            let claims = state.keys.verify(&token?)?;
            let (sid, uid) = (claims.sid, claims.sub);
            let principal = state
                .store
                .run(move |s| s.live_session(sid, uid))
                .await?
                .ok_or(ApiError::Unauthorized("session_revoked"))?;
            tracing::Span::current().record("user_id", tracing::field::display(uid));
            Ok(AuthUser {
                id: principal.user_id,
                session_id: principal.session_id,
                name: principal.name,
                role: principal.role,
                area_id: principal.area_id,
                scope: principal.area_path,
            })
        })
    }
}
