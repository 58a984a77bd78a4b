//! `scimtrail audit list`: operators' actions, newest first, from the store.

use clap::{Args, Subcommand};
use scimtrail_store::{rfc3339, AuditEntry, AuditQuery};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List operators' actions (replays, erasures, exports, prunes, reloads), newest first.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// sqlite://FILE or postgres://…
    #[arg(long)]
    store: Option<String>,
    /// Only this action: replay, erasure, export, prune, reload.
    #[arg(long)]
    action: Option<String>,
    /// Since a duration ago (15m, 2h, 7d) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Until a duration ago or an RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Older than this entry (its id): the next page.
    #[arg(long)]
    before: Option<String>,
    /// Most entries to show (at most 1000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print JSON: {"items": […]}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List(args) = command;
    let now = crate::exchanges::now_ms();
    let time = |text: &Option<String>| {
        text.as_deref()
            .map(|t| scimtrail_proxy::parse_time(t, now))
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    let query = AuditQuery {
        action: args.action.clone(),
        since_ms: time(&args.since)?,
        until_ms: time(&args.until)?,
        before: args.before.clone(),
        limit: args.limit,
    };
    let store = crate::exchanges::open(args.store).await?;
    let entries = store.audit_list(&query).await?;
    store.close().await;
    if args.json {
        let items: Vec<Value> = entries.iter().map(AuditEntry::to_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"items": items}))?
        );
        return Ok(());
    }
    println!(
        "{:<24}  {:<8}  {:<30}  {:<28}  DETAIL",
        "TIME", "ACTION", "ACTOR", "ORIGIN"
    );
    for entry in &entries {
        println!(
            "{:<24}  {:<8}  {:<30}  {:<28}  {}",
            rfc3339(entry.at_ms),
            entry.action,
            crate::exchanges::escape(&entry.actor),
            crate::exchanges::escape(&entry.origin),
            crate::exchanges::escape(&entry.detail.to_string()),
        );
    }
    if entries.is_empty() {
        println!("(no entries)");
    }
    Ok(())
}
