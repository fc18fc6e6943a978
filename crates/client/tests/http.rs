//! The client against a scripted HTTP server: retries, Retry-After, identical bodies,
//! token refresh and what happens when a refresh answer is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baithak_client::{ApiClient, ClientError, ClientOptions, Credentials, RetryPolicy};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    auth: Option<String>,
    body: Bytes,
}

enum Act {
    Reply(u16, Vec<(&'static str, String)>, Value),
    /// Close the connection without an answer.
    Hangup,
}

type Script = dyn Fn(&Seen, &[Seen]) -> Act + Send + Sync;

#[derive(Debug)]
struct Hung;
impl std::fmt::Display for Hung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hung up")
    }
}
impl std::error::Error for Hung {}

struct Mock {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    async fn start(script: impl Fn(&Seen, &[Seen]) -> Act + Send + Sync + 'static) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (log, script) = (log.clone(), script.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                auth: parts
                                    .headers
                                    .get("authorization")
                                    .map(|v| v.to_str().unwrap().to_owned()),
                                body,
                            };
                            let act = {
                                let mut log = log.lock().unwrap();
                                let act = script(&seen, &log);
                                log.push(seen);
                                act
                            };
                            match act {
                                Act::Hangup => Err(Hung),
                                Act::Reply(status, headers, body) => {
                                    let ct = if status >= 400 {
                                        "application/problem+json"
                                    } else {
                                        "application/json"
                                    };
                                    let mut res = Response::new(Full::new(Bytes::from(
                                        serde_json::to_vec(&body).unwrap(),
                                    )));
                                    *res.status_mut() = StatusCode::from_u16(status).unwrap();
                                    res.headers_mut()
                                        .insert("content-type", ct.parse().unwrap());
                                    for (k, v) in headers {
                                        res.headers_mut().insert(k, v.parse().unwrap());
                                    }
                                    Ok(res)
                                }
                            }
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), svc)
                        .await;
                });
            }
        });
        Mock { url, seen }
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

fn problem(status: u16, code: &str) -> Act {
    Act::Reply(
        status,
        vec![],
        json!({"type": "about:blank", "title": code, "status": status, "code": code}),
    )
}

fn tokens(n: usize) -> Value {
    json!({
        "access_token": format!("access-{n}"), "token_type": "Bearer", "expires_in": 900,
        "refresh_token": format!("refresh-{n}"),
        "user": {"id": "0193a000-0000-7000-8000-000000000001", "name": "r", "role": "incharge",
                 "area_id": "0193a000-0000-7000-8000-000000000002"}
    })
}

fn push_ok() -> Act {
    Act::Reply(
        200,
        vec![],
        json!({"results": [], "server_time": "2026-11-24T00:00:00Z"}),
    )
}

fn opts(url: &str) -> ClientOptions {
    ClientOptions {
        base_url: url.to_owned(),
        retry: RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        ..ClientOptions::default()
    }
}

fn count(log: &[Seen], path: &str) -> usize {
    log.iter().filter(|s| s.path == path).count()
}

/// Login answers with tokens numbered by the number of logins and refreshes so far.
fn auth(seen: &Seen, log: &[Seen]) -> Option<Act> {
    match seen.path.as_str() {
        "/v1/auth/login" | "/v1/auth/refresh" => Some(Act::Reply(
            200,
            vec![],
            tokens(count(log, "/v1/auth/login") + count(log, "/v1/auth/refresh") + 1),
        )),
        _ => None,
    }
}

/// Keeps the password in the client, so that it logs in again by itself.
fn remember_password(c: &ApiClient) {
    c.remember_credentials(Some(Credentials {
        login: "ravi".into(),
        password: SecretString::from("pw-123456"),
    }));
}

async fn logged_in(mock: &Mock) -> ApiClient {
    let c = ApiClient::new(opts(&mock.url), "dev-1").unwrap();
    c.login("ravi", &SecretString::from("pw-123456"))
        .await
        .unwrap();
    c
}

