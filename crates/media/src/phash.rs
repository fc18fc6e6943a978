//! Perceptual hashing: a 64-bit DCT pHash that stays close under recompression,
//! resizing and light cropping, so a photo re-submitted as new evidence is caught.

use std::sync::LazyLock;

use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use image_hasher::{HashAlg, Hasher, HasherConfig};

/// The side of the square the DCT reads: twice the 8x8 hash, as image_hasher's
/// DCT preprocessing sizes it.
pub(crate) const DCT_SIDE: u32 = 16;

// Building the hasher plans a DCT; doing that once per process keeps it off
// the per-photo path.
static HASHER: LazyLock<Hasher> = LazyLock::new(|| {
    HasherConfig::new()
        .hash_size(8, 8)
        .preproc_dct()
        .hash_alg(HashAlg::Median)
        .to_hasher()
});

/// The 64-bit pHash of an upright image.
///
/// Call it on the same kind of input every time (ingest uses the upright
/// 320 px thumbnail) so hashes from different uploads are comparable.
pub fn phash(img: &RgbImage) -> u64 {
    let hash = match shrink_for_dct(img) {
        Some(small) => HASHER.hash_image(&small),
        None => HASHER.hash_image(img),
    };
    let mut word = [0u8; 8];
    // An 8x8 hash is exactly 8 bytes; copying by length keeps a surprise from
    // the library from becoming a panic.
    for (dst, src) in word.iter_mut().zip(hash.as_bytes()) {
        *dst = *src;
    }
    u64::from_le_bytes(word)
}

/// The image squeezed to the DCT's 16x16 input with the hasher's own filter
/// (Lanczos3), or `None` to leave that to the hasher.
///
/// image_hasher makes the image grey and then resizes it with `image`'s generic
/// resampler, which for a 320 px thumbnail was about a seventh of a small photo's
/// whole ingest. The same filter in fast_image_resize's SIMD code, on the colour
/// image (the grey conversion is linear, so the order barely matters), hands the
/// hasher an input it has nothing left to resize. Hashes move by a bit or two at
/// most against the hasher's own resize; the `phash` tests hold the bounds.
fn shrink_for_dct(img: &RgbImage) -> Option<RgbImage> {
    if img.width() <= DCT_SIDE || img.height() <= DCT_SIDE {
        return None;
    }
    let mut dst = fr::images::Image::new(DCT_SIDE, DCT_SIDE, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    Resizer::new().resize(img, &mut dst, &opts).ok()?;
    RgbImage::from_raw(DCT_SIDE, DCT_SIDE, dst.into_vec())
}

/// Hamming distance between two pHashes: 0 is identical, around 32 is unrelated.
pub fn phash_distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_popcount() {
        assert_eq!(phash_distance(0, 0), 0);
        assert_eq!(phash_distance(0, u64::MAX), 64);
        assert_eq!(phash_distance(0b1011, 0b0001), 2);
    }

    #[test]
    fn hash_is_deterministic_and_content_sensitive() {
        let gradient =
            RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 0]));
        let checker = RgbImage::from_fn(64, 48, |x, y| {
            let v = if (x / 8 + y / 8) % 2 == 0 { 255 } else { 0 };
            image::Rgb([v, v, v])
        });
        assert_eq!(phash(&gradient), phash(&gradient));
        assert!(phash_distance(phash(&gradient), phash(&checker)) > 10);
    }

    /// The hash as image_hasher makes it from the whole image.
    fn hasher_own(img: &RgbImage) -> u64 {
        let mut word = [0u8; 8];
        for (dst, src) in word.iter_mut().zip(HASHER.hash_image(img).as_bytes()) {
            *dst = *src;
        }
        u64::from_le_bytes(word)
    }

    #[test]
    fn shrinking_first_moves_real_photos_hashes_by_two_bits_at_most() {
        #![allow(clippy::unwrap_used)]
        let photos = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata/photos"
        );
        for file in [
            "gps/DSCN0010.jpg",
            "Canon_40D.jpg",
            "mobile/jolla.jpg",
            "Nikon_D70.jpg",
        ] {
            let bytes = std::fs::read(format!("{photos}/{file}")).unwrap();
            let img = image::load_from_memory(&bytes).unwrap().into_rgb8();
            let (w, h) = crate::derive::fit_within(img.width(), img.height(), 320);
            let thumb = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            let dist = phash_distance(phash(&thumb), hasher_own(&thumb));
            assert!(
                dist <= 2,
                "{file}: {dist} bits from image_hasher's own resize"
            );
        }
    }
}
