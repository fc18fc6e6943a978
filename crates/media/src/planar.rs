//! Renditions of a big Y'CbCr JPEG made in Y'CbCr, never in RGB.
//!
//! A JPEG stores luma at full resolution and chroma (usually) at half. Going
//! through RGB means upsampling chroma and converting colour in the decoder,
//! resizing three full-resolution channels, then converting back and dropping
//! the chroma resolution again in the encoder. Here the decoder hands over its
//! planes, luma is resized on its own and the two chroma planes together at half
//! the rendition's size (what a 4:2:0 rendition stores), and the encoder takes the
//! planes as they are: half the samples to resize, no colour conversion on
//! either side. Chroma is filtered down rather than point-sampled, as the
//! encoder does with RGB input. An 8 MP phone photo's whole ingest, pinned to one
//! core: 34.7 ms through RGB, 29.9 ms here (`taskset -c 0 cargo bench -p
//! baithak-media --bench ingest -- 8MP/pipeline`).

use std::borrow::Cow;

use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GrayImage, RgbImage};

use crate::derive::{DISPLAY_MAX_SIDE, DeriveError, THUMB_MAX_SIDE, fit_within};

/// One component plane. Rows are `stride` bytes apart; the first `width` bytes of
/// each are samples (a decoder pads rows to whole blocks).
#[derive(Debug, Clone)]
pub(crate) struct Plane {
    pub data: Vec<u8>,
    pub stride: usize,
    pub width: u32,
    pub height: u32,
}

impl Plane {
    /// `None` when `data` is too short for the geometry it claims.
    pub fn new(data: Vec<u8>, stride: usize, width: u32, height: u32) -> Option<Plane> {
        let (w, h) = (usize::try_from(width).ok()?, usize::try_from(height).ok()?);
        let need = stride.checked_mul(h.checked_sub(1)?)?.checked_add(w)?;
        (w > 0 && stride >= w && data.len() >= need).then_some(Plane {
            data,
            stride,
            width,
            height,
        })
    }

    fn tight(data: Vec<u8>, width: u32, height: u32) -> Plane {
        Plane {
            data,
            stride: width as usize,
            width,
            height,
        }
    }

    /// The plane resized to exactly `size` (rows made tight on the way).
    fn resized(
        &self,
        resizer: &mut Resizer,
        (w, h): (u32, u32),
        filter: fr::FilterType,
    ) -> Result<Plane, DeriveError> {
        // The filter reads past a crop box's edge when there are pixels there, so the
        // decoder's row padding must go before resizing (a copy of at most a few
        // columns' worth of work: padding is under one block).
        let samples = self.samples();
        let src = (&samples[..], (self.width, self.height));
        let data = resize_samples(resizer, src, (w, h), PixelType::U8, filter)?;
        Ok(Plane::tight(data, w, h))
    }

    /// The samples, row after row, without padding.
    fn samples(&self) -> Cow<'_, [u8]> {
        let (w, h) = (self.width as usize, self.height as usize);
        if self.stride == w {
            return Cow::Borrowed(self.data.get(..w * h).unwrap_or(&self.data));
        }
        Cow::Owned(
            self.data
                .chunks(self.stride)
                .take(h)
                .flat_map(|row| row.get(..w).unwrap_or(row))
                .copied()
                .collect(),
        )
    }

    /// The plane turned upright by an EXIF orientation (1..=8).
    fn oriented(self, exif_orientation: u8) -> Result<Plane, DeriveError> {
        use image::metadata::Orientation;
        let Some(o) =
            Orientation::from_exif(exif_orientation).filter(|o| *o != Orientation::NoTransforms)
        else {
            return Ok(self);
        };
        let tight = self.samples().into_owned();
        let gray = GrayImage::from_raw(self.width, self.height, tight)
            .ok_or_else(|| DeriveError::Resize("plane shorter than its size".into()))?;
        let mut dynamic = DynamicImage::ImageLuma8(gray);
        dynamic.apply_orientation(o);
        let gray = dynamic.into_luma8();
        let (w, h) = gray.dimensions();
        Ok(Plane::tight(gray.into_raw(), w, h))
    }

    fn sample(&self, x: u32, y: u32) -> u8 {
        self.data
            .get(y as usize * self.stride + x as usize)
            .copied()
            .unwrap_or(128)
    }
}

