//! The ingest pipeline for one uploaded photo: verify what it is, refuse
//! oversized canvases before decoding, decode under explicit limits, read EXIF,
//! make upright metadata-free renditions and a perceptual hash.
//!
//! Three shortcuts keep CPU down without changing what clients see: a JPEG much
//! bigger than the display is decoded at reduced scale (`scaled`), and if it is
//! Y'CbCr its renditions are made from the decoder's planes without going through
//! RGB (`planar`); a small upright JPEG of modest weight is its own display,
//! metadata stripped (`strip`) instead of re-encoded.
//!
//! Everything here is synchronous and CPU-bound; run it through
//! [`crate::IngestPool`] from async code.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::derive::{self, DISPLAY_MAX_SIDE, JPEG_QUALITY, THUMB_MAX_SIDE};
use crate::hash::{Sha256, sha256_of};
use crate::media_type::MediaType;
use crate::metadata::{ExifInfo, read_exif};
use crate::phash::{DCT_SIDE, phash};
use crate::planar;
use crate::scaled::{self, Cover, InFlight, Reduced, ScaledJpeg};
use crate::strip;

/// Resource limits for one ingest. The defaults admit any current phone camera
/// (a 200 MP sensor is bigger, but phones bin those to 12-50 MP by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest accepted width in pixels, as stored (before orientation).
    pub max_width: u32,
    /// Largest accepted height in pixels, as stored (before orientation).
    pub max_height: u32,
    /// Cap on the decoder's allocations, decoded pixels included.
    pub max_alloc: u64,
    /// Largest accepted canvas, width x height.
    pub max_pixels: u64,
    /// Largest accepted upload, in bytes.
    pub max_bytes: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_width: 12_000,
            max_height: 12_000,
            max_alloc: 256 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Why an upload was refused. Every variant is the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not JPEG, PNG or WebP by its magic bytes (HTTP 415).
    #[error("unsupported media type (accepted: JPEG, PNG, WebP)")]
    UnsupportedType,
    /// Claims to be an accepted format but cannot be decoded within limits (HTTP 422).
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// More bytes than [`IngestLimits::max_bytes`] (HTTP 413).
    #[error("upload of {size} bytes exceeds the {limit} byte limit")]
    TooLarge { size: u64, limit: u64 },
    /// The bytes do not hash to what their sender claimed (HTTP 400).
    #[error("the bytes hash to {actual}, not to the claimed {expected}")]
    HashMismatch { expected: Sha256, actual: Sha256 },
}

/// Everything ingest learns about a photo, plus its renditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// SHA-256 of the original bytes, which are stored unchanged under it.
    pub sha256: Sha256,
    pub media_type: MediaType,
    /// Size of the original in bytes.
    pub bytes: u64,
    /// Width of the original as displayed, i.e. after EXIF orientation.
    pub width: u32,
    /// Height of the original as displayed, i.e. after EXIF orientation.
    pub height: u32,
    pub exif: ExifInfo,
    /// 64-bit DCT pHash of the upright thumbnail; compare with [`crate::phash_distance`].
    pub phash: u64,
    /// Upright JPEG, longest side at most 320 px, no metadata.
    pub thumb: Vec<u8>,
    /// Upright JPEG, longest side at most 1280 px, no metadata. For a JPEG
    /// that is already small, upright and not too heavy, this is the
    /// original's own image data with every metadata segment removed.
    pub display: Vec<u8>,
}

/// Runs the whole pipeline on one upload held in memory.
pub fn ingest(bytes: &[u8], limits: &IngestLimits) -> Result<Ingested, IngestError> {
    ingest_claimed(bytes, limits, None)
}

