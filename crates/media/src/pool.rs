//! A bounded pool for running ingest off the async runtime.
//!
//! Decoding an 8 MP photo holds ~25 MB and a core for tens of milliseconds, so
//! the number of photos being decoded or waiting to be is capped: beyond
//! `workers + queue` jobs in flight the pool answers [`PoolError::Busy`] at
//! once (the HTTP layer turns that into 503 + Retry-After) rather than letting
//! memory and latency grow without bound.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::ingest::{IngestError, IngestLimits, Ingested, ingest};

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every worker and queue slot is taken; retry later.
    #[error("ingest pool is saturated")]
    Busy,
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The job died without an answer (a bug, since decoder panics are already
    /// caught inside ingest).
    #[error("ingest worker failed: {0}")]
    Worker(String),
}

/// Runs [`ingest`] on tokio's blocking threads, at most `workers` at a time.
#[derive(Debug, Clone)]
pub struct IngestPool {
    admission: Arc<Semaphore>,
    running: Arc<Semaphore>,
    workers: usize,
    queue: usize,
}

impl IngestPool {
    /// `workers` jobs run concurrently and up to `queue` more wait; `workers == 0`
    /// means one per available core.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = if workers == 0 {
            default_workers()
        } else {
            workers
        };
        IngestPool {
            admission: Arc::new(Semaphore::new(workers + queue)),
            running: Arc::new(Semaphore::new(workers)),
            workers,
            queue,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn queue(&self) -> usize {
        self.queue
    }

    /// Jobs currently running or waiting.
    pub fn in_flight(&self) -> usize {
        self.workers + self.queue - self.admission.available_permits()
    }

    /// Ingests `bytes`, or fails fast with [`PoolError::Busy`].
    ///
    /// Dropping the returned future while queued frees the slot; once the job
    /// has started it runs to completion and keeps its slot until then, since
    /// the CPU and memory are spent either way.
    pub async fn run(
        &self,
        bytes: impl AsRef<[u8]> + Send + 'static,
        limits: &IngestLimits,
    ) -> Result<Ingested, PoolError> {
        let admitted = Arc::clone(&self.admission)
            .try_acquire_owned()
            .map_err(|_| PoolError::Busy)?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Worker("pool closed".into()))?;
        let limits = *limits;
        let job = tokio::task::spawn_blocking(move || {
            let result = ingest(bytes.as_ref(), &limits);
            drop(running);
            drop(admitted);
            result
        });
        match job.await {
            Ok(result) => result.map_err(PoolError::from),
            Err(e) => Err(PoolError::Worker(e.to_string())),
        }
    }
}

/// One worker per available core (1 if that cannot be determined).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
