//! `/ui/timeline?user=…`: "what happened to jdoe@example.com" on one page — every exchange
//! that touched the person or group (by userName, externalId, displayName or id, through the
//! store's names index, so the requests by id, every deactivation among them, are on it),
//! oldest first, its lifecycle events drawn on a time line, and after each write the state
//! the IdP intended (whether the application took it or not: a deactivation it refused still
//! means the IdP wants the person inactive).

use super::page::{self, exchange_link, outcome_badge, status_text, Section};
use super::Viewer;
use crate::admin::api::store_failure;
use crate::ui::Admin;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use scimtrail_store::{Exchange, ExchangeQuery};
use std::sync::Arc;

/// The most exchanges one timeline shows (the newest, drawn oldest first).
const MOST: u64 = 500;

/// `GET /ui/timeline?user=<text>`.
pub(super) async fn page(
    State(admin): State<Arc<Admin>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(query): RawQuery,
) -> Response {
    let user = page::param(query.as_deref(), "user");
    let search = html! {
        form.filters method="get" action="/ui/timeline" role="search" {
            label { "userName, externalId, displayName or resource id"
                input type="search" name="user" value=(page::visible(user.as_deref().unwrap_or_default())) placeholder="jdoe@example.com" required;
            }
            button type="submit" { "Show the timeline" }
        }
    };
    let Some(user) = user else {
        return page::layout("Timeline", Section::Timeline, Some(&viewer), search);
    };
    let filter = ExchangeQuery {
        user: Some(user.clone()),
        limit: MOST,
        ..ExchangeQuery::default()
    };
    let mut exchanges = match admin.store.list(&filter).await {
        Ok(page) => page.items,
        Err(error) => return store_failure(&error),
    };
    let more = exchanges.len() as u64 == MOST;
    exchanges.reverse();
    let names = super::exchanges::Names::of(&admin, &exchanges).await;
    let intended = intended_states(&exchanges);
    let content = html! {
        (search)
        @if exchanges.is_empty() {
            p.empty { "No exchange touched “" (page::visible(&user)) "”." }
        } @else {
            p {
                (exchanges.len()) " exchanges, oldest first"
                @if more { " (the newest " (MOST) "; " a href={"/ui/?user=" (page::query_escaped(&user))} { "all of them in the table" } ")" }
                "."
            }
            (drawing(&exchanges))
            table.timeline {
                thead { tr {
                    th scope="col" { "Received" } th scope="col" { "Event" } th scope="col" { "Request" } th scope="col" { "Who" }
                    th scope="col" { "Status" } th scope="col" { "Outcome" } th scope="col" { "The IdP intends after it" }
                } }
                tbody {
                    @for (exchange, intended) in exchanges.iter().zip(&intended) {
                        @let who = exchange.begun.user_name.clone().or_else(|| names.name(exchange)?.user_name.clone());
                        tr class=[(exchange.outcome() != "ok").then_some("failed")] {
                            td { a href={"/ui/exchanges/" (exchange.begun.id)} { (page::time(exchange.begun.received_at_ms)) } }
                            td { span class={"event " (exchange.begun.lifecycle.as_deref().unwrap_or("other"))} { (exchange.begun.lifecycle.as_deref().unwrap_or(&exchange.begun.operation)) } }
                            td.request { span.method { (exchange.begun.method) } " " (page::visible(&exchange.begun.path)) " " (exchange_link(&exchange.begun.id)) }
                            td { (page::visible(who.as_deref().unwrap_or("—"))) }
                            td { (status_text(exchange)) }
                            td { (outcome_badge(exchange.outcome())) " " (page::findings_badge(exchange.findings())) }
                            td { @if let Some(state) = intended { strong { (state) } } @else { span.muted { "—" } } }
                        }
                    }
                }
            }
        }
    };
    let title = format!("Timeline of “{}”", page::visible(&user));
    page::layout(&title, Section::Timeline, Some(&viewer), content)
}

/// After each exchange, what the IdP intends for the resource it wrote, when it was a
/// lifecycle write. Every write of the IdP counts, whatever the application answered: a
/// deactivation that failed still means the IdP wants the person inactive.
fn intended_states(exchanges: &[Exchange]) -> Vec<Option<&'static str>> {
    exchanges
        .iter()
        .map(|exchange| match exchange.begun.lifecycle.as_deref() {
            Some("provision") | Some("reactivate") if exchange.begun.resource_type.as_deref() == Some("Users") => {
                Some("exists, active")
            }
            Some("provision") => Some("exists"),
            Some("deactivate") => Some("exists, inactive"),
            Some("deprovision") => Some("deleted"),
            Some("membership") => Some("these members"),
            Some("update") => Some("these attributes"),
            _ => None,
        })
        .collect()
}

/// The lifecycle events on a time line (SVG drawn here: no script, no library). Each mark is
/// labelled in text as well as coloured.
fn drawing(exchanges: &[Exchange]) -> Markup {
    let events: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.begun.lifecycle.as_deref().is_some_and(|l| l != "lookup"))
        .collect();
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return html! { p.muted { "No lifecycle event (only lookups)." } };
    };
    let span = (last.begun.received_at_ms - first.begun.received_at_ms).max(1) as f64;
    let x = |ms: i64| 40.0 + 920.0 * (ms - first.begun.received_at_ms) as f64 / span;
    html! {
        figure.timeline {
            svg viewBox="0 0 1000 120" role="img" aria-label="Lifecycle events on a time line" {
                line x1="40" y1="60" x2="960" y2="60" class="axis" {}
                @for (n, event) in events.iter().enumerate() {
                    @let lifecycle = event.begun.lifecycle.as_deref().unwrap_or_default();
                    @let y = if n % 2 == 0 { 40 } else { 95 };
                    g class={"mark " (lifecycle) @if event.outcome() != "ok" { " failed" }} {
                        title { (lifecycle) " · " (event.outcome()) " · " (scimtrail_store::rfc3339(event.begun.received_at_ms)) }
                        circle cx=(format!("{:.1}", x(event.begun.received_at_ms))) cy="60" r="7" {}
                        text x=(format!("{:.1}", x(event.begun.received_at_ms))) y=(y) text-anchor="middle" {
                            (lifecycle) @if event.outcome() != "ok" { " ✗" }
                        }
                    }
                }
            }
            figcaption {
                (page::time(first.begun.received_at_ms)) " → " (page::time(last.begun.received_at_ms))
                " · ✗ marks an event that did not succeed"
            }
        }
    }
}
