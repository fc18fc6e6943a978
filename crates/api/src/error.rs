//! The API's one error type and its single mapping to problem+json.
//!
//! Causes of server-side failures go to the log, never to the client: the body of a 500
//! or 503 is generic, so a database message cannot leak table names or data.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use baithak_api_types::{FieldError, Problem};
use baithak_domain::ValidationError;
use baithak_store::StoreError;

/// Seconds a client is asked to wait when the server's disk is full: long enough for
/// an operator to act, short next to the hours a phone may wait for a signal anyway.
pub const OUT_OF_SPACE_RETRY_SECS: u64 = 300;

/// ENOSPC or EDQUOT.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("conflict: {detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("payload too large: {0}")]
    TooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("unprocessable: {detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// The server is saturated or a dependency is down; the client should retry.
    #[error("unavailable: {cause}")]
    Unavailable {
        retry_after_secs: u64,
        cause: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn field(field: &str, message: &str) -> Self {
        ApiError::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        }])
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    /// A failed file operation: a full disk (or an exhausted quota) is the operator's
    /// to fix while the phone keeps its photo, so it is a retryable 503 rather than a
    /// 500 the app would show as a server fault; anything else is a 500.
    pub fn io(e: std::io::Error) -> Self {
        if is_out_of_space(&e) {
            ApiError::out_of_space(e)
        } else {
            ApiError::Internal(e.to_string())
        }
    }

    /// The 503 for a full disk, whichever layer found it.
    pub fn out_of_space(cause: impl std::fmt::Display) -> Self {
        ApiError::Unavailable {
            retry_after_secs: OUT_OF_SPACE_RETRY_SECS,
            cause: format!("out of disk space: {cause}"),
        }
    }

    pub fn problem(&self) -> Problem {
        match self {
            ApiError::BadRequest { code, detail } => {
                Problem::new(400, code, "Bad request").with_detail(detail.clone())
            }
            ApiError::Validation(errors) => {
                Problem::new(400, "validation_failed", "The request has invalid fields")
                    .with_errors(errors.clone())
            }
            ApiError::Unauthorized(code) => Problem::new(401, code, "Authentication required")
                .with_detail(match *code {
                    "invalid_credentials" => "wrong login or password",
                    "refresh_token_reused" => {
                        "this refresh token was already used; the device session is revoked"
                    }
                    "invalid_refresh_token" => "the refresh token is unknown or expired",
                    "session_revoked" => "the device session has ended; log in again",
                    "token_expired" => "the access token has expired; refresh it",
                    _ => "a valid bearer access token is required",
                }),
            ApiError::Forbidden => Problem::new(403, "forbidden", "Not allowed")
                .with_detail("your role does not allow this"),
            ApiError::NotFound => Problem::new(404, "not_found", "Not found"),
            ApiError::Conflict { code, detail } => {
                Problem::new(409, code, "Conflict").with_detail(detail.clone())
            }
            ApiError::TooLarge(detail) => {
                Problem::new(413, "payload_too_large", "Payload too large")
                    .with_detail(detail.clone())
            }
            ApiError::UnsupportedMediaType(detail) => {
                Problem::new(415, "unsupported_media_type", "Unsupported media type")
                    .with_detail(detail.clone())
            }
            ApiError::Unprocessable { code, detail } => {
                Problem::new(422, code, "Unprocessable content").with_detail(detail.clone())
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                Problem::new(429, "too_many_requests", "Too many requests")
                    .with_detail(format!("retry in {retry_after_secs} s"))
            }
            ApiError::Unavailable { .. } => Problem::new(503, "unavailable", "Service unavailable")
                .with_detail("the server is busy; retry later"),
            ApiError::Internal(_) => Problem::new(500, "internal", "Internal server error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::Unavailable { cause, .. } => {
                tracing::warn!(%cause, "request refused: unavailable")
            }
            _ => {}
        }
        let problem = self.problem();
        let mut res = problem_response(&problem);
        let retry = match self {
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        if let Some(secs) = retry {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

pub fn problem_response(problem: &Problem) -> HttpResponse {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type(Problem::CONTENT_TYPE)
        .json(problem)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(what) => ApiError::Conflict {
                code: "conflict",
                detail: what,
            },
            StoreError::Invalid(msg) => ApiError::Unprocessable {
                code: "invalid",
                detail: msg,
            },
            StoreError::Unavailable(cause) => ApiError::Unavailable {
                retry_after_secs: 2,
                cause,
            },
            e if e.is_database_locked() => ApiError::Unavailable {
                retry_after_secs: 1,
                cause: e.to_string(),
            },
            e if e.is_out_of_space() => ApiError::out_of_space(e),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Validation(vec![e.into()])
    }
}

impl From<Vec<ValidationError>> for ApiError {
    fn from(e: Vec<ValidationError>) -> Self {
        ApiError::Validation(e.into_iter().map(Into::into).collect())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
