//! `scimtrail demo`: the bundled IdP scenarios, each played twice against the strict
//! reference application — directly, and through scimtrail — and what each way left behind.
//!
//! # Brief overview
//! - [`scenario`]: the scenario files (`config/scenarios/*.json`), compiled in.
//! - [`play`]: an HTTP client, playing a scenario, and checking the application's state
//!   against the scenario's intended one.
//! - [`compare`] plays one scenario both ways; [`run`] is the demo: two reference
//!   applications, the proxy with one route per scenario, a SQLite store, a printed report.
//!
//! # Invariants
//! - Loopback only: every listener is on 127.0.0.1, port 0 unless told otherwise.
//! - The state is read from the application directly, never through the proxy.

pub mod outage;
pub mod play;
pub mod scenario;

use play::{check, play, Check, Http, StepResult};
use scenario::Scenario;
use scimtrail_app::config::{Overrides, RawConfig};
use scimtrail_app::Settings;
use scimtrail_refapp::RefApp;
use serde_json::Value;
use std::future::Future;

/// One way of playing a scenario: what each request got, and which expectations hold.
#[derive(Debug, Clone)]
pub struct Played {
    /// Per step.
    pub steps: Vec<StepResult>,
    /// Per expectation.
    pub checks: Vec<Check>,
}

impl Played {
    /// Requests answered with an error.
    pub fn refused(&self) -> Vec<&StepResult> {
        self.steps.iter().filter(|s| s.answer.status >= 400).collect()
    }

    /// Expectations that hold.
    pub fn holding(&self) -> usize {
        self.checks.iter().filter(|c| c.mismatch.is_none()).count()
    }

    /// Whether the application reached the intended state.
    pub fn reached(&self) -> bool {
        self.checks.iter().all(|c| c.mismatch.is_none())
    }
}

/// A scenario played directly and through scimtrail.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The scenario.
    pub scenario: Scenario,
    /// Played directly against `direct_app`.
    pub direct: Played,
    /// Played through the proxy, whose application is `proxied_app`.
    pub proxied: Played,
}

/// Plays `scenario` against `direct_app` and through `proxy_base` (which forwards to
/// `proxied_app`), then checks both applications.
pub async fn compare(
    http: &Http,
    scenario: &Scenario,
    direct_app: &str,
    proxy_base: &str,
    proxied_app: &str,
) -> Result<Comparison, String> {
    let (direct_steps, direct_saved) = play(http, direct_app, scenario).await?;
    let direct_checks = check(http, direct_app, scenario, &direct_saved).await?;
    let (proxied_steps, proxied_saved) = play(http, proxy_base, scenario).await?;
    let proxied_checks = check(http, proxied_app, scenario, &proxied_saved).await?;
    Ok(Comparison {
        scenario: scenario.clone(),
        direct: Played {
            steps: direct_steps,
            checks: direct_checks,
        },
        proxied: Played {
            steps: proxied_steps,
            checks: proxied_checks,
        },
    })
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A listener, the store or the proxy did not start.
    #[error("{0}")]
    Start(String),
    /// A scenario could not be played.
    #[error("{0}")]
    Play(String),
}

/// Where the demo listens and records.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The store (`sqlite://scimtrail-demo.db`).
    pub store_url: String,
    /// The proxy's address (`127.0.0.1:0`: any free port).
    pub listen: String,
    /// The admin listener's address.
    pub admin_listen: String,
}

