//! `scimtrail replay`: sends failed exchanges again through the configured routes, from the
//! command line, with no running proxy needed (see `scimtrail_proxy::replay`).

use crate::exchanges::Filters;
use anyhow::Context;
use clap::Args;
use scimtrail_app::config::RawConfig;
use scimtrail_app::{Overrides, Settings};
use scimtrail_proxy::{ReplayReport, Replayer, Selection};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The exchanges to replay, by id (or give --failed and filters).
    ids: Vec<String>,
    #[command(flatten)]
    filters: Filters,
    /// Show what would be sent, and its differences, without sending anything.
    #[arg(long)]
    dry_run: bool,
    /// sqlite://FILE or postgres://… (default: the configuration's, else sqlite://scimtrail.db).
    #[arg(long)]
    store: Option<String>,
    /// The configuration file the proxy serves with: its routes, rules and credentials.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With no configuration file: the application's SCIM base URL, as `serve --upstream`
    /// was given (its IdP profile is --idp's, else generic).
    #[arg(long)]
    upstream: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let selection = match (args.ids.is_empty(), args.filters.any()) {
        (false, false) => Selection::Ids(args.ids.clone()),
        (true, true) => Selection::Filter(Box::new(args.filters.query(1000)?)),
        (false, true) => anyhow::bail!("give exchange ids or filters (--failed, --since, …), not both"),
        (true, false) => anyhow::bail!("give exchange ids, or --failed with any filters"),
    };
    let raw = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    if args.config.is_none() && args.upstream.is_none() {
        anyhow::bail!("give --config FILE (the one the proxy serves with), or --upstream URL");
    }
    let flags = Overrides {
        upstream: args.upstream.clone(),
        idp: args.filters.idp.clone(),
        store: args.store.clone(),
        ..Overrides::default()
    };
    let settings = Settings::resolve(raw, &scimtrail_app::Environment::of_process().under(flags))?;
    crate::init_logging(&settings.log_format, "warn");
    let store = crate::exchanges::open(Some(settings.store_url.clone())).await?;
    let replayer = Replayer::new(settings.proxy.clone(), store)
        .await
        .context("cannot prepare the replay")?;
    let report = replayer
        .replay(selection, args.dry_run, &scimtrail_proxy::audit::Caller::cli())
        .await;
    replayer.finish().await;
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print_report(&report);
    }
    if !report.all_succeeded() {
        let summary = report.summary();
        anyhow::bail!(
            "{} of the selected exchanges failed to replay or could not be attempted",
            summary["failed"].as_u64().unwrap_or(0) + summary["not_attempted"].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}

fn print_report(report: &ReplayReport) {
    for item in &report.items {
        let what = match item.action {
            "replayed" => format!(
                "→ {} {} as {}",
                item.status.map_or("-".to_owned(), |s| s.to_string()),
                item.outcome.as_deref().unwrap_or("-"),
                item.replay.as_deref().unwrap_or("-")
            ),
            _ => item.reason.clone().unwrap_or_default(),
        };
        println!(
            "{:<13} {}  {}  {}",
            item.action,
            item.exchange,
            crate::exchanges::escape(&item.request),
            crate::exchanges::escape(&what)
        );
        for note in &item.notes {
            println!("{:<13} note: {}", "", crate::exchanges::escape(note));
        }
        if let Some(preview) = &item.preview {
            for line in preview_lines(preview) {
                println!("{:<13} {}", "", crate::exchanges::escape(&line));
            }
        }
    }
    let summary = report.summary();
    let mut line = if report.dry_run {
        format!(
            "dry run: {} selected, {} would be replayed, {} skipped",
            summary["selected"], summary["would_replay"], summary["skipped"]
        )
    } else {
        format!(
            "{} selected: {} replayed ({} succeeded, {} failed), {} skipped",
            summary["selected"], summary["replayed"], summary["succeeded"], summary["failed"], summary["skipped"]
        )
    };
    if let Some(kinds) = summary["skipped_because"].as_object().filter(|k| !k.is_empty()) {
        let parts: Vec<String> = kinds.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
        line.push_str(&format!(" ({})", parts.join(", ")));
    }
    if summary["not_attempted"].as_u64().unwrap_or(0) > 0 {
        line.push_str(&format!(", {} not attempted", summary["not_attempted"]));
    }
    println!("{line}");
}

/// A dry run's preview for a terminal: what would be sent, one request a line; the rules
/// that changed it; its differences from what was sent before and from the resource now.
fn preview_lines(preview: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(refused) = preview.get("refused") {
        lines.push(format!("the current rules refuse it: {refused}"));
        return lines;
    }
    for request in preview["send"].as_array().into_iter().flatten() {
        let body = match &request["body"] {
            Value::Null => String::new(),
            body => format!(" {}", shorten(&body.to_string(), 160)),
        };
        lines.push(format!(
            "send {} {}{body}",
            request["method"].as_str().unwrap_or("?"),
            request["url"].as_str().unwrap_or("?")
        ));
    }
    if let Some(rules) = preview["rules"].as_array().filter(|r| !r.is_empty()) {
        let names: Vec<&str> = rules.iter().filter_map(Value::as_str).collect();
        lines.push(format!("rules applied: {}", names.join(", ")));
    }
    let differences = |title: &str, diff: &Value, lines: &mut Vec<String>| match diff {
        Value::Array(changes) if changes.is_empty() => lines.push(format!("{title}: none")),
        Value::Array(changes) => {
            lines.push(format!("{title}:"));
            for change in changes {
                lines.push(format!(
                    "  {}: {} → {}",
                    change["pointer"].as_str().unwrap_or(""),
                    shorten(&change["before"].to_string(), 70),
                    shorten(&change["after"].to_string(), 70)
                ));
            }
        }
        Value::Object(error) => lines.push(format!(
            "{title}: {}",
            error.get("error").and_then(Value::as_str).unwrap_or("?")
        )),
        _ => {}
    };
    differences(
        "differs from what was sent before",
        &preview["diff_from_sent"],
        &mut lines,
    );
    if let Some(current) = preview.get("diff_from_current") {
        differences(
            "changes to the resource as the application has it now",
            current,
            &mut lines,
        );
    }
    lines
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}
