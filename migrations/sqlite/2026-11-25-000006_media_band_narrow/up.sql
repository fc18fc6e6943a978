-- The duplicate-photo search walks every photo sharing a pHash band value with the new
-- one, a set that grows with history. Keying the band indexes on (band, phash) alone
-- makes each entry about a fifth of the size with the SHA-256 in it, so a walk reads
-- that many fewer pages; the SHA-256 is looked up only for the few photos within the
-- distance.
DROP INDEX media_phash_b0_cover_idx;
DROP INDEX media_phash_b1_cover_idx;
DROP INDEX media_phash_b2_cover_idx;
DROP INDEX media_phash_b3_cover_idx;
CREATE INDEX media_phash_b0_idx ON media (phash_b0, phash);
CREATE INDEX media_phash_b1_idx ON media (phash_b1, phash);
CREATE INDEX media_phash_b2_idx ON media (phash_b2, phash);
CREATE INDEX media_phash_b3_idx ON media (phash_b3, phash);
