//! A resumable upload's bytes, kept in the object store while the rest arrives, so
//! that with several replicas behind a load balancer any of them can take the next
//! chunk or finish the upload (on a local store one process serves everything and
//! the parts stay in a file on its disk; see the API's uploads module).
//!
//! Each stored piece is one object, `uploads/{upload}/{start}-{len}` (both numbers
//! zero-padded to 20 digits). The key names the byte range, so a retried or doubled
//! write of the same range stores the same bytes under the same key, and two writes
//! that started at one offset but ended apart (a chunk cut off, then resent) cannot
//! overwrite each other. Finishing follows the ranges from byte 0: wherever pieces
//! overlap, they hold the same bytes of the same file (or the final hash says not).

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutPayload};
use tokio::io::AsyncWriteExt;

use crate::blob::BlobError;
use crate::hash::{Sha256, Sha256Hasher};

const PREFIX: &str = "uploads";

/// Pieces of resumable uploads in a shared object store.
#[derive(Debug, Clone)]
pub struct SharedParts {
    store: Arc<dyn ObjectStore>,
}

/// A stored piece: where it starts in the upload and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    start: u64,
    len: u64,
}

impl Piece {
    fn end(self) -> u64 {
        self.start + self.len
    }
}

fn upload_prefix(upload: &str) -> Path {
    Path::from(format!("{PREFIX}/{upload}"))
}

fn piece_path(upload: &str, p: Piece) -> Path {
    Path::from(format!("{PREFIX}/{upload}/{:020}-{:020}", p.start, p.len))
}

/// The piece a key names, if it is one of ours.
fn parse_piece(name: &str) -> Option<Piece> {
    let (start, len) = name.split_once('-')?;
    Some(Piece {
        start: start.parse().ok()?,
        len: len.parse().ok()?,
    })
}

/// Why the stored pieces do not make up the upload.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    /// No piece holds byte `at`: the upload cannot be finished and must start again.
    #[error("no stored piece holds byte {at} of the upload")]
    Gap { at: u64 },
    #[error(transparent)]
    Store(#[from] BlobError),
}

impl SharedParts {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> SharedParts {
        SharedParts { store }
    }

    /// Stores `bytes` as the piece of `upload` that starts at `start`. Durable when it
    /// returns (an object store acknowledges a put once the object is stored).
    pub async fn put(&self, upload: &str, start: u64, bytes: Bytes) -> Result<(), BlobError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let piece = Piece {
            start,
            len: bytes.len() as u64,
        };
        self.store
            .put(&piece_path(upload, piece), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    async fn pieces(&self, upload: &str) -> Result<Vec<(Piece, ObjectMeta)>, BlobError> {
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&upload_prefix(upload)))
            .try_collect()
            .await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let piece = parse_piece(m.location.filename()?)?;
                // A key whose size disagrees with its name is not a piece we wrote.
                (m.size == piece.len).then_some((piece, m))
            })
            .collect())
    }

    /// Writes bytes `0..length` of `upload` to a new file at `dest`, following the
    /// stored pieces from byte 0, and returns their SHA-256. The file is scratch (not
    /// synced): the blob store's copy of the photo is the durable one.
    pub async fn assemble(
        &self,
        upload: &str,
        length: u64,
        dest: &FsPath,
    ) -> Result<Sha256, PartsError> {
        let pieces = self.pieces(upload).await?;
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| BlobError::io(dest, e))?;
        let mut hasher = Sha256Hasher::new();
        let mut at = 0u64;
        while at < length {
            // Of the pieces holding byte `at`, the one reaching furthest.
            let Some((piece, meta)) = pieces
                .iter()
                .filter(|(p, _)| p.start <= at && at < p.end())
                .max_by_key(|(p, _)| p.end())
            else {
                return Err(PartsError::Gap { at });
            };
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .map_err(BlobError::from)?
                .bytes()
                .await
                .map_err(BlobError::from)?;
            let end = piece.end().min(length);
            let from = usize::try_from(at - piece.start).unwrap_or(usize::MAX);
            let to = usize::try_from(end - piece.start).unwrap_or(usize::MAX);
            let Some(slice) = bytes.get(from..to) else {
                // The object changed length since it was listed; it is not what we wrote.
                return Err(PartsError::Gap { at });
            };
            hasher.update(slice);
            file.write_all(slice)
                .await
                .map_err(|e| BlobError::io(dest, e))?;
            at = end;
        }
        file.flush().await.map_err(|e| BlobError::io(dest, e))?;
        Ok(hasher.finish())
    }

    /// Deletes every piece of `upload`.
    pub async fn delete(&self, upload: &str) -> Result<(), BlobError> {
        let locations = self
            .store
            .list(Some(&upload_prefix(upload)))
            .map_ok(|m| m.location)
            .boxed();
        let mut deleted = self.store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes the pieces of every upload none of whose pieces was written in the last
    /// `max_age` (an upload that long untouched has expired on every replica).
    /// Returns how many uploads' pieces went.
    pub async fn delete_stale(&self, max_age: Duration) -> Result<usize, BlobError> {
        let cutoff = chrono::Duration::from_std(max_age)
            .ok()
            .and_then(|age| chrono::Utc::now().checked_sub_signed(age));
        // An age beyond the calendar: nothing can be that old.
        let Some(cutoff) = cutoff else { return Ok(0) };
        let mut newest: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
        let mut all = self.store.list(Some(&Path::from(PREFIX)));
        while let Some(meta) = all.try_next().await? {
            let mut parts = meta.location.parts();
            let (Some(_), Some(upload)) = (parts.next(), parts.next()) else {
                continue;
            };
            let seen = newest
                .entry(upload.as_ref().to_owned())
                .or_insert(meta.last_modified);
            *seen = (*seen).max(meta.last_modified);
        }
        let mut removed = 0;
        for (upload, at) in newest {
            if at < cutoff {
                self.delete(&upload).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_byte_range() {
        let p = Piece {
            start: 350_001,
            len: 120_000,
        };
        let path = piece_path("0193ab", p);
        assert_eq!(
            path.as_ref(),
            "uploads/0193ab/00000000000000350001-00000000000000120000"
        );
        assert_eq!(path.filename().and_then(parse_piece), Some(p));
        assert_eq!(parse_piece("junk"), None);
        assert_eq!(parse_piece("1-x"), None);
    }
}
