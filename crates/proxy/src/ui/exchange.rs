//! `/ui/exchanges/{id}`: one exchange as every side saw it — the request as received and as
//! forwarded, the response as the application gave it and as returned — with what each rule
//! changed (and why the rule exists), the findings, headers, timings, bulk operations, the
//! exchanges it is linked to, a curl command to send it again (secrets left out), and
//! downloads as JSON or HAR.

use super::page::{self, exchange_link, outcome_badge, status_text, Section};
use super::Viewer;
use crate::admin::api::{store_failure, stream_export};
use crate::export::Format;
use crate::ui::Admin;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use http::StatusCode;
use maud::{html, Markup};
use scimtrail_store::{Exchange, ExchangeQuery, StoreError};
use serde_json::Value;
use std::sync::Arc;

/// `GET /ui/exchanges/{id}`.
pub(super) async fn page(
    State(admin): State<Arc<Admin>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let exchange = match admin.store.get(&id).await {
        Ok(exchange) => exchange,
        Err(StoreError::NotFound(_)) => {
            return page::refusal(StatusCode::NOT_FOUND, &format!("No exchange has the id {id}."))
        }
        Err(error) => return store_failure(&error),
    };
    let names = super::exchanges::Names::of(&admin, std::slice::from_ref(&exchange)).await;
    let who = names.who(&exchange);
    let title = format!("{} {}", exchange.begun.method, page::visible(&exchange.begun.path));
    let content = html! {
        section.summary aria-label="Summary" {
            dl {
                dt { "Outcome" } dd { (outcome_badge(exchange.outcome())) " " (status_text(&exchange)) }
                dt { "Received" } dd { (page::time(exchange.begun.received_at_ms)) }
                dt { "Took" } dd { @if let Some(ms) = exchange.duration_ms() { (ms) " ms" } @else { "—" } }
                @if let Some(ms) = exchange.paced_ms() { dt { "Paced" } dd { "waited " (ms) " ms in the route's pacing queue" } }
                dt { "Route · IdP" } dd { (exchange.begun.route.as_deref().unwrap_or("— (no route)")) " · " (exchange.begun.idp.as_deref().unwrap_or("—")) }
                @if let Some(version) = &exchange.begun.rules_version { dt { "Rules version" } dd.mono { (page::visible(version)) } }
                dt { "Operation" } dd { (exchange.begun.operation) @if let Some(lifecycle) = &exchange.begun.lifecycle { " · " strong { (lifecycle) } } }
                dt { "Resource" } dd {
                    (exchange.begun.resource_type.as_deref().unwrap_or("—"))
                    @if let Some(id) = &exchange.begun.resource_id { " " span.mono { (page::visible(id)) } }
                    @if let Some(who) = &who {
                        " · " a href={"/ui/timeline?user=" (page::query_escaped(who))} { "timeline of " (page::visible(who)) }
                    } @else if let Some(id) = &exchange.begun.resource_id {
                        " · " a href={"/ui/timeline?user=" (page::query_escaped(id))} { "timeline" }
                    }
                }
                @if let Some(query) = &exchange.begun.query { dt { "Query" } dd.mono { (page::visible(query)) } }
                @if let Some(error) = &exchange.error() { dt { "Proxy error" } dd.error { (page::visible(error)) } }
                dt { "Id" } dd.mono { (exchange.begun.id) }
                dt { "Instance · client" } dd { (if exchange.begun.instance.is_empty() { "—" } else { &exchange.begun.instance }) " · " (exchange.begun.client.as_deref().unwrap_or("—")) }
            }
            (links(&exchange))
            p.downloads {
                a href={"/ui/exchanges/" (exchange.begun.id) "/download?format=json"} download { "Download JSON" }
                " · "
                a href={"/ui/exchanges/" (exchange.begun.id) "/download?format=har"} download { "Download HAR" }
            }
            @if scimtrail_store::REPLAYABLE_OUTCOMES.contains(&exchange.outcome()) && exchange.begun.replay_of.is_none() {
                form method="post" action="/ui/replay" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="id" value=(exchange.begun.id);
                    button type="submit" name="scope" value="selected" { "Replay… (dry run first)" }
                }
            }
        }
        (findings(exchange.findings()))
        (changes(&admin, &exchange))
        @if let Some(operations) = exchange.bulk_operations().and_then(Value::as_array) {
            (bulk(operations))
        }
        section.sides aria-label="Request" {
            h2 { "Request" }
            div.pair {
                div { h3 { "As received from the IdP" } (page::headers_table(Some(&exchange.begun.request_headers))) (page::body(exchange.begun.request_body.as_deref())) }
                div { h3 { "As forwarded to the application" }
                    @if exchange.forwarded_headers().is_some() {
                        (page::headers_table(exchange.forwarded_headers()))
                        (page::body(exchange.forwarded_body()))
                    } @else { p.muted { "Not forwarded." } }
                }
            }
        }
        section.sides aria-label="Response" {
            h2 { "Response" }
            div.pair {
                div { h3 { "As the application gave it" @if let Some(status) = exchange.upstream_status() { " (" (status) ")" } }
                    @if exchange.upstream_status().is_some() {
                        (page::body(application_body(&exchange).as_deref()))
                    } @else { p.muted { "The application gave no answer." } }
                }
                div { h3 { "As returned to the IdP" @if let Some(status) = exchange.status() { " (" (status) ")" } }
                    (page::headers_table(exchange.response_headers()))
                    (page::body(exchange.response_body()))
                }
            }
        }
        section aria-label="Send it again" {
            h2 { "Copy as curl" }
            p.muted { "The request as received, to this proxy; credentials are left out (add your own)." }
            pre.curl id="curl" { (curl(&admin, &exchange)) }
            button type="button" class="copy" data-copy="curl" { "Copy" }
        }
    };
    page::layout(&title, Section::Exchanges, Some(&viewer), content)
}

