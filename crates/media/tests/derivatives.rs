//! Renditions: upright, right-sized, never upscaled, free of metadata; and
//! which formats are accepted at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_media::{
    IngestError, IngestLimits, MediaType, ingest, phash_distance, read_exif, sha256_of,
};
use common::{all_photos, decode_rgb, ingest_photo, jpeg_header_markers, mean_abs_diff, photo};

/// Mean difference from `reference` itself, and the smallest difference from
/// any mirrored or half-turned version of it. The images carry different
/// digit labels, so "identical" is not expected, only "closest as is".
fn upright_vs_turned(reference: &image::RgbImage, thumb: &image::RgbImage) -> (f64, f64) {
    use image::imageops::{flip_horizontal, flip_vertical, rotate180};
    let as_is = mean_abs_diff(reference, thumb);
    let turned = [
        rotate180(reference),
        flip_horizontal(reference),
        flip_vertical(reference),
    ]
    .iter()
    .map(|t| mean_abs_diff(t, thumb))
    .fold(f64::INFINITY, f64::min);
    (as_is, turned)
}

#[test]
fn orientations_come_out_upright() {
    for (reference, others, upright_dims, thumb_dims) in [
        (
            "landscape_1.jpg",
            &["landscape_3.jpg", "landscape_6.jpg", "landscape_8.jpg"][..],
            (600, 450),
            (320, 240),
        ),
        (
            "portrait_1.jpg",
            &["portrait_6.jpg"][..],
            (450, 600),
            (240, 320),
        ),
    ] {
        let base = ingest_photo(&format!("orientation/{reference}"));
        let base_thumb = decode_rgb(&base.thumb);
        assert_eq!((base.width, base.height), upright_dims);
        assert_eq!(base_thumb.dimensions(), thumb_dims);

        for file in others {
            let got = ingest_photo(&format!("orientation/{file}"));
            assert_eq!((got.width, got.height), upright_dims, "{file}");
            let thumb = decode_rgb(&got.thumb);
            assert_eq!(thumb.dimensions(), thumb_dims, "{file}");
            assert_eq!(
                decode_rgb(&got.display).dimensions(),
                upright_dims,
                "{file}"
            );
            let (as_is, turned) = upright_vs_turned(&base_thumb, &thumb);
            let dist = phash_distance(base.phash, got.phash);
            println!(
                "{file}: mean abs diff {as_is:.2} (best mirrored/turned: {turned:.2}), pHash distance {dist}"
            );
            assert!(as_is * 2.0 < turned, "{file} does not look upright");
            assert!(dist <= 6, "{file}: pHash distance {dist}");
        }
    }
}

#[test]
fn renditions_carry_no_metadata() {
    for file in all_photos() {
        let Ok(got) = ingest(&photo(&file), &IngestLimits::default()) else {
            continue;
        };
        for (name, jpeg) in [("thumb", &got.thumb), ("display", &got.display)] {
            let markers = jpeg_header_markers(jpeg);
            // Only JFIF APP0 may precede the frame; no APP1 (EXIF/XMP), APP2 (ICC),
            // APP13 (IPTC) or comments.
            assert!(
                markers
                    .iter()
                    .all(|m| !(0xE1..=0xEF).contains(m) && *m != 0xFE),
                "{file} {name}: header markers {markers:02X?}"
            );
            assert!(!jpeg.windows(6).any(|w| w == b"Exif\0\0"), "{file} {name}");
            assert_eq!(read_exif(jpeg), Default::default(), "{file} {name}");
        }
    }
    // Sanity check that the check can fail: the GPS originals do have EXIF.
    assert!(read_exif(&photo("gps/DSCN0010.jpg")).gps.is_some());
}

