//! Test helpers: every test gets its own database — a SQLite file in a temp folder or a
//! fresh PostgreSQL database — migrated and dropped afterwards, so tests run in
//! parallel without seeing each other's rows; and, where it needs one, its own bucket
//! on a real S3 API ([`s3`]).

#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod s3;

use baithak_store::{Store, StoreOptions};
use diesel::prelude::*;
use std::path::PathBuf;

/// The PostgreSQL server tests use: `BAITHAK_TEST_PG_URL`, defaulting to the local
/// trust-auth server this project's machines run.
pub fn pg_admin_url() -> String {
    std::env::var("BAITHAK_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database that disappears when dropped.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    kind: Kind,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

fn test_opts() -> StoreOptions {
    StoreOptions {
        // Small pools: many tests run at once against one PostgreSQL server.
        max_connections: 8,
        ..StoreOptions::default()
    }
}

impl TestDb {
    pub fn new(kind: Kind) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg_name) = match kind {
            Kind::Sqlite => (
                format!("sqlite://{}", dir.path().join("test.db").display()),
                None,
            ),
            Kind::Postgres => {
                let name = format!("baithak_test_{}", uuid::Uuid::now_v7().simple());
                let admin = pg_admin_url();
                let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
                    panic!("PostgreSQL must be running for tests ({admin}): {e}")
                });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                (replace_db(&admin, &name), Some(name))
            }
        };
        let store = Store::open(&url, &test_opts()).expect("open test database");
        store.migrate().expect("migrate test database");
        TestDb {
            store,
            url,
            kind,
            pg_name,
            _dir: dir,
        }
    }

    pub fn sqlite() -> TestDb {
        TestDb::new(Kind::Sqlite)
    }

    pub fn postgres() -> TestDb {
        TestDb::new(Kind::Postgres)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A folder that lives as long as the database, for data dirs and files.
    pub fn dir(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }
}

/// `postgres://u@h:p/old?x` → `postgres://u@h:p/NAME?x`.
pub fn replace_db(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::establish(&pg_admin_url())
        {
            // FORCE ends the pool's connections that are still open.
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// Defines `$name` twice, as `$name::sqlite` and `$name::postgres`, each running
/// `$body` with a fresh [`TestDb`] bound to `$db`.
#[macro_export]
macro_rules! both_backends {
    ($(#[$m:meta])* fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($db: $crate::TestDb) $body
            #[test]
            fn sqlite() {
                run($crate::TestDb::sqlite())
            }
            #[test]
            fn postgres() {
                run($crate::TestDb::postgres())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_names() {
        assert_eq!(
            replace_db("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            replace_db("postgres://u@h/db?sslmode=disable", "t"),
            "postgres://u@h/t?sslmode=disable"
        );
        assert_eq!(replace_db("postgres://u@h", "t"), "postgres://u@h/t");
    }
}
