//! The `baithak` binary: `serve`, `migrate` and the administration commands.
//!
//! Every setting has a `BAITHAK_*` environment variable and a default that runs on one
//! machine with no other service (SQLite and photos under `./data`). Human-facing
//! output goes to stdout; logs go to stderr.

mod big_blocks;
mod config;
mod demo;

use anyhow::{Context, Result, bail};
use baithak_api::{ApiConfig, AppState};
use baithak_domain::import::parse_area_csv;
use baithak_domain::validate::{display_name, password};
use baithak_domain::{Login, Role};
use baithak_store::areas::ImportFailure;
use baithak_store::{NewUser, Store, StoreOptions};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "baithak",
    version,
    about = "Field meeting reports, offline sync and quota checks"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// `sqlite://PATH` (the embedded default) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "BAITHAK_DATABASE_URL",
        default_value = "sqlite://./data/baithak.db",
        global = true
    )]
    database_url: String,
    /// Photos and generated secrets live here.
    #[arg(
        long,
        env = "BAITHAK_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// `text` or `json` log lines on stderr.
    #[arg(
        long,
        env = "BAITHAK_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the API.
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage the area tree.
    #[command(subcommand)]
    Areas(AreasCommand),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, env = "BAITHAK_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Seed a demo organisation into an empty database and print its logins.
    #[arg(long)]
    demo: bool,
    /// Access token lifetime.
    #[arg(long, env = "BAITHAK_ACCESS_TTL_MINUTES", default_value_t = 15)]
    access_ttl_minutes: i64,
    /// How long a device may stay offline and still refresh its session.
    #[arg(long, env = "BAITHAK_REFRESH_TTL_DAYS", default_value_t = 60)]
    refresh_ttl_days: i64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "BAITHAK_WORKERS")]
    workers: Option<usize>,
    /// Database connections in the pool (default: two per core, plus two).
    #[arg(long, env = "BAITHAK_DB_CONNECTIONS")]
    db_connections: Option<u32>,
    /// Largest photo accepted, in bytes; bigger uploads get 413.
    #[arg(long, env = "BAITHAK_MAX_PHOTO_BYTES", default_value_t = 15 * 1024 * 1024)]
    max_photo_bytes: u64,
}

#[derive(Subcommand)]
enum AreasCommand {
    /// Import areas from CSV (`code,name,kind,parent_code`): all rows or none.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; prints its id. The password is read from stdin.
    Add {
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
        /// The area's code.
        #[arg(long)]
        area: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn open_store(common: &Common, max_connections: u32) -> Result<Store> {
    let store = Store::open(
        &common.database_url,
        &StoreOptions {
            max_connections,
            ..StoreOptions::default()
        },
    )?;
    let applied = store.migrate()?;
    for m in applied {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(store)
}

/// See `big_blocks`: large buffers are reused instead of being mapped afresh for every
/// photo.
#[global_allocator]
static ALLOCATOR: big_blocks::BigBlockCache =
    big_blocks::BigBlockCache::new(big_blocks::DEFAULT_CAP);

/// Photo ingest allocates buffers of megabytes on many threads. glibc raises its mmap
/// threshold to the size of the largest buffer freed so far, after which such buffers
/// come from the per-thread arenas and stay there once freed: in a load run with 32
/// phones the live heap peaked at 82 MB (heaptrack) while RSS reached 560–670 MiB.
/// A fixed threshold keeps every large buffer in its own mapping, returned to the OS
/// when freed (RSS 100 MiB in the same run). mimalloc, tried instead, kept 650+ MiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    // glibc has read these itself; an operator's setting wins.
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    // SAFETY: mallopt only changes allocator parameters; it is called first thing in
    // main, before any other thread exists, with a valid parameter and value.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    if ok != 1 {
        eprintln!("note: could not set the malloc mmap threshold");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> Result<()> {
    tune_allocator();
    let cli = Cli::parse();
    init_logs(&cli.common.log_format);
    match cli.command {
        Command::Serve(args) => serve(&cli.common, args),
        Command::Migrate => {
            open_store(&cli.common, 1)?;
            println!("migrations applied");
            Ok(())
        }
        Command::Areas(AreasCommand::Import { file }) => import_areas(&cli.common, &file),
        Command::User(UserCommand::Add {
            login,
            name,
            role,
            area,
            password_stdin: _,
        }) => add_user(&cli.common, &login, &name, &role, &area),
    }
}

/// Connections beyond what the cores can run only queue inside the database: with 16
/// on a 2-core machine, 32 devices pushing at once had a p99 of 434–618 ms against
/// 388–437 ms with 6 (4 pairs), at the same rate (PostgreSQL, BENCHMARKS.md). Two per core plus
/// two is the usual sizing rule for a pool in front of a database on the same cores.
fn default_db_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    u32::try_from(cores * 2 + 2).unwrap_or(u32::MAX).max(4)
}

/// Days a mutation ledger entry is kept: at least 90 (the longest offline period
/// planned for), doubled for margin.
const LEDGER_KEEP_DAYS: i64 = 180;

fn serve(common: &Common, args: ServeArgs) -> Result<()> {
    let store = open_store(
        common,
        args.db_connections.unwrap_or_else(default_db_connections),
    )?;
    if args.demo {
        demo::seed_if_empty(&store)?;
    }
    // Before listening, so the first push does not wait for it.
    let started = std::time::Instant::now();
    let photos = store.warm_photo_index()?;
    tracing::info!(
        photos,
        ms = started.elapsed().as_millis() as u64,
        "photo index loaded"
    );
    let secret = config::jwt_secret(&common.data_dir)?;
    let api_config = ApiConfig {
        access_ttl: chrono::Duration::minutes(args.access_ttl_minutes.clamp(1, 24 * 60)),
        refresh_ttl: chrono::Duration::days(args.refresh_ttl_days.clamp(1, 3650)),
        ingest_limits: baithak_media::IngestLimits {
            max_bytes: args.max_photo_bytes.max(1),
            ..ApiConfig::default().ingest_limits
        },
        ..ApiConfig::default()
    };
    let blobs = match std::env::var("BAITHAK_BLOB_STORE").as_deref() {
        Ok("s3") => baithak_media::BlobStore::s3_from_env()?,
        Ok("local") | Err(_) => baithak_media::BlobStore::local(common.data_dir.join("photos"))?,
        Ok(other) => bail!("BAITHAK_BLOB_STORE must be local or s3, not {other}"),
    };
    let state = AppState::new(
        store,
        blobs,
        common.data_dir.join("work"),
        &secret,
        api_config,
    )
    .map_err(|e| anyhow::anyhow!("cannot start: {e}"))?;
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let sweeper = state.clone();
    actix_web::rt::System::new().block_on(async move {
        // Hourly (and once at start): drop expired resumable uploads and their parts,
        // old ledger entries and spent login budgets.
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                if let Err(e) = baithak_api::routes::uploads::sweep_expired_uploads(&sweeper).await
                {
                    tracing::warn!(error = %e, "upload sweep failed");
                }
                // The mutation ledger must outlive the longest offline period (a device
                // retrying after 90 days must still get `duplicate`); keep twice that.
                let cutoff = baithak_store::now_utc() - chrono::Duration::days(LEDGER_KEEP_DAYS);
                match sweeper.store.run(move |s| s.prune_ledger(cutoff)).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "pruned the mutation ledger"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "ledger pruning failed"),
                }
                // Failed-login budgets that are whole again hold nothing worth keeping.
                let now_ms = chrono::Utc::now().timestamp_millis();
                match sweeper.store.run(move |s| s.prune_throttle(now_ms)).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "pruned login budgets"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "login budget pruning failed"),
                }
            }
        });
        let server = actix_web::HttpServer::new(move || baithak_api::app(state.clone()))
            .workers(workers)
            .shutdown_timeout(30)
            .bind(&args.bind)
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        for addr in server.addrs() {
            // Tests start the server on port 0 and read this line to learn the port.
            println!("listening on http://{addr}");
        }
        tracing::info!(bind = %args.bind, "serving");
        // actix stops accepting on SIGINT/SIGTERM and lets running requests finish.
        server.run().await.context("server failed")
    })
}

