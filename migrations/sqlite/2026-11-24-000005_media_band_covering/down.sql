DROP INDEX media_phash_b0_cover_idx;
DROP INDEX media_phash_b1_cover_idx;
DROP INDEX media_phash_b2_cover_idx;
DROP INDEX media_phash_b3_cover_idx;
CREATE INDEX media_phash_b0_idx ON media (phash_b0);
CREATE INDEX media_phash_b1_idx ON media (phash_b1);
CREATE INDEX media_phash_b2_idx ON media (phash_b2);
CREATE INDEX media_phash_b3_idx ON media (phash_b3);