/// The route configuration: one route per scenario, `/<scenario>` → the application.
pub fn demo_config(scenarios: &[Scenario], options: &DemoOptions, app: &str, outage_app: Option<&str>) -> String {
    // The admin token, when one is given: the UI then asks for it (its browser test logs in).
    let token = std::env::var_os(ADMIN_TOKEN_ENV)
        .map(|_| format!("token_env = \"{ADMIN_TOKEN_ENV}\"\n"))
        .unwrap_or_default();
    let mut config = format!(
        "[listen]\naddr = \"{}\"\n[admin]\naddr = \"{}\"\n{token}[store]\nurl = \"{}\"\n",
        options.listen, options.admin_listen, options.store_url
    );
    for scenario in scenarios {
        config.push_str(&format!(
            "[[route]]\nname = \"{0}\"\npath_prefix = \"/{0}\"\nidp = \"{1}\"\nupstream = \"{app}\"\n",
            scenario.name, scenario.idp
        ));
    }
    if let Some(outage_app) = outage_app {
        config.push_str(&format!(
            "[[route]]\nname = \"{0}\"\npath_prefix = \"/{0}\"\nidp = \"{1}\"\nupstream = \"{outage_app}\"\n",
            outage::ROUTE,
            outage::IDP
        ));
    }
    config
}

/// The environment variable that, when set, holds the admin token the demo's UI and API ask for.
pub const ADMIN_TOKEN_ENV: &str = "SCIMTRAIL_DEMO_ADMIN_TOKEN";

/// Runs the demo and serves until `stop` completes.
pub async fn run(options: DemoOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let scenarios = scenario::bundled().map_err(DemoError::Start)?;
    let start = |e: &dyn std::fmt::Display| DemoError::Start(e.to_string());
    let direct = RefApp::bind("127.0.0.1:0").await.map_err(|e| start(&e))?;
    let behind = RefApp::bind("127.0.0.1:0").await.map_err(|e| start(&e))?;
    let mut outage_app = outage::OutageApp::start().await.map_err(|e| start(&e))?;
    let config = demo_config(&scenarios, &options, &behind.base_url(), Some(&outage_app.base_url()));
    // Written out for `scimtrail replay`, which sends through the same routes.
    std::fs::write(CONFIG_FILE, &config).map_err(|e| DemoError::Start(format!("cannot write {CONFIG_FILE}: {e}")))?;
    let raw = RawConfig::from_toml(&config, "the demo's configuration").map_err(|e| start(&e))?;
    let settings = Settings::resolve(raw, &Overrides::default()).map_err(|e| start(&e))?;
    let (running, store) = scimtrail_app::start(&settings).await.map_err(|e| start(&e))?;
    let proxy = format!("http://{}", running.proxy_addr);
    let http = Http::default();

    println!("scimtrail demo: each IdP's lifecycle played against a strict SCIM application (scimtrail refapp),");
    println!(
        "once directly and once through scimtrail, which records every exchange in {}.\n",
        options.store_url
    );
    let mut totals = (0, 0, 0);
    for scenario in &scenarios {
        let base = format!("{proxy}/{}", scenario.name);
        let comparison = compare(&http, scenario, &direct.base_url(), &base, &behind.base_url())
            .await
            .map_err(DemoError::Play)?;
        let changed = rules_applied(&store, &comparison.proxied.steps).await;
        print_comparison(&comparison, &changed);
        totals.0 += 1;
        totals.1 += usize::from(comparison.direct.reached());
        totals.2 += usize::from(comparison.proxied.reached());
    }
    println!(
        "Intended state reached: {} of {} scenarios directly, {} of {} through scimtrail.\n",
        totals.1, totals.0, totals.2, totals.0
    );
    let outage = outage::play(&http, &format!("{proxy}/{}", outage::ROUTE), &mut outage_app)
        .await
        .map_err(DemoError::Play)?;
    print_outage(&outage);
    let store_flag = format!("--store {}", options.store_url);
    println!(
        "Proxy:   {proxy}/<scenario>/Users … (routes {})",
        route_list(&scenarios)
    );
    println!(
        "UI:      http://{}/ui/   (every exchange above: filters, rule diffs, timelines, replay)",
        running.admin_addr
    );
    println!(
        "Admin:   http://{}/metrics   http://{}/api/v1/exchanges",
        running.admin_addr, running.admin_addr
    );
    println!("Inspect: cargo run --release -- exchanges list {store_flag}");
    println!("         cargo run --release -- exchanges list --failed {store_flag}");
    println!("         cargo run --release -- exchanges show <ID> {store_flag}");
    println!(
        "Replay:  cargo run --release -- replay --failed --route {} --config {CONFIG_FILE}",
        outage::ROUTE
    );
    println!("         (add --dry-run first to see what it would send)");
    println!("\nServing until Ctrl-C: point an IdP (or curl) at a route above to see its dialect normalised.");
    stop.await;
    running.shutdown().await;
    direct.shutdown().await;
    behind.shutdown().await;
    outage_app.shutdown().await;
    Ok(())
}