/// [`ingest`] of bytes their sender says hash to `claimed`. The hash the photo is
/// filed under is then also the proof of the claim, computed once, and a mismatch is
/// found before anything is decoded, so it is reported as such whatever the bytes are.
pub fn ingest_claimed(
    bytes: &[u8],
    limits: &IngestLimits,
    claimed: Option<&Sha256>,
) -> Result<Ingested, IngestError> {
    let size = bytes.len() as u64;
    if size > limits.max_bytes {
        return Err(IngestError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let sha256 = sha256_of(bytes);
    if let Some(&expected) = claimed
        && expected != sha256
    {
        return Err(IngestError::HashMismatch {
            expected,
            actual: sha256,
        });
    }
    let media_type = MediaType::sniff(bytes).ok_or(IngestError::UnsupportedType)?;
    // Held to the end: whether a decode may take a second core depends on other
    // photos anywhere in the pipeline, not only in their decode.
    let busy = InFlight::enter();

    // EXIF parsing runs on attacker-controlled bytes too; a panic in it costs
    // the metadata, not the upload.
    let exif = catch_unwind(|| read_exif(bytes)).unwrap_or_else(|_| {
        tracing::warn!(%sha256, "EXIF parser panicked; ignoring EXIF");
        ExifInfo::default()
    });
    let orientation = exif.orientation.unwrap_or(1);
    let upright_jpeg = media_type == MediaType::Jpeg && orientation == 1;

    // A small upright JPEG is its own display (metadata stripped), so its pixels
    // are needed only for the thumbnail and may be decoded at the scale of that.
    // `Some(None)`: tried here, too heavy to serve as it is.
    let mut own_display: Option<Option<Vec<u8>>> = None;
    let source = decode_source(bytes, media_type, limits, &busy, |w, h| {
        if upright_jpeg && w.max(h) <= DISPLAY_MAX_SIDE {
            let stripped = own_display.insert(stripped_display(bytes, w, h));
            return stripped.as_ref().map(|_| Cover {
                side: THUMB_MAX_SIDE,
                planes: false,
            });
        }
        // Only a photo at least twice the display's size gains; `decode_reduced`
        // leaves the others to the full-size decoder.
        Some(Cover {
            side: DISPLAY_MAX_SIDE,
            planes: true,
        })
    })?;
    let (stored_w, stored_h) = source.full_size();
    let (width, height) = if orientation >= 5 {
        (stored_h, stored_w)
    } else {
        (stored_w, stored_h)
    };
    let invalid = |e: derive::DeriveError| IngestError::InvalidImage(e.to_string());

    let thumb_of = |pixels: RgbImage| -> Result<(Vec<u8>, u64), IngestError> {
        let jpeg = derive::encode_jpeg(&pixels, JPEG_QUALITY).map_err(invalid)?;
        Ok((jpeg, phash(&pixels)))
    };

    let (display, (thumb, phash)) = match (own_display, source) {
        (_, Source::Planes { planes, full_size }) => {
            let renditions =
                planar::renditions(&planes, full_size, orientation).map_err(invalid)?;
            drop(planes);
            let encode = |img: &planar::Ycc| img.encode_jpeg(JPEG_QUALITY).map_err(invalid);
            let hash_input = renditions.thumb.shrunk_rgb(DCT_SIDE).map_err(invalid)?;
            (
                encode(&renditions.display)?,
                (encode(&renditions.thumb)?, phash(&hash_input)),
            )
        }
        (Some(Some(display)), Source::Rgb { pixels, full_size }) => (
            display,
            thumb_of(derive::thumbnail(pixels, full_size).map_err(invalid)?)?,
        ),
        (tried, Source::Rgb { pixels, full_size }) => {
            let unscaled = pixels.dimensions() == full_size;
            let renditions = derive::renditions(pixels, full_size, orientation).map_err(invalid)?;
            let passthrough = (tried.is_none()
                && upright_jpeg
                && unscaled
                && renditions.display.dimensions() == full_size)
                .then(|| stripped_display(bytes, stored_w, stored_h))
                .flatten();
            let display = match passthrough {
                Some(display) => display,
                None => derive::encode_jpeg(&renditions.display, JPEG_QUALITY).map_err(invalid)?,
            };
            (display, thumb_of(renditions.thumb)?)
        }
    };

    Ok(Ingested {
        sha256,
        media_type,
        bytes: size,
        width,
        height,
        exif,
        phash,
        thumb,
        display,
    })
}

/// Decodes to pixels under `limits`, checking the declared canvas first.
///
/// Public so benchmarks can measure decoding alone; ingest uses it as its
/// first stage for everything but big JPEGs (see [`decode_scaled`]).
pub fn decode(
    bytes: &[u8],
    media_type: MediaType,
    limits: &IngestLimits,
) -> Result<DynamicImage, IngestError> {
    // Decoders are written for well-formed files; a crafted one has made some
    // of them index out of bounds. That must be a refusal, not a dead worker.
    catch_unwind(AssertUnwindSafe(|| decode_inner(bytes, media_type, limits))).unwrap_or_else(
        |_| {
            tracing::warn!(?media_type, "image decoder panicked");
            Err(IngestError::InvalidImage(
                "decoder failed on malformed data".into(),
            ))
        },
    )
}

fn decode_inner(
    bytes: &[u8],
    media_type: MediaType,
    limits: &IngestLimits,
) -> Result<DynamicImage, IngestError> {
    let invalid = |e: image::ImageError| IngestError::InvalidImage(e.to_string());

    // The header pass leaves the canvas unchecked so the checks below, with
    // their specific messages, are what refuses an oversized image; the
    // allocation cap already applies to whatever the header parse buffers.
    let mut header_limits = image::Limits::default();
    header_limits.max_image_width = None;
    header_limits.max_image_height = None;
    header_limits.max_alloc = Some(limits.max_alloc);
    let mut decode_limits = header_limits.clone();
    decode_limits.max_image_width = Some(limits.max_width);
    decode_limits.max_image_height = Some(limits.max_height);

    let mut reader = ImageReader::with_format(Cursor::new(bytes), media_type.image_format());
    reader.limits(header_limits);
    // Building the decoder parses only the headers, so the canvas checks below
    // run before any pixel buffer exists.
    let mut decoder = reader.into_decoder().map_err(invalid)?;
    let (w, h) = decoder.dimensions();
    check_canvas(w, h, decoder.total_bytes(), limits)?;
    decoder.set_limits(decode_limits).map_err(invalid)?;
    DynamicImage::from_decoder(decoder).map_err(invalid)
}

/// The canvas checks both decode paths make on the declared size, before any
/// pixel buffer exists. `needed` is what a full-size decode would allocate.
pub(crate) fn check_canvas(
    w: u32,
    h: u32,
    needed: u64,
    limits: &IngestLimits,
) -> Result<(), IngestError> {
    if w == 0 || h == 0 {
        return Err(IngestError::InvalidImage(format!("empty canvas {w}x{h}")));
    }
    if w > limits.max_width || h > limits.max_height {
        return Err(IngestError::InvalidImage(format!(
            "canvas {w}x{h} exceeds the {}x{} limit",
            limits.max_width, limits.max_height
        )));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(IngestError::InvalidImage(format!(
            "canvas {w}x{h} has {pixels} pixels, over the {} limit",
            limits.max_pixels
        )));
    }
    if needed > limits.max_alloc {
        return Err(IngestError::InvalidImage(format!(
            "decoding {w}x{h} needs {needed} bytes, over the {} limit",
            limits.max_alloc
        )));
    }
    Ok(())
}

/// What the renditions are made from, and the stored size of the original it
/// stands for (bigger when the decode was scaled down).
enum Source {
    Rgb {
        pixels: RgbImage,
        full_size: (u32, u32),
    },
    /// A big Y'CbCr JPEG's own planes, at reduced scale.
    Planes {
        planes: planar::Ycc,
        full_size: (u32, u32),
    },
}

impl Source {
    fn full_size(&self) -> (u32, u32) {
        match self {
            Source::Rgb { full_size, .. } | Source::Planes { full_size, .. } => *full_size,
        }
    }
}

/// Decodes a JPEG at reduced scale when `cover` (given its full stored size)
/// names a side a 1/2 or smaller scale still reaches, everything else at full size.
fn decode_source(
    bytes: &[u8],
    media_type: MediaType,
    limits: &IngestLimits,
    busy: &InFlight,
    cover: impl FnOnce(u32, u32) -> Option<Cover>,
) -> Result<Source, IngestError> {
    if media_type == MediaType::Jpeg {
        match decode_reduced_guarded(bytes, limits, busy, cover)? {
            Some(Reduced::Rgb(scaled)) => {
                return Ok(Source::Rgb {
                    pixels: scaled.pixels,
                    full_size: (scaled.width, scaled.height),
                });
            }
            Some(Reduced::Planes {
                planes,
                width,
                height,
            }) => {
                return Ok(Source::Planes {
                    planes,
                    full_size: (width, height),
                });
            }
            None => {}
        }
    }
    let decoded = decode(bytes, media_type, limits)?;
    let full_size = (decoded.width(), decoded.height());
    Ok(Source::Rgb {
        pixels: derive::to_rgb8(decoded),
        full_size,
    })
}

/// Decodes a big JPEG at the reduced scale ingest uses for it: the smallest
/// of 1/2, 1/4, 1/8 whose longest side still reaches the display size.
/// Returns `None` when ingest decodes this photo with [`decode`] instead (small, CMYK,
/// 16-bit, or not parsable by the scaling decoder). Refuses by the same
/// canvas limits as [`decode`], checked on the full declared size.
///
/// Public so benchmarks can measure it against [`decode`].
pub fn decode_scaled(
    bytes: &[u8],
    limits: &IngestLimits,
) -> Result<Option<ScaledJpeg>, IngestError> {
    let cover = Cover {
        side: DISPLAY_MAX_SIDE,
        planes: false,
    };
    match decode_reduced_guarded(bytes, limits, &InFlight::enter(), |_, _| Some(cover))? {
        Some(Reduced::Rgb(scaled)) => Ok(Some(scaled)),
        Some(Reduced::Planes { .. }) | None => Ok(None),
    }
}

fn decode_reduced_guarded(
    bytes: &[u8],
    limits: &IngestLimits,
    busy: &InFlight,
    cover: impl FnOnce(u32, u32) -> Option<Cover>,
) -> Result<Option<Reduced>, IngestError> {
    // Same reason as in `decode`: a panic on crafted input must not kill the
    // worker. Here it only costs the shortcut; `decode` has the last word.
    match catch_unwind(AssertUnwindSafe(|| {
        scaled::decode_reduced(bytes, limits, busy, cover)
    })) {
        Ok(Ok(scaled)) => Ok(scaled),
        Ok(Err(refusal)) => Err(refusal),
        Err(_) => {
            tracing::warn!("scaling JPEG decoder panicked; full-size decode");
            Ok(None)
        }
    }
}

/// Most bytes per pixel a JPEG may weigh to be served as its own display
/// rendition: 4 bits per pixel. Cameras write 2-4 bits per pixel, a q80
/// re-encode 1-2.5, so ordinary photos pass at up to about twice the weight
/// of a re-encode and anything heavier (q95+ exports, noise) is re-encoded:
/// coordinators download the display on cheap phones over slow links.
const PASSTHROUGH_MAX_BYTES_PER_PIXEL: f64 = 0.5;
/// And at most this many bytes whatever the size: about what a q80 re-encode
/// of a detailed 1280 px photo weighs, so a big display is never heavier
/// than the encoder would have made it by much.
const PASSTHROUGH_MAX_BYTES: usize = 320 * 1024;

/// The original JPEG with every metadata segment and any trailer removed, if
/// it can serve as the display rendition as it is. The caller has checked that
/// it needs neither resizing nor rotating.
fn stripped_display(jpeg: &[u8], width: u32, height: u32) -> Option<Vec<u8>> {
    let stripped = strip::strip_metadata(jpeg)?;
    let budget = f64::from(width) * f64::from(height) * PASSTHROUGH_MAX_BYTES_PER_PIXEL;
    if stripped.len() as f64 > budget || stripped.len() > PASSTHROUGH_MAX_BYTES {
        tracing::debug!(
            bytes = stripped.len(),
            width,
            height,
            "original too heavy to serve as the display; re-encoding"
        );
        return None;
    }
    Some(stripped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::phash::phash_distance;

    const PHOTOS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/photos"
    );

    /// The renditions as ingest made them before scaled decoding: a
    /// full-size decode, then the same resizes.
    fn full_size_renditions(bytes: &[u8]) -> derive::Renditions {
        let decoded = decode(bytes, MediaType::Jpeg, &IngestLimits::default()).unwrap();
        let pixels = derive::to_rgb8(decoded);
        let size = pixels.dimensions();
        derive::renditions(pixels, size, 1).unwrap()
    }

    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let diff: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        diff as f64 / a.as_raw().len() as f64
    }

    fn source(bytes: &[u8], cover: Cover) -> Source {
        decode_source(
            bytes,
            MediaType::Jpeg,
            &IngestLimits::default(),
            &InFlight::enter(),
            |_, _| Some(cover),
        )
        .unwrap()
    }

    /// pHashes stored before the thumbnail's filter became CatmullRom came from
    /// Lanczos3 thumbnails of the same displays: a photo re-used across the change must
    /// still be within a few bits of itself, far inside the duplicate threshold.
    #[test]
    fn the_thumbnail_filter_keeps_the_phash_of_lanczos3_thumbnails() {
        let mut worst = 0;
        for file in [
            "mobile/jolla.jpg",
            "exif-org/sony-d700.jpg",
            "gps/DSCN0010.jpg",
            "gps/DSCN0021.jpg",
            "orientation/landscape_1.jpg",
            "orientation/portrait_6.jpg",
        ] {
            let bytes = std::fs::read(format!("{PHOTOS}/{file}")).unwrap();
            let display = full_size_renditions(&bytes).display;
            let shrink = |filter| {
                derive::shrink_to_fit(
                    &mut fast_image_resize::Resizer::new(),
                    &display,
                    derive::THUMB_MAX_SIDE,
                    filter,
                )
                .unwrap()
                .unwrap()
            };
            let before = shrink(fast_image_resize::FilterType::Lanczos3);
            let now = shrink(derive::THUMB_FILTER);
            let dist = phash_distance(phash(&before), phash(&now));
            println!("{file}: pHash distance {dist}");
            worst = worst.max(dist);
        }
        assert!(worst <= 4, "pHash distance {worst}");
    }

    #[test]
    fn scaled_decode_keeps_phash_and_pixels() {
        let bytes = std::fs::read(format!("{PHOTOS}/mobile/jolla.jpg")).unwrap();
        let rgb = Cover {
            side: DISPLAY_MAX_SIDE,
            planes: false,
        };
        let Source::Rgb { pixels, full_size } = source(&bytes, rgb) else {
            panic!("planes when RGB was asked for");
        };
        assert_eq!(full_size, (3264, 2448));
        assert_eq!(pixels.dimensions(), (1632, 1224), "not scaled");
        let scaled = derive::renditions(pixels, full_size, 1).unwrap();
        let full = full_size_renditions(&bytes);

        assert_eq!(scaled.display.dimensions(), full.display.dimensions());
        assert_eq!(scaled.thumb.dimensions(), full.thumb.dimensions());
        let mean = mean_abs_diff(&scaled.display, &full.display);
        let dist = phash_distance(phash(&scaled.thumb), phash(&full.thumb));
        println!("display mean abs diff {mean:.2}, thumb pHash distance {dist}");
        assert!(mean < 3.0, "display mean abs diff {mean}");
        assert!(dist <= 4, "pHash distance {dist}");
    }

    #[test]
    fn a_claimed_hash_is_checked_before_anything_is_decoded() {
        let limits = IngestLimits::default();
        let bytes = std::fs::read(format!("{PHOTOS}/gps/DSCN0010.jpg")).unwrap();
        let right = sha256_of(&bytes);
        let wrong = sha256_of(b"another photo");
        let plain = ingest(&bytes, &limits).unwrap();
        assert_eq!(
            ingest_claimed(&bytes, &limits, Some(&right)).unwrap(),
            plain
        );
        match ingest_claimed(&bytes, &limits, Some(&wrong)) {
            Err(IngestError::HashMismatch { expected, actual }) => {
                assert_eq!((expected, actual), (wrong, right));
            }
            other => panic!("{other:?}"),
        }
        // Bytes that are no photo at all: the claim is what is wrong with them first.
        let junk = b"not a photo".to_vec();
        assert!(matches!(
            ingest(&junk, &limits),
            Err(IngestError::UnsupportedType)
        ));
        assert!(matches!(
            ingest_claimed(&junk, &limits, Some(&wrong)),
            Err(IngestError::HashMismatch { .. })
        ));
    }

    #[test]
    fn planar_renditions_match_the_rgb_ones() {
        let bytes = std::fs::read(format!("{PHOTOS}/mobile/jolla.jpg")).unwrap();
        let planes = Cover {
            side: DISPLAY_MAX_SIDE,
            planes: true,
        };
        let Source::Planes { planes, full_size } = source(&bytes, planes) else {
            panic!("a 4:2:0 JFIF photo was not decoded to planes");
        };
        assert_eq!(full_size, (3264, 2448));
        assert_eq!(planes.dimensions(), (1632, 1224), "not scaled");
        assert_eq!((planes.cb.width, planes.cb.height), (816, 612));

        let got = ingest(&bytes, &IngestLimits::default()).unwrap();
        let decoded = |jpeg: &[u8]| image::load_from_memory(jpeg).unwrap().into_rgb8();
        let (display, thumb) = (decoded(&got.display), decoded(&got.thumb));
        let full = full_size_renditions(&bytes);
        assert_eq!(display.dimensions(), full.display.dimensions());
        assert_eq!(thumb.dimensions(), full.thumb.dimensions());

        // Both paths measured the same way: their encoded renditions against the
        // full-size decode's renditions before any encode.
        let rgb_cover = Cover {
            side: DISPLAY_MAX_SIDE,
            planes: false,
        };
        let Source::Rgb { pixels, full_size } = source(&bytes, rgb_cover) else {
            panic!("planes when RGB was asked for");
        };
        let rgb = derive::renditions(pixels, full_size, 1).unwrap();
        let encoded = |img: &RgbImage| decoded(&derive::encode_jpeg(img, JPEG_QUALITY).unwrap());
        let rgb_display = mean_abs_diff(&encoded(&rgb.display), &full.display);
        let rgb_thumb = mean_abs_diff(&encoded(&rgb.thumb), &full.thumb);
        let planar_display = mean_abs_diff(&display, &full.display);
        let planar_thumb = mean_abs_diff(&thumb, &full.thumb);
        let dist = phash_distance(got.phash, phash(&full.thumb));
        println!(
            "mean abs diff: display {planar_display:.2} (RGB path {rgb_display:.2}), \
             thumb {planar_thumb:.2} (RGB path {rgb_thumb:.2}); pHash distance {dist}"
        );
        assert!(
            planar_display <= rgb_display * 1.05,
            "display {planar_display}"
        );
        assert!(planar_thumb <= rgb_thumb * 1.05, "thumb {planar_thumb}");
        assert!(dist <= 4, "pHash distance {dist}");
    }

    #[test]
    fn small_upright_photo_is_decoded_at_thumbnail_scale_and_served_as_its_own_display() {
        let bytes = std::fs::read(format!("{PHOTOS}/gps/DSCN0010.jpg")).unwrap();
        let limits = IngestLimits::default();
        let got = ingest(&bytes, &limits).unwrap();
        assert_eq!((got.width, got.height), (640, 480));
        assert_eq!(got.display, strip::strip_metadata(&bytes).unwrap());

        let thumb_side = Cover {
            side: THUMB_MAX_SIDE,
            planes: false,
        };
        let Some(Reduced::Rgb(reduced)) =
            decode_reduced_guarded(&bytes, &limits, &InFlight::enter(), |_, _| Some(thumb_side))
                .unwrap()
        else {
            panic!("a 640 px JPEG decodes at 1/2 scale for a 320 px thumbnail");
        };
        assert_eq!(reduced.pixels.dimensions(), (320, 240));
        assert_eq!(got.phash, phash(&reduced.pixels));
        let thumb = image::load_from_memory(&got.thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 240));

        // The same photo ingested the old way, from a full-size decode and a
        // Lanczos3 resize, must still be found as a re-use of it.
        let full = full_size_renditions(&bytes);
        let dist = phash_distance(got.phash, phash(&full.thumb));
        let mean = mean_abs_diff(&reduced.pixels, &full.thumb);
        println!("thumb mean abs diff {mean:.2}, pHash distance {dist}");
        assert!(dist <= 4, "pHash distance {dist}");
        // The 1/2-scale IDCT is a softer filter than Lanczos3 (3.6 on this photo;
        // side by side the two thumbnails look the same).
        assert!(mean < 5.0, "thumb mean abs diff {mean}");
    }
}
