//! `/v1/uploads`: resumable photo uploads for phones on bad networks, after tus.
//!
//! `POST` announces a photo by hash and length; `PATCH` appends a chunk at the offset
//! the server holds (`Upload-Offset`), which is written in place and fsynced before
//! the offset advances; `HEAD` tells a client that lost track where to resume. When
//! the last byte arrives the file is hashed and goes through the same ingest and
//! storage as `PUT /v1/media/{sha256}`, and the upload is forgotten.
//!
//! The offset lives in the database. The bytes live where every process that may get
//! the next chunk can reach them: with a local blob store (one machine, one process)
//! in a part file on its disk (`work_dir/uploads/{id}`), written in place; with an
//! object store (replicas behind a load balancer) as pieces in the bucket
//! (`baithak_media::SharedParts`), assembled into a scratch file by whichever
//! replica receives the last byte. A local part file found shorter than the offset
//! (the data dir was lost) drops the upload (404), as does a gap in the pieces at the
//! end, so the client starts again rather than storing a corrupt photo.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::photos::{self, Stored, TempFile};
use crate::routes::Json;
use crate::state::AppState;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use baithak_api_types::{CreateUploadRequest, MediaInfo, Problem, UploadStatus};
use baithak_media::{PartsError, Sha256, SharedParts};
use baithak_store::{NewUpload, StoreError, UploadRecord, now_utc};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};
use utoipa::OpenApi;
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(paths(create, append, head))]
pub struct Doc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/uploads", web::post().to(create)).service(
        web::resource("/uploads/{id}")
            .route(web::patch().to(append))
            .route(web::head().to(head)),
    );
}

const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");

fn part_path(state: &AppState, id: Uuid) -> PathBuf {
    state.work_dir.join("uploads").join(id.simple().to_string())
}

fn utc(t: chrono::NaiveDateTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)
}

fn status_of(u: &UploadRecord) -> UploadStatus {
    UploadStatus {
        id: Some(u.id),
        sha256: u.sha256.clone(),
        length: u.length,
        offset: u.received,
        complete: false,
        expires_at: Some(utc(u.expires_at)),
        media: None,
    }
}

fn complete_status(sha: &str, length: u64, media: MediaInfo) -> UploadStatus {
    UploadStatus {
        id: None,
        sha256: sha.to_owned(),
        length,
        offset: length,
        complete: true,
        expires_at: None,
        media: Some(media),
    }
}

fn with_offset(mut res: HttpResponse, offset: u64, length: Option<u64>) -> HttpResponse {
    let headers = res.headers_mut();
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    if let Some(len) = length {
        headers.insert(UPLOAD_LENGTH, HeaderValue::from(len));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

// ---------------------------------------------------------------------------------
// Starting an upload.

/// What announcing a photo led to.
pub enum Started {
    /// The caller can already see this photo; nothing needs sending.
    AlreadyStored(MediaInfo),
    Created(UploadRecord),
}

/// Validates an announced upload and creates it, unless the caller can already see the
/// photo. A photo stored by someone else still needs its bytes sent once, which proves
/// the caller holds them before its metadata is shown.
pub async fn start_upload(
    state: &AppState,
    user: &AuthUser,
    sha: Sha256,
    length: u64,
) -> ApiResult<Started> {
    if let Some(record) = photos::visible_media(state, user, &sha).await? {
        return Ok(Started::AlreadyStored(photos::media_info(&record)));
    }
    if length == 0 {
        return Err(ApiError::field("length", "must be at least 1 byte"));
    }
    let limit = state.config.ingest_limits.max_bytes;
    if length > limit {
        return Err(ApiError::TooLarge(format!(
            "photos may be at most {limit} bytes"
        )));
    }
    let new = NewUpload {
        user_id: user.id,
        sha256: sha.to_hex(),
        length,
        expires_at: now_utc() + state.config.upload_ttl,
    };
    let record = state.store.run(move |s| s.create_upload(&new)).await?;
    tracing::info!(upload_id = %record.id, sha256 = %sha, length, "upload started");
    Ok(Started::Created(record))
}

/// Start a resumable upload of the photo with this SHA-256 and length. 201 with the
/// upload's id (also in `Location`); 200 with `complete: true` and the photo when the
/// caller can already see it. Unfinished uploads expire (`expires_at`).
#[utoipa::path(post, operation_id = "create_upload", path = "/v1/uploads", tag = "media",
    request_body = CreateUploadRequest, security(("bearer" = [])),
    responses(
        (status = 201, body = UploadStatus, description = "send the bytes with PATCH",
            headers(("Location" = String), ("Upload-Offset" = u64))),
        (status = 200, body = UploadStatus, description = "already stored: `complete`, `id` null"),
        (status = 400, body = Problem, description = "invalid_sha256, or a zero length"),
        (status = 401, body = Problem),
        (status = 413, body = Problem, description = "length over the photo byte limit")))]
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<CreateUploadRequest>,
) -> ApiResult<HttpResponse> {
    let sha = photos::parse_sha(&body.sha256)?;
    match start_upload(&state, &user, sha, body.length).await? {
        Started::AlreadyStored(media) => {
            let length = media.bytes;
            Ok(HttpResponse::Ok().json(complete_status(&sha.to_hex(), length, media)))
        }
        Started::Created(record) => {
            let res = HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/v1/uploads/{}", record.id)))
                .json(status_of(&record));
            Ok(with_offset(res, record.received, Some(record.length)))
        }
    }
}

