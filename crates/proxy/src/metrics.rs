//! Prometheus metrics, rendered in the text exposition format. Small and dependency-free:
//! counters and histograms keyed by label values, behind one lock each.

use indexmap::IndexMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// A wait in a pacing queue: up to the 54 s an IdP's patience allows.
const WAIT_BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len()];
        }
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += value;
    }
}

/// A series' labels, as kept: names and values.
type Labels = Vec<(&'static str, String)>;

/// A series' labels as the caller has them, borrowed: a series seen before is found with
/// these, without allocating — the exchange path counts every exchange.
#[derive(Hash)]
struct Borrowed<'a>(&'a [(&'static str, &'a str)]);

impl indexmap::Equivalent<Labels> for Borrowed<'_> {
    fn equivalent(&self, key: &Labels) -> bool {
        self.0.len() == key.len()
            && self
                .0
                .iter()
                .zip(key)
                .all(|((name, value), (key_name, key_value))| name == key_name && value == key_value)
    }
}

/// A metric's series by their labels. `Borrowed` hashes as `Labels` does: a slice hashes its
/// length and then each element, and a `String` as its `str`.
type Series<T> = IndexMap<Labels, T>;

/// The series `labels` names, made when first seen, given to `update`.
fn update<T: Default>(series: &Mutex<Series<T>>, labels: &[(&'static str, &str)], update: impl FnOnce(&mut T)) {
    let mut series = lock(series);
    if let Some(found) = series.get_mut(&Borrowed(labels)) {
        return update(found);
    }
    let owned = labels
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    update(series.entry(owned).or_default());
}

/// Counts one more in the series `labels` names.
fn count(series: &Mutex<Series<u64>>, labels: &[(&'static str, &str)], by: u64) {
    update(series, labels, |value| *value += by);
}

/// Every metric the proxy exports.
#[derive(Debug, Default)]
pub struct Metrics {
    exchanges: Mutex<Series<u64>>,
    findings: Mutex<Series<u64>>,
    lifecycles: Mutex<Series<u64>>,
    failed_deprovisions: Mutex<Series<u64>>,
    alerts: Mutex<Series<u64>>,
    connections_closed: Mutex<Series<u64>>,
    records_isolated: Mutex<Series<u64>>,
    pruned: Mutex<Series<u64>>,
    /// The latest reconciliation's drifts, by route and kind.
    drift: Mutex<Series<u64>>,
    pruned_failures_for_size: AtomicU64,
    /// Exchanges of silent instances this instance marked interrupted.
    reaped: AtomicU64,
    /// The store's size as the last prune found it, and when.
    store_size: Mutex<Option<(scimtrail_store::StoreSize, i64)>>,
    exchange_latency: Mutex<Series<Histogram>>,
    /// Requests in each paced route's queue now.
    pacing_queue: Mutex<Series<u64>>,
    /// How long requests waited in a pacing queue, sent or not.
    pacing_waits: Mutex<Series<Histogram>>,
    /// Requests that waited in a pacing queue and were then sent.
    pacing_paced: Mutex<Series<u64>>,
    /// Requests a pacing queue did not send, by why.
    pacing_refused: Mutex<Series<u64>>,
    /// Application 429s that paused their route.
    pacing_pauses: Mutex<Series<u64>>,
    upstream_latency: Mutex<Series<Histogram>>,
    batch_size: Mutex<Histogram>,
    commit_latency: Mutex<Histogram>,
    queue_depth: AtomicU64,
    dropped: AtomicU64,
    record_errors: AtomicU64,
    /// The proxy listener's slots, once it serves.
    capacity: OnceLock<crate::capacity::Capacity>,
    /// The store, for what it reports of itself.
    store: OnceLock<scimtrail_store::Store>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Metrics are counters: a panic elsewhere leaves them usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Counts one exchange and its latency.
    pub fn exchange(&self, route: &str, idp: &str, method: &str, outcome: &str, elapsed: Duration) {
        // Any other method is one label value, so a client cannot grow the series without bound.
        let method = if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
            method
        } else {
            "other"
        };
        let labels = [("route", route), ("idp", idp), ("method", method), ("outcome", outcome)];
        count(&self.exchanges, &labels, 1);
        update(&self.exchange_latency, &[("route", route)], |histogram| {
            histogram.observe(&LATENCY_BUCKETS, elapsed.as_secs_f64());
        });
    }

    /// Counts one finding.
    pub fn finding(&self, route: &str, idp: &str, kind: &'static str) {
        count(&self.findings, &[("route", route), ("idp", idp), ("kind", kind)], 1);
    }

    /// Counts one lifecycle event (`provision`, `update`, `deactivate`, `reactivate`, `deprovision`,
    /// `membership`, `lookup`, …) by outcome; a deactivation or deprovision that did not
    /// take effect is also counted on its own series, the one to alert on.
    pub fn lifecycle(&self, route: &str, idp: &str, lifecycle: &str, outcome: &str) {
        // Lifecycles are the classifier's closed set; anything else is one label value.
        const KNOWN: [&str; 7] = [
            "provision",
            "update",
            "deactivate",
            "reactivate",
            "deprovision",
            "membership",
            "lookup",
        ];
        let lifecycle = if KNOWN.contains(&lifecycle) { lifecycle } else { "other" };
        let labels = [
            ("route", route),
            ("idp", idp),
            ("lifecycle", lifecycle),
            ("outcome", outcome),
        ];
        count(&self.lifecycles, &labels, 1);
        if matches!(lifecycle, "deactivate" | "deprovision") && outcome != "ok" {
            count(&self.failed_deprovisions, &labels[..3], 1);
        }
    }

    /// Counts one alert by what became of it: `delivered`, `refused`, `failed`, `dropped`.
    pub fn alert(&self, route: &str, kind: &'static str, result: &'static str) {
        count(&self.alerts, &[("route", route), ("kind", kind), ("result", result)], 1);
    }

    /// Records how long the application took.
    pub fn upstream(&self, route: &str, elapsed: Duration) {
        update(&self.upstream_latency, &[("route", route)], |histogram| {
            histogram.observe(&LATENCY_BUCKETS, elapsed.as_secs_f64());
        });
    }

    /// Sets how many requests wait in a paced route's queue.
    pub(crate) fn pacing_queue_depth(&self, route: &str, depth: usize) {
        update(&self.pacing_queue, &[("route", route)], |value| *value = depth as u64);
    }

    /// Counts a request that waited `wait` in a paced route's queue and was then sent.
    pub(crate) fn pacing_paced(&self, route: &str, wait: Duration) {
        count(&self.pacing_paced, &[("route", route)], 1);
        self.pacing_wait(route, wait);
    }

    /// Counts a request a paced route did not send (`queue_full`, `queue_timeout`,
    /// `client_gone`), after its wait in the queue if it waited.
    pub(crate) fn pacing_refused(&self, route: &str, reason: &'static str, waited: Option<Duration>) {
        count(&self.pacing_refused, &[("route", route), ("reason", reason)], 1);
        if let Some(wait) = waited {
            self.pacing_wait(route, wait);
        }
    }

    fn pacing_wait(&self, route: &str, wait: Duration) {
        update(&self.pacing_waits, &[("route", route)], |histogram| {
            histogram.observe(&WAIT_BUCKETS, wait.as_secs_f64());
        });
    }

    /// Counts an application's 429 that paused its route.
    pub(crate) fn pacing_pause(&self, route: &str) {
        count(&self.pacing_pauses, &[("route", route)], 1);
    }

    /// Records one committed batch.
    pub fn batch(&self, size: usize, elapsed: Duration) {
        lock(&self.batch_size).observe(&BATCH_BUCKETS, size as f64);
        lock(&self.commit_latency).observe(&LATENCY_BUCKETS, elapsed.as_secs_f64());
    }

    /// Sets the writer queue depth.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth as u64, Ordering::Relaxed);
    }

    /// Counts a record dropped (async mode, queue full).
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed write to the store.
    pub fn record_error(&self) {
        self.record_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a record the store refused on its own, whose batch committed without it:
    /// `degraded` (kept in a lesser form) or `refused` (its exchange answered 503).
    pub fn record_isolated(&self, result: &'static str) {
        count(&self.records_isolated, &[("result", result)], 1);
    }

    /// Counts what a prune deleted, by outcome (children under `child`).
    pub(crate) fn pruned(&self, report: &scimtrail_store::PruneReport) {
        for (outcome, pruned) in &report.exchanges {
            count(&self.pruned, &[("outcome", outcome)], *pruned);
        }
        if report.children > 0 {
            count(&self.pruned, &[("outcome", "child")], report.children);
        }
    }

    /// Counts a prune that deleted failures to stay within `max_store_bytes`.
    /// A route's latest reconciliation found these drifts, by kind.
    pub(crate) fn set_drift(&self, route: &str, counts: &std::collections::BTreeMap<String, u64>) {
        for (kind, n) in counts {
            update(&self.drift, &[("route", route), ("kind", kind)], |value| *value = *n);
        }
    }

    pub(crate) fn pruned_failures_for_size(&self) {
        self.pruned_failures_for_size.fetch_add(1, Ordering::Relaxed);
    }

    /// `count` exchanges of a silent instance marked interrupted by this one.
    pub(crate) fn reaped(&self, count: u64) {
        self.reaped.fetch_add(count, Ordering::Relaxed);
    }

    /// The store's size, measured at `at_ms`.
    pub(crate) fn set_store_size(&self, size: scimtrail_store::StoreSize, at_ms: i64) {
        *lock(&self.store_size) = Some((size, at_ms));
    }

    /// How many records were dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts a connection the proxy listener closed on its own: `first_byte_timeout`,
    /// `idle`, `per_client`.
    pub(crate) fn connection_closed(&self, reason: &'static str) {
        count(&self.connections_closed, &[("reason", reason)], 1);
    }

    /// Exports what the store reports of itself from now on.
    pub(crate) fn watch_store(&self, store: scimtrail_store::Store) {
        let _ = self.store.set(store);
    }

    /// Exports the proxy listener's use of its slots from now on.
    pub(crate) fn track(&self, capacity: crate::capacity::Capacity) {
        let _ = self.capacity.set(capacity);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_traffic(&mut out);
        self.render_pacing(&mut out);
        self.render_latencies(&mut out);
        let mut values = self.recorder_values();
        self.store_values(&mut values);
        self.capacity_values(&mut values);
        for (name, kind, help, value) in values {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }

    /// What the exchanges did and what came of them: outcomes, findings, lifecycle events,
    /// alerts, connections closed, records isolated and pruned, the drift reconciliation found.
    fn render_traffic(&self, out: &mut String) {
        counters(
            out,
            "scimtrail_exchanges_total",
            "Exchanges by route, IdP, method and outcome.",
            &lock(&self.exchanges),
        );
        counters(out, "scimtrail_findings_total", "Findings (operations that did not fully take effect, wrong lookups, non-SCIM errors) by route, IdP and kind.", &lock(&self.findings));
        counters(out, "scimtrail_lifecycle_total", "Lifecycle events (provision, update, deactivate, reactivate, deprovision, membership, lookup) by route, IdP and outcome.", &lock(&self.lifecycles));
        counters(
            out,
            "scimtrail_deprovisions_failed_total",
            "Deactivations and deprovisions that did not take effect (any outcome but ok), by route and IdP.",
            &lock(&self.failed_deprovisions),
        );
        counters(
            out,
            "scimtrail_alerts_total",
            "Webhook alerts by route, kind and result (delivered, refused, failed after retries, dropped).",
            &lock(&self.alerts),
        );
        counters(
            out,
            "scimtrail_connections_closed_total",
            "Connections the proxy listener closed on its own, by reason: no first bytes in time (first_byte_timeout), no request for idle_timeout (idle), over max_connections_per_client (per_client).",
            &lock(&self.connections_closed),
        );
        counters(
            out,
            "scimtrail_records_isolated_total",
            "Records the store refused on their own while the rest of their batch committed, by result: kept in a lesser form (degraded) or refused, their exchange answered 503 (refused).",
            &lock(&self.records_isolated),
        );
        counters(
            out,
            "scimtrail_store_pruned_total",
            "Exchanges the retention policy deleted, by outcome (those made for them: child).",
            &lock(&self.pruned),
        );
        labelled(
            out,
            "scimtrail_drift",
            "gauge",
            "What the route's latest reconciliation found the application to hold otherwise than the IdP intended, by route and kind (active_mismatch: a user the IdP deactivated or deleted who is active in the application).",
            &lock(&self.drift),
        );
    }

    /// The paced routes' queues, waits, refusals and pauses.
    fn render_pacing(&self, out: &mut String) {
        labelled(
            out,
            "scimtrail_pacing_queue_depth",
            "gauge",
            "Requests waiting in a paced route's queue ([route.target] max_requests_per_second, max_in_flight; per instance), by route.",
            &lock(&self.pacing_queue),
        );
        histograms(
            out,
            "scimtrail_pacing_wait_seconds",
            "How long requests waited in a paced route's queue, whether they were then sent or refused, by route.",
            &WAIT_BUCKETS,
            &lock(&self.pacing_waits),
        );
        counters(
            out,
            "scimtrail_pacing_paced_total",
            "Requests to an application that waited in their route's pacing queue and were then sent, by route.",
            &lock(&self.pacing_paced),
        );
        counters(
            out,
            "scimtrail_pacing_refused_total",
            "Requests a paced route did not send, answered 429 (queue_full, queue_timeout: as their scimtrail-error says) or left by their client (client_gone), by route and reason.",
            &lock(&self.pacing_refused),
        );
        counters(
            out,
            "scimtrail_pacing_pauses_total",
            "Application 429s that paused their route for their Retry-After, by route.",
            &lock(&self.pacing_pauses),
        );
    }

    /// How long exchanges, the application and the store's commits took, and the batches'
    /// sizes.
    fn render_latencies(&self, out: &mut String) {
        histograms(
            out,
            "scimtrail_exchange_duration_seconds",
            "Time from request received to response ready.",
            &LATENCY_BUCKETS,
            &lock(&self.exchange_latency),
        );
        histograms(
            out,
            "scimtrail_upstream_duration_seconds",
            "Time the application took to answer.",
            &LATENCY_BUCKETS,
            &lock(&self.upstream_latency),
        );
        let single = |h: &Histogram| {
            Series::from([(
                Vec::new(),
                Histogram {
                    buckets: h.buckets.clone(),
                    count: h.count,
                    sum: h.sum,
                },
            )])
        };
        histograms(
            out,
            "scimtrail_record_batch_size",
            "Writes committed per transaction.",
            &BATCH_BUCKETS,
            &single(&lock(&self.batch_size)),
        );
        histograms(
            out,
            "scimtrail_record_commit_duration_seconds",
            "Time to commit one batch.",
            &LATENCY_BUCKETS,
            &single(&lock(&self.commit_latency)),
        );
    }

    /// The recorder's single values: its queue, what it dropped, the batches refused, prunes
    /// and reaped exchanges.
    fn recorder_values(&self) -> Vec<Single> {
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let mut values = vec![
            (
                "scimtrail_record_queue_depth",
                "gauge",
                "Writes waiting for the writer.",
                load(&self.queue_depth),
            ),
            (
                "scimtrail_record_dropped_total",
                "counter",
                "Records dropped because the queue was full (async mode).",
                load(&self.dropped),
            ),
            (
                "scimtrail_record_errors_total",
                "counter",
                "Batches the store refused.",
                load(&self.record_errors),
            ),
        ];
        values.push((
            "scimtrail_store_pruned_failures_for_size_total",
            "counter",
            "Prunes that deleted failures because the store was over [retention] max_store_bytes with no success left.",
            load(&self.pruned_failures_for_size),
        ));
        values.push((
            "scimtrail_reaped_exchanges_total",
            "counter",
            "Exchanges left in flight by a silent instance (no heartbeat within [store] instance_dead_after_secs) that this instance marked interrupted.",
            load(&self.reaped),
        ));
        values
    }

    /// The store's size as the last prune measured it, its spool and what it moved aside.
    fn store_values(&self, values: &mut Vec<Single>) {
        if let Some((size, at_ms)) = *lock(&self.store_size) {
            let age_ms = size.oldest_ms.map_or(0, |oldest| at_ms.saturating_sub(oldest));
            values.extend([
                (
                    "scimtrail_store_bytes",
                    "gauge",
                    "Bytes the store's records take, as the last prune measured.",
                    size.bytes,
                ),
                (
                    "scimtrail_store_exchanges",
                    "gauge",
                    "Exchanges in the store, as the last prune counted.",
                    size.rows,
                ),
                (
                    "scimtrail_store_oldest_exchange_age_seconds",
                    "gauge",
                    "Age of the oldest exchange in the store, as the last prune found it.",
                    u64::try_from(age_ms / 1000).unwrap_or(0),
                ),
            ]);
        }
        if let Some(store) = self.store.get() {
            let spooled = store.spooling();
            values.extend([
                (
                    "scimtrail_store_spooling",
                    "gauge",
                    "1 while records are spooled locally because PostgreSQL cannot take them.",
                    u64::from(spooled.is_some()),
                ),
                (
                    "scimtrail_store_spooled_records",
                    "gauge",
                    "Records in the spool, not yet in PostgreSQL.",
                    spooled.unwrap_or(0),
                ),
            ]);
            values.push((
                "scimtrail_store_records_moved_aside",
                "gauge",
                "Journaled records SQLite refused in every form, moved aside into the journal's .rejected file.",
                store.moved_aside().map_or(0, |(_, count)| count),
            ));
        }
    }

    /// The proxy listener's use of its connection and exchange slots.
    fn capacity_values(&self, values: &mut Vec<Single>) {
        if let Some(capacity) = self.capacity.get() {
            let crate::capacity::Usage {
                connections,
                max_connections,
                exchanges,
                max_exchanges,
                waited,
            } = capacity.usage();
            values.extend([
                (
                    "scimtrail_connections_open",
                    "gauge",
                    "Connections open on the proxy listener.",
                    connections as u64,
                ),
                (
                    "scimtrail_connections_max",
                    "gauge",
                    "[listen] max_connections.",
                    max_connections as u64,
                ),
                (
                    "scimtrail_exchanges_in_flight",
                    "gauge",
                    "Exchanges in flight.",
                    exchanges as u64,
                ),
                (
                    "scimtrail_exchanges_max",
                    "gauge",
                    "[listen] max_exchanges.",
                    max_exchanges as u64,
                ),
                (
                    "scimtrail_exchanges_waited_total",
                    "counter",
                    "Requests that waited for an exchange slot (max_exchanges reached).",
                    waited,
                ),
            ]);
        }
    }
}

/// One value of its own: name, type, help and value.
type Single = (&'static str, &'static str, &'static str, u64);

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric's series in the order of their labels, so that the exposition is stable.
fn sorted<T>(series: &Series<T>) -> Vec<(&Labels, &T)> {
    let mut sorted: Vec<_> = series.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
}

fn counters(out: &mut String, name: &str, help: &str, series: &Series<u64>) {
    labelled(out, name, "counter", help, series);
}

/// Counters or gauges (`kind`) with labels.
fn labelled(out: &mut String, name: &str, kind: &str, help: &str, series: &Series<u64>) {
    header(out, name, kind, help);
    for (labels, value) in sorted(series) {
        let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
    }
}

fn histograms(out: &mut String, name: &str, help: &str, bounds: &[f64], series: &Series<Histogram>) {
    header(out, name, "histogram", help);
    for (labels, histogram) in sorted(series) {
        for (index, bound) in bounds.iter().enumerate() {
            let count = histogram.buckets.get(index).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{} {count}",
                render_labels(labels, Some(&bound.to_string()))
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{} {}",
            render_labels(labels, Some("+Inf")),
            histogram.count
        );
        let _ = writeln!(out, "{name}_sum{} {}", render_labels(labels, None), histogram.sum);
        let _ = writeln!(out, "{name}_count{} {}", render_labels(labels, None), histogram.count);
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.exchange("okta", "okta", "POST", "ok", Duration::from_millis(3));
        metrics.exchange("okta", "okta", "POST", "ok", Duration::from_millis(30));
        metrics.batch(4, Duration::from_millis(2));
        let text = metrics.render();
        assert!(
            text.contains("scimtrail_exchanges_total{route=\"okta\",idp=\"okta\",method=\"POST\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("scimtrail_exchange_duration_seconds_bucket{route=\"okta\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("scimtrail_exchange_duration_seconds_count{route=\"okta\"} 2"));
        assert!(
            text.contains("scimtrail_record_batch_size_bucket{le=\"4\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE scimtrail_record_dropped_total counter"));
    }
}
