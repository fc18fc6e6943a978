//! The ingest pipeline for one uploaded photo: verify what it is, refuse
//! oversized canvases before decoding, decode under explicit limits, read EXIF,
//! make upright metadata-free renditions and a perceptual hash.
//!
//! Everything here is synchronous and CPU-bound; run it through
//! [`crate::IngestPool`] from async code.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::derive::{self, JPEG_QUALITY};
use crate::hash::{Sha256, sha256_of};
use crate::media_type::MediaType;
use crate::metadata::{ExifInfo, read_exif};
use crate::phash::phash;

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
    /// Upright JPEG, longest side at most 1280 px, no metadata.
    pub display: Vec<u8>,
}

/// Runs the whole pipeline on one upload held in memory.
pub fn ingest(bytes: &[u8], limits: &IngestLimits) -> Result<Ingested, IngestError> {
    let size = bytes.len() as u64;
    if size > limits.max_bytes {
        return Err(IngestError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let media_type = MediaType::sniff(bytes).ok_or(IngestError::UnsupportedType)?;
    let sha256 = sha256_of(bytes);

    let decoded = decode(bytes, media_type, limits)?;
    let (stored_w, stored_h) = (decoded.width(), decoded.height());

    // EXIF parsing runs on attacker-controlled bytes too; a panic in it costs
    // the metadata, not the upload.
    let exif = catch_unwind(|| read_exif(bytes)).unwrap_or_else(|_| {
        tracing::warn!(%sha256, "EXIF parser panicked; ignoring EXIF");
        ExifInfo::default()
    });
    let orientation = exif.orientation.unwrap_or(1);
    let (width, height) = if orientation >= 5 {
        (stored_h, stored_w)
    } else {
        (stored_w, stored_h)
    };

    let renditions = derive::renditions(derive::to_rgb8(decoded), orientation)
        .map_err(|e| IngestError::InvalidImage(e.to_string()))?;
    let phash = phash(&renditions.thumb);
    let thumb = derive::encode_jpeg(&renditions.thumb, JPEG_QUALITY)
        .map_err(|e| IngestError::InvalidImage(e.to_string()))?;
    let display = derive::encode_jpeg(&renditions.display, JPEG_QUALITY)
        .map_err(|e| IngestError::InvalidImage(e.to_string()))?;

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
/// Public so benchmarks can measure decoding alone; ingest uses it as its first stage.
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
    let needed = decoder.total_bytes();
    if needed > limits.max_alloc {
        return Err(IngestError::InvalidImage(format!(
            "decoding {w}x{h} needs {needed} bytes, over the {} limit",
            limits.max_alloc
        )));
    }
    decoder.set_limits(decode_limits).map_err(invalid)?;
    DynamicImage::from_decoder(decoder).map_err(invalid)
}
