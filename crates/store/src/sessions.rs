//! Device sessions and their rotating refresh tokens.
//!
//! A session is one device's login; its refresh tokens form a chain where each use
//! spends the token and issues the next. A spent token presented again means two
//! parties hold the chain, so the whole session is revoked (RFC 6819 §5.2.2.3).

use crate::audit::{AuditConn, AuditEvent};
use crate::db::{Store, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::schema::{areas, device_sessions, refresh_tokens, users};
use crate::users::UserConn;
use baithak_domain::{AreaId, AreaPath, DeviceSessionId, Role, UserId};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = device_sessions, treat_none_as_default_value = false)]
struct SessionRow {
    id: String,
    user_id: String,
    device_id: String,
    device_name: Option<String>,
    created_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
    refresh_expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    revoked_reason: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens, treat_none_as_default_value = false)]
struct TokenRow {
    token_hash: String,
    session_id: String,
    generation: i64,
    issued_at: NaiveDateTime,
    rotated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub device_id: String,
    pub device_name: Option<String>,
    /// SHA-256 of the refresh token handed to the device; the token itself is never kept.
    pub refresh_hash: String,
    /// How long the refresh token stays usable without being used.
    pub refresh_ttl: Duration,
}

/// Who is behind a live session, as the request authenticator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPrincipal {
    pub session_id: DeviceSessionId,
    pub user_id: UserId,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub area_id: AreaId,
    pub area_path: AreaPath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated(SessionPrincipal),
    /// A spent token came back: the session is now revoked.
    Reused,
    /// Unknown, expired or revoked token, or a deactivated account.
    Invalid,
}

fn principal(session_id: DeviceSessionId, u: crate::users::User) -> SessionPrincipal {
    SessionPrincipal {
        session_id,
        user_id: u.id,
        login: u.login,
        name: u.name,
        role: u.role,
        area_id: u.area_id,
        area_path: u.area_path,
    }
}

impl Store {
    /// Starts a session for a device. An earlier live session of the same user on the
    /// same device ends: a device holds one session per user.
    pub fn create_session(&self, new: &NewSession, now: NaiveDateTime) -> Result<SessionPrincipal> {
        let id = DeviceSessionId::new();
        write_tx!(self, |c| {
            diesel::update(
                device_sessions::table
                    .filter(device_sessions::user_id.eq(new.user_id.to_string()))
                    .filter(device_sessions::device_id.eq(&new.device_id))
                    .filter(device_sessions::revoked_at.is_null()),
            )
            .set((
                device_sessions::revoked_at.eq(now),
                device_sessions::revoked_reason.eq("replaced_by_login"),
            ))
            .execute(c)?;
            diesel::insert_into(device_sessions::table)
                .values(&SessionRow {
                    id: id.to_string(),
                    user_id: new.user_id.to_string(),
                    device_id: new.device_id.clone(),
                    device_name: new.device_name.clone(),
                    created_at: now,
                    last_seen_at: now,
                    refresh_expires_at: now + new.refresh_ttl,
                    revoked_at: None,
                    revoked_reason: None,
                })
                .execute(c)?;
            diesel::insert_into(refresh_tokens::table)
                .values(&TokenRow {
                    token_hash: new.refresh_hash.clone(),
                    session_id: id.to_string(),
                    generation: 1,
                    issued_at: now,
                    rotated_at: None,
                })
                .execute(c)?;
            c.append_audit(
                &AuditEvent::new(
                    Some(new.user_id),
                    "session.login",
                    "device_session",
                    id,
                    serde_json::json!({"device_id": new.device_id, "device_name": new.device_name}),
                ),
                now,
            )?;
            let (user, _) = c.user_with_hash(new.user_id)?;
            Ok(principal(id, user))
        })
    }

