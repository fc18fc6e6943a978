//! Reduced-size JPEG decoding for photos far bigger than the renditions made
//! from their pixels.
//!
//! A JPEG can be decoded at 1/2, 1/4 or 1/8 scale by running a smaller IDCT
//! on each block, which skips most of the IDCT, colour conversion and
//! upsampling work and leaves the resize a much smaller input. Nothing shown
//! to users is bigger than the display rendition, so any scale that still
//! covers it loses nothing visible; a small photo served as its own display
//! needs pixels only for its thumbnail. `image` decodes JPEG with zune-jpeg, which
//! has no scaled IDCT; this uses rusty_jpeg (a tuned jpeg-decoder) for that one
//! job.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use rusty_jpeg::decode::{CodingProcess, Decoder, PixelFormat};

use crate::derive::fit_within;
use crate::ingest::{IngestError, IngestLimits, check_canvas};
use crate::planar::{Plane, Ycc};
use crate::strip::is_ycbcr;

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

/// What a caller needs from a reduced decode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cover {
    /// The longest side the pixels must still reach.
    pub side: u32,
    /// Whether the caller takes Y'CbCr planes ([`Reduced::Planes`]) when the
    /// JPEG has them.
    pub planes: bool,
}

/// A reduced decode, as RGB pixels or as the JPEG's own planes.
#[derive(Debug)]
pub(crate) enum Reduced {
    Rgb(ScaledJpeg),
    /// Y'CbCr planes at reduced scale, and the stored size of the original.
    Planes {
        planes: Ycc,
        width: u32,
        height: u32,
    },
}

/// Below this many output bytes (about 0.35 MP) a decode stays on its own thread.
const SMALL_OUTPUT_BYTES: u64 = 1 << 20;

/// Photos being ingested (or decoded alone, by [`crate::decode_scaled`]) right now.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// Counts one photo among those being worked on, for as long as it lives.
pub(crate) struct InFlight {
    count: &'static AtomicUsize,
}

impl InFlight {
    pub(crate) fn enter() -> InFlight {
        InFlight::enter_on(&BUSY)
    }

    fn enter_on(count: &'static AtomicUsize) -> InFlight {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight { count }
    }

    /// Other photos being worked on at this moment.
    fn others(&self) -> usize {
        self.count.load(Ordering::Relaxed).saturating_sub(1)
    }
}

