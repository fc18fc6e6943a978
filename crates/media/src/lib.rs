//! Photo ingest for baithak and blob storage.
//!
//! Field workers' meeting photos are evidence, so ingest keeps the original
//! bytes unchanged under their SHA-256, reads when and where they were taken
//! from EXIF, derives upright metadata-free renditions for viewing, and computes
//! a perceptual hash that catches a photo re-used from an earlier meeting even
//! after recompression, resizing or light cropping.
//!
//! - [`ingest`] does the CPU work for one photo; [`IngestPool`] bounds how much
//!   of it runs at once.
//! - [`BlobStore`] stores originals and renditions on disk or S3.
//!
//! This crate knows nothing about HTTP; every [`IngestError`] is the client's
//! fault and maps to 415/422/413, and [`PoolError::Busy`] to 503.

mod blob;
mod derive;
mod hash;
mod ingest;
mod media_type;
mod metadata;
mod parts;
mod phash;
mod planar;
mod pool;
mod scaled;
mod strip;

pub use blob::{BlobError, BlobReader, BlobStore, Variant};
pub use derive::{DISPLAY_MAX_SIDE, JPEG_QUALITY, THUMB_MAX_SIDE, fit_within};
pub use hash::{ParseSha256Error, Sha256, Sha256Hasher, sha256_of};
pub use ingest::{
    IngestError, IngestLimits, Ingested, decode, decode_scaled, ingest, ingest_claimed,
};
pub use media_type::MediaType;
pub use metadata::{ExifInfo, Gps, TakenAt, read_exif};
pub use parts::{PartsError, SharedParts};
pub use phash::{phash, phash_distance};
pub use pool::{Admission, IngestPool, PoolError, PoolLimits, default_workers};
pub use scaled::ScaledJpeg;
