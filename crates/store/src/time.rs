//! One notion of "now" for stored times.

use chrono::{NaiveDateTime, Timelike, Utc};

/// Current UTC time truncated to microseconds: PostgreSQL keeps microseconds and
/// SQLite keeps whatever it is given, so truncating makes a stored time read back equal
/// on both, which the audit hash chain depends on.
pub fn now_utc() -> NaiveDateTime {
    truncate(Utc::now().naive_utc())
}

pub(crate) fn truncate(t: NaiveDateTime) -> NaiveDateTime {
    let micros = t.nanosecond() / 1_000 * 1_000;
    t.with_nanosecond(micros).unwrap_or(t)
}
