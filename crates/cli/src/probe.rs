//! `scimtrail probe`: a battery of requests against a test tenant of an application, what it
//! showed with the evidence, and the `[route.target]` block that pins it
//! (`scimtrail_rules::probe` decides; this module sends and prints).
//!
//! It writes: it creates users and a group named `scimtrail-probe-<run>…`, changes and
//! deletes them, and nothing else; whatever happens (a probe failing, Ctrl-C), it deletes
//! what it created before it ends, and says so.

mod battery;
mod client;

use anyhow::Context;
use clap::Args;
use scimtrail_rules::probe::{decide, Decision, Probe};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// The application's SCIM base URL (a test tenant: the probe writes to it).
    #[arg(long)]
    upstream: String,
    /// The environment variable holding the bearer token the application takes.
    #[arg(long)]
    token_env: Option<String>,
    /// Where to write the `[route.target]` block (default: standard output, after the report).
    #[arg(long)]
    out: Option<PathBuf>,
    /// PEM file of the CA that signs the application's certificate, beside the system roots.
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// The proxy's `[record] max_body_bytes`, which `max_bulk_payload_bytes` may not exceed.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Says that the probe may create, change and delete users and groups named
    /// `scimtrail-probe-*` in the application. Required.
    #[arg(long)]
    i_understand_this_writes: bool,
}

pub(crate) async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    if !args.i_understand_this_writes {
        anyhow::bail!(
            "probe writes to the application: it creates, changes and deletes users and a group named scimtrail-probe-*; \
             point it at a test tenant and give --i-understand-this-writes"
        );
    }
    let shown = shown_url(&args.upstream)?;
    let token = match &args.token_env {
        None => None,
        Some(name) => match std::env::var(name) {
            Ok(token) if !token.trim().is_empty() => Some(token.trim().to_owned()),
            Ok(_) => anyhow::bail!("--token-env {name}: the variable is empty"),
            Err(_) => anyhow::bail!("--token-env {name}: the variable is not set"),
        },
    };
    let http =
        scimtrail_proxy::upstream::client(args.ca_bundle.as_deref(), None).context("cannot build the HTTP client")?;
    let run = format!("{}{}", client::PREFIX, &uuid::Uuid::new_v4().simple().to_string()[..8]);
    println!("scimtrail probe: {shown} (resources named {run}-*)");
    let mut battery = battery::Battery::new(client::App::new(http, &args.upstream, token), run);
    // Ctrl-C stops the battery, not the clean-up.
    let ran = tokio::select! {
        ran = battery.run() => ran,
        _ = tokio::signal::ctrl_c() => Err("interrupted (Ctrl-C)".to_owned()),
    };
    let cleaned = battery.app.clean_up().await;

    let decision = decide(&battery.seen, args.max_body_bytes);
    print_report(&battery, &decision);
    let mut left = Vec::new();
    println!("\nclean-up:");
    for (created, outcome) in &cleaned {
        match outcome {
            Ok(status) => println!(
                "  deleted {}/{} ({}): {status}",
                created.endpoint, created.id, created.name
            ),
            Err(why) => {
                println!(
                    "  NOT deleted {}/{} ({}): {why}",
                    created.endpoint, created.id, created.name
                );
                left.push(format!("{}/{}", created.endpoint, created.id));
            }
        }
    }
    if cleaned.is_empty() {
        println!("  nothing left to delete");
    }
    if let Err(why) = ran {
        anyhow::bail!("the probe could not finish: {why}");
    }
    let block = decision.toml(&shown);
    match &args.out {
        Some(path) => {
            std::fs::write(path, &block).with_context(|| format!("cannot write {}", path.display()))?;
            println!("\n[route.target] written to {}", path.display());
        }
        None => println!("\n{block}"),
    }
    if !left.is_empty() {
        anyhow::bail!(
            "the probe could not delete what it created: {}; delete them by hand",
            left.join(", ")
        );
    }
    Ok(())
}

/// The base URL as it may be shown: without user information, and refused unless http(s).
fn shown_url(upstream: &str) -> anyhow::Result<String> {
    let uri: http::Uri = upstream
        .parse()
        .with_context(|| format!("--upstream {upstream:?} is not a URL"))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "http" && scheme != "https" {
        anyhow::bail!("--upstream must be an http:// or https:// URL");
    }
    let Some(authority) = uri.authority() else {
        anyhow::bail!("--upstream must name a host");
    };
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    if host.len() != authority.as_str().len() {
        anyhow::bail!("--upstream must not carry credentials: give the token with --token-env");
    }
    Ok(format!("{scheme}://{host}{}", uri.path().trim_end_matches('/')))
}