// ---------------------------------------------------------------------------------
// Appending.

/// Upload ids with a chunk being written by this process. A second chunk for the same
/// upload while one is in flight (a client retrying too eagerly) is told the offset
/// instead of writing over the same bytes. Only an optimisation: the store's
/// compare-and-set and the final hash check are what keep a photo intact.
static IN_FLIGHT: LazyLock<Mutex<HashSet<Uuid>>> = LazyLock::new(Default::default);

struct Claim(Uuid);

impl Claim {
    fn take(id: Uuid) -> Option<Claim> {
        let inserted = IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        // Built only on success and after the guard is gone: a `Claim` dropped while
        // the set is locked would deadlock on it, and would free the holder's id.
        if inserted { Some(Claim(id)) } else { None }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// What a chunk led to.
pub enum Appended {
    /// Stored; more bytes are expected.
    Progress(UploadRecord),
    /// The chunk did not start at the upload's offset, which is this.
    OffsetMismatch(u64),
    /// Another chunk for this upload is being written right now; the offset is this.
    InFlight(u64),
    /// The last byte arrived and the photo is stored.
    Complete { length: u64, stored: Stored },
}

fn beyond_length(room: u64) -> ApiError {
    ApiError::bad_request(
        "beyond_upload_length",
        format!("only {room} more bytes fit the upload's declared length"),
    )
}

/// Bytes gathered before each positional write.
const WRITE_BUF: usize = 1024 * 1024;

fn open_part(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::io)
}

/// Reads the body in pieces of about [`WRITE_BUF`] bytes, at most `room` in all, and
/// hands each to `sink` with its offset from the body's start. Returns the bytes
/// handed over and, when the body broke off (a dropped connection), why; the bytes
/// before the break are handed over too, so the client can resume after them.
async fn gather<F, Fut>(
    mut body: web::Payload,
    room: u64,
    mut sink: F,
) -> ApiResult<(u64, Option<ApiError>)>
where
    F: FnMut(Bytes, u64) -> Fut,
    Fut: Future<Output = ApiResult<()>>,
{
    let mut written = 0u64;
    let mut buf = BytesMut::with_capacity(WRITE_BUF);
    let mut broken = None;
    loop {
        let chunk = match body.next().await {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                broken = Some(ApiError::bad_request("incomplete_body", e.to_string()));
                break;
            }
        };
        if written + (buf.len() + chunk.len()) as u64 > room {
            return Err(beyond_length(room));
        }
        buf.extend_from_slice(&chunk);
        if buf.len() >= WRITE_BUF {
            let piece = buf.split().freeze();
            let n = piece.len() as u64;
            sink(piece, written).await?;
            written += n;
            buf.reserve(WRITE_BUF);
        }
    }
    if !buf.is_empty() {
        let piece = buf.freeze();
        let n = piece.len() as u64;
        sink(piece, written).await?;
        written += n;
    }
    Ok((written, broken))
}

/// Writes the body at `start` of the part file, at most `room` bytes, and hands back
/// the file unsynced: the caller decides when the bytes must be durable
/// ([`sync_part_file`]).
async fn write_part_file(
    path: &Path,
    start: u64,
    room: u64,
    body: web::Payload,
) -> ApiResult<(u64, Option<ApiError>, Arc<std::fs::File>)> {
    let file = {
        let (path, create) = (path.to_path_buf(), start == 0);
        Arc::new(blocking(move || open_part(&path, create)).await?)
    };
    let (written, broken) = gather(body, room, |piece, at| {
        let file = Arc::clone(&file);
        blocking(move || {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&piece, start + at)
        })
    })
    .await?;
    Ok((written, broken, file))
}

