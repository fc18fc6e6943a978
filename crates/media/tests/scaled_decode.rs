//! Big JPEGs are decoded at reduced scale: renditions keep their sizes, come
//! out upright, and the reported size is still the original's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_media::{IngestLimits, decode_scaled, fit_within, ingest, phash_distance};
use common::{decode_rgb, mean_abs_diff, photo};

#[test]
fn big_phone_photo_is_decoded_at_half_scale() {
    let bytes = photo("mobile/jolla.jpg");
    let limits = IngestLimits::default();
    let scaled = decode_scaled(&bytes, &limits).unwrap().unwrap();
    assert_eq!((scaled.width, scaled.height), (3264, 2448));
    assert_eq!(scaled.pixels.dimensions(), (1632, 1224));

    let got = ingest(&bytes, &limits).unwrap();
    assert_eq!((got.width, got.height), (3264, 2448));
    assert_eq!(decode_rgb(&got.display).dimensions(), (1280, 960));
    assert_eq!(decode_rgb(&got.thumb).dimensions(), (320, 240));

    // Small photos are left to the full-size decoder.
    assert!(
        decode_scaled(&photo("gps/DSCN0010.jpg"), &limits)
            .unwrap()
            .is_none()
    );
}

#[test]
fn scaled_decode_keeps_the_canvas_limits() {
    let bytes = photo("mobile/jolla.jpg");
    for limits in [
        IngestLimits {
            max_width: 3000,
            ..IngestLimits::default()
        },
        IngestLimits {
            max_pixels: 3264 * 2448 - 1,
            ..IngestLimits::default()
        },
        // The allocation cap counts what a full-size decode would need.
        IngestLimits {
            max_alloc: 3264 * 2448 * 3 - 1,
            ..IngestLimits::default()
        },
    ] {
        assert!(decode_scaled(&bytes, &limits).is_err(), "{limits:?}");
        assert!(ingest(&bytes, &limits).is_err(), "{limits:?}");
    }
}

/// The JPEG segments (marker included) whose marker is `marker`.
fn segments(jpeg: &[u8], marker: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if jpeg[i + 1] == marker {
            out.push(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out
}

/// The photo scaled up 5x (so it takes the scaled path), re-encoded, with
/// the original's EXIF segments (orientation included) put back.
fn enlarged(file: &str) -> Vec<u8> {
    let original = photo(file);
    let stored = image::load_from_memory(&original).unwrap().into_rgb8();
    let (w, h) = stored.dimensions();
    let big = image::imageops::resize(&stored, w * 5, h * 5, image::imageops::Triangle);
    let encoded = common::reencode(&big, 85);
    let mut out = encoded[..2].to_vec();
    for app1 in segments(&original, 0xE1) {
        out.extend_from_slice(app1);
    }
    out.extend_from_slice(&encoded[2..]);
    out
}

#[test]
fn big_rotated_photos_come_out_upright() {
    let limits = IngestLimits::default();
    for (reference, others, upright) in [
        (
            "landscape_1.jpg",
            &["landscape_3.jpg", "landscape_6.jpg", "landscape_8.jpg"][..],
            (3000, 2250),
        ),
        ("portrait_1.jpg", &["portrait_6.jpg"][..], (2250, 3000)),
    ] {
        let base_bytes = enlarged(&format!("orientation/{reference}"));
        assert!(decode_scaled(&base_bytes, &limits).unwrap().is_some());
        let base = ingest(&base_bytes, &limits).unwrap();
        assert_eq!((base.width, base.height), upright);
        let base_thumb = decode_rgb(&base.thumb);

        for file in others {
            let bytes = enlarged(&format!("orientation/{file}"));
            let scaled = decode_scaled(&bytes, &limits).unwrap().unwrap();
            // Stored sideways for 6 and 8; 1/2 scale covers 1280 either way.
            assert_eq!(scaled.pixels.width() * 2, scaled.width, "{file}");
            let got = ingest(&bytes, &limits).unwrap();
            assert_eq!((got.width, got.height), upright, "{file}");
            assert_eq!(
                decode_rgb(&got.display).dimensions(),
                fit_within(upright.0, upright.1, 1280),
                "{file}"
            );
            let thumb = decode_rgb(&got.thumb);
            assert_eq!(thumb.dimensions(), base_thumb.dimensions(), "{file}");
            let as_is = mean_abs_diff(&base_thumb, &thumb);
            let turned = [
                image::imageops::rotate180(&base_thumb),
                image::imageops::flip_horizontal(&base_thumb),
                image::imageops::flip_vertical(&base_thumb),
            ]
            .iter()
            .map(|t| mean_abs_diff(t, &thumb))
            .fold(f64::INFINITY, f64::min);
            let dist = phash_distance(base.phash, got.phash);
            println!(
                "{file}: mean abs diff {as_is:.2} (turned {turned:.2}), pHash distance {dist}"
            );
            assert!(as_is * 2.0 < turned, "{file} does not look upright");
            assert!(dist <= 6, "{file}: pHash distance {dist}");
        }
    }
}
