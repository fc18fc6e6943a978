//! Content-addressed blob storage for originals and their renditions, on a
//! local folder or an S3-compatible bucket (AWS, MinIO) via `object_store`.
//!
//! Keys fan out on the first two digest bytes (`original/ab/cd/<sha>`) so no
//! directory or listing prefix grows unboundedly. Since the key is the content
//! hash, writing the same key twice writes the same bytes and is harmless.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::hash::{Sha256, Sha256Hasher};

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
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

/// Files up to this size go up in one request; S3 multipart parts must be at
/// least 5 MiB anyway, and one request is cheaper than three.
const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
const MULTIPART_CHUNK: usize = 8 * 1024 * 1024;
const READ_CHUNK: usize = 256 * 1024;
const UPLOAD_CONCURRENCY: usize = 2;

/// Blob storage keyed by content hash and variant.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Wraps any `object_store` backend (e.g. `InMemory` in tests).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        BlobStore { store }
    }

    /// Stores blobs as files under `dir`, creating it if missing.
    ///
    /// Writes go to a sibling temp file that is renamed into place, so readers
    /// never see a partial blob (they are not fsynced, though: after a power
    /// cut the newest blobs may be missing or empty).
    pub fn local(dir: impl AsRef<FsPath>) -> Result<Self, BlobError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| BlobError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(BlobStore::new(Arc::new(LocalFileSystem::new_with_prefix(
            dir,
        )?)))
    }

    /// An S3-compatible bucket configured from `AWS_*` variables:
    /// `AWS_BUCKET` (or `AWS_BUCKET_NAME`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_DEFAULT_REGION`, and for MinIO `AWS_ENDPOINT=http://host:9000`.
    /// An `http://` endpoint is allowed without also setting `AWS_ALLOW_HTTP`,
    /// since naming a plain-HTTP endpoint is already an explicit choice.
    pub fn s3_from_env() -> Result<Self, BlobError> {
        let mut builder = AmazonS3Builder::from_env();
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
        self.store
            .put(&kind.path(sha), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
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
        let io_err = |source| BlobError::Io {
            path: path.to_path_buf(),
            source,
        };
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
        Ok(())
    }

    /// The blob's bytes, or `None` if it was never stored.
    pub async fn get(&self, kind: Variant, sha: &Sha256) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&kind.path(sha)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
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
}
