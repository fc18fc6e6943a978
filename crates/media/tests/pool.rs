//! IngestPool admission: bounded in-flight work, fast Busy when saturated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use baithak_media::{IngestError, IngestLimits, IngestPool, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_when_saturated_then_recovers() {
    let big: Arc<[u8]> = common::photo("mobile/jolla.jpg").into();
    let pool = IngestPool::new(1, 0);
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
async fn queue_slots_admit_and_wait() {
    let small: Arc<[u8]> = common::photo("gps/DSCN0010.jpg").into();
    let pool = IngestPool::new(1, 2);
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

#[tokio::test]
async fn ingest_errors_pass_through() {
    let pool = IngestPool::new(0, 4);
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