#[tokio::test]
async fn retries_resend_identical_bytes_through_5xx_and_hangups() {
    let mock = Mock::start(|seen, log| {
        if let Some(a) = auth(seen, log) {
            return a;
        }
        match count(log, "/v1/sync/push") {
            0 => problem(500, "internal"),
            1 => Act::Hangup,
            2 => problem(502, "bad_gateway"),
            _ => push_ok(),
        }
    })
    .await;
    let c = logged_in(&mock).await;
    let body = Bytes::from_static(br#"{"device_id":"dev-1","mutations":[]}"#);
    c.push_raw(body.clone()).await.unwrap();
    let pushes = mock.seen("/v1/sync/push");
    assert_eq!(pushes.len(), 4);
    assert!(
        pushes.iter().all(|p| p.body == body),
        "the same bytes each time"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_client_errors_are_not_retried() {
    let mock = Mock::start(|seen, log| {
        if let Some(a) = auth(seen, log) {
            return a;
        }
        match (seen.path.as_str(), count(log, &seen.path)) {
            ("/v1/sync/push", 0) => Act::Reply(
                503,
                vec![("retry-after", "1".into())],
                json!({"type": "x", "title": "busy", "status": 503, "code": "unavailable"}),
            ),
            ("/v1/sync/push", _) => push_ok(),
            _ => problem(422, "validation_failed"),
        }
    })
    .await;
    let c = logged_in(&mock).await;
    let t = Instant::now();
    c.push(&[]).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        t.elapsed()
    );

    let err = c
        .pull(None, 10)
        .await
        .expect_err("a 422 is the request's fault");
    assert_eq!(err.code(), Some("validation_failed"));
    assert_eq!(mock.seen("/v1/sync/pull").len(), 1, "not retried");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_request_retried() {
    let mock = Mock::start(|seen, log| {
        if let Some(a) = auth(seen, log) {
            return a;
        }
        if seen.auth.as_deref() == Some("Bearer access-1") {
            problem(401, "token_expired")
        } else {
            push_ok()
        }
    })
    .await;
    let c = logged_in(&mock).await;
    c.push(&[]).await.unwrap();
    let pushes = mock.seen("/v1/sync/push");
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[1].auth.as_deref(), Some("Bearer access-2"));
    let refreshes = mock.seen("/v1/auth/refresh");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(
        serde_json::from_slice::<Value>(&refreshes[0].body).unwrap()["refresh_token"],
        "refresh-1"
    );
    assert_eq!(c.session().unwrap().refresh_token, "refresh-2");
}

#[tokio::test]
async fn a_lost_refresh_answer_is_never_retried_with_the_spent_token() {
    // The server acts on the refresh, but its answer never arrives.
    let mock = Mock::start(|seen, log| match seen.path.as_str() {
        "/v1/auth/refresh" => Act::Hangup,
        "/v1/auth/login" => Act::Reply(200, vec![], tokens(count(log, "/v1/auth/login") + 1)),
        _ => push_ok(),
    })
    .await;

    // Without a stored credential the device must log in again.
    let c = logged_in(&mock).await;
    c.expire_access_token();
    let err = c.push(&[]).await.expect_err("no way to continue");
    assert!(matches!(err, ClientError::LoginRequired(_)), "{err}");
    assert_eq!(
        mock.seen("/v1/auth/refresh").len(),
        1,
        "the spent token is not resent"
    );
    assert!(c.session().is_none());

    // With one it logs in by itself and goes on.
    let c = logged_in(&mock).await;
    remember_password(&c);
    c.expire_access_token();
    c.push(&[]).await.unwrap();
    assert_eq!(mock.seen("/v1/auth/refresh").len(), 2, "one try per client");
    assert_eq!(mock.seen("/v1/auth/login").len(), 3);
    let last = mock.seen("/v1/sync/push").pop().unwrap();
    assert_eq!(last.auth.as_deref(), Some("Bearer access-3"));
}

#[tokio::test]
async fn a_reused_refresh_token_or_revoked_session_leads_to_a_new_login() {
    let mock = Mock::start(|seen, log| match seen.path.as_str() {
        "/v1/auth/refresh" => problem(401, "refresh_token_reused"),
        "/v1/auth/login" => Act::Reply(200, vec![], tokens(count(log, "/v1/auth/login") + 1)),
        _ if seen.auth.as_deref() == Some("Bearer access-1") => problem(401, "session_revoked"),
        _ => push_ok(),
    })
    .await;
    let c = logged_in(&mock).await;
    remember_password(&c);
    c.push(&[]).await.unwrap();
    assert!(
        mock.seen("/v1/auth/refresh").is_empty(),
        "revoked: log in, no refresh"
    );
    assert_eq!(mock.seen("/v1/auth/login").len(), 2);

    c.expire_access_token();
    c.push(&[]).await.unwrap();
    assert_eq!(mock.seen("/v1/auth/refresh").len(), 1);
    assert_eq!(mock.seen("/v1/auth/login").len(), 3);
}

#[tokio::test]
async fn a_new_login_that_is_already_revoked_logs_in_again() {
    // A login delivered twice: the answer the client gets is for the replaced session.
    let mock = Mock::start(|seen, log| match seen.path.as_str() {
        "/v1/auth/login" => Act::Reply(200, vec![], tokens(count(log, "/v1/auth/login") + 1)),
        _ if matches!(
            seen.auth.as_deref(),
            Some("Bearer access-1" | "Bearer access-2")
        ) =>
        {
            problem(401, "session_revoked")
        }
        _ => push_ok(),
    })
    .await;
    let c = logged_in(&mock).await;
    remember_password(&c);
    c.push(&[]).await.unwrap();
    assert_eq!(mock.seen("/v1/auth/login").len(), 3);
    let last = mock.seen("/v1/sync/push").pop().unwrap();
    assert_eq!(last.auth.as_deref(), Some("Bearer access-3"));
}

#[tokio::test]
async fn a_revoked_session_seen_by_a_head_request_leads_to_a_new_login() {
    // A HEAD answer carries no body, so the client cannot read "session_revoked".
    let mock = Mock::start(|seen, log| match seen.path.as_str() {
        "/v1/auth/refresh" => problem(401, "refresh_token_reused"),
        "/v1/auth/login" => Act::Reply(200, vec![], tokens(count(log, "/v1/auth/login") + 1)),
        _ if seen.auth.as_deref() == Some("Bearer access-1") => problem(401, "session_revoked"),
        _ => Act::Reply(200, vec![], json!({})),
    })
    .await;
    let c = logged_in(&mock).await;
    remember_password(&c);
    assert!(c.media_exists(&"a".repeat(64)).await.unwrap());
    assert_eq!(mock.seen("/v1/auth/refresh").len(), 1);
    assert_eq!(mock.seen("/v1/auth/login").len(), 2);
    let heads: Vec<Option<String>> = mock
        .seen(&format!("/v1/media/{}", "a".repeat(64)))
        .into_iter()
        .map(|s| s.auth)
        .collect();
    assert_eq!(
        heads,
        [
            Some("Bearer access-1".to_owned()),
            Some("Bearer access-2".to_owned())
        ]
    );
}

const UPLOAD_ID: &str = "0193a000-0000-7000-8000-0000000000aa";

/// A server for one resumable upload of `len` bytes whose chunk number `cut` (from 0)
/// breaks off after `kept` bytes, which the server keeps; it answers `HEAD` with what
/// it holds. Returns the bytes it stored.
async fn upload_server(len: usize, cut: usize, kept: usize) -> (Mock, Arc<Mutex<Vec<u8>>>) {
    let stored = Arc::new(Mutex::new(Vec::<u8>::new()));
    let s = stored.clone();
    let mock = Mock::start(move |seen, log| {
        if let Some(a) = auth(seen, log) {
            return a;
        }
        let mut stored = s.lock().unwrap();
        let status = |offset: usize| {
            json!({"id": UPLOAD_ID, "sha256": "x",
                   "length": len, "offset": offset, "complete": offset == len})
        };
        match (seen.method.as_str(), seen.path.as_str()) {
            ("POST", "/v1/uploads") => Act::Reply(201, vec![], status(0)),
            ("HEAD", p) if p.starts_with("/v1/uploads/") => Act::Reply(
                200,
                vec![("upload-offset", stored.len().to_string())],
                Value::Null,
            ),
            ("PATCH", _) => {
                let patches = log.iter().filter(|l| l.method == "PATCH").count();
                if patches == cut {
                    stored.extend_from_slice(&seen.body[..kept]);
                    return Act::Hangup;
                }
                stored.extend_from_slice(&seen.body);
                Act::Reply(200, vec![], status(stored.len()))
            }
            _ => problem(404, "not_found"),
        }
    })
    .await;
    (mock, stored)
}

/// A JPEG-looking body of `len` bytes, each byte different from its neighbours.
fn photo_bytes(len: usize) -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF];
    jpeg.extend((3..len).map(|i| i as u8));
    jpeg
}