impl Drop for InFlight {
    // Also runs when the decoder panics (the caller catches the unwind), so a
    // malformed photo cannot leave the count high and every later decode alone on
    // one thread.
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decodes `jpeg` at the smallest scale whose longest side still reaches
/// `cover(width, height)`'s side, the longest side the caller needs given the
/// photo's full stored size (`None`: it needs full size).
///
/// `Ok(None)` means "use the full-size decoder instead": no scale of at least
/// 1/2 covers what is needed, the colour format is not handled here, or the
/// scaling decoder could not parse it (the full-size decoder then decides whether
/// it is a refusal, so both decoders' quirks cannot refuse a photo that was
/// accepted before). `Err` is a refusal by the same canvas limits the
/// full-size path applies, checked on the full declared size before any
/// pixel buffer exists.
///
/// `busy` is the caller's place among the photos being worked on.
///
/// Callers must run this under `catch_unwind`: the decoder panics on some
/// malformed headers.
pub(crate) fn decode_reduced(
    jpeg: &[u8],
    limits: &IngestLimits,
    busy: &InFlight,
    cover: impl FnOnce(u32, u32) -> Option<Cover>,
) -> Result<Option<Reduced>, IngestError> {
    let mut decoder = Decoder::new(Cursor::new(jpeg));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    if let Err(e) = decoder.read_info() {
        tracing::debug!(error = %e, "scaling decoder cannot read the header; full-size decode");
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

    let Some(Cover { side, planes }) = cover(width, height) else {
        return Ok(None);
    };
    let (target_w, target_h) = fit_within(width, height, side);
    if width.max(height) < (2 * side).saturating_sub(1) {
        return Ok(None);
    }
    let (Ok(req_w), Ok(req_h)) = (u16::try_from(target_w), u16::try_from(target_h)) else {
        return Ok(None);
    };
    let (out_w, out_h) = match decoder.scale(req_w, req_h) {
        Ok((w, h)) => (u32::from(w), u32::from(h)),
        Err(e) => {
            tracing::debug!(error = %e, "scaling decoder cannot scale; full-size decode");
            return Ok(None);
        }
    };
    // The scaled image must still cover the size asked for, or the rendition
    // would be upscaled from it.
    if (out_w, out_h) == (width, height) || out_w < target_w || out_h < target_h {
        return Ok(None);
    }
    // The decoder keeps every coefficient of a progressive JPEG at full size
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

    // A decode left to itself hands each component's rows to a thread of its own:
    // a lone big photo comes out sooner, but the hand-off costs about a fifth more
    // CPU. When another photo is being worked on the cores are taken anyway, and for
    // a small output (a thumbnail's worth) the hand-off costs more than it saves.
    // Counting whole ingests, not just decodes, matters under load: counting decodes
    // alone, a decode that started while the other worker was resizing or encoding
    // went threaded, about half of them in an 8 MP load run.
    decoder.set_single_threaded(busy.others() > 0 || scaled_bytes < SMALL_OUTPUT_BYTES);
    if planes && channels == 3 && is_ycbcr(jpeg) {
        return Ok(decode_planes(&mut decoder, width, height));
    }
    let raw = match decoder.decode() {
        Ok(raw) => raw,
        Err(e) => {
            tracing::debug!(error = %e, "scaling decoder failed; full-size decode");
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
    Ok(RgbImage::from_raw(out_w, out_h, raw).map(|pixels| {
        Reduced::Rgb(ScaledJpeg {
            pixels,
            width,
            height,
        })
    }))
}

/// The three planes of a Y'CbCr JPEG whose decoder is set up to scale, or `None`
/// (the full-size decoder decides) when it fails or hands over anything else.
fn decode_planes(decoder: &mut Decoder<Cursor<&[u8]>>, width: u32, height: u32) -> Option<Reduced> {
    let image = match decoder.decode_planar() {
        Ok(image) => image,
        Err(e) => {
            tracing::debug!(error = %e, "scaling decoder failed; full-size decode");
            return None;
        }
    };
    let [y, cb, cr]: [Plane; 3] = image
        .components
        .into_iter()
        .map(|c| {
            let (w, h) = (u32::try_from(c.width).ok()?, u32::try_from(c.height).ok()?);
            Plane::new(c.data, c.stride, w, h)
        })
        .collect::<Option<Vec<_>>>()?
        .try_into()
        .ok()?;
    // Luma is the plane at the output size; chroma never exceeds it.
    let fits = |p: &Plane| p.width <= y.width && p.height <= y.height;
    if (y.width, y.height) != (u32::from(image.width), u32::from(image.height))
        || !fits(&cb)
        || !fits(&cr)
    {
        return None;
    }
    Some(Reduced::Planes {
        planes: Ycc { y, cb, cr },
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::catch_unwind;

    #[test]
    fn in_flight_counts_overlapping_photos_and_forgets_a_panicked_one() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let first = InFlight::enter_on(&COUNT);
        assert_eq!(first.others(), 0);
        let second = InFlight::enter_on(&COUNT);
        assert_eq!(first.others(), 1);
        assert_eq!(second.others(), 1);
        drop(first);
        assert_eq!(second.others(), 0);
        drop(second);
        let panicked = catch_unwind(|| {
            let _guard = InFlight::enter_on(&COUNT);
            panic!("decoder panicked");
        });
        assert!(panicked.is_err());
        assert_eq!(InFlight::enter_on(&COUNT).others(), 0);
    }
}
