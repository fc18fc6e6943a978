//! Receiving and storing photos: the one path that both `PUT /v1/media/{sha256}` and a
//! finished resumable upload take, and the one visibility rule every photo read uses.
//!
//! A body is streamed to a temp file under `work_dir/incoming` and hashed on the way,
//! so a request never holds a whole photo in memory while it arrives; the bytes are
//! read back only once the ingest pool admits the job (the pool bounds how many
//! photos are in memory at once). The original, thumbnail and display rendition go to
//! the blob store, which returns only once they are durable; only then is the row
//! recorded, so a photo the API acknowledges is never missing its bytes.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, is_out_of_space};
use crate::state::AppState;
use actix_web::error::PayloadError;
use actix_web::web;
use baithak_api_types::{GpsData, MediaInfo};
use baithak_domain::{Role, UserId};
use baithak_media::{
    BlobError, IngestError, Ingested, PoolError, Sha256, Sha256Hasher, TakenAt, Variant,
};
use baithak_store::{MediaRecord, NewMedia};
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// How `taken_at_local` is kept in the store.
const LOCAL_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Parses a SHA-256 from a path segment: 64 lowercase hex digits, else 400.
pub fn parse_sha(raw: &str) -> ApiResult<Sha256> {
    Sha256::parse(raw).map_err(|_| {
        ApiError::bad_request(
            "invalid_sha256",
            "the SHA-256 must be 64 lowercase hex digits",
        )
    })
}

/// The wire form of a stored photo.
pub fn media_info(r: &MediaRecord) -> MediaInfo {
    MediaInfo {
        sha256: r.sha256.clone(),
        media_type: r.media_type.clone(),
        bytes: r.bytes,
        width: r.width,
        height: r.height,
        taken_at: r
            .taken_at
            .map(|t| DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)),
        taken_at_local: r
            .taken_at_local
            .as_deref()
            .and_then(|s| NaiveDateTime::parse_from_str(s, LOCAL_TIME_FORMAT).ok()),
        gps: match (r.gps_lat, r.gps_lon) {
            (Some(lat), Some(lon)) => Some(GpsData { lat, lon }),
            _ => None,
        },
        phash: format!("{:016x}", r.phash),
    }
}

/// The stored photo, if any, and whether `user` may see it: its uploader always; an
/// in-charge also the photos of its own meetings; a coordinator or HQ also those of
/// meetings in its area subtree; an admin only its own uploads.
pub async fn lookup_media(
    state: &AppState,
    user: &AuthUser,
    sha: &Sha256,
) -> ApiResult<Option<(MediaRecord, bool)>> {
    let hex = sha.to_hex();
    let uid = user.id;
    let role = user.role;
    let scope = user.scope.clone();
    let found = state
        .store
        .run(move |s| {
            let Some(record) = s.media(&hex)? else {
                return Ok(None);
            };
            let visible = record.uploaded_by == uid
                || match role {
                    Role::Admin => false,
                    Role::Incharge => s.media_visible(&hex, uid, None)?,
                    Role::Coordinator | Role::Hq => s.media_visible(&hex, uid, Some(&scope))?,
                };
            Ok(Some((record, visible)))
        })
        .await?;
    Ok(found)
}

/// The stored photo if `user` may see it (see [`lookup_media`]); `None` for unknown
/// and invisible alike, so that hashes cannot be probed.
pub async fn visible_media(
    state: &AppState,
    user: &AuthUser,
    sha: &Sha256,
) -> ApiResult<Option<MediaRecord>> {
    Ok(lookup_media(state, user, sha)
        .await?
        .and_then(|(record, visible)| visible.then_some(record)))
}

/// A file under the work dir that is removed when dropped, whatever happened.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// A fresh, not yet created, uniquely named path in `dir`.
    pub fn new_in(dir: &Path) -> TempFile {
        TempFile {
            path: dir.join(format!("{}.part", uuid::Uuid::now_v7().simple())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // One unlink; cheap enough not to need a blocking thread.
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temp file")
            }
        }
    }
}

/// A request body saved to disk.
#[derive(Debug)]
pub struct Received {
    pub file: TempFile,
    pub sha256: Sha256,
    pub len: u64,
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!("photos may be at most {limit} bytes"))
}

fn payload_error(e: PayloadError) -> ApiError {
    match e {
        PayloadError::Overflow => ApiError::TooLarge("the body is too large".into()),
        other => ApiError::bad_request("incomplete_body", other.to_string()),
    }
}

