//! BlobStore on the local filesystem: round trips, idempotent puts, streaming
//! large files, and refusing content filed under the wrong digest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_media::{BlobError, BlobStore, Variant, sha256_of};

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// What every blob store must do with a photo: nothing there at first, stored (twice,
/// harmlessly), read back, a rendition beside it, the rendition deleted (twice,
/// harmlessly). Returns the photo's digest; the original stays.
async fn round_trip(store: &BlobStore) -> baithak_media::Sha256 {
    let bytes = common::photo("gps/DSCN0010.jpg");
    let sha = sha256_of(&bytes);
    assert!(!store.exists(Variant::Original, &sha).await.unwrap());
    assert_eq!(store.get(Variant::Original, &sha).await.unwrap(), None);
    for _ in 0..2 {
        store
            .put(Variant::Original, &sha, bytes.clone())
            .await
            .unwrap();
    }
    store
        .put(Variant::Thumb, &sha, b"thumb".to_vec())
        .await
        .unwrap();
    assert!(store.exists(Variant::Original, &sha).await.unwrap());
    assert!(store.exists(Variant::Thumb, &sha).await.unwrap());
    assert!(!store.exists(Variant::Display, &sha).await.unwrap());
    assert_eq!(
        store.get(Variant::Original, &sha).await.unwrap().unwrap(),
        bytes
    );
    assert_eq!(
        &store.get(Variant::Thumb, &sha).await.unwrap().unwrap()[..],
        b"thumb"
    );
    store.delete(Variant::Thumb, &sha).await.unwrap();
    store.delete(Variant::Thumb, &sha).await.unwrap();
    assert_eq!(store.get(Variant::Thumb, &sha).await.unwrap(), None);
    assert!(store.exists(Variant::Original, &sha).await.unwrap());
    sha
}

#[tokio::test]
async fn local_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("blobs/not/yet/there");
    let store = BlobStore::local(&root).unwrap();
    let hex = round_trip(&store).await.to_string();
    assert_eq!(
        files_under(&root),
        vec![format!("original/{}/{}/{hex}", &hex[..2], &hex[2..4])],
        "no staging files left behind"
    );
}

#[tokio::test]
async fn originals_must_match_their_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::local(tmp.path()).unwrap();
    let sha = sha256_of(b"the real photo");
    let err = store
        .put(Variant::Original, &sha, b"something else".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
    assert!(!store.exists(Variant::Original, &sha).await.unwrap());

    // Large file path (multipart) too: the object must never appear.
    let big = pseudo_random(9 * 1024 * 1024 + 123, 7);
    let file = tmp.path().join("upload.tmp");
    std::fs::write(&file, &big).unwrap();
    let err = store
        .put_file(Variant::Original, &sha, &file)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
    assert!(!store.exists(Variant::Original, &sha).await.unwrap());
    assert_eq!(files_under(tmp.path()), vec!["upload.tmp".to_string()]);
}

/// Stores files of these lengths (each twice, harmlessly) and reads each back whole.
async fn put_files(store: &BlobStore, dir: &std::path::Path, lens: &[usize]) {
    for &len in lens {
        let data = pseudo_random(len, len as u64);
        let sha = sha256_of(&data);
        let file = dir.join(format!("in-{len}"));
        std::fs::write(&file, &data).unwrap();
        for _ in 0..2 {
            store
                .put_file(Variant::Original, &sha, &file)
                .await
                .unwrap();
        }
        let back = store.get(Variant::Original, &sha).await.unwrap().unwrap();
        assert_eq!(back.len(), len);
        assert!(back == data, "content differs for {len} bytes");
    }
}

