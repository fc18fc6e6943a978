//! [`ApiClient`]: typed calls to the baithak API with retries and token handling.
//!
//! Retries resend the very same bytes (a body is serialised once into [`Bytes`]), which
//! is what makes them harmless: the server answers a replayed push `duplicate`, a
//! replayed photo `200`, a replayed chunk `409` with the real offset.
//!
//! Refresh tokens rotate and a reused one revokes the session, so a refresh is never
//! retried once the server may have seen it: the client marks "refresh in flight" in
//! its [`TokenStore`] before sending, stores the new tokens before using them, and when
//! an answer is lost it logs in again with the stored [`Credentials`] (or, without
//! them, fails with [`ClientError::LoginRequired`]).

use crate::error::{ClientError, Result};
use crate::retry::{RetryPolicy, parse_retry_after};
use baithak_api_types::{
    CreateUploadRequest, LoginRequest, MediaInfo, Mutation, Problem, PullResponse, PushRequest,
    PushResponse, RefreshRequest, TokenResponse, TokenUser, UploadStatus,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a resumable-upload chunk should take at the rate the last one went: short
/// enough to stay far inside the request timeout on a slow link.
pub const CHUNK_SECONDS: f64 = 5.0;

/// The resumable-upload offset header (requests and `HEAD`/`409` answers).
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
/// The body type of a resumable-upload chunk.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `http://host:port`, without a trailing slash.
    pub base_url: String,
    pub retry: RetryPolicy,
    /// Whole-request timeout (a photo upload included).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Photos larger than this go through a resumable upload; smaller ones are one `PUT`.
    pub resumable_threshold: u64,
    /// Bytes of a resumable upload's first chunk, and of the next one after any chunk
    /// fails. While chunks get through, later ones grow towards what the link moves in
    /// [`CHUNK_SECONDS`], up to `max_chunk_size`: on a good network a photo goes in one
    /// or two requests instead of one per `chunk_size` (each a round trip that costs a
    /// phone far more than the bytes). Nothing is lost by a big chunk that breaks: the
    /// server keeps every byte that arrived, and the upload resumes after them.
    pub chunk_size: usize,
    /// Largest resumable-upload chunk (see `chunk_size`).
    pub max_chunk_size: usize,
    /// Shown to the user's devices list; sent at login.
    pub device_name: Option<String>,
    /// Refresh this long before the access token expires rather than wait for a 401.
    pub refresh_margin: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            base_url: "http://127.0.0.1:8080".into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            resumable_threshold: 512 * 1024,
            chunk_size: 256 * 1024,
            max_chunk_size: 8 * 1024 * 1024,
            device_name: None,
            refresh_margin: Duration::from_secs(30),
        }
    }
}

/// The tokens of a logged-in device.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub user: TokenUser,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("access_token", &"[redacted]")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &"[redacted]")
            .field("user", &self.user)
            .finish()
    }
}

impl Session {
    fn from_response(t: TokenResponse) -> Session {
        let now = Utc::now();
        // Clamped to a year: the number only decides when to refresh.
        let ttl =
            chrono::Duration::seconds(i64::try_from(t.expires_in.min(366 * 86_400)).unwrap_or(0));
        Session {
            access_token: t.access_token,
            access_expires_at: now.checked_add_signed(ttl).unwrap_or(now),
            refresh_token: t.refresh_token,
            user: t.user,
        }
    }
}

/// A login kept so the device can start a new session by itself when the old one ends
/// (a lost refresh answer, a revoked session).
#[derive(Clone)]
pub struct Credentials {
    pub login: String,
    pub password: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Where a client keeps its session so that it survives a restart. Calls are short
/// and blocking; the client makes them off the async threads.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored session, and whether a refresh was in flight when it was stored (its
    /// refresh token may then be spent and must not be presented again).
    fn load(&self) -> Result<(Option<Session>, bool)>;
    /// Replaces the session (`None`: logged out) and clears the in-flight mark.
    fn save(&self, session: Option<&Session>) -> Result<()>;
    fn set_refresh_pending(&self, pending: bool) -> Result<()>;
}

