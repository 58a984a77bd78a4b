//! `/ui/overview?window=1h|24h|7d`: failed deprovisions first (a leaver who kept access is
//! the failure that matters most), then exchanges and failures per route and IdP and over
//! time (SVG drawn here), open findings by kind, the replay lease and the last replay runs,
//! the store's size and retention.

use super::page::{self, exchange_link, outcome_badge, Section};
use super::Viewer;
use crate::admin::api::store_failure;
use crate::clock::now_ms;
use crate::ui::Admin;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use scimtrail_store::{
    AuditEntry, AuditQuery, Bucket, Exchange, ExchangeQuery, Lease, Retention, RouteCounts, StoreError, StoreSize,
};
use serde_json::Value;
use std::sync::Arc;

const WINDOWS: [(&str, &str, i64); 3] = [
    ("1h", "last hour", 3_600_000),
    ("24h", "last day", 86_400_000),
    ("7d", "last week", 7 * 86_400_000),
];

/// Slices of the chart over time.
const BUCKETS: i64 = 24;

/// `GET /ui/overview`.
pub(super) async fn page(
    State(admin): State<Arc<Admin>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(query): RawQuery,
) -> Response {
    let asked = page::param(query.as_deref(), "window").unwrap_or_else(|| "1h".to_owned());
    // The last hour by default: a day counts every exchange of the day (about 3.5 s on a
    // store of a million, bench/paging).
    let (window, label, width) = WINDOWS
        .iter()
        .copied()
        .find(|(w, ..)| *w == asked)
        .unwrap_or(WINDOWS[0]);
    let now = now_ms();
    let since = now - width;
    let gathered: Result<_, StoreError> = async {
        let deprovisions = failed_deprovisions(&admin, since).await?;
        let routes = admin.store.counts_by_route(since).await?;
        let buckets = admin.store.counts_over_time(since, now, BUCKETS).await?;
        let kinds = admin.store.finding_kinds(since).await?;
        let lease = admin.store.lease_holder(Lease::Replay, now).await?;
        let runs = admin
            .store
            .audit_list(&AuditQuery {
                action: Some("replay".to_owned()),
                limit: 5,
                ..AuditQuery::default()
            })
            .await?;
        let size = admin.store.size().await?;
        Ok((deprovisions, routes, buckets, kinds, lease, runs, size))
    }
    .await;
    let (deprovisions, routes, buckets, kinds, lease, runs, size) = match gathered {
        Ok(gathered) => gathered,
        Err(error) => return store_failure(&error),
    };
    let content = html! {
        nav.quick aria-label="Window" {
            @for (w, l, _) in WINDOWS {
                a href={"/ui/overview?window=" (w)} aria-current=[(w == window).then_some("page")] { (l) }
            }
        }
        (failed_deprovisions_section(&deprovisions, window, label))
        section aria-label="Per route" {
            h2 { "Exchanges and failures per route (" (label) ")" }
            (route_bars(&routes, window))
        }
        section aria-label="Over time" {
            h2 { "Over time (" (label) ")" }
            (time_bars(&buckets, since, width / BUCKETS))
        }
        section aria-label="Findings" {
            h2 { "Findings by kind (" (label) ")" }
            @if kinds.is_empty() { p.muted { "None." } } @else {
                ul.kinds {
                    @for (kind, count) in &kinds {
                        li { a href={"/ui/?finding=" (kind) "&since=" (window)} { span.badge.warn { "⚠ " (kind) } } " " (count) }
                    }
                }
            }
        }
        (replay_section(lease.as_ref(), &runs))
        (store_section(&size, &admin.proxy.config.retention))
    };
    page::layout("Overview", Section::Overview, Some(&viewer), content)
}

/// The leavers the IdP sent that were not applied: first, because they are what matters most.
fn failed_deprovisions_section(deprovisions: &[Exchange], window: &str, label: &str) -> Markup {
    html! {
    section aria-label="Failed deprovisions" {
        h2 { "Failed deactivations and deprovisions (" (label) ")" }
        @if deprovisions.is_empty() { p.good-news { "✓ None: every leaver the IdP sent was applied." } } @else {
            p { a href={"/ui/?failed=true&lifecycle=deactivate&since=" (window)} { "Every failed deactivation" } " · "
                a href={"/ui/?failed=true&lifecycle=deprovision&since=" (window)} { "every failed deprovision" } }
            table.exchanges {
                thead { tr { th scope="col" { "Received" } th scope="col" { "Route" } th scope="col" { "Event" } th scope="col" { "Request" } th scope="col" { "Outcome" } th scope="col" { "" } } }
                tbody {
                    @for exchange in deprovisions {
                        tr.failed {
                            td { (page::time(exchange.begun.received_at_ms)) }
                            td { (exchange.begun.route.as_deref().unwrap_or("—")) }
                            td { (exchange.begun.lifecycle.as_deref().unwrap_or_default()) }
                            td.request { span.method { (exchange.begun.method) } " " (page::visible(&exchange.begun.path)) }
                            td { (outcome_badge(exchange.outcome())) }
                            td { (exchange_link(&exchange.begun.id)) }
                        }
                    }
                }
            }
        }
    }
    }
}

/// Who holds the replay lease, and the last runs (from the audit).
fn replay_section(lease: Option<&(String, i64)>, runs: &[AuditEntry]) -> Markup {
    html! {
    section aria-label="Replay" {
        h2 { "Replay" }
        p { "Lease: " @if let Some((holder, until)) = lease { "held by " strong { (holder) } " until " (page::time(*until)) } @else { "free" } }
        @if runs.is_empty() { p.muted { "No replay run yet." } } @else {
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } } }
                tbody {
                    @for run in runs {
                        tr {
                            td { (page::time(run.at_ms)) }
                            td { (run.actor) " " span.muted { (run.origin) } }
                            td.mono { (summary_of(&run.detail)) }
                        }
                    }
                }
            }
        }
    }
    }
}

