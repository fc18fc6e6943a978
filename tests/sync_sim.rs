//! End to end: the real server, and 20 simulated field devices that record three days
//! of meetings offline and then all sync at once through a network that drops a fifth
//! of the answers and duplicates a tenth of the requests. Every meeting must exist on
//! the server exactly once, on SQLite and on PostgreSQL, whether devices push in
//! batches or meeting by meeting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_client::sim::{FaultConfig, PhotoSource, Report, SimConfig, run_sim};
use baithak_test_support::Kind;
use baithak_test_support::s3::S3Bucket;
use common::{AREAS, Server, start, start_two_replicas};
use secrecy::SecretString;
use std::time::Duration;

const PW: &str = "correct horse battery";

fn setup(s: &Server) {
    std::fs::create_dir_all(&s.data_dir).unwrap();
    let csv = s.data_dir.join("areas.csv");
    std::fs::write(&csv, AREAS).unwrap();
    let (ok, _, err) = s.cli(&["areas", "import", csv.to_str().unwrap()], None);
    assert!(ok, "{err}");
    s.add_user("admin", "admin", "UP", PW);
}

async fn simulate(kind: Kind, push_each: bool) -> Report {
    let s = start(kind, &[]);
    simulate_on(&s, &[], push_each).await
}

/// The simulation against `s`, with the devices' requests spread over `s` and
/// `replicas` in turn when there are any.
async fn simulate_on(s: &Server, replicas: &[&Server], push_each: bool) -> Report {
    let kind = s.db.kind();
    setup(s);
    let work = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(s.base.clone());
    cfg.replicas = replicas.iter().map(|r| r.base.clone()).collect();
    cfg.admin = Some(("admin".into(), SecretString::from(PW)));
    cfg.area_code = Some("LKO-AC1".into());
    cfg.incharges = 20;
    cfg.days = 3;
    cfg.photos = PhotoSource::Generate {
        width: 480,
        height: 360,
    };
    cfg.faults = FaultConfig {
        drop_response: 0.2,
        duplicate: 0.1,
        ..FaultConfig::default()
    };
    // Small thresholds so that both upload paths, and resuming, are exercised.
    cfg.resumable_threshold = 48 * 1024;
    cfg.chunk_size = 16 * 1024;
    cfg.max_chunk_size = 32 * 1024;
    cfg.work_dir = work.path().to_path_buf();
    cfg.seed = 20_261_124;
    cfg.push_each = push_each;
    // A healthy server on a 2-core machine finishes in about a minute; one that stops
    // answering should fail the test, not hang it.
    cfg.request_timeout = Duration::from_secs(30);
    let report = tokio::time::timeout(Duration::from_secs(420), run_sim(cfg))
        .await
        .expect("the simulation finished in time")
        .expect("the simulation ran");
    eprintln!(
        "{kind:?}: {}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    report
}

fn assert_exactly_once(report: &Report) {
    let v = &report.verification;
    assert_eq!(report.devices, 20);
    // 20 devices x 3 days x 3..=6 meetings.
    assert!(
        (180..=360).contains(&report.meetings),
        "{} meetings",
        report.meetings
    );
    assert!(report.proxy.dropped_responses > 0 && report.proxy.duplicated > 0);
    assert_eq!(
        v.pending, 0,
        "nothing may stay pending: {:?}",
        report.sync_errors
    );
    assert!(v.rejected.is_empty(), "rejected: {:#?}", v.rejected);
    assert_eq!(
        v.replay_checked,
        report.meetings + report.feedback,
        "every recorded mutation was settled"
    );
    assert_eq!(
        v.replay_duplicate, v.replay_checked,
        "replaying every mutation must answer duplicate: {:#?}",
        v.replay_unexpected
    );
    // Meeting ids are made by the devices and are the server's keys, so a replay that
    // answers `duplicate` for every mutation already shows each is stored once; the
    // listing, where the server has it, shows it directly.
    match &v.list {
        Some(list) => {
            assert!(list.missing.is_empty(), "missing: {:?}", list.missing);
            assert!(list.duplicated.is_empty(), "doubled: {:?}", list.duplicated);
            assert!(
                list.unexpected.is_empty(),
                "unexpected: {:?}",
                list.unexpected
            );
            assert!(
                list.photo_mismatches.is_empty(),
                "photos differ: {:?}",
                list.photo_mismatches
            );
            assert_eq!(list.found_once, report.meetings);
        }
        None => eprintln!("note: verified by replay only: {:?}", v.problems),
    }
    assert!(v.ok, "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_devices_sync_through_a_lossy_network_sqlite() {
    let report = simulate(Kind::Sqlite, false).await;
    assert_exactly_once(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_devices_sync_through_a_lossy_network_postgres() {
    let report = simulate(Kind::Postgres, false).await;
    assert_exactly_once(&report);
}

/// The per-meeting mode the load runs use (photos, then that meeting's own push),
/// through the same lossy network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_by_meeting_sync_through_a_lossy_network_sqlite() {
    let report = simulate(Kind::Sqlite, true).await;
    assert_exactly_once(&report);
    assert!(
        report.pushes >= report.meetings,
        "one push per mutation at least: {} pushes for {} meetings",
        report.pushes,
        report.meetings
    );
}

/// Two replicas on one PostgreSQL database and one S3 bucket, each with a disk of its
/// own, behind a balancer that sends every request to the next: uploads, their
/// chunks, retries and duplicates land on either, and still every meeting and photo
/// is there exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_devices_sync_across_two_replicas_and_s3() {
    let bucket = S3Bucket::new();
    let (a, b) = start_two_replicas(&bucket);
    let report = simulate_on(&a, &[&b], false).await;
    assert_exactly_once(&report);
    assert!(!bucket.keys("original/").is_empty());
    assert_eq!(
        bucket.keys("uploads/"),
        Vec::<String>::new(),
        "upload pieces left"
    );
}
