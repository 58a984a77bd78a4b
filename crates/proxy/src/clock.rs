//! The two readings of time the proxy records — wall-clock milliseconds since the epoch, and
//! milliseconds elapsed since an instant — and the one conversion of a duration to the whole
//! milliseconds records, metrics and logs keep.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms)
}

/// Milliseconds since `started`.
pub(crate) fn elapsed_ms(started: Instant) -> i64 {
    ms(started.elapsed())
}

/// `duration` in whole milliseconds (`i64::MAX` for one longer than that).
pub(crate) fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
