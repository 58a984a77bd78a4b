//! The layout every page shares, and the pieces pages are made of: outcome and status badges
//! (colour and text, never colour alone), times, JSON shown as a collapsible tree. Every
//! recorded value goes through maud's escaping; nothing here writes raw HTML from data.

use super::Viewer;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;
use maud::{html, Markup, DOCTYPE};
use scimtrail_store::{rfc3339, Exchange};
use serde_json::Value;

/// The embedded stylesheet and script (`ui/assets/`).
const STYLESHEET: &str = include_str!("assets/app.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// `GET /ui/assets/{file}`.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return refusal(StatusCode::NOT_FOUND, "no such asset"),
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (CACHE_CONTROL, HeaderValue::from_static("max-age=3600")),
        ],
        body,
    )
        .into_response()
}

/// Which section of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Exchanges,
    Timeline,
    Overview,
    Other,
}

/// A whole page: navigation, the title, the content.
pub(super) fn layout(title: &str, section: Section, viewer: Option<&Viewer>, content: Markup) -> Response {
    let link = |href: &str, name: &str, this: Section| {
        html! { a href=(href) aria-current=[(section == this).then_some("page")] { (name) } }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · scimtrail" }
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "scimtrail" }
                    nav aria-label="Sections" {
                        (link("/ui/", "Exchanges", Section::Exchanges))
                        (link("/ui/timeline", "Timeline", Section::Timeline))
                        (link("/ui/overview", "Overview", Section::Overview))
                    }
                    @if let Some(viewer) = viewer.filter(|v| v.logged_in) {
                        form.logout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

/// Markup as an HTML answer.
pub(super) fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
        markup.into_string(),
    )
        .into_response()
}

/// A refusal as a small page.
pub(super) fn refusal(status: StatusCode, why: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Refused · scimtrail" } link rel="stylesheet" href="/ui/assets/app.css"; }
            body { main { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or_default()) } p.refusal { (why) } } }
        }
    };
    html_response(status, markup)
}

/// An outcome as a badge: its colour says the class, its text says the outcome.
pub(super) fn outcome_badge(outcome: &str) -> Markup {
    let class = match outcome {
        "ok" => "good",
        "in_flight" => "neutral",
        "partial" | "interrupted" => "warn",
        _ => "bad",
    };
    html! { span class={"badge " (class)} data-outcome=(outcome) { (outcome) } }
}

/// The status the IdP got, and the application's when it differs.
pub(super) fn status_text(exchange: &Exchange) -> Markup {
    let returned = exchange
        .status()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "—".to_owned());
    let class = match exchange.status() {
        Some(200..=399) => "good",
        Some(_) => "bad",
        None => "neutral",
    };
    html! {
        span class={"status " (class)} { (returned) }
        @if let Some(upstream) = exchange.upstream_status().filter(|u| Some(*u) != exchange.status()) {
            " " span.muted title="what the application answered" { "(app " (upstream) ")" }
        }
        @if exchange.upstream_status().is_none() && exchange.outcome() != "in_flight" {
            " " span.muted { "(not forwarded)" }
        }
    }
}

/// How many findings, as a badge (nothing when none).
pub(super) fn findings_badge(findings: &Value) -> Markup {
    let count = findings.as_array().map_or(0, Vec::len);
    html! {
        @if count > 0 {
            span.badge.warn title="findings" { "⚠ " (count) (if count == 1 { " finding" } else { " findings" }) }
        }
    }
}

/// A time as `2026-12-07 02:13:09.123Z`, with the full RFC 3339 form for machines.
pub(super) fn time(ms: i64) -> Markup {
    let full = rfc3339(ms);
    html! { time datetime=(full) { (full.replacen('T', " ", 1)) } }
}

/// A JSON value as a tree: objects and arrays are `<details>` (open to `open_depth`), so
/// they fold and unfold with the keyboard and without script; scalars are coloured by type.
pub(super) fn json_tree(value: &Value, open_depth: usize) -> Markup {
    html! { div.json { (node(value, 0, open_depth)) } }
}

