//! `/v1/users`: accounts, managed by admins (everyone) and coordinators (their
//! in-charges), read by anyone who may read users within their scope.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::routes::{Json, Page, decode_cursor, encode_cursor};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use baithak_api_types::{CreateUserRequest, Problem, UpdateUserRequest, UserItem, UserPage};
use baithak_domain::validate::{display_name, password};
use baithak_domain::{AreaId, Login, Role, UserId, ValidationError};
use baithak_store::{NewUser, StoreError, User, UserPatch};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

pub(crate) fn user_item(u: User) -> UserItem {
    UserItem {
        id: u.id.0,
        login: u.login,
        name: u.name,
        role: u.role,
        area_id: u.area_id.0,
        active: u.active,
        created_at: DateTime::<Utc>::from_naive_utc_and_offset(u.created_at, Utc),
        updated_at: DateTime::<Utc>::from_naive_utc_and_offset(u.updated_at, Utc),
    }
}

fn parse_role(field: &str, raw: &str) -> Result<Role, ValidationError> {
    raw.parse()
        .map_err(|_| ValidationError::new(field, "must be incharge, coordinator, hq or admin"))
}

/// The area must exist and lie in the actor's scope; both failures read the same so
/// that area ids outside the scope cannot be probed.
async fn area_in_scope(state: &AppState, actor: &AuthUser, id: Uuid) -> ApiResult<()> {
    let area = state.store.run(move |s| s.area_place(AreaId(id))).await;
    match area {
        Ok(a) if actor.can_see(&a.path) => Ok(()),
        Ok(_) | Err(StoreError::NotFound) => {
            Err(ApiError::field("area_id", "no such area in your scope"))
        }
        Err(e) => Err(e.into()),
    }
}

/// A user the actor may see, or 404.
async fn visible_user(state: &AppState, actor: &AuthUser, id: Uuid) -> ApiResult<User> {
    let user = state.store.run(move |s| s.user(UserId(id))).await?;
    if user.id == actor.id || (actor.role.can_read_users() && actor.can_see(&user.area_path)) {
        Ok(user)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Create an account. Admins create any role; coordinators create in-charges inside
/// their division.
#[utoipa::path(post, operation_id = "create_user", path = "/v1/users", tag = "users", request_body = CreateUserRequest,
    security(("bearer" = [])),
    responses((status = 201, body = UserItem), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem, description = "login_taken")))]
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    actor: AuthUser,
    body: Json<CreateUserRequest>,
) -> ApiResult<HttpResponse> {
    actor.require(&[Role::Admin, Role::Coordinator])?;
    let body = body.into_inner();
    let mut errors = Vec::new();
    let login = Login::parse("login", &body.login)
        .map_err(|e| errors.push(e))
        .ok();
    let name = display_name("name", &body.name)
        .map_err(|e| errors.push(e))
        .ok();
    let role = parse_role("role", &body.role)
        .map_err(|e| errors.push(e))
        .ok();
    if let Err(e) = password("password", &body.password) {
        errors.push(e);
    }
    let (Some(login), Some(name), Some(role)) = (login, name, role) else {
        return Err(errors.into());
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    if !actor.role.can_manage(role) {
        return Err(ApiError::Forbidden);
    }
    area_in_scope(&state, &actor, body.area_id).await?;
    let hash = state.passwords.hash(body.password).await?;
    let new = NewUser {
        login: login.as_str().to_owned(),
        name,
        role,
        area_id: AreaId(body.area_id),
        password_hash: hash,
    };
    let actor_id = actor.id;
    match state
        .store
        .run(move |s| s.create_user(&new, Some(actor_id)))
        .await
    {
        Ok(u) => Ok(HttpResponse::Created().json(user_item(u))),
        Err(StoreError::Conflict(_)) => Err(ApiError::Conflict {
            code: "login_taken",
            detail: "an account with this login exists".into(),
        }),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Accounts in the caller's scope, oldest first.
#[utoipa::path(get, operation_id = "list_users", path = "/v1/users", tag = "users", params(UserQuery), security(("bearer" = [])),
    responses((status = 200, body = UserPage), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    actor: AuthUser,
    q: web::Query<UserQuery>,
) -> ApiResult<HttpResponse> {
    if !actor.role.can_read_users() {
        return Err(ApiError::Forbidden);
    }
    let q = q.into_inner();
    let page = Page::new(q.limit)?;
    let after = match q.cursor.as_deref().map(decode_cursor).transpose()? {
        Some(c) => Some(
            c.parse::<UserId>()
                .map_err(|_| ApiError::field("cursor", "not a cursor from this list"))?,
        ),
        None => None,
    };
    let scope = actor.scope.clone();
    let mut rows = state
        .store
        .run(move |s| s.users_in_subtree(&scope, after, page.fetch()))
        .await?;
    let next = page
        .trim(&mut rows)
        .map(|u| encode_cursor(&u.id.to_string()));
    Ok(HttpResponse::Ok().json(UserPage {
        items: rows.into_iter().map(user_item).collect(),
        next_cursor: next,
    }))
}

/// One account: the caller's own, or one in scope for roles that read users.
#[utoipa::path(get, operation_id = "get_user", path = "/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserItem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    actor: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = visible_user(&state, &actor, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(user_item(user)))
}

/// Change an account. Deactivating it or setting a new password ends its sessions.
#[utoipa::path(patch, operation_id = "update_user", path = "/v1/users/{id}", tag = "users", request_body = UpdateUserRequest,
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = UserItem), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    actor: AuthUser,
    id: web::Path<Uuid>,
    body: Json<UpdateUserRequest>,
) -> ApiResult<HttpResponse> {
    actor.require(&[Role::Admin, Role::Coordinator])?;
    let body = body.into_inner();
    let target = visible_user(&state, &actor, id.into_inner()).await?;
    let mut errors = Vec::new();
    let name = match body.name.as_deref().map(|n| display_name("name", n)) {
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        Some(Ok(n)) => Some(n),
        None => None,
    };
    let role = match body.role.as_deref().map(|r| parse_role("role", r)) {
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    if let Some(p) = body.password.as_deref()
        && let Err(e) = password("password", p)
    {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    if !actor.role.can_manage(target.role) || role.is_some_and(|r| !actor.role.can_manage(r)) {
        return Err(ApiError::Forbidden);
    }
    if let Some(area) = body.area_id {
        area_in_scope(&state, &actor, area).await?;
    }
    let password_hash = match body.password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };
    let patch = UserPatch {
        name,
        role,
        area_id: body.area_id.map(AreaId),
        active: body.active,
        password_hash,
    };
    let (target_id, actor_id) = (target.id, actor.id);
    let user = state
        .store
        .run(move |s| {
            let user = s.update_user(target_id, &patch, Some(actor_id))?;
            // The in-charge's phone learns of a move, a new role or a deactivation on
            // its next pull (when it can still pull).
            if user.area_id != target.area_id
                || user.role != target.role
                || user.active != target.active
            {
                s.append_change(&baithak_store::NewChange {
                    kind: "assignment.changed".into(),
                    user_id: Some(user.id),
                    area_path: Some(user.area_path.clone()),
                    entity_id: user.id.to_string(),
                    data: serde_json::json!({
                        "user_id": user.id,
                        "area_id": user.area_id,
                        "role": user.role,
                        "active": user.active,
                    })
                    .to_string(),
                })?;
            }
            Ok(user)
        })
        .await?;
    Ok(HttpResponse::Ok().json(user_item(user)))
}
