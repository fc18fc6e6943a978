//! Derivative images: upright, metadata-free JPEG renditions (display and
//! thumbnail) made from the decoded original. They are what clients see, so
//! they must never leak the original's EXIF (GPS above all).

use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, RgbImage};

/// Longest side of the display rendition.
pub const DISPLAY_MAX_SIDE: u32 = 1280;
/// Longest side of the thumbnail.
pub const THUMB_MAX_SIDE: u32 = 320;
/// The thumbnail's filter. CatmullRom rather than Lanczos3: at a 4x shrink Lanczos3
/// has half again as many taps per pixel, and each of its weights costs two `sin`s
/// computed anew for every photo, for a 320 px picture that looks the same. The
/// pHash is taken from the thumbnail; it moves by a few bits at most (the `phash`
/// and ingest tests hold the bound), far inside the duplicate threshold.
pub(crate) const THUMB_FILTER: fr::FilterType = fr::FilterType::CatmullRom;
/// JPEG quality of both renditions.
pub const JPEG_QUALITY: u8 = 80;

/// Failures here mean a bug or an impossible size, not bad input: the input
/// was already decoded successfully.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error("resize failed: {0}")]
    Resize(String),
    #[error("jpeg encoding failed: {0}")]
    Encode(String),
}

/// Flattens any decoded colour type to 8-bit RGB.
pub(crate) fn to_rgb8(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other if other.color().has_alpha() => flatten_on_white(&other),
        other => other.into_rgb8(),
    }
}

// Dropping alpha would expose whatever colour sits under transparent pixels
// (often black); white is what a viewer shows.
fn flatten_on_white(img: &DynamicImage) -> RgbImage {
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = u16::from(a);
        let over = |c: u8| ((u16::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}

/// The size that fits `max_side` on the longest side, never larger than the source.
pub fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let scaled = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, max_side);
    (scaled(width), scaled(height))
}

/// Resizes an RGB8 image to fit `max_side`, or `None` when it already fits.
pub(crate) fn shrink_to_fit(
    resizer: &mut Resizer,
    src: &RgbImage,
    max_side: u32,
    filter: fr::FilterType,
) -> Result<Option<RgbImage>, DeriveError> {
    let (w, h) = fit_within(src.width(), src.height(), max_side);
    resize_to(resizer, src, (w, h), filter)
}

/// Resizes an RGB8 image to exactly `size`, or `None` when it already has it.
fn resize_to(
    resizer: &mut Resizer,
    src: &RgbImage,
    (w, h): (u32, u32),
    filter: fr::FilterType,
) -> Result<Option<RgbImage>, DeriveError> {
    if (w, h) == src.dimensions() {
        return Ok(None);
    }
    let mut dst = fr::images::Image::new(w, h, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    resizer
        .resize(src, &mut dst, &opts)
        .map_err(|e| DeriveError::Resize(e.to_string()))?;
    RgbImage::from_raw(w, h, dst.into_vec())
        .map(Some)
        .ok_or_else(|| DeriveError::Resize("resizer returned a short buffer".into()))
}

/// Applies an EXIF orientation (1..=8) so the pixels are stored upright.
pub fn orient(img: RgbImage, exif_orientation: u8) -> RgbImage {
    match Orientation::from_exif(exif_orientation) {
        None | Some(Orientation::NoTransforms) => img,
        Some(o) => {
            let mut dynamic = DynamicImage::ImageRgb8(img);
            dynamic.apply_orientation(o);
            dynamic.into_rgb8()
        }
    }
}

/// Baseline JPEG with a bare JFIF header: no EXIF, XMP or ICC segments at all.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, DeriveError> {
    let w = u16::try_from(img.width()).map_err(|_| DeriveError::Encode("too wide".into()))?;
    let h = u16::try_from(img.height()).map_err(|_| DeriveError::Encode("too tall".into()))?;
    // A q80 4:2:0 JPEG is usually well under 1 bit per pixel.
    let mut out = Vec::with_capacity(img.as_raw().len() / 8);
    rusty_jpeg::encode::Encoder::new(&mut out, quality)
        .encode(img.as_raw(), w, h, rusty_jpeg::encode::ColorType::Rgb)
        .map_err(|e| DeriveError::Encode(e.to_string()))?;
    Ok(out)
}