/// A [`TokenStore`] that forgets everything with the process.
#[derive(Default)]
pub struct MemoryTokenStore {
    state: Mutex<(Option<Session>, bool)>,
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<(Option<Session>, bool)> {
        Ok(self.state.lock().map(|s| s.clone()).unwrap_or_default())
    }
    fn save(&self, session: Option<&Session>) -> Result<()> {
        if let Ok(mut s) = self.state.lock() {
            *s = (session.cloned(), false);
        }
        Ok(())
    }
    fn set_refresh_pending(&self, pending: bool) -> Result<()> {
        if let Ok(mut s) = self.state.lock() {
            s.1 = pending;
        }
        Ok(())
    }
}

/// What an upload achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedPhoto {
    pub sha256: String,
    /// The server answered "new" (a retry of a lost answer reads as not new).
    pub created: bool,
    /// What the server learnt from the photo, when the answer carried it.
    pub media: Option<MediaInfo>,
    /// Sent through a resumable upload.
    pub resumable: bool,
}

/// The answer to one chunk of a resumable upload.
#[derive(Debug, Clone)]
pub enum ChunkOutcome {
    Accepted(UploadStatus),
    /// The server holds a different offset (a replayed or lost chunk); send from there.
    OffsetMismatch(Option<u64>),
    /// The upload is unknown: finished by an earlier try, expired, or never made.
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryMode {
    /// Retry connection failures, timeouts, cut answers, 408/429/5xx.
    Full,
    /// Retry only what the server surely did not act on: refused connections, 429, 503.
    SafeOnly,
}

struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Bytes>,
    content_type: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
    auth: bool,
    /// Refresh or log in again once on a 401.
    reauth: bool,
    retry: RetryMode,
}

impl Call {
    fn new(method: Method, path: impl Into<String>) -> Call {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            content_type: None,
            headers: Vec::new(),
            auth: true,
            reauth: true,
            retry: RetryMode::Full,
        }
    }

    fn json(mut self, body: Bytes) -> Call {
        self.body = Some(body);
        self.content_type = Some("application/json");
        self
    }

    fn raw(mut self, body: Bytes, content_type: &'static str) -> Call {
        self.body = Some(body);
        self.content_type = Some(content_type);
        self
    }

    fn anonymous(mut self) -> Call {
        self.auth = false;
        self.reauth = false;
        self
    }
}

/// How many times one request refreshes or logs in again after a 401. More than one:
/// a login the network delivered twice starts two sessions, the second replacing the
/// first, so the tokens a new login returns can already be revoked.
const MAX_REAUTHS: u32 = 3;

/// The code [`ApiClient::execute`] gives a 401 that came without a problem body.
const NO_REASON: &str = "unauthorized_without_reason";

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The problem body of an error, or one made up from the status.
    pub fn problem(&self) -> Problem {
        serde_json::from_slice::<Problem>(&self.body).unwrap_or_else(|_| {
            Problem::new(
                self.status.as_u16(),
                &format!("http_{}", self.status.as_u16()),
                self.status.canonical_reason().unwrap_or("HTTP error"),
            )
        })
    }

    pub fn error(&self) -> ClientError {
        ClientError::Api {
            status: self.status.as_u16(),
            problem: Box::new(self.problem()),
        }
    }

    /// `self` when 2xx, else its error.
    pub fn success(self) -> Result<Reply> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ClientError::Protocol(format!(
                "{} body is not the expected JSON: {e}",
                self.status
            ))
        })
    }

    fn upload_offset(&self) -> Option<u64> {
        self.headers
            .get(&UPLOAD_OFFSET)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}

struct Inner {
    http: reqwest::Client,
    opts: ClientOptions,
    device_id: String,
    session: RwLock<Option<Session>>,
    refresh_pending: AtomicBool,
    /// One refresh or login at a time.
    auth_lock: tokio::sync::Mutex<()>,
    tokens: Arc<dyn TokenStore>,
    credentials: Mutex<Option<Credentials>>,
    rng: Mutex<StdRng>,
    /// The next resumable-upload chunk's size; shared by every upload of this client,
    /// as the network they cross is the same.
    chunk: AtomicUsize,
}

/// A cheap-to-clone handle; clones share the session.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.inner.opts.base_url)
            .field("device_id", &self.inner.device_id)
            .finish()
    }
}

