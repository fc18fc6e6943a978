DROP INDEX quota_days_cover_idx;