#[tokio::test]
async fn put_file_small_and_large() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::local(tmp.path().join("store")).unwrap();
    put_files(
        &store,
        tmp.path(),
        &[
            0,
            1,
            200_000,
            8 * 1024 * 1024,
            8 * 1024 * 1024 + 1,
            19 * 1024 * 1024 + 5,
        ],
    )
    .await;
    let leftovers: Vec<String> = files_under(&tmp.path().join("store"))
        .into_iter()
        .filter(|f| f.contains('#'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let missing = store
        .put_file(Variant::Thumb, &sha256_of(b""), tmp.path().join("nope"))
        .await
        .unwrap_err();
    assert!(matches!(missing, BlobError::Io { .. }), "{missing}");
}

#[test]
fn s3_without_a_bucket_is_a_config_error() {
    // Only meaningful where no S3 is configured; the variables cannot be
    // cleared here without `unsafe`.
    if ["AWS_BUCKET", "AWS_BUCKET_NAME"]
        .iter()
        .any(|k| std::env::var_os(k).is_some())
    {
        return;
    }
    let err = BlobStore::s3_from_env().unwrap_err();
    assert!(matches!(err, BlobError::Config(_)), "{err}");
}

/// Writes `len` pseudo-random bytes to a file in `dir` and hands it to a moving put;
/// returns the file's path, the digest and the bytes.
async fn moving_put(
    store: &BlobStore,
    dir: &std::path::Path,
    len: usize,
    seed: u64,
) -> (std::path::PathBuf, baithak_media::Sha256, Vec<u8>) {
    let data = pseudo_random(len, seed);
    let sha = sha256_of(&data);
    let file = dir.join("incoming.part");
    std::fs::write(&file, &data).unwrap();
    store
        .put_moving_file(Variant::Original, &sha, &file)
        .await
        .unwrap();
    (file, sha, data)
}

#[tokio::test]
async fn a_moving_put_takes_the_file_itself_on_a_local_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::local(tmp.path().join("store")).unwrap();
    let (file, sha, data) = moving_put(&store, tmp.path(), 200_000, 3).await;
    assert!(!file.exists(), "the file was moved, not copied");
    assert!(store.get(Variant::Original, &sha).await.unwrap().unwrap() == data);
    assert_eq!(
        files_under(&tmp.path().join("store")),
        vec![Variant::Original.key(&sha)]
    );

    // The same photo again (a retry that raced the first): same key, same bytes.
    std::fs::write(&file, &data).unwrap();
    store
        .put_moving_file(Variant::Original, &sha, &file)
        .await
        .unwrap();
    assert!(store.get(Variant::Original, &sha).await.unwrap().unwrap() == data);

    let gone = store
        .put_moving_file(Variant::Original, &sha256_of(b""), tmp.path().join("nope"))
        .await
        .unwrap_err();
    assert!(matches!(gone, BlobError::Io { .. }), "{gone}");
}

#[tokio::test]
async fn a_moving_or_linked_put_elsewhere_copies_and_checks_the_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
    let (file, sha, data) = moving_put(&store, tmp.path(), 1000, 5).await;
    assert!(file.exists(), "nothing to move it to");
    assert!(store.get(Variant::Original, &sha).await.unwrap().unwrap() == data);
    let err = store
        .put_moving_file(Variant::Original, &sha256_of(b"other"), &file)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
    // A linked put has nothing to link into either: the same copy and check.
    let err = store
        .put_linked_file(Variant::Original, &sha256_of(b"other"), &file)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
    let other = pseudo_random(2000, 6);
    let other_sha = sha256_of(&other);
    std::fs::write(&file, &other).unwrap();
    store
        .put_linked_file(Variant::Original, &other_sha, &file)
        .await
        .unwrap();
    assert!(file.exists(), "a linked put keeps the file");
    assert!(
        store
            .get(Variant::Original, &other_sha)
            .await
            .unwrap()
            .unwrap()
            == other
    );
}

#[tokio::test]
async fn a_linked_put_keeps_the_file_and_shares_its_bytes_on_a_local_store() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::local(tmp.path().join("store")).unwrap();
    let data = pseudo_random(300_000, 7);
    let sha = sha256_of(&data);
    let file = tmp.path().join("upload.part");
    std::fs::write(&file, &data).unwrap();
    store
        .put_linked_file(Variant::Original, &sha, &file)
        .await
        .unwrap();
    assert!(store.get(Variant::Original, &sha).await.unwrap().unwrap() == data);
    let blob = tmp.path().join("store").join(Variant::Original.key(&sha));
    assert_eq!(
        std::fs::metadata(&blob).unwrap().ino(),
        std::fs::metadata(&file).unwrap().ino(),
        "linked, not copied"
    );

    // A retry after the blob is in: the blob stands, the file stays.
    store
        .put_linked_file(Variant::Original, &sha, &file)
        .await
        .unwrap();
    // The part file goes once the upload is done; the blob keeps the bytes.
    std::fs::remove_file(&file).unwrap();
    assert!(store.get(Variant::Original, &sha).await.unwrap().unwrap() == data);
    assert_eq!(
        files_under(&tmp.path().join("store")),
        vec![Variant::Original.key(&sha)]
    );

    let gone = store
        .put_linked_file(Variant::Original, &sha256_of(b""), tmp.path().join("nope"))
        .await
        .unwrap_err();
    assert!(matches!(gone, BlobError::Io { .. }), "{gone}");
}

