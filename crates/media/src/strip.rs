//! Metadata stripping for JPEGs that are served as they are.
//!
//! A small upright JPEG already is a fine display rendition; re-encoding it
//! costs CPU and a generation of quality. Serving its bytes is a privacy
//! boundary, though: EXIF (GPS above all), XMP, ICC, IPTC, comments, embedded
//! thumbnails and data appended after EOI (motion-photo videos, for one) must
//! not reach clients. So this is an allow-list rebuild, not a deny-list edit:
//! only the segments a decoder needs are copied, each checked against its own
//! structure, and anything unexpected gives `None` so the caller re-encodes.

/// Start of image.
const SOI: u8 = 0xD8;
/// End of image.
const EOI: u8 = 0xD9;
/// Start of scan.
const SOS: u8 = 0xDA;
/// Quantisation tables.
const DQT: u8 = 0xDB;
/// Huffman tables.
const DHT: u8 = 0xC4;
/// Restart interval.
const DRI: u8 = 0xDD;
/// JFIF lives in APP0; everything else in APP1..APP15.
const APP0: u8 = 0xE0;
/// Adobe's segment, which carries the colour transform of the components.
const APP14: u8 = 0xEE;
const COM: u8 = 0xFE;

/// Copies `jpeg` keeping only what is needed to decode it: SOI, a JFIF APP0
/// (without its thumbnail), DQT, DHT, DRI, the frame header, every scan with
/// its entropy-coded data, and EOI. Everything after EOI is dropped.
///
/// Only 8-bit Huffman-coded greyscale or three-component frames (baseline,
/// extended or progressive) qualify: those are what browsers decode, and
/// their colour interpretation does not depend on a dropped segment.
pub(crate) fn strip_metadata(jpeg: &[u8]) -> Option<Vec<u8>> {
    if jpeg.get(..2)? != [0xFF, SOI] {
        return None;
    }
    let mut out = Vec::with_capacity(jpeg.len());
    out.extend_from_slice(&[0xFF, SOI]);
    let mut pos = 2;
    let mut seen_frame = false;
    let mut seen_scan = false;
    let mut seen_jfif = false;
    loop {
        let marker = next_marker(jpeg, &mut pos)?;
        match marker {
            EOI => {
                if !seen_scan {
                    return None;
                }
                out.extend_from_slice(&[0xFF, EOI]);
                return Some(out);
            }
            // Markers without a length have no business here: a second SOI,
            // RSTn outside a scan, TEM.
            SOI | 0xD0..=0xD7 | 0x01 => return None,
            _ => {}
        }
        let body = segment_body(jpeg, pos)?;
        let next = pos + 4 + body.len();
        match marker {
            APP0 => {
                // Only the first JFIF segment, rebuilt without its thumbnail:
                // a camera thumbnail can show what an edit cropped away.
                if !seen_jfif && !seen_frame && body.len() >= 14 && body.starts_with(b"JFIF\0") {
                    seen_jfif = true;
                    let mut jfif = body[..14].to_vec();
                    jfif[12] = 0;
                    jfif[13] = 0;
                    push_segment(&mut out, APP0, &jfif)?;
                }
            }
            // Without Adobe's transform flag a decoder may read the components
            // differently than it did in the original.
            APP14 => return None,
            0xE1..=0xEF | COM => {}
            DQT => {
                valid_dqt(body)?;
                push_segment(&mut out, marker, body)?;
            }
            DHT => {
                valid_dht(body)?;
                push_segment(&mut out, marker, body)?;
            }
            DRI => {
                if body.len() != 2 {
                    return None;
                }
                push_segment(&mut out, marker, body)?;
            }
            // Baseline, extended sequential and progressive Huffman frames.
            0xC0..=0xC2 => {
                if seen_frame {
                    return None;
                }
                valid_frame(body)?;
                seen_frame = true;
                push_segment(&mut out, marker, body)?;
            }
            SOS => {
                if !seen_frame {
                    return None;
                }
                valid_scan_header(body)?;
                push_segment(&mut out, marker, body)?;
                let end = entropy_end(jpeg, next)?;
                out.extend_from_slice(jpeg.get(next..end)?);
                seen_scan = true;
                pos = end;
                continue;
            }
            // Lossless, hierarchical and arithmetic-coded frames, DAC, DNL,
            // DHP, EXP, JPG extensions and reserved markers.
            _ => return None,
        }
        pos = next;
    }
}