fn import_areas(common: &Common, file: &std::path::Path) -> Result<()> {
    let store = open_store(common, 1)?;
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let rows = match parse_area_csv(f) {
        Ok(rows) => rows,
        Err(e) => bail!("{}: line {}: {}", file.display(), e.line, e.message),
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(rows.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = {
        let bar = bar.clone();
        move |n: u64| bar.set_position(n)
    };
    match store.import_areas(&rows, None, None, &progress) {
        Ok(s) => {
            bar.finish_and_clear();
            println!(
                "imported {} rows: {} created, {} renamed, {} unchanged",
                rows.len(),
                s.created,
                s.renamed,
                s.unchanged
            );
            Ok(())
        }
        Err(ImportFailure::Row(e)) => {
            bar.abandon();
            bail!(
                "{}: line {}: {} (nothing imported)",
                file.display(),
                e.line,
                e.message
            )
        }
        Err(ImportFailure::Store(e)) => {
            bar.abandon();
            Err(e).context("import failed, nothing imported")
        }
    }
}

fn add_user(common: &Common, login: &str, name: &str, role: &str, area: &str) -> Result<()> {
    let login = Login::parse("login", login)?;
    let name = display_name("name", name)?;
    let role: Role = role
        .parse()
        .map_err(|_| anyhow::anyhow!("--role must be incharge, coordinator, hq or admin"))?;
    let mut pw = String::new();
    std::io::stdin()
        .read_to_string(&mut pw)
        .context("cannot read the password from stdin")?;
    let pw = pw.trim_end_matches(['\n', '\r']).to_owned();
    password("password", &pw)?;
    let store = open_store(common, 1)?;
    let area = match store.area_by_code(area) {
        Ok(a) => a,
        Err(baithak_store::StoreError::NotFound) => bail!("no area with code {area}"),
        Err(e) => return Err(e.into()),
    };
    let hash = baithak_api::auth::hash_password(&pw).map_err(|e| anyhow::anyhow!("{e}"))?;
    let user = store
        .create_user(
            &NewUser {
                login: login.as_str().to_owned(),
                name,
                role,
                area_id: area.id,
                password_hash: hash,
            },
            None,
        )
        .map_err(|e| match e {
            baithak_store::StoreError::Conflict(_) => {
                anyhow::anyhow!("a user with login {login} already exists")
            }
            e => e.into(),
        })?;
    println!("{}", user.id);
    Ok(())
}