/// Tightly packed samples of `size` resized to exactly `(w, h)`.
fn resize_samples(
    resizer: &mut Resizer,
    (samples, (sw, sh)): (&[u8], (u32, u32)),
    (w, h): (u32, u32),
    pixel_type: PixelType,
    filter: fr::FilterType,
) -> Result<Vec<u8>, DeriveError> {
    let resize_err = |e: &dyn std::fmt::Display| DeriveError::Resize(e.to_string());
    let src = fr::images::ImageRef::new(sw, sh, samples, pixel_type).map_err(|e| resize_err(&e))?;
    let mut dst = fr::images::Image::new(w, h, pixel_type);
    // Two-channel pixels are luma + alpha to fast_image_resize, which would weight
    // each Cb sample by its Cr (premultiply, filter, divide): off-colour edges, and
    // Cb lost wherever Cr is 0.
    let opts = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(filter))
        .use_alpha(false);
    resizer
        .resize(&src, &mut dst, &opts)
        .map_err(|e| resize_err(&e))?;
    Ok(dst.into_vec())
}

/// A Y'CbCr image as three planes, chroma at any resolution up to luma's.
#[derive(Debug, Clone)]
pub(crate) struct Ycc {
    pub y: Plane,
    pub cb: Plane,
    pub cr: Plane,
}

/// Chroma size of a 4:2:0 image of luma size `(w, h)`.
fn half((w, h): (u32, u32)) -> (u32, u32) {
    (w.div_ceil(2), h.div_ceil(2))
}

impl Ycc {
    /// Resized to luma size `size` with 4:2:0 chroma.
    fn resized(
        &self,
        resizer: &mut Resizer,
        size: (u32, u32),
        filter: fr::FilterType,
    ) -> Result<Ycc, DeriveError> {
        let (cb, cr) = self.chroma_resized(resizer, half(size), filter)?;
        Ok(Ycc {
            y: self.y.resized(resizer, size, filter)?,
            cb,
            cr,
        })
    }

    /// Both chroma planes resized to `(w, h)`. They go through the resizer as one
    /// two-channel image: fast_image_resize's one-channel kernels take nearly as
    /// long per pixel as its two-channel ones, so interleaving (and splitting
    /// afterwards) halves the filtering work.
    fn chroma_resized(
        &self,
        resizer: &mut Resizer,
        (w, h): (u32, u32),
        filter: fr::FilterType,
    ) -> Result<(Plane, Plane), DeriveError> {
        if (self.cb.width, self.cb.height) != (self.cr.width, self.cr.height) {
            return Err(DeriveError::Resize("chroma planes differ in size".into()));
        }
        let (cb, cr) = (self.cb.samples(), self.cr.samples());
        let interleaved: Vec<u8> = cb
            .iter()
            .zip(cr.iter())
            .flat_map(|(&b, &r)| [b, r])
            .collect();
        let src = (&interleaved[..], (self.cb.width, self.cb.height));
        let both = resize_samples(resizer, src, (w, h), PixelType::U8x2, filter)?;
        let cb = both.iter().step_by(2).copied().collect();
        let cr = both.iter().skip(1).step_by(2).copied().collect();
        Ok((Plane::tight(cb, w, h), Plane::tight(cr, w, h)))
    }