/// The store's size, its oldest exchange and the retention policy.
fn store_section(size: &StoreSize, retention: &Retention) -> Markup {
    html! {
    section aria-label="Store" {
        h2 { "Store" }
        dl {
            dt { "Size" } dd { (megabytes(size.bytes)) " MB · " (size.rows) " exchanges" }
            dt { "Oldest" } dd { @if let Some(oldest) = size.oldest_ms { (page::time(oldest)) } @else { "—" } }
            dt { "Retention" } dd {
                @for (outcome, keep) in &retention.keep_ms {
                    span.retention { (outcome) ": " (keep.map(|ms| format!("{} d", ms / 86_400_000)).unwrap_or_else(|| "forever".to_owned())) } " "
                }
                @if let Some(max) = retention.max_store_bytes { " · at most " (megabytes(max)) " MB" }
            }
        }
    }
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

/// A replay run's counts, from its audit entry.
fn summary_of(detail: &Value) -> String {
    let summary = detail.get("summary").unwrap_or(detail);
    let count = |key: &str| summary.get(key).and_then(Value::as_u64).unwrap_or(0);
    let dry = if summary.get("dry_run").and_then(Value::as_bool) == Some(true) {
        "dry run: "
    } else {
        ""
    };
    format!(
        "{dry}{} selected, {} replayed ({} succeeded), {} skipped",
        count("selected"),
        count("replayed"),
        count("succeeded"),
        count("skipped")
    )
}

/// The newest failed deactivations and deprovisions since `since`.
async fn failed_deprovisions(admin: &Admin, since: i64) -> Result<Vec<Exchange>, StoreError> {
    let mut found = Vec::new();
    for lifecycle in ["deactivate", "deprovision"] {
        let page = admin
            .store
            .list(&ExchangeQuery {
                lifecycle: Some(lifecycle.to_owned()),
                failed: true,
                since_ms: Some(since),
                limit: 20,
                ..ExchangeQuery::default()
            })
            .await?;
        found.extend(page.items);
    }
    found.sort_unstable_by(|a, b| b.begun.id.cmp(&a.begun.id));
    Ok(found)
}

/// One bar per route: all its exchanges, the failed part drawn over it, both in numbers too.
fn route_bars(routes: &[RouteCounts], window: &str) -> Markup {
    let most = routes.iter().map(|r| r.total).max().unwrap_or(1).max(1) as f64;
    let height = 30 * routes.len().max(1);
    html! {
        @if routes.is_empty() { p.muted { "No exchange." } } @else {
            figure.chart {
                svg viewBox={"0 0 1000 " (height)} role="img" aria-label="Exchanges and failures per route" {
                    @for (n, route) in routes.iter().enumerate() {
                        @let y = n * 30;
                        @let all = 600.0 * route.total as f64 / most;
                        @let failed = 600.0 * route.failed as f64 / most;
                        g {
                            text x="0" y=(y + 19) class="label" { (if route.route.is_empty() { "(no route)" } else { &route.route }) " · " (route.idp) }
                            rect x="260" y=(y + 5) width=(format!("{all:.1}")) height="20" class="total" {}
                            rect x="260" y=(y + 5) width=(format!("{failed:.1}")) height="20" class="failed" {}
                            text x=(format!("{:.1}", 268.0 + all)) y=(y + 19) class="value" { (route.total) " (" (route.failed) " failed)" }
                        }
                    }
                }
                figcaption { "Grey: all exchanges; red: failed. " a href={"/ui/?failed=true&since=" (window)} { "See the failed ones" } }
            }
        }
    }
}

/// Exchanges and failures over time, one pair of bars per slice.
fn time_bars(buckets: &[Bucket], since: i64, slice_ms: i64) -> Markup {
    let most = buckets.iter().map(|b| b.total).max().unwrap_or(1).max(1) as f64;
    let slot = 1000.0 / buckets.len().max(1) as f64;
    html! {
        figure.chart {
            svg viewBox="0 0 1000 160" role="img" aria-label="Exchanges and failures over time" {
                @for bucket in buckets {
                    @let x = slot * bucket.index as f64;
                    @let all = 140.0 * bucket.total as f64 / most;
                    @let failed = 140.0 * bucket.failed as f64 / most;
                    g {
                        title { (scimtrail_store::rfc3339(since + bucket.index * slice_ms)) ": " (bucket.total) " exchanges, " (bucket.failed) " failed" }
                        rect x=(format!("{:.1}", x + 2.0)) y=(format!("{:.1}", 150.0 - all)) width=(format!("{:.1}", slot - 4.0)) height=(format!("{all:.1}")) class="total" {}
                        rect x=(format!("{:.1}", x + 2.0)) y=(format!("{:.1}", 150.0 - failed)) width=(format!("{:.1}", slot - 4.0)) height=(format!("{failed:.1}")) class="failed" {}
                    }
                }
                line x1="0" y1="150" x2="1000" y2="150" class="axis" {}
            }
            figcaption {
                (page::time(since)) " → now · most in one slice: " (most as u64)
                " · total " (buckets.iter().map(|b| b.total).sum::<u64>()) ", failed " (buckets.iter().map(|b| b.failed).sum::<u64>())
            }
        }
    }
}
