//! Persistence for baithak: one API over SQLite (the embedded default) and PostgreSQL,
//! chosen by the database URL's scheme, with embedded migrations for each.
//!
//! This is the only crate that names diesel. Functions here are blocking; callers on an
//! async runtime go through [`Store::run`], which moves the work to the blocking pool.

mod audit;
mod db;
mod error;
pub mod schema;
mod sessions;
mod time;
mod users;

pub mod areas;

pub use audit::{AuditEvent, AuditRecord, AuditVerification, GENESIS_HASH};
pub use db::{Backend, Store, StoreOptions};
pub use error::StoreError;
pub use sessions::{NewSession, RotateOutcome, SessionPrincipal};
pub use time::now_utc;
pub use users::{NewUser, User, UserPatch};
