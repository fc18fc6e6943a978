//! The real `baithak` binary on a free port with its own data dir and database, and
//! small HTTP helpers. Shared by the end-to-end tests in this folder.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use baithak_test_support::s3::S3Bucket;
use baithak_test_support::{Kind, TestDb};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub mod sim;

pub const BIN: &str = env!("CARGO_BIN_EXE_baithak");

pub const AREAS: &str = "code,name,kind,parent_code
UP,उत्तर प्रदेश,state,
LKO,Lucknow division,division,UP
KNP,Kanpur division,division,UP
LKO-PC,Lucknow,constituency,LKO
LKO-AC1,Lucknow West,assembly,LKO-PC
LKO-AC1-B1,Booth 1,booth,LKO-AC1
KNP-PC,Kanpur,constituency,KNP
KNP-AC1,Kanpur Cantt,assembly,KNP-PC
";

pub struct Server {
    /// Shared with any replica started beside this server.
    pub db: Arc<TestDb>,
    pub data_dir: PathBuf,
    pub base: String,
    pub http: Client,
    child: Child,
    /// What the process was started with beyond the database and data dir, so a
    /// restart gets the same.
    env: Vec<(String, String)>,
}

impl Server {
    /// Runs a CLI command against this server's database and data dir.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        cli(&self.db.url, &self.data_dir, args, stdin)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        read(res).await
    }

    pub async fn login(&self, login: &str, password: &str, device: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"login": login, "password": password, "device_id": device})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {login}: {body}");
        body
    }

    pub async fn token(&self, login: &str, password: &str) -> String {
        self.login(login, password, &format!("dev-{login}")).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn add_user(&self, login: &str, role: &str, area: &str, password: &str) -> String {
        let (ok, out, err) = self.cli(
            &[
                "user",
                "add",
                "--login",
                login,
                "--name",
                login,
                "--role",
                role,
                "--area",
                area,
                "--password-stdin",
            ],
            Some(&format!("{password}\n")),
        );
        assert!(ok, "user add {login}: {err}");
        out.trim().to_owned()
    }
}

pub async fn read(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = res.bytes().await.expect("body");
    if status.is_client_error() || status.is_server_error() {
        assert!(
            ctype.starts_with("application/problem+json"),
            "error {status} without a problem body: {ctype} {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

pub fn cli(
    db_url: &str,
    data_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("BAITHAK_DATABASE_URL", db_url)
        .env("BAITHAK_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baithak");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("wait baithak");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `baithak serve` on port 0 and waits for its "listening on" line.
pub fn start(kind: Kind, extra_env: &[(&str, &str)]) -> Server {
    let db = TestDb::new(kind);
    let data_dir = db.dir().join("data");
    start_on(Arc::new(db), data_dir, extra_env)
}

/// Another `baithak serve` on `of`'s database, with a data dir (and so a work dir)
/// of its own, as a second replica behind a load balancer would run. Both need the
/// same `BAITHAK_JWT_SECRET` in `extra_env` to accept each other's tokens.
pub fn start_replica(of: &Server, extra_env: &[(&str, &str)]) -> Server {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let data_dir = of.db.dir().join(format!("replica-{n}"));
    start_on(Arc::clone(&of.db), data_dir, extra_env)
}

fn start_on(db: Arc<TestDb>, data_dir: PathBuf, extra_env: &[(&str, &str)]) -> Server {
    let env: Vec<(String, String)> = extra_env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (child, base) = spawn(&db.url, &data_dir, "127.0.0.1:0", &env);
    Server {
        db,
        data_dir,
        base,
        http: http_client(),
        child,
        env,
    }
}

fn http_client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Starts `baithak serve` bound to `bind` and returns it with its base URL, once it
/// has printed its "listening on" line.
fn spawn(db_url: &str, data_dir: &Path, bind: &str, env: &[(String, String)]) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve"])
        .env("BAITHAK_DATABASE_URL", db_url)
        .env("BAITHAK_DATA_DIR", data_dir)
        .env("BAITHAK_BIND", bind)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn baithak serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server did not print its address");
    (child, base)
}

impl Server {
    /// Imports [`AREAS`] through the CLI, as an operator would.
    pub fn import_areas(&self) {
        std::fs::create_dir_all(&self.data_dir).unwrap();
        let csv = self.data_dir.join("areas.csv");
        std::fs::write(&csv, AREAS).unwrap();
        let (ok, _, err) = self.cli(&["areas", "import", csv.to_str().unwrap()], None);
        assert!(ok, "{err}");
    }

    /// Ends the process with SIGKILL, as the OOM killer or a crash would, in the
    /// middle of whatever it was doing, and starts it again on the same database,
    /// data dir and address, so clients that were talking to it reconnect to it.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().expect("kill baithak serve");
        self.child.wait().expect("reap baithak serve");
        let bind = self
            .base
            .strip_prefix("http://")
            .expect("base is an http URL")
            .to_owned();
        let (child, base) = spawn(&self.db.url, &self.data_dir, &bind, &self.env);
        assert_eq!(base, self.base, "restarted on the same address");
        self.child = child;
        // The pool's idle connections went with the old process; a request sent on one
        // would fail where a phone's app would simply reconnect.
        self.http = http_client();
    }

    /// The number of requests this process has answered with a 2xx status.
    pub async fn answered_2xx(&self) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix("baithak_http_requests_total{class=\"2xx\"} "))
            .and_then(|n| n.trim().parse().ok())
            .expect("a 2xx counter")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `extra_env` for [`start`] from owned values (e.g. an S3 bucket's settings).
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Two replicas of one deployment on PostgreSQL: one database, `bucket` as their blob
/// store, one JWT secret, a data dir each.
pub fn start_two_replicas(bucket: &S3Bucket) -> (Server, Server) {
    let mut env = bucket.server_env();
    env.push((
        "BAITHAK_JWT_SECRET",
        "replicas share this secret, 32+ bytes".to_owned(),
    ));
    let env = env_refs(&env);
    let a = start(Kind::Postgres, &env);
    let b = start_replica(&a, &env);
    (a, b)
}
