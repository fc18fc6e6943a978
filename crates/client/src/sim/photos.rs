//! Photos for simulated meetings: real JPEGs made unique by a comment segment, or
//! synthetic ones whose content (and so perceptual hash) differs from photo to photo.

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// Where the simulator's photos come from.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotoSource {
    /// Real JPEGs; each use gets a unique comment segment (distinct SHA-256, same
    /// pixels, so the server will flag reuse as `duplicate_photo`, which does not stop a
    /// meeting being stored).
    Jpegs(Vec<Vec<u8>>),
    /// Synthetic JPEGs of this size with distinct content. Noise varies per photo so
    /// their sizes spread (some above the resumable-upload threshold).
    Generate { width: u32, height: u32 },
}

impl PhotoSource {
    /// Every `*.jpg`/`*.jpeg` in `dir`.
    pub fn from_dir(dir: &Path) -> Result<PhotoSource> {
        let mut photos = Vec::new();
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect();
        paths.sort();
        for p in paths {
            let bytes =
                std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
                photos.push(bytes);
            }
        }
        if photos.is_empty() {
            bail!("no JPEG files in {}", dir.display());
        }
        Ok(PhotoSource::Jpegs(photos))
    }

    /// The `n`th photo, unique to `tag`.
    pub fn make(&self, seed: u64, tag: &str) -> Result<Vec<u8>> {
        match self {
            PhotoSource::Jpegs(list) => {
                let i = usize::try_from(seed % list.len() as u64).unwrap_or(0);
                tag_jpeg(&list[i], tag.as_bytes()).context("not a JPEG")
            }
            PhotoSource::Generate { width, height } => {
                let jpeg = synthetic_jpeg(seed, *width, *height)?;
                tag_jpeg(&jpeg, tag.as_bytes()).context("encoder made no JPEG")
            }
        }
    }
}

/// Inserts a COM (comment) segment carrying `tag` after the leading APPn segments
/// (JFIF, EXIF stay first), so the file stays a valid JPEG with a new SHA-256.
pub fn tag_jpeg(jpeg: &[u8], tag: &[u8]) -> Option<Vec<u8>> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    // Skip APP0..APP15 segments: marker FF Ex, then a big-endian length that counts
    // itself.
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF && (0xE0..=0xEF).contains(&jpeg[at + 1]) {
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        if len < 2 || at + 2 + len > jpeg.len() {
            return None;
        }
        at += 2 + len;
    }
    let tag = &tag[..tag.len().min(65_533)];
    let len = u16::try_from(tag.len() + 2).ok()?;
    let mut out = Vec::with_capacity(jpeg.len() + tag.len() + 4);
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(tag);
    out.extend_from_slice(&jpeg[at..]);
    Some(out)
}

/// A JPEG whose large-scale structure (a random 4x4 colour field, smoothly blended)
/// comes from `seed`, so two seeds give perceptually different photos; fine noise of a
/// seed-chosen strength varies the file size.
pub fn synthetic_jpeg(seed: u64, width: u32, height: u32) -> Result<Vec<u8>> {
    if !(16..=8000).contains(&width) || !(16..=8000).contains(&height) {
        bail!("synthetic photos must be 16 to 8000 pixels a side");
    }
    let mut rng = StdRng::seed_from_u64(seed);
    const G: usize = 4;
    let mut grid = [[[0f32; 3]; G]; G];
    for row in grid.iter_mut() {
        for cell in row.iter_mut() {
            for c in cell.iter_mut() {
                *c = f32::from(rng.gen_range(0u8..=255));
            }
        }
    }
    let noise: u32 = rng.gen_range(0..48);
    let mut state: u32 = rng.r#gen::<u32>() | 1;
    let (w, h) = (width as usize, height as usize);
    let mut pixels = vec![0u8; w * h * 3];
    let fx = (G - 1) as f32 / (w - 1) as f32;
    let fy = (G - 1) as f32 / (h - 1) as f32;
    for y in 0..h {
        let gy = y as f32 * fy;
        let y0 = (gy as usize).min(G - 2);
        let ty = gy - y0 as f32;
        for x in 0..w {
            let gx = x as f32 * fx;
            let x0 = (gx as usize).min(G - 2);
            let tx = gx - x0 as f32;
            let i = (y * w + x) * 3;
            for c in 0..3 {
                let top = grid[y0][x0][c] * (1.0 - tx) + grid[y0][x0 + 1][c] * tx;
                let bottom = grid[y0 + 1][x0][c] * (1.0 - tx) + grid[y0 + 1][x0 + 1][c] * tx;
                let mut v = top * (1.0 - ty) + bottom * ty;
                if noise > 0 {
                    // xorshift32: cheap per-pixel noise.
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    v += (state % (2 * noise + 1)) as f32 - noise as f32;
                }
                pixels[i + c] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, 88);
    encoder
        .encode(
            &pixels,
            u16::try_from(width)?,
            u16::try_from(height)?,
            jpeg_encoder::ColorType::Rgb,
        )
        .context("encoding a synthetic JPEG")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(jpeg: &[u8]) -> Vec<u8> {
        // Marker bytes of the segments before the scan.
        let mut out = Vec::new();
        let mut at = 2;
        while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
            let marker = jpeg[at + 1];
            out.push(marker);
            if marker == 0xDA {
                break;
            }
            let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            at += 2 + len;
        }
        out
    }

    #[test]
    fn tagging_keeps_the_jpeg_structure_and_changes_the_hash() {
        let jpeg = synthetic_jpeg(1, 64, 48).unwrap();
        let a = tag_jpeg(&jpeg, b"one").unwrap();
        let b = tag_jpeg(&jpeg, b"two").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), jpeg.len() + 4 + 3);
        let before = segments(&jpeg);
        let after = segments(&a);
        assert_eq!(
            after.iter().filter(|m| **m == 0xFE).count(),
            1,
            "{after:x?}"
        );
        // APPn first, then the comment, then the rest unchanged.
        let apps = before
            .iter()
            .take_while(|m| (0xE0..=0xEF).contains(*m))
            .count();
        assert_eq!(after[apps], 0xFE);
        assert_eq!(&after[..apps], &before[..apps]);
        assert_eq!(&after[apps + 1..], &before[apps..]);
        assert!(a.ends_with(&[0xFF, 0xD9]));
        assert_eq!(tag_jpeg(b"not a jpeg", b"x"), None);
    }

    #[test]
    fn synthetic_photos_differ_and_are_deterministic() {
        let a = synthetic_jpeg(10, 80, 60).unwrap();
        let b = synthetic_jpeg(11, 80, 60).unwrap();
        assert_eq!(a, synthetic_jpeg(10, 80, 60).unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(&[0xFF, 0xD8, 0xFF]) && a.ends_with(&[0xFF, 0xD9]));
        let src = PhotoSource::Generate {
            width: 80,
            height: 60,
        };
        assert_ne!(src.make(5, "x").unwrap(), src.make(5, "y").unwrap());
    }
}
