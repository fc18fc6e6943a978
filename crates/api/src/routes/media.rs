//! `/v1/media/{sha256}`: photos by content hash. `PUT` stores one in a single
//! request (see [`crate::photos`]); `HEAD` and `GET` answer only for photos the caller
//! may see, and 404 for everything else so hashes cannot be probed.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::photos;
use crate::state::AppState;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use baithak_api_types::{MediaInfo, Problem};
use baithak_media::Variant;
use futures_util::TryStreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(paths(put, head, get))]
pub struct Doc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/media/{sha256}")
            .route(web::put().to(put))
            .route(web::head().to(head))
            .route(web::get().to(get)),
    );
}

/// Content never changes under its hash, so caches may keep it for good; `private`
/// because it is only for the caller's eyes.
const CACHE_FOREVER: &str = "private, max-age=31536000, immutable";

/// The request's `Content-Length`, when it declares a valid one.
pub(crate) fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Store a photo under its SHA-256. The body is the raw image; its type is read from
/// its bytes, not from `Content-Type`. Idempotent: 201 the first time, 200 after.
#[utoipa::path(put, operation_id = "put_media", path = "/v1/media/{sha256}", tag = "media",
    params(("sha256" = String, Path, description = "SHA-256 of the body, 64 lowercase hex digits")),
    request_body(description = "The photo's bytes, unchanged",
        content(("image/jpeg"), ("image/png"), ("image/webp"))),
    security(("bearer" = [])),
    responses(
        (status = 201, body = MediaInfo, description = "stored now"),
        (status = 200, body = MediaInfo, description = "already stored"),
        (status = 400, body = Problem, description = "invalid_sha256, hash_mismatch"),
        (status = 401, body = Problem),
        (status = 413, body = Problem, description = "over the photo byte limit"),
        (status = 415, body = Problem, description = "not JPEG, PNG or WebP"),
        (status = 422, body = Problem, description = "invalid_image: undecodable, or too many pixels"),
        (status = 503, body = Problem, description = "busy, the photo store unreachable or its disk full; retry after `Retry-After` seconds")))]
#[tracing::instrument(skip_all, fields(sha256 = %path))]
pub async fn put(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let sha = photos::parse_sha(&path)?;
    let stored = photos::put_photo(&state, &user, sha, declared_length(&req), body).await?;
    let info = photos::media_info(&stored.record);
    Ok(if stored.created {
        HttpResponse::Created().json(info)
    } else {
        HttpResponse::Ok().json(info)
    })
}

/// Whether a photo is stored and visible to the caller. No body either way.
#[utoipa::path(head, operation_id = "head_media", path = "/v1/media/{sha256}", tag = "media",
    params(("sha256" = String, Path, description = "SHA-256, 64 lowercase hex digits")),
    security(("bearer" = [])),
    responses((status = 200, description = "stored and visible to the caller"),
              (status = 401, description = "no or bad token"),
              (status = 404, description = "not stored, or not visible to the caller")))]
#[tracing::instrument(skip_all, fields(sha256 = %path))]
pub async fn head(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let sha = photos::parse_sha(&path)?;
    match photos::visible_media(&state, &user, &sha).await? {
        Some(_) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "private, no-cache"))
            .finish()),
        None => Err(ApiError::NotFound),
    }
}

/// Which rendition of a photo to fetch.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaVariant {
    /// Upright JPEG, longest side at most 320 px, no metadata.
    Thumb,
    /// Upright JPEG, longest side at most 1280 px, no metadata.
    #[default]
    Display,
    /// The uploaded bytes, unchanged, EXIF and all.
    Original,
}

impl MediaVariant {
    fn as_str(self) -> &'static str {
        match self {
            MediaVariant::Thumb => "thumb",
            MediaVariant::Display => "display",
            MediaVariant::Original => "original",
        }
    }

    fn blob(self) -> Variant {
        match self {
            MediaVariant::Thumb => Variant::Thumb,
            MediaVariant::Display => Variant::Display,
            MediaVariant::Original => Variant::Original,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MediaQuery {
    /// `thumb`, `display` (the default) or `original`.
    #[param(inline)]
    pub variant: Option<MediaVariant>,
}

fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// A photo's bytes. Renditions are upright metadata-free JPEGs; the original is the
/// uploaded bytes with their own type. Immutable, so cached for a year; `ETag` and
/// `If-None-Match` save re-downloads.
#[utoipa::path(get, operation_id = "get_media", path = "/v1/media/{sha256}", tag = "media",
    params(("sha256" = String, Path, description = "SHA-256, 64 lowercase hex digits"), MediaQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the bytes",
            content(("image/jpeg"), ("image/png"), ("image/webp")),
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "unchanged since the `If-None-Match` tag"),
        (status = 400, body = Problem, description = "invalid_sha256, or an unknown variant"),
        (status = 401, body = Problem),
        (status = 404, body = Problem, description = "not stored, or not visible to the caller")))]
#[tracing::instrument(skip_all, fields(sha256 = %path))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    q: web::Query<MediaQuery>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let sha = photos::parse_sha(&path)?;
    let variant = q.variant.unwrap_or_default();
    let record = photos::visible_media(&state, &user, &sha)
        .await?
        .ok_or(ApiError::NotFound)?;
    let etag = format!("\"{sha}-{}\"", variant.as_str());
    if if_none_match(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, CACHE_FOREVER))
            .finish());
    }
    let blob = state
        .blobs
        .open(variant.blob(), &sha)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("photo {sha} has no {variant:?} blob")))?;
    let content_type = match variant {
        MediaVariant::Original => record.media_type.as_str(),
        MediaVariant::Thumb | MediaVariant::Display => "image/jpeg",
    };
    let content_type = HeaderValue::from_str(content_type).map_err(ApiError::internal)?;
    let stream = blob.stream.map_err(|e| {
        tracing::error!(error = %e, "reading a photo failed mid-response");
        ApiError::internal(e)
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, CACHE_FOREVER))
        .no_chunking(blob.size)
        .streaming(stream))
}
