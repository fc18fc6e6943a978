//! `baithak-sim`: field devices that go offline for days, record meetings with photos
//! and feedback, then all sync at once through a [`FaultProxy`] that drops, duplicates,
//! delays and cuts their requests. Afterwards it checks that the server holds exactly
//! what the devices recorded and measures how fast it got there.
//!
//! [`run_sim`] is the whole run; the `baithak-sim` binary is a command line around it
//! and the end-to-end test calls it in-process.

pub mod photos;
pub mod proxy;

pub use photos::{PhotoSource, synthetic_jpeg, tag_jpeg};
pub use proxy::{FaultConfig, FaultProxy, ProxyStats};

use crate::client::{ApiClient, ClientOptions, sha256_hex};
use crate::device::{Device, SyncObserver};
use crate::error::ClientError;
use crate::outbox::{Outbox, PhotoFile};
use crate::retry::RetryPolicy;
use anyhow::{Context, Result, bail};
use baithak_api_types::{
    AreaItem, AreaPage, CreateUserRequest, FeedbackData, LocationData, MeetingData, TokenUser,
    UserItem,
};
use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Kolkata;
use futures_util::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The server, `http://host:port`.
    pub server: String,
    /// More replicas of the same deployment (same database and object store): the
    /// devices' requests then go through the proxy, which sends each to the next of
    /// `server` and these in turn. Set-up and verification talk to `server`.
    pub replicas: Vec<String>,
    /// An admin login: creates the in-charges (and an `hq` verifier).
    pub admin: Option<(String, SecretString)>,
    /// The area (by code) the created in-charges work in.
    pub area_code: Option<String>,
    /// In-charges to create (ignored when `users` is given).
    pub incharges: usize,
    /// Existing in-charge logins to use instead of creating them.
    pub users: Vec<(String, SecretString)>,
    /// Days each device stays offline recording.
    pub days: u32,
    /// Meetings per day, inclusive range.
    pub meetings_per_day: (u32, u32),
    /// Photos per meeting, inclusive range.
    pub photos_per_meeting: (u32, u32),
    /// Chance per device and day of one feedback record.
    pub feedback_per_day: f64,
    pub photos: PhotoSource,
    pub faults: FaultConfig,
    /// Outboxes and photo files go under `work_dir/<run id>/`.
    pub work_dir: PathBuf,
    /// Devices syncing at once (0: all).
    pub concurrency: usize,
    pub seed: u64,
    pub retry: RetryPolicy,
    pub resumable_threshold: u64,
    /// First chunk of a resumable upload (see [`ClientOptions::chunk_size`]).
    pub chunk_size: usize,
    /// Largest chunk, which later chunks grow to while they get through.
    pub max_chunk_size: usize,
    /// Photos each device sends at once.
    pub upload_concurrency: usize,
    /// Syncs a device tries before giving up.
    pub max_sync_passes: u32,
    /// Sync one meeting at a time (its photos, then its push) instead of all photos
    /// then one batched push; see [`Device::sync_each_with`]. Gives per-meeting latency.
    pub push_each: bool,
    /// With `push_each`: meetings whose photos upload while one is pushed (0: none).
    pub meetings_ahead: usize,
    /// Longest a single request may take (a server that stops answering fails the run
    /// rather than hanging it).
    pub request_timeout: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl SimConfig {
    /// Defaults for `server`: 20 in-charges, 3 days, 3–6 meetings a day with 1–3
    /// synthetic photos, no faults.
    pub fn new(server: impl Into<String>) -> SimConfig {
        SimConfig {
            server: server.into(),
            replicas: Vec::new(),
            admin: None,
            area_code: None,
            incharges: 20,
            users: Vec::new(),
            days: 3,
            meetings_per_day: (3, 6),
            photos_per_meeting: (1, 3),
            feedback_per_day: 0.3,
            photos: PhotoSource::Generate {
                width: 1024,
                height: 768,
            },
            faults: FaultConfig::default(),
            work_dir: std::env::temp_dir().join("baithak-sim"),
            concurrency: 0,
            seed: rand::random(),
            retry: RetryPolicy {
                max_attempts: 12,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(2),
                max_retry_after: Duration::from_secs(10),
            },
            resumable_threshold: 512 * 1024,
            chunk_size: 256 * 1024,
            max_chunk_size: ClientOptions::default().max_chunk_size,
            upload_concurrency: 2,
            max_sync_passes: 8,
            push_each: false,
            meetings_ahead: 2,
            request_timeout: Duration::from_secs(60),
            progress: false,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(samples: &[Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = (p * ms.len() as f64).ceil() as usize;
            ms[i.clamp(1, ms.len()) - 1]
        };
        Latency {
            count: ms.len() as u64,
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: ms[ms.len() - 1],
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }
}

/// The meetings listing compared with what the devices recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListCheck {
    /// Meetings of the simulated in-charges the server listed.
    pub listed: u64,
    pub found_once: u64,
    pub missing: Vec<Uuid>,
    pub duplicated: Vec<Uuid>,
    /// Listed for a simulated in-charge but never recorded.
    pub unexpected: Vec<Uuid>,
    pub photo_mismatches: Vec<Uuid>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    /// What was checked: `outbox` (nothing pending or rejected), `replay` (every
    /// mutation pushed again answers `duplicate`), `list` (`GET /v1/meetings` lists each
    /// recorded meeting exactly once).
    pub methods: Vec<String>,
    pub pending: u64,
    pub rejected: Vec<String>,
    pub replay_checked: u64,
    pub replay_duplicate: u64,
    pub replay_unexpected: Vec<String>,
    pub list: Option<ListCheck>,
    pub problems: Vec<String>,
}

/// The outcome of a run (the `--json` output).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    pub devices: usize,
    pub days: u32,
    pub meetings: u64,
    pub feedback: u64,
    pub photos: u64,
    pub photo_bytes: u64,
    pub record_seconds: f64,
    /// From the first device going online to the last finishing its sync.
    pub sync_seconds: f64,
    pub meetings_per_sec: f64,
    pub photos_per_sec: f64,
    /// Per meeting: from the first upload of its photos to its push being settled.
    pub meeting_latency: Latency,
    /// Every meeting as it settled: seconds since the sync started, and its latency in
    /// ms. Shows whether a tail is start-up, a stall or spread through the run.
    #[serde(default)]
    pub meeting_trace: Vec<(f64, f64)>,
    pub sync_passes: u64,
    pub pushes: u64,
    pub missing_media_answers: u64,
    /// Transient failures met on the way (retried; not failures of the run).
    pub sync_errors: Vec<String>,
    pub proxy: ProxyStats,
    pub verification: Verification,
}

struct SimDevice {
    index: usize,
    device: Device,
    user: TokenUser,
    /// Meeting id → photo hashes, as recorded.
    meetings: Vec<(Uuid, Vec<String>)>,
    feedback: u64,
    photos: u64,
    photo_bytes: u64,
}

struct SimObserver {
    bar: ProgressBar,
    start: Instant,
    /// Latency, and when the meeting settled.
    latencies: Mutex<Vec<(Duration, Instant)>>,
}

impl SyncObserver for SimObserver {
    fn mutation_settled(&self, _id: Uuid, kind: &str, _done: bool, latency: Duration) {
        self.bar.inc(1);
        if kind == "meeting.upsert"
            && let Ok(mut l) = self.latencies.lock()
        {
            l.push((latency, Instant::now()));
        }
    }
}

const TOPICS: &[&str] = &[
    "बूथ समिति बैठक",
    "मतदाता सूची सत्यापन",
    "युवा संवाद",
    "महिला मोर्चा चौपाल",
    "किसान संपर्क",
    "Ward volunteers review",
];
const SUBJECTS: &[&str] = &["श्री राम प्रकाश", "श्रीमती सीमा देवी", "Dr. A. Khan"];

fn kind_name(a: &AreaItem) -> String {
    serde_json::to_value(a.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn local_time(date: NaiveDate, minute_of_day: u32) -> Option<DateTime<FixedOffset>> {
    let t = date.and_hms_opt(minute_of_day / 60, minute_of_day % 60, 0)?;
    Kolkata
        .from_local_datetime(&t)
        .single()
        .map(|d| d.fixed_offset())
}

struct Recording {
    meetings: Vec<(Uuid, Vec<String>)>,
    feedback: u64,
    photos: u64,
    photo_bytes: u64,
}

/// Records `days` of offline work into `outbox` (blocking: makes photos, writes files).
#[allow(clippy::too_many_arguments)]
fn record_offline(
    cfg: &SimConfig,
    outbox: &Outbox,
    photo_dir: &std::path::Path,
    device_index: usize,
    run_id: &str,
    area_id: Uuid,
    constituency: Option<Uuid>,
) -> Result<Recording> {
    std::fs::create_dir_all(photo_dir)?;
    let mut rng =
        StdRng::seed_from_u64(cfg.seed ^ (device_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let today = Utc::now().with_timezone(&Kolkata).date_naive();
    let mut rec = Recording {
        meetings: Vec::new(),
        feedback: 0,
        photos: 0,
        photo_bytes: 0,
    };
    let (mlo, mhi) = cfg.meetings_per_day;
    let (plo, phi) = cfg.photos_per_meeting;
    for back in (1..=u64::from(cfg.days)).rev() {
        let date = today
            .checked_sub_days(Days::new(back))
            .context("date out of range")?;
        let count = rng.gen_range(mlo.min(mhi)..=mhi.max(mlo));
        // From 09:00–10:00, each at least 20 minutes after the one before.
        let mut minute = 9 * 60 + rng.gen_range(0..60);
        for _ in 0..count {
            let occurred_at = local_time(date, minute).context("no such local time")?;
            let gap: u32 = rng.gen_range(20..=80);
            let ended_at =
                occurred_at + chrono::Duration::minutes(i64::from(rng.gen_range(10..=gap - 5)));
            let mut files = Vec::new();
            for _ in 0..rng.gen_range(plo.min(phi)..=phi.max(plo)) {
                let tag = format!("baithak-sim {run_id} {}", Uuid::now_v7());
                let bytes = cfg.photos.make(rng.next_u64(), &tag)?;
                let path = photo_dir.join(format!("{}.jpg", Uuid::now_v7()));
                std::fs::write(&path, &bytes)?;
                rec.photos += 1;
                rec.photo_bytes += bytes.len() as u64;
                files.push(PhotoFile {
                    sha256: sha256_hex(&bytes),
                    bytes: bytes.len() as u64,
                    path,
                });
            }
            let data = MeetingData {
                id: Uuid::now_v7(),
                kind: "small_meeting".into(),
                occurred_at,
                ended_at: Some(ended_at),
                area_id,
                location: Some(LocationData {
                    lat: 26.85 + rng.gen_range(-0.05..0.05),
                    lon: 80.95 + rng.gen_range(-0.05..0.05),
                    accuracy_m: Some(rng.gen_range(5.0..30.0)),
                }),
                attendee_count: rng.gen_range(5..=60),
                topic: TOPICS[rng.gen_range(0..TOPICS.len())].to_owned(),
                notes: format!("सिम्युलेटेड बैठक {}", minute / 60),
                photos: Vec::new(),
                base_version: None,
            };
            let shas = files.iter().map(|f| f.sha256.clone()).collect();
            let recorded = outbox.record_meeting(data, &files)?;
            rec.meetings.push((recorded.entity_id, shas));
            minute += gap;
        }
        if let Some(seat) = constituency
            && rng.gen_bool(cfg.feedback_per_day.clamp(0.0, 1.0))
        {
            outbox.record_feedback(FeedbackData {
                id: Uuid::now_v7(),
                constituency_id: seat,
                subject: SUBJECTS[rng.gen_range(0..SUBJECTS.len())].to_owned(),
                rating: rng.gen_range(1..=5),
                text: "लोगों की राय".into(),
                collected_at: local_time(date, 19 * 60).context("no such local time")?,
                respondents: rng.gen_range(1..=20),
            })?;
            rec.feedback += 1;
        }
    }
    Ok(rec)
}

fn device_options(cfg: &SimConfig, base_url: &str, index: usize) -> ClientOptions {
    ClientOptions {
        base_url: base_url.to_owned(),
        retry: cfg.retry.clone(),
        timeout: cfg.request_timeout,
        connect_timeout: Duration::from_secs(10),
        resumable_threshold: cfg.resumable_threshold,
        chunk_size: cfg.chunk_size,
        max_chunk_size: cfg.max_chunk_size,
        device_name: Some(format!("sim device {index}")),
        refresh_margin: Duration::from_secs(30),
    }
}

async fn area_by_code(client: &ApiClient, code: &str) -> Result<AreaItem> {
    let page: AreaPage = client
        .get_json("/v1/areas", &[("code", code.to_owned())])
        .await
        .with_context(|| format!("looking up area {code}"))?;
    page.items
        .into_iter()
        .find(|a| a.code == code)
        .with_context(|| format!("no area with code {code}"))
}

fn random_password(rng: &mut impl Rng) -> SecretString {
    let s: String = (0..20)
        .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[rng.gen_range(0..32)]))
        .collect();
    SecretString::from(s)
}

async fn create_user(
    admin: &ApiClient,
    login: &str,
    role: &str,
    area_id: Uuid,
    password: &SecretString,
) -> Result<UserItem> {
    use secrecy::ExposeSecret;
    let body = CreateUserRequest {
        login: login.to_owned(),
        name: format!("सिम {login}"),
        role: role.to_owned(),
        area_id,
        password: password.expose_secret().to_owned(),
    };
    admin
        .post_json("/v1/users", &body)
        .await
        .with_context(|| format!("creating user {login}"))
}

#[allow(clippy::too_many_arguments)]
async fn prepare_device(
    cfg: &SimConfig,
    run_dir: &std::path::Path,
    run_id: &str,
    base_url: &str,
    index: usize,
    login: &str,
    password: &SecretString,
) -> Result<SimDevice> {
    let dir = run_dir.join(format!("device-{index:04}"));
    let mut device = Device::open(dir.join("outbox.db"), device_options(cfg, base_url, index))
        .await
        .context("opening the outbox")?;
    device.set_upload_concurrency(cfg.upload_concurrency);
    device.set_meetings_ahead(cfg.meetings_ahead);
    // Online once: log in and learn the areas, then go offline for `days`.
    let user = device
        .login(login, password, true)
        .await
        .with_context(|| format!("logging in {login}"))?;
    let areas: AreaPage = device
        .client()
        .get_json("/v1/areas", &[("limit", "1000".to_owned())])
        .await
        .context("listing areas")?;
    let constituency = areas
        .items
        .iter()
        .find(|a| kind_name(a) == "constituency")
        .map(|a| a.id);
    let outbox = device.outbox().clone();
    let (cfg2, run_id2, area_id) = (cfg.clone(), run_id.to_owned(), user.area_id);
    let photo_dir = dir.join("photos");
    let rec = tokio::task::spawn_blocking(move || {
        record_offline(
            &cfg2,
            &outbox,
            &photo_dir,
            index,
            &run_id2,
            area_id,
            constituency,
        )
    })
    .await
    .map_err(ClientError::join)??;
    Ok(SimDevice {
        index,
        device,
        user,
        meetings: rec.meetings,
        feedback: rec.feedback,
        photos: rec.photos,
        photo_bytes: rec.photo_bytes,
    })
}

#[derive(Default)]
struct SyncTally {
    passes: u64,
    pushes: u64,
    missing_media: u64,
    errors: Vec<String>,
}

async fn sync_until_done(
    d: &SimDevice,
    observer: &SimObserver,
    max_passes: u32,
    push_each: bool,
) -> SyncTally {
    let mut tally = SyncTally::default();
    // Days offline: the access token has long expired, so the first call refreshes.
    d.device.client().expire_access_token();
    for pass in 1..=max_passes.max(1) {
        tally.passes += 1;
        let synced = if push_each {
            d.device.sync_each_with(observer).await
        } else {
            d.device.sync_with(observer).await
        };
        match synced {
            Ok(r) => {
                tally.pushes += r.pushes;
                tally.missing_media += r.missing_media;
                for e in &r.errors {
                    tally
                        .errors
                        .push(format!("device {} pass {pass}: {e}", d.index));
                }
                if r.is_complete() {
                    break;
                }
            }
            Err(e) => tally
                .errors
                .push(format!("device {} pass {pass}: {e}", d.index)),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(pass))).await;
    }
    tally
}

/// Lists meetings as the verifier; `None` when the server has no `GET /v1/meetings`.
async fn list_meetings(
    verifier: &ApiClient,
    area_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Option<Vec<serde_json::Value>>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut query = vec![
            ("area_id", area_id.to_string()),
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("limit", "1000".to_owned()),
        ];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page: serde_json::Value = match verifier.get_json("/v1/meetings", &query).await {
            Ok(p) => p,
            Err(e) if e.status() == Some(404) && items.is_empty() => return Ok(None),
            Err(e) => return Err(e).context("listing meetings"),
        };
        if let Some(list) = page.get("items").and_then(|i| i.as_array()) {
            items.extend(list.iter().cloned());
        }
        match page.get("next_cursor").and_then(|c| c.as_str()) {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => return Ok(Some(items)),
        }
    }
    bail!("the meetings listing did not end")
}

fn compare_listing(devices: &[SimDevice], listed: &[serde_json::Value]) -> ListCheck {
    let ours: HashSet<Uuid> = devices.iter().map(|d| d.user.id).collect();
    let expected: HashMap<Uuid, &Vec<String>> = devices
        .iter()
        .flat_map(|d| d.meetings.iter().map(|(id, shas)| (*id, shas)))
        .collect();
    let mut seen: HashMap<Uuid, u32> = HashMap::new();
    let mut check = ListCheck::default();
    for item in listed {
        let id = item
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        let incharge = item
            .get("incharge_id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        let Some(id) = id else { continue };
        if !incharge.is_some_and(|i| ours.contains(&i)) && !expected.contains_key(&id) {
            continue;
        }
        check.listed += 1;
        *seen.entry(id).or_default() += 1;
        match expected.get(&id) {
            None => check.unexpected.push(id),
            Some(shas) => {
                if let Some(photos) = item.get("photos").and_then(|p| p.as_array()) {
                    let mut got: Vec<String> = photos
                        .iter()
                        .filter_map(|p| {
                            p.get("sha256")
                                .and_then(|s| s.as_str())
                                .or_else(|| p.as_str())
                                .map(str::to_owned)
                        })
                        .collect();
                    let mut want = (*shas).clone();
                    got.sort();
                    want.sort();
                    if got != want {
                        check.photo_mismatches.push(id);
                    }
                }
            }
        }
    }
    for id in expected.keys() {
        match seen.get(id).copied().unwrap_or(0) {
            0 => check.missing.push(*id),
            1 => check.found_once += 1,
            _ => check.duplicated.push(*id),
        }
    }
    check
}

/// Runs the whole simulation: set-up, offline recording, concurrent sync through the
/// fault proxy, verification. Fails only when the run could not be carried out; a
/// server that lost or doubled something yields `verification.ok == false`.
pub async fn run_sim(cfg: SimConfig) -> Result<Report> {
    cfg.faults.validate().map_err(anyhow::Error::msg)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let run_id = format!("{:06x}", rng.next_u32() & 0xFF_FFFF);
    let run_dir = cfg.work_dir.join(format!("run-{run_id}"));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;

    // Set-up, straight to the server.
    let direct_opts = ClientOptions {
        base_url: cfg.server.clone(),
        retry: cfg.retry.clone(),
        timeout: cfg.request_timeout,
        ..ClientOptions::default()
    };
    let mut verifier: Option<(ApiClient, Uuid)> = None;
    let mut users = cfg.users.clone();
    if let Some((login, password)) = &cfg.admin {
        let admin = ApiClient::new(direct_opts.clone(), format!("baithak-sim-admin-{run_id}"))?;
        let me = admin.login(login, password).await.context("admin login")?;
        let area_id = match &cfg.area_code {
            Some(code) => area_by_code(&admin, code).await?.id,
            None => me.area_id,
        };
        if users.is_empty() {
            for i in 0..cfg.incharges {
                let login = format!("sim-{run_id}-{i:04}");
                let password = random_password(&mut rng);
                create_user(&admin, &login, "incharge", area_id, &password).await?;
                users.push((login, password));
            }
        }
        // An HQ account over the same area reads the meetings back.
        let hq_login = format!("sim-{run_id}-hq");
        let hq_password = random_password(&mut rng);
        create_user(&admin, &hq_login, "hq", area_id, &hq_password).await?;
        let hq = ApiClient::new(direct_opts.clone(), format!("baithak-sim-hq-{run_id}"))?;
        hq.login(&hq_login, &hq_password)
            .await
            .context("hq login")?;
        verifier = Some((hq, area_id));
    }
    if users.is_empty() {
        bail!("no in-charges: give an admin login (to create them) or existing logins");
    }

    let mut upstreams = vec![cfg.server.clone()];
    upstreams.extend(cfg.replicas.iter().cloned());
    let proxy = FaultProxy::start_balanced(
        &upstreams,
        cfg.faults.clone(),
        cfg.seed ^ 0xFA17,
        cfg.request_timeout,
    )
    .await
    .context("starting the fault proxy")?;
    // Without faults (and one server) the devices talk to the server directly, so a
    // load run measures the server and not an extra hop through this process.
    let base_url = if cfg.faults.is_off() && cfg.replicas.is_empty() {
        cfg.server.trim_end_matches('/').to_owned()
    } else {
        proxy.url()
    };

    // Log in and record offline.
    let record_start = Instant::now();
    let prepared = join_all(users.iter().enumerate().map(|(i, (login, password))| {
        prepare_device(&cfg, &run_dir, &run_id, &base_url, i, login, password)
    }))
    .await;
    let mut devices = Vec::with_capacity(prepared.len());
    for p in prepared {
        devices.push(p?);
    }
    let record_seconds = record_start.elapsed().as_secs_f64();
    let meetings: u64 = devices.iter().map(|d| d.meetings.len() as u64).sum();
    let feedback: u64 = devices.iter().map(|d| d.feedback).sum();
    let photos: u64 = devices.iter().map(|d| d.photos).sum();
    let photo_bytes: u64 = devices.iter().map(|d| d.photo_bytes).sum();

    // Everyone comes back online at once.
    let bar = if cfg.progress {
        let bar = ProgressBar::new(meetings + feedback);
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} records synced ({per_sec}) {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let observer = SimObserver {
        bar,
        start: Instant::now(),
        latencies: Mutex::new(Vec::new()),
    };
    let permits = tokio::sync::Semaphore::new(if cfg.concurrency == 0 {
        devices.len().max(1)
    } else {
        cfg.concurrency
    });
    let done_devices = AtomicU64::new(0);
    let sync_start = Instant::now();
    let tallies = join_all(devices.iter().map(|d| async {
        let _permit = permits.acquire().await;
        let t = sync_until_done(d, &observer, cfg.max_sync_passes, cfg.push_each).await;
        let n = done_devices.fetch_add(1, Ordering::Relaxed) + 1;
        observer.bar.set_message(format!("{n} devices done"));
        t
    }))
    .await;
    let sync_seconds = sync_start.elapsed().as_secs_f64();
    observer.bar.finish();

    // Verify with the faults off.
    proxy.set_faults_enabled(false);
    let mut v = Verification {
        methods: vec!["outbox".into(), "replay".into()],
        ..Verification::default()
    };
    for d in &devices {
        let outbox = d.device.outbox().clone();
        let (counts, rejected) = tokio::task::spawn_blocking(move || {
            Ok::<_, ClientError>((outbox.counts()?, outbox.rejected()?))
        })
        .await
        .map_err(ClientError::join)??;
        v.pending += counts.pending;
        v.rejected.extend(rejected.into_iter().map(|r| {
            format!(
                "device {} {} {}: {} {}",
                d.index, r.kind, r.entity_id, r.code, r.message
            )
        }));
    }
    let replays = join_all(devices.iter().map(|d| d.device.replay_check())).await;
    for (d, r) in devices.iter().zip(replays) {
        match r {
            Ok(r) => {
                v.replay_checked += r.checked;
                v.replay_duplicate += r.duplicate;
                v.replay_unexpected.extend(
                    r.unexpected
                        .into_iter()
                        .map(|(id, what)| format!("device {} mutation {id}: {what}", d.index)),
                );
            }
            Err(e) => v
                .problems
                .push(format!("device {}: replay failed: {e}", d.index)),
        }
    }
    if let Some((hq, area_id)) = &verifier {
        let today = Utc::now().with_timezone(&Kolkata).date_naive();
        let from = today
            .checked_sub_days(Days::new(u64::from(cfg.days) + 1))
            .unwrap_or(today);
        match list_meetings(hq, *area_id, from, today).await {
            Ok(Some(items)) => {
                v.methods.push("list".into());
                v.list = Some(compare_listing(&devices, &items));
            }
            Ok(None) => v
                .problems
                .push("GET /v1/meetings is not served: verified by replay only".into()),
            Err(e) => v.problems.push(format!("listing meetings failed: {e:#}")),
        }
    }
    let expected = meetings + feedback;
    let list_ok = v.list.as_ref().is_none_or(|l| {
        l.missing.is_empty()
            && l.duplicated.is_empty()
            && l.unexpected.is_empty()
            && l.photo_mismatches.is_empty()
            && l.found_once == meetings
    });
    let listing_failed = v
        .problems
        .iter()
        .any(|p| p.starts_with("listing meetings failed"))
        || v.problems.iter().any(|p| p.contains("replay failed"));
    v.ok = v.pending == 0
        && v.rejected.is_empty()
        && v.replay_unexpected.is_empty()
        && v.replay_checked == expected
        && v.replay_duplicate == expected
        && list_ok
        && !listing_failed;

    let settled = observer
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    let latencies: Vec<Duration> = settled.iter().map(|(l, _)| *l).collect();
    let meeting_trace = settled
        .iter()
        .map(|(l, at)| {
            let since = at.saturating_duration_since(observer.start).as_secs_f64();
            (
                (since * 1000.0).round() / 1000.0,
                (l.as_secs_f64() * 1e4).round() / 10.0,
            )
        })
        .collect();
    let per_sec = |n: u64| {
        if sync_seconds > 0.0 {
            n as f64 / sync_seconds
        } else {
            0.0
        }
    };
    let mut sync_errors = Vec::new();
    let (mut passes, mut pushes, mut missing) = (0, 0, 0);
    for t in tallies {
        passes += t.passes;
        pushes += t.pushes;
        missing += t.missing_media;
        sync_errors.extend(t.errors);
    }
    Ok(Report {
        run_id,
        devices: devices.len(),
        days: cfg.days,
        meetings,
        feedback,
        photos,
        photo_bytes,
        record_seconds,
        sync_seconds,
        meetings_per_sec: per_sec(meetings),
        photos_per_sec: per_sec(photos),
        meeting_latency: Latency::of(&latencies),
        meeting_trace,
        sync_passes: passes,
        pushes,
        missing_media_answers: missing,
        sync_errors,
        proxy: proxy.stats(),
        verification: v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&samples);
        assert_eq!(l.count, 100);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p90_ms, 90.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        assert_eq!(Latency::of(&[]), Latency::default());
        let one = Latency::of(&[Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
    }

    #[test]
    fn meeting_times_are_kolkata_local() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let t = local_time(d, 10 * 60 + 5).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:05:00+05:30");
    }
}
