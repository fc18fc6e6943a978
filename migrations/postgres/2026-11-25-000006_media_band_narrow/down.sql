DROP INDEX media_phash_b0_idx;
DROP INDEX media_phash_b1_idx;
DROP INDEX media_phash_b2_idx;
DROP INDEX media_phash_b3_idx;
CREATE INDEX media_phash_b0_cover_idx ON media (phash_b0) INCLUDE (phash, sha256);
CREATE INDEX media_phash_b1_cover_idx ON media (phash_b1) INCLUDE (phash, sha256);
CREATE INDEX media_phash_b2_cover_idx ON media (phash_b2) INCLUDE (phash, sha256);
CREATE INDEX media_phash_b3_cover_idx ON media (phash_b3) INCLUDE (phash, sha256);
