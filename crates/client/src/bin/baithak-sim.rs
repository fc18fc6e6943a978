//! `baithak-sim`: simulated field devices against a running baithak server.
//!
//! ```text
//! baithak-sim --server http://127.0.0.1:8080 --admin-login admin \
//!     --area LKO-AC1 --incharges 20 --days 3 --generate \
//!     --drop-response 0.2 --duplicate 0.1 --json
//! ```
//! (the admin password from `BAITHAK_SIM_ADMIN_PASSWORD` or `--admin-password`).
//! Exits 0 when the server holds exactly what the devices recorded, 1 when not.

use anyhow::{Context, Result, bail};
use baithak_client::sim::{FaultConfig, PhotoSource, Report, SimConfig, run_sim};
use clap::Parser;
use secrecy::SecretString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "baithak-sim",
    version,
    about = "Simulated field devices: offline days, then a concurrent sync through a faulty network, then a check that nothing was lost or doubled."
)]
struct Args {
    /// The server's base URL.
    #[arg(
        long,
        env = "BAITHAK_SIM_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Another replica of the same deployment (repeat for more): the devices'
    /// requests are spread over the server and its replicas in turn.
    #[arg(long = "replica", value_name = "URL")]
    replicas: Vec<String>,
    /// An admin login; the simulator creates its in-charges (and an hq verifier) with it.
    #[arg(long, env = "BAITHAK_SIM_ADMIN_LOGIN")]
    admin_login: Option<String>,
    #[arg(long, env = "BAITHAK_SIM_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Area code the created in-charges work in (default: the admin's own area).
    #[arg(long)]
    area: Option<String>,
    /// In-charges (devices) to create.
    #[arg(long, short = 'n', default_value_t = 20)]
    incharges: usize,
    /// Existing in-charge `login:password` to use instead of creating them (repeatable).
    #[arg(long = "user", value_name = "LOGIN:PASSWORD")]
    users: Vec<String>,
    /// Days each device stays offline recording.
    #[arg(long, short = 'd', default_value_t = 3)]
    days: u32,
    #[arg(long, default_value_t = 3)]
    meetings_min: u32,
    #[arg(long, default_value_t = 6)]
    meetings_max: u32,
    #[arg(long, default_value_t = 1)]
    photos_min: u32,
    #[arg(long, default_value_t = 3)]
    photos_max: u32,
    /// Chance per device and day of a feedback record.
    #[arg(long, default_value_t = 0.3)]
    feedback: f64,
    /// A folder of real JPEGs (each use made unique by a comment segment).
    #[arg(long, conflicts_with = "generate")]
    photos: Option<PathBuf>,
    /// Synthetic JPEGs instead (the default when --photos is not given).
    #[arg(long)]
    generate: bool,
    /// Size of synthetic photos, WIDTHxHEIGHT.
    #[arg(long, default_value = "1024x768")]
    photo_size: String,
    /// Chance a request is dropped before reaching the server.
    #[arg(long, default_value_t = 0.0)]
    drop_request: f64,
    /// Chance an answer is dropped after the server acted.
    #[arg(long, default_value_t = 0.0)]
    drop_response: f64,
    /// Chance a request reaches the server twice.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Chance a request is held up to --delay-max-ms.
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    #[arg(long, default_value_t = 500)]
    delay_max_ms: u64,
    /// Chance a photo upload is cut midway.
    #[arg(long, default_value_t = 0.0)]
    cut_upload: f64,
    /// Devices syncing at once (0: all).
    #[arg(long, default_value_t = 0)]
    concurrency: usize,
    /// Each device syncs one meeting at a time (its photos, then its own push) instead
    /// of all photos then one batched push: latency is then per meeting.
    #[arg(long)]
    push_each: bool,
    /// With --push-each: meetings whose photos upload while an earlier one is pushed
    /// (0: strictly one meeting at a time).
    #[arg(long, default_value_t = 2)]
    ahead: usize,
    /// Photos above this many bytes use a resumable upload.
    #[arg(long, default_value_t = 512 * 1024)]
    resumable_threshold: u64,
    /// First chunk of a resumable upload, and the size after a chunk fails.
    #[arg(long, default_value_t = 256 * 1024)]
    chunk_size: usize,
    /// Largest chunk: later chunks grow to it while they get through (set it to
    /// --chunk-size for fixed chunks).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_chunk_size: usize,
    /// Longest one request may take, in seconds.
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
    /// Where outboxes and photo files go (default: a folder in the temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .context("--photo-size is WIDTHxHEIGHT")?;
    Ok((w.trim().parse()?, h.trim().parse()?))
}