/// Parent, children, the original and the replays.
fn links(exchange: &Exchange) -> Markup {
    html! {
        @if exchange.begun.parent_id.is_some() || !exchange.children.is_empty() || exchange.begun.replay_of.is_some() || !exchange.replays.is_empty() {
            dl.links {
                @if let Some(parent) = &exchange.begun.parent_id { dt { "Made for" } dd { (exchange_link(parent)) } }
                @if !exchange.children.is_empty() {
                    dt { "Made for it (read-backs, bulk operations)" }
                    dd { @for child in &exchange.children { (exchange_link(child)) " " } }
                }
                @if let Some(original) = &exchange.begun.replay_of { dt { "Replays" } dd { (exchange_link(original)) } }
                @if !exchange.replays.is_empty() {
                    dt { "Replayed by" }
                    dd { @for replay in &exchange.replays { (exchange_link(replay)) " " } }
                }
            }
        }
    }
}

fn findings(findings: &Value) -> Markup {
    let findings = findings.as_array().cloned().unwrap_or_default();
    html! {
        section aria-label="Findings" {
            h2 { "Findings" }
            @if findings.is_empty() { p.muted { "None: nothing silent was found in this exchange." } } @else {
                ul.findings {
                    @for finding in &findings {
                        li {
                            span.badge.warn { "⚠ " (finding.get("kind").and_then(Value::as_str).unwrap_or("finding")) }
                            " " (page::visible(finding.get("detail").and_then(Value::as_str).unwrap_or_default()))
                        }
                    }
                }
            }
        }
    }
}

