//! Reduced-size JPEG decoding for photos far bigger than the display rendition.
//!
//! A JPEG can be decoded at 1/2, 1/4 or 1/8 scale by running a smaller IDCT
//! on each block, which skips most of the IDCT, colour conversion and
//! upsampling work and leaves the resize a much smaller input. Nothing shown
//! to users is bigger than [`DISPLAY_MAX_SIDE`], so any scale that still
//! covers it loses nothing visible. `image` decodes JPEG with zune-jpeg, which
//! has no scaled IDCT; this uses jpeg-decoder for that one job.

use std::io::Cursor;

use image::RgbImage;
use jpeg_decoder::{CodingProcess, Decoder, PixelFormat};

use crate::derive::{DISPLAY_MAX_SIDE, fit_within};
use crate::ingest::{IngestError, IngestLimits, check_canvas};

/// A JPEG decoded at reduced scale, with the size of the original it stands for.
#[derive(Debug, Clone)]
pub struct ScaledJpeg {
    /// The pixels at 1/2, 1/4 or 1/8 scale, as stored (before orientation).
    pub pixels: RgbImage,
    /// Stored (pre-orientation) width of the full original.
    pub width: u32,
    /// Stored (pre-orientation) height of the full original.
    pub height: u32,
}

/// Decodes `jpeg` at the smallest scale whose longest side still reaches
/// [`DISPLAY_MAX_SIDE`].
///
/// `Ok(None)` means "use the full-size decoder instead": the photo is too
/// small to gain anything, in a colour format not handled here, or something
/// jpeg-decoder could not parse (the full-size decoder then decides whether
/// it is a refusal, so both decoders' quirks cannot refuse a photo that was
/// accepted before). `Err` is a refusal by the same canvas limits the
/// full-size path applies, checked on the full declared size before any
/// pixel buffer exists.
///
/// Callers must run this under `catch_unwind`: jpeg-decoder panics on some
/// malformed headers.
pub(crate) fn decode_reduced(
    jpeg: &[u8],
    limits: &IngestLimits,
) -> Result<Option<ScaledJpeg>, IngestError> {
    let mut decoder = Decoder::new(Cursor::new(jpeg));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    if let Err(e) = decoder.read_info() {
        tracing::debug!(error = %e, "jpeg-decoder cannot read the header; full-size decode");
        return Ok(None);
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let channels: u64 = match info.pixel_format {
        PixelFormat::L8 => 1,
        PixelFormat::RGB24 => 3,
        // CMYK needs the Adobe inversion rules and 16-bit needs tone mapping;
        // `image` already gets both right and such photos are rare.
        PixelFormat::L16 | PixelFormat::CMYK32 => return Ok(None),
    };
    check_canvas(
        width,
        height,
        u64::from(width) * u64::from(height) * channels,
        limits,
    )?;
    if info.coding_process == CodingProcess::Lossless {
        return Ok(None);
    }

    let (target_w, target_h) = fit_within(width, height, DISPLAY_MAX_SIDE);
    if width.max(height) < 2 * DISPLAY_MAX_SIDE - 1 {
        return Ok(None);
    }
    let (Ok(req_w), Ok(req_h)) = (u16::try_from(target_w), u16::try_from(target_h)) else {
        return Ok(None);
    };
    let (out_w, out_h) = match decoder.scale(req_w, req_h) {
        Ok((w, h)) => (u32::from(w), u32::from(h)),
        Err(e) => {
            tracing::debug!(error = %e, "jpeg-decoder cannot scale; full-size decode");
            return Ok(None);
        }
    };
    // The scaled image must still cover the display size, or the display
    // would be upscaled from it.
    if (out_w, out_h) == (width, height) || out_w < target_w || out_h < target_h {
        return Ok(None);
    }
    // jpeg-decoder keeps every coefficient of a progressive JPEG at full size
    // (two bytes each) and checks only its output buffer against the limit,
    // so bound the rest here; too big goes to the decoder `image` limits.
    let scaled_bytes = u64::from(out_w) * u64::from(out_h) * channels;
    let coefficients = if info.coding_process == CodingProcess::DctProgressive {
        (u64::from(width) + 16) * (u64::from(height) + 16) * channels * 2
    } else {
        0
    };
    if coefficients + 2 * scaled_bytes > limits.max_alloc {
        return Ok(None);
    }

    let raw = match decoder.decode() {
        Ok(raw) => raw,
        Err(e) => {
            tracing::debug!(error = %e, "jpeg-decoder failed; full-size decode");
            return Ok(None);
        }
    };
    if raw.len() as u64 != scaled_bytes {
        return Ok(None);
    }
    let raw = if channels == 1 {
        raw.iter().flat_map(|&l| [l, l, l]).collect()
    } else {
        raw
    };
    Ok(
        RgbImage::from_raw(out_w, out_h, raw).map(|pixels| ScaledJpeg {
            pixels,
            width,
            height,
        }),
    )
}