/// Upright display and thumbnail renditions, still as pixels.
pub(crate) struct Renditions {
    pub display: RgbImage,
    pub thumb: RgbImage,
}

/// Makes both renditions from the decoded original.
///
/// `pixels` is the original, or a reduced-scale decode of it whose stored
/// (pre-orientation) size was `full_size`: the display size is computed from
/// the full size either way, so both decodes give the same rendition sizes.
///
/// Orientation is applied after the first downscale: rotating 1.6 MP is far
/// cheaper than rotating the full-size original, and the result is identical
/// because the resize targets are computed on the longest side either way.
pub(crate) fn renditions(
    pixels: RgbImage,
    full_size: (u32, u32),
    exif_orientation: u8,
) -> Result<Renditions, DeriveError> {
    let mut resizer = Resizer::new();
    // CatmullRom for the big step: nearly as sharp as Lanczos3 with a
    // narrower kernel, and this step is the one that touches every pixel.
    let display = resize_to(
        &mut resizer,
        &pixels,
        fit_within(full_size.0, full_size.1, DISPLAY_MAX_SIDE),
        fr::FilterType::CatmullRom,
    )?
    .unwrap_or(pixels);
    let display = orient(display, exif_orientation);
    let thumb = match shrink_to_fit(&mut resizer, &display, THUMB_MAX_SIDE, THUMB_FILTER)? {
        Some(thumb) => thumb,
        None => display.clone(),
    };
    Ok(Renditions { display, thumb })
}

/// The thumbnail of an upright photo whose display is made some other way.
///
/// `pixels` is the photo or a reduced-scale decode of it whose stored size was
/// `full_size`; the thumbnail's size comes from the full size either way.
pub(crate) fn thumbnail(pixels: RgbImage, full_size: (u32, u32)) -> Result<RgbImage, DeriveError> {
    let size = fit_within(full_size.0, full_size.1, THUMB_MAX_SIDE);
    Ok(resize_to(&mut Resizer::new(), &pixels, size, THUMB_FILTER)?.unwrap_or(pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_never_upscales_and_keeps_aspect() {
        assert_eq!(fit_within(100, 68, 320), (100, 68));
        assert_eq!(fit_within(3264, 2448, 1280), (1280, 960));
        assert_eq!(fit_within(2448, 3264, 1280), (960, 1280));
        assert_eq!(fit_within(1280, 960, 320), (320, 240));
        assert_eq!(fit_within(1, 10_000, 320), (1, 320));
        assert_eq!(fit_within(320, 320, 320), (320, 320));
    }

    #[test]
    fn orientation_moves_pixels() {
        // A 2x1 image: red on the left, blue on the right.
        let img = RgbImage::from_fn(2, 1, |x, _| {
            if x == 0 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let red = image::Rgb([255, 0, 0]);
        assert_eq!(orient(img.clone(), 1).get_pixel(0, 0), &red);
        assert_eq!(orient(img.clone(), 2).get_pixel(1, 0), &red);
        assert_eq!(orient(img.clone(), 3).get_pixel(1, 0), &red);
        // 6 = rotate 90 clockwise: the left column becomes the top row.
        let six = orient(img.clone(), 6);
        assert_eq!(six.dimensions(), (1, 2));
        assert_eq!(six.get_pixel(0, 0), &red);
        // 8 = rotate 270 clockwise: the left column becomes the bottom row.
        let eight = orient(img.clone(), 8);
        assert_eq!(eight.dimensions(), (1, 2));
        assert_eq!(eight.get_pixel(0, 1), &red);
        for o in 5..=8 {
            assert_eq!(
                orient(img.clone(), o).dimensions(),
                (1, 2),
                "orientation {o}"
            );
        }
        assert_eq!(orient(img.clone(), 0).dimensions(), (2, 1));
    }

    #[test]
    fn alpha_flattens_on_white() {
        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0]));
        let rgb = to_rgb8(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0), &image::Rgb([255, 255, 255]));
    }

    #[test]
    fn encoded_jpeg_has_no_app1() {
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 128]));
        let jpeg = encode_jpeg(&img, JPEG_QUALITY).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        assert!(!jpeg.windows(2).any(|w| w == [0xFF, 0xE1]));
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (40, 30));
    }
}
