//! The admin API's query strings: the list's filters (the CLI reads its own with the same
//! code), an export's, the audit's, and points in time.

use crate::export::Format;
use scimtrail_store::{AuditQuery, ExchangeQuery};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The list filters from a query string (`outcome`, `idp`, `route`, `resource`, `user`,
/// `method`, `lifecycle`, `findings`, `finding`, `since`, `until`, `limit`, `cursor`,
/// `failed`, `synthetic`: only synthetic traffic, which is left out otherwise).
pub fn list_query(query: Option<&str>, now_ms: i64) -> Result<ExchangeQuery, String> {
    let mut filter = ExchangeQuery {
        limit: 50,
        ..ExchangeQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        let text = (!value.is_empty()).then_some(value.clone());
        match key.as_ref() {
            "outcome" => filter.outcome = text,
            "method" => filter.method = text.map(|m| m.to_ascii_uppercase()),
            "lifecycle" => filter.lifecycle = text,
            "finding" => filter.finding = text,
            "findings" => filter.has_findings = matches!(value.as_str(), "" | "true" | "1"),
            "idp" => filter.idp = text,
            "route" => filter.route = text,
            "resource" => filter.resource = text,
            "user" => filter.user = text,
            "cursor" => filter.cursor = text,
            "failed" => filter.failed = matches!(value.as_str(), "" | "true" | "1"),
            "synthetic" => filter.synthetic = matches!(value.as_str(), "" | "true" | "1"),
            "since" => filter.since_ms = Some(parse_time(&value, now_ms)?),
            "until" => filter.until_ms = Some(parse_time(&value, now_ms)?),
            "limit" => {
                filter.limit = value
                    .parse()
                    .map_err(|_| format!("limit \"{value}\" is not a number"))?
            }
            other => return Err(format!("unknown parameter \"{other}\"")),
        }
    }
    Ok(filter)
}

/// An export's query string: the format, how many at most (`limit`), and the list's filters.
pub(crate) fn export_query(query: Option<&str>, now_ms: i64) -> Result<(Format, Option<u64>, ExchangeQuery), String> {
    let mut format = Format::Har;
    let mut max = None;
    let mut filters = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "format" => format = Format::parse(&value)?,
            "limit" => {
                max = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("limit \"{value}\" is not a number"))?,
                )
            }
            _ => {
                filters.append_pair(&key, &value);
            }
        }
    }
    Ok((format, max, list_query(Some(&filters.finish()), now_ms)?))
}

/// The audit list's query string.
pub(crate) fn audit_query(query: Option<&str>, now_ms: i64) -> Result<AuditQuery, String> {
    let mut filter = AuditQuery {
        limit: 50,
        ..AuditQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "action" => filter.action = (!value.is_empty()).then_some(value),
            "before" => filter.before = (!value.is_empty()).then_some(value),
            "since" => filter.since_ms = Some(parse_time(&value, now_ms)?),
            "until" => filter.until_ms = Some(parse_time(&value, now_ms)?),
            "limit" => {
                filter.limit = value
                    .parse::<i64>()
                    .map_err(|_| format!("limit \"{value}\" is not a number"))?
                    .clamp(1, 1000)
            }
            other => return Err(format!("unknown parameter \"{other}\"")),
        }
    }
    Ok(filter)
}

/// A point in time: an RFC 3339 timestamp, or a duration before now (`90s`, `15m`, `2h`,
/// `7d`, `1w`). Returns epoch milliseconds.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(time.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| format!("\"{text}\" is out of range"));
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: i64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is neither an RFC 3339 time nor a duration like 15m, 2h or 7d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(format!("\"{text}\": the unit must be s, m, h, d or w")),
    };
    Ok(now_ms - amount.saturating_mul(unit_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_filters() {
        assert_eq!(parse_time("15m", 1_000_000_000), Ok(1_000_000_000 - 900_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday", 0).is_err());
        let filter = list_query(Some("outcome=failed&idp=entra&limit=5&since=1h&failed=true"), 3_600_000).unwrap();
        assert_eq!(
            (
                filter.outcome.as_deref(),
                filter.idp.as_deref(),
                filter.limit,
                filter.since_ms,
                filter.failed
            ),
            (Some("failed"), Some("entra"), 5, Some(0), true)
        );
        assert!(!filter.synthetic, "synthetic traffic is left out unless asked for");
        assert!(list_query(Some("synthetic=true"), 0).unwrap().synthetic);
        assert!(list_query(Some("colour=red"), 0).is_err());
    }
}
