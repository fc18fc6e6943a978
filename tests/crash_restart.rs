//! End to end: 20 simulated devices sync three offline days through a lossy network
//! while the server is killed with SIGKILL twice, in the middle of their uploads and
//! pushes, and started again on the same database and data dir. What the server
//! acknowledged before a kill must still be there after it, what it had not must be
//! sent again by the devices, and at the end every meeting exists exactly once with
//! the photos it was recorded with, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_client::sim::{Report, run_sim};
use baithak_test_support::Kind;
use common::sim::{assert_exactly_once, lossy_config, setup};
use common::{Server, start};
use std::time::Duration;

/// Requests each server process answers with a 2xx before it is killed: past the
/// set-up (about 45 requests: users, logins) and well inside the devices' sync
/// (some 3,000 requests through the proxy in all), so the kills land among uploads,
/// their chunks and pushes: a run sees dozens of requests cut off by them.
const KILL_AFTER_2XX: [u64; 2] = [250, 350];

async fn sync_through_two_kills(kind: Kind) -> Report {
    let mut s = start(kind, &[]);
    setup(&s);
    let work = tempfile::tempdir().unwrap();
    // Its photos are big enough for resumable uploads, so a kill can land between
    // the chunks of one.
    let cfg = lossy_config(&s.base, work.path(), 20_261_201);
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
            } else if path
                .strip_prefix(&s.data_dir)
                .is_ok_and(|rel| rel.components().any(|c| c.as_os_str() == "uploads"))
            {
                left.push(path);
            }
        }
    }
    assert!(left.is_empty(), "upload pieces left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sync_exactly_once_through_two_server_kills_sqlite() {
    let report = sync_through_two_kills(Kind::Sqlite).await;
    assert_exactly_once(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sync_exactly_once_through_two_server_kills_postgres() {
    let report = sync_through_two_kills(Kind::Postgres).await;
    assert_exactly_once(&report);
}