#[tokio::test]
async fn a_resumable_upload_continues_from_the_servers_offset_after_a_cut() {
    // The second chunk arrives in part and its answer is lost.
    let (mock, stored) = upload_server(100, 1, 10).await;
    let mut o = opts(&mock.url);
    o.chunk_size = 30;
    o.max_chunk_size = 30;
    o.resumable_threshold = 10;
    let c = ApiClient::new(o, "dev-1").unwrap();
    c.login("ravi", &SecretString::from("pw-123456"))
        .await
        .unwrap();
    let jpeg = photo_bytes(100);
    let up = c.upload_photo(Bytes::from(jpeg.clone())).await.unwrap();
    assert!(up.resumable);
    assert_eq!(*stored.lock().unwrap(), jpeg, "every byte once, in order");
    // Four chunks (one cut) and one HEAD to learn where to resume.
    assert_eq!(mock.seen(&format!("/v1/uploads/{UPLOAD_ID}")).len(), 5);
}

#[tokio::test]
async fn resumable_chunks_grow_while_they_get_through_and_shrink_after_a_cut() {
    // The third chunk breaks off after 5 bytes.
    let (mock, stored) = upload_server(300, 2, 5).await;
    let mut o = opts(&mock.url);
    o.chunk_size = 20;
    o.max_chunk_size = 100;
    o.resumable_threshold = 10;
    let c = ApiClient::new(o, "dev-1").unwrap();
    c.login("ravi", &SecretString::from("pw-123456"))
        .await
        .unwrap();
    let jpeg = photo_bytes(300);
    let up = c.upload_photo(Bytes::from(jpeg.clone())).await.unwrap();
    assert!(up.resumable);
    assert_eq!(*stored.lock().unwrap(), jpeg, "every byte once, in order");
    let sizes: Vec<usize> = mock
        .seen(&format!("/v1/uploads/{UPLOAD_ID}"))
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.body.len())
        .collect();
    // Fast answers let each chunk grow fourfold up to the largest; the cut sends the
    // next one back to the smallest, from the 105 bytes the server kept.
    assert_eq!(sizes, [20, 80, 100, 20, 80, 95]);
}
