//! `Retry-After` (RFC 9110 §10.2.3): read as a number of seconds to wait, for R14 and for the
//! proxy's pacing, which pauses a route when its application answers 429.

use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// How many seconds a `Retry-After` value says to wait, counted from `now_secs` (epoch
/// seconds): its delay-seconds, or the time until its HTTP-date (0 once that is past).
/// `None` when it is neither.
pub fn retry_after_seconds(value: &str, now_secs: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    // An HTTP-date (RFC 9110 §5.6.7) is RFC 2822-shaped with "GMT".
    let at = OffsetDateTime::parse(&value.replace("GMT", "+0000"), &Rfc2822).ok()?;
    Some(u64::try_from(at.unix_timestamp().saturating_sub(now_secs)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_dates_are_read_as_seconds_from_now() {
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777.
        let now = 784_111_717;
        for (value, seconds) in [
            ("120", Some(120)),
            (" 7 ", Some(7)),
            ("0", Some(0)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(60)),
            ("Sun, 06 Nov 1994 08:48:37 GMT", Some(0)),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ] {
            assert_eq!(retry_after_seconds(value, now), seconds, "{value:?}");
        }
    }
}