/// Makes the bytes written to a part file durable, and the file's directory entry too
/// when `start` is 0 (that chunk created it).
async fn sync_part_file(file: Arc<std::fs::File>, path: &Path, start: u64) -> ApiResult<()> {
    let dir = path.parent().map(Path::to_path_buf);
    blocking(move || {
        file.sync_data()?;
        if let (0, Some(dir)) = (start, dir) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
    .await
}

/// Stores the body as pieces in the shared store, at most `room` bytes; each piece is
/// durable once its put returns.
async fn write_pieces(
    parts: &SharedParts,
    id: Uuid,
    start: u64,
    room: u64,
    body: web::Payload,
) -> ApiResult<(u64, Option<ApiError>)> {
    let key = id.simple().to_string();
    gather(body, room, |piece, at| {
        let (parts, key) = (parts.clone(), key.clone());
        async move {
            parts
                .put(&key, start + at, piece)
                .await
                .map_err(photos::blob_error)
        }
    })
    .await
}

/// Forgets an upload: the row first, then its bytes (a crash in between leaves only
/// stray bytes, which the sweep removes).
async fn discard(state: &AppState, id: Uuid) -> ApiResult<()> {
    state.store.run(move |s| s.delete_upload(id)).await?;
    discard_bytes(state, id).await
}

/// Removes an upload's bytes, once its row is gone.
async fn discard_bytes(state: &AppState, id: Uuid) -> ApiResult<()> {
    if let Some(parts) = &state.parts {
        return parts
            .delete(&id.simple().to_string())
            .await
            .map_err(photos::blob_error);
    }
    let path = part_path(state, id);
    blocking(move || match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
    .await
}

/// The upload's offset now, for a 409.
async fn current_offset(state: &AppState, id: Uuid, user: &AuthUser) -> ApiResult<u64> {
    let uid = user.id;
    Ok(state.store.run(move |s| s.upload(id, uid)).await?.received)
}

/// Appends one chunk that must start at `offset`; on the last byte, verifies and
/// stores the photo. A chunk whose connection broke keeps the bytes that arrived.
pub async fn append_chunk(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    offset: u64,
    declared_len: Option<u64>,
    body: web::Payload,
) -> ApiResult<Appended> {
    let uid = user.id;
    let upload = state.store.run(move |s| s.upload(id, uid)).await?;
    if offset != upload.received {
        return Ok(Appended::OffsetMismatch(upload.received));
    }
    let room = upload.length - upload.received;
    if declared_len.is_some_and(|n| n > room) {
        return Err(beyond_length(room));
    }
    let Some(_claim) = Claim::take(id) else {
        return Ok(Appended::InFlight(upload.received));
    };
    let path = part_path(state, id);
    if offset > 0 && state.parts.is_none() {
        let p = path.clone();
        let on_disk = blocking(move || match std::fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        })
        .await?;
        if on_disk < offset {
            // The data dir lost the earlier bytes (restored, or replaced).
            tracing::warn!(
                upload_id = %id, offset, on_disk,
                "upload part file shorter than its offset; dropping the upload"
            );
            discard(state, id).await?;
            return Err(ApiError::NotFound);
        }
    }
    let (written, broken, part_file) = match &state.parts {
        None => {
            let (written, broken, file) = write_part_file(&path, offset, room, body).await?;
            (written, broken, Some(file))
        }
        Some(parts) => {
            let (written, broken) = write_pieces(parts, id, offset, room, body).await?;
            (written, broken, None)
        }
    };
    let next = offset + written;
    if let Some(file) = part_file {
        if broken.is_none() && next == upload.length {
            return finish_with_last_chunk(state, user, upload, offset, &path, file).await;
        }
        sync_part_file(file, &path, offset).await?;
    }
    let advanced = state
        .store
        .run(move |s| s.advance_upload(id, uid, offset, next, now_utc()))
        .await;
    let upload = match advanced {
        Ok(u) => u,
        Err(StoreError::Conflict(_)) => {
            return Ok(Appended::OffsetMismatch(
                current_offset(state, id, user).await?,
            ));
        }
        Err(StoreError::NotFound) if state.parts.is_some() => {
            // Another replica finished or dropped the upload while this chunk (a retry
            // or a duplicate) was being stored: nobody would remove what it wrote.
            discard(state, id).await?;
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(e) = broken {
        return Err(e);
    }
    if !upload.is_complete() {
        return Ok(Appended::Progress(upload));
    }
    let length = upload.length;
    let stored = finish(state, user, upload).await?;
    Ok(Appended::Complete { length, stored })
}

/// Finishes a local upload whose last chunk (from `offset`) was written but neither
/// fsynced nor recorded: the photo's record removes the upload in one commit, and the
/// stored original is the part file itself, fsynced as a blob, so the chunk needs no
/// commit (and no fsync) of its own. A crash before the record leaves the upload at
/// `offset`; the client resends the chunk over the same bytes. When storing fails and
/// the upload is kept for a retry, the chunk is made durable and recorded first, so
/// the retry can be the empty `PATCH` at the final offset.
async fn finish_with_last_chunk(
    state: &AppState,
    user: &AuthUser,
    upload: UploadRecord,
    offset: u64,
    path: &Path,
    file: Arc<std::fs::File>,
) -> ApiResult<Appended> {
    let (id, uid, length) = (upload.id, user.id, upload.length);
    let whole = UploadRecord {
        received: length,
        ..upload
    };
    match finish(state, user, whole).await {
        Ok(stored) => Ok(Appended::Complete { length, stored }),
        Err(e @ (ApiError::Unavailable { .. } | ApiError::Internal(_))) => {
            sync_part_file(file, path, offset).await?;
            state
                .store
                .run(move |s| s.advance_upload(id, uid, offset, length, now_utc()))
                .await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// An upload's whole bytes on this machine's disk, ready for ingest.
enum Whole {
    /// The local part file: kept if storing fails, so the client can retry.
    PartFile(PathBuf),
    /// Assembled from the shared pieces for this request; the pieces stay for a retry.
    Assembled(TempFile),
}

impl Whole {
    fn upload(&self) -> photos::Upload<'_> {
        match self {
            Whole::PartFile(path) => photos::Upload::Kept(path),
            Whole::Assembled(temp) => photos::Upload::Scratch(temp.path()),
        }
    }
}

/// Every byte is in: ingest and store like a one-shot `PUT`. The ingest's hash is what
/// checks the bytes against the upload's claim, so a local part file is read and hashed
/// once (a photo already stored has nothing to ingest and is checked on its own). A
/// wrong hash or a photo ingest refuses ends the upload; a busy pool or a storage
/// failure keeps it, so the client can retry the completion with an empty `PATCH` at
/// the final offset.
async fn finish(state: &AppState, user: &AuthUser, upload: UploadRecord) -> ApiResult<Stored> {
    let expected = photos::parse_sha(&upload.sha256)?;
    // The hash, when the bytes were hashed on their way in (assembled from pieces).
    let (whole, hashed) = match &state.parts {
        None => (Whole::PartFile(part_path(state, upload.id)), None),
        Some(parts) => {
            let temp = TempFile::new_in(&state.work_dir.join("incoming"));
            let key = upload.id.simple().to_string();
            match parts.assemble(&key, upload.length, temp.path()).await {
                Ok(actual) => (Whole::Assembled(temp), Some(actual)),
                Err(PartsError::Gap { at }) => {
                    tracing::warn!(
                        upload_id = %upload.id, at,
                        "a stored piece of the upload is missing; dropping the upload"
                    );
                    discard(state, upload.id).await?;
                    return Err(ApiError::NotFound);
                }
                Err(PartsError::Store(e)) => return Err(photos::blob_error(e)),
            }
        }
    };
    let hex = upload.sha256.clone();
    let existing = state.store.run(move |s| s.media(&hex)).await?;
    // Checked here when the bytes were hashed on their way in, or when a photo already
    // stored leaves nothing to ingest; otherwise the ingest's own hash checks them.
    let actual = match (hashed, &existing) {
        (Some(actual), _) => Some(actual),
        (None, Some(_)) => Some(photos::hash_file(whole.upload().path()).await?.0),
        (None, None) => None,
    };
    if let Some(actual) = actual
        && actual != expected
    {
        discard(state, upload.id).await?;
        return Err(photos::hash_mismatch(&expected, &actual));
    }
    let ingested_here = existing.is_none();
    let result = match existing {
        Some(record) => photos::proven_holder(state, user, record).await,
        None => {
            // Recording the photo forgets the upload in the same commit.
            let id = Some(upload.id);
            photos::ingest_and_store(state, user.id, &expected, whole.upload(), id).await
        }
    };
    match &result {
        Err(ApiError::Unavailable { .. } | ApiError::Internal(_)) => {}
        Ok(_) if ingested_here => discard_bytes(state, upload.id).await?,
        _ => discard(state, upload.id).await?,
    }
    if let Ok(stored) = &result {
        tracing::info!(
            upload_id = %upload.id, sha256 = %expected, created = stored.created,
            "upload complete"
        );
    }
    result
}

fn offset_mismatch(current: u64, detail: String) -> HttpResponse {
    let err = ApiError::Conflict {
        code: "offset_mismatch",
        detail,
    };
    with_offset(err.error_response(), current, None)
}

fn parse_offset(req: &HttpRequest) -> ApiResult<u64> {
    req.headers()
        .get(UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_upload_offset",
                "the Upload-Offset header must hold the byte offset this chunk starts at",
            )
        })
}

/// Append a chunk. `Upload-Offset` must equal the upload's offset (else 409
/// `offset_mismatch`, with the offset to resume from in `Upload-Offset`). The bytes
/// are stored durably before the answer; a body cut off mid-way keeps what arrived. The
/// answer to the last chunk carries the stored photo (`complete`, `media`).
#[utoipa::path(patch, operation_id = "append_upload", path = "/v1/uploads/{id}", tag = "media",
    params(("id" = Uuid, Path, description = "The upload's id"),
           ("Upload-Offset" = u64, Header, description = "Where this chunk starts")),
    request_body(description = "The next bytes of the photo",
        content(("application/offset+octet-stream"), ("application/octet-stream"))),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UploadStatus, headers(("Upload-Offset" = u64))),
        (status = 400, body = Problem,
            description = "invalid_upload_offset, beyond_upload_length, hash_mismatch (the upload is dropped)"),
        (status = 401, body = Problem),
        (status = 404, body = Problem, description = "unknown, expired or someone else's upload; start again"),
        (status = 409, body = Problem, description = "offset_mismatch", headers(("Upload-Offset" = u64))),
        (status = 415, body = Problem, description = "the finished upload is not JPEG, PNG or WebP"),
        (status = 422, body = Problem, description = "invalid_image"),
        (status = 503, body = Problem, description = "busy, the photo store unreachable or its disk full; retry after `Retry-After` seconds from the offset HEAD reports (once every byte arrived, an empty PATCH at the final offset)")))]