fn node(value: &Value, depth: usize, open_depth: usize) -> Markup {
    match value {
        Value::Object(members) if !members.is_empty() => html! {
            details open[depth < open_depth] {
                summary { "{ " span.muted { (members.len()) (if members.len() == 1 { " key" } else { " keys" }) } " }" }
                ul {
                    @for (key, member) in members {
                        li { span.key { "\"" (key) "\"" } ": " (node(member, depth + 1, open_depth)) }
                    }
                }
            }
        },
        Value::Array(items) if !items.is_empty() => html! {
            details open[depth < open_depth] {
                summary { "[ " span.muted { (items.len()) (if items.len() == 1 { " item" } else { " items" }) } " ]" }
                ol start="0" {
                    @for item in items { li { (node(item, depth + 1, open_depth)) } }
                }
            }
        },
        Value::Object(_) => html! { span.punct { "{}" } },
        Value::Array(_) => html! { span.punct { "[]" } },
        Value::String(text) => html! { span.string { (Value::String(text.clone()).to_string()) } },
        Value::Number(number) => html! { span.number { (number) } },
        Value::Bool(flag) => html! { span.bool { (flag) } },
        Value::Null => html! { span.null { "null" } },
    }
}

/// A recorded body: a JSON tree when it parses, else the text as it was (escaped, with
/// control characters shown as escapes so that no terminal sequence survives a copy).
pub(super) fn body(text: Option<&str>) -> Markup {
    match text {
        None => html! { p.muted { "(no body)" } },
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => json_tree(&value, 3),
            Err(_) => html! { pre.raw { (visible(text)) } },
        },
    }
}

/// Text with its control characters (but newline and tab) shown as `\u{…}`.
pub(super) fn visible(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `[[name, value], …]` as a table; fingerprints are shown as what they are.
pub(super) fn headers_table(headers: Option<&Value>) -> Markup {
    let pairs: Vec<(String, String)> = headers
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|pair| Some((pair.get(0)?.as_str()?.to_owned(), pair.get(1)?.as_str()?.to_owned())))
        .collect();
    html! {
        @if pairs.is_empty() { p.muted { "(none recorded)" } } @else {
            table.headers {
                @for (name, value) in &pairs {
                    tr {
                        th scope="row" { (name) }
                        td {
                            (visible(value))
                            @if value.contains("hmac:") {
                                " " span.badge.neutral title="a keyed fingerprint: the secret itself is never stored" { "fingerprint" }
                            } @else if value.contains("sha256:") {
                                " " span.badge.warn title="the old scheme, recorded before fingerprints were keyed: the first 32 bits of an unsalted SHA-256, which anyone who can read the store can test guesses against" { "old unkeyed fingerprint" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The query string without its empty fields (an empty form field means "any").
pub(super) fn filled(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(_, value)| !value.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// One field of the query string, when given and not empty.
pub(super) fn param(query: Option<&str>, key: &str) -> Option<String> {
    filled(query).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `text` for a URL's query string.
pub(super) fn query_escaped(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A link to one exchange, by a short form of its id.
pub(super) fn exchange_link(id: &str) -> Markup {
    html! { a.mono href={"/ui/exchanges/" (query_escaped(id))} { (short_id(id)) } }
}

/// The last 12 characters of a UUID: enough to tell exchanges apart by eye.
pub(super) fn short_id(id: &str) -> &str {
    id.get(id.len().saturating_sub(12)..).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_shown_as_what_they_are_the_old_scheme_marked_as_such() {
        let headers = serde_json::json!([
            ["authorization", "Bearer hmac:0a1b2c3d4e5f"],
            ["proxy-authorization", "Basic sha256:d908f259"],
            ["accept", "application/scim+json"],
        ]);
        let html = headers_table(Some(&headers)).into_string();
        let rows: Vec<&str> = html.split("<tr>").skip(1).collect();
        assert_eq!(rows.len(), 3, "{html}");
        assert!(
            rows[0].contains(">fingerprint<") && !rows[0].contains("old"),
            "{}",
            rows[0]
        );
        assert!(rows[1].contains(">old unkeyed fingerprint<"), "{}", rows[1]);
        assert!(!rows[2].contains("badge"), "{}", rows[2]);
    }
}
