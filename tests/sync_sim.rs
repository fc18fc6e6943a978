//! End to end: the real server, and 20 simulated field devices that record three days
//! of meetings offline and then all sync at once through a network that drops a fifth
//! of the answers and duplicates a tenth of the requests. Every meeting must exist on
//! the server exactly once, on SQLite and on PostgreSQL, whether devices push in
//! batches or meeting by meeting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_client::sim::{Report, run_sim};
use baithak_test_support::Kind;
use baithak_test_support::s3::S3Bucket;
use common::sim::{assert_exactly_once, finish, lossy_config, setup};
use common::{Server, start, start_two_replicas};

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
    let mut cfg = lossy_config(&s.base, work.path(), 20_261_124);
    cfg.replicas = replicas.iter().map(|r| r.base.clone()).collect();
    cfg.push_each = push_each;
    finish(run_sim(cfg), &format!("{kind:?}")).await
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
