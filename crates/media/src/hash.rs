//! Content addresses: the SHA-256 of an original's exact bytes names it in
//! storage and proves later that the evidence was not altered.

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

/// A SHA-256 digest, shown and parsed as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

/// Returned by [`Sha256::parse`] for anything but 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 digest (expected 64 lowercase hex characters)")]
pub struct ParseSha256Error;

impl Sha256 {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Accepts only the canonical lowercase form, so one digest has exactly one
    /// spelling in URLs, storage keys and database rows.
    pub fn parse(s: &str) -> Result<Self, ParseSha256Error> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ParseSha256Error);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseSha256Error)?;
        Ok(Sha256(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl FromStr for Sha256 {
    type Err = ParseSha256Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256::parse(s)
    }
}

/// The SHA-256 of a whole buffer.
pub fn sha256_of(bytes: &[u8]) -> Sha256 {
    Sha256(sha2::Sha256::digest(bytes).into())
}

/// Incremental SHA-256, fed chunk by chunk while a request body is streamed to
/// a temp file, so the digest is known without reading the file back.
#[derive(Clone, Default)]
pub struct Sha256Hasher {
    inner: sha2::Sha256,
    len: u64,
}

impl Sha256Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.inner.update(chunk);
        self.len += chunk.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Sha256 {
        Sha256(self.inner.finalize().into())
    }
}

impl fmt::Debug for Sha256Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sha256Hasher")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_digest_and_round_trip() {
        let d = sha256_of(b"");
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Sha256::parse(EMPTY).unwrap(), d);
        assert_eq!(EMPTY.parse::<Sha256>().unwrap(), d);
    }

    #[test]
    fn parse_rejects_non_canonical() {
        assert!(Sha256::parse(&EMPTY.to_uppercase()).is_err());
        assert!(Sha256::parse(&EMPTY[1..]).is_err());
        assert!(Sha256::parse(&format!("{EMPTY}0")).is_err());
        assert!(Sha256::parse(&EMPTY.replace('e', "g")).is_err());
        assert!(Sha256::parse("").is_err());
    }

    #[test]
    fn incremental_matches_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = Sha256Hasher::new();
        for chunk in data.chunks(333) {
            h.update(chunk);
        }
        assert_eq!(h.len(), data.len() as u64);
        assert_eq!(h.finish(), sha256_of(&data));
    }
}
