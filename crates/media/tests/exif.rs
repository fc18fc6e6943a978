//! EXIF extraction from real camera files: GPS, capture time, orientation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_media::{IngestLimits, TakenAt, ingest, read_exif};
use chrono::NaiveDate;
use common::{ingest_photo, photo};

/// Expected values from decoding the raw EXIF rationals independently
/// (exifread): degrees + minutes/60 + seconds/3600, N/E positive.
/// File, latitude, longitude, time of day on 2008-10-22.
type GpsCase = (&'static str, f64, f64, (u32, u32, u32));

const GPS_EXPECTED: &[GpsCase] = &[
    (
        "gps/DSCN0010.jpg",
        43.467_448_333_333_34,
        11.885_126_666_663_888,
        (16, 28, 39),
    ),
    (
        "gps/DSCN0012.jpg",
        43.467_156_666_663_89,
        11.885_394_999_997_223,
        (16, 29, 49),
    ),
    (
        "gps/DSCN0021.jpg",
        43.467_081_666_663_894,
        11.884_538_333_330_555,
        (16, 38, 20),
    ),
    (
        "gps/DSCN0025.jpg",
        43.468_365,
        11.881_634_999_972_222,
        (16, 43, 21),
    ),
    (
        "gps/DSCN0027.jpg",
        43.468_441_666_666_67,
        11.881_515,
        (16, 44, 1),
    ),
];

#[test]
fn gps_and_capture_time_from_nikon_coolpix() {
    for &(file, lat, lon, (h, m, s)) in GPS_EXPECTED {
        let exif = ingest_photo(file).exif;
        let gps = exif.gps.unwrap_or_else(|| panic!("{file}: no GPS"));
        assert!(
            (gps.lat - lat).abs() < 1e-9,
            "{file}: lat {} != {lat}",
            gps.lat
        );
        assert!(
            (gps.lon - lon).abs() < 1e-9,
            "{file}: lon {} != {lon}",
            gps.lon
        );

        // These files carry no OffsetTimeOriginal, so the time is local with
        // an unknown offset.
        let expected = NaiveDate::from_ymd_opt(2008, 10, 22)
            .unwrap()
            .and_hms_opt(h, m, s)
            .unwrap();
        assert_eq!(exif.taken_at, Some(TakenAt::Local(expected)), "{file}");
        assert_eq!(exif.orientation, Some(1), "{file}");
    }
}

#[test]
fn capture_time_of_other_makers() {
    let cases = [
        ("Canon_40D.jpg", (2008, 5, 30), (15, 56, 1)),
        ("Nikon_D70.jpg", (2008, 3, 15), (9, 52, 1)),
        ("exif-org/sony-d700.jpg", (1998, 12, 1), (14, 22, 36)),
        ("mobile/jolla.jpg", (2014, 9, 21), (16, 0, 56)),
    ];
    for (file, (y, mo, d), (h, mi, s)) in cases {
        let exif = read_exif(&photo(file));
        let expected = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap();
        assert_eq!(exif.taken_at.map(|t| t.local()), Some(expected), "{file}");
        assert_eq!(exif.taken_at.and_then(|t| t.offset()), None, "{file}");
        assert_eq!(exif.gps, None, "{file}");
    }
}

#[test]
fn orientation_tags() {
    for (file, o) in [
        ("orientation/landscape_1.jpg", 1),
        ("orientation/landscape_3.jpg", 3),
        ("orientation/landscape_6.jpg", 6),
        ("orientation/landscape_8.jpg", 8),
        ("orientation/portrait_1.jpg", 1),
        ("orientation/portrait_6.jpg", 6),
    ] {
        assert_eq!(read_exif(&photo(file)).orientation, Some(o), "{file}");
    }
}

#[test]
fn missing_exif_is_not_an_error() {
    // These carry only XMP in APP1, no EXIF.
    for file in ["invalid/image01088.jpg", "invalid/image01551.jpg"] {
        let exif = read_exif(&photo(file));
        assert_eq!(exif, Default::default(), "{file}");
    }
    // A PNG made here has no EXIF at all.
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(8, 8))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let ingested = ingest(&png, &IngestLimits::default()).unwrap();
    assert_eq!(ingested.exif, Default::default());
}

