-- Everyone who proved they hold a photo's bytes, not only the first uploader: an
-- in-charge whose photo someone else uploaded first must still see it.
CREATE TABLE media_uploaders (
    sha256 TEXT NOT NULL REFERENCES media (sha256),
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (sha256, user_id)
);
INSERT INTO media_uploaders (sha256, user_id, created_at)
SELECT sha256, uploaded_by, created_at FROM media;