fn config(args: &Args) -> Result<SimConfig> {
    let mut cfg = SimConfig::new(args.server.clone());
    cfg.replicas = args.replicas.clone();
    cfg.admin = match (&args.admin_login, &args.admin_password) {
        (Some(l), Some(p)) => Some((l.clone(), SecretString::from(p.clone()))),
        (Some(_), None) => {
            bail!("--admin-login needs --admin-password (or BAITHAK_SIM_ADMIN_PASSWORD)")
        }
        _ => None,
    };
    cfg.area_code = args.area.clone();
    cfg.incharges = args.incharges;
    for u in &args.users {
        let (login, password) = u.split_once(':').context("--user is LOGIN:PASSWORD")?;
        cfg.users
            .push((login.to_owned(), SecretString::from(password.to_owned())));
    }
    cfg.days = args.days;
    cfg.meetings_per_day = (args.meetings_min, args.meetings_max);
    cfg.photos_per_meeting = (args.photos_min, args.photos_max);
    cfg.feedback_per_day = args.feedback;
    cfg.photos = match &args.photos {
        Some(dir) => PhotoSource::from_dir(dir)?,
        None => {
            let (width, height) = parse_size(&args.photo_size)?;
            PhotoSource::Generate { width, height }
        }
    };
    cfg.faults = FaultConfig {
        drop_request: args.drop_request,
        drop_response: args.drop_response,
        duplicate: args.duplicate,
        delay: args.delay,
        delay_max: Duration::from_millis(args.delay_max_ms),
        cut_upload: args.cut_upload,
    };
    cfg.faults.validate().map_err(anyhow::Error::msg)?;
    cfg.concurrency = args.concurrency;
    cfg.push_each = args.push_each;
    cfg.meetings_ahead = args.ahead;
    cfg.resumable_threshold = args.resumable_threshold;
    cfg.chunk_size = args.chunk_size;
    cfg.max_chunk_size = args.max_chunk_size;
    cfg.request_timeout = Duration::from_secs(args.request_timeout.max(1));
    if let Some(dir) = &args.work_dir {
        cfg.work_dir = dir.clone();
    }
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    cfg.progress = !args.json && std::io::stderr().is_terminal();
    Ok(cfg)
}

fn print_human(r: &Report) {
    let v = &r.verification;
    println!(
        "run {}: {} devices, {} days offline",
        r.run_id, r.devices, r.days
    );
    println!(
        "recorded {} meetings, {} feedback, {} photos ({:.1} MiB) in {:.1} s",
        r.meetings,
        r.feedback,
        r.photos,
        r.photo_bytes as f64 / (1024.0 * 1024.0),
        r.record_seconds
    );
    println!(
        "synced in {:.1} s: {:.1} meetings/s, {:.1} photos/s, {} pushes, {} passes, {} missing_media answers",
        r.sync_seconds,
        r.meetings_per_sec,
        r.photos_per_sec,
        r.pushes,
        r.sync_passes,
        r.missing_media_answers
    );
    println!(
        "meeting upload latency (photos + push): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        r.meeting_latency.p50_ms,
        r.meeting_latency.p90_ms,
        r.meeting_latency.p99_ms,
        r.meeting_latency.max_ms
    );
    let p = &r.proxy;
    println!(
        "proxy: {} requests, {} dropped, {} answers dropped, {} duplicated, {} delayed, {} uploads cut",
        p.requests, p.dropped_requests, p.dropped_responses, p.duplicated, p.delayed, p.cut_uploads
    );
    println!(
        "verification ({}): {}; pending {}, rejected {}, replay {}/{} duplicate{}",
        v.methods.join(", "),
        if v.ok { "OK" } else { "FAILED" },
        v.pending,
        v.rejected.len(),
        v.replay_duplicate,
        v.replay_checked,
        match &v.list {
            Some(l) => format!(
                ", listed once {}/{} (missing {}, doubled {}, unexpected {}, photo mismatches {})",
                l.found_once,
                r.meetings,
                l.missing.len(),
                l.duplicated.len(),
                l.unexpected.len(),
                l.photo_mismatches.len()
            ),
            None => String::new(),
        }
    );
    for line in v
        .problems
        .iter()
        .chain(&v.rejected)
        .chain(&v.replay_unexpected)
        .take(20)
    {
        println!("  {line}");
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = async {
        let cfg = config(&args)?;
        run_sim(cfg).await
    }
    .await;
    match result {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("baithak-sim: {e}"),
                }
            } else {
                print_human(&report);
            }
            if report.verification.ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("baithak-sim: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