/// Each probe, with what it decided, what it only reports, and its evidence.
fn print_report(battery: &battery::Battery, decision: &Decision) {
    for probe in Probe::ALL {
        let keys: Vec<String> = decision
            .keys
            .iter()
            .filter(|k| k.probe == probe)
            .map(|k| format!("{} = {}  ({})", k.key, k.value, k.why))
            .collect();
        let notes: Vec<String> = decision
            .notes
            .iter()
            .filter(|n| n.probe == probe)
            .map(|n| format!("{}{}", if n.warning { "WARNING: " } else { "" }, n.text))
            .collect();
        let undecided: Vec<&str> = decision
            .undecided
            .iter()
            .filter(|(_, p)| *p == probe)
            .map(|(key, _)| *key)
            .collect();
        println!("\n{}", probe.name());
        for line in keys {
            println!("  pins   {}", crate::exchanges::escape(&line));
        }
        for line in notes {
            println!("  finds  {}", crate::exchanges::escape(&line));
        }
        if let Some(why) = battery.errors.get(&probe) {
            println!("  cannot tell: {}", crate::exchanges::escape(why));
        }
        if !undecided.is_empty() {
            println!("  left at the default: {}", undecided.join(", "));
        }
        for evidence in battery.evidence.get(&probe).into_iter().flatten() {
            println!(
                "    {} → {}  {}",
                crate::exchanges::escape(&evidence.request),
                evidence.status.map_or("-".to_owned(), |s| s.to_string()),
                crate::exchanges::escape(&evidence.excerpt)
            );
        }
    }
    let warnings = decision.notes.iter().filter(|n| n.warning).count();
    println!(
        "\n{} keys pinned, {} left at the default, {} report-only findings ({warnings} warnings)",
        decision.keys.len(),
        decision.undecided.len(),
        decision.notes.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_shown_without_credentials_or_refused() {
        for (url, shown) in [
            ("http://127.0.0.1:8180", Ok("http://127.0.0.1:8180")),
            (
                "https://app.example.com/scim/v2/",
                Ok("https://app.example.com/scim/v2"),
            ),
            (
                "https://user:pw@app.example.com/scim",
                Err("must not carry credentials"),
            ),
            ("ftp://app.example.com", Err("http:// or https://")),
            ("not a url", Err("is not a URL")),
            ("/scim", Err("http:// or https://")),
        ] {
            match (shown_url(url), shown) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{url}"),
                (Err(got), Err(want)) => assert!(format!("{got:#}").contains(want), "{url}: {got:#}"),
                (got, want) => panic!("{url}: {got:?}, wanted {want:?}"),
            }
        }
    }

    /// The emitted block, under a route of a configuration, gives that route the very target
    /// decided (the body limit filling in what the block leaves to it, as for any route).
    #[test]
    fn the_block_configures_a_route_with_the_target_decided() {
        use scimtrail_app::config::{Overrides, RawConfig};
        use scimtrail_rules::probe::{BulkAdvertised, FilterCheck, Observations, StringBoolean};
        let lenient = Observations {
            accepts_scim_json: Some(false),
            accepts_json: Some(true),
            patch: Some(false),
            put: Some(true),
            member_filter_path: Some(false),
            string_boolean: Some(StringBoolean::Applied),
            user_name_case_exact: Some(true),
            member_type_required: Some(true),
            empty_members_replace: Some(false),
            filters: vec![
                FilterCheck {
                    attribute: "userName".into(),
                    operator: "eq".into(),
                    correct: Some(true),
                },
                FilterCheck {
                    attribute: "displayName".into(),
                    operator: "eq".into(),
                    correct: Some(false),
                },
                FilterCheck {
                    attribute: "userName".into(),
                    operator: "co".into(),
                    correct: Some(false),
                },
            ],
            advertised_max_results: Some(200),
            page_cap: Some(50),
            sorting: Some(false),
            bulk_advertised: Some(BulkAdvertised {
                supported: true,
                max_operations: Some(10),
                max_payload_bytes: None,
            }),
            bulk_works: Some(true),
            ..Observations::default()
        };
        for (seen, bulk_payload) in [(Observations::default(), None), (lenient, None)] {
            let decision = decide(&seen, 1024 * 1024);
            let text = format!(
                "[[route]]\nname = \"app\"\nupstream = \"http://127.0.0.1:1\"\n{}",
                decision.toml("http://127.0.0.1:1")
            );
            let raw = RawConfig::from_toml(&text, "the probe's block").unwrap();
            let settings = scimtrail_app::Settings::resolve(raw, &Overrides::default()).unwrap();
            let mut want = decision.target.clone();
            want.max_bulk_payload_bytes = want.max_bulk_payload_bytes.or(bulk_payload).or(Some(1024 * 1024));
            assert_eq!(settings.proxy.routes[0].target, want, "{text}");
        }
    }
}
