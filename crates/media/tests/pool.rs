//! IngestPool admission: a byte budget, a bounded wait for room, Busy when it stays
//! full.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use baithak_media::{IngestError, IngestLimits, IngestPool, PoolError, PoolLimits};

fn pool(workers: usize, budget_bytes: u64, admit_wait: Duration) -> IngestPool {
    IngestPool::new(PoolLimits {
        workers,
        budget_bytes,
        admit_wait,
        max_waiting: 16,
        ..PoolLimits::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_when_saturated_then_recovers() {
    let big: Arc<[u8]> = common::photo("mobile/jolla.jpg").into();
    // A budget smaller than one photo still admits it, alone.
    let pool = pool(1, 1024, Duration::ZERO);
    let limits = IngestLimits::default();

    // `join!` polls the first future first, so it is admitted and the second is not.
    let (first, second) = tokio::join!(
        pool.run(Arc::clone(&big), &limits),
        pool.run(Arc::clone(&big), &limits)
    );
    assert_eq!(first.unwrap().width, 3264);
    assert!(matches!(second, Err(PoolError::Busy)), "{second:?}");
    assert_eq!(pool.in_flight(), 0);

    // Free again.
    let again = pool.run(Arc::clone(&big), &limits).await.unwrap();
    assert_eq!((again.width, again.height), (3264, 2448));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_admits_by_bytes() {
    let small: Arc<[u8]> = common::photo("gps/DSCN0010.jpg").into();
    // Room for three of these photos, not four.
    let pool = pool(
        1,
        (small.len() as u64).div_ceil(1024) * 1024 * 3,
        Duration::ZERO,
    );
    let limits = IngestLimits::default();
    let (a, b, c, d) = tokio::join!(
        pool.run(Arc::clone(&small), &limits),
        pool.run(Arc::clone(&small), &limits),
        pool.run(Arc::clone(&small), &limits),
        pool.run(Arc::clone(&small), &limits),
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert!(matches!(d, Err(PoolError::Busy)), "{d:?}");
    assert_eq!(pool.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_makes_requests_wait_not_fail() {
    let small: Arc<[u8]> = common::photo("gps/DSCN0010.jpg").into();
    let pool = pool(
        1,
        (small.len() as u64).div_ceil(1024) * 1024,
        Duration::from_secs(30),
    );
    let limits = IngestLimits::default();
    let (a, b, c) = tokio::join!(
        pool.run(Arc::clone(&small), &limits),
        pool.run(Arc::clone(&small), &limits),
        pool.run(Arc::clone(&small), &limits),
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert_eq!((pool.in_flight(), pool.waiting()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_waiting_is_busy_at_once() {
    let small: Arc<[u8]> = common::photo("gps/DSCN0010.jpg").into();
    let pool = IngestPool::new(PoolLimits {
        workers: 1,
        budget_bytes: (small.len() as u64).div_ceil(1024) * 1024,
        admit_wait: Duration::from_secs(30),
        max_waiting: 1,
        ..PoolLimits::default()
    });
    let held = pool.admit(small.len() as u64).await.unwrap();
    assert!(!pool.saturated());
    let limits = IngestLimits::default();
    let waiter = pool.run(Arc::clone(&small), &limits);
    tokio::pin!(waiter);
    // Poll the waiter once so it takes the one waiting place.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut waiter)
            .await
            .is_err()
    );
    assert!(pool.saturated());
    let third = pool.run(Arc::clone(&small), &limits).await;
    assert!(matches!(third, Err(PoolError::Busy)), "{third:?}");
    drop(held);
    assert!(waiter.await.is_ok());
    assert_eq!((pool.in_flight(), pool.waiting()), (0, 0));
}

#[tokio::test]
async fn ingest_errors_pass_through() {
    let pool = pool(0, 1 << 20, Duration::ZERO);
    assert!(pool.workers() >= 1);
    let err = pool
        .run(b"GIF89a".to_vec(), &IngestLimits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PoolError::Ingest(IngestError::UnsupportedType)),
        "{err}"
    );
    assert_eq!(pool.in_flight(), 0);
}

/// The nice value of each of this process's threads named `name`, from /proc.
#[cfg(target_os = "linux")]
fn nice_of_threads(name: &str) -> Vec<i64> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        // "tid (comm) state ppid ...": the name is in parentheses, nice is field 19.
        let (head, rest) = stat.rsplit_once(')').unwrap();
        if head.ends_with(&format!("({name}")) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            found.push(fields[16].parse().unwrap());
        }
    }
    found
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_below_the_process_priority() {
    let small: Arc<[u8]> = common::photo("gps/DSCN0010.jpg").into();
    let pool = IngestPool::new(PoolLimits {
        workers: 2,
        ..PoolLimits::default()
    });
    // Running a job proves the threads started and took their priority first.
    let done = pool
        .run(Arc::clone(&small), &IngestLimits::default())
        .await
        .unwrap();
    assert_eq!(done.width, 640);
    let own: i64 = {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let (_, rest) = stat.rsplit_once(')').unwrap();
        rest.split_whitespace().nth(16).unwrap().parse().unwrap()
    };
    let workers = nice_of_threads("ingest-0");
    assert!(!workers.is_empty(), "no ingest worker thread found");
    // Other tests in this binary start pools too; every worker is lowered alike.
    for nice in workers {
        assert_eq!(nice, (own + 10).min(19));
    }
}
