//! Content-addressed blob storage for originals and their renditions, on a
//! local folder or an S3-compatible bucket (AWS, MinIO) via `object_store`.
//!
//! Keys fan out on the first two digest bytes (`original/ab/cd/<sha>`) so no
//! directory or listing prefix grows unboundedly. Since the key is the content
//! hash, writing the same key twice writes the same bytes and is harmless.
//!
//! Durability: a put returns only once the blob would survive a power cut. S3
//! acknowledges a write only after storing it durably; `object_store`'s local
//! backend renames a staging file into place but never fsyncs, so on a local
//! store every put is followed by an fsync of the file and of its directory
//! (which makes the rename durable), and of each directory above it up to the
//! store's root until one whose own entry this process already made durable
//! (so a fan-out directory the put had to create is durable too). Once the
//! fan-out is in place a put costs two fsyncs, not five.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, GetResultPayload, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;

use crate::hash::{Sha256, Sha256Hasher};
use crate::parts::SharedParts;

/// Which rendition of a photo a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The uploaded bytes, unchanged; its key is the SHA-256 of exactly these bytes.
    Original,
    /// The 320 px JPEG.
    Thumb,
    /// The 1280 px JPEG.
    Display,
}

impl Variant {
    fn index(self) -> usize {
        match self {
            Variant::Original => 0,
            Variant::Thumb => 1,
            Variant::Display => 2,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Thumb => "thumb",
            Variant::Display => "display",
        }
    }

    /// The storage key of this variant of the photo whose original hashes to `sha`.
    pub fn key(self, sha: &Sha256) -> String {
        let hex = sha.to_hex();
        // The original's format is recorded elsewhere; renditions are always JPEG.
        let ext = match self {
            Variant::Original => "",
            Variant::Thumb | Variant::Display => ".jpg",
        };
        format!("{}/{}/{}/{hex}{ext}", self.prefix(), &hex[0..2], &hex[2..4])
    }