#[tracing::instrument(skip_all, fields(upload_id = %path))]
pub async fn append(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let offset = parse_offset(&req)?;
    let declared = super::media::declared_length(&req);
    match append_chunk(&state, &user, id, offset, declared, body).await? {
        Appended::Progress(upload) => Ok(with_offset(
            HttpResponse::Ok().json(status_of(&upload)),
            upload.received,
            None,
        )),
        Appended::OffsetMismatch(current) => Ok(offset_mismatch(
            current,
            format!("the upload continues at byte {current}, not {offset}"),
        )),
        Appended::InFlight(current) => Ok(offset_mismatch(
            current,
            "another chunk of this upload is being written; ask HEAD where to resume".into(),
        )),
        Appended::Complete { length, stored } => {
            let info = photos::media_info(&stored.record);
            let status = UploadStatus {
                id: Some(id),
                ..complete_status(&stored.record.sha256, length, info)
            };
            Ok(with_offset(HttpResponse::Ok().json(status), length, None))
        }
    }
}

/// Where an upload stands: `Upload-Offset` (resume from here) and `Upload-Length`.
#[utoipa::path(head, operation_id = "head_upload", path = "/v1/uploads/{id}", tag = "media",
    params(("id" = Uuid, Path, description = "The upload's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the upload is live",
            headers(("Upload-Offset" = u64), ("Upload-Length" = u64))),
        (status = 401, description = "no or bad token"),
        (status = 404, description = "unknown, expired, finished or someone else's")))]