/// The demo's configuration, as `scimtrail replay --config` reads it.
pub const CONFIG_FILE: &str = "scimtrail-demo.toml";

fn print_outage(outage: &outage::Outage) {
    println!(
        "Outage [{} profile]: the application goes away in the middle of a lifecycle",
        outage::IDP
    );
    for (what, status) in &outage.missed {
        let how = if *status == 502 {
            "recorded unreachable"
        } else {
            "recorded failed: its load balancer's maintenance page, not SCIM"
        };
        println!("  {status}  {what}  ({how})");
    }
    if outage.wrong.is_empty() {
        println!("  the application is back, and has the intended state\n");
    } else {
        println!("  the application is back without them:");
        for wrong in &outage.wrong {
            println!("    ✗ {wrong}");
        }
        println!("  repair it with the replay command below, then run it again: it changes nothing.\n");
    }
}

fn route_list(scenarios: &[Scenario]) -> String {
    scenarios
        .iter()
        .map(|s| format!("/{}", s.name))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rule ids applied to each proxied step, read back from the store.
async fn rules_applied(store: &scimtrail_store::Store, steps: &[StepResult]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for step in steps {
        let Some(id) = &step.answer.exchange_id else { continue };
        let Ok(exchange) = store.get(id).await else { continue };
        let mut rules: Vec<String> = exchange
            .changes()
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c.get("applied") == Some(&Value::Bool(true)))
            .filter_map(|c| c.get("rule").and_then(Value::as_str).map(str::to_owned))
            .collect();
        rules.dedup();
        if !rules.is_empty() {
            out.push((step.name.clone(), rules));
        }
    }
    out
}

fn print_comparison(comparison: &Comparison, changed: &[(String, Vec<String>)]) {
    let scenario = &comparison.scenario;
    println!(
        "{} [{} profile, {} requests]",
        scenario.title,
        scenario.idp,
        scenario.steps.len()
    );
    for (label, played) in [
        ("directly     ", &comparison.direct),
        ("via scimtrail", &comparison.proxied),
    ] {
        println!(
            "  {label}  {:>2} requests refused   intended state {}/{}{}",
            played.refused().len(),
            played.holding(),
            played.checks.len(),
            if played.reached() { "  ✓" } else { "  ✗" }
        );
        for step in played.refused().iter().take(3) {
            let detail = step
                .answer
                .body
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or_default();
            println!(
                "      refused: {} → {} {}",
                step.name,
                step.answer.status,
                shorten(detail, 90)
            );
        }
        for check in played.checks.iter().filter(|c| c.mismatch.is_some()).take(4) {
            println!(
                "      not applied: {} — {}",
                check.what,
                check.mismatch.as_deref().unwrap_or_default()
            );
        }
    }
    if !changed.is_empty() {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for rule in changed.iter().flat_map(|(_, rules)| rules) {
            match counts.iter_mut().find(|(r, _)| r == rule) {
                Some((_, n)) => *n += 1,
                None => counts.push((rule.clone(), 1)),
            }
        }
        let summary: Vec<String> = counts.iter().map(|(r, n)| format!("{r}×{n}")).collect();
        println!(
            "  scimtrail changed {} of {} requests: {}",
            changed.len(),
            comparison.proxied.steps.len(),
            summary.join(" ")
        );
    }
    println!();
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}
