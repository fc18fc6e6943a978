//! Small upright JPEGs are served as their own display rendition with all
//! metadata removed; everything the stripper cannot vouch for is re-encoded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_media::{IngestError, IngestLimits, ingest, read_exif};
use common::{decode_rgb, photo};

/// Every marker in a JPEG, scans included, up to and including the first EOI;
/// panics on anything that is not a well-formed marker stream.
fn all_markers(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut markers = vec![0xD8];
    let mut i = 2;
    loop {
        assert_eq!(jpeg[i], 0xFF, "no marker at {i}");
        let marker = jpeg[i + 1];
        markers.push(marker);
        if marker == 0xD9 {
            return markers;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        i += 2 + len;
        if marker == 0xDA {
            // Entropy-coded data runs to the first 0xFF not followed by a
            // stuffed zero or a restart marker.
            while !(jpeg[i] == 0xFF && jpeg[i + 1] != 0x00 && !(0xD0..=0xD7).contains(&jpeg[i + 1]))
            {
                i += 1;
            }
        }
    }
}

fn assert_metadata_free(name: &str, jpeg: &[u8]) {
    let markers = all_markers(jpeg);
    assert!(
        markers
            .iter()
            .all(|m| !(0xE1..=0xEF).contains(m) && *m != 0xFE),
        "{name}: markers {markers:02X?}"
    );
    assert!(jpeg.ends_with(&[0xFF, 0xD9]), "{name} does not end at EOI");
    assert_eq!(read_exif(jpeg), Default::default(), "{name}");
    assert!(!jpeg.windows(4).any(|w| w == b"Exif"), "{name}");
}

#[test]
fn small_upright_jpeg_display_is_the_stripped_original() {
    let original = photo("gps/DSCN0010.jpg");
    assert!(
        read_exif(&original).gps.is_some(),
        "the check must be able to fail"
    );
    let got = ingest(&original, &IngestLimits::default()).unwrap();
    assert_metadata_free("display", &got.display);
    // Not a re-encode: the very same pixels, from the original's own data.
    assert_eq!(decode_rgb(&got.display), decode_rgb(&original));
    // Only the 15 KB of EXIF segments went.
    assert!(got.display.len() < original.len() - 15_000);
    assert!(got.display.len() > original.len() - 16_000);
    // The thumbnail is still made and encoded.
    assert_eq!(decode_rgb(&got.thumb).dimensions(), (320, 240));
}

#[test]
fn data_after_eoi_never_reaches_the_display() {
    let original = photo("gps/DSCN0010.jpg");
    let plain = ingest(&original, &IngestLimits::default()).unwrap();
    // What a motion photo appends: a second JPEG-looking blob, then video.
    let mut with_trailer = original.clone();
    with_trailer.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10]);
    with_trailer.extend_from_slice(b"Exif\0\0GPS 43.46N");
    with_trailer.extend_from_slice(b"\0\0\0\x18ftypmp42 MotionPhoto_Data");
    let got = ingest(&with_trailer, &IngestLimits::default()).unwrap();
    assert_metadata_free("display", &got.display);
    assert!(!got.display.windows(8).any(|w| w == b"ftypmp42"));
    assert_eq!(got.display, plain.display);
    assert_eq!(got.phash, plain.phash);
    assert_eq!(decode_rgb(&got.display), decode_rgb(&original));
}

/// A display made by the encoder rather than copied: jpeg-encoder writes a
/// bare 16-byte JFIF APP0 right after SOI.
fn is_reencoded(display: &[u8]) -> bool {
    display.starts_with(&[
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ])
}

#[test]
fn what_the_stripper_cannot_vouch_for_is_reencoded() {
    let original = photo("gps/DSCN0010.jpg");
    let limits = IngestLimits::default();
    assert!(!is_reencoded(&ingest(&original, &limits).unwrap().display));

    // Missing EOI: the decoder may still make an image of it, but the copy
    // would be truncated.
    for cut in [2, 1_000, 50_000] {
        match ingest(&original[..original.len() - cut], &limits) {
            Ok(got) => {
                assert!(is_reencoded(&got.display), "cut {cut}");
                assert_metadata_free("cut display", &got.display);
            }
            Err(e) => assert!(matches!(e, IngestError::InvalidImage(_)), "cut {cut}: {e}"),
        }
    }

    // Junk between segments, where a tool could have left anything.
    let first_segment_end = 4 + usize::from(u16::from_be_bytes([original[4], original[5]]));
    let mut junk = original[..first_segment_end].to_vec();
    junk.extend_from_slice(b"GPS 43.4674N 11.8817E");
    junk.extend_from_slice(&original[first_segment_end..]);
    match ingest(&junk, &limits) {
        Ok(got) => {
            assert!(is_reencoded(&got.display));
            assert!(!got.display.windows(3).any(|w| w == b"GPS"));
        }
        Err(e) => assert!(matches!(e, IngestError::InvalidImage(_)), "junk: {e}"),
    }

    // Garbage after a JPEG signature.
    let mut garbage = vec![0xFF, 0xD8, 0xFF];
    garbage.extend((0..5_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let got = ingest(&garbage, &limits);
    assert!(matches!(got, Err(IngestError::InvalidImage(_))), "{got:?}");

    // Too heavy for a phone: noise at q100 is far over 4 bits per pixel.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise = image::RgbImage::from_fn(300, 200, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let heavy = common::reencode(&noise, 100);
    let got = ingest(&heavy, &limits).unwrap();
    assert!(is_reencoded(&got.display));
    assert!(got.display.len() < heavy.len());

    // Rotated: the display must be turned, so it is re-encoded upright.
    let rotated = ingest(&photo("orientation/landscape_6.jpg"), &limits).unwrap();
    assert!(is_reencoded(&rotated.display));
    assert_eq!(decode_rgb(&rotated.display).dimensions(), (600, 450));
}

#[test]
fn broken_exif_photos_answer_as_before() {
    // `invalid/` holds photos whose EXIF is broken, not whose pixels are:
    // ingest accepted both before this change and still does, with clean
    // renditions (too heavy for the copied display, so re-encoded).
    for (file, size) in [
        ("invalid/image01088.jpg", (425, 120)),
        ("invalid/image01551.jpg", (61, 58)),
    ] {
        let got = ingest(&photo(file), &IngestLimits::default()).unwrap();
        assert_eq!((got.width, got.height), size, "{file}");
        assert_metadata_free(file, &got.display);
        assert_metadata_free(file, &got.thumb);
        assert!(is_reencoded(&got.display), "{file}");
    }
}