    fn path(self, sha: &Sha256) -> Path {
        Path::from(self.key(sha))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store configuration: {0}")]
    Config(String),
    /// The bytes offered as an original do not hash to the key they were offered under.
    #[error("content hashes to {actual}, not to its key {expected}")]
    DigestMismatch { expected: Sha256, actual: Sha256 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

impl BlobError {
    pub(crate) fn io(path: &FsPath, source: std::io::Error) -> Self {
        BlobError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Runs blocking file work off the async threads; a task that died is an I/O
/// error on `path`.
async fn blocking<T: Send + 'static>(
    path: &FsPath,
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(BlobError::io(path, std::io::Error::other(e.to_string()))))
}

/// Files up to this size go up in one request; S3 multipart parts must be at
/// least 5 MiB anyway, and one request is cheaper than three.
const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
const MULTIPART_CHUNK: usize = 8 * 1024 * 1024;
const READ_CHUNK: usize = 256 * 1024;
const UPLOAD_CONCURRENCY: usize = 2;

/// A stored blob being read: its size and its bytes, chunk by chunk.
pub struct BlobReader {
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The local backend and its canonical root, kept beside the trait object so
/// puts can find the file they wrote and fsync it.
#[derive(Debug)]
struct LocalDisk {
    fs: Arc<LocalFileSystem>,
    root: PathBuf,
    synced: SyncedDirs,
    /// fsync calls made, for tests to see what a put cost.
    fsyncs: AtomicU64,
}

/// The directories (`original`, `original/ab`, `original/ab/cd`, and so for each
/// variant) whose entry in their parent this process has fsynced, with every
/// directory above them: a put into one of those needs no fsync above its own
/// directory. Bits, not paths, so it stays 25 KiB however many photos arrive.
///
/// A bit is set only after the fsyncs that made the entry durable returned, so
/// a put that raced the creation of its directory syncs the chain itself.
/// Nothing removes fan-out directories while the store is open.
#[derive(Debug)]
struct SyncedDirs {
    /// One bit per `variant`, then per `variant/ab`, then per `variant/ab/cd`.
    bits: Box<[AtomicU64]>,
}

const PREFIX_BITS: usize = 3;
const FIRST_BITS: usize = 3 * 256;
const LEAF_BITS: usize = 3 * 65536;

impl SyncedDirs {
    fn new() -> Self {
        let words = (PREFIX_BITS + FIRST_BITS + LEAF_BITS).div_ceil(64);
        SyncedDirs {
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The bits of a blob's directories: its leaf, first level and prefix.
    fn bits_of(kind: Variant, sha: &Sha256) -> [usize; 3] {
        let [b0, b1, ..] = *sha.as_bytes();
        let v = kind.index();
        [
            PREFIX_BITS + FIRST_BITS + v * 65536 + usize::from(u16::from_be_bytes([b0, b1])),
            PREFIX_BITS + v * 256 + usize::from(b0),
            v,
        ]
    }

    fn known(&self, bit: usize) -> bool {
        self.bits
            .get(bit / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (bit % 64)) != 0)
    }

    fn mark(&self, bit: usize) {
        if let Some(w) = self.bits.get(bit / 64) {
            w.fetch_or(1 << (bit % 64), Ordering::Release);
        }
    }
}

/// Blob storage keyed by content hash and variant.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    local: Option<Arc<LocalDisk>>,
}

impl BlobStore {
    /// Wraps any `object_store` backend (e.g. `InMemory` in tests). Puts are as
    /// durable as that backend makes them; use [`BlobStore::local`] for a folder.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        BlobStore { store, local: None }
    }

    /// Stores blobs as files under `dir`, creating it if missing.
    ///
    /// Writes go to a sibling temp file that is renamed into place, so readers
    /// never see a partial blob, and each put fsyncs the file and its
    /// directories before it returns, so an acknowledged blob survives a power cut.
    pub fn local(dir: impl AsRef<FsPath>) -> Result<Self, BlobError> {
        let dir = dir.as_ref();
        let io_err = |source| BlobError::io(dir, source);
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let root = std::fs::canonicalize(dir).map_err(io_err)?;
        let fs = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
        Ok(BlobStore {
            store: Arc::clone(&fs) as Arc<dyn ObjectStore>,
            local: Some(Arc::new(LocalDisk {
                fs,
                root,
                synced: SyncedDirs::new(),
                fsyncs: AtomicU64::new(0),
            })),
        })
    }

    /// An S3-compatible bucket configured from `AWS_*` variables:
    /// `AWS_BUCKET` (or `AWS_BUCKET_NAME`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_DEFAULT_REGION`, and for MinIO `AWS_ENDPOINT=http://host:9000`.
    /// An `http://` endpoint is allowed without also setting `AWS_ALLOW_HTTP`,
    /// since naming a plain-HTTP endpoint is already an explicit choice.
    /// `AWS_TIMEOUT` bounds one request to the bucket (default 30 s).
    pub fn s3_from_env() -> Result<Self, BlobError> {
        // object_store retries for up to three minutes by default; a phone waiting for
        // its upload's answer gives up long before, and its retry would then queue
        // behind the first attempt. Retries stop 15 s after the first try: an
        // unreachable bucket is a 503 with Retry-After in seconds, not minutes.
        let mut builder = AmazonS3Builder::from_env().with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(15),
        });
        let http_endpoint = ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .any(|v| v.starts_with("http://"));
        if http_endpoint {
            builder = builder.with_allow_http(true);
        }
        let s3 = builder
            .build()
            .map_err(|e| BlobError::Config(e.to_string()))?;
        Ok(BlobStore::new(Arc::new(s3)))
    }

    /// Stores `bytes` under the variant's key. For [`Variant::Original`] the
    /// bytes must hash to `sha`, so a bug upstream cannot file content under
    /// someone else's address.
    pub async fn put(
        &self,
        kind: Variant,
        sha: &Sha256,
        bytes: impl Into<Bytes>,
    ) -> Result<(), BlobError> {
        let bytes = bytes.into();
        if kind == Variant::Original {
            let actual = crate::sha256_of(&bytes);
            if actual != *sha {
                return Err(BlobError::DigestMismatch {
                    expected: *sha,
                    actual,
                });
            }
        }
        let path = kind.path(sha);
        self.store.put(&path, PutPayload::from_bytes(bytes)).await?;
        self.make_durable(kind, sha).await
    }

    /// Stores a file (typically the temp file an upload was streamed into)
    /// without holding more than one chunk of a large file in memory. Originals
    /// are hashed on the way; on a mismatch the upload is abandoned before the
    /// object becomes visible.
    pub async fn put_file(
        &self,
        kind: Variant,
        sha: &Sha256,
        path: impl AsRef<FsPath>,
    ) -> Result<(), BlobError> {
        let path = path.as_ref();
        let io_err = |source| BlobError::io(path, source);
        let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
        let len = file.metadata().await.map_err(io_err)?.len();

        if len <= SINGLE_PUT_MAX {
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut buf).await.map_err(io_err)?;
            return self.put(kind, sha, buf).await;
        }

        let upload = self.store.put_multipart(&kind.path(sha)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
        let mut hasher = Sha256Hasher::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    abort_quietly(writer).await;
                    return Err(io_err(e));
                }
            };
            if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                abort_quietly(writer).await;
                return Err(e.into());
            }
            let chunk = &buf[..n];
            hasher.update(chunk);
            writer.write(chunk);
        }
        if kind == Variant::Original {
            let actual = hasher.finish();
            if actual != *sha {
                abort_quietly(writer).await;
                return Err(BlobError::DigestMismatch {
                    expected: *sha,
                    actual,
                });
            }
        }
        writer.finish().await?;
        self.make_durable(kind, sha).await
    }

    /// Stores the file at `path` as `put_file` does, but may take the file
    /// itself: on a local store on the same filesystem it is renamed into place
    /// rather than copied, so the caller must not need it afterwards. The caller
    /// must have hashed its current content to `sha` (an original is not hashed
    /// again when it is moved).
    pub async fn put_moving_file(
        &self,
        kind: Variant,
        sha: &Sha256,
        path: impl AsRef<FsPath>,
    ) -> Result<(), BlobError> {
        self.put_placing_file(kind, sha, path.as_ref(), move_into_place)
            .await
    }

    /// Stores the file at `path` as `put_file` does, leaving the file where it is: on
    /// a local store on the same filesystem the blob is a second hard link to it
    /// rather than a copy. The caller must have hashed its current content to `sha`
    /// and must never write to the file again (a finished upload's part file, kept
    /// only so a failed store can be retried), since the blob shares its bytes.
    pub async fn put_linked_file(
        &self,
        kind: Variant,
        sha: &Sha256,
        path: impl AsRef<FsPath>,
    ) -> Result<(), BlobError> {
        self.put_placing_file(kind, sha, path.as_ref(), link_into_place)
            .await
    }

    /// Puts the file in at its blob path with `place` on a local store (which says
    /// `false` when it cannot), else copies it with `put_file`.
    async fn put_placing_file(
        &self,
        kind: Variant,
        sha: &Sha256,
        path: &FsPath,
        place: fn(&FsPath, &FsPath) -> std::io::Result<bool>,
    ) -> Result<(), BlobError> {
        if let Some(disk) = &self.local {
            let target = disk.fs.path_to_filesystem(&kind.path(sha))?;
            let from = path.to_path_buf();
            let placed = blocking(path, move || {
                place(&from, &target).map_err(|e| {
                    // Either end may be at fault (a lost source, a target directory
                    // that cannot be made): name both.
                    let at = format!("placing it at {}: {e}", target.display());
                    BlobError::io(&from, std::io::Error::new(e.kind(), at))
                })
            })
            .await?;
            if placed {
                return self.make_durable(kind, sha).await;
            }
        }
        self.put_file(kind, sha, path).await
    }

    /// Where resumable uploads keep their pieces when any replica may serve the next
    /// request: the bucket itself. `None` on a local store, which one process serves.
    pub fn shared_parts(&self) -> Option<SharedParts> {
        self.local
            .is_none()
            .then(|| SharedParts::new(Arc::clone(&self.store)))
    }

    /// The blob's bytes, or `None` if it was never stored.
    pub async fn get(&self, kind: Variant, sha: &Sha256) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&kind.path(sha)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The blob as a stream, or `None` if it was never stored. Local files are
    /// read in large chunks rather than `object_store`'s 8 KiB ones.
    pub async fn open(&self, kind: Variant, sha: &Sha256) -> Result<Option<BlobReader>, BlobError> {
        let result = match self.store.get(&kind.path(sha)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = result.meta.size;
        let stream = match result.payload {
            GetResultPayload::File(file, path) => {
                file_stream(tokio::fs::File::from_std(file), path, size)
            }
            GetResultPayload::Stream(stream) => stream.map_err(BlobError::from).boxed(),
        };
        Ok(Some(BlobReader { size, stream }))
    }

    pub async fn exists(&self, kind: Variant, sha: &Sha256) -> Result<bool, BlobError> {
        match self.store.head(&kind.path(sha)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the blob; removing one that is already gone is not an error.
    pub async fn delete(&self, kind: Variant, sha: &Sha256) -> Result<(), BlobError> {
        match self.store.delete(&kind.path(sha)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl BlobStore {
    /// On a local store, fsyncs the blob, its directory, and the directories
    /// above it up to the root or to the first one already known durable, off
    /// the async threads. A no-op elsewhere.
    async fn make_durable(&self, kind: Variant, sha: &Sha256) -> Result<(), BlobError> {
        let Some(disk) = &self.local else {
            return Ok(());
        };
        let file = disk.fs.path_to_filesystem(&kind.path(sha))?;
        let disk = Arc::clone(disk);
        let sha = *sha;
        let task_path = file.clone();
        blocking(&file, move || disk.sync_blob(kind, &sha, &task_path)).await
    }
}

impl LocalDisk {
    /// Opening a directory read-only and fsyncing it persists its entries on Linux.
    fn sync(&self, path: &FsPath) -> Result<(), BlobError> {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|source| BlobError::io(path, source))
    }

    /// fsyncs `file` (the blob of `kind` for `sha`) and its directory, then each
    /// directory above until the one holding an entry already known durable.
    fn sync_blob(&self, kind: Variant, sha: &Sha256, file: &FsPath) -> Result<(), BlobError> {
        let [b0, b1, ..] = *sha.as_bytes();
        let prefix_dir = self.root.join(kind.prefix());
        let first_dir = prefix_dir.join(format!("{b0:02x}"));
        let leaf_dir = first_dir.join(format!("{b1:02x}"));
        let [leaf, first, prefix] = SyncedDirs::bits_of(kind, sha);
        // From the blob's directory up: the bit saying a directory's own entry
        // is durable all the way up, and the directory holding that entry.
        let chain = [
            (leaf, first_dir.as_path()),
            (first, prefix_dir.as_path()),
            (prefix, self.root.as_path()),
        ];
        self.sync(file)?;
        // The blob's own entry, written by the rename.
        self.sync(&leaf_dir)?;
        let mut made_durable = Vec::with_capacity(chain.len());
        for (bit, parent) in chain {
            if self.synced.known(bit) {
                break;
            }
            self.sync(parent)?;
            made_durable.push(bit);
        }
        for bit in made_durable {
            self.synced.mark(bit);
        }
        Ok(())
    }
}

/// Renames a complete file to its blob path, creating the fan-out directories;
/// `Ok(false)` when the two are on different filesystems (then it must be copied).
/// A blob already there has the same content (same key), so replacing it is harmless.
fn move_into_place(from: &FsPath, target: &FsPath) -> std::io::Result<bool> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::rename(from, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => Ok(false),
        Err(e) => Err(e),
    }
}

/// Links a complete file in at its blob path, creating the fan-out directories;
/// `Ok(false)` when the filesystem will not link it there (another filesystem, no
/// hard links): then it must be copied, and the copy reports any real error.
/// A blob already there has the same content (same key), and blobs only appear
/// complete (by rename or link), so that one stands.
fn link_into_place(from: &FsPath, target: &FsPath) -> std::io::Result<bool> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::hard_link(from, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(true),
        Err(e) => {
            tracing::debug!(error = %e, "cannot link the file into the blob store; copying");
            Ok(false)
        }
    }
}

const STREAM_CHUNK: usize = 256 * 1024;

/// Reads `len` bytes of `file` as a stream of chunks of up to [`STREAM_CHUNK`].
fn file_stream(
    file: tokio::fs::File,
    path: PathBuf,
    len: u64,
) -> BoxStream<'static, Result<Bytes, BlobError>> {
    futures_util::stream::try_unfold(
        (file, path, len),
        |(mut file, path, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining).map_or(STREAM_CHUNK, |r| r.min(STREAM_CHUNK));
            let mut buf = BytesMut::zeroed(want);
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(source) => return Err(BlobError::Io { path, source }),
            };
            if n == 0 {
                return Err(BlobError::Io {
                    path,
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            buf.truncate(n);
            Ok(Some((buf.freeze(), (file, path, remaining - n as u64))))
        },
    )
    .boxed()
}

// The original error is what the caller needs to see; a failed abort only
// leaves an orphaned staging object for the backend's lifecycle rules.
async fn abort_quietly(writer: WriteMultipart) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(error = %e, "failed to abort multipart upload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fan_out_on_the_digest() {
        let sha = crate::sha256_of(b"");
        assert_eq!(
            Variant::Original.key(&sha),
            "original/e3/b0/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Variant::Thumb.key(&sha),
            "thumb/e3/b0/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.jpg"
        );
        assert!(Variant::Display.key(&sha).starts_with("display/e3/b0/"));
    }

    /// The fsync after a local put must find the file `object_store` wrote; if
    /// the key-to-path mapping were wrong, the put itself would fail.
    #[tokio::test]
    async fn local_puts_are_synced_where_object_store_wrote_them() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::local(tmp.path().join("blobs")).unwrap();
        let bytes = b"evidence".to_vec();
        let sha = crate::sha256_of(&bytes);
        store
            .put(Variant::Original, &sha, bytes.clone())
            .await
            .unwrap();
        let on_disk = tmp.path().join("blobs").join(Variant::Original.key(&sha));
        assert_eq!(std::fs::read(&on_disk).unwrap(), bytes);

        let disk = store.local.as_ref().unwrap();
        assert_eq!(
            disk.fs
                .path_to_filesystem(&Variant::Original.path(&sha))
                .unwrap(),
            std::fs::canonicalize(&on_disk).unwrap()
        );
        // A missing blob is an error, never a silent success.
        let missing = crate::sha256_of(b"missing");
        assert!(store.make_durable(Variant::Thumb, &missing).await.is_err());

        let mut reader = store.open(Variant::Original, &sha).await.unwrap().unwrap();
        assert_eq!(reader.size, bytes.len() as u64);
        let mut read = Vec::new();
        while let Some(chunk) = reader.stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(read, bytes);
        assert!(store.open(Variant::Thumb, &sha).await.unwrap().is_none());
    }

    /// A put into new fan-out directories syncs them all the way up to the
    /// root; later puts under directories already synced cost the file and its
    /// directory only; a failed sync marks nothing.
    #[tokio::test]
    async fn local_puts_sync_each_new_directory_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::local(tmp.path()).unwrap();
        let disk = Arc::clone(store.local.as_ref().unwrap());
        let fsyncs = || disk.fsyncs.load(Ordering::Relaxed);
        // Digests picked by their leading bytes, to land in chosen directories.
        let sha = |b0: u8, b1: u8, n: u8| {
            let mut bytes = [n; 32];
            bytes[0] = b0;
            bytes[1] = b1;
            Sha256::from_bytes(bytes)
        };
        let put = |kind, sha| {
            let store = store.clone();
            async move { store.put(kind, &sha, b"rendition".to_vec()).await }
        };

        // A missing blob fails its first fsync and leaves no mark behind.
        assert!(
            store
                .make_durable(Variant::Thumb, &sha(1, 2, 0))
                .await
                .is_err()
        );

        let before = fsyncs();
        put(Variant::Thumb, sha(1, 2, 1)).await.unwrap();
        // file, thumb/01/02, thumb/01, thumb, root
        assert_eq!(fsyncs() - before, 5);

        let before = fsyncs();
        put(Variant::Thumb, sha(1, 2, 2)).await.unwrap();
        assert_eq!(fsyncs() - before, 2, "same leaf: file and leaf only");

        let before = fsyncs();
        put(Variant::Thumb, sha(1, 3, 1)).await.unwrap();
        assert_eq!(fsyncs() - before, 3, "new leaf under a synced first level");

        let before = fsyncs();
        put(Variant::Thumb, sha(2, 3, 1)).await.unwrap();
        assert_eq!(
            fsyncs() - before,
            4,
            "new first level under a synced prefix"
        );

        let before = fsyncs();
        put(Variant::Display, sha(1, 2, 1)).await.unwrap();
        assert_eq!(fsyncs() - before, 5, "each variant has its own directories");

        // Whatever was skipped, every blob is where a reader finds it.
        for (kind, sha) in [
            (Variant::Thumb, sha(1, 2, 1)),
            (Variant::Thumb, sha(1, 2, 2)),
            (Variant::Thumb, sha(1, 3, 1)),
            (Variant::Thumb, sha(2, 3, 1)),
            (Variant::Display, sha(1, 2, 1)),
        ] {
            assert_eq!(
                store.get(kind, &sha).await.unwrap().as_deref(),
                Some(&b"rendition"[..])
            );
        }
    }

    #[tokio::test]
    async fn large_local_blobs_stream_in_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::local(tmp.path()).unwrap();
        let bytes: Vec<u8> = (0..(STREAM_CHUNK * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let sha = crate::sha256_of(&bytes);
        store
            .put(Variant::Original, &sha, bytes.clone())
            .await
            .unwrap();
        let reader = store.open(Variant::Original, &sha).await.unwrap().unwrap();
        let chunks: Vec<Bytes> = reader.stream.try_collect().await.unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), bytes);
    }
}
