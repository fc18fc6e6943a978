//! EXIF facts an evidence photo carries: when it was taken, where, and which
//! way up it is. Everything here is best-effort: missing or broken EXIF yields
//! `None` fields, never an error, because a photo without EXIF is still a photo.

use std::io::Cursor;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use exif::{Exif, Field, In, Tag, Value};

/// When the shutter fired, as the camera's clock saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenAt {
    /// `DateTimeOriginal` together with `OffsetTimeOriginal`: an exact instant.
    Zoned(DateTime<FixedOffset>),
    /// `DateTimeOriginal` alone: the camera's local wall-clock time with an
    /// unknown offset. Must not be treated as UTC.
    Local(NaiveDateTime),
}

impl TakenAt {
    /// The wall-clock reading on the camera, whichever variant.
    pub fn local(&self) -> NaiveDateTime {
        match self {
            TakenAt::Zoned(dt) => dt.naive_local(),
            TakenAt::Local(dt) => *dt,
        }
    }

    pub fn offset(&self) -> Option<FixedOffset> {
        match self {
            TakenAt::Zoned(dt) => Some(*dt.offset()),
            TakenAt::Local(_) => None,
        }
    }
}

/// A WGS84 position in signed decimal degrees (south and west negative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
}

/// The EXIF fields ingest cares about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifInfo {
    pub taken_at: Option<TakenAt>,
    pub gps: Option<Gps>,
    /// EXIF orientation 1..=8; `None` when absent or out of range (treated as 1).
    pub orientation: Option<u8>,
}

/// Reads EXIF from a JPEG, PNG (`eXIf`) or WebP container.
pub fn read_exif(bytes: &[u8]) -> ExifInfo {
    // continue_on_error salvages the readable fields of a half-broken IFD,
    // which is common in photos that passed through messaging apps.
    let parsed = exif::Reader::new()
        .continue_on_error(true)
        .read_from_container(&mut Cursor::new(bytes))
        .or_else(|e| {
            e.distill_partial_result(|errors| {
                tracing::debug!(count = errors.len(), "ignoring broken EXIF entries");
            })
        });
    match parsed {
        Ok(exif) => from_exif(&exif),
        Err(e) => {
            tracing::debug!(error = %e, "no usable EXIF");
            ExifInfo::default()
        }
    }
}

fn from_exif(exif: &Exif) -> ExifInfo {
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|o| (1..=8).contains(o))
        .and_then(|o| u8::try_from(o).ok());
    ExifInfo {
        taken_at: taken_at(exif),
        gps: gps(exif),
        orientation,
    }
}

fn ascii(field: Option<&Field>) -> Option<&[u8]> {
    match &field?.value {
        Value::Ascii(v) => v.first().map(Vec::as_slice),
        _ => None,
    }
}

fn taken_at(exif: &Exif) -> Option<TakenAt> {
    let raw = ascii(exif.get_field(Tag::DateTimeOriginal, In::PRIMARY))?;
    let mut dt = exif::DateTime::from_ascii(raw).ok()?;
    if let Some(sub) = ascii(exif.get_field(Tag::SubSecTimeOriginal, In::PRIMARY)) {
        // A garbled sub-second field must not cost us the whole timestamp.
        if dt.parse_subsec(sub).is_err() {
            dt.nanosecond = None;
        }
    }
    if let Some(off) = ascii(exif.get_field(Tag::OffsetTimeOriginal, In::PRIMARY))
        && dt.parse_offset(off).is_err()
    {
        dt.offset = None;
    }

    let date = NaiveDate::from_ymd_opt(i32::from(dt.year), u32::from(dt.month), u32::from(dt.day))?;
    let time = NaiveTime::from_hms_nano_opt(
        u32::from(dt.hour),
        u32::from(dt.minute),
        u32::from(dt.second),
        dt.nanosecond.unwrap_or(0),
    )?;
    let naive = date.and_time(time);
    match dt
        .offset
        .and_then(|m| FixedOffset::east_opt(i32::from(m) * 60))
    {
        Some(offset) => naive
            .and_local_timezone(offset)
            .single()
            .map(TakenAt::Zoned)
            .or(Some(TakenAt::Local(naive))),
        None => Some(TakenAt::Local(naive)),
    }
}

fn gps(exif: &Exif) -> Option<Gps> {
    // GPSStatus "V" is the receiver saying the fix is void; its coordinates are stale.
    if ascii(exif.get_field(Tag::GPSStatus, In::PRIMARY)).is_some_and(|s| s.first() == Some(&b'V'))
    {
        return None;
    }
    let lat = degrees(exif.get_field(Tag::GPSLatitude, In::PRIMARY))?;
    let lon = degrees(exif.get_field(Tag::GPSLongitude, In::PRIMARY))?;
    let lat_ref = ascii(exif.get_field(Tag::GPSLatitudeRef, In::PRIMARY))?.first()?;
    let lon_ref = ascii(exif.get_field(Tag::GPSLongitudeRef, In::PRIMARY))?.first()?;
    let lat = match lat_ref.to_ascii_uppercase() {
        b'N' => lat,
        b'S' => -lat,
        _ => return None,
    };
    let lon = match lon_ref.to_ascii_uppercase() {
        b'E' => lon,
        b'W' => -lon,
        _ => return None,
    };
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return None;
    }
    Some(Gps { lat, lon })
}

/// Degrees + minutes/60 + seconds/3600 from up to three unsigned rationals.
fn degrees(field: Option<&Field>) -> Option<f64> {
    let Value::Rational(parts) = &field?.value else {
        return None;
    };
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut total = 0.0;
    let mut unit = 1.0;
    for r in parts {
        // 0/0 is how some phones write "no fix"; it must not become 0 degrees.
        if r.denom == 0 {
            return None;
        }
        total += f64::from(r.num) / f64::from(r.denom) / unit;
        unit *= 60.0;
    }
    total.is_finite().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use exif::Rational;

    fn rational(parts: &[(u32, u32)]) -> Field {
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(
                parts
                    .iter()
                    .map(|&(num, denom)| Rational { num, denom })
                    .collect(),
            ),
        }
    }

    #[test]
    fn dms_conversion() {
        let d = degrees(Some(&rational(&[(43, 1), (28, 1), (1407, 500)]))).unwrap();
        assert!((d - 43.467_448_333).abs() < 1e-8);
        assert_eq!(degrees(Some(&rational(&[(12, 1)]))), Some(12.0));
        assert_eq!(degrees(Some(&rational(&[(0, 0), (0, 0), (0, 0)]))), None);
        assert_eq!(degrees(Some(&rational(&[]))), None);
        assert_eq!(degrees(None), None);
    }

    #[test]
    fn garbage_is_empty_info() {
        assert_eq!(read_exif(b"not an image"), ExifInfo::default());
        assert_eq!(
            read_exif(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF]),
            ExifInfo::default()
        );
    }
}
