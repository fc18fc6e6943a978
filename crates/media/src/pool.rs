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
//!
//! The decodes run on the pool's own threads, at a lower scheduling priority than
//! the rest of the process (`nice` +10 on Linux). Under a burst, photo work is most
//! of the CPU while a push holds the global meeting lock for a few milliseconds of
//! short queries; if the lock holder (or its PostgreSQL backend) waits behind a
//! decode for its time slice, every other push waits too. Lowered priority lets the
//! short, serialised work cut in, and the decodes still get every idle cycle.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::hash::Sha256;
use crate::ingest::{IngestError, IngestLimits, Ingested, ingest_claimed};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

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
    /// Added to the workers' nice value (Linux); 0 keeps the process's priority.
    pub worker_nice: i32,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            workers: 0,
            budget_bytes: 32 * 1024 * 1024,
            admit_wait: Duration::from_secs(10),
            max_waiting: 256,
            worker_nice: 10,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The pool's threads, fed through one queue. The `running` semaphore already keeps
/// the queue no longer than the number of threads.
#[derive(Debug)]
struct Workers {
    queue: mpsc::Sender<Job>,
}

impl Workers {
    fn start(count: usize, nice: i32) -> Arc<Workers> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..count {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("ingest-{i}"))
                .spawn(move || worker_loop(&rx, nice));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an ingest worker thread");
            }
        }
        Arc::new(Workers { queue: tx })
    }

    fn submit(&self, job: Job) -> Result<(), PoolError> {
        self.queue
            .send(job)
            .map_err(|_| PoolError::Worker("no ingest worker is running".into()))
    }
}

fn worker_loop(rx: &Mutex<mpsc::Receiver<Job>>, nice: i32) {
    lower_priority(nice);
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A job reports through its own channel; a panic drops that channel, which
        // the caller sees as a failed job. The thread lives on for the next one.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("ingest job panicked");
        }
    }
}

/// Lowers the calling thread's priority by `nice` steps. On Linux the nice value is
/// per thread, so this leaves the rest of the process alone.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let result = rustix::process::getpriority_process(Some(tid))
            .and_then(|now| rustix::process::setpriority_process(Some(tid), now + nice));
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot lower the ingest worker's priority");
        }
    }
}

/// Runs [`ingest`] on its own `workers` threads, with admission bounded by bytes
/// (see the module documentation).
#[derive(Debug, Clone)]
pub struct IngestPool {
    /// In KiB.
    budget: Arc<Semaphore>,
    budget_kib: u32,
    running: Arc<Semaphore>,
    threads: Arc<Workers>,
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
    threads: Arc<Workers>,
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
            threads: Workers::start(workers, limits.worker_nice),
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
            threads: Arc::clone(&self.threads),
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
        self.run_claimed(bytes, limits, None).await
    }

    /// [`Admission::run`] through [`ingest_claimed`]: the bytes must hash to `claimed`.
    pub async fn run_claimed(
        self,
        bytes: impl AsRef<[u8]> + Send + 'static,
        limits: &IngestLimits,
        claimed: Option<Sha256>,
    ) -> Result<Ingested, PoolError> {
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Worker("pool closed".into()))?;
        let limits = *limits;
        let threads = Arc::clone(&self.threads);
        let (tx, rx) = oneshot::channel();
        threads.submit(Box::new(move || {
            let result = ingest_claimed(bytes.as_ref(), &limits, claimed.as_ref());
            drop(running);
            drop(self);
            // The request may have gone away meanwhile; nobody is left to tell.
            let _ = tx.send(result);
        }))?;
        match rx.await {
            Ok(result) => result.map_err(PoolError::from),
            Err(_) => Err(PoolError::Worker(
                "ingest job ended without an answer".into(),
            )),
        }
    }
}

/// One worker per available core (1 if that cannot be determined).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
