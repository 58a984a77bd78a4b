//! Exports of the record, for tools that are not scimtrail's: HAR 1.2 (the request as
//! received and the response as returned; what was forwarded, the rules' changes and the
//! findings under `_scimtrail`), loadable by browsers' network panels and HAR viewers, or
//! JSONL (one exchange per line, in the admin API's shape). Streamed page by page, newest
//! first, so that any number of exchanges takes constant memory; redacted as the store is
//! (nothing is read but the record). The CLI (`exchanges export`) and the admin API
//! (`GET /api/v1/exchanges/export`) both run [`export`], which audits it.

use crate::audit::{self, Caller};
use crate::fingerprint::Key;
use bytes::Bytes;
use scimtrail_store::{Exchange, ExchangeQuery, Store, StoreError};
use serde_json::{json, Map, Value};
use std::future::Future;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Exchanges read per page: each may hold three bodies of `max_body_bytes`, and each is
/// handed to the sink on its own.
const PAGE: u64 = 50;

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HAR 1.2.
    Har,
    /// One exchange per line, as `GET /api/v1/exchanges/{id}` shows it.
    Jsonl,
}

impl Format {
    /// `har` or `jsonl`.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "har" => Ok(Format::Har),
            "jsonl" => Ok(Format::Jsonl),
            other => Err(format!("format \"{other}\" is not one of har, jsonl")),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Har => "har",
            Format::Jsonl => "jsonl",
        }
    }

    /// The media type it is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Har => "application/json",
            Format::Jsonl => "application/x-ndjson",
        }
    }
}

/// Where an export's bytes go, in order: a file, an HTTP response body. `Err` when it can
/// take no more (the client went away): the export stops there.
pub trait Sink {
    /// Takes the next piece.
    fn write(&mut self, bytes: Bytes) -> impl Future<Output = Result<(), String>> + Send;
}

/// Writes every exchange `query` selects (from its `cursor`, at most `max` if given) to
/// `sink` in `format`, newest first, and audits the export as `caller`'s. Returns how many
/// were written.
#[allow(clippy::too_many_arguments)]
pub async fn export<S: Sink + Send>(
    store: &Store,
    key: &Key,
    instance: &str,
    caller: &Caller,
    mut query: ExchangeQuery,
    max: Option<u64>,
    format: Format,
    sink: &mut S,
) -> Result<u64, StoreError> {
    let filter = audit::filter(&query, key);
    let written = write_all(store, &mut query, max, format, sink).await;
    let (count, completed) = match &written {
        Ok(Ok(count)) => (*count, true),
        Ok(Err((count, _))) => (*count, false),
        Err(_) => (0, false),
    };
    let detail = json!({"format": format.name(), "filter": filter, "exchanges": count, "completed": completed});
    audit::record(store, caller, instance, "export", detail).await;
    match written? {
        Ok(count) => Ok(count),
        Err((count, why)) => {
            tracing::info!(count, why, "An export stopped before its end.");
            Ok(count)
        }
    }
}

