//! Perceptual hash behaviour on real photos: near-copies stay close, different
//! photos stay apart. Run with `--nocapture` to see the distances.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_media::{IngestLimits, ingest, phash_distance};
use common::{all_photos, photo, reencode};

const NEAR: u32 = 10;
const FAR: u32 = 20;

fn phash_of(bytes: &[u8]) -> u64 {
    ingest(bytes, &IngestLimits::default()).unwrap().phash
}

fn decode(file: &str) -> image::RgbImage {
    image::load_from_memory(&photo(file)).unwrap().into_rgb8()
}

/// Photos whose EXIF orientation is 1, so the raw pixels are upright and the
/// edited copies made here (which carry no EXIF) show the same picture.
const SUBJECTS: &[&str] = &[
    "Canon_40D.jpg",
    "Nikon_D70.jpg",
    "exif-org/sony-d700.jpg",
    "gps/DSCN0010.jpg",
    "gps/DSCN0021.jpg",
    "mobile/jolla.jpg",
    "orientation/landscape_1.jpg",
    "orientation/portrait_1.jpg",
];

#[test]
fn near_copies_stay_close() {
    let mut worst = [0u32; 4];
    for &file in SUBJECTS {
        let original = phash_of(&photo(file));
        let img = decode(file);
        let (w, h) = img.dimensions();

        let recompressed = phash_of(&reencode(&img, 60));
        let half =
            image::imageops::resize(&img, w / 2, h / 2, image::imageops::FilterType::Triangle);
        let resized = phash_of(&reencode(&half, 90));
        // Keep the centred 97% of each side.
        let (cw, ch) = (w * 97 / 100, h * 97 / 100);
        let crop = image::imageops::crop_imm(&img, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image();
        let cropped = phash_of(&reencode(&crop, 90));
        // For information: 3% off every edge (94% of each side kept).
        let (cw, ch) = (w * 94 / 100, h * 94 / 100);
        let crop6 = image::imageops::crop_imm(&img, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image();
        let cropped6 = phash_of(&reencode(&crop6, 90));

        let d = [
            phash_distance(original, recompressed),
            phash_distance(original, resized),
            phash_distance(original, cropped),
            phash_distance(original, cropped6),
        ];
        println!(
            "{file:32} q60 {:2}  50% {:2}  crop97% {:2}  (crop94% {:2})",
            d[0], d[1], d[2], d[3]
        );
        for (w, v) in worst.iter_mut().zip(d) {
            *w = (*w).max(v);
        }
        assert!(
            d[0] <= NEAR,
            "{file}: recompressed copy is {} bits away",
            d[0]
        );
        assert!(d[1] <= NEAR, "{file}: 50% copy is {} bits away", d[1]);
        assert!(d[2] <= NEAR, "{file}: 97% crop is {} bits away", d[2]);
    }
    println!(
        "worst: q60 {}  50% {}  crop97% {}  (crop94% {})",
        worst[0], worst[1], worst[2], worst[3]
    );
}

#[test]
fn distinct_photos_stay_apart() {
    // The orientation set is one scene per aspect written four and two ways;
    // only its upright originals count as distinct photos.
    let files: Vec<String> = all_photos()
        .into_iter()
        .filter(|f| !f.starts_with("orientation/") || f.ends_with("_1.jpg"))
        .collect();
    let hashes: Vec<(String, u64)> = files
        .iter()
        .filter_map(|f| {
            ingest(&photo(f), &IngestLimits::default())
                .ok()
                .map(|i| (f.clone(), i.phash))
        })
        .collect();
    assert!(hashes.len() >= 12, "only {} photos ingested", hashes.len());

    let short = |f: &str| {
        f.rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".jpg")
            .to_string()
    };
    print!("{:>14}", "");
    for (f, _) in &hashes {
        print!(" {:>5.5}", short(f));
    }
    println!();
    let mut closest = (u32::MAX, String::new(), String::new());
    let mut too_close = Vec::new();
    for (i, (fa, a)) in hashes.iter().enumerate() {
        print!("{:>14.14}", short(fa));
        for (j, (fb, b)) in hashes.iter().enumerate() {
            let d = phash_distance(*a, *b);
            if j == i {
                print!(" {:>5}", "-");
                continue;
            }
            print!(" {d:>5}");
            if j > i {
                if d < closest.0 {
                    closest = (d, fa.clone(), fb.clone());
                }
                if d < FAR {
                    too_close.push(format!("{fa} vs {fb}: {d}"));
                }
            }
        }
        println!();
    }
    println!(
        "closest distinct pair: {} vs {} at {} bits",
        closest.1, closest.2, closest.0
    );
    assert!(
        too_close.is_empty(),
        "distinct photos closer than {FAR} bits: {too_close:#?}"
    );
}
