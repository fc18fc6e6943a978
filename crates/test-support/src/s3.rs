//! A real S3 API for tests: one `moto_server` (Python's moto, `pip install
//! "moto[server]"`, which `.ci/run` installs) per test process, started on first use,
//! and a fresh bucket per test so tests run in parallel without seeing each other's
//! objects.
//!
//! The server outlives nothing: a watchdog shell stops it once the test process that
//! started it has exited.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Credentials moto accepts (it checks none); the region is what the SDKs sign for.
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

static SERVER: OnceLock<SocketAddr> = OnceLock::new();

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port for moto_server")
}

/// One raw HTTP/1.1 request; returns the status code and the body. Plain std so the
/// helper needs no HTTP client of its own.
fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

fn start_server() -> SocketAddr {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let script = format!(
        "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {owner} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; \
         kill $m 2>/dev/null",
        owner = std::process::id()
    );
    // Never waited for: the shell lives as long as this test process and ends after it.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run sh to start moto_server");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http(addr, "GET", "/").is_ok_and(|(c, _)| c == 200) {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "moto_server did not answer on {addr} within 60 s; \
         the S3 tests need it: pip install \"moto[server]\""
    );
}

/// An empty bucket of its own on the test process's S3 server.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    addr: SocketAddr,
}

impl S3Bucket {
    pub fn new() -> S3Bucket {
        let addr = *SERVER.get_or_init(start_server);
        let bucket = format!("baithak-test-{}", uuid::Uuid::now_v7().simple());
        let (code, body) = http(addr, "PUT", &format!("/{bucket}")).expect("create bucket");
        assert_eq!(code, 200, "creating bucket {bucket} on moto_server: {body}");
        S3Bucket {
            endpoint: format!("http://{addr}"),
            addr,
            bucket,
        }
    }

    /// The keys in the bucket that start with `prefix` (up to a thousand).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let path = format!("/{}?list-type=2&prefix={prefix}", self.bucket);
        let (code, body) = http(self.addr, "GET", &path).expect("list bucket");
        assert_eq!(code, 200, "listing {path}: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }

    /// The environment `baithak serve` reads to use this bucket as its blob store.
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BAITHAK_BLOB_STORE", "s3".to_owned()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_BUCKET", self.bucket.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            // Path-style requests: the bucket is not a host name on 127.0.0.1.
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".to_owned()),
        ]
    }
}

impl Default for S3Bucket {
    fn default() -> Self {
        S3Bucket::new()
    }
}
