//! The store's one error type.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the payload names the rule for the caller.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The request is well-formed but breaks a rule that needs the database to check
    /// (unknown parent area, a bad import row, …). The message is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// No connection could be had in time: the caller should retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// Stored data that does not parse: a bug or tampering, never the client's fault.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(DieselError),
    #[error("the blocking task failed: {0}")]
    Task(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.constraint_name().unwrap_or(info.message()).to_owned())
            }
            // The connection was lost (the server restarted or the network dropped):
            // nothing about the request is wrong, so it is worth a retry.
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(format!("database connection lost: {}", info.message()))
            }
            other => StoreError::Db(other),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl StoreError {
    /// SQLite reports lock contention as an ordinary error; tests assert it never
    /// reaches a caller, so it is easy to recognise.
    pub fn is_database_locked(&self) -> bool {
        matches!(self, StoreError::Db(e) if e.to_string().contains("database is locked"))
    }

    /// The database's disk is full (SQLite says so of its page limit too): the
    /// operator's to fix, so a caller is told to retry later rather than shown a fault.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, StoreError::Db(e) if {
            let m = e.to_string();
            // SQLite's SQLITE_FULL; PostgreSQL's disk_full, with the OS's ENOSPC text.
            m.contains("database or disk is full") || m.contains("No space left on device")
        })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    #[test]
    fn a_full_database_is_recognised() {
        let mut c = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        diesel::sql_query("CREATE TABLE t (b BLOB)")
            .execute(&mut c)
            .expect("create");
        diesel::sql_query("PRAGMA max_page_count = 8")
            .execute(&mut c)
            .expect("page limit");
        let full = (0..64)
            .find_map(|_| {
                diesel::sql_query("INSERT INTO t VALUES (zeroblob(4096))")
                    .execute(&mut c)
                    .err()
            })
            .map(StoreError::from)
            .expect("the page limit is reached");
        assert!(full.is_out_of_space(), "{full}");
        assert!(!full.is_database_locked());
        assert!(!StoreError::NotFound.is_out_of_space());
    }
}
