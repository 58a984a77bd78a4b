//! `scimtrail reconcile`: what a route's application holds against what the IdP intended,
//! from the command line, with no running proxy needed (see `scimtrail_proxy::reconcile`).

use anyhow::Context;
use clap::Args;
use scimtrail_proxy::{Repairing, Replayer};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct ReconcileArgs {
    /// The route whose application to read (its upstream and credentials).
    #[arg(long)]
    route: String,
    /// Only this resource type: Users or Groups (default: both).
    #[arg(long)]
    resource: Option<String>,
    /// sqlite://FILE or postgres://… (default: the configuration's, else sqlite://scimtrail.db).
    #[arg(long)]
    store: Option<String>,
    /// The configuration file the proxy serves with: its routes and credentials.
    #[arg(long)]
    config: PathBuf,
    /// Print the run and every drift (and repair) as JSON.
    #[arg(long)]
    json: bool,
    /// Send the writes that restore the IdP's intent, through the route's current rules,
    /// each recorded (`reconcile_of`): a leaver with access is deactivated (never deleted), a
    /// joiner without it activated, a lost user or group created again, members added and
    /// removed, values set back. Unknown resources are only reported.
    #[arg(long)]
    repair: bool,
    /// With --repair: show the writes, send none.
    #[arg(long, requires = "repair")]
    dry_run: bool,
}

/// Drifts read from the store at a time, to print.
const PAGE: i64 = 1000;

pub(crate) async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let settings = crate::route_settings(&args.config, args.store.clone())?;
    let store = crate::exchanges::open(Some(settings.store_url.clone())).await?;
    let proxy = Replayer::new(settings.proxy.clone(), store.clone())
        .await
        .context("cannot prepare the reconciliation")?;
    let types: Vec<String> = args.resource.iter().cloned().collect();
    let repairing = match (args.repair, args.dry_run) {
        (false, _) => Repairing::No,
        (true, true) => Repairing::DryRun,
        (true, false) => Repairing::Send,
    };
    let report = proxy
        .reconcile(&args.route, &types, repairing, &scimtrail_proxy::audit::Caller::cli())
        .await;
    proxy.finish().await;
    let report = report?;
    let mut drifts = Vec::new();
    let mut offset = 0;
    loop {
        let Some((_, page)) = store.reconciliation(&report.run.id, offset, PAGE).await? else {
            break;
        };
        if page.is_empty() {
            break;
        }
        offset += i64::try_from(page.len())?;
        if args.json {
            drifts.extend(page);
        } else {
            for drift in page {
                println!(
                    "{:<19} {}/{}  {}  {}: {} → {}  (intent: {})",
                    drift.kind.as_str(),
                    drift.resource_type,
                    crate::exchanges::escape(&drift.resource_id),
                    crate::exchanges::escape(drift.name.as_deref().unwrap_or("-")),
                    crate::exchanges::escape(drift.part.as_deref().unwrap_or("-")),
                    crate::exchanges::escape(&drift.intended.to_string()),
                    crate::exchanges::escape(&drift.actual.to_string()),
                    drift.established_by.as_deref().unwrap_or("-"),
                );
            }
        }
    }
    let repairs = match repairing {
        Repairing::No => Vec::new(),
        Repairing::DryRun | Repairing::Send => repairs_of(&store, &report.run.id, !args.json).await?,
    };
    if args.json {
        let mut json = report.to_json();
        json["drifts"] = serde_json::json!(drifts);
        if repairing != Repairing::No {
            json["repairs"] = serde_json::json!(repairs);
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let counts: Vec<String> = report
            .run
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        println!(
            "reconciliation {} of {}: {}",
            report.run.id,
            report.run.route,
            if counts.is_empty() {
                "no drift".to_owned()
            } else {
                counts.join(", ")
            }
        );
        if let Some(repair) = &report.run.repair {
            println!("repair: {repair}");
        }
    }
    Ok(())
}

/// A run's repairs, printed a line each as read (`print`), or all returned.
async fn repairs_of(
    store: &scimtrail_store::Store,
    run: &str,
    print: bool,
) -> anyhow::Result<Vec<scimtrail_store::RepairRecord>> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page = store.reconciliation_repairs(run, offset, PAGE).await?;
        if page.is_empty() {
            return Ok(all);
        }
        offset += i64::try_from(page.len())?;
        if !print {
            all.extend(page);
            continue;
        }
        for record in page {
            let repair = &record.repair;
            let kinds: Vec<&str> = repair.kinds.iter().map(|k| k.as_str()).collect();
            println!(
                "repair {:<8} {} {}  {}  [{}]  {}{}",
                record.outcome,
                repair.method,
                crate::exchanges::escape(&repair.path),
                crate::exchanges::escape(repair.name.as_deref().unwrap_or("-")),
                kinds.join(", "),
                crate::exchanges::escape(&repair.body.to_string()),
                record
                    .reason
                    .as_deref()
                    .map(|reason| format!("  ({})", crate::exchanges::escape(reason)))
                    .unwrap_or_default(),
            );
        }
    }
}
