//! Connections: backend selection by URL scheme, SQLite's required pragmas, pools,
//! migrations, and the two macros through which every query reaches a connection.

use crate::areas::AreaPlaces;
use crate::error::{Result, StoreError};
use crate::photo_index::PhotoIndex;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Arbitrary constant naming the advisory lock that serialises migrations when several
/// replicas start against one PostgreSQL at once.
const PG_MIGRATION_LOCK: i64 = 0x62_6169_7468_616b;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it is told to retry.
    pub connection_timeout: Duration,
    /// SQLite only: how long a writer waits for the write lock.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connection_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;
type PgPool = Pool<ConnectionManager<PgConnection>>;

#[derive(Clone)]
enum Pools {
    /// With the lock SQLite writers of this process queue on (see
    /// [`Store::sqlite_writer`]).
    Sqlite(SqlitePool, Arc<Mutex<()>>),
    Pg(PgPool),
}

pub(crate) enum Conn {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Pg(PooledConnection<ConnectionManager<PgConnection>>),
}

/// Runs `$body` with `$c` bound to the concrete connection type. The body is compiled
/// once per backend, so the same diesel DSL serves both without a generic bound maze.
macro_rules! with_conn {
    ($store:expr, |$c:ident| $body:expr) => {{
        match $store.conn()? {
            $crate::db::Conn::Sqlite(mut pooled) => {
                let $c: &mut ::diesel::SqliteConnection = &mut pooled;
                $body
            }
            $crate::db::Conn::Pg(mut pooled) => {
                let $c: &mut ::diesel::PgConnection = &mut pooled;
                $body
            }
        }
    }};
}

/// A write transaction. On SQLite it begins IMMEDIATE: a deferred transaction that
/// reads and then writes fails with "database is locked" under concurrency, whatever
/// the busy timeout, because SQLite cannot upgrade its read lock while another writer
/// waits. SQLite writers of this process also queue on an in-process lock first (see
/// [`Store::sqlite_writer`]).
macro_rules! write_tx {
    ($store:expr, |$c:ident| $body:expr) => {{
        let _writer = $store.sqlite_writer();
        match $store.conn()? {
            $crate::db::Conn::Sqlite(mut pooled) => pooled.immediate_transaction(
                |$c: &mut ::diesel::SqliteConnection| -> $crate::error::Result<_> { $body },
            ),
            $crate::db::Conn::Pg(mut pooled) => {
                let conn: &mut ::diesel::PgConnection = &mut pooled;
                conn.transaction(
                    |$c: &mut ::diesel::PgConnection| -> $crate::error::Result<_> { $body },
                )
            }
        }
    }};
}

pub(crate) use {with_conn, write_tx};

/// A statement of fixed SQL text that diesel would not keep prepared: `sql_query`, and
/// every `UPDATE` (its text can depend on which fields a changeset skips). On
/// PostgreSQL each run of those is parsed and planned again, in a round trip of its
/// own; wrapped, it is prepared once per connection like diesel's other queries.
/// Use it only where the text cannot vary between calls, and only with
/// `get_result`/`load`: `execute` loses the wrapper on its way to the cache.
///
/// Struct inserts say `treat_none_as_default_value = false` for the same reason:
/// diesel's default binds each field as "this value or DEFAULT", which it never
/// caches on PostgreSQL (and no column has a default that a `None` should get).
pub(crate) struct Prepared<Q>(pub Q);

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for Prepared<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

// No static id: the statement cache then keys by the SQL text and bind types.
impl<Q> diesel::query_builder::QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, C> RunQueryDsl<C> for Prepared<Q> {}

#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout: Duration,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // busy_timeout first, so switching to WAL waits instead of failing.
        // synchronous=FULL: a push is acknowledged only once durable, so the WAL is
        // synced at every commit (NORMAL could lose the last commits on power loss).
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            self.busy_timeout.as_millis()
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Hides the password of a URL for messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &creds[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// libpq's default `sslmode=prefer` encrypts a connection whenever the server offers
/// TLS, as Debian's PostgreSQL does out of the box, loopback included. On loopback that
/// protects nothing (the bytes never leave the kernel) and cost about a fifth of
/// PostgreSQL's CPU in the load run (BENCHMARKS.md). So a URL naming a loopback host
/// and no TLS setting of its own (nor one in the environment, `PGSSLMODE` and the like,
/// which libpq would read) gets `sslmode=allow`: a plain connection first, TLS only if
/// the server's `pg_hba.conf` insists on it. Any other URL is the operator's choice and
/// passes unchanged.
fn plain_on_loopback(url: &str, tls_env_set: bool) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some((_, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before.split('/').next().unwrap_or(""), Some(query)),
        None => (rest.split('/').next().unwrap_or(""), None),
    };
    let host_port = authority.rsplit('@').next().unwrap_or("");
    // Any TLS setting (certificates, channel binding, GSS encryption) means the operator
    // chose; so does `host=`, which overrides the authority (a socket directory,
    // another host).
    let chosen_elsewhere = query.is_some_and(|q| {
        q.split('&').any(|kv| {
            [
                "ssl",
                "requiressl",
                "channel_binding",
                "gssencmode",
                "host=",
                "hostaddr=",
            ]
            .iter()
            .any(|key| kv.starts_with(key))
        })
    });
    if tls_env_set || chosen_elsewhere || !is_loopback(host_port) {
        return Cow::Borrowed(url);
    }
    let sep = match query {
        None => "?",
        Some(q) if q.is_empty() || q.ends_with('&') => "",
        Some(_) => "&",
    };
    Cow::Owned(format!("{url}{sep}sslmode=allow"))
}

