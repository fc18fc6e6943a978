//! A fault-injecting HTTP proxy between simulated devices and the server: the network
//! of a field in-charge's phone, made worse on purpose.
//!
//! Each request is read whole, then, by the configured rates, it is
//! - dropped (never forwarded; the device's connection is closed without an answer),
//! - cut (a `PUT`/`PATCH` body is forwarded only in part, then the upstream connection
//!   is broken, as when a phone loses signal mid-upload),
//! - duplicated (forwarded twice at once; the device gets one of the answers),
//! - delayed (held for up to `delay_max` before forwarding),
//! - or its answer dropped (forwarded and answered, the answer thrown away).
//!
//! Only loopback traffic: the upstream is the server under test (or its replicas,
//! taken in turn as a load balancer would).

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Fault rates, each a probability per request in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    pub drop_request: f64,
    pub drop_response: f64,
    pub duplicate: f64,
    pub delay: f64,
    pub delay_max: Duration,
    /// Of photo uploads (`PUT /v1/media/…`, `PATCH /v1/uploads/…`).
    pub cut_upload: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            drop_request: 0.0,
            drop_response: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            delay_max: Duration::from_millis(500),
            cut_upload: 0.0,
        }
    }
}

impl FaultConfig {
    /// No fault of any kind is configured.
    pub fn is_off(&self) -> bool {
        [
            self.drop_request,
            self.drop_response,
            self.duplicate,
            self.delay,
            self.cut_upload,
        ]
        .iter()
        .all(|p| *p <= 0.0)
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("drop_request", self.drop_request),
            ("drop_response", self.drop_response),
            ("duplicate", self.duplicate),
            ("delay", self.delay),
            ("cut_upload", self.cut_upload),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability in [0, 1], not {p}"));
            }
        }
        if self.drop_request >= 1.0 || self.drop_response >= 1.0 {
            return Err("dropping every request or answer leaves nothing to measure".into());
        }
        Ok(())
    }
}

/// What the proxy did, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    pub requests: u64,
    pub forwarded: u64,
    pub dropped_requests: u64,
    pub dropped_responses: u64,
    pub duplicated: u64,
    pub delayed: u64,
    pub cut_uploads: u64,
    /// The server could not be reached or broke the connection.
    pub upstream_errors: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    dropped_requests: AtomicU64,
    dropped_responses: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
    cut_uploads: AtomicU64,
    upstream_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct State {
    /// The server, or several replicas of one deployment taken in turn per request
    /// (a load balancer without stickiness: a chunk, its retry and its duplicate may
    /// each reach another replica).
    upstreams: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
    faults: FaultConfig,
    enabled: AtomicBool,
    rng: Mutex<StdRng>,
    counters: Counters,
}

#[derive(Debug, Default, Clone, Copy)]
struct Plan {
    drop_request: bool,
    cut_at: Option<usize>,
    duplicate: bool,
    delay: Option<Duration>,
    drop_response: bool,
}

/// The error that makes hyper close a device's connection without an answer.
#[derive(Debug)]
struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Hangup {}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn is_upload(method: &hyper::Method, path: &str) -> bool {
    (method == hyper::Method::PUT && path.starts_with("/v1/media/"))
        || (method == hyper::Method::PATCH && path.starts_with("/v1/uploads/"))
}