/// When a file cannot be put in place, the error names both ends: the operator needs
/// to know whether the upload's bytes or the store's directory is at fault.
#[tokio::test]
async fn a_failed_placing_names_the_file_and_where_it_was_going() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::local(tmp.path().join("store")).unwrap();
    let data = pseudo_random(10_000, 11);
    let sha = sha256_of(&data);
    let file = tmp.path().join("upload.part");
    std::fs::write(&file, &data).unwrap();
    // A file where the blob's fan-out directory belongs.
    let key = Variant::Original.key(&sha);
    let blocker = tmp
        .path()
        .join("store")
        .join(&key[..key.rfind('/').unwrap()]);
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();
    let err = store
        .put_linked_file(Variant::Original, &sha, &file)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BlobError::Io { .. }), "{msg}");
    assert!(msg.contains("upload.part"), "{msg}");
    assert!(
        msg.contains(&format!(
            "placing it at {}",
            tmp.path().join("store").display()
        )),
        "{msg}"
    );
}

/// The blob store on a real S3 API (moto): what the server does with an `s3` store.
fn s3_store(bucket: &baithak_test_support::s3::S3Bucket) -> BlobStore {
    use baithak_test_support::s3::{ACCESS_KEY, REGION, SECRET_KEY};
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&bucket.endpoint)
        .with_bucket_name(&bucket.bucket)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    BlobStore::new(std::sync::Arc::new(s3))
}

#[tokio::test]
async fn s3_round_trip() {
    let bucket = baithak_test_support::s3::S3Bucket::new();
    let store = s3_store(&bucket);
    let tmp = tempfile::tempdir().unwrap();

    round_trip(&store).await;
    let bytes = common::photo("gps/DSCN0010.jpg");
    let wrong = store
        .put(Variant::Original, &sha256_of(b"x"), bytes.clone())
        .await
        .unwrap_err();
    assert!(matches!(wrong, BlobError::DigestMismatch { .. }), "{wrong}");

    // Files above the multipart threshold go up in parts and come back whole.
    put_files(
        &store,
        tmp.path(),
        &[200_000, 8 * 1024 * 1024 + 1, 19 * 1024 * 1024 + 5],
    )
    .await;

    // A moving put has nothing to move into: it copies and keeps the file.
    let (file, sha, data) = moving_put(&store, tmp.path(), 50_000, 9).await;
    assert!(file.exists());
    assert!(store.get(Variant::Original, &sha).await.unwrap().unwrap() == data);

    store.delete(Variant::Original, &sha).await.unwrap();
    assert!(!store.exists(Variant::Original, &sha).await.unwrap());
    // Deleting what is not there is not an error.
    store.delete(Variant::Original, &sha).await.unwrap();
}

#[tokio::test]
async fn shared_parts_follow_byte_ranges() {
    let bucket = baithak_test_support::s3::S3Bucket::new();
    let parts = s3_store(&bucket)
        .shared_parts()
        .expect("an S3 store shares parts");
    assert!(
        BlobStore::local(tempfile::tempdir().unwrap().path())
            .unwrap()
            .shared_parts()
            .is_none(),
        "a local store keeps parts in files"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(3_000_000, 11);
    let piece = |from: usize, to: usize| bytes::Bytes::copy_from_slice(&data[from..to]);

    // A first attempt stored 0..1 MB and a cut-off 1..1.2 MB; the resend of 1 MB..
    // came in other sizes, overlapping what was there; an empty piece stores nothing.
    for (from, to) in [
        (0, 1_000_000),
        (1_000_000, 1_200_000),
        (1_000_000, 2_048_576),
        (2_048_576, 3_000_000),
        (2_048_576, 2_048_576),
    ] {
        parts
            .put("up1", from as u64, piece(from, to))
            .await
            .unwrap();
    }
    assert_eq!(bucket.keys("uploads/up1/").len(), 4);
    let dest = tmp.path().join("whole");
    let sha = parts.assemble("up1", 3_000_000, &dest).await.unwrap();
    assert_eq!(sha, sha256_of(&data));
    assert!(std::fs::read(&dest).unwrap() == data);
    // A shorter declared length takes just that prefix.
    let sha = parts.assemble("up1", 1_500_000, &dest).await.unwrap();
    assert_eq!(sha, sha256_of(&data[..1_500_000]));

    // A missing range is a gap at its first byte, not a short photo.
    parts.put("up2", 0, piece(0, 1000)).await.unwrap();
    parts.put("up2", 2000, piece(2000, 3000)).await.unwrap();
    let err = parts.assemble("up2", 3000, &dest).await.unwrap_err();
    assert!(
        matches!(err, baithak_media::PartsError::Gap { at: 1000 }),
        "{err}"
    );

    // Deleting one upload leaves the other; the sweep takes only what is old enough.
    parts.delete("up2").await.unwrap();
    assert_eq!(bucket.keys("uploads/up2/"), Vec::<String>::new());
    assert_eq!(bucket.keys("uploads/up1/").len(), 4);
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(parts.delete_stale(hour).await.unwrap(), 0);
    assert_eq!(bucket.keys("uploads/up1/").len(), 4);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        parts
            .delete_stale(std::time::Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(bucket.keys("uploads/"), Vec::<String>::new());
}
