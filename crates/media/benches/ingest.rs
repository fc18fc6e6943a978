//! Ingest cost per photo: the whole pipeline against decoding alone (the
//! floor: full size, and at the reduced scale ingest uses for big JPEGs),
//! plus the cheap stages, for a small camera photo and an 8 MP phone photo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use baithak_media::{IngestLimits, MediaType, decode, decode_scaled, ingest, read_exif, sha256_of};
use criterion::{Criterion, criterion_group, criterion_main};

const PHOTOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/photos"
);

fn bench(c: &mut Criterion) {
    let limits = IngestLimits::default();
    for (name, file) in [("0.3MP", "gps/DSCN0010.jpg"), ("8MP", "mobile/jolla.jpg")] {
        let bytes = std::fs::read(format!("{PHOTOS}/{file}")).unwrap();
        let mut group = c.benchmark_group(name);
        group.bench_function("pipeline", |b| {
            b.iter(|| ingest(black_box(&bytes), &limits).unwrap())
        });
        group.bench_function("decode", |b| {
            b.iter(|| decode(black_box(&bytes), MediaType::Jpeg, &limits).unwrap())
        });
        // What ingest actually decodes with: `None` (nothing) for the small photo.
        group.bench_function("decode_scaled", |b| {
            b.iter(|| decode_scaled(black_box(&bytes), &limits).unwrap())
        });
        group.bench_function("sha256", |b| b.iter(|| sha256_of(black_box(&bytes))));
        group.bench_function("exif", |b| b.iter(|| read_exif(black_box(&bytes))));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