/// Whether a three-component JPEG's components are Y'CbCr, by the rules its
/// decoder applies (component ids, then JFIF, then Adobe's transform flag), read
/// from the headers before the first scan. `false` for anything else or for
/// headers it cannot read: the caller then takes the path that converts colour
/// in the decoder.
pub(crate) fn is_ycbcr(jpeg: &[u8]) -> bool {
    if jpeg.get(..2) != Some(&[0xFF, SOI][..]) {
        return false;
    }
    let mut pos = 2;
    let mut jfif = false;
    let mut adobe_transform = None;
    loop {
        let Some(marker) = next_marker(jpeg, &mut pos) else {
            return false;
        };
        if matches!(marker, SOI | EOI | SOS | 0xD0..=0xD7 | 0x01) {
            return false;
        }
        let Some(body) = segment_body(jpeg, pos) else {
            return false;
        };
        match marker {
            APP0 if body.starts_with(b"JFIF\0") => jfif = true,
            APP14 if body.len() >= 12 && body.starts_with(b"Adobe") => {
                adobe_transform = Some(body[11]);
            }
            0xC0..=0xC2 => {
                let [_, _, _, _, _, 3, c0, _, _, c1, _, _, c2, _, _] = *body else {
                    return false;
                };
                return match (c0, c1, c2) {
                    (1, 2, 3) => true,
                    // Big-gamut YCC and RGB by their ids.
                    (1, 34, 35) | (82, 71, 66) | (114, 103, 98) => false,
                    _ => jfif || adobe_transform.is_none_or(|t| t == 1),
                };
            }
            _ => {}
        }
        pos += 2 + 2 + body.len();
    }
}

/// Reads the marker at `pos`, skipping the 0xFF fill bytes allowed before it,
/// and leaves `pos` on the marker's 0xFF. Anything but a marker there is junk
/// between segments, where metadata could hide.
fn next_marker(jpeg: &[u8], pos: &mut usize) -> Option<u8> {
    if *jpeg.get(*pos)? != 0xFF {
        return None;
    }
    while *jpeg.get(*pos + 1)? == 0xFF {
        *pos += 1;
    }
    match *jpeg.get(*pos + 1)? {
        0x00 => None,
        marker => Some(marker),
    }
}

/// The payload of the segment whose marker starts at `pos` (length excluded).
fn segment_body(jpeg: &[u8], pos: usize) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([
        *jpeg.get(pos + 2)?,
        *jpeg.get(pos + 3)?,
    ]));
    if len < 2 {
        return None;
    }
    jpeg.get(pos + 4..pos + 2 + len)
}

fn push_segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) -> Option<()> {
    let len = u16::try_from(body.len() + 2).ok()?;
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Some(())
}

/// Where the entropy-coded data that starts at `start` ends: at the 0xFF
/// (or first of a run of fill bytes) that begins the next real marker.
/// Stuffed zeros and restart markers belong to the data.
fn entropy_end(jpeg: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        let ff = i + jpeg.get(i..)?.iter().position(|&b| b == 0xFF)?;
        let mut j = ff + 1;
        // Decoders (libjpeg among them) skip fill bytes before the byte that
        // says what the 0xFF was.
        while *jpeg.get(j)? == 0xFF {
            j += 1;
        }
        match jpeg[j] {
            0x00 | 0xD0..=0xD7 => i = j + 1,
            _ => return Some(ff),
        }
    }
}

/// 8-bit precision, a non-empty canvas, one or three components.
fn valid_frame(body: &[u8]) -> Option<()> {
    let [precision, h1, h0, w1, w0, count, components @ ..] = body else {
        return None;
    };
    let (h, w) = (
        u16::from_be_bytes([*h1, *h0]),
        u16::from_be_bytes([*w1, *w0]),
    );
    // A zero height means the height comes in a DNL segment after the scan.
    let ok = *precision == 8
        && h > 0
        && w > 0
        && matches!(count, 1 | 3)
        && components.len() == 3 * usize::from(*count);
    ok.then_some(())
}

fn valid_scan_header(body: &[u8]) -> Option<()> {
    let count = usize::from(*body.first()?);
    ((1..=4).contains(&count) && body.len() == 1 + 2 * count + 3).then_some(())
}

/// Tables must fill the segment exactly, so nothing rides along after them.
fn valid_dqt(mut body: &[u8]) -> Option<()> {
    while let [pq_tq, rest @ ..] = body {
        let size = match pq_tq >> 4 {
            0 => 64,
            1 => 128,
            _ => return None,
        };
        body = rest.get(size..)?;
    }
    Some(())
}

