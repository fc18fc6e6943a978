//! End to end: 20 simulated devices sync three offline days through a lossy network
//! while the server is killed with SIGKILL twice, in the middle of their uploads and
//! pushes, and started again on the same database and data dir. What the server
//! acknowledged before a kill must still be there after it, what it had not must be
//! sent again by the devices, and at the end every meeting exists exactly once with
//! the photos it was recorded with, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_client::sim::{FaultConfig, PhotoSource, Report, SimConfig, run_sim};
use baithak_test_support::Kind;
use common::{AREAS, Server, start};
use secrecy::SecretString;
use std::time::Duration;

const PW: &str = "correct horse battery";

/// Requests each server process answers with a 2xx before it is killed: past the
/// set-up (about 45 requests: users, logins) and well inside the devices' sync
/// (some 3,000 requests through the proxy in all), so the kills land among uploads,
/// their chunks and pushes: a run sees dozens of requests cut off by them.
const KILL_AFTER_2XX: [u64; 2] = [250, 350];

async fn sync_through_two_kills(kind: Kind) -> Report {
    let mut s = start(kind, &[]);
    std::fs::create_dir_all(&s.data_dir).unwrap();
    let csv = s.data_dir.join("areas.csv");
    std::fs::write(&csv, AREAS).unwrap();
    let (ok, _, err) = s.cli(&["areas", "import", csv.to_str().unwrap()], None);
    assert!(ok, "{err}");
    s.add_user("admin", "admin", "UP", PW);

    let work = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(s.base.clone());
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
    // Resumable uploads too, so a kill can land between the chunks of one.
    cfg.resumable_threshold = 48 * 1024;
    cfg.chunk_size = 16 * 1024;
    cfg.max_chunk_size = 32 * 1024;
    cfg.work_dir = work.path().to_path_buf();
    cfg.seed = 20_261_201;
    cfg.request_timeout = Duration::from_secs(30);
    let sim = tokio::spawn(run_sim(cfg));

    let mut kills = 0;
    for threshold in KILL_AFTER_2XX {
        loop {
            assert!(
                !sim.is_finished(),
                "the devices finished before kill {}",
                kills + 1
            );
            if s.answered_2xx().await >= threshold {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        s.kill_and_restart();
        kills += 1;
    }
    assert_eq!(kills, KILL_AFTER_2XX.len());

    let report = tokio::time::timeout(Duration::from_secs(420), sim)
        .await
        .expect("the simulation finished in time")
        .expect("the simulation task did not panic")
        .expect("the simulation ran");
    eprintln!(
        "{kind:?}: {}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    assert_no_upload_left(&s);
    report
}

/// Resumable uploads that a kill cut off were finished by their devices afterwards;
/// none may stay behind as a part file nobody will claim.
fn assert_no_upload_left(s: &Server) {
    let mut left = Vec::new();
    let mut dirs = vec![s.data_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().contains(&format!(
                "{}uploads{}",
                std::path::MAIN_SEPARATOR,
                std::path::MAIN_SEPARATOR
            )) {
                left.push(path);
            }
        }
    }
    assert!(left.is_empty(), "upload pieces left: {left:?}");
}

fn assert_every_meeting_once(report: &Report) {
    let v = &report.verification;
    assert_eq!(report.devices, 20);
    assert!(
        (180..=360).contains(&report.meetings),
        "{} meetings",
        report.meetings
    );
    assert_eq!(
        v.pending, 0,
        "nothing may stay pending: {:?}",
        report.sync_errors
    );
    assert!(v.rejected.is_empty(), "rejected: {:#?}", v.rejected);
    assert_eq!(v.replay_checked, report.meetings + report.feedback);
    assert_eq!(
        v.replay_duplicate, v.replay_checked,
        "replaying every mutation must answer duplicate: {:#?}",
        v.replay_unexpected
    );
    let list = v.list.as_ref().expect("the server lists meetings");
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
    assert!(v.ok, "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sync_exactly_once_through_two_server_kills_sqlite() {
    let report = sync_through_two_kills(Kind::Sqlite).await;
    assert_every_meeting_once(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sync_exactly_once_through_two_server_kills_postgres() {
    let report = sync_through_two_kills(Kind::Postgres).await;
    assert_every_meeting_once(&report);
}
