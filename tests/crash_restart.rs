//! End to end: 20 simulated devices sync three offline days through a lossy network
//! while the server is killed with SIGKILL twice, in the middle of their uploads and
//! pushes, and started again on the same database and data dir; and, on PostgreSQL,
//! while the database ends all of the server's connections twice. What the server
//! acknowledged before a fault must still be there after it, what it had not must be
//! sent again by the devices, and at the end every meeting exists exactly once with
//! the photos it was recorded with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_client::sim::{Report, run_sim};
use baithak_test_support::Kind;
use common::sim::{assert_exactly_once, finish, lossy_config, setup};
use common::{Server, start};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The devices' requests a server process has answered with a 2xx when each fault
/// comes: past the set-up (about 45 requests: users, logins) and well inside the sync
/// (some 3,000 requests through the proxy in all), so the faults land among uploads,
/// their chunks and pushes: a kill cuts off dozens of requests.
const FAULT_AFTER_2XX: [u64; 2] = [250, 350];

async fn sync_through_two_kills(kind: Kind) -> Report {
    let mut s = start(kind, &[]);
    setup(&s);
    let work = tempfile::tempdir().unwrap();
    // Its photos are big enough for resumable uploads, so a kill can land between
    // the chunks of one.
    let cfg = lossy_config(&s.base, work.path(), 20_261_201);
    let sim = tokio::spawn(run_sim(cfg));

    for threshold in FAULT_AFTER_2XX {
        wait_for_answers(&s, &sim, threshold, &mut 0).await;
        s.kill_and_restart();
    }

    let report = finish(devices_done(sim), &format!("{kind:?}, two kills")).await;
    assert_no_upload_left(&s);
    report
}

/// The spawned simulation's own result.
async fn devices_done(sim: JoinHandle<anyhow::Result<Report>>) -> anyhow::Result<Report> {
    sim.await.expect("the simulation task did not panic")
}

/// Waits until this server process has answered `n` requests of the devices with a
/// 2xx. Polls of `/metrics` are 2xx answers too: `polls` counts those made of this
/// process so far, and they are taken off, or while the devices wait out a
/// `Retry-After` (or record offline) the polls alone would make up the count.
async fn wait_for_answers<T>(s: &Server, sim: &JoinHandle<T>, n: u64, polls: &mut u64) {
    loop {
        assert!(!sim.is_finished(), "the devices finished before the fault");
        let answered = s.answered_2xx().await;
        *polls += 1;
        // This poll is not counted in its own answer.
        if answered.saturating_sub(*polls - 1) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resumable uploads that a kill cut off were finished by their devices afterwards;
/// none may stay behind as a part file nobody will claim.
fn assert_no_upload_left(s: &Server) {
    let mut left = Vec::new();
    // The server's work dir is `work` in its data dir; each upload's parts sit in a
    // folder of their own there.
    let mut dirs = vec![s.data_dir.join("work").join("uploads")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                left.push(entry.path());
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

/// PostgreSQL ends every connection the server has to its database, twice, in the
/// middle of the devices' sync (a failover, or an administrator's restart, looks the
/// same from here): the server gets new connections and every meeting still lands
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sync_exactly_once_when_postgres_drops_the_servers_connections() {
    let s = start(Kind::Postgres, &[]);
    setup(&s);
    let work = tempfile::tempdir().unwrap();
    let cfg = lossy_config(&s.base, work.path(), 20_261_202);
    let sim = tokio::spawn(run_sim(cfg));
    let mut polls = 0;
    for threshold in FAULT_AFTER_2XX {
        wait_for_answers(&s, &sim, threshold, &mut polls).await;
        let ended = terminate_connections(&s.db.url);
        assert!(ended > 0, "the server had connections open");
    }
    let report = finish(devices_done(sim), "PostgreSQL, two connection cuts").await;
    assert_exactly_once(&report);
}

/// Ends every other session on `url`'s database; returns how many.
fn terminate_connections(url: &str) -> usize {
    let out = std::process::Command::new("psql")
        .args([
            url,
            "-Atc",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