#[tracing::instrument(skip_all, fields(upload_id = %path))]
pub async fn head(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let uid = user.id;
    let upload = state.store.run(move |s| s.upload(id, uid)).await?;
    Ok(with_offset(
        HttpResponse::Ok().finish(),
        upload.received,
        Some(upload.length),
    ))
}

// ---------------------------------------------------------------------------------
// Expiry.

/// Scratch files older than this in `work_dir/incoming` are left over from a crash.
const INCOMING_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Drops expired uploads (rows and bytes), then removes scratch no live request can
/// own: bodies in `incoming/` older than a day, and part files or shared pieces
/// untouched for the upload lifetime plus a day (expired on any replica). Returns the
/// uploads dropped.
pub async fn sweep_expired_uploads(state: &AppState) -> ApiResult<usize> {
    const BATCH: i64 = 200;
    let mut dropped = 0;
    loop {
        let batch = state
            .store
            .run(|s| s.expired_uploads(now_utc(), BATCH))
            .await?;
        for upload in &batch {
            discard(state, upload.id).await?;
        }
        dropped += batch.len();
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    let part_max_age =
        state.config.upload_ttl.to_std().unwrap_or(Duration::ZERO) + Duration::from_secs(24 * 3600);
    let dirs = [
        (state.work_dir.join("incoming"), INCOMING_MAX_AGE),
        (state.work_dir.join("uploads"), part_max_age),
    ];
    let mut strays = blocking(move || {
        let mut removed = 0usize;
        for (dir, max_age) in &dirs {
            removed += remove_older_than(dir, *max_age)?;
        }
        Ok(removed)
    })
    .await?;
    if let Some(parts) = &state.parts {
        strays += parts
            .delete_stale(part_max_age)
            .await
            .map_err(photos::blob_error)?;
    }
    if dropped > 0 || strays > 0 {
        tracing::info!(dropped, strays, "swept expired uploads");
    }
    Ok(dropped)
}

fn remove_older_than(dir: &Path, max_age: Duration) -> std::io::Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        if meta.is_file() && age > max_age {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ApiConfig;
    use baithak_domain::Role;
    use baithak_domain::import::parse_area_csv;
    use baithak_media::BlobStore;
    use baithak_store::NewUser;
    use baithak_test_support::TestDb;
    use secrecy::SecretSlice;

    fn set_age(path: &Path, age: Duration) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[actix_rt::test]
    async fn sweep_drops_expired_uploads_and_stray_files() {
        let db = TestDb::sqlite();
        let rows = parse_area_csv("code,name,kind,parent_code\nUP,UP,state,\n".as_bytes()).unwrap();
        db.store.import_areas(&rows, None, None, &|_| {}).unwrap();
        let area = db.store.area_by_code("UP").unwrap();
        let user = db
            .store
            .create_user(
                &NewUser {
                    login: "ravi".into(),
                    name: "Ravi".into(),
                    role: Role::Incharge,
                    area_id: area.id,
                    password_hash: "unused".into(),
                },
                None,
            )
            .unwrap();
        let state = AppState::new(
            db.store.clone(),
            BlobStore::local(db.dir().join("photos")).unwrap(),
            db.dir().join("work"),
            &SecretSlice::from(vec![7u8; 32]),
            ApiConfig::default(),
        )
        .unwrap();
        let upload = |expires_at| NewUpload {
            user_id: user.id,
            sha256: "ab".repeat(32),
            length: 10,
            expires_at,
        };
        let expired = db
            .store
            .create_upload(&upload(now_utc() - chrono::Duration::hours(1)))
            .unwrap();
        let live = db
            .store
            .create_upload(&upload(now_utc() + chrono::Duration::hours(1)))
            .unwrap();
        for u in [&expired, &live] {
            std::fs::write(part_path(&state, u.id), b"12345").unwrap();
        }
        let incoming = state.work_dir.join("incoming");
        let (stale, fresh) = (incoming.join("stale.part"), incoming.join("fresh.part"));
        std::fs::write(&stale, b"x").unwrap();
        std::fs::write(&fresh, b"x").unwrap();
        set_age(&stale, INCOMING_MAX_AGE + Duration::from_secs(60));
        let orphan = state.work_dir.join("uploads").join("orphan");
        std::fs::write(&orphan, b"x").unwrap();
        set_age(&orphan, Duration::from_secs(9 * 24 * 3600));

        assert_eq!(sweep_expired_uploads(&state).await.unwrap(), 1);
        assert!(db.store.expired_uploads(now_utc(), 10).unwrap().is_empty());
        assert!(!part_path(&state, expired.id).exists());
        assert!(part_path(&state, live.id).exists());
        assert_eq!(db.store.upload(live.id, user.id).unwrap().received, 0);
        assert!(!stale.exists() && fresh.exists() && !orphan.exists());
        // Nothing left to do: harmless to run again.
        assert_eq!(sweep_expired_uploads(&state).await.unwrap(), 0);
    }

    #[test]
    fn one_chunk_at_a_time_per_upload() {
        let id = Uuid::now_v7();
        let first = Claim::take(id).unwrap();
        assert!(Claim::take(id).is_none());
        assert!(Claim::take(Uuid::now_v7()).is_some());
        drop(first);
        assert!(Claim::take(id).is_some());
    }
}