/// The export's bytes into `sink`: `Ok(Err((count, why)))` when the sink stopped it.
async fn write_all<S: Sink + Send>(
    store: &Store,
    query: &mut ExchangeQuery,
    max: Option<u64>,
    format: Format,
    sink: &mut S,
) -> Result<Result<u64, (u64, String)>, StoreError> {
    let mut count = 0u64;
    let head = match format {
        Format::Har => har_head(),
        Format::Jsonl => String::new(),
    };
    if let Err(why) = sink.write(Bytes::from(head)).await {
        return Ok(Err((count, why)));
    }
    loop {
        let left = max.map_or(PAGE, |max| max.saturating_sub(count).min(PAGE));
        if left == 0 {
            break;
        }
        query.limit = left;
        let page = store.list(query).await?;
        for exchange in &page.items {
            let text = match format {
                Format::Har if count > 0 => format!(",{}", har_entry(exchange)),
                Format::Har => har_entry(exchange).to_string(),
                Format::Jsonl => format!("{}\n", exchange.to_json()),
            };
            if let Err(why) = sink.write(Bytes::from(text)).await {
                return Ok(Err((count, why)));
            }
            count += 1;
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let tail = match format {
        Format::Har => "]}}\n",
        Format::Jsonl => "",
    };
    if let Err(why) = sink.write(Bytes::from_static(tail.as_bytes())).await {
        return Ok(Err((count, why)));
    }
    Ok(Ok(count))
}

fn har_head() -> String {
    let creator = json!({"name": "scimtrail", "version": env!("CARGO_PKG_VERSION")});
    format!("{{\"log\":{{\"version\":\"1.2\",\"creator\":{creator},\"pages\":[],\"entries\":[")
}

/// One exchange as a HAR entry: the request as the IdP sent it, the response as it got it.
pub fn har_entry(exchange: &Exchange) -> Value {
    let request_headers = har_headers(&exchange.begun.request_headers);
    let response_headers = exchange.response_headers().map(har_headers).unwrap_or_default();
    // An absolute URI whatever was recorded: a host that is one (no user information), and
    // the path and query with what a URI may not hold percent-encoded.
    let host = header(&exchange.begun.request_headers, "host")
        .filter(|host| !host.contains('@') && host.parse::<http::uri::Authority>().is_ok())
        .unwrap_or_else(|| "scimtrail.invalid".to_owned());
    let mut url = format!("http://{host}{}", uri_safe(&exchange.begun.path));
    if let Some(query) = exchange.begun.query.as_deref().filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(&uri_safe(query));
    }
    let query_string: Vec<Value> =
        form_urlencoded::parse(exchange.begun.query.as_deref().unwrap_or_default().as_bytes())
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
    let mut request = json!({
        "method": exchange.begun.method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": request_headers,
        "queryString": query_string,
        "headersSize": -1,
        "bodySize": exchange.begun.request_body.as_ref().map_or(0, |b| b.len()),
    });
    if let Some(body) = &exchange.begun.request_body {
        request["postData"] = json!({
            "mimeType": header(&exchange.begun.request_headers, "content-type").unwrap_or_else(|| "application/scim+json".to_owned()),
            "text": body,
        });
    }
    let status = exchange.status().unwrap_or(0);
    let body = exchange.response_body().unwrap_or_default();
    let mime = exchange
        .response_headers()
        .and_then(|headers| header(headers, "content-type"))
        .unwrap_or_else(|| "x-unknown".to_owned());
    let mut content = json!({"size": body.len(), "mimeType": mime});
    if exchange.response_body().is_some() {
        content["text"] = Value::String(body.to_owned());
    }
    let duration = exchange.duration_ms().unwrap_or(0).max(0);
    let paced = exchange.paced_ms().map(|paced| paced.clamp(0, duration));
    json!({
        "startedDateTime": started(exchange.begun.received_at_ms),
        "time": duration,
        "request": request,
        "response": {
            "status": status,
            "statusText": http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or_default(),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": response_headers,
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": exchange.response_body().map_or(-1, |b| i64::try_from(b.len()).unwrap_or(-1)),
        },
        "cache": {},
        // HAR's `blocked`: time spent in a queue before the request could be sent.
        "timings": {"blocked": paced.unwrap_or(-1), "send": 0, "wait": duration - paced.unwrap_or(0), "receive": 0},
        "_scimtrail": scimtrail_part(exchange),
    })
}

/// What only scimtrail knows: where it went, what the rules changed, what was found.
fn scimtrail_part(exchange: &Exchange) -> Value {
    let full = exchange.to_json();
    let mut part = Map::new();
    for key in [
        "id",
        "route",
        "idp",
        "operation",
        "lifecycle",
        "resource_type",
        "resource_id",
        "user_name",
        "outcome",
        "upstream_status",
        "forwarded",
        "changes",
        "findings",
        "bulk_operations",
        "error",
        "replay_of",
        "replays",
        "parent_id",
        "children",
        "client",
        "instance",
        "repeat_count",
        "paced_ms",
    ] {
        if let Some(value) = full.get(key).filter(|v| !v.is_null()) {
            part.insert(key.to_owned(), value.clone());
        }
    }
    Value::Object(part)
}

/// `text` with every byte RFC 3986 does not allow in a path or query percent-encoded; a `%`
/// that begins a valid escape is kept.
fn uri_safe(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (at, &byte) in bytes.iter().enumerate() {
        let escape = byte == b'%'
            && bytes.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(at + 2).is_some_and(u8::is_ascii_hexdigit);
        let allowed = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&byte);
        if allowed || escape {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// RFC 3339 with milliseconds and `Z`.
fn started(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// `[[name, value], …]` as HAR's `[{name, value}, …]`.
fn har_headers(headers: &Value) -> Vec<Value> {
    headers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let name = pair.get(0)?.as_str()?;
            let value = pair.get(1)?.as_str()?;
            Some(json!({"name": name, "value": value}))
        })
        .collect()
}

/// The first value of a header, by name in any casing.
fn header(headers: &Value, name: &str) -> Option<String> {
    headers.as_array()?.iter().find_map(|pair| {
        let key = pair.get(0)?.as_str()?;
        key.eq_ignore_ascii_case(name)
            .then(|| pair.get(1).and_then(Value::as_str).map(str::to_owned))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_store::{Completion, End, NewExchange};

    #[test]
    fn an_exchange_is_a_har_entry_with_scimtrails_part_beside() {
        let exchange = Exchange::begun(NewExchange {
            id: "01a2".into(),
            received_at_ms: 1_796_600_000_123,
            method: "PATCH".into(),
            path: "/Users/1".into(),
            query: Some("attributes=userName&x=a%20b".into()),
            request_headers: json!([
                ["Host", "127.0.0.1:8080"],
                ["authorization", "Bearer hmac:1a2b3c4d5e6f"],
                ["content-type", "application/scim+json"]
            ]),
            request_body: Some("{\"Operations\":[]}".into()),
            ..NewExchange::default()
        })
        .completed(Completion {
            duration_ms: 7,
            forwarded_headers: Some(json!([])),
            status: 200,
            response_headers: json!([["content-type", "application/scim+json"]]),
            response_body: Some("{\"id\":\"1\"}".into()),
            outcome: "ok".into(),
            changes: json!([{"rule": "N4"}]),
            findings: json!([]),
            ..Completion::default()
        });
        let entry = har_entry(&exchange);
        assert_eq!(entry["startedDateTime"], "2026-12-06T23:33:20.123Z");
        assert_eq!(
            entry["request"]["url"],
            "http://127.0.0.1:8080/Users/1?attributes=userName&x=a%20b"
        );
        assert_eq!(entry["request"]["queryString"][1], json!({"name": "x", "value": "a b"}));
        assert_eq!(entry["request"]["postData"]["mimeType"], "application/scim+json");
        assert_eq!(
            entry["request"]["headers"][1]["value"], "Bearer hmac:1a2b3c4d5e6f",
            "fingerprints as recorded"
        );
        assert_eq!(entry["response"]["statusText"], "OK");
        assert_eq!(entry["response"]["content"]["text"], "{\"id\":\"1\"}");
        assert_eq!(entry["_scimtrail"]["changes"], json!([{"rule": "N4"}]));
        assert_eq!(entry["_scimtrail"]["outcome"], "ok");
        assert_eq!(
            entry["timings"],
            json!({"blocked": -1, "send": 0, "wait": 7, "receive": 0})
        );
        // A wait in the route's pacing queue is HAR's `blocked`, and the entry's time is still
        // the sum of its timings.
        let mut paced = exchange.clone();
        if let End::Completed(done) = &mut paced.end {
            done.paced_ms = Some(5);
        }
        let paced = har_entry(&paced);
        assert_eq!(
            paced["timings"],
            json!({"blocked": 5, "send": 0, "wait": 2, "receive": 0})
        );
        assert_eq!(
            (paced["time"].as_i64(), paced["_scimtrail"]["paced_ms"].as_i64()),
            (Some(7), Some(5))
        );
        // A host that is not one, and an exchange never answered, still make a valid entry.
        let odd = Exchange::begun(NewExchange {
            request_headers: json!([["host", "a b/c"]]),
            ..NewExchange::default()
        });
        let entry = har_entry(&odd);
        assert_eq!(entry["request"]["url"], "http://scimtrail.invalid");
        // What hyper lets through, or an erasure leaves, is escaped into a valid URI.
        let erased = Exchange::begun(NewExchange {
            path: "/Users/\"a b\"/{x}|é".into(),
            query: Some("[ERASED]".into()),
            request_headers: json!([["host", "h\"x"]]),
            ..NewExchange::default()
        });
        assert_eq!(
            har_entry(&erased)["request"]["url"],
            "http://scimtrail.invalid/Users/%22a%20b%22/%7Bx%7D%7C%C3%A9?%5BERASED%5D"
        );
        assert_eq!(uri_safe("a%20b%zz"), "a%20b%25zz");
        assert_eq!(
            (
                entry["response"]["status"].as_i64(),
                entry["response"]["bodySize"].as_i64()
            ),
            (Some(0), Some(-1))
        );
        assert!(entry["request"].get("postData").is_none());
    }
}
