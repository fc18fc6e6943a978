//! End to end: photos through the real binary. One-shot `PUT /v1/media/{sha256}`
//! (idempotent, verified, sniffed, bounded), reading back with `HEAD`/`GET` under the
//! visibility rules, and resumable `/v1/uploads` cut at several points, with the
//! shared real camera photos.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_media::sha256_of;
use baithak_test_support::Kind;
use baithak_test_support::s3::S3Bucket;
use common::{Server, env_refs, read, start, start_two_replicas};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

const PHOTOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/photos"
);

fn photo(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(PHOTOS).join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    sha256_of(bytes).to_hex()
}

/// Areas, and the cast: two in-charges of one assembly, their coordinator, an admin.
fn setup(s: &Server) {
    s.import_areas();
    s.add_user("ravi", "incharge", "LKO-AC1", PW);
    s.add_user("sita", "incharge", "LKO-AC1", PW);
    s.add_user("coord", "coordinator", "LKO", PW);
    s.add_user("admin", "admin", "UP", PW);
}

async fn put_photo(s: &Server, token: &str, sha: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let res = s
        .http
        .put(s.url(&format!("/v1/media/{sha}")))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT");
    read(res).await
}

async fn head_status(s: &Server, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = s.http.head(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("HEAD")
}

async fn get_bytes(s: &Server, token: &str, path: &str) -> reqwest::Response {
    s.http
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Width, height and whether an EXIF APP1 segment is present, from a JPEG's markers.
fn jpeg_facts(b: &[u8]) -> (u32, u32, bool) {
    assert_eq!(&b[..2], &[0xFF, 0xD8], "not a JPEG");
    let mut i = 2;
    let mut exif = false;
    loop {
        assert_eq!(b[i], 0xFF, "bad marker at {i}");
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        let seg = &b[i + 4..i + 2 + len];
        if marker == 0xE1 && seg.starts_with(b"Exif") {
            exif = true;
        }
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let h = u16::from_be_bytes([seg[1], seg[2]]);
            let w = u16::from_be_bytes([seg[3], seg[4]]);
            return (u32::from(w), u32::from(h), exif);
        }
        i += 2 + len;
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn assert_no_scratch_left(s: &Server) {
    let work = s.data_dir.join("work");
    assert_eq!(
        files_in(&work.join("incoming")),
        Vec::<String>::new(),
        "incoming/"
    );
    assert_eq!(
        files_in(&work.join("uploads")),
        Vec::<String>::new(),
        "uploads/"
    );
}

/// A PNG header declaring a `w`x`h` canvas over a token of data: a few dozen bytes
/// that would need tens of gigabytes to decode.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Sends a raw HTTP/1.1 request (for what reqwest will not do: a chunked body, a body
/// cut off mid-way) and returns the status code and the response head.
fn raw_http(s: &Server, head: &str, body: &[u8], then_close_write: bool) -> (u16, String) {
    let addr = s.base.strip_prefix("http://").unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let host = format!("Host: {addr}\r\n");
    let request = head.replacen("\r\n", &format!("\r\n{host}"), 1);
    conn.write_all(request.as_bytes()).unwrap();
    // The server may answer and stop reading before the whole body is sent.
    let _ = conn.write_all(body);
    if then_close_write {
        conn.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (code, text)
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The upload flow an app follows, and what each role then sees.
async fn flow(kind: Kind, env: &[(&str, &str)]) {
    let s = start(kind, env);
    setup(&s);
    let ravi = s.token("ravi", PW).await;
    let sita = s.token("sita", PW).await;
    let coord = s.token("coord", PW).await;
    let admin = s.token("admin", PW).await;

    // New photo: 201 with what EXIF says; a retry: 200, same body, nothing redone.
    let bytes = photo("gps/DSCN0010.jpg");
    let sha = hex(&bytes);
    let (st, first) = put_photo(&s, &ravi, &sha, &bytes).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    assert_eq!(first["sha256"], sha.as_str());
    assert_eq!(first["bytes"], bytes.len() as u64);
    assert_eq!(first["media_type"], "image/jpeg");
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(640), Some(480))
    );
    let lat = first["gps"]["lat"].as_f64().unwrap();
    let lon = first["gps"]["lon"].as_f64().unwrap();
    assert!(
        (lat - 43.467_448).abs() < 1e-5 && (lon - 11.885_127).abs() < 1e-5,
        "{first}"
    );
    // The camera recorded no UTC offset: wall-clock time, never passed off as UTC.
    assert_eq!(first["taken_at_local"], "2008-10-22T16:28:39", "{first}");
    assert!(first.get("taken_at").is_none(), "{first}");
    let phash = first["phash"].as_str().unwrap();
    assert!(phash.len() == 16 && phash.bytes().all(|b| b.is_ascii_hexdigit()));
    let (st, again) = put_photo(&s, &ravi, &sha, &bytes).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    // The retry is answered before the body is read, so even a wrong body is not looked at.
    let (st, _) = put_photo(&s, &ravi, &sha, b"not read").await;
    assert_eq!(st, StatusCode::OK);

    // The same photo sent by someone who cannot see it yet must prove it has the bytes.
    let (st, body) = put_photo(&s, &sita, &sha, b"not the photo").await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("hash_mismatch"))
    );
    let (st, body) = put_photo(&s, &sita, &sha, &bytes).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body, first);

    // HEAD: both in-charges who sent the bytes see it; a coordinator without a meeting
    // using it, and an admin do not; without a token, 401.
    let path = format!("/v1/media/{sha}");
    for uploader in [&ravi, &sita] {
        assert_eq!(
            head_status(&s, Some(uploader), &path).await.status(),
            StatusCode::OK
        );
    }
    for other in [&coord, &admin] {
        assert_eq!(
            head_status(&s, Some(other), &path).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        head_status(&s, None, &path).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let unknown = format!("/v1/media/{}", hex(b"never uploaded"));
    assert_eq!(
        head_status(&s, Some(&ravi), &unknown).await.status(),
        StatusCode::NOT_FOUND
    );

    // GET: the original byte for byte; the renditions upright, small, without EXIF.
    let res = get_bytes(&s, &ravi, &format!("{path}?variant=original")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "image/jpeg");
    assert_eq!(
        header(&res, "cache-control"),
        "private, max-age=31536000, immutable"
    );
    let etag = header(&res, "etag");
    assert_eq!(&res.bytes().await.unwrap()[..], &bytes[..]);
    let res = s
        .http
        .get(s.url(&format!("{path}?variant=original")))
        .bearer_auth(&ravi)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    for (query, max_side) in [
        ("?variant=thumb", 320),
        ("?variant=display", 1280),
        ("", 1280),
    ] {
        let res = get_bytes(&s, &ravi, &format!("{path}{query}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{query}");
        assert_eq!(header(&res, "content-type"), "image/jpeg");
        assert_ne!(header(&res, "etag"), etag);
        let jpeg = res.bytes().await.unwrap();
        let (w, h, exif) = jpeg_facts(&jpeg);
        assert!(
            w.max(h) <= max_side && w.max(h) >= max_side.min(640) - 1,
            "{query}: {w}x{h}"
        );
        assert!(w > h, "{query}: still landscape");
        assert!(!exif, "{query}: EXIF must be stripped");
        assert!(
            !jpeg.windows(4).any(|w| w == b"Exif"),
            "{query}: no Exif bytes at all"
        );
    }
    for other in [&coord, &admin] {
        let res = get_bytes(&s, other, &path).await;
        assert_eq!(read(res).await.0, StatusCode::NOT_FOUND);
    }
    let (st, body) = read(get_bytes(&s, &ravi, &format!("{path}?variant=huge")).await).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");

    // Orientation is applied: stored sideways with EXIF orientation 6, shown upright.
    let sideways = photo("orientation/portrait_6.jpg");
    let (st, info) = put_photo(&s, &ravi, &hex(&sideways), &sideways).await;
    assert_eq!(st, StatusCode::CREATED, "{info}");
    assert!(info["height"].as_u64() > info["width"].as_u64(), "{info}");
    let res = get_bytes(
        &s,
        &ravi,
        &format!("/v1/media/{}?variant=thumb", hex(&sideways)),
    )
    .await;
    let (w, h, _) = jpeg_facts(&res.bytes().await.unwrap());
    assert!(h > w && h <= 320, "portrait thumb {w}x{h}");

    // Many devices racing with one new photo: exactly one 201.
    let racing = photo("gps/DSCN0012.jpg");
    let racing_sha = hex(&racing);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (http, url, token, body) = (
            s.http.clone(),
            s.url(&format!("/v1/media/{racing_sha}")),
            ravi.clone(),
            racing.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = http
                .put(url)
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .unwrap();
            read(res).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (st, body) = t.await.unwrap();
        assert!(
            st == StatusCode::CREATED || st == StatusCode::OK,
            "{st}: {body}"
        );
        assert_eq!(body["sha256"], racing_sha.as_str());
        created += usize::from(st == StatusCode::CREATED);
    }
    assert_eq!(created, 1);

    assert_no_scratch_left(&s);
}

#[tokio::test]
async fn photos_on_sqlite() {
    flow(Kind::Sqlite, &[]).await;
}

#[tokio::test]
async fn photos_on_postgres() {
    flow(Kind::Postgres, &[]).await;
}

/// The same with the photos in an S3 bucket, as replicas behind a load balancer run.
#[tokio::test]
async fn photos_on_s3() {
    let bucket = S3Bucket::new();
    let env = bucket.server_env();
    let env = env_refs(&env);
    flow(Kind::Postgres, &env).await;
    assert_eq!(bucket.keys("thumb/").len(), bucket.keys("original/").len());
    assert!(!bucket.keys("display/").is_empty());
}

#[tokio::test]
async fn bad_photos_are_refused_clearly() {
    let s = start(Kind::Sqlite, &[]);
    setup(&s);
    let ravi = s.token("ravi", PW).await;
    let bytes = photo("gps/DSCN0021.jpg");

    let (st, body) = put_photo(&s, &ravi, "ABC", &bytes).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_sha256"))
    );
    let upper = hex(&bytes).to_uppercase();
    let (st, body) = put_photo(&s, &ravi, &upper, &bytes).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_sha256"))
    );

    // The body must hash to the path.
    let (st, body) = put_photo(&s, &ravi, &hex(b"something else"), &bytes).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("hash_mismatch"))
    );

    // The type comes from the bytes, whatever Content-Type says.
    let text = b"GIF89a is not accepted, and neither is plain text".to_vec();
    let (st, body) = put_photo(&s, &ravi, &hex(&text), &text).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );

    // Broken files get a clear answer, quickly. The two in invalid/ have broken EXIF
    // over decodable pixels: they are photos, so they are stored, their EXIF ignored.
    for file in ["invalid/image01088.jpg", "invalid/image01551.jpg"] {
        let b = photo(file);
        let started = Instant::now();
        let (st, body) = put_photo(&s, &ravi, &hex(&b), &b).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{file} took too long"
        );
        assert_eq!(st, StatusCode::CREATED, "{file}: {body}");
        assert!(body["width"].as_u64() > Some(0), "{file}: {body}");
    }
    // ...while a truncated JPEG and a JPEG-looking header over garbage are not images.
    let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xE0];
    garbage.extend(std::iter::repeat_n(0x5A, 4000));
    let (st, body) = put_photo(&s, &ravi, &hex(&garbage), &garbage).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_image")),
        "{body}"
    );
    let truncated = &bytes[..600];
    let (st, body) = put_photo(&s, &ravi, &hex(truncated), truncated).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_image")),
        "{body}"
    );

    // A decompression bomb: 10^10 pixels declared in 70 bytes, refused before decoding.
    let bomb = png_bomb(100_000, 100_000);
    let started = Instant::now();
    let (st, body) = put_photo(&s, &ravi, &hex(&bomb), &bomb).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_image")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bomb took {:?}",
        started.elapsed()
    );

    // Nothing refused was stored, and the server is still fine.
    for b in [&text, &garbage, &bomb] {
        let path = format!("/v1/media/{}", hex(b));
        assert_eq!(
            head_status(&s, Some(&ravi), &path).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    let (st, _) = put_photo(&s, &ravi, &hex(&bytes), &bytes).await;
    assert_eq!(st, StatusCode::CREATED);
    assert_no_scratch_left(&s);
}

#[tokio::test]
async fn photos_over_the_byte_limit_get_413() {
    let s = start(Kind::Sqlite, &[("BAITHAK_MAX_PHOTO_BYTES", "100000")]);
    setup(&s);
    let ravi = s.token("ravi", PW).await;

    // Under the limit: fine.
    let small = photo("exif-org/sony-d700.jpg");
    assert!(small.len() < 100_000);
    let (st, body) = put_photo(&s, &ravi, &hex(&small), &small).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    // Declared too long: refused before the body is read.
    let big = photo("gps/DSCN0025.jpg");
    assert!(big.len() > 100_000);
    let (st, body) = put_photo(&s, &ravi, &hex(&big), &big).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    // No length declared (chunked): counted while streaming, stopped at the limit.
    let head = format!(
        "PUT /v1/media/{} HTTP/1.1\r\nAuthorization: Bearer {ravi}\r\n\
         Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n",
        hex(&big)
    );
    let (code, response) = raw_http(&s, &head, &chunked(&big, 16 * 1024), false);
    assert_eq!(code, 413, "{response}");

    // A resumable upload cannot announce more either.
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&ravi),
            Some(json!({"sha256": hex(&big), "length": big.len()})),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    assert_eq!(
        head_status(&s, Some(&ravi), &format!("/v1/media/{}", hex(&big)))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_no_scratch_left(&s);
}

async fn patch_chunk(
    s: &Server,
    token: &str,
    id: &str,
    offset: usize,
    chunk: &[u8],
) -> (StatusCode, Option<u64>, Value) {
    let res = s
        .http
        .patch(s.url(&format!("/v1/uploads/{id}")))
        .bearer_auth(token)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(chunk.to_vec())
        .send()
        .await
        .expect("PATCH");
    let offset = res
        .headers()
        .get("upload-offset")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let (st, body) = read(res).await;
    (st, offset, body)
}

async fn upload_head(s: &Server, token: &str, id: &str) -> (StatusCode, Option<u64>, Option<u64>) {
    let res = head_status(s, Some(token), &format!("/v1/uploads/{id}")).await;
    let num = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
    };
    (res.status(), num("upload-offset"), num("upload-length"))
}

