DROP INDEX meeting_photos_use_seq_idx;
ALTER TABLE meeting_photos DROP COLUMN use_seq;