    fn oriented(self, exif_orientation: u8) -> Result<Ycc, DeriveError> {
        Ok(Ycc {
            y: self.y.oriented(exif_orientation)?,
            cb: self.cb.oriented(exif_orientation)?,
            cr: self.cr.oriented(exif_orientation)?,
        })
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.y.width, self.y.height)
    }

    /// The image squeezed to `side` x `side` (every plane with Lanczos3), in RGB:
    /// the input [`crate::phash`] shrinks its RGB thumbnail to, made without
    /// converting the whole thumbnail first.
    pub fn shrunk_rgb(&self, side: u32) -> Result<RgbImage, DeriveError> {
        let mut resizer = Resizer::new();
        let filter = fr::FilterType::Lanczos3;
        let y = self.y.resized(&mut resizer, (side, side), filter)?;
        let (cb, cr) = self.chroma_resized(&mut resizer, (side, side), filter)?;
        Ok(Ycc { y, cb, cr }.to_rgb())
    }

    /// RGB by the JFIF equations, chroma by nearest sample.
    fn to_rgb(&self) -> RgbImage {
        let (w, h) = self.dimensions();
        let scale = |v: u32, full: u32, part: u32| {
            (u64::from(v) * u64::from(part) / u64::from(full.max(1))) as u32
        };
        RgbImage::from_fn(w, h, |x, y| {
            let luma = f32::from(self.y.sample(x, y));
            let cx = scale(x, w, self.cb.width);
            let cy = scale(y, h, self.cb.height);
            let cb = f32::from(self.cb.sample(cx, cy)) - 128.0;
            let cr = f32::from(self.cr.sample(cx, cy)) - 128.0;
            let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            image::Rgb([
                clamp(luma + 1.402 * cr),
                clamp(luma - 0.344_136 * cb - 0.714_136 * cr),
                clamp(luma + 1.772 * cb),
            ])
        })
    }

    /// Baseline 4:2:0 JPEG with a bare JFIF header, like [`crate::derive::encode_jpeg`].
    pub fn encode_jpeg(&self, quality: u8) -> Result<Vec<u8>, DeriveError> {
        let encode_err = |what: &str| DeriveError::Encode(what.into());
        let (w, h) = self.dimensions();
        let w = u16::try_from(w).map_err(|_| encode_err("too wide"))?;
        let h = u16::try_from(h).map_err(|_| encode_err("too tall"))?;
        let image = rusty_jpeg::encode::PlanarYcbcrImage::new(
            &self.y.data,
            &self.cb.data,
            &self.cr.data,
            [self.y.stride, self.cb.stride, self.cr.stride],
            w,
            h,
            (2, 2),
        )
        .ok_or_else(|| encode_err("planes do not match a 4:2:0 image"))?;
        let mut out = Vec::with_capacity(self.y.data.len() / 4);
        let mut encoder = rusty_jpeg::encode::Encoder::new(&mut out, quality);
        encoder.set_sampling_factor(image.sampling_factor());
        encoder
            .encode_image(image)
            .map_err(|e| DeriveError::Encode(e.to_string()))?;
        Ok(out)
    }
}

/// Upright display and thumbnail, in Y'CbCr 4:2:0.
pub(crate) struct YccRenditions {
    pub display: Ycc,
    pub thumb: Ycc,
}