/// What the rules changed, each change with its rule and the rule's reason.
fn changes(admin: &Admin, exchange: &Exchange) -> Markup {
    let changes = exchange.changes().as_array().cloned().unwrap_or_default();
    // The route's profile now: its rules' reasons (the exchange's own rules_version says
    // whether they are the rules it ran).
    let profile = admin
        .proxy
        .route_named(exchange.begun.route.as_deref())
        .and_then(|route| admin.proxy.profiles.of(route));
    let why = |rule: &str| {
        profile
            .as_ref()
            .and_then(|p| p.rules.iter().find(|r| r.id == rule))
            .map(|r| r.why.clone())
    };
    let text = |change: &Value, key: &str| change.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    // Reasons from other rules than those the exchange ran are said to be so.
    let now = profile
        .as_ref()
        .map(|p| p.version().to_owned())
        .filter(|now| exchange.begun.rules_version.as_ref().is_some_and(|ran| ran != now));
    html! {
        section aria-label="What the rules changed" {
            h2 { "What the rules changed" }
            @if let (Some(now), Some(ran)) = (&now, &exchange.begun.rules_version) {
                @if !changes.is_empty() {
                    p.muted { "The route's rules have changed since: the reasons below are those of rules_version " (page::visible(now)) "; this exchange ran " (page::visible(ran)) "." }
                }
            }
            @if changes.is_empty() { p.muted { "Nothing: forwarded as received." } } @else {
                table.changes {
                    thead { tr { th scope="col" { "Rule" } th scope="col" { "Where" } th scope="col" { "Before" } th scope="col" { "After" } } }
                    tbody {
                        @for change in &changes {
                            @let rule = text(change, "rule");
                            @let op = text(change, "op");
                            @let applied = change.get("applied").and_then(Value::as_bool).unwrap_or(true);
                            tr {
                                td {
                                    strong.rule { (rule) }
                                    " " span.muted { (op) " · " (text(change, "side")) @if !applied { " · " em { "observed, not applied" } } }
                                    @if let Some(why) = why(&rule) { p.why { (why) } }
                                }
                                td.mono { (page::visible(&text(change, "pointer"))) }
                                td.before { @if let Some(before) = change.get("before").filter(|v| !v.is_null() || op != "added") { (page::json_tree(before, 1)) } }
                                td.after { @if let Some(after) = change.get("after").filter(|v| !v.is_null() || op != "removed") { (page::json_tree(after, 1)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn bulk(operations: &[Value]) -> Markup {
    let text = |op: &Value, key: &str| match op.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    html! {
        section aria-label="Bulk operations" {
            h2 { "Bulk operations" }
            table.bulk {
                thead { tr { th scope="col" { "#" } th scope="col" { "Operation" } th scope="col" { "bulkId" } th scope="col" { "Status" } th scope="col" { "Outcome" } th scope="col" { "Detail" } } }
                tbody {
                    @for op in operations {
                        tr {
                            td.number { (text(op, "index")) }
                            td { span.method { (text(op, "method")) } " " (page::visible(&text(op, "path"))) }
                            td.mono { (page::visible(&text(op, "bulkId"))) }
                            td { (text(op, "status")) }
                            td { (outcome_badge(&text(op, "outcome"))) }
                            td { (page::visible(&text(op, "detail"))) " " (page::visible(&text(op, "location"))) }
                        }
                    }
                }
            }
        }
    }
}

/// The response body as the application gave it: the returned one with the response rules'
/// changes undone, last first.
fn application_body(exchange: &Exchange) -> Option<String> {
    let returned = exchange.response_body()?;
    // Changes to the body only (`header:…` pointers name headers).
    let response_changes: Vec<&Value> = exchange
        .changes()
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c.get("side").and_then(Value::as_str) == Some("response"))
        .filter(|c| c.get("applied").and_then(Value::as_bool).unwrap_or(true))
        .filter(|c| {
            c.get("pointer")
                .and_then(Value::as_str)
                .is_some_and(|p| p.is_empty() || p.starts_with('/'))
        })
        .collect();
    let Some(mut body) = serde_json::from_str::<Value>(returned)
        .ok()
        .filter(|_| !response_changes.is_empty())
    else {
        return Some(returned.to_owned());
    };
    for change in response_changes.iter().rev() {
        let pointer = change.get("pointer").and_then(Value::as_str).unwrap_or_default();
        undo(
            &mut body,
            pointer,
            change.get("op").and_then(Value::as_str),
            change.get("before"),
        );
    }
    Some(body.to_string())
}

/// Puts `before` back at `pointer` (or removes what a change added).
fn undo(body: &mut Value, pointer: &str, op: Option<&str>, before: Option<&Value>) {
    if pointer.is_empty() {
        if let Some(before) = before {
            *body = before.clone();
        }
        return;
    }
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let Some(parent) = body.pointer_mut(parent) else { return };
    match (parent, op) {
        (Value::Object(members), Some("added")) => {
            members.remove(&last);
        }
        (Value::Object(members), _) => {
            if let Some(before) = before {
                members.insert(last, before.clone());
            }
        }
        (Value::Array(items), op) => {
            let Ok(index) = last.parse::<usize>() else { return };
            match (op, before) {
                (Some("added"), _) if index < items.len() => {
                    items.remove(index);
                }
                (Some("removed"), Some(before)) if index <= items.len() => items.insert(index, before.clone()),
                (_, Some(before)) if index < items.len() => items[index] = before.clone(),
                _ => {}
            }
        }
        _ => {}
    }
}

/// `curl` sending the request as received to this proxy, credentials left out.
fn curl(admin: &Admin, exchange: &Exchange) -> String {
    let quote = |text: &str| format!("'{}'", page::visible(text).replace('\'', "'\\''"));
    let mut target = format!("http://{}{}", admin.proxy_addr, exchange.begun.path);
    if let Some(query) = &exchange.begun.query {
        target.push('?');
        target.push_str(query);
    }
    // The method too is quoted: a refused request is recorded with whatever method it had.
    let mut command = format!("curl -X {} {}", quote(&exchange.begun.method), quote(&target));
    for pair in exchange.begun.request_headers.as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (pair.get(0).and_then(Value::as_str), pair.get(1).and_then(Value::as_str))
        else {
            continue;
        };
        let skipped = [
            "host",
            "content-length",
            "connection",
            "transfer-encoding",
            "accept-encoding",
        ];
        if skipped.contains(&name) || admin.proxy.redactor.is_secret(name) {
            continue;
        }
        command.push_str(&format!(" \\\n  -H {}", quote(&format!("{name}: {value}"))));
    }
    if let Some(body) = &exchange.begun.request_body {
        command.push_str(&format!(" \\\n  --data-raw {}", quote(body)));
    }
    command
}

/// `GET /ui/exchanges/{id}/download?format=json|har`: the exchange as the API gives it, or as
/// a HAR file (audited, as every export is).
pub(super) async fn download(
    State(admin): State<Arc<Admin>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let format = page::param(query.as_deref(), "format").unwrap_or_else(|| "json".to_owned());
    let exchange = match admin.store.get(&id).await {
        Ok(exchange) => exchange,
        Err(StoreError::NotFound(_)) => return page::refusal(StatusCode::NOT_FOUND, "no such exchange"),
        Err(error) => return store_failure(&error),
    };
    let file = format!("scimtrail-exchange-{}", page::short_id(&exchange.begun.id));
    if format == "har" {
        // Exactly this exchange: the newest below the next possible id, from its id's
        // millisecond (ids are UUIDv7; `received_at` may be a millisecond later).
        let filter = ExchangeQuery {
            cursor: Some(format!("{}0", exchange.begun.id)),
            since_ms: super::exchanges::uuid_v7_ms(&exchange.begun.id),
            limit: 1,
            ..ExchangeQuery::default()
        };
        return stream_export(admin, viewer.caller, Format::Har, Some(1), filter, &file).await;
    }
    let body = serde_json::to_string_pretty(&exchange.to_json()).unwrap_or_default();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}.json\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}
