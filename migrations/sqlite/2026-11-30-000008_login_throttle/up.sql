-- Failed-login budgets, one row per login (hashed) or client address, shared by every
-- replica so the limit does not multiply with their number (see throttle.rs).
-- tat_ms: the GCRA theoretical arrival time; blocked_until_ms: set when an attempt
-- found the budget spent. Both in milliseconds since the Unix epoch.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY NOT NULL,
    tat_ms BIGINT NOT NULL,
    blocked_until_ms BIGINT NOT NULL
);
CREATE INDEX login_throttle_tat_idx ON login_throttle (tat_ms);
