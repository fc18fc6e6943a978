-- The compliance views read every column of an in-charge's days in a range. Rows are
-- written day by day, so without a covering index one in-charge's month sits on ~30
-- heap pages; an index-only scan over this one reads them together.
CREATE INDEX quota_days_cover_idx
    ON quota_days (incharge_id, day) INCLUDE (counted, submitted, status, target_met, is_final, updated_at);