#[test]
fn sizes_and_no_upscaling() {
    let big = ingest_photo("mobile/jolla.jpg");
    assert_eq!((big.width, big.height), (3264, 2448));
    assert_eq!(decode_rgb(&big.display).dimensions(), (1280, 960));
    assert_eq!(decode_rgb(&big.thumb).dimensions(), (320, 240));

    let medium = ingest_photo("gps/DSCN0010.jpg");
    assert_eq!((medium.width, medium.height), (640, 480));
    assert_eq!(decode_rgb(&medium.display).dimensions(), (640, 480));
    assert_eq!(decode_rgb(&medium.thumb).dimensions(), (320, 240));

    let tiny = ingest_photo("Canon_40D.jpg");
    assert_eq!((tiny.width, tiny.height), (100, 68));
    assert_eq!(decode_rgb(&tiny.display).dimensions(), (100, 68));
    assert_eq!(decode_rgb(&tiny.thumb).dimensions(), (100, 68));
}

#[test]
fn original_identity_is_the_exact_bytes() {
    let bytes = photo("gps/DSCN0010.jpg");
    let got = ingest(&bytes, &IngestLimits::default()).unwrap();
    assert_eq!(got.sha256, sha256_of(&bytes));
    assert_eq!(got.bytes, bytes.len() as u64);
    assert_eq!(got.media_type, MediaType::Jpeg);
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

#[test]
fn png_and_webp_are_accepted() {
    let rgb = image::RgbImage::from_fn(1600, 900, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let png = encode(
        image::DynamicImage::ImageRgb8(rgb.clone()),
        image::ImageFormat::Png,
    );
    assert_eq!(MediaType::sniff(&png), Some(MediaType::Png));
    let got = ingest(&png, &IngestLimits::default()).unwrap();
    assert_eq!(got.media_type, MediaType::Png);
    assert_eq!((got.width, got.height), (1600, 900));
    assert_eq!(decode_rgb(&got.display).dimensions(), (1280, 720));
    assert_eq!(decode_rgb(&got.thumb).dimensions(), (320, 180));

    let webp = encode(
        image::DynamicImage::ImageRgb8(rgb),
        image::ImageFormat::WebP,
    );
    assert_eq!(MediaType::sniff(&webp), Some(MediaType::Webp));
    let got = ingest(&webp, &IngestLimits::default()).unwrap();
    assert_eq!(got.media_type, MediaType::Webp);
    assert_eq!((got.width, got.height), (1600, 900));

    // Transparent pixels become white, not whatever colour hides under them.
    let rgba = image::RgbaImage::from_pixel(50, 40, image::Rgba([0, 0, 0, 0]));
    let png = encode(
        image::DynamicImage::ImageRgba8(rgba),
        image::ImageFormat::Png,
    );
    let got = ingest(&png, &IngestLimits::default()).unwrap();
    let thumb = decode_rgb(&got.thumb);
    assert_eq!(thumb.dimensions(), (50, 40));
    assert!(thumb.pixels().all(|p| p.0.iter().all(|&c| c > 245)));

    // 16-bit greyscale, another colour type phones do not make but files carry.
    let grey = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(30, 20, |x, _| {
        image::Luma([x as u16 * 2000])
    });
    let png = encode(
        image::DynamicImage::ImageLuma16(grey),
        image::ImageFormat::Png,
    );
    let got = ingest(&png, &IngestLimits::default()).unwrap();
    assert_eq!(decode_rgb(&got.thumb).dimensions(), (30, 20));
}

#[test]
fn other_formats_are_unsupported() {
    // A 1x1 GIF.
    let gif: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    assert_eq!(
        ingest(gif, &IngestLimits::default()),
        Err(IngestError::UnsupportedType)
    );

    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert_eq!(
        ingest(&random, &IngestLimits::default()),
        Err(IngestError::UnsupportedType)
    );
    assert_eq!(
        ingest(b"", &IngestLimits::default()),
        Err(IngestError::UnsupportedType)
    );

    // A BMP header (the image crate here is built without BMP support).
    let mut bmp = b"BM\x46\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0".to_vec();
    bmp.resize(70, 0);
    assert_eq!(
        ingest(&bmp, &IngestLimits::default()),
        Err(IngestError::UnsupportedType)
    );
}
