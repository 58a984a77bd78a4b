//! Replay from the UI: the exchanges selected in the table (or every replayable one the
//! filters match) → `POST /ui/replay`, the dry run: what would be sent, what is skipped and
//! why, the attribute diff against the application now → confirm → `POST /ui/replay/run`,
//! the results, each linked to its new exchange. The same replay as the CLI's and the API's
//! (`Proxy::replay`: lease, checks, audit), nothing more.

use super::page::{self, exchange_link, outcome_badge, Section};
use super::Viewer;
use crate::admin::list_query;
use crate::clock::now_ms;
use crate::replay::{ReplayError, ReplayReport, Selection};
use crate::ui::Admin;
use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Form};
use http::StatusCode;
use maud::{html, Markup};
use scimtrail_store::StoreError;
use serde_json::Value;
use std::sync::Arc;

/// The form's fields, in order: `id` (repeated), `scope` (`selected` or `filter`), and
/// `filter`, the table's filters as a query string.
type Fields = Vec<(String, String)>;

/// What the form selects, and the hidden fields that select it again on the confirmation.
fn selection(fields: &Fields) -> Result<Selection, String> {
    let scope = fields
        .iter()
        .find(|(k, _)| k == "scope")
        .map_or("selected", |(_, v)| v.as_str());
    if scope == "filter" {
        // The table's filters, as its query string; where the page was is not a filter.
        let asked = fields
            .iter()
            .find(|(k, _)| k == "filter")
            .map_or("", |(_, v)| v.as_str());
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in super::page::filled(Some(asked)) {
            if key != "cursor" && key != "limit" {
                query.append_pair(&key, &value);
            }
        }
        return list_query(Some(&query.finish()), now_ms()).map(|filter| Selection::Filter(Box::new(filter)));
    }
    let ids: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .collect();
    if ids.is_empty() {
        return Err("select at least one exchange (the boxes in the table's first column)".to_owned());
    }
    Ok(Selection::Ids(ids))
}

/// `POST /ui/replay`: the dry run.
pub(super) async fn preview(
    State(admin): State<Arc<Admin>>,
    Extension(viewer): Extension<Viewer>,
    Form(fields): Form<Fields>,
) -> Response {
    respond(&admin, &viewer, fields, true).await
}

/// `POST /ui/replay/run`: the run, once confirmed.
pub(super) async fn run(
    State(admin): State<Arc<Admin>>,
    Extension(viewer): Extension<Viewer>,
    Form(fields): Form<Fields>,
) -> Response {
    respond(&admin, &viewer, fields, false).await
}

async fn respond(admin: &Admin, viewer: &Viewer, fields: Fields, dry_run: bool) -> Response {
    let selection = match selection(&fields) {
        Ok(selection) => selection,
        Err(error) => return page::refusal(StatusCode::BAD_REQUEST, &format!("Nothing to replay: {error}.")),
    };
    let report = match admin.proxy.replay(selection, dry_run, &viewer.caller).await {
        Ok(report) => report,
        Err(ReplayError::Store(StoreError::NotFound(id))) => {
            return page::refusal(StatusCode::NOT_FOUND, &format!("No exchange has the id {id}."))
        }
        Err(busy @ ReplayError::Busy { .. }) => return page::refusal(StatusCode::CONFLICT, &busy.to_string()),
        Err(ReplayError::Store(error)) => return crate::admin::api::store_failure(&error),
    };
    // The run replays what the dry run showed, by id: a filter read again could select more
    // (a relative `since` moves, new failures arrive).
    let shown: Vec<&str> = report
        .items
        .iter()
        .filter(|i| i.action == "would_replay")
        .map(|i| i.exchange.as_str())
        .collect();
    let title = if dry_run { "Replay: dry run" } else { "Replay: results" };
    let content = html! {
        (summary(&report))
        @if dry_run {
            @if !shown.is_empty() {
                form method="post" action="/ui/replay/run" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="scope" value="selected";
                    @for id in &shown { input type="hidden" name="id" value=(id); }
                    p { "Nothing has been sent yet. The run checks everything again before it sends." }
                    button.danger type="submit" id="confirm-replay" { "Replay now" }
                    " " a href="/ui/" { "Cancel" }
                }
            } @else {
                p { "Nothing would be sent. " a href="/ui/" { "Back to the exchanges" } }
            }
        }
        (items(&report))
    };
    page::layout(title, Section::Exchanges, Some(viewer), content)
}

fn summary(report: &ReplayReport) -> Markup {
    let summary = report.summary();
    let count = |key: &str| summary.get(key).and_then(Value::as_u64).unwrap_or(0);
    html! {
        p.replay-summary id="replay-summary" {
            (count("selected")) " selected · "
            @if report.dry_run { (count("would_replay")) " would be replayed · " }
            @else { (count("replayed")) " replayed (" (count("succeeded")) " succeeded, " (count("failed")) " failed) · " }
            (count("skipped")) " skipped"
            @if count("not_attempted") > 0 { " · " (count("not_attempted")) " not attempted" }
        }
    }
}

fn items(report: &ReplayReport) -> Markup {
    html! {
        table.replay {
            thead { tr {
                th scope="col" { "Exchange" } th scope="col" { "Request" } th scope="col" { "Action" }
                th scope="col" { "Why / result" } th scope="col" { "Would send, and the diff" }
            } }
            tbody {
                @for item in &report.items {
                    tr data-action=(item.action) {
                        td { (exchange_link(&item.exchange)) }
                        td.request { (page::visible(&item.request)) }
                        td { span class={"badge " (action_class(item.action))} { (item.action.replace('_', " ")) } }
                        td {
                            @if let Some(kind) = item.kind { strong { (kind) } ": " }
                            @if let Some(reason) = &item.reason { (page::visible(reason)) }
                            @if let Some(replay) = &item.replay {
                                " → " (exchange_link(replay))
                                @if let Some(status) = item.status { " " (status) }
                                @if let Some(outcome) = &item.outcome { " " (outcome_badge(outcome)) }
                            }
                            @for note in &item.notes { p.note { (page::visible(note)) } }
                        }
                        td {
                            @if let Some(preview) = &item.preview {
                                @if let Some(send) = preview.get("send") { h4 { "Would send" } (page::json_tree(send, 2)) }
                                @if let Some(diff) = preview.get("diff_from_current") { h4 { "Against the application now" } (page::json_tree(diff, 2)) }
                                @if let Some(diff) = preview.get("diff_from_sent") { h4 { "Against what was sent before" } (page::json_tree(diff, 1)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn action_class(action: &str) -> &'static str {
    match action {
        "replayed" | "would_replay" => "good",
        "skipped" | "not_attempted" => "neutral",
        _ => "bad",
    }
}