/// A resumable upload cut at several points. Requests alternate between `s` and `t`
/// (the same server, or two replicas of one deployment); with `bucket`, the blob
/// store is that S3 bucket and no upload piece may be left in it at the end.
async fn resumable_flow(s: &Server, t: &Server, bucket: Option<&S3Bucket>) {
    setup(s);
    let ravi = s.token("ravi", PW).await;
    let sita = s.token("sita", PW).await;
    let bytes = photo("mobile/jolla.jpg");
    let sha = hex(&bytes);
    let len = bytes.len();

    let (st, body) = s
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&ravi),
            Some(json!({"sha256": sha, "length": len})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["offset"].as_u64(), body["complete"].as_bool()),
        (Some(0), Some(false))
    );
    assert!(body["expires_at"].is_string(), "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (st, off, total) = upload_head(t, &ravi, &id).await;
    assert_eq!(
        (st, off, total),
        (StatusCode::OK, Some(0), Some(len as u64))
    );

    // Someone else's upload does not exist for them.
    assert_eq!(upload_head(s, &sita, &id).await.0, StatusCode::NOT_FOUND);
    let (st, _, _) = patch_chunk(s, &sita, &id, 0, &bytes[..10]).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // The offset header is required.
    let res = s
        .http
        .patch(s.url(&format!("/v1/uploads/{id}")))
        .bearer_auth(&ravi)
        .body(bytes[..10].to_vec())
        .send()
        .await
        .unwrap();
    let (st, body) = read(res).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_upload_offset"))
    );

    // Cut at three points: four chunks, each acknowledged with the new offset.
    let cuts = [0, 100_000, 350_001, 600_000, len];
    for (n, w) in cuts.windows(2).enumerate().take(2) {
        let to = if n % 2 == 0 { s } else { t };
        let (st, off, body) = patch_chunk(to, &ravi, &id, w[0], &bytes[w[0]..w[1]]).await;
        assert_eq!(
            (st, off),
            (StatusCode::OK, Some(w[1] as u64)),
            "chunk {n}: {body}"
        );
        assert_eq!(body["offset"], w[1] as u64);
        assert_eq!(body["complete"], false);
    }
    // The phone did not hear the answer and resends the first chunk: 409 tells it where
    // the upload really is, and nothing is written twice.
    let (st, off, body) = patch_chunk(t, &ravi, &id, 0, &bytes[..100_000]).await;
    assert_eq!((st, off), (StatusCode::CONFLICT, Some(350_001)), "{body}");
    assert_eq!(body["code"], "offset_mismatch");
    let (st, off, _) = upload_head(s, &ravi, &id).await;
    assert_eq!((st, off), (StatusCode::OK, Some(350_001)));

    // A chunk running past the declared length is refused and changes nothing.
    let mut too_long = bytes[350_001..].to_vec();
    too_long.extend_from_slice(b"extra");
    let (st, _, body) = patch_chunk(t, &ravi, &id, 350_001, &too_long).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("beyond_upload_length"))
    );

    // The connection drops part-way through the third chunk: what arrived is kept.
    let third = &bytes[350_001..600_000];
    let head = format!(
        "PATCH /v1/uploads/{id} HTTP/1.1\r\nAuthorization: Bearer {ravi}\r\n\
         Upload-Offset: 350001\r\nContent-Length: {}\r\n\r\n",
        third.len()
    );
    let (code, response) = raw_http(t, &head, &third[..120_000], true);
    assert_eq!(code, 400, "{response}");
    let (st, off, _) = upload_head(s, &ravi, &id).await;
    assert_eq!((st, off), (StatusCode::OK, Some(470_001)));

    // Resume from there to the end.
    let (st, off, _) = patch_chunk(s, &ravi, &id, 470_001, &bytes[470_001..600_000]).await;
    assert_eq!((st, off), (StatusCode::OK, Some(600_000)));
    let (st, off, done) = patch_chunk(t, &ravi, &id, 600_000, &bytes[600_000..]).await;
    assert_eq!((st, off), (StatusCode::OK, Some(len as u64)), "{done}");
    assert_eq!(done["complete"], true);
    assert_eq!(done["media"]["sha256"], sha.as_str());
    assert_eq!(done["media"]["bytes"], len as u64);

    // Finished uploads are forgotten; the photo is there, byte for byte.
    assert_eq!(upload_head(s, &ravi, &id).await.0, StatusCode::NOT_FOUND);
    for server in [s, t] {
        let res = get_bytes(server, &ravi, &format!("/v1/media/{sha}?variant=original")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(&res.bytes().await.unwrap()[..], &bytes[..]);
    }
    // Announcing it again needs no bytes.
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&ravi),
            Some(json!({"sha256": sha, "length": len})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        (body["complete"].as_bool(), &body["id"]),
        (Some(true), &Value::Null)
    );
    assert_eq!(body["media"]["sha256"], sha.as_str());

    // Bytes that do not hash to the announced SHA-256: refused, and the upload dropped.
    let other = photo("Canon_40D.jpg");
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&ravi),
            Some(json!({"sha256": hex(b"a different photo"), "length": other.len()})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let bad_id = body["id"].as_str().unwrap().to_owned();
    let half = other.len() / 2;
    assert_eq!(
        patch_chunk(s, &ravi, &bad_id, 0, &other[..half]).await.0,
        StatusCode::OK
    );
    let (st, _, body) = patch_chunk(t, &ravi, &bad_id, half, &other[half..]).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("hash_mismatch"))
    );
    assert_eq!(
        upload_head(s, &ravi, &bad_id).await.0,
        StatusCode::NOT_FOUND
    );

    // Validation of the announcement.
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&ravi),
            Some(json!({"sha256": "nope", "length": 5})),
        )
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_sha256"))
    );
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&ravi),
            Some(json!({"sha256": hex(b"x"), "length": 0})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/uploads",
            None,
            Some(json!({"sha256": hex(b"x"), "length": 5})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    assert_no_scratch_left(s);
    assert_no_scratch_left(t);
    if let Some(bucket) = bucket {
        assert_eq!(
            bucket.keys("uploads/"),
            Vec::<String>::new(),
            "upload pieces left"
        );
        let original = format!("original/{}/{}/{sha}", &sha[0..2], &sha[2..4]);
        assert_eq!(bucket.keys(&original), vec![original.clone()]);
    }
}

#[tokio::test]
async fn resumable_upload_survives_cuts() {
    let s = start(Kind::Sqlite, &[]);
    resumable_flow(&s, &s, None).await;
}

#[tokio::test]
async fn resumable_upload_on_s3_survives_cuts() {
    let bucket = S3Bucket::new();
    let env = bucket.server_env();
    let env = env_refs(&env);
    let s = start(Kind::Postgres, &env);
    resumable_flow(&s, &s, Some(&bucket)).await;
}

/// Two replicas on one database and one bucket, each with a work dir of its own: an
/// upload started on one continues and finishes on the other, chunk by chunk.
#[tokio::test]
async fn replicas_share_resumable_uploads() {
    let bucket = S3Bucket::new();
    let (a, b) = start_two_replicas(&bucket);
    resumable_flow(&a, &b, Some(&bucket)).await;
}

/// Begins a resumable upload of `len` bytes hashing to `sha`; its id.
async fn new_upload(s: &Server, token: &str, sha: &str, len: usize) -> String {
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/uploads",
            Some(token),
            Some(json!({"sha256": sha, "length": len})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Sends `bytes[from..]` as two chunks split at `mid`, which finishes the upload; the
/// stored original must be exactly `bytes`, and no scratch file left behind.
async fn finish_in_two_chunks(
    s: &Server,
    token: &str,
    id: &str,
    bytes: &[u8],
    from: usize,
    mid: usize,
) {
    let (sha, len) = (hex(bytes), bytes.len());
    let (st, off, _) = patch_chunk(s, token, id, from, &bytes[from..mid]).await;
    assert_eq!((st, off), (StatusCode::OK, Some(mid as u64)));
    let (st, off, done) = patch_chunk(s, token, id, mid, &bytes[mid..]).await;
    assert_eq!((st, off), (StatusCode::OK, Some(len as u64)), "{done}");
    assert_eq!(done["media"]["sha256"], sha.as_str());
    let res = get_bytes(s, token, &format!("/v1/media/{sha}?variant=original")).await;
    assert_eq!(&res.bytes().await.unwrap()[..], bytes);
    assert_no_scratch_left(s);
}

/// Ravi's resumable upload of the photo at `file`, its first `1 / parts` sent: his
/// token, the photo's bytes and the upload's id.
async fn upload_begun(s: &Server, file: &str, parts: usize) -> (String, Vec<u8>, String) {
    setup(s);
    let ravi = s.token("ravi", PW).await;
    let bytes = photo(file);
    let id = new_upload(s, &ravi, &hex(&bytes), bytes.len()).await;
    let first = &bytes[..bytes.len() / parts];
    assert_eq!(patch_chunk(s, &ravi, &id, 0, first).await.0, StatusCode::OK);
    (ravi, bytes, id)
}

/// The last chunk is recorded together with its photo, not on its own. When the photo
/// cannot be stored, the chunk is still kept and recorded, so the phone's retry is an
/// empty `PATCH` at the final offset, not the chunk again.
#[tokio::test]
async fn a_last_chunk_whose_photo_cannot_be_stored_is_kept_for_an_empty_retry() {
    let s = start(Kind::Sqlite, &[]);
    let (ravi, bytes, id) = upload_begun(&s, "gps/DSCN0012.jpg", 2).await;
    let (sha, len) = (hex(&bytes), bytes.len());
    let half = len / 2;

    // A file where the original's fan-out directory belongs: storing it fails.
    let blocker = s.data_dir.join("photos/original").join(&sha[0..2]);
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();
    let (st, _, body) = patch_chunk(&s, &ravi, &id, half, &bytes[half..]).await;
    assert!(st.is_server_error(), "{st}: {body}");
    let (st, off, _) = upload_head(&s, &ravi, &id).await;
    assert_eq!((st, off), (StatusCode::OK, Some(len as u64)), "chunk kept");
    let (st, _) = s
        .call(Method::GET, &format!("/v1/media/{sha}"), Some(&ravi), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing recorded");

    std::fs::remove_file(&blocker).unwrap();
    let (st, off, done) = patch_chunk(&s, &ravi, &id, len, &[]).await;
    assert_eq!((st, off), (StatusCode::OK, Some(len as u64)), "{done}");
    assert_eq!(done["complete"], true);
    assert_eq!(done["media"]["sha256"], sha.as_str());
    let res = get_bytes(&s, &ravi, &format!("/v1/media/{sha}?variant=original")).await;
    assert_eq!(&res.bytes().await.unwrap()[..], &bytes[..]);
    assert_eq!(upload_head(&s, &ravi, &id).await.0, StatusCode::NOT_FOUND);
    assert_no_scratch_left(&s);
}

/// A crash after the last chunk was written but before its photo was recorded leaves
/// the upload at the chunk's start and the part file holding bytes past it (the
/// chunk's, or whatever the disk kept of them). The phone resends from there, even in
/// smaller chunks, and the photo stored is exactly its bytes.
#[tokio::test]
async fn a_last_chunk_lost_in_a_crash_is_sent_again_over_what_it_left() {
    let mut s = start(Kind::Sqlite, &[]);
    let (_, bytes, id) = upload_begun(&s, "Nikon_D70.jpg", 3).await;
    let len = bytes.len();
    let third = len / 3;
    s.kill_and_restart();
    // What the crash left: the rest of the file written, not as sent.
    let part = s.data_dir.join("work/uploads").join(id.replace('-', ""));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .unwrap();
    file.write_all(&vec![0xA5; len - third]).unwrap();
    drop(file);
    let ravi = s.token("ravi", PW).await;
    assert_eq!(upload_head(&s, &ravi, &id).await.1, Some(third as u64));

    finish_in_two_chunks(&s, &ravi, &id, &bytes, third, 2 * third).await;
}

/// A full disk is the operator's to fix, not a fault of the photo: a chunk that cannot
/// be written is a 503 with `Retry-After` (not a 500), the upload stays where it was,
/// and the same chunk goes through once there is room.
#[tokio::test]
async fn a_chunk_that_meets_a_full_disk_is_refused_for_a_retry() {
    let s = start(Kind::Sqlite, &[]);
    setup(&s);
    let ravi = s.token("ravi", PW).await;
    let bytes = photo("gps/DSCN0012.jpg");
    let (sha, len) = (hex(&bytes), bytes.len());
    let half = len / 2;
    let id = new_upload(&s, &ravi, &sha, len).await;

    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    let part = s.data_dir.join("work/uploads").join(id.replace('-', ""));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/full", &part).unwrap();
    let res = s
        .http
        .patch(s.url(&format!("/v1/uploads/{id}")))
        .bearer_auth(&ravi)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(bytes[..half].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let (_, problem) = read(res).await;
    assert_eq!(problem["code"], "unavailable", "{problem}");
    assert_eq!(upload_head(&s, &ravi, &id).await.1, Some(0));

    std::fs::remove_file(&part).unwrap();
    finish_in_two_chunks(&s, &ravi, &id, &bytes, 0, half).await;
}

/// A photo someone else stored, uploaded again in chunks: the bytes must still be the
/// photo's (wrong ones end the upload and show the photo to nobody new), and the right
/// ones make it the uploader's to see, as a `PUT` of them would.
#[tokio::test]
async fn a_resumable_upload_of_a_stored_photo_proves_its_bytes() {
    let s = start(Kind::Sqlite, &[]);
    setup(&s);
    let (ravi, sita) = (s.token("ravi", PW).await, s.token("sita", PW).await);
    let bytes = photo("gps/DSCN0012.jpg");
    let (sha, len) = (hex(&bytes), bytes.len());
    let (st, body) = put_photo(&s, &sita, &sha, &bytes).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let photo_path = format!("/v1/media/{sha}");
    let (st, _) = s.call(Method::GET, &photo_path, Some(&ravi), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "not ravi's yet");

    let mut forged = bytes.clone();
    forged[len / 2] ^= 0xFF;
    let id = new_upload(&s, &ravi, &sha, len).await;
    let (st, _, body) = patch_chunk(&s, &ravi, &id, 0, &forged).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("hash_mismatch"))
    );
    assert_eq!(upload_head(&s, &ravi, &id).await.0, StatusCode::NOT_FOUND);
    let (st, _) = s.call(Method::GET, &photo_path, Some(&ravi), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "wrong bytes prove nothing");

    let id = new_upload(&s, &ravi, &sha, len).await;
    let (st, off, done) = patch_chunk(&s, &ravi, &id, 0, &bytes).await;
    assert_eq!((st, off), (StatusCode::OK, Some(len as u64)), "{done}");
    assert_eq!(done["media"]["sha256"], sha.as_str());
    let (st, body) = s.call(Method::GET, &photo_path, Some(&ravi), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_no_scratch_left(&s);
}

/// A photo while the object store at `port` cannot store it: a 503 with
/// `Retry-After` within `within`, and nothing recorded; a resumable chunk likewise,
/// its offset unmoved.
async fn object_store_down(port: u16, extra: &[(&'static str, String)], within: Duration) {
    let mut env = vec![
        ("BAITHAK_BLOB_STORE", "s3".to_owned()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_BUCKET", "nowhere".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let s = start(Kind::Sqlite, &env_refs(&env));
    setup(&s);
    let ravi = s.token("ravi", PW).await;
    let bytes = photo("gps/DSCN0010.jpg");
    let sha = hex(&bytes);
    let started = Instant::now();
    let res = s
        .http
        .put(s.url(&format!("/v1/media/{sha}")))
        .bearer_auth(&ravi)
        .header("content-type", "image/jpeg")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert!(took < within, "took {took:?}");
    let (st, _) = s
        .call(Method::GET, &format!("/v1/media/{sha}"), Some(&ravi), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing recorded");

    // A resumable chunk: refused the same way, the offset unmoved.
    let id = new_upload(&s, &ravi, &sha, bytes.len()).await;
    let (st, _, _) = patch_chunk(&s, &ravi, &id, 0, &bytes[..50_000]).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upload_head(&s, &ravi, &id).await.1, Some(0));
}

/// Nothing listens at the object store's address.
#[tokio::test]
async fn an_unreachable_object_store_is_503_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    object_store_down(port, &[], Duration::from_secs(20)).await;
}

/// The object store takes connections and never answers: each request gives up after
/// `AWS_TIMEOUT`, and the retries stop 15 s after the first try.
#[tokio::test]
async fn a_silent_object_store_is_503_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    object_store_down(
        port,
        &[("AWS_TIMEOUT", "2s".to_owned())],
        Duration::from_secs(20),
    )
    .await;
}

/// After a power cut a phone's outbox may have lost its note that a photo is up (that
/// note is not flushed to flash), and the app may have deleted the photo's file once it
/// was up. The server has the photo, so its meeting still goes through; a photo that is
/// gone from the phone and never reached the server rejects its meeting, clearly.
#[tokio::test]
async fn a_meeting_goes_through_when_its_photo_file_is_gone_but_the_server_has_it() {
    use baithak_api_types::MeetingData;
    use baithak_client::{ClientOptions, Device};
    use secrecy::SecretString;

    let s = start(Kind::Sqlite, &[]);
    setup(&s);
    let dir = tempfile::tempdir().unwrap();
    let opts = ClientOptions {
        base_url: s.base.clone(),
        ..ClientOptions::default()
    };
    let device = Device::open(dir.path().join("outbox.db"), opts)
        .await
        .unwrap();
    let me = device
        .login("ravi", &SecretString::from(PW), true)
        .await
        .unwrap();

    let (up, lost) = (photo("gps/DSCN0010.jpg"), photo("gps/DSCN0021.jpg"));
    let (up_file, lost_file) = (dir.path().join("up.jpg"), dir.path().join("lost.jpg"));
    std::fs::write(&up_file, &up).unwrap();
    std::fs::write(&lost_file, &lost).unwrap();
    let meeting = |hours_ago: i64| MeetingData {
        id: uuid::Uuid::now_v7(),
        kind: "small_meeting".into(),
        occurred_at: (chrono::Utc::now() - chrono::Duration::hours(hours_ago)).fixed_offset(),
        ended_at: None,
        area_id: me.area_id,
        location: None,
        attendee_count: 12,
        topic: "water".into(),
        notes: String::new(),
        photos: Vec::new(),
        base_version: None,
    };
    let kept = device
        .record_meeting(meeting(3), std::slice::from_ref(&up_file))
        .await
        .unwrap();
    let dropped = device
        .record_meeting(meeting(2), std::slice::from_ref(&lost_file))
        .await
        .unwrap();
    // The first photo reached the server, but the outbox does not know it; then the
    // app deleted both files.
    device
        .client()
        .put_media(&hex(&up), bytes::Bytes::from(up.clone()))
        .await
        .unwrap();
    std::fs::remove_file(&up_file).unwrap();
    std::fs::remove_file(&lost_file).unwrap();

    let report = device.sync().await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let counts = device.counts().await.unwrap();
    assert_eq!((counts.pending, counts.done, counts.rejected), (0, 1, 1));
    assert_eq!((counts.photos_uploaded, counts.photos_failed), (1, 1));
    let rejected = device.outbox().rejected().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].entity_id, dropped.entity_id);
    assert_eq!(rejected[0].code, "photo_file_missing");

    let token = s.token("coord", PW).await;
    let (status, body) = s
        .call(
            Method::GET,
            &format!("/v1/meetings/{}", kept.entity_id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["photos"][0]["sha256"], hex(&up));
    let (status, _) = s
        .call(
            Method::GET,
            &format!("/v1/meetings/{}", dropped.entity_id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