type Entry = (u16, u16, u32, Vec<u8>);

/// Builds a minimal little-endian EXIF APP1 segment from IFD0 entries and
/// sub-IFDs (pointer tag, entries), and splices it in after the JPEG's SOI.
fn with_exif(jpeg: &[u8], ifd0: &[Entry], subs: &[(u16, Vec<Entry>)]) -> Vec<u8> {
    let ifd_size = |n: usize| 2 + n * 12 + 4;
    // Layout: header, IFD0, each sub-IFD, then out-of-line values.
    let mut ifds: Vec<Vec<Entry>> = vec![ifd0.to_vec()];
    let mut offset = 8 + ifd_size(ifd0.len() + subs.len());
    for (tag, entries) in subs {
        ifds[0].push((*tag, 4, 1, (offset as u32).to_le_bytes().to_vec()));
        ifds.push(entries.clone());
        offset += ifd_size(entries.len());
    }
    let mut data_off = offset;
    let mut data = Vec::new();
    let mut tiff: Vec<u8> = b"II*\0\x08\0\0\0".to_vec();
    for mut entries in ifds {
        entries.sort_by_key(|e| e.0);
        tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, typ, count, bytes) in &entries {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&typ.to_le_bytes());
            tiff.extend_from_slice(&count.to_le_bytes());
            if bytes.len() <= 4 {
                let mut v = bytes.clone();
                v.resize(4, 0);
                tiff.extend_from_slice(&v);
            } else {
                tiff.extend_from_slice(&(data_off as u32).to_le_bytes());
                data.extend_from_slice(bytes);
                data_off += bytes.len();
            }
        }
        tiff.extend_from_slice(&0u32.to_le_bytes());
    }
    tiff.extend_from_slice(&data);

    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

const EXIF_IFD: u16 = 0x8769;
const GPS_IFD: u16 = 0x8825;

fn rationals(parts: &[(u32, u32)]) -> (u32, Vec<u8>) {
    let mut v = Vec::new();
    for (n, d) in parts {
        v.extend_from_slice(&n.to_le_bytes());
        v.extend_from_slice(&d.to_le_bytes());
    }
    (parts.len() as u32, v)
}

fn gps_ifd(lat_ref: &str, lat: &[(u32, u32)], lon_ref: &str, lon: &[(u32, u32)]) -> Vec<Entry> {
    let (n, la) = rationals(lat);
    let (m, lo) = rationals(lon);
    let (r1, lr) = ascii(lat_ref);
    let (r2, lor) = ascii(lon_ref);
    vec![
        (1, 2, r1, lr),
        (2, 5, n, la),
        (3, 2, r2, lor),
        (4, 5, m, lo),
    ]
}

#[test]
fn southern_and_western_hemispheres_are_negative() {
    let gps = gps_ifd(
        "S",
        &[(33, 1), (52, 1), (1234, 100)],
        "W",
        &[(70, 1), (30, 1), (0, 1)],
    );
    let jpeg = with_exif(&small_jpeg(), &[], &[(GPS_IFD, gps)]);
    let got = read_exif(&jpeg).gps.unwrap();
    assert!((got.lat - -(33.0 + 52.0 / 60.0 + 12.34 / 3600.0)).abs() < 1e-12);
    assert!((got.lon - -70.5).abs() < 1e-12);
}