    /// Spends the refresh token hashed `old_hash` and issues `new_hash` in its place.
    /// `now` is a parameter so tests can play a device that was offline for weeks.
    pub fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        ttl: Duration,
        now: NaiveDateTime,
    ) -> Result<RotateOutcome> {
        write_tx!(self, |c| {
            let token: Option<TokenRow> = refresh_tokens::table
                .find(old_hash)
                .select(TokenRow::as_select())
                .first(c)
                .optional()?;
            let Some(token) = token else {
                return Ok(RotateOutcome::Invalid);
            };
            let session: SessionRow = device_sessions::table
                .find(&token.session_id)
                .select(SessionRow::as_select())
                .first(c)?;
            if session.revoked_at.is_some() {
                return Ok(RotateOutcome::Invalid);
            }
            let session_id: DeviceSessionId = session
                .id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("id of session {}", session.id)))?;
            // The conditional update is the check: of two racing refreshes with one
            // token, exactly one sees a row change.
            let spent = diesel::update(
                refresh_tokens::table
                    .find(old_hash)
                    .filter(refresh_tokens::rotated_at.is_null()),
            )
            .set(refresh_tokens::rotated_at.eq(now))
            .execute(c)?;
            if token.rotated_at.is_some() || spent == 0 {
                diesel::update(device_sessions::table.find(&session.id))
                    .set((
                        device_sessions::revoked_at.eq(now),
                        device_sessions::revoked_reason.eq("refresh_token_reused"),
                    ))
                    .execute(c)?;
                c.append_audit(
                    &AuditEvent::new(
                        session.user_id.parse().ok(),
                        "session.revoke",
                        "device_session",
                        &session.id,
                        serde_json::json!({"reason": "refresh_token_reused", "generation": token.generation}),
                    ),
                    now,
                )?;
                return Ok(RotateOutcome::Reused);
            }
            if session.refresh_expires_at < now {
                return Ok(RotateOutcome::Invalid);
            }
            let user_id: UserId = session
                .user_id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("user of session {}", session.id)))?;
            let (user, _) = c.user_with_hash(user_id)?;
            if !user.active {
                return Ok(RotateOutcome::Invalid);
            }
            diesel::insert_into(refresh_tokens::table)
                .values(&TokenRow {
                    token_hash: new_hash.to_owned(),
                    session_id: session.id.clone(),
                    generation: token.generation + 1,
                    issued_at: now,
                    rotated_at: None,
                })
                .execute(c)?;
            diesel::update(device_sessions::table.find(&session.id))
                .set((
                    device_sessions::last_seen_at.eq(now),
                    device_sessions::refresh_expires_at.eq(now + ttl),
                ))
                .execute(c)?;
            Ok(RotateOutcome::Rotated(principal(session_id, user)))
        })
    }

    /// Ends a session (logout). Idempotent.
    pub fn revoke_session(
        &self,
        id: DeviceSessionId,
        reason: &str,
        actor: Option<UserId>,
        now: NaiveDateTime,
    ) -> Result<()> {
        write_tx!(self, |c| {
            let n = diesel::update(
                device_sessions::table
                    .find(id.to_string())
                    .filter(device_sessions::revoked_at.is_null()),
            )
            .set((
                device_sessions::revoked_at.eq(now),
                device_sessions::revoked_reason.eq(reason),
            ))
            .execute(c)?;
            if n > 0 {
                c.append_audit(
                    &AuditEvent::new(
                        actor,
                        "session.revoke",
                        "device_session",
                        id,
                        serde_json::json!({"reason": reason}),
                    ),
                    now,
                )?;
            }
            Ok(())
        })
    }

    /// The principal of a live session of an active user, or `None`. Checked on every
    /// authenticated request, so logout, deactivation and role changes take effect
    /// before the access token expires.
    pub fn live_session(
        &self,
        id: DeviceSessionId,
        user_id: UserId,
    ) -> Result<Option<SessionPrincipal>> {
        with_conn!(self, |c| {
            let row: Option<(String, String, String, String, String, String, bool)> =
                device_sessions::table
                    .inner_join(users::table.inner_join(areas::table))
                    .filter(device_sessions::id.eq(id.to_string()))
                    .filter(device_sessions::user_id.eq(user_id.to_string()))
                    .filter(device_sessions::revoked_at.is_null())
                    .select((
                        users::login,
                        users::name,
                        users::role,
                        users::area_id,
                        areas::path,
                        users::id,
                        users::active,
                    ))
                    .first(c)
                    .optional()?;
            let Some((login, name, role, area_id, path, _, active)) = row else {
                return Ok(None);
            };
            if !active {
                return Ok(None);
            }
            let bad = |w: &str| StoreError::Corrupt(format!("{w} of user {user_id}"));
            Ok(Some(SessionPrincipal {
                session_id: id,
                user_id,
                login,
                name,
                role: role.parse().map_err(|_| bad("role"))?,
                area_id: area_id.parse().map_err(|_| bad("area"))?,
                area_path: AreaPath::parse(&path).map_err(|_| bad("area path"))?,
            }))
        })
    }
}
