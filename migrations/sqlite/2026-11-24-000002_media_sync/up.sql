-- Photos, resumable uploads, meetings, feedback, the sync ledger and pull feed, quota
-- days, the quota policy and reviews. Portable across both backends: ids are UUID text,
-- times are UTC timestamps, sequences are 64-bit integers, JSON is text
-- (see migrations/postgres for the twin).

-- Content-addressed photo facts. phash is the 64-bit perceptual hash stored as i64
-- bits; phash_b0..b3 are its four 16-bit bands (b0 = low bits), each indexed, for
-- multi-index Hamming search: two hashes within distance d agree within d/4 bits in
-- at least one band.
CREATE TABLE media (
    sha256 TEXT PRIMARY KEY NOT NULL CHECK (length(sha256) = 64),
    media_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    -- UTC when the EXIF time carried an offset, else NULL and taken_at_local is set
    taken_at TIMESTAMP,
    -- naive local 'YYYY-MM-DDTHH:MM:SS' when the EXIF time had no offset
    taken_at_local TEXT,
    gps_lat REAL,
    gps_lon REAL,
    orientation INTEGER NOT NULL,
    phash BIGINT NOT NULL,
    phash_b0 INTEGER NOT NULL,
    phash_b1 INTEGER NOT NULL,
    phash_b2 INTEGER NOT NULL,
    phash_b3 INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX media_phash_b0_idx ON media (phash_b0);
CREATE INDEX media_phash_b1_idx ON media (phash_b1);
CREATE INDEX media_phash_b2_idx ON media (phash_b2);
CREATE INDEX media_phash_b3_idx ON media (phash_b3);
CREATE INDEX media_uploaded_by_idx ON media (uploaded_by);

-- Resumable uploads in progress; the bytes live in the blob store.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    sha256 TEXT NOT NULL,
    length BIGINT NOT NULL,
    received BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX uploads_expires_idx ON uploads (expires_at);
CREATE INDEX uploads_user_idx ON uploads (user_id);

-- Hands out meetings.record_seq. Every transaction that writes a meeting or its review
-- updates this row first, which serialises meeting writes (and the quota evaluation
-- they run) on PostgreSQL as SQLite's write lock does.
CREATE TABLE meeting_head (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO meeting_head (id, seq) VALUES (1, 0);

CREATE TABLE meetings (
    id TEXT PRIMARY KEY NOT NULL,
    incharge_id TEXT NOT NULL REFERENCES users (id),
    area_id TEXT NOT NULL REFERENCES areas (id),
    -- copy of the area's path, for subtree range scans without a join
    area_path TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    occurred_offset_minutes INTEGER NOT NULL,
    ended_at TIMESTAMP,
    -- 'YYYY-MM-DD' in the policy's time zone
    local_day TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    lat REAL,
    lon REAL,
    accuracy_m REAL,
    attendee_count INTEGER NOT NULL,
    topic TEXT NOT NULL,
    notes TEXT NOT NULL,
    version BIGINT NOT NULL,
    decision TEXT,
    decision_reason TEXT,
    decided_by TEXT REFERENCES users (id),
    decided_at TIMESTAMP,
    counted BOOLEAN NOT NULL,
    flags TEXT NOT NULL,
    -- order of first recording; "earlier meeting" for re-used photos means smaller
    record_seq BIGINT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX meetings_incharge_day_idx ON meetings (incharge_id, local_day);
CREATE INDEX meetings_incharge_occurred_idx ON meetings (incharge_id, occurred_at);
CREATE INDEX meetings_area_occurred_idx ON meetings (area_path, occurred_at);

CREATE TABLE meeting_photos (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    sha256 TEXT NOT NULL REFERENCES media (sha256),
    position INTEGER NOT NULL,
    PRIMARY KEY (meeting_id, sha256)
);
CREATE INDEX meeting_photos_sha_idx ON meeting_photos (sha256);

CREATE TABLE feedback (
    id TEXT PRIMARY KEY NOT NULL,
    incharge_id TEXT NOT NULL REFERENCES users (id),
    constituency_id TEXT NOT NULL REFERENCES areas (id),
    constituency_path TEXT NOT NULL,
    subject TEXT NOT NULL,
    rating INTEGER NOT NULL,
    text TEXT NOT NULL,
    collected_at TIMESTAMP NOT NULL,
    respondents INTEGER NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX feedback_constituency_idx ON feedback (constituency_id, subject);
CREATE INDEX feedback_path_idx ON feedback (constituency_path);
CREATE INDEX feedback_incharge_idx ON feedback (incharge_id);

-- One row per applied mutation: a retry with the same content hash gets the stored
-- result back, other content under the same id is an idempotency conflict.
CREATE TABLE mutation_ledger (
    device_id TEXT NOT NULL,
    mutation_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    content_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (device_id, mutation_id)
);
CREATE INDEX mutation_ledger_created_idx ON mutation_ledger (created_at);

-- The pull feed. seq is handed out by feed_head inside the writing transaction, so
-- seq order is commit order (see crates/store/src/feed.rs).
CREATE TABLE changes (
    seq BIGINT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    area_path TEXT,
    entity_id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX changes_user_idx ON changes (user_id, seq);
CREATE INDEX changes_area_idx ON changes (area_path, seq);

CREATE TABLE feed_head (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO feed_head (id, seq) VALUES (1, 0);

CREATE TABLE quota_days (
    incharge_id TEXT NOT NULL REFERENCES users (id),
    day TEXT NOT NULL,
    counted INTEGER NOT NULL,
    submitted INTEGER NOT NULL,
    status TEXT NOT NULL,
    target_met BOOLEAN NOT NULL,
    is_final BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (incharge_id, day)
);

CREATE TABLE policy (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    updated_by TEXT REFERENCES users (id)
);

CREATE TABLE reviews (
    id TEXT PRIMARY KEY NOT NULL,
    incharge_id TEXT NOT NULL REFERENCES users (id),
    reviewer_id TEXT NOT NULL REFERENCES users (id),
    area_path TEXT NOT NULL,
    period_from TEXT NOT NULL,
    period_to TEXT NOT NULL,
    notes TEXT NOT NULL,
    action TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX reviews_incharge_created_idx ON reviews (incharge_id, created_at);
CREATE INDEX reviews_area_idx ON reviews (area_path, created_at);
