//! Handlers, one module per resource, and the small helpers they share.

pub mod areas;
pub mod auth;
pub mod compliance;
pub mod health;
pub mod media;
pub mod meetings;
pub mod records;
pub mod sync;
pub mod uploads;
pub mod users;

use crate::error::{ApiError, ApiResult};
use baithak_api_types::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Request bodies are `web::Json`; its errors become problems in [`crate::json_config`].
pub type Json<T> = actix_web::web::Json<T>;

/// A validated page size. One extra row is fetched to learn whether a next page exists.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    limit: u32,
}

impl Page {
    pub fn new(limit: Option<u32>) -> ApiResult<Self> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if limit == 0 || limit > MAX_PAGE_LIMIT {
            return Err(ApiError::field(
                "limit",
                &format!("must be between 1 and {MAX_PAGE_LIMIT}"),
            ));
        }
        Ok(Page { limit })
    }

    pub fn fetch(self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts the extra row off; returns the last kept row when there is a next page.
    pub fn trim<T>(self, rows: &mut Vec<T>) -> Option<&T> {
        let limit = self.limit as usize;
        if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
        } else {
            None
        }
    }
}

/// Cursors are opaque to clients so the server may change what is inside.
pub fn encode_cursor(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw.as_bytes())
}

pub fn decode_cursor(cursor: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::field("cursor", "not a cursor from this list"))
}