/// `host[:port]`, one host only (a list of hosts is a failover set: left alone).
fn is_loopback(host_port: &str) -> bool {
    if host_port.contains(',') {
        return false;
    }
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    if rest.is_empty() {
        return None;
    }
    Some(PathBuf::from(rest))
}

/// Cheap to clone: a handle to the connection pool and the in-process photo index.
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    pub(crate) photo_index: Arc<PhotoIndex>,
    pub(crate) area_places: Arc<AreaPlaces>,
}

impl Store {
    /// Opens the database named by `url` (`sqlite://PATH` or `postgres://…`). One
    /// connection is made up front so a wrong URL fails here with the real reason.
    pub fn open(url: &str, opts: &StoreOptions) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_pg(url, opts)
        } else if let Some(path) = sqlite_path(url) {
            Self::open_sqlite(&path, opts)
        } else {
            Err(StoreError::Connect(format!(
                "unsupported database URL {:?}: use sqlite://PATH or postgres://USER@HOST/DB",
                redact(url)
            )))
        }
    }

    fn open_sqlite(path: &Path, opts: &StoreOptions) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Connect(format!("cannot create folder {}: {e}", dir.display()))
            })?;
        }
        let path_str = path.to_string_lossy().into_owned();
        SqliteConnection::establish(&path_str).map_err(|e| {
            StoreError::Connect(format!("cannot open SQLite database {path_str}: {e}"))
        })?;
        let pool = Pool::builder()
            .max_size(opts.max_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(opts.connection_timeout)
            .connection_customizer(Box::new(SqlitePragmas {
                busy_timeout: opts.busy_timeout,
            }))
            .build(ConnectionManager::<SqliteConnection>::new(path_str.clone()))
            .map_err(|e| StoreError::Connect(format!("SQLite database {path_str}: {e}")))?;
        Ok(Store {
            pools: Pools::Sqlite(pool, Arc::new(Mutex::new(()))),
            photo_index: Arc::default(),
            area_places: Arc::default(),
        })
    }

    fn open_pg(url: &str, opts: &StoreOptions) -> Result<Store> {
        let tls_env_set = std::env::vars_os().any(|(k, _)| {
            k.to_str().is_some_and(|k| {
                k.starts_with("PGSSL")
                    || ["PGREQUIRESSL", "PGCHANNELBINDING", "PGGSSENCMODE"].contains(&k)
            })
        });
        let url = plain_on_loopback(url, tls_env_set);
        let url: &str = &url;
        PgConnection::establish(url).map_err(|e| {
            StoreError::Connect(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                redact(url)
            ))
        })?;
        let pool = Pool::builder()
            .max_size(opts.max_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(opts.connection_timeout)
            // r2d2 would send `SELECT 1` on every checkout: a round trip per store
            // call, about a fifth of all statements in a load run. A connection that
            // died (a restarted server) fails its first query instead, which is a 503
            // (see `error.rs`), and diesel marks it broken so the pool drops it.
            .test_on_check_out(false)
            .build(ConnectionManager::<PgConnection>::new(url))
            .map_err(|e| StoreError::Connect(format!("PostgreSQL at {}: {e}", redact(url))))?;
        Ok(Store {
            pools: Pools::Pg(pool),
            photo_index: Arc::default(),
            area_places: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite(..) => Backend::Sqlite,
            Pools::Pg(_) => Backend::Postgres,
        }
    }

    /// SQLite has one writer at a time, and a writer that finds the database locked
    /// polls with sleeps of up to 100 ms (its busy handler), so under a burst of
    /// concurrent pushes a few writers kept missing their turn for seconds. Writers of
    /// this process take this lock before their connection and `BEGIN IMMEDIATE`
    /// instead, and are woken as soon as the previous one commits. `None` on
    /// PostgreSQL. Taken before the pool connection so that queued writers do not hold
    /// connections readers could use.
    pub(crate) fn sqlite_writer(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.pools {
            // A writer that panicked left nothing behind that the lock protects.
            Pools::Sqlite(_, lock) => Some(lock.lock().unwrap_or_else(PoisonError::into_inner)),
            Pools::Pg(_) => None,
        }
    }

    pub(crate) fn conn(&self) -> Result<Conn> {
        Ok(match &self.pools {
            Pools::Sqlite(p, _) => Conn::Sqlite(p.get()?),
            Pools::Pg(p) => Conn::Pg(p.get()?),
        })
    }

    /// Applies pending migrations; returns the names of those applied.
    pub fn migrate(&self) -> Result<Vec<String>> {
        let mig =
            |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
        match self.conn()? {
            Conn::Sqlite(mut c) => {
                // The write lock up front keeps two processes from migrating at once.
                let applied = c.immediate_transaction(|c| {
                    c.run_pending_migrations(SQLITE_MIGRATIONS)
                        .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
                        .map_err(mig)
                })?;
                Ok(applied)
            }
            Conn::Pg(mut c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                    .execute(&mut *c)?;
                let applied = c
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
                    .map_err(mig);
                diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                    .execute(&mut *c)?;
                applied
            }
        }
    }

    /// A round trip to the database, for readiness checks.
    pub fn ping(&self) -> Result<()> {
        with_conn!(self, |c| {
            diesel::sql_query("SELECT 1").execute(c)?;
            Ok(())
        })
    }

    /// Runs blocking store work on the runtime's blocking pool, inside the caller's
    /// tracing span.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&store)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Implements a connection-level trait for both backends from one body, so helpers
/// that must run inside a caller's transaction (audit appends, lookups) exist once.
macro_rules! impl_both {
    ($trait:ident { $($item:tt)* }) => {
        impl $trait for ::diesel::SqliteConnection { $($item)* }
        impl $trait for ::diesel::PgConnection { $($item)* }
    };
}
pub(crate) use impl_both;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:secret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://bob@db/x"), "postgres://bob@db/x");
    }

    #[test]
    fn loopback_postgres_urls_skip_tls_unless_told_otherwise() {
        let plain = |u| plain_on_loopback(u, false).into_owned();
        assert_eq!(
            plain("postgres://bob:s%40cret@127.0.0.1:5432/x"),
            "postgres://bob:s%40cret@127.0.0.1:5432/x?sslmode=allow"
        );
        assert_eq!(
            plain("postgresql://localhost/x?application_name=b"),
            "postgresql://localhost/x?application_name=b&sslmode=allow"
        );
        assert_eq!(
            plain("postgres://[::1]/x"),
            "postgres://[::1]/x?sslmode=allow"
        );
        assert_eq!(
            plain("postgres://u@127.0.0.9"),
            "postgres://u@127.0.0.9?sslmode=allow"
        );
        assert_eq!(
            plain("postgres://u@127.0.0.1/x?"),
            "postgres://u@127.0.0.1/x?sslmode=allow"
        );
        for unchanged in [
            "postgres://u@127.0.0.1/x?sslmode=require",
            "postgres://u@127.0.0.1/x?a=1&sslmode=verify-full",
            "postgres://u@db.internal/x",
            "postgres://u@10.0.0.5:5432/x",
            "postgres://u@127.0.0.1,10.0.0.5/x",
            "postgres:///x?host=/var/run/postgresql",
            "postgres://u@127.0.0.1/x?host=/tmp",
            "postgres://u@[2001:db8::1]/x",
            "postgres://u@127.0.0.1/x?sslrootcert=/etc/ca.pem",
            "postgres://u@localhost/x?channel_binding=require",
            "postgres://u@localhost/x?gssencmode=require",
        ] {
            assert_eq!(plain(unchanged), unchanged);
        }
        assert_eq!(
            plain_on_loopback("postgres://u@127.0.0.1/x", true),
            "postgres://u@127.0.0.1/x"
        );
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite://./data/b.db"),
            Some(PathBuf::from("./data/b.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/b.db"),
            Some(PathBuf::from("/tmp/b.db"))
        );
        assert_eq!(sqlite_path("sqlite://"), None);
        assert_eq!(sqlite_path("mysql://x"), None);
    }

    #[test]
    fn bad_urls_say_what_failed() {
        let err = Store::open("mysql://x/y", &StoreOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unsupported database URL"), "{err}");
        let err = Store::open(
            "postgres://nobody:pw@127.0.0.1:1/none",
            &StoreOptions::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("cannot connect to PostgreSQL at postgres://nobody:***@127.0.0.1:1/none"),
            "{err}"
        );
    }
}
