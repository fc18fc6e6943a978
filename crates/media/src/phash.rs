//! Perceptual hashing: a 64-bit DCT pHash that stays close under recompression,
//! resizing and light cropping, so a photo re-submitted as new evidence is caught.

use std::sync::LazyLock;

use image::RgbImage;
use image_hasher::{HashAlg, Hasher, HasherConfig};

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
    let hash = HASHER.hash_image(img);
    let mut word = [0u8; 8];
    // An 8x8 hash is exactly 8 bytes; copying by length keeps a surprise from
    // the library from becoming a panic.
    for (dst, src) in word.iter_mut().zip(hash.as_bytes()) {
        *dst = *src;
    }
    u64::from_le_bytes(word)
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
}
