//! Timestamps are stored as UTC milliseconds since the epoch on both backends. "Now"
//! comes from the database handle's [`Clock`](super::Clock) (`db.now_ms()`).

use chrono::{DateTime, TimeZone, Utc};

/// A stored timestamp as a `DateTime<Utc>` (out-of-range values clamp to the epoch).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A `DateTime<Utc>` in stored form.
pub fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}
