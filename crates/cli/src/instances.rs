//! `scimtrail instances list|reap`: the instances serving a store, and marking a dead one's
//! exchanges left in flight `interrupted` by hand (survivors do it on their own once its
//! heartbeat is older than `[store] instance_dead_after_secs`).

use anyhow::bail;
use clap::{Args, Subcommand};
use scimtrail_proxy::audit::Caller;
use scimtrail_store::{rfc3339, InstanceRecord, InstanceState};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(crate) enum InstancesCommand {
    /// List the instances that ever served the store: live, stopped or silent.
    List(ListArgs),
    /// Mark the exchanges a dead instance left in flight `interrupted`. Refused while the
    /// instance's heartbeat is within the bound: a live instance's exchanges are never touched.
    Reap(ReapArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// sqlite://FILE or postgres://…
    #[arg(long)]
    store: Option<String>,
    /// Seconds without a heartbeat after which an instance is silent ([store]
    /// instance_dead_after_secs).
    #[arg(long, default_value_t = 30)]
    dead_after_secs: u64,
    /// Print JSON: {"items": […]}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReapArgs {
    /// The instance's name.
    name: String,
    /// sqlite://FILE or postgres://…
    #[arg(long)]
    store: Option<String>,
    /// Seconds without a heartbeat after which an instance is silent ([store]
    /// instance_dead_after_secs).
    #[arg(long, default_value_t = 30)]
    dead_after_secs: u64,
}

pub(crate) async fn run(command: InstancesCommand) -> anyhow::Result<()> {
    match command {
        InstancesCommand::List(args) => list(args).await,
        InstancesCommand::Reap(args) => reap(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let store = crate::exchanges::open(args.store).await?;
    let instances = store.instances().await?;
    store.close().await;
    let now = crate::exchanges::now_ms();
    let dead_after_ms = seconds_ms(args.dead_after_secs);
    let state = |instance: &InstanceRecord| instance.state(now, dead_after_ms).as_str();
    if args.json {
        let items: Vec<_> = instances
            .iter()
            .map(|i| {
                json!({
                    "name": i.name,
                    "state": state(i),
                    "host": i.host,
                    "pid": i.pid,
                    "version": i.version,
                    "started_at": rfc3339(i.started_at_ms),
                    "heartbeat_at": rfc3339(i.heartbeat_at_ms),
                    "stopped_at": i.stopped_at_ms.map(rfc3339),
                    "reaped_at": i.reaped_at_ms.map(rfc3339),
                    "reaped_by": i.reaped_by,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "items": items }))?);
        return Ok(());
    }
    println!(
        "{:<28}  {:<7}  {:<24}  {:>8}  {:<24}  REAPED",
        "NAME", "STATE", "HOST", "PID", "LAST HEARTBEAT"
    );
    for instance in &instances {
        println!(
            "{:<28}  {:<7}  {:<24}  {:>8}  {:<24}  {}",
            crate::exchanges::escape(&instance.name),
            state(instance),
            crate::exchanges::escape(&instance.host),
            instance.pid,
            rfc3339(instance.heartbeat_at_ms),
            match (&instance.reaped_at_ms, &instance.reaped_by) {
                (Some(at), Some(by)) => format!("{} by {}", rfc3339(*at), crate::exchanges::escape(by)),
                _ => String::new(),
            }
        );
    }
    if instances.is_empty() {
        println!("(no instance has served this store since instances were recorded)");
    }
    Ok(())
}

async fn reap(args: ReapArgs) -> anyhow::Result<()> {
    let store = crate::exchanges::open(args.store).await?;
    let now = crate::exchanges::now_ms();
    let dead_after_ms = seconds_ms(args.dead_after_secs);
    let Some(instance) = store.instance(&args.name).await? else {
        store.close().await;
        bail!(
            "no instance \"{}\" has a heartbeat in this store: `scimtrail instances list` shows those that do",
            args.name
        );
    };
    let caller = Caller::cli();
    if !store
        .claim_instance(&args.name, &caller.actor, now, dead_after_ms)
        .await?
    {
        store.close().await;
        let age = now.saturating_sub(instance.heartbeat_at_ms) / 1000;
        bail!(
            "instance \"{}\" is live: its last heartbeat was {age} s ago (host {}, pid {}); only an instance silent for {} s or stopped can be reaped",
            args.name,
            instance.host,
            instance.pid,
            args.dead_after_secs
        );
    }
    let reaped = scimtrail_proxy::instances::reap(&store, &args.name, &caller, &caller.actor).await?;
    store.close().await;
    println!(
        "instance \"{}\" ({}): {} exchange(s) left in flight marked interrupted",
        args.name,
        match instance.state(now, dead_after_ms) {
            InstanceState::Stopped => "stopped",
            _ => "silent",
        },
        reaped.interrupted
    );
    for exchange in &reaped.deprovisions {
        println!(
            "  deprovision cut short, may not have reached the application: {} {} {} (route {})",
            exchange.begun.id,
            exchange.begun.method,
            crate::exchanges::escape(&exchange.begun.path),
            exchange.begun.route.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn seconds_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}
