//! `/ui/`: the exchanges, newest first, with the API's filters (the same query string, read
//! by the same code), keyset paging, a live mode that adds new exchanges as they are recorded
//! (`/ui/exchanges/rows`, polled by the script), and replay of what is selected or of
//! everything failed that matches.

use super::page::{self, findings_badge, outcome_badge, status_text, Section};
use super::Viewer;
use crate::admin::{api::store_failure, list_query};
use crate::clock::now_ms;
use crate::ui::Admin;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Extension;
use http::StatusCode;
use maud::{html, Markup};
use scimtrail_store::{Exchange, ExchangeQuery, ResourceName};
use std::collections::HashMap;
use std::sync::Arc;

/// The outcomes an operator filters by.
const OUTCOMES: [&str; 7] = [
    "ok",
    "failed",
    "rejected",
    "unreachable",
    "partial",
    "interrupted",
    "in_flight",
];
/// The lifecycle events.
pub(super) const LIFECYCLES: [&str; 7] = [
    "provision",
    "update",
    "membership",
    "deactivate",
    "reactivate",
    "deprovision",
    "lookup",
];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const FINDING_KINDS: [&str; 9] = [
    "deprovision_not_applied",
    "membership_not_applied",
    "attribute_not_applied",
    "bulk_partial_failure",
    "lookup_mismatch",
    "username_case_collision",
    "non_scim_error",
    "bad_upstream_request",
    "shape_drift",
];
/// The time range's quick picks.
const QUICK_PICKS: [(&str, &str); 5] = [
    ("15m", "15 min"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
];

fn encoded(pairs: &[(String, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    query.finish()
}

/// `GET /ui/?<filters>`.
pub(super) async fn page(
    State(admin): State<Arc<Admin>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = page::filled(query.as_deref());
    let own: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").cloned().collect();
    let filter = match list_query(Some(&encoded(&pairs)), now_ms()) {
        Ok(filter) => filter,
        Err(error) => return page::refusal(StatusCode::BAD_REQUEST, &format!("The filters: {error}")),
    };
    let listed = match admin.store.list(&filter).await {
        Ok(listed) => listed,
        Err(error) => return store_failure(&error),
    };
    let names = Names::of(&admin, &listed.items).await;
    // As shown in the form: control characters as escapes, like every recorded value.
    let value = |key: &str| {
        page::visible(
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default(),
        )
    };
    let routes: Vec<(String, String)> = admin
        .proxy
        .config
        .routes
        .iter()
        .map(|r| (r.name.clone(), r.idp.clone()))
        .collect();
    let mut idps: Vec<&str> = routes.iter().map(|(_, idp)| idp.as_str()).collect();
    idps.sort_unstable();
    idps.dedup();
    let select = |name: &str, label: &str, options: &[&str]| {
        html! {
            label { (label)
                select name=(name) {
                    option value="" { "any" }
                    @for option in options {
                        option value=(option) selected[value(name) == **option] { (option) }
                    }
                }
            }
        }
    };
    let route_names: Vec<&str> = routes.iter().map(|(name, _)| name.as_str()).collect();
    let content = html! {
        form.filters method="get" action="/ui/" role="search" aria-label="Filter exchanges" {
            fieldset {
                legend { "Time" }
                label { "Since" input type="text" name="since" value=(value("since")) placeholder="1h, 7d or 2026-12-01T00:00:00Z"; }
                label { "Until" input type="text" name="until" value=(value("until")) placeholder="now"; }
                span.quick {
                    @for (since, label) in QUICK_PICKS {
                        a href={"/ui/?" (encoded(&with(&own, "since", since)))} aria-current=[(value("since") == *since).then_some("true")] { (label) }
                    }
                }
            }
            fieldset {
                legend { "Exchange" }
                (select("route", "Route", &route_names))
                (select("idp", "IdP", &idps))
                (select("method", "Method", &METHODS))
                (select("outcome", "Outcome", &OUTCOMES))
                (select("lifecycle", "Lifecycle", &LIFECYCLES))
                (select("resource", "Resource type", &["Users", "Groups"]))
            }
            fieldset {
                legend { "Who and what" }
                label { "userName, externalId, displayName or id"
                    input type="search" name="user" value=(value("user")) placeholder="jdoe@example.com";
                }
                (select("finding", "Finding kind", &FINDING_KINDS))
                label.check { input type="checkbox" name="findings" value="true" checked[value("findings") == "true"]; "has findings" }
                label.check { input type="checkbox" name="failed" value="true" checked[value("failed") == "true"]; "failed only" }
                label.check { input type="checkbox" name="synthetic" value="true" checked[value("synthetic") == "true"]; "synthetic traffic only (verify)" }
            }
            div.actions {
                button type="submit" { "Filter" }
                a href="/ui/" { "Clear" }
                label.check.live { input type="checkbox" id="live" data-query=(encoded(&own)); "Live: add new exchanges as they are recorded" }
                @if let Some((_, user)) = pairs.iter().find(|(k, _)| k == "user") {
                    a href={"/ui/timeline?user=" (page::query_escaped(user))} { "Timeline of “" (value("user")) "”" }
                }
            }
        }
        form method="post" action="/ui/replay" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="filter" value=(encoded(&own));
            table.exchanges {
                caption.visually-hidden { "Exchanges, newest first" }
                thead { tr {
                    th scope="col" { span.visually-hidden { "Select" } }
                    th scope="col" { "Received" } th scope="col" { "Route · IdP" } th scope="col" { "Request" }
                    th scope="col" { "Who" } th scope="col" { "Lifecycle" } th scope="col" { "Status" }
                    th scope="col" { "Outcome" } th scope="col" { "Findings" } th scope="col" { "ms" }
                } }
                tbody id="rows" {
                    @for exchange in &listed.items { (row(exchange, &names)) }
                }
            }
            @if listed.items.is_empty() { p.empty { "No exchange matches these filters." } }
            nav.pager aria-label="Pages" {
                @if pairs.iter().any(|(k, _)| k == "cursor") { a href={"/ui/?" (encoded(&own))} { "← Newest" } }
                @if let Some(next) = &listed.next_cursor {
                    a href={"/ui/?" (encoded(&with(&own, "cursor", next)))} rel="next" { "Older →" }
                }
            }
            div.actions {
                button type="submit" name="scope" value="selected" { "Replay selected… (dry run first)" }
                button type="submit" name="scope" value="filter" { "Replay every failed exchange matching the filters… (dry run first)" }
            }
        }
    };
    page::layout("Exchanges", Section::Exchanges, Some(&viewer), content)
}

/// `pairs` with `key` set to `value`.
fn with(pairs: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != key).cloned().collect();
    out.push((key.to_owned(), value.to_owned()));
    out
}

/// One exchange as a row of the table.
pub(super) fn row(exchange: &Exchange, names: &Names) -> Markup {
    let who = names.who(exchange);
    let failed = exchange.outcome() != "ok" && exchange.outcome() != "in_flight";
    html! {
        tr data-id=(exchange.begun.id) class=[failed.then_some("failed")] {
            td { input type="checkbox" name="id" value=(exchange.begun.id) aria-label={"select " (exchange.begun.id)}; }
            td { a href={"/ui/exchanges/" (exchange.begun.id)} { (page::time(exchange.begun.received_at_ms)) } }
            td { (exchange.begun.route.as_deref().unwrap_or("—")) " · " (exchange.begun.idp.as_deref().unwrap_or("—")) }
            td.request { span.method { (exchange.begun.method) } " " (page::visible(&exchange.begun.path)) }
            td { @if let Some(who) = &who {
                a href={"/ui/timeline?user=" (page::query_escaped(who))} { (page::visible(who)) }
            } @else { span.muted { "—" } } }
            td { (exchange.begun.lifecycle.as_deref().unwrap_or("—")) }
            td { (status_text(exchange)) }
            td { (outcome_badge(exchange.outcome())) }
            td { (findings_badge(exchange.findings())) }
            td.number { (exchange.duration_ms().map(|d| d.to_string()).unwrap_or_default()) }
        }
    }
}

/// What the exchanges addressed by id are called (the names index), for the "Who" column.
pub(super) struct Names(HashMap<(String, String, String), ResourceName>);

impl Names {
    /// The names of the resources `exchanges` address by id without showing a userName.
    pub(super) async fn of(admin: &Admin, exchanges: &[Exchange]) -> Names {
        let keys: Vec<(String, String, String)> = exchanges
            .iter()
            .filter(|e| e.begun.user_name.is_none())
            .filter_map(key_of)
            .collect();
        match admin.store.names_of(&keys).await {
            Ok(names) => Names(
                names
                    .into_iter()
                    .map(|n| ((n.route.clone(), n.resource_type.clone(), n.resource_id.clone()), n))
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(%error, "The UI could not read the names index.");
                Names(HashMap::new())
            }
        }
    }

    /// What the resource `exchange` addresses is called, where the index knows.
    pub(super) fn name(&self, exchange: &Exchange) -> Option<&ResourceName> {
        self.0.get(&key_of(exchange)?)
    }

    /// Who an exchange is about: the userName it shows, else its resource's userName or
    /// displayName.
    pub(super) fn who(&self, exchange: &Exchange) -> Option<String> {
        exchange.begun.user_name.clone().or_else(|| {
            let name = self.name(exchange)?;
            name.user_name.clone().or_else(|| name.display_name.clone())
        })
    }
}

fn key_of(exchange: &Exchange) -> Option<(String, String, String)> {
    Some((
        exchange.begun.route.clone()?,
        exchange.begun.resource_type.clone()?,
        exchange.begun.resource_id.clone()?,
    ))
}

/// `GET /ui/exchanges/rows?<filters>&after=<id>`: the rows of exchanges newer than `after`
/// that match, newest first, as HTML (the live mode adds them to the table).
pub(super) async fn live_rows(State(admin): State<Arc<Admin>>, RawQuery(query): RawQuery) -> Response {
    let mut pairs = page::filled(query.as_deref());
    let after = pairs.iter().find(|(k, _)| k == "after").map(|(_, v)| v.clone());
    pairs.retain(|(k, _)| k != "after" && k != "cursor" && k != "since");
    let mut filter: ExchangeQuery = match list_query(Some(&encoded(&pairs)), now_ms()) {
        Ok(filter) => filter,
        Err(error) => return page::refusal(StatusCode::BAD_REQUEST, &error),
    };
    if let Some(ms) = after.as_deref().and_then(uuid_v7_ms) {
        filter.since_ms = Some(ms);
    }
    filter.limit = 100;
    let listed = match admin.store.list(&filter).await {
        Ok(listed) => listed,
        Err(error) => return store_failure(&error),
    };
    // A full page whose oldest is still newer than `after`: more arrived than are shown.
    let more = listed.next_cursor.is_some()
        && listed
            .items
            .last()
            .is_some_and(|oldest| after.as_deref().is_none_or(|after| oldest.begun.id.as_str() > after));
    let newer: Vec<Exchange> = listed
        .items
        .into_iter()
        .filter(|e| after.as_deref().is_none_or(|after| e.begun.id.as_str() > after))
        .collect();
    let names = Names::of(&admin, &newer).await;
    page::html_response(
        StatusCode::OK,
        html! {
            @for exchange in &newer { (row(exchange, &names)) }
            @if more {
                tr.gap { td colspan="10" { "More exchanges arrived than live mode adds at once: "
                    a href="" { "reload" } " to see them all." } }
            }
        },
    )
}

/// The millisecond a UUIDv7 was made in.
pub(super) fn uuid_v7_ms(id: &str) -> Option<i64> {
    let hex: String = id.chars().filter(|c| *c != '-').take(12).collect();
    i64::from_str_radix(&hex, 16).ok()
}
