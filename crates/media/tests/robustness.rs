//! Hostile and broken input: refused quickly and clearly, never a panic or a
//! runaway allocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use baithak_media::{IngestError, IngestLimits, ingest};
use common::photo;

/// Generous: these should take about a millisecond. The point is "no decode
/// happened", not a performance target.
const BOMB_BUDGET: Duration = Duration::from_secs(1);

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

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A structurally valid PNG header declaring a `w`x`h` RGB canvas, with a
/// token IDAT: a few hundred bytes that would need gigabytes to decode.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes.
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A real small JPEG whose SOF is patched to claim `w`x`h`.
fn jpeg_bomb(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = common::reencode(
        &image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3])),
        80,
    );
    let sof = jpeg
        .windows(2)
        .position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2))
        .unwrap();
    // FFC0, length(2), precision(1), height(2), width(2).
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

fn assert_refused_fast(name: &str, bytes: &[u8]) -> String {
    let start = Instant::now();
    let result = ingest(bytes, &IngestLimits::default());
    let elapsed = start.elapsed();
    println!("{name}: {} bytes, {elapsed:?}, {result:?}", bytes.len());
    assert!(elapsed < BOMB_BUDGET, "{name} took {elapsed:?}");
    match result {
        Err(IngestError::InvalidImage(reason)) => reason,
        other => panic!("{name}: expected InvalidImage, got {other:?}"),
    }
}

#[test]
fn decompression_bombs_are_refused_before_decoding() {
    let reason = assert_refused_fast("png 50000x50000", &png_bomb(50_000, 50_000));
    assert!(reason.contains("50000x50000"), "{reason}");
    // Within the per-side limit but 121 MP.
    let reason = assert_refused_fast("png 11000x11000", &png_bomb(11_000, 11_000));
    assert!(reason.contains("pixels"), "{reason}");
    let reason = assert_refused_fast("jpeg 65000x65000", &jpeg_bomb(65_000, 65_000));
    assert!(reason.contains("65000x65000"), "{reason}");
    let reason = assert_refused_fast("jpeg 11900x11900", &jpeg_bomb(11_900, 11_900));
    assert!(reason.contains("pixels"), "{reason}");
    assert_refused_fast("png 0x0", &png_bomb(0, 0));
}

#[test]
fn configured_limits_apply() {
    let bytes = photo("gps/DSCN0010.jpg");
    let narrow = IngestLimits {
        max_width: 600,
        ..IngestLimits::default()
    };
    assert!(matches!(
        ingest(&bytes, &narrow),
        Err(IngestError::InvalidImage(_))
    ));
    let few_pixels = IngestLimits {
        max_pixels: 640 * 480 - 1,
        ..IngestLimits::default()
    };
    assert!(matches!(
        ingest(&bytes, &few_pixels),
        Err(IngestError::InvalidImage(_))
    ));
    let little_memory = IngestLimits {
        max_alloc: 640 * 480 * 3 - 1,
        ..IngestLimits::default()
    };
    assert!(matches!(
        ingest(&bytes, &little_memory),
        Err(IngestError::InvalidImage(_))
    ));
    let small_uploads = IngestLimits {
        max_bytes: 1000,
        ..IngestLimits::default()
    };
    assert_eq!(
        ingest(&bytes, &small_uploads),
        Err(IngestError::TooLarge {
            size: bytes.len() as u64,
            limit: 1000
        })
    );
    // Exactly at the limits is fine.
    let exact = IngestLimits {
        max_width: 640,
        max_height: 480,
        max_pixels: 640 * 480,
        max_alloc: 640 * 480 * 3,
        max_bytes: bytes.len() as u64,
    };
    assert!(ingest(&bytes, &exact).is_ok());
}

#[test]
fn broken_exif_files_answer_clearly() {
    for file in ["invalid/image01088.jpg", "invalid/image01551.jpg"] {
        let start = Instant::now();
        let result = ingest(&photo(file), &IngestLimits::default());
        let elapsed = start.elapsed();
        println!(
            "{file}: {elapsed:?} -> {:?}",
            result.as_ref().map(|i| (i.width, i.height))
        );
        assert!(elapsed < Duration::from_secs(5), "{file} took {elapsed:?}");
        if let Err(e) = &result {
            assert!(matches!(e, IngestError::InvalidImage(_)), "{file}: {e}");
        }
    }
}

/// Truncations of `original` at `cuts` and `rounds` copies with 8 deterministic
/// byte flips each: every one is ingested or refused as invalid, never a panic.
fn truncated_and_corrupted_copies_are_refused_cleanly(
    original: &[u8],
    cuts: &[usize],
    rounds: u32,
) {
    let limits = IngestLimits::default();
    for &cut in cuts {
        let result = ingest(&original[..cut], &limits);
        if let Err(e) = result {
            assert!(matches!(e, IngestError::InvalidImage(_)), "cut {cut}: {e}");
        }
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..rounds {
        let mut corrupt = original.to_vec();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pos = 3 + (state as usize) % (corrupt.len() - 3);
            corrupt[pos] = (state >> 32) as u8;
        }
        let result = ingest(&corrupt, &limits);
        if let Err(e) = result {
            assert!(
                matches!(e, IngestError::InvalidImage(_)),
                "round {round}: {e}"
            );
        }
    }
}

#[test]
fn truncated_and_corrupted_files_never_panic() {
    // A small upright JPEG: decoded at the thumbnail's scale.
    let original = photo("gps/DSCN0010.jpg");
    let cuts = [3, 4, 20, 100, 500, 2_000, 10_000, 50_000, 100_000];
    truncated_and_corrupted_copies_are_refused_cleanly(
        &original,
        &[&cuts[..], &[original.len() - 2]].concat(),
        40,
    );
    // An 8 MP phone photo: decoded at 1/2 scale.
    let big = photo("mobile/jolla.jpg");
    let cuts = [300, 60_000, 400_000];
    truncated_and_corrupted_copies_are_refused_cleanly(
        &big,
        &[&cuts[..], &[big.len() - 2]].concat(),
        6,
    );
    let limits = IngestLimits::default();
    // The same for a PNG.
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([x as u8, y as u8, 7])
    }))
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    for cut in [8, 16, 33, 40, png.len() / 2, png.len() - 1] {
        // Cutting only IEND may still decode; anything else must be InvalidImage.
        if let Err(e) = ingest(&png[..cut], &limits) {
            assert!(
                matches!(e, IngestError::InvalidImage(_)),
                "png cut {cut}: {e}"
            );
        }
    }
}