/// The media type of a photo by its magic bytes.
pub fn sniff_media_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ClientError::Invalid(format!("cannot serialise the request: {e}")))
}

impl ApiClient {
    /// A client whose session lives only in memory.
    pub fn new(opts: ClientOptions, device_id: impl Into<String>) -> Result<ApiClient> {
        Self::with_token_store(opts, device_id, Arc::new(MemoryTokenStore::default()))
    }

    /// A client that keeps its session in `tokens`, starting from what is stored there.
    /// Reads the store once, blocking: call it where blocking is fine.
    pub fn with_token_store(
        opts: ClientOptions,
        device_id: impl Into<String>,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("baithak-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Invalid(format!("HTTP client: {}", error_chain(&e))))?;
        let (session, pending) = tokens.load()?;
        // A refresh was in flight when the process stopped: its token may be spent, and
        // presenting it again would revoke the session. Start over with a login.
        let session = if pending { None } else { session };
        let mut opts = opts;
        opts.base_url = opts.base_url.trim_end_matches('/').to_owned();
        opts.chunk_size = opts.chunk_size.max(1);
        opts.max_chunk_size = opts.max_chunk_size.max(opts.chunk_size);
        let chunk = AtomicUsize::new(opts.chunk_size);
        Ok(ApiClient {
            inner: Arc::new(Inner {
                http,
                opts,
                device_id: device_id.into(),
                session: RwLock::new(session),
                refresh_pending: AtomicBool::new(pending),
                auth_lock: tokio::sync::Mutex::new(()),
                tokens,
                credentials: Mutex::new(None),
                rng: Mutex::new(StdRng::from_entropy()),
                chunk,
            }),
        })
    }

    /// Sizes the next chunk after `sent` bytes went through in `took`: what the link
    /// moves in [`CHUNK_SECONDS`] at that rate, at most four times the last chunk (one
    /// fast answer is a thin sample), within the options' bounds.
    fn chunk_went_through(&self, sent: u64, took: Duration) {
        let opts = &self.inner.opts;
        let rate = sent as f64 / took.as_secs_f64().max(0.001);
        let fits = (rate * CHUNK_SECONDS).min(usize::MAX as f64) as usize;
        let next = fits
            .min(self.inner.chunk.load(Ordering::Relaxed).saturating_mul(4))
            .clamp(opts.chunk_size, opts.max_chunk_size);
        self.inner.chunk.store(next, Ordering::Relaxed);
    }

    /// After a chunk that broke or missed: back to the smallest chunk.
    fn chunk_failed(&self) {
        let first = self.inner.opts.chunk_size;
        self.inner.chunk.store(first, Ordering::Relaxed);
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub fn device_id(&self) -> &str {
        &self.inner.device_id
    }

    pub fn session(&self) -> Option<Session> {
        self.inner.session.read().ok().and_then(|s| s.clone())
    }

    pub fn user(&self) -> Option<TokenUser> {
        self.session().map(|s| s.user)
    }

    /// Keeps a login so the device can log in again by itself when its session ends.
    pub fn remember_credentials(&self, credentials: Option<Credentials>) {
        if let Ok(mut c) = self.inner.credentials.lock() {
            *c = credentials;
        }
    }

    fn credentials(&self) -> Option<Credentials> {
        self.inner.credentials.lock().ok().and_then(|c| c.clone())
    }

    /// Treats the access token as expired, as it would be after days offline: the next
    /// call refreshes first.
    pub fn expire_access_token(&self) {
        if let Ok(mut s) = self.inner.session.write()
            && let Some(s) = s.as_mut()
        {
            s.access_expires_at = DateTime::<Utc>::UNIX_EPOCH;
        }
    }

    // ---- auth ------------------------------------------------------------------------

    /// Logs this device in and stores the session.
    pub async fn login(&self, login: &str, password: &SecretString) -> Result<TokenUser> {
        let _guard = self.inner.auth_lock.lock().await;
        self.login_locked(login, password).await
    }

    async fn login_locked(&self, login: &str, password: &SecretString) -> Result<TokenUser> {
        let body = to_json(&LoginRequest {
            login: login.to_owned(),
            password: password.expose_secret().to_owned(),
            device_id: self.inner.device_id.clone(),
            device_name: self.inner.opts.device_name.clone(),
        })?;
        let call = Call::new(Method::POST, "/v1/auth/login")
            .json(body)
            .anonymous();
        let reply = self.execute_anonymous(&call).await?.success()?;
        let session = Session::from_response(reply.json()?);
        let user = session.user.clone();
        self.store_session(Some(session)).await?;
        Ok(user)
    }

    /// Trades the refresh token for new tokens now.
    pub async fn refresh(&self) -> Result<()> {
        let _guard = self.inner.auth_lock.lock().await;
        self.refresh_locked().await
    }

    /// Ends this device's session on the server and forgets it here, with the stored
    /// credentials.
    pub async fn logout(&self) -> Result<()> {
        self.remember_credentials(None);
        if self.session().is_some() {
            let mut call = Call::new(Method::POST, "/v1/auth/logout");
            call.reauth = false;
            let reply = self.execute(&call).await;
            match reply {
                // 401: the session was already gone.
                Ok(r) if r.status.is_success() || r.status == StatusCode::UNAUTHORIZED => {}
                Ok(r) => return Err(r.error()),
                Err(ClientError::NotLoggedIn | ClientError::LoginRequired(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let _guard = self.inner.auth_lock.lock().await;
        self.store_session(None).await
    }

    async fn store_session(&self, session: Option<Session>) -> Result<()> {
        let tokens = self.inner.tokens.clone();
        let stored = session.clone();
        tokio::task::spawn_blocking(move || tokens.save(stored.as_ref()))
            .await
            .map_err(ClientError::join)??;
        self.inner.refresh_pending.store(false, Ordering::SeqCst);
        if let Ok(mut s) = self.inner.session.write() {
            *s = session;
        }
        Ok(())
    }

    async fn mark_refresh_pending(&self, pending: bool) -> Result<()> {
        let tokens = self.inner.tokens.clone();
        tokio::task::spawn_blocking(move || tokens.set_refresh_pending(pending))
            .await
            .map_err(ClientError::join)??;
        self.inner.refresh_pending.store(pending, Ordering::SeqCst);
        Ok(())
    }

    /// Logs in again with the stored credentials, or says a login is needed.
    async fn relogin_locked(&self, reason: &str) -> Result<()> {
        match self.credentials() {
            Some(c) => {
                tracing::info!(reason, device_id = %self.inner.device_id, "logging in again");
                self.login_locked(&c.login, &c.password).await.map(|_| ())
            }
            None => Err(ClientError::LoginRequired(reason.to_owned())),
        }
    }

    async fn refresh_locked(&self) -> Result<()> {
        let Some(session) = self.session() else {
            return self.relogin_locked("no_session").await;
        };
        if self.inner.refresh_pending.load(Ordering::SeqCst) {
            self.store_session(None).await?;
            return self.relogin_locked("refresh_interrupted").await;
        }
        // From here the refresh token may be spent: say so durably before sending.
        self.mark_refresh_pending(true).await?;
        let body = to_json(&RefreshRequest {
            refresh_token: session.refresh_token.clone(),
        })?;
        let mut call = Call::new(Method::POST, "/v1/auth/refresh")
            .json(body)
            .anonymous();
        call.retry = RetryMode::SafeOnly;
        match self.execute_anonymous(&call).await {
            Ok(reply) if reply.status.is_success() => match reply.json::<TokenResponse>() {
                Ok(t) => self.store_session(Some(Session::from_response(t))).await,
                Err(_) => {
                    self.store_session(None).await?;
                    self.relogin_locked("refresh_unreadable").await
                }
            },
            Ok(reply)
                if matches!(
                    reply.status,
                    StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::BAD_REQUEST
                ) =>
            {
                // Refused before it was acted on: the token is still good.
                self.mark_refresh_pending(false).await?;
                Err(reply.error())
            }
            Ok(reply) => {
                // 401 (reused, unknown, expired) or a failure after which the token
                // may be spent.
                let code = reply.problem().code;
                self.store_session(None).await?;
                self.relogin_locked(&code).await
            }
            Err(e) => {
                tracing::info!(error = %e, "refresh answer lost; the refresh token is spent");
                self.store_session(None).await?;
                self.relogin_locked("refresh_answer_lost").await
            }
        }
    }

    /// An access token that is not about to expire, refreshing or logging in first when
    /// needed.
    async fn bearer(&self) -> Result<String> {
        let margin = chrono::Duration::from_std(self.inner.opts.refresh_margin)
            .unwrap_or(chrono::Duration::zero());
        if let Some(s) = self.session()
            && s.access_expires_at
                .checked_sub_signed(margin)
                .is_some_and(|t| t > Utc::now())
        {
            return Ok(s.access_token);
        }
        let seen = self.session().map(|s| s.access_token);
        {
            let _guard = self.inner.auth_lock.lock().await;
            let now = self.session();
            if now.as_ref().map(|s| &s.access_token) == seen.as_ref() {
                match now {
                    Some(_) => self.refresh_locked().await?,
                    None => self
                        .relogin_locked("no_session")
                        .await
                        .map_err(|e| match e {
                            ClientError::LoginRequired(_) => ClientError::NotLoggedIn,
                            e => e,
                        })?,
                }
            }
        }
        self.session()
            .map(|s| s.access_token)
            .ok_or(ClientError::NotLoggedIn)
    }

    /// After a 401 to a request made with `used`: refreshes or logs in again unless
    /// another task already did. `Ok(true)` when the request is worth one more try.
    async fn recover_auth(&self, code: &str, used: Option<&str>) -> Result<bool> {
        let _guard = self.inner.auth_lock.lock().await;
        let current = self.session().map(|s| s.access_token);
        if current.is_some() && current.as_deref() != used {
            return Ok(true);
        }
        match code {
            // A 401 to a HEAD request has no body, so no reason: a refresh finds out
            // (it logs in again when the session has ended). Without it, a device
            // whose session was revoked kept failing its photo checks for good.
            "token_expired" | "invalid_token" | "missing_token" | NO_REASON => {
                self.refresh_locked().await?;
                Ok(true)
            }
            "session_revoked" => {
                self.store_session(None).await?;
                self.relogin_locked(code).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    // ---- the request loop --------------------------------------------------------------

    async fn pause(&self, retry: u32, retry_after: Option<Duration>) {
        let delay = match self.inner.rng.lock() {
            Ok(mut rng) => self.inner.opts.retry.delay(retry, retry_after, &mut *rng),
            Err(_) => self.inner.opts.retry.ceiling(retry),
        };
        tokio::time::sleep(delay).await;
    }

    async fn send_once(
        &self,
        call: &Call,
        token: Option<&str>,
    ) -> std::result::Result<Reply, reqwest::Error> {
        let url = format!("{}{}", self.inner.opts.base_url, call.path);
        let mut rb = self.inner.http.request(call.method.clone(), url);
        if !call.query.is_empty() {
            rb = rb.query(&call.query);
        }
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(ct) = call.content_type {
            rb = rb.header(CONTENT_TYPE, ct);
        }
        for (k, v) in &call.headers {
            rb = rb.header(k.clone(), v.clone());
        }
        if let Some(body) = &call.body {
            // A clone of `Bytes` shares the buffer: every try sends the same bytes.
            rb = rb.body(body.clone());
        }
        let res = rb.send().await?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Whether an outcome is worth another try under `mode`, and the server's
    /// `Retry-After` when it gave one.
    fn should_retry(
        mode: RetryMode,
        outcome: &std::result::Result<Reply, reqwest::Error>,
    ) -> (bool, Option<Duration>) {
        match outcome {
            Ok(reply) => {
                let retry = match mode {
                    RetryMode::Full => matches!(reply.status.as_u16(), 408 | 429 | 500..=599),
                    RetryMode::SafeOnly => matches!(reply.status.as_u16(), 429 | 503),
                };
                let after = reply
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, Utc::now()));
                (retry, after)
            }
            Err(e) => {
                let retry = match mode {
                    RetryMode::Full => !e.is_builder(),
                    RetryMode::SafeOnly => e.is_connect(),
                };
                (retry, None)
            }
        }
    }

    /// One try of `call`, or `Ok(None)` when the policy says to try again (after the
    /// pause it has already waited).
    async fn try_once(
        &self,
        call: &Call,
        token: Option<&str>,
        attempt: u32,
    ) -> Result<Option<Reply>> {
        let outcome = self.send_once(call, token).await;
        let (retry, after) = Self::should_retry(call.retry, &outcome);
        if retry && attempt < self.inner.opts.retry.max_attempts.max(1) {
            match &outcome {
                Ok(r) => {
                    tracing::debug!(status = %r.status, path = %call.path, attempt, "retrying")
                }
                Err(e) => {
                    tracing::debug!(error = %error_chain(e), path = %call.path, attempt, "retrying")
                }
            }
            self.pause(attempt - 1, after).await;
            return Ok(None);
        }
        match outcome {
            Ok(reply) => Ok(Some(reply)),
            Err(e) => Err(ClientError::Transport {
                attempts: attempt,
                message: error_chain(&e),
            }),
        }
    }

    /// Sends a call that carries no token until it gets an answer worth returning (any
    /// status) or the retry policy gives up on the network.
    async fn execute_anonymous(&self, call: &Call) -> Result<Reply> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(reply) = self.try_once(call, None, attempt).await? {
                return Ok(reply);
            }
        }
    }

    /// As [`ApiClient::execute_anonymous`], with a fresh bearer token on each try and,
    /// on a 401, one refresh or new login before trying again.
    async fn execute(&self, call: &Call) -> Result<Reply> {
        if !call.auth {
            return self.execute_anonymous(call).await;
        }
        let mut attempt = 0;
        let mut reauths = 0;
        loop {
            attempt += 1;
            let token = self.bearer().await?;
            let Some(reply) = self.try_once(call, Some(&token), attempt).await? else {
                continue;
            };
            if reply.status == StatusCode::UNAUTHORIZED && call.reauth && reauths < MAX_REAUTHS {
                reauths += 1;
                let code = if reply.body.is_empty() {
                    NO_REASON.to_owned()
                } else {
                    reply.problem().code
                };
                if self.recover_auth(&code, Some(&token)).await? {
                    attempt -= 1;
                    continue;
                }
            }
            return Ok(reply);
        }
    }

    // ---- generic JSON calls -------------------------------------------------------------

    /// `GET path?query` with the bearer token, decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        let mut call = Call::new(Method::GET, path);
        call.query = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.execute(&call).await?.success()?.json()
    }

    /// `POST path` with a JSON body and the bearer token, decoded from JSON.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let call = Call::new(Method::POST, path).json(to_json(body)?);
        self.execute(&call).await?.success()?.json()
    }

    /// Any authenticated request, answered whatever its status (after retries).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        content_type: Option<&'static str>,
    ) -> Result<Reply> {
        let mut call = Call::new(method, path);
        call.body = body;
        call.content_type = content_type;
        self.execute(&call).await
    }

    // ---- photos ---------------------------------------------------------------------------

    /// Stores a photo: one `PUT` up to [`ClientOptions::resumable_threshold`] bytes, a
    /// resumable upload above it.
    pub async fn upload_photo(&self, data: Bytes) -> Result<UploadedPhoto> {
        let hashed = data.clone();
        let sha = tokio::task::spawn_blocking(move || sha256_hex(&hashed))
            .await
            .map_err(ClientError::join)?;
        if data.len() as u64 > self.inner.opts.resumable_threshold {
            self.upload_resumable(&sha, data, None, &|_| {}).await
        } else {
            self.put_media(&sha, data).await
        }
    }

    /// `PUT /v1/media/{sha256}`: idempotent, 201 new or 200 already stored.
    pub async fn put_media(&self, sha256: &str, data: Bytes) -> Result<UploadedPhoto> {
        let ct = sniff_media_type(&data);
        let call = Call::new(Method::PUT, format!("/v1/media/{sha256}")).raw(data, ct);
        let reply = self.execute(&call).await?.success()?;
        Ok(UploadedPhoto {
            sha256: sha256.to_owned(),
            created: reply.status == StatusCode::CREATED,
            media: serde_json::from_slice(&reply.body).ok(),
            resumable: false,
        })
    }

    /// `HEAD /v1/media/{sha256}`: stored and visible to this user.
    pub async fn media_exists(&self, sha256: &str) -> Result<bool> {
        let reply = self
            .execute(&Call::new(Method::HEAD, format!("/v1/media/{sha256}")))
            .await?;
        match reply.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(reply.error()),
        }
    }

    /// `POST /v1/uploads`: starts (or, for a photo already stored, skips) a resumable
    /// upload.
    pub async fn create_upload(&self, sha256: &str, length: u64) -> Result<UploadStatus> {
        let body = to_json(&CreateUploadRequest {
            sha256: sha256.to_owned(),
            length,
        })?;
        self.execute(&Call::new(Method::POST, "/v1/uploads").json(body))
            .await?
            .success()?
            .json()
    }

    /// `HEAD /v1/uploads/{id}`: the offset to continue from, `None` when the upload is
    /// unknown (finished, expired or never made).
    pub async fn upload_offset(&self, id: Uuid) -> Result<Option<u64>> {
        let reply = self
            .execute(&Call::new(Method::HEAD, format!("/v1/uploads/{id}")))
            .await?;
        match reply.status {
            s if s.is_success() => reply.upload_offset().map(Some).ok_or_else(|| {
                ClientError::Protocol("HEAD of an upload without Upload-Offset".into())
            }),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(reply.error()),
        }
    }

    /// `PATCH /v1/uploads/{id}`: appends `chunk` at `offset`. Not retried once sent
    /// (the caller asks for the offset instead of resending blindly).
    pub async fn patch_upload(
        &self,
        id: Uuid,
        offset: u64,
        length: u64,
        chunk: Bytes,
    ) -> Result<ChunkOutcome> {
        let mut call =
            Call::new(Method::PATCH, format!("/v1/uploads/{id}")).raw(chunk, OFFSET_OCTET_STREAM);
        call.headers
            .push((UPLOAD_OFFSET, HeaderValue::from(offset)));
        call.retry = RetryMode::SafeOnly;
        let reply = self.execute(&call).await?;
        match reply.status {
            s if s.is_success() => {
                let status = match serde_json::from_slice::<UploadStatus>(&reply.body) {
                    Ok(st) => st,
                    Err(_) => {
                        let offset = reply.upload_offset().ok_or_else(|| {
                            ClientError::Protocol("chunk answer without an offset".into())
                        })?;
                        UploadStatus {
                            id: Some(id),
                            sha256: String::new(),
                            length,
                            offset,
                            complete: offset >= length,
                            expires_at: None,
                            media: None,
                        }
                    }
                };
                Ok(ChunkOutcome::Accepted(status))
            }
            StatusCode::CONFLICT => Ok(ChunkOutcome::OffsetMismatch(reply.upload_offset())),
            // The body broke off; the server kept what arrived.
            StatusCode::BAD_REQUEST if reply.problem().code == "incomplete_body" => {
                Ok(ChunkOutcome::OffsetMismatch(None))
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(ChunkOutcome::Gone),
            _ => Err(reply.error()),
        }
    }

    /// Sends a photo in chunks, continuing an earlier upload `resume` when given.
    /// `on_created` hears the id of each upload this call starts, so a caller can store
    /// it and resume after a restart.
    pub async fn upload_resumable(
        &self,
        sha256: &str,
        data: Bytes,
        resume: Option<Uuid>,
        on_created: &(dyn Fn(Uuid) + Send + Sync),
    ) -> Result<UploadedPhoto> {
        let length = data.len() as u64;
        let max_failures = self.inner.opts.retry.max_attempts.max(1);
        let done = |media: Option<MediaInfo>, created: bool| UploadedPhoto {
            sha256: sha256.to_owned(),
            created,
            media,
            resumable: true,
        };
        let mut current: Option<(Uuid, u64)> = None;
        if let Some(id) = resume {
            match self.upload_offset(id).await? {
                Some(offset) => current = Some((id, offset)),
                None if self.media_exists(sha256).await? => return Ok(done(None, false)),
                None => {}
            }
        }
        let mut restarts = 0;
        loop {
            let (id, mut offset) = match current.take() {
                Some(c) => c,
                None => {
                    let st = self.create_upload(sha256, length).await?;
                    match st.id {
                        Some(id) if !st.complete => {
                            on_created(id);
                            (id, st.offset)
                        }
                        _ => return Ok(done(st.media, false)),
                    }
                }
            };
            // Tries in a row that moved the offset nowhere.
            let mut stalls = 0;
            // Sends chunks until the upload completes or disappears.
            let gone = loop {
                if stalls >= max_failures {
                    return Err(ClientError::Transport {
                        attempts: stalls,
                        message: format!("upload {id} makes no progress at byte {offset}"),
                    });
                }
                if offset >= length {
                    // Every byte is there but the completing answer was lost or the
                    // server could not finish (503): an empty chunk at the end asks it
                    // to finish, unless the upload is already gone.
                    match self.upload_offset(id).await? {
                        Some(o) if o < length => {
                            offset = o;
                            continue;
                        }
                        Some(_) => {}
                        None => break true,
                    }
                }
                let chunk = self.inner.chunk.load(Ordering::Relaxed).max(1) as u64;
                let end = offset.saturating_add(chunk).min(length);
                let slice = data.slice(
                    usize::try_from(offset).unwrap_or(usize::MAX)
                        ..usize::try_from(end).unwrap_or(usize::MAX),
                );
                let before = offset;
                let started = Instant::now();
                let outcome = self.patch_upload(id, offset, length, slice).await;
                match &outcome {
                    // The last chunk's answer waited for the server to store the
                    // photo, so its time says little about the link.
                    Ok(ChunkOutcome::Accepted(st)) if !st.complete && st.offset == end => {
                        self.chunk_went_through(end - before, started.elapsed());
                    }
                    Ok(ChunkOutcome::Accepted(_)) => {}
                    _ => self.chunk_failed(),
                }
                match outcome {
                    Ok(ChunkOutcome::Accepted(st)) => {
                        if st.complete {
                            return Ok(done(st.media, true));
                        }
                        offset = st.offset;
                    }
                    Ok(ChunkOutcome::OffsetMismatch(Some(o))) => offset = o,
                    Ok(ChunkOutcome::OffsetMismatch(None)) => match self.upload_offset(id).await? {
                        Some(o) => offset = o,
                        None => break true,
                    },
                    Ok(ChunkOutcome::Gone) => break true,
                    Err(e) if e.is_transient() => {
                        tracing::debug!(error = %e, %id, offset, "chunk failed; asking where to resume");
                        self.pause(stalls, None).await;
                        match self.upload_offset(id).await? {
                            Some(o) => offset = o,
                            None => break true,
                        }
                    }
                    Err(e) => return Err(e),
                }
                if offset > before {
                    stalls = 0;
                } else {
                    stalls += 1;
                }
            };
            if gone {
                // Finished by a try whose answer was lost, or expired.
                if self.media_exists(sha256).await? {
                    return Ok(done(None, false));
                }
                restarts += 1;
                if restarts > 3 {
                    return Err(ClientError::Protocol(format!(
                        "the upload of {sha256} keeps disappearing"
                    )));
                }
            }
        }
    }

    // ---- sync -------------------------------------------------------------------------------

    /// `POST /v1/sync/push` with a body serialised by the caller (retries resend it as is).
    pub async fn push_raw(&self, body: Bytes) -> Result<PushResponse> {
        self.execute(&Call::new(Method::POST, "/v1/sync/push").json(body))
            .await?
            .success()?
            .json()
    }

    /// Pushes `mutations` as this device.
    pub async fn push(&self, mutations: &[Mutation]) -> Result<PushResponse> {
        let mutations = mutations
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Invalid(format!("cannot serialise a mutation: {e}")))?;
        let body = to_json(&PushRequest {
            device_id: self.inner.device_id.clone(),
            mutations,
        })?;
        self.push_raw(body).await
    }

    /// `GET /v1/sync/pull`: changes after `cursor` (from the start when `None`).
    pub async fn pull(&self, cursor: Option<&str>, limit: u32) -> Result<PullResponse> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        self.get_json("/v1/sync/pull", &query).await
    }
}
