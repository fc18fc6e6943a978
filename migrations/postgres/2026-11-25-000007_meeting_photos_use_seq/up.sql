-- Stamps each photo use with a number drawn from meeting_head under the meeting write
-- lock, so a process can read the uses committed since it last looked, in commit
-- order, and keep its in-memory pHash index complete (see photo_index.rs). A new
-- meeting's uses take its record_seq; an edit that rewrites them draws a new number.
ALTER TABLE meeting_photos ADD COLUMN use_seq BIGINT NOT NULL DEFAULT 0;
UPDATE meeting_photos SET use_seq = meetings.record_seq
FROM meetings WHERE meetings.id = meeting_photos.meeting_id;
ALTER TABLE meeting_photos ALTER COLUMN use_seq DROP DEFAULT;
CREATE INDEX meeting_photos_use_seq_idx ON meeting_photos (use_seq);