impl State {
    fn plan(&self, method: &hyper::Method, path: &str, body_len: usize) -> Plan {
        if !self.enabled.load(Ordering::Relaxed) {
            return Plan::default();
        }
        let f = &self.faults;
        let Ok(mut rng) = self.rng.lock() else {
            return Plan::default();
        };
        let mut plan = Plan::default();
        if f.delay > 0.0 && rng.gen_bool(f.delay) {
            let max = u64::try_from(f.delay_max.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            plan.delay = Some(Duration::from_millis(rng.gen_range(1..=max)));
        }
        if f.drop_request > 0.0 && rng.gen_bool(f.drop_request) {
            plan.drop_request = true;
            return plan;
        }
        if is_upload(method, path)
            && body_len > 1
            && f.cut_upload > 0.0
            && rng.gen_bool(f.cut_upload)
        {
            plan.cut_at = Some(rng.gen_range(1..body_len));
            return plan;
        }
        plan.duplicate = f.duplicate > 0.0 && rng.gen_bool(f.duplicate);
        plan.drop_response = f.drop_response > 0.0 && rng.gen_bool(f.drop_response);
        plan
    }

    fn upstream_request(
        &self,
        parts: &hyper::http::request::Parts,
        body: reqwest::Body,
    ) -> reqwest::RequestBuilder {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len().max(1);
        let upstream = self.upstreams.get(i).map_or("", String::as_str);
        let mut rb = self
            .http
            .request(parts.method.clone(), format!("{upstream}{path}"));
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) {
                rb = rb.header(name.clone(), value.clone());
            }
        }
        rb.body(body)
    }

    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, reqwest::Error> {
        bump(&self.counters.forwarded);
        let res = self.upstream_request(parts, body.into()).send().await?;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await?;
        let mut out = Response::new(Full::new(bytes));
        *out.status_mut() = status;
        for (name, value) in &headers {
            if !hop_by_hop(name) {
                out.headers_mut().append(name.clone(), value.clone());
            }
        }
        Ok(out)
    }

    /// Sends the first `cut_at` bytes of the body with the full `Content-Length`, then
    /// breaks the upstream connection.
    async fn forward_cut(&self, parts: &hyper::http::request::Parts, body: Bytes, cut_at: usize) {
        bump(&self.counters.forwarded);
        let total = body.len();
        let head = body.slice(..cut_at.min(total));
        let chunks = stream::unfold(0u8, move |step| {
            let head = head.clone();
            async move {
                match step {
                    0 => Some((Ok::<Bytes, std::io::Error>(head), 1)),
                    1 => {
                        // Let the server read what arrived before the line goes dead.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Some((
                            Err(std::io::Error::new(
                                std::io::ErrorKind::ConnectionReset,
                                "upload cut by the fault proxy",
                            )),
                            2,
                        ))
                    }
                    _ => None,
                }
            }
        });
        let rb = self
            .upstream_request(parts, reqwest::Body::wrap_stream(chunks))
            .header(header::CONTENT_LENGTH, total);
        // The server answers an error or nothing; the device hears nothing either way.
        let _ = rb.send().await;
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Hangup> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map_err(|_| Hangup)?.to_bytes();
        bump(&self.counters.requests);
        let plan = self.plan(&parts.method, parts.uri.path(), body.len());
        if let Some(d) = plan.delay {
            bump(&self.counters.delayed);
            tokio::time::sleep(d).await;
        }
        if plan.drop_request {
            bump(&self.counters.dropped_requests);
            return Err(Hangup);
        }
        if let Some(cut_at) = plan.cut_at {
            bump(&self.counters.cut_uploads);
            self.forward_cut(&parts, body, cut_at).await;
            return Err(Hangup);
        }
        let answer = if plan.duplicate {
            bump(&self.counters.duplicated);
            let (a, b) = tokio::join!(
                self.forward(&parts, body.clone()),
                self.forward(&parts, body)
            );
            // Whichever answer the device gets, the server saw the request twice.
            match (a, b) {
                (Ok(a), _) => Ok(a),
                (Err(_), Ok(b)) => Ok(b),
                (Err(e), Err(_)) => Err(e),
            }
        } else {
            self.forward(&parts, body).await
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "upstream failed");
                bump(&self.counters.upstream_errors);
                return Err(Hangup);
            }
        };
        if plan.drop_response {
            bump(&self.counters.dropped_responses);
            return Err(Hangup);
        }
        Ok(answer)
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, faults: FaultConfig, seed: u64) -> std::io::Result<Self> {
        Self::start_with_timeout(upstream, faults, seed, Duration::from_secs(120)).await
    }

    /// As [`FaultProxy::start`], giving up on an upstream request after `timeout`.
    pub async fn start_with_timeout(
        upstream: &str,
        faults: FaultConfig,
        seed: u64,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        Self::start_balanced(&[upstream.to_owned()], faults, seed, timeout).await
    }

    /// As [`FaultProxy::start_with_timeout`], sending each request to the next of
    /// `upstreams` in turn, as a load balancer in front of replicas would.
    pub async fn start_balanced(
        upstreams: &[String],
        faults: FaultConfig,
        seed: u64,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        if upstreams.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the proxy needs at least one upstream",
            ));
        }
        faults
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(State {
            upstreams: upstreams
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            next: AtomicUsize::new(0),
            http,
            faults,
            enabled: AtomicBool::new(true),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counters: Counters::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| state.clone().handle(req));
                    // A hang-up ends the connection with an error: that is the point.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(FaultProxy {
            addr,
            state,
            accept,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Turns the faults on or off (off: a plain forwarding proxy).
    pub fn set_faults_enabled(&self, on: bool) {
        self.state.enabled.store(on, Ordering::Relaxed);
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            requests: get(&c.requests),
            forwarded: get(&c.forwarded),
            dropped_requests: get(&c.dropped_requests),
            dropped_responses: get(&c.dropped_responses),
            duplicated: get(&c.duplicated),
            delayed: get(&c.delayed),
            cut_uploads: get(&c.cut_uploads),
            upstream_errors: get(&c.upstream_errors),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
