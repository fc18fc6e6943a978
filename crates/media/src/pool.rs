//! A bounded pool for running ingest off the async runtime.
//!
//! Decoding an 8 MP photo holds ~25 MB and a core for tens of milliseconds, so at
//! most `workers` photos are decoded at once. Photos waiting for a worker hold their
//! encoded bytes, so waiting is bounded by bytes, not by count: a request first gets
//! an [`Admission`] for its size out of a byte budget, waiting up to `admit_wait` for
//! one, and only then reads its body into memory. When the budget stays exhausted
//! (or too many requests are already waiting) the pool answers [`PoolError::Busy`]
//! (the HTTP layer turns that into 503 + Retry-After) rather than letting memory and
//! latency grow without bound. A burst of phones coming online together waits a
//! moment instead of being turned away and coming back seconds later.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::ingest::{IngestError, IngestLimits, Ingested, ingest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No room in the pool's byte budget in time; retry later.
    #[error("ingest pool is saturated")]
    Busy,
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The job died without an answer (a bug, since decoder panics are already
    /// caught inside ingest).
    #[error("ingest worker failed: {0}")]
    Worker(String),
}

/// How many bytes may wait for (or be in) ingest, and how long a request may wait for
/// room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Photos decoded at once; 0 means one per available core.
    pub workers: usize,
    /// Encoded bytes admitted at once (running and waiting). A single photo larger
    /// than this is still admitted, alone.
    pub budget_bytes: u64,
    /// Longest a request waits for room in the budget before [`PoolError::Busy`].
    pub admit_wait: Duration,
    /// Requests allowed to wait for room at once; beyond it, `Busy` straight away.
    pub max_waiting: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            workers: 0,
            budget_bytes: 32 * 1024 * 1024,
            admit_wait: Duration::from_secs(10),
            max_waiting: 256,
        }
    }
}

/// Runs [`ingest`] on tokio's blocking threads, at most `workers` at a time, with
/// admission bounded by bytes (see the module documentation).
#[derive(Debug, Clone)]
pub struct IngestPool {
    /// In KiB.
    budget: Arc<Semaphore>,
    budget_kib: u32,
    running: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    admitted: Arc<AtomicUsize>,
    limits: PoolLimits,
}

/// Room in the pool for one photo of a given size; running the job uses it up, and
/// dropping it unused gives the room back.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a waiting request for as long as it waits (even if its future is dropped).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl IngestPool {
    pub fn new(limits: PoolLimits) -> Self {
        let workers = if limits.workers == 0 {
            default_workers()
        } else {
            limits.workers
        };
        let budget_kib = u32::try_from(limits.budget_bytes / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        IngestPool {
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            running: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(AtomicUsize::new(0)),
            admitted: Arc::new(AtomicUsize::new(0)),
            limits: PoolLimits { workers, ..limits },
        }
    }

    pub fn workers(&self) -> usize {
        self.limits.workers
    }

    /// Jobs admitted (running or waiting for a worker).
    pub fn in_flight(&self) -> usize {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Requests waiting for room in the budget.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// True when a new request would be refused straight away: as many are waiting
    /// as may. A cheap check before reading a body that could not be taken anyway.
    pub fn saturated(&self) -> bool {
        self.waiting() >= self.limits.max_waiting
    }

    /// Waits (up to `admit_wait`) for room for a photo of `len` bytes.
    pub async fn admit(&self, len: u64) -> Result<Admission, PoolError> {
        let kib = u32::try_from(len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_kib);
        let permit = match Arc::clone(&self.budget).try_acquire_many_owned(kib) {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.limits.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Err(PoolError::Busy);
                }
                let _waiting = Waiting(Arc::clone(&self.waiting));
                let acquire = Arc::clone(&self.budget).acquire_many_owned(kib);
                match tokio::time::timeout(self.limits.admit_wait, acquire).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(PoolError::Worker("pool closed".into())),
                    Err(_) => return Err(PoolError::Busy),
                }
            }
        };
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(Admission {
            _permit: permit,
            running: Arc::clone(&self.running),
            admitted: Arc::clone(&self.admitted),
        })
    }

    /// Admits and ingests `bytes`: [`IngestPool::admit`] then [`Admission::run`].
    pub async fn run(
        &self,
        bytes: impl AsRef<[u8]> + Send + 'static,
        limits: &IngestLimits,
    ) -> Result<Ingested, PoolError> {
        let len = bytes.as_ref().len() as u64;
        self.admit(len).await?.run(bytes, limits).await
    }
}

impl Admission {
    /// Ingests `bytes` once a worker is free. Dropping the future while it waits for
    /// a worker frees the room; once the job has started it runs to completion and
    /// keeps its room until then, since the CPU and memory are spent either way.
    pub async fn run(
        self,
        bytes: impl AsRef<[u8]> + Send + 'static,
        limits: &IngestLimits,
    ) -> Result<Ingested, PoolError> {
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Worker("pool closed".into()))?;
        let limits = *limits;
        let job = tokio::task::spawn_blocking(move || {
            let result = ingest(bytes.as_ref(), &limits);
            drop(running);
            drop(self);
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
