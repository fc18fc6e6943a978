//! User accounts. Password hashes are produced and checked by the caller (argon2 lives
//! in the API crate); the store only keeps them.

use crate::areas::Area;
use crate::audit::{AuditConn, AuditEvent};
use crate::db::{Store, impl_both, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::schema::{areas, device_sessions, users};
use crate::time::now_utc;
use baithak_domain::{AreaId, AreaPath, Role, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
struct UserRow {
    id: String,
    login: String,
    name: String,
    role: String,
    area_id: String,
    password_hash: String,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A stored account with its area's path (what every scope check needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub area_id: AreaId,
    pub area_path: AreaPath,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

fn parse_user(r: UserRow, area_path: &str) -> Result<(User, String)> {
    let bad = |what: &str| StoreError::Corrupt(format!("{what} of user {}", r.id));
    let user = User {
        id: r.id.parse().map_err(|_| bad("id"))?,
        role: r.role.parse().map_err(|_| bad("role"))?,
        area_id: r.area_id.parse().map_err(|_| bad("area"))?,
        area_path: AreaPath::parse(area_path).map_err(|_| bad("area path"))?,
        login: r.login,
        name: r.name,
        active: r.active,
        created_at: r.created_at,
        updated_at: r.updated_at,
    };
    Ok((user, r.password_hash))
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub login: String,
    pub name: String,
    pub role: Role,
    pub area_id: AreaId,
    pub password_hash: String,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub area_id: Option<AreaId>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
}

pub(crate) trait UserConn {
    fn user_with_hash(&mut self, id: UserId) -> Result<(User, String)>;
}

impl_both!(UserConn {
    fn user_with_hash(&mut self, id: UserId) -> Result<(User, String)> {
        let (row, path): (UserRow, String) = users::table
            .inner_join(areas::table)
            .filter(users::id.eq(id.to_string()))
            .select((UserRow::as_select(), areas::path))
            .first(self)?;
        parse_user(row, &path)
    }
});

impl Store {
    pub fn create_user(&self, new: &NewUser, actor: Option<UserId>) -> Result<User> {
        let id = UserId::new();
        let now = now_utc();
        write_tx!(self, |c| {
            // A missing area is the caller's mistake, not a foreign-key crash.
            let area: Area = match crate::areas::AreaConn::area_by_id(c, new.area_id) {
                Err(StoreError::NotFound) => {
                    return Err(StoreError::Invalid("area does not exist".into()));
                }
                other => other?,
            };
            diesel::insert_into(users::table)
                .values(&UserRow {
                    id: id.to_string(),
                    login: new.login.clone(),
                    name: new.name.clone(),
                    role: new.role.as_str().to_owned(),
                    area_id: area.id.to_string(),
                    password_hash: new.password_hash.clone(),
                    active: true,
                    created_at: now,
                    updated_at: now,
                })
                .execute(c)?;
            c.append_audit(
                &AuditEvent::new(
                    actor,
                    "user.create",
                    "user",
                    id,
                    serde_json::json!({"login": new.login, "role": new.role, "area_id": new.area_id}),
                ),
                now,
            )?;
            Ok(c.user_with_hash(id)?.0)
        })
    }

    pub fn user(&self, id: UserId) -> Result<User> {
        with_conn!(self, |c| Ok(c.user_with_hash(id)?.0))
    }

    /// The account and its password hash, for login.
    pub fn user_by_login(&self, login: &str) -> Result<(User, String)> {
        with_conn!(self, |c| {
            let (row, path): (UserRow, String) = users::table
                .inner_join(areas::table)
                .filter(users::login.eq(login))
                .select((UserRow::as_select(), areas::path))
                .first(c)?;
            parse_user(row, &path)
        })
    }

    /// Users whose area lies in `scope`'s subtree, oldest first (ids are v7, so id
    /// order is creation order), keyset-paged by id.
    pub fn users_in_subtree(
        &self,
        scope: &AreaPath,
        after: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<User>> {
        let upper = scope.subtree_upper_bound();
        with_conn!(self, |c| {
            let mut q = users::table
                .inner_join(areas::table)
                .filter(areas::path.ge(scope.as_str()))
                .filter(areas::path.lt(upper.as_str()))
                .into_boxed();
            if let Some(after) = after {
                q = q.filter(users::id.gt(after.to_string()));
            }
            let rows: Vec<(UserRow, String)> = q
                .order(users::id.asc())
                .limit(limit)
                .select((UserRow::as_select(), areas::path))
                .load(c)?;
            rows.into_iter()
                .map(|(r, p)| parse_user(r, &p).map(|(u, _)| u))
                .collect()
        })
    }

    /// Applies `patch`. Deactivating an account or changing its password ends all its
    /// device sessions, so a lost phone stops syncing at once.
    pub fn update_user(
        &self,
        id: UserId,
        patch: &UserPatch,
        actor: Option<UserId>,
    ) -> Result<User> {
        let now = now_utc();
        write_tx!(self, |c| {
            let (before, _) = c.user_with_hash(id)?;
            if let Some(area_id) = patch.area_id {
                match crate::areas::AreaConn::area_by_id(c, area_id) {
                    Err(StoreError::NotFound) => {
                        return Err(StoreError::Invalid("area does not exist".into()));
                    }
                    other => other?,
                };
            }
            diesel::update(users::table.find(id.to_string()))
                .set((
                    patch.name.as_ref().map(|n| users::name.eq(n)),
                    patch.role.map(|r| users::role.eq(r.as_str())),
                    patch.area_id.map(|a| users::area_id.eq(a.to_string())),
                    patch.active.map(|a| users::active.eq(a)),
                    patch
                        .password_hash
                        .as_ref()
                        .map(|h| users::password_hash.eq(h)),
                    users::updated_at.eq(now),
                ))
                .execute(c)?;
            let ends_sessions = patch.active == Some(false) || patch.password_hash.is_some();
            if ends_sessions {
                diesel::update(
                    device_sessions::table
                        .filter(device_sessions::user_id.eq(id.to_string()))
                        .filter(device_sessions::revoked_at.is_null()),
                )
                .set((
                    device_sessions::revoked_at.eq(now),
                    device_sessions::revoked_reason.eq(if patch.active == Some(false) {
                        "user_deactivated"
                    } else {
                        "password_changed"
                    }),
                ))
                .execute(c)?;
            }
            let (after, _) = c.user_with_hash(id)?;
            c.append_audit(
                &AuditEvent::new(
                    actor,
                    "user.update",
                    "user",
                    id,
                    serde_json::json!({
                        "name": patch.name.as_ref().filter(|n| **n != before.name),
                        "role": patch.role.filter(|r| *r != before.role),
                        "area_id": patch.area_id.filter(|a| *a != before.area_id),
                        "active": patch.active.filter(|a| *a != before.active),
                        "password_changed": patch.password_hash.is_some(),
                    }),
                ),
                now,
            )?;
            Ok(after)
        })
    }

    /// True when nothing has been set up yet (for `serve --demo`).
    pub fn is_empty(&self) -> Result<bool> {
        with_conn!(self, |c| {
            let n_areas: i64 = areas::table.count().get_result(c)?;
            let n_users: i64 = users::table.count().get_result(c)?;
            Ok(n_areas == 0 && n_users == 0)
        })
    }
}