/// Refuses at once a declared `Content-Length` over `limit`, before any byte is read.
pub fn check_declared_length(declared: Option<u64>, limit: u64) -> ApiResult<()> {
    match declared {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// Bytes gathered in memory before each write of a body to disk.
const WRITE_BUF: usize = 1024 * 1024;

/// Streams `body` into a new temp file under `work_dir/incoming`, hashing it on the
/// way; stops with 413 as soon as more than `limit` bytes have arrived. The file is
/// removed again on any error and when the returned value is dropped.
pub async fn receive(state: &AppState, mut body: web::Payload, limit: u64) -> ApiResult<Received> {
    let temp = TempFile::new_in(&state.work_dir.join("incoming"));
    let file = tokio::fs::File::create(temp.path())
        .await
        .map_err(ApiError::io)?;
    // Body chunks are small (tens of KiB); gather them so each trip to a blocking
    // thread writes a useful amount.
    let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUF, file);
    let mut hasher = Sha256Hasher::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(payload_error)?;
        if hasher.len() + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::io)?;
    }
    // tokio's File writes in the background; flushing writes out the buffer, waits
    // for the last write and reports its error. No fsync: this copy is scratch; the
    // blob store's copy is the one made durable.
    file.flush().await.map_err(ApiError::io)?;
    let len = hasher.len();
    Ok(Received {
        file: temp,
        sha256: hasher.finish(),
        len,
    })
}