#[test]
fn impossible_gps_is_dropped() {
    type Dms = &'static [(u32, u32)];
    let cases: [(&str, Dms, &str, Dms); 4] = [
        // Zero denominators: "no fix" on some phones.
        (
            "N",
            &[(0, 0), (0, 0), (0, 0)],
            "E",
            &[(0, 0), (0, 0), (0, 0)],
        ),
        // Latitude beyond the pole.
        (
            "N",
            &[(91, 1), (0, 1), (0, 1)],
            "E",
            &[(10, 1), (0, 1), (0, 1)],
        ),
        // Longitude beyond the antimeridian.
        (
            "N",
            &[(10, 1), (0, 1), (0, 1)],
            "W",
            &[(181, 1), (0, 1), (0, 1)],
        ),
        // Unknown hemisphere letter.
        (
            "X",
            &[(10, 1), (0, 1), (0, 1)],
            "E",
            &[(10, 1), (0, 1), (0, 1)],
        ),
    ];
    for (lat_ref, lat, lon_ref, lon) in cases {
        let jpeg = with_exif(
            &small_jpeg(),
            &[],
            &[(GPS_IFD, gps_ifd(lat_ref, lat, lon_ref, lon))],
        );
        assert_eq!(
            read_exif(&jpeg).gps,
            None,
            "{lat_ref} {lat:?} {lon_ref} {lon:?}"
        );
        // And the photo itself is still accepted.
        assert!(ingest(&jpeg, &IngestLimits::default()).is_ok());
    }
}

#[test]
fn truncated_exif_is_ignored() {
    let (n1, dto) = ascii("2024:03:09 18:45:10");
    let jpeg = with_exif(
        &small_jpeg(),
        &[],
        &[(EXIF_IFD, vec![(0x9003, 2, n1, dto)])],
    );
    // Claim far more IFD entries than the segment holds.
    let pos = jpeg.windows(4).position(|w| w == b"II*\0").unwrap() + 8;
    let mut broken = jpeg.clone();
    broken[pos] = 0xFF;
    broken[pos + 1] = 0x7F;
    let ingested = ingest(&broken, &IngestLimits::default()).unwrap();
    assert_eq!((ingested.width, ingested.height), (16, 16));
}

fn ascii(s: &str) -> (u32, Vec<u8>) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    (v.len() as u32, v)
}

fn small_jpeg() -> Vec<u8> {
    common::reencode(
        &image::RgbImage::from_pixel(16, 16, image::Rgb([90, 120, 200])),
        90,
    )
}

#[test]
fn offset_time_gives_an_exact_instant() {
    let (n1, dto) = ascii("2024:03:09 18:45:10");
    let (n2, off) = ascii("+05:30");
    let (n3, sub) = ascii("25");
    let jpeg = with_exif(
        &small_jpeg(),
        &[],
        &[(
            EXIF_IFD,
            vec![
                (0x9003, 2, n1, dto),
                (0x9011, 2, n2, off),
                (0x9291, 2, n3, sub),
            ],
        )],
    );
    let exif = read_exif(&jpeg);
    let Some(TakenAt::Zoned(dt)) = exif.taken_at else {
        panic!("expected a zoned time, got {:?}", exif.taken_at)
    };
    assert_eq!(dt.to_rfc3339(), "2024-03-09T18:45:10.250+05:30");
    assert_eq!(dt.naive_utc().to_string(), "2024-03-09 13:15:10.250");
}

#[test]
fn nonsense_values_are_dropped_not_fatal() {
    let (n1, dto) = ascii("2024:13:45 99:00:00");
    let (n2, off) = ascii("oops!!");
    let jpeg = with_exif(
        &small_jpeg(),
        &[(0x0112, 3, 1, 9u16.to_le_bytes().to_vec())],
        &[(EXIF_IFD, vec![(0x9003, 2, n1, dto), (0x9011, 2, n2, off)])],
    );
    let ingested = ingest(&jpeg, &IngestLimits::default()).unwrap();
    assert_eq!(ingested.exif.taken_at, None);
    assert_eq!(ingested.exif.orientation, None);
    assert_eq!((ingested.width, ingested.height), (16, 16));

    // A valid time with an unparsable offset keeps the local time.
    let (n1, dto) = ascii("2024:03:09 18:45:10");
    let jpeg = with_exif(
        &small_jpeg(),
        &[],
        &[(
            EXIF_IFD,
            vec![(0x9003, 2, n1, dto), (0x9011, 2, n2, b"oops!!\0".to_vec())],
        )],
    );
    let exif = read_exif(&jpeg);
    assert!(
        matches!(exif.taken_at, Some(TakenAt::Local(_))),
        "{:?}",
        exif.taken_at
    );
}
