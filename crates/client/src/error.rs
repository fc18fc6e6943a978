//! The client's one error type.

use baithak_api_types::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error it means (a problem+json body, or one made up
    /// from the status when the body was not one).
    #[error("HTTP {status} {}: {}", problem.code, problem.detail.as_deref().unwrap_or(&problem.title))]
    Api { status: u16, problem: Box<Problem> },
    /// No usable answer: connection refused or cut, timeout, unreadable body. Already
    /// retried as often as the policy allows.
    #[error("transport error after {attempts} attempt(s): {message}")]
    Transport { attempts: u32, message: String },
    /// The server answered something this client cannot read.
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// There is no session and no stored credential to start one.
    #[error("not logged in")]
    NotLoggedIn,
    /// The session ended (refresh token reused or unknown, session revoked, or a
    /// refresh whose answer was lost) and no credential is stored to log in again.
    #[error("the session has ended ({0}); log in again")]
    LoginRequired(String),
    #[error("outbox: {0}")]
    Outbox(#[from] rusqlite::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// The problem `code` of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { problem, .. } => Some(&problem.code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth trying again later: the network or the server failed, not the request.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, problem } => {
                matches!(*status, 408 | 429 | 500 | 502 | 503 | 504)
                    // The body was cut or damaged on the way: sending again can work.
                    || matches!(problem.code.as_str(), "incomplete_body" | "hash_mismatch")
            }
            _ => false,
        }
    }

    pub(crate) fn join(e: tokio::task::JoinError) -> Self {
        ClientError::Invalid(format!("background task failed: {e}"))
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