/// Both renditions of a photo whose stored (pre-orientation) size is
/// `full_size`, from its planes decoded at that size or a reduced scale; the
/// sizes and filters are those of [`crate::derive::renditions`].
pub(crate) fn renditions(
    planes: &Ycc,
    full_size: (u32, u32),
    exif_orientation: u8,
) -> Result<YccRenditions, DeriveError> {
    let mut resizer = Resizer::new();
    let display_size = fit_within(full_size.0, full_size.1, DISPLAY_MAX_SIDE);
    let display = planes
        .resized(&mut resizer, display_size, fr::FilterType::CatmullRom)?
        .oriented(exif_orientation)?;
    let (w, h) = display.dimensions();
    let thumb_size = fit_within(w, h, THUMB_MAX_SIDE);
    let thumb = display.resized(&mut resizer, thumb_size, crate::derive::THUMB_FILTER)?;
    Ok(YccRenditions { display, thumb })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::derive::orient;

    fn plane(w: u32, h: u32, stride: usize, f: impl Fn(u32, u32) -> u8) -> Plane {
        let mut data = vec![0xEE; stride * h as usize];
        for y in 0..h {
            for x in 0..w {
                data[y as usize * stride + x as usize] = f(x, y);
            }
        }
        Plane::new(data, stride, w, h).unwrap()
    }

    #[test]
    fn padding_never_reaches_a_resized_plane() {
        // Padding bytes are 0xEE; a flat 100 plane must stay flat through the
        // filter, edges included.
        let p = plane(37, 23, 48, |_, _| 100);
        let out = p
            .resized(&mut Resizer::new(), (17, 11), fr::FilterType::CatmullRom)
            .unwrap();
        assert_eq!((out.width, out.height, out.stride), (17, 11, 17));
        assert!(out.data.iter().all(|&v| v == 100), "{:?}", out.data);
    }

    #[test]
    fn chroma_planes_are_resized_independently() {
        // Cr steps from 0 to 255 with Cb flat at 100: treated as alpha, the 0 half
        // would take Cb down to 0 and the edge would smear it.
        let ycc = Ycc {
            y: plane(40, 20, 40, |_, _| 128),
            cb: plane(20, 10, 20, |_, _| 100),
            cr: plane(20, 10, 20, |x, _| if x < 10 { 0 } else { 255 }),
        };
        let (cb, cr) = ycc
            .chroma_resized(&mut Resizer::new(), (7, 3), fr::FilterType::Lanczos3)
            .unwrap();
        assert!(cb.data.iter().all(|&v| v == 100), "{:?}", cb.data);
        // Cr keeps its step (Lanczos3 rings by a few levels next to it).
        let row = &cr.data[..7];
        assert!(row[..3].iter().all(|&v| v <= 8), "{row:?}");
        assert!(row[4..].iter().all(|&v| v >= 247), "{row:?}");
    }

    #[test]
    fn planes_turn_like_rgb_images() {
        let p = plane(3, 2, 8, |x, y| (10 * y + x) as u8);
        let rgb = RgbImage::from_fn(3, 2, |x, y| {
            let v = (10 * y + x) as u8;
            image::Rgb([v, v, v])
        });
        for o in 1..=8 {
            let turned = p.clone().oriented(o).unwrap();
            let want = orient(rgb.clone(), o);
            assert_eq!((turned.width, turned.height), want.dimensions(), "{o}");
            let got = turned.samples().into_owned();
            let want: Vec<u8> = want.pixels().map(|px| px.0[0]).collect();
            assert_eq!(got, want, "orientation {o}");
        }
    }

    #[test]
    fn short_planes_are_refused() {
        assert!(Plane::new(vec![0; 10], 4, 4, 3).is_none());
        assert!(Plane::new(vec![0; 12], 3, 4, 3).is_none());
        assert!(Plane::new(vec![0; 11], 4, 3, 3).is_some());
        assert!(Plane::new(Vec::new(), 0, 0, 0).is_none());
    }

    #[test]
    fn grey_and_colours_survive_the_round_trip() {
        // Flat colours in Y'CbCr (JFIF): mid grey, and a saturated orange.
        for (y, cb, cr, rgb) in [
            (128, 128, 128, [128, 128, 128]),
            (151, 44, 202, [255, 125, 3]),
        ] {
            let img = Ycc {
                y: plane(64, 48, 64, |_, _| y),
                cb: plane(32, 24, 40, |_, _| cb),
                cr: plane(32, 24, 40, |_, _| cr),
            };
            let back = img.to_rgb();
            let px = back.get_pixel(10, 10).0;
            for (got, want) in px.iter().zip(rgb) {
                assert!(got.abs_diff(want) <= 2, "{px:?} vs {rgb:?}");
            }
            let jpeg = img.encode_jpeg(80).unwrap();
            assert!(
                !jpeg.windows(2).any(|w| w == [0xFF, 0xE1]),
                "metadata written"
            );
            let decoded = image::load_from_memory(&jpeg).unwrap().into_rgb8();
            assert_eq!(decoded.dimensions(), (64, 48));
            let px = decoded.get_pixel(30, 20).0;
            for (got, want) in px.iter().zip(rgb) {
                assert!(got.abs_diff(want) <= 4, "{px:?} vs {rgb:?}");
            }
        }
    }
}
