//! Content sniffing: which image format an upload really is, decided from its
//! magic bytes alone so a lying `Content-Type` or file name cannot steer decoding.

/// The image formats the service accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Jpeg,
    Png,
    Webp,
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

impl MediaType {
    /// Identifies the format from the leading bytes, or `None` when it is not
    /// one the service accepts.
    pub fn sniff(bytes: &[u8]) -> Option<MediaType> {
        // SOI followed by the first marker's 0xFF: a bare `FF D8` matches too
        // many non-JPEG payloads.
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(MediaType::Jpeg)
        } else if bytes.starts_with(PNG_MAGIC) {
            Some(MediaType::Png)
        } else if bytes.len() >= 16
            && bytes.starts_with(b"RIFF")
            && bytes.get(8..12) == Some(b"WEBP")
            && bytes.get(12..15) == Some(b"VP8")
        {
            // The `VP8 `/`VP8L`/`VP8X` chunk check rejects other RIFF WebP-lookalikes early.
            Some(MediaType::Webp)
        } else {
            None
        }
    }

    /// The IANA media type.
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Webp => "image/webp",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpg",
            MediaType::Png => "png",
            MediaType::Webp => "webp",
        }
    }

    pub(crate) fn image_format(self) -> image::ImageFormat {
        match self {
            MediaType::Jpeg => image::ImageFormat::Jpeg,
            MediaType::Png => image::ImageFormat::Png,
            MediaType::Webp => image::ImageFormat::WebP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_only() {
        assert_eq!(
            MediaType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(MediaType::Jpeg)
        );
        assert_eq!(
            MediaType::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(MediaType::Png)
        );
        assert_eq!(
            MediaType::sniff(b"RIFF\x10\0\0\0WEBPVP8L\0\0\0\0"),
            Some(MediaType::Webp)
        );
        assert_eq!(MediaType::sniff(b"RIFF\x10\0\0\0WAVEfmt \0\0\0\0"), None);
        assert_eq!(MediaType::sniff(b"GIF89a"), None);
        assert_eq!(MediaType::sniff(&[0xFF, 0xD8]), None);
        assert_eq!(MediaType::sniff(b""), None);
        assert_eq!(MediaType::Webp.mime(), "image/webp");
    }
}