fn valid_dht(mut body: &[u8]) -> Option<()> {
    while let [_tc_th, rest @ ..] = body {
        let counts = rest.get(..16)?;
        let values: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if values > 256 {
            return None;
        }
        body = rest.get(16 + values..)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]));
        crate::derive::encode_jpeg(&img, 80).unwrap()
    }

    /// SOI, then `segments` (marker, body), then a baseline frame header with
    /// these component ids.
    fn headers(segments: &[(u8, &[u8])], ids: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, SOI];
        for (marker, body) in segments {
            push_segment(&mut out, *marker, body).unwrap();
        }
        let mut frame = vec![8, 0, 16, 0, 16, ids.len() as u8];
        for &id in ids {
            frame.extend_from_slice(&[id, 0x11, 0]);
        }
        push_segment(&mut out, 0xC0, &frame).unwrap();
        out
    }

    #[test]
    fn reads_the_colour_interpretation_as_decoders_do() {
        let jfif: (u8, &[u8]) = (APP0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        let adobe = |t: u8| -> Vec<u8> {
            let mut b = b"Adobe".to_vec();
            b.extend_from_slice(&[0, 100, 0, 0, 0, 0, t]);
            b
        };
        let (adobe_rgb, adobe_ycc, adobe_ycck) = (adobe(0), adobe(1), adobe(2));
        for (segments, ids, want) in [
            (vec![], &[1, 2, 3][..], true),
            (vec![], &[0, 1, 2][..], true),
            (vec![jfif], &[0, 1, 2][..], true),
            (vec![(APP14, &adobe_ycc[..])], &[0, 1, 2][..], true),
            // Ids first, as libjpeg does: these override JFIF and Adobe alike.
            (vec![jfif], &[82, 71, 66][..], false),
            (vec![(APP14, &adobe_ycc[..])], &[114, 103, 98][..], false),
            (vec![], &[1, 34, 35][..], false),
            (vec![(APP14, &adobe_rgb[..])], &[0, 1, 2][..], false),
            (vec![(APP14, &adobe_ycck[..])], &[0, 1, 2][..], false),
            (vec![(APP14, &adobe_rgb[..])], &[1, 2, 3][..], true),
            // Not three components.
            (vec![jfif], &[1][..], false),
            (vec![], &[1, 2, 3, 4][..], false),
        ] {
            let jpeg = headers(&segments, ids);
            assert_eq!(is_ycbcr(&jpeg), want, "{segments:?} {ids:?}");
        }
        let whole = headers(&[jfif], &[1, 2, 3]);
        for cut in 0..whole.len() {
            assert!(!is_ycbcr(&whole[..cut]), "cut at {cut}");
        }
        assert!(is_ycbcr(&tiny_jpeg()));
    }

    #[test]
    fn keeps_a_clean_jpeg_byte_for_byte() {
        let jpeg = tiny_jpeg();
        assert_eq!(strip_metadata(&jpeg).as_deref(), Some(&jpeg[..]));
    }

    #[test]
    fn drops_app_segments_comments_and_trailers() {
        let jpeg = tiny_jpeg();
        let mut dirty = jpeg[..2].to_vec();
        dirty.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x08]);
        dirty.extend_from_slice(b"Exif\0\0");
        dirty.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x05, b'h', b'i', b'!']);
        // Fill bytes before a marker are legal.
        dirty.extend_from_slice(&[0xFF, 0xFF]);
        dirty.extend_from_slice(&jpeg[2..]);
        dirty.extend_from_slice(b"trailing motion photo");
        assert_eq!(strip_metadata(&dirty).as_deref(), Some(&jpeg[..]));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let jpeg = tiny_jpeg();
        assert_eq!(strip_metadata(&jpeg[..jpeg.len() - 2]), None, "no EOI");
        assert_eq!(strip_metadata(&jpeg[..jpeg.len() / 2]), None);
        assert_eq!(strip_metadata(b""), None);
        assert_eq!(strip_metadata(&[0xFF, 0xD8, 0xFF, 0xD9]), None, "no scan");
        // Junk between segments.
        let mut junk = jpeg[..2].to_vec();
        junk.extend_from_slice(b"GPS 43.46N");
        junk.extend_from_slice(&jpeg[2..]);
        assert_eq!(strip_metadata(&junk), None);
        // An Adobe segment decides the colour transform.
        let mut adobe = jpeg[..2].to_vec();
        adobe.extend_from_slice(&[0xFF, 0xEE, 0x00, 0x0E]);
        adobe.extend_from_slice(b"Adobe\0\x64\0\0\0\0\x01");
        adobe.extend_from_slice(&jpeg[2..]);
        assert_eq!(strip_metadata(&adobe), None);
    }

    #[test]
    fn entropy_data_keeps_stuffing_and_restarts() {
        let data = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0xD9];
        assert_eq!(entropy_end(&data, 0), Some(7));
        assert_eq!(entropy_end(&[0x12, 0xFF], 0), None);
        assert_eq!(entropy_end(&[0x12, 0x34], 0), None);
    }
}