/// SHA-256 and length of a file on disk, read in chunks off the async threads.
pub async fn hash_file(path: &Path) -> ApiResult<(Sha256, u64)> {
    let path = path.to_path_buf();
    let task = tokio::task::spawn_blocking(move || -> std::io::Result<(Sha256, u64)> {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let len = hasher.len();
        Ok((hasher.finish(), len))
    });
    task.await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub fn hash_mismatch(expected: &Sha256, actual: &Sha256) -> ApiError {
    ApiError::bad_request(
        "hash_mismatch",
        format!("the body's SHA-256 is {actual}, not {expected}"),
    )
}

/// Seconds a client is asked to wait when the ingest pool is full.
const BUSY_RETRY_SECS: u64 = 2;

fn busy() -> ApiError {
    ApiError::Unavailable {
        retry_after_secs: BUSY_RETRY_SECS,
        cause: "ingest pool saturated".into(),
    }
}

/// 503 straight away when as many requests wait for the ingest pool as may, so a
/// client is not made to send a whole photo only to hear the same thing afterwards.
/// Advisory: the pool itself has the last word when the photo is admitted.
pub fn check_capacity(state: &AppState) -> ApiResult<()> {
    if state.ingest.saturated() {
        Err(busy())
    } else {
        Ok(())
    }
}

fn ingest_error(e: PoolError) -> ApiError {
    match e {
        PoolError::Busy => busy(),
        PoolError::Ingest(IngestError::UnsupportedType) => {
            ApiError::UnsupportedMediaType("the body is not a JPEG, PNG or WebP image".into())
        }
        PoolError::Ingest(IngestError::InvalidImage(detail)) => ApiError::Unprocessable {
            code: "invalid_image",
            detail,
        },
        PoolError::Ingest(IngestError::TooLarge { limit, .. }) => too_large(limit),
        PoolError::Ingest(IngestError::HashMismatch { expected, actual }) => {
            hash_mismatch(&expected, &actual)
        }
        // A panic past the decoder (which ingest already guards): caused by this input,
        // so refused like an undecodable image; the cause is logged for a fix.
        PoolError::Worker(cause) => {
            tracing::error!(%cause, "ingest worker failed");
            ApiError::Unprocessable {
                code: "invalid_image",
                detail: "the image could not be processed".into(),
            }
        }
    }
}

pub(crate) fn blob_error(e: BlobError) -> ApiError {
    match e {
        // The object store (S3, the disk behind the local one) failed: retryable.
        BlobError::Store(cause) => ApiError::Unavailable {
            retry_after_secs: 5,
            cause: format!("blob store: {cause}"),
        },
        BlobError::Io { ref source, .. } if is_out_of_space(source) => ApiError::out_of_space(e),
        other => ApiError::internal(other),
    }
}

/// A photo as stored, and whether this call stored it.
#[derive(Debug)]
pub struct Stored {
    pub record: MediaRecord,
    pub created: bool,
}

fn new_media(ing: &Ingested, uploader: UserId) -> NewMedia {
    let (taken_at, taken_at_local) = match ing.exif.taken_at {
        Some(TakenAt::Zoned(t)) => (Some(t.naive_utc()), None),
        Some(TakenAt::Local(t)) => (None, Some(t.format(LOCAL_TIME_FORMAT).to_string())),
        None => (None, None),
    };
    NewMedia {
        sha256: ing.sha256.to_hex(),
        media_type: ing.media_type.mime().to_owned(),
        bytes: ing.bytes,
        width: ing.width,
        height: ing.height,
        taken_at,
        taken_at_local,
        gps_lat: ing.exif.gps.map(|g| g.lat),
        gps_lon: ing.exif.gps.map(|g| g.lon),
        orientation: ing.exif.orientation.unwrap_or(1),
        phash: ing.phash,
        uploaded_by: uploader,
    }
}

/// The uploaded file an ingest reads, and whether the blob store may take it.
#[derive(Debug, Clone, Copy)]
pub enum Upload<'a> {
    /// This request's scratch copy: once ingested it is moved into the blob store
    /// (on local disk), not copied.
    Scratch(&'a Path),
    /// A file that must outlive a failed store, so the client can retry (a
    /// resumable upload's part file, never written again once complete): linked
    /// into the blob store on local disk, copied elsewhere.
    Kept(&'a Path),
}

impl Upload<'_> {
    pub fn path(&self) -> &Path {
        match self {
            Upload::Scratch(p) | Upload::Kept(p) => p,
        }
    }
}

/// Ingests the uploaded file, whose bytes must hash to `sha` (a mismatch is a 400
/// `hash_mismatch`; the ingest's own hash is the check, so a caller need not hash the
/// file first), stores the original and both renditions durably, then records the
/// photo, and with it forgets `finished_upload` (the resumable upload that brought
/// it, whose bytes the caller then removes). Concurrent calls for one hash write
/// identical blobs and exactly one of them gets `created`.
pub async fn ingest_and_store(
    state: &AppState,
    uploader: UserId,
    sha: &Sha256,
    upload: Upload<'_>,
    finished_upload: Option<uuid::Uuid>,
) -> ApiResult<Stored> {
    let path = upload.path();
    // Room in the pool first: a photo waiting for a decoder holds its bytes in memory,
    // and the pool bounds those bytes.
    let len = tokio::fs::metadata(path)
        .await
        .map_err(ApiError::internal)?
        .len();
    let admission = state.ingest.admit(len).await.map_err(ingest_error)?;
    let bytes = tokio::fs::read(path).await.map_err(ApiError::internal)?;
    let ingested = admission
        .run_claimed(bytes, &state.config.ingest_limits, Some(*sha))
        .await
        .map_err(ingest_error)?;
    let new = new_media(&ingested, uploader);
    let Ingested { thumb, display, .. } = ingested;
    let blobs = &state.blobs;
    // The ingest hashed these very bytes, so a moved original needs no second pass.
    let original = async {
        match upload {
            Upload::Scratch(p) => blobs.put_moving_file(Variant::Original, sha, p).await,
            Upload::Kept(p) => blobs.put_linked_file(Variant::Original, sha, p).await,
        }
    };
    tokio::try_join!(
        original,
        blobs.put(Variant::Thumb, sha, thumb),
        blobs.put(Variant::Display, sha, display),
    )
    .map_err(blob_error)?;
    let (record, created) = state
        .store
        .run(move |s| match finished_upload {
            Some(id) => s.record_uploaded_media(&new, id),
            None => s.record_media(&new),
        })
        .await?;
    tracing::info!(sha256 = %sha, created, bytes = record.bytes, "photo stored");
    Ok(Stored { record, created })
}

/// The caller sent the bytes of a photo already stored (they hashed right): from now
/// on the photo is visible to it too.
pub async fn proven_holder(
    state: &AppState,
    user: &AuthUser,
    record: MediaRecord,
) -> ApiResult<Stored> {
    let (hex, uid) = (record.sha256.clone(), user.id);
    state
        .store
        .run(move |s| s.add_media_uploader(&hex, uid))
        .await?;
    Ok(Stored {
        record,
        created: false,
    })
}

/// `PUT /v1/media/{sha256}`: the whole story of a one-shot upload.
///
/// A photo the caller can already see is answered from the database without reading
/// the body. One stored but not visible to the caller (someone else's) is answered
/// only after the body proves the caller holds the same bytes, so metadata cannot be
/// fished for by hash; it is not decoded again.
pub async fn put_photo(
    state: &AppState,
    user: &AuthUser,
    sha: Sha256,
    declared_len: Option<u64>,
    body: web::Payload,
) -> ApiResult<Stored> {
    let existing = match lookup_media(state, user, &sha).await? {
        Some((record, true)) => {
            return Ok(Stored {
                record,
                created: false,
            });
        }
        Some((record, false)) => Some(record),
        None => None,
    };
    let limit = state.config.ingest_limits.max_bytes;
    check_declared_length(declared_len, limit)?;
    if existing.is_none() {
        check_capacity(state)?;
    }
    let received = receive(state, body, limit).await?;
    if received.sha256 != sha {
        return Err(hash_mismatch(&sha, &received.sha256));
    }
    if let Some(record) = existing {
        return proven_holder(state, user, record).await;
    }
    ingest_and_store(
        state,
        user.id,
        &sha,
        Upload::Scratch(received.file.path()),
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;
    use baithak_domain::UserId;

    #[test]
    fn sha_path_segments_are_canonical() {
        let ok = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(parse_sha(ok).is_ok());
        for bad in [&ok.to_uppercase(), &ok[1..], "", "xyz"] {
            let e = parse_sha(bad).unwrap_err();
            assert_eq!(e.problem().code, "invalid_sha256");
            assert_eq!(e.problem().status, 400);
        }
    }

    #[test]
    fn a_full_disk_is_a_retryable_503_and_other_file_failures_a_500() {
        use std::io::{Error, ErrorKind};
        let status = |e: ApiError| {
            let res = e.error_response();
            let retry = res
                .headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            (res.status().as_u16(), retry)
        };
        let wait = Some(crate::error::OUT_OF_SPACE_RETRY_SECS.to_string());
        for kind in [ErrorKind::StorageFull, ErrorKind::QuotaExceeded] {
            assert_eq!(status(ApiError::io(Error::from(kind))), (503, wait.clone()));
            let blob = BlobError::Io {
                path: "photos/original/ab/cd".into(),
                source: Error::from(kind),
            };
            assert_eq!(status(blob_error(blob)), (503, wait.clone()));
        }
        for kind in [ErrorKind::PermissionDenied, ErrorKind::NotADirectory] {
            assert_eq!(status(ApiError::io(Error::from(kind))), (500, None));
            let blob = BlobError::Io {
                path: "photos/original/ab".into(),
                source: Error::from(kind),
            };
            assert_eq!(status(blob_error(blob)), (500, None));
        }
    }

    #[test]
    fn ingest_failures_map_to_clear_statuses() {
        let busy = ingest_error(PoolError::Busy).error_response();
        assert_eq!(busy.status().as_u16(), 503);
        assert_eq!(
            busy.headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .unwrap(),
            "2"
        );
        let cases = [
            (
                PoolError::Ingest(IngestError::UnsupportedType),
                415,
                "unsupported_media_type",
            ),
            (
                PoolError::Ingest(IngestError::InvalidImage("bomb".into())),
                422,
                "invalid_image",
            ),
            (PoolError::Worker("panicked".into()), 422, "invalid_image"),
            (
                PoolError::Ingest(IngestError::TooLarge { size: 9, limit: 8 }),
                413,
                "payload_too_large",
            ),
        ];
        for (err, status, code) in cases {
            let p = ingest_error(err).problem();
            assert_eq!((p.status, p.code.as_str()), (status, code));
        }
        assert_eq!(
            check_declared_length(Some(9), 8)
                .unwrap_err()
                .problem()
                .status,
            413
        );
        assert!(check_declared_length(Some(8), 8).is_ok());
        assert!(check_declared_length(None, 8).is_ok());
    }

    #[test]
    fn records_map_to_the_wire() {
        let record = MediaRecord {
            sha256: "ab".repeat(32),
            media_type: "image/jpeg".into(),
            bytes: 10,
            width: 4,
            height: 3,
            taken_at: None,
            taken_at_local: Some("2008-10-22T16:28:39".into()),
            gps_lat: Some(43.5),
            gps_lon: Some(11.25),
            orientation: 1,
            phash: 0xff,
            uploaded_by: UserId(uuid::Uuid::nil()),
            created_at: chrono::NaiveDateTime::default(),
        };
        let info = media_info(&record);
        assert_eq!(info.phash, "00000000000000ff");
        assert_eq!(
            info.gps,
            Some(GpsData {
                lat: 43.5,
                lon: 11.25
            })
        );
        assert_eq!(
            info.taken_at_local.map(|t| t.to_string()).as_deref(),
            Some("2008-10-22 16:28:39")
        );
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["taken_at_local"], "2008-10-22T16:28:39");
        assert!(json.get("taken_at").is_none());
    }
}
