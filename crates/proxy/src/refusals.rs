//! What a refusal at admission costs the store.
//!
//! Anyone who reaches the listener can be refused — no route, a wrong token, a bad path, a
//! body too large — and every refusal is recorded. Unbounded, 20 requests with ~370 KB of
//! headers each grew the store by 19 MB, and a flood of them would fill the disk and the
//! writer. So a refusal's record keeps the request line, the status, the client, and at most
//! [`KEPT_BYTES`] of headers, of query and of body, each cut with a marker saying what was
//! left out; and identical refusals (same client, route and status) within [`WINDOW`] are
//! counted into the first one's record (`repeat_count`): the others are answered naming it,
//! and not recorded again. At most [`MAX_WINDOWS`] are counted at once; past that, refusals
//! are recorded one by one, still bounded.

use scimtrail_store::NewExchange;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What a refusal's record keeps of its headers (names and values), its query, its body.
pub(crate) const KEPT_BYTES: usize = 4096;

/// How long identical refusals are counted into one record.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// How many (client, route, status) are counted at once.
const MAX_WINDOWS: usize = 4096;

/// Cuts what a refusal's record keeps to [`KEPT_BYTES`] each of headers, query and body.
pub(crate) fn bound(new: &mut NewExchange) {
    new.request_headers = bounded_headers(&new.request_headers);
    new.query = new.query.take().map(|query| cut(query, "query"));
    new.request_body = new.request_body.take().map(|body| cut(body, "body"));
}

/// Headers in order while their names and values fit, then one entry saying what was left.
fn bounded_headers(headers: &Value) -> Value {
    let Some(entries) = headers.as_array() else {
        return headers.clone();
    };
    let size = |entry: &Value| -> usize {
        entry
            .as_array()
            .map_or(0, |pair| pair.iter().filter_map(Value::as_str).map(str::len).sum())
    };
    let mut kept = Vec::new();
    let mut used = 0;
    let mut left = (0, 0);
    for entry in entries {
        let bytes = size(entry);
        if left.0 == 0 && used + bytes <= KEPT_BYTES {
            used += bytes;
            kept.push(entry.clone());
        } else {
            left = (left.0 + 1, left.1 + bytes);
        }
    }
    if left.0 > 0 {
        let (count, bytes) = left;
        kept.push(json!([
            "scimtrail-not-kept",
            format!("{count} more headers, {bytes} bytes: the request was refused")
        ]));
    }
    Value::Array(kept)
}

fn cut(mut text: String, what: &str) -> String {
    if text.len() <= KEPT_BYTES {
        return text;
    }
    let total = text.len();
    let mut end = KEPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!(
        "…[scimtrail: {what} cut from {total} bytes: the request was refused]"
    ));
    text
}

/// Which refusals count as the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) client: String,
    pub(crate) route: Option<String>,
    pub(crate) status: u16,
}

/// The refusals being counted, by key: the record they are counted into, and how many.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    windows: Mutex<HashMap<Key, (String, i64)>>,
}

/// Whether a refusal opens a window (it is recorded) or is counted into one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Record it; once [`WINDOW`] has passed, [`Repeats::close`] says how many it stands for.
    First,
    /// Counted into the record of this exchange.
    Repeat(String),
    /// Too many windows are open: record it on its own.
    Uncounted,
}

impl Repeats {
    /// Counts a refusal under `key`; `id` is its exchange's.
    pub(crate) fn see(&self, key: &Key, id: &str) -> Seen {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((first, count)) = windows.get_mut(key) {
            *count += 1;
            return Seen::Repeat(first.clone());
        }
        if windows.len() >= MAX_WINDOWS {
            return Seen::Uncounted;
        }
        windows.insert(key.clone(), (id.to_owned(), 1));
        Seen::First
    }

    /// Ends the window of `key`: the record it was counted into and its count, when more
    /// than the first came.
    pub(crate) fn close(&self, key: &Key) -> Option<(String, i64)> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows.remove(key).filter(|(_, count)| *count > 1)
    }
}

/// Closes `key`'s window after [`WINDOW`], then hands its count to `write`.
pub(crate) fn close_later(repeats: Arc<Repeats>, key: Key, write: impl FnOnce(String, i64) + Send + 'static) {
    tokio::spawn(async move {
        tokio::time::sleep(WINDOW).await;
        if let Some((id, count)) = repeats.close(&key) {
            write(id, count);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusals_headers_query_and_body_are_kept_within_the_bound() {
        let mut new = NewExchange {
            id: "x".into(),
            received_at_ms: 0,
            instance: "i".into(),
            route: None,
            idp: None,
            method: "GET".into(),
            path: "/Users".into(),
            query: Some("q".repeat(10_000)),
            resource_type: None,
            resource_id: None,
            user_name: None,
            operation: "other".into(),
            lifecycle: None,
            request_headers: json!([["host", "proxy"], ["x-pad", "p".repeat(8000)], ["accept", "*/*"]]),
            request_body: Some("é".repeat(5000)),
            replay_of: None,
            parent_id: None,
            client: Some("127.0.0.1".into()),
            rules_version: None,
            reconcile_of: None,
            synthetic: None,
        };
        bound(&mut new);
        assert_eq!(
            new.request_headers,
            json!([
                ["host", "proxy"],
                [
                    "scimtrail-not-kept",
                    "2 more headers, 8014 bytes: the request was refused"
                ]
            ])
        );
        let query = new.query.unwrap();
        assert!(
            query.len() < KEPT_BYTES + 100 && query.ends_with("query cut from 10000 bytes: the request was refused]")
        );
        let body = new.request_body.unwrap();
        assert!(
            body.len() < KEPT_BYTES + 100 && body.contains("body cut from 10000 bytes"),
            "{}",
            body.len()
        );
    }

    #[test]
    fn identical_refusals_are_counted_into_the_first_until_its_window_closes() {
        let repeats = Repeats::default();
        let key = |client: &str, status| Key {
            client: client.into(),
            route: Some("app".into()),
            status,
        };
        assert_eq!(repeats.see(&key("10.0.0.1", 401), "a"), Seen::First);
        assert_eq!(repeats.see(&key("10.0.0.1", 401), "b"), Seen::Repeat("a".into()));
        assert_eq!(repeats.see(&key("10.0.0.1", 401), "c"), Seen::Repeat("a".into()));
        // Another client, another status: windows of their own.
        assert_eq!(repeats.see(&key("10.0.0.2", 401), "d"), Seen::First);
        assert_eq!(repeats.see(&key("10.0.0.1", 404), "e"), Seen::First);
        assert_eq!(repeats.close(&key("10.0.0.1", 401)), Some(("a".into(), 3)));
        assert_eq!(repeats.close(&key("10.0.0.2", 401)), None, "one alone needs no count");
        assert_eq!(repeats.see(&key("10.0.0.1", 401), "f"), Seen::First, "a new window");
    }

    #[test]
    fn past_max_windows_refusals_are_recorded_one_by_one() {
        let repeats = Repeats::default();
        for n in 0..MAX_WINDOWS {
            let key = Key {
                client: format!("10.0.{}.{}", n / 256, n % 256),
                route: None,
                status: 404,
            };
            assert_eq!(repeats.see(&key, "x"), Seen::First);
        }
        let one_more = Key {
            client: "10.99.0.1".into(),
            route: None,
            status: 404,
        };
        assert_eq!(repeats.see(&one_more, "y"), Seen::Uncounted);
    }
}
