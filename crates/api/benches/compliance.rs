//! Issue 5: the compliance daily view and the cost of evaluating one pushed meeting,
//! on SQLite and PostgreSQL, over seeded history (`Store::seed_history`).
//!
//! Per backend: seed 1,000 in-charges × 90 days × 5 meetings (1 photo each) under one
//! division, then measure through the in-process app (full handler: auth extractor,
//! store, JSON):
//! - `compliance_daily`: `GET /v1/compliance/daily` for all 1,000 in-charges × 30 days,
//!   as a coordinator of the division (target: under 50 ms);
//! - `compliance_daily_queries`: the same view's two store reads alone (users in the
//!   subtree, quota days in scope), to tell query time from handler and JSON time;
//! - `evaluate_one_day`: the quota evaluation alone, as the push's hook runs it, for the
//!   next in-charge's yesterday (five seeded meetings), every meeting's photo searched
//!   again (`PhotoSearch::Every`), in a write transaction under the meeting lock; the
//!   verdicts are unchanged, so it writes nothing. With 90 days of history and 3 days.
//! - `push_one_meeting`: `POST /v1/sync/push` with one new `meeting.upsert` carrying one
//!   new, already uploaded photo, each iteration a new meeting of the next in-charge
//!   (yesterday, after its five seeded meetings), with 90 days of history and again on
//!   a fresh database with 3 days: the two must match (evaluation bounded by one day).
//!
//! `cargo bench -p baithak-api --bench compliance`. Environment:
//! - `BAITHAK_BENCH_SCALE=small`: 50 in-charges × 10 days (view 10 days), a smoke run;
//! - `BAITHAK_BENCH_BACKENDS=sqlite` or `postgres` (default both);
//! - `BAITHAK_TEST_PG_URL`: the PostgreSQL server (default the local trust-auth one);
//! - `BAITHAK_BENCH_KEEP=1`: only seed the full history, print each database's URL and
//!   leave the databases behind (for `EXPLAIN`), measuring nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::test::{TestRequest, call_service, init_service, read_body};
use baithak_api::quota::{PhotoSearch, load_policy, reevaluate_day};
use baithak_api::{ApiConfig, AppState};
use baithak_domain::import::parse_area_csv;
use baithak_domain::quota::local_day;
use baithak_domain::{AreaId, Policy, Role, UserId};
use baithak_media::BlobStore;
use baithak_store::seed::{SeedReport, SeedSpec, SeededIncharge, seed_photo};
use baithak_store::{NewMedia, NewSession, NewUser, Store};
use baithak_test_support::{Kind, TestDb};
use chrono::{Duration, NaiveDate, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use secrecy::SecretSlice;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// One state, one division with four seats of five assemblies each (in-charges are
/// spread over the assemblies), and a second division that must stay out of view.
fn area_csv() -> String {
    let mut csv = String::from(
        "code,name,kind,parent_code\nUP,UP,state,\nLKO,Lucknow,division,UP\n\
         KNP,Kanpur,division,UP\nKNP-PC,Kanpur seat,constituency,KNP\n",
    );
    for s in 1..=4 {
        csv.push_str(&format!("LKO-PC{s},Seat {s},constituency,LKO\n"));
        for a in 1..=5 {
            csv.push_str(&format!(
                "LKO-PC{s}-A{a},Assembly {s}.{a},assembly,LKO-PC{s}\n"
            ));
        }
    }
    csv
}

#[derive(Clone, Copy)]
struct Scale {
    incharges: u32,
    days: u32,
    view_days: u32,
    short_days: u32,
    label: &'static str,
}

fn scale() -> Scale {
    match std::env::var("BAITHAK_BENCH_SCALE").as_deref() {
        Ok("small") => Scale {
            incharges: 50,
            days: 10,
            view_days: 10,
            short_days: 2,
            label: "small",
        },
        _ => Scale {
            incharges: 1000,
            days: 90,
            view_days: 30,
            short_days: 3,
            label: "full",
        },
    }
}

fn backends() -> Vec<(Kind, &'static str)> {
    let want = std::env::var("BAITHAK_BENCH_BACKENDS").unwrap_or_default();
    [(Kind::Sqlite, "sqlite"), (Kind::Postgres, "postgres")]
        .into_iter()
        .filter(|(_, name)| want.is_empty() || want.split(',').any(|w| w.trim() == *name))
        .collect()
}

/// A seeded database and the app over it.
struct World {
    db: TestDb,
    state: Arc<AppState>,
    division: AreaId,
    coordinator: UserId,
    seeded: SeedReport,
    last_day: NaiveDate,
}

fn world(kind: Kind, backend: &str, incharges: u32, days: u32) -> World {
    let db = TestDb::new(kind);
    let rows = parse_area_csv(area_csv().as_bytes()).unwrap();
    db.store.import_areas(&rows, None, None, &|_| {}).unwrap();
    let division = db.store.area_by_code("LKO").unwrap().id;
    let hash = baithak_api::auth::hash_password("bench password").unwrap();
    let coordinator = db
        .store
        .create_user(
            &NewUser {
                login: "coord".into(),
                name: "Coordinator".into(),
                role: Role::Coordinator,
                area_id: division,
                password_hash: hash.clone(),
            },
            None,
        )
        .unwrap()
        .id;
    let mut assemblies = Vec::new();
    for s in 1..=4 {
        for a in 1..=5 {
            assemblies.push(
                db.store
                    .area_by_code(&format!("LKO-PC{s}-A{a}"))
                    .unwrap()
                    .id,
            );
        }
    }
    let tz = Policy::default().timezone;
    let last_day = local_day(Utc::now(), tz) - Duration::days(1);
    let spec = SeedSpec {
        incharges,
        areas: assemblies,
        days,
        last_day,
        meetings_per_day: 5,
        photos_per_meeting: 1,
        login_prefix: "ic".into(),
        password_hash: hash,
        first_photo: 0,
        rng_seed: 5,
    };
    let t = Instant::now();
    let seeded = db.store.seed_history(&spec).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let rows = 2 * seeded.meetings + seeded.photos + seeded.quota_days + u64::from(incharges);
    eprintln!(
        "[{backend}] seeded {incharges} in-charges × {days} days: {} meetings, {} photos, \
         {} quota days in {secs:.1} s ({:.0} rows/s)",
        seeded.meetings,
        seeded.photos,
        seeded.quota_days,
        rows as f64 / secs
    );
    let state = AppState::new(
        db.store.clone(),
        BlobStore::local(db.dir().join("photos")).unwrap(),
        db.dir().join("work"),
        &SecretSlice::from(vec![7u8; 32]),
        ApiConfig {
            // Long enough for the whole run on a slow, shared machine.
            access_ttl: chrono::Duration::hours(12),
            ..ApiConfig::default()
        },
    )
    .unwrap();
    World {
        db,
        state,
        division,
        coordinator,
        seeded,
        last_day,
    }
}

impl World {
    /// An access token over a live device session, as a login would give (without
    /// spending argon2 time on a thousand logins).
    fn token(&self, user: UserId) -> String {
        let p = self
            .db
            .store
            .create_session(
                &NewSession {
                    user_id: user,
                    device_id: format!("bench-{user}"),
                    device_name: None,
                    refresh_hash: format!("{:064x}", user.0.as_u128()),
                    refresh_ttl: chrono::Duration::days(1),
                },
                baithak_store::now_utc(),
            )
            .unwrap();
        self.state
            .keys
            .issue(p.user_id, p.role, p.session_id, Utc::now())
            .unwrap()
    }
}

fn bench_daily(c: &mut Criterion, w: &World, backend: &str, sc: Scale) {
    let rt = actix_rt::System::new();
    let app = rt.block_on(init_service(baithak_api::app(w.state.clone())));
    let token = w.token(w.coordinator);
    let from = w.last_day - Duration::days(i64::from(sc.view_days) - 1);
    let uri = format!(
        "/v1/compliance/daily?area_id={}&from={from}&to={}",
        w.division, w.last_day
    );
    let request = || {
        TestRequest::get()
            .uri(&uri)
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request()
    };

    // The answer is complete and right before anything is timed.
    let body = rt.block_on(async {
        let res = call_service(&app, request()).await;
        assert_eq!(res.status().as_u16(), 200);
        read_body(res).await
    });
    let v: Value = serde_json::from_slice(&body).unwrap();
    let list = v["incharges"].as_array().unwrap();
    assert_eq!(list.len(), sc.incharges as usize);
    assert!(list.iter().all(|i| {
        let days = i["days"].as_array().unwrap();
        days.len() == sc.view_days as usize && days.iter().all(|d| d["status"] == "met")
    }));
    eprintln!(
        "[{backend}] daily view: {} in-charges × {} days, {} KB of JSON",
        list.len(),
        sc.view_days,
        body.len() / 1024
    );

    let id = format!("{}x{}d", sc.incharges, sc.view_days);
    let mut g = c.benchmark_group("compliance_daily");
    g.sampling_mode(SamplingMode::Flat).sample_size(20);
    g.bench_function(BenchmarkId::new(backend, &id), |b| {
        b.iter(|| {
            rt.block_on(async {
                let res = call_service(&app, request()).await;
                assert_eq!(res.status().as_u16(), 200);
                black_box(read_body(res).await.len())
            })
        })
    });
    g.finish();

    // The store's part of the same view: who is in scope, and their stored days.
    let store: &Store = &w.db.store;
    let scope = store.area(w.division).unwrap().path;
    let (from_s, to_s) = (from.to_string(), w.last_day.to_string());
    let mut g = c.benchmark_group("compliance_daily_queries");
    g.sampling_mode(SamplingMode::Flat).sample_size(20);
    g.bench_function(BenchmarkId::new(backend, &id), |b| {
        b.iter(|| {
            let mut users = 0;
            let mut after = None;
            loop {
                let page = store.users_in_subtree(&scope, after, 1000).unwrap();
                users += page.len();
                after = page.last().map(|u| u.id);
                if page.len() < 1000 {
                    break;
                }
            }
            let days = store.quota_days_in_scope(&scope, &from_s, &to_s).unwrap();
            black_box((users, days.len()))
        })
    });
    g.finish();
}

/// The evaluation of one in-charge's day, each iteration the next in-charge's
/// yesterday: what a push's hook does after writing the meeting, without the writes.
fn bench_evaluate(c: &mut Criterion, w: &World, backend: &str, history: &str) {
    let incharges: &[SeededIncharge] = &w.seeded.incharges;
    let day = w.last_day.to_string();
    let mut turn = 0usize;
    let evaluate = |who: UserId| {
        w.db.store
            .sync_tx(|tx| {
                tx.lock_meeting_writes()?;
                let policy = load_policy(tx)?;
                reevaluate_day(tx, &policy, who, &day, PhotoSearch::Every, Utc::now())?;
                tx.quota_day(who, &day)
            })
            .unwrap()
    };
    // Every seeded meeting counts, so a day's verdict is met with five.
    let first = evaluate(incharges[0].id).unwrap();
    assert_eq!((first.counted, first.submitted), (5, 5), "{first:?}");
    let mut g = c.benchmark_group("evaluate_one_day");
    g.sampling_mode(SamplingMode::Flat).sample_size(30);
    g.bench_function(BenchmarkId::new(backend, history), |b| {
        b.iter(|| {
            let who = incharges[turn % incharges.len()].id;
            turn += 1;
            black_box(evaluate(who))
        })
    });
    g.finish();
}

/// One new meeting of the next in-charge in turn, with one new photo that is already
/// uploaded: what a field phone's push after a meeting is.
fn bench_push(c: &mut Criterion, w: &World, backend: &str, history: &str) {
    let rt = actix_rt::System::new();
    let app = rt.block_on(init_service(baithak_api::app(w.state.clone())));
    let incharges: &[SeededIncharge] = &w.seeded.incharges;
    let mut tokens: HashMap<UserId, String> = HashMap::new();
    let mut next_photo = w.seeded.next_photo;
    let mut turn = 0usize;
    let area_ids: HashMap<UserId, AreaId> = incharges.iter().map(|i| (i.id, i.area_id)).collect();
    let mut make_request = || {
        let who = incharges[turn % incharges.len()].id;
        // After the five seeded meetings (08:00–20:00); later rounds 16 minutes apart.
        let round = i64::try_from(turn / incharges.len()).unwrap();
        turn += 1;
        let token = tokens.entry(who).or_insert_with(|| w.token(who)).clone();
        let (sha, phash) = seed_photo(next_photo).unwrap();
        next_photo += 1;
        w.db.store
            .record_media(&NewMedia {
                sha256: sha.clone(),
                media_type: "image/jpeg".into(),
                bytes: 1_200_000,
                width: 4000,
                height: 3000,
                taken_at: None,
                taken_at_local: None,
                gps_lat: None,
                gps_lon: None,
                orientation: 1,
                phash,
                uploaded_by: who,
            })
            .unwrap();
        let minute = 20 * 60 + 30 + (round * 16) % (3 * 60);
        let at = format!(
            "{}T{:02}:{:02}:00+05:30",
            w.last_day,
            minute / 60,
            minute % 60
        );
        let mutation = json!({
            "id": Uuid::now_v7(), "type": "meeting.upsert", "data": {
                "id": Uuid::now_v7(), "kind": "small_meeting", "occurred_at": at,
                "area_id": area_ids[&who].0,
                "location": {"lat": 26.85, "lon": 80.95, "accuracy_m": 12},
                "attendee_count": 14, "topic": "बिजली", "notes": "", "photos": [sha]}});
        TestRequest::post()
            .uri("/v1/sync/push")
            .insert_header(("authorization", format!("Bearer {token}")))
            .set_json(json!({"device_id": format!("bench-{who}"), "mutations": [mutation]}))
            .to_request()
    };
    let push = |req| {
        rt.block_on(async {
            let res = call_service(&app, req).await;
            assert_eq!(res.status().as_u16(), 200);
            read_body(res).await
        })
    };

    // The push applies and the meeting counts before anything is timed.
    let body = push(make_request());
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["results"][0]["status"], "applied", "{v}");
    let mid: Uuid = v["results"][0]["entity_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let m = w.db.store.meeting(mid).unwrap();
    assert!(m.counted, "the pushed meeting counts: {}", m.flags);
    assert_eq!(m.record_seq, w.seeded.last_record_seq + 1);

    let mut g = c.benchmark_group("push_one_meeting");
    g.sampling_mode(SamplingMode::Flat).sample_size(30);
    g.bench_function(BenchmarkId::new(backend, history), |b| {
        b.iter_batched(&mut make_request, push, BatchSize::PerIteration)
    });
    g.finish();
    eprintln!(
        "[{backend}] push ({history}): {turn} meetings pushed over {} in-charges",
        incharges.len()
    );
}

fn bench(c: &mut Criterion) {
    let sc = scale();
    eprintln!(
        "scale {}: {} in-charges × {} days × 5 meetings; view {} days; short history {} days",
        sc.label, sc.incharges, sc.days, sc.view_days, sc.short_days
    );
    let keep = std::env::var("BAITHAK_BENCH_KEEP").is_ok_and(|v| v == "1");
    for (kind, backend) in backends() {
        if keep {
            let w = world(kind, backend, sc.incharges, sc.days);
            eprintln!("[{backend}] kept: {}", w.db.url);
            std::mem::forget(w);
            continue;
        }
        {
            let w = world(kind, backend, sc.incharges, sc.days);
            bench_daily(c, &w, backend, sc);
            bench_evaluate(c, &w, backend, &format!("history_{}d", sc.days));
            bench_push(c, &w, backend, &format!("history_{}d", sc.days));
        }
        let w = world(kind, backend, sc.incharges, sc.short_days);
        bench_evaluate(c, &w, backend, &format!("history_{}d", sc.short_days));
        bench_push(c, &w, backend, &format!("history_{}d", sc.short_days));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(2))
        .measurement_time(std::time::Duration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
