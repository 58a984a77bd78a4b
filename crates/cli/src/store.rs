//! `scimtrail store …`: the store's own upkeep.

use crate::store_url;
use clap::Subcommand;
use scimtrail_app::config::RawConfig;
use scimtrail_app::config::RawStore;
use scimtrail_app::{Overrides, Settings};
use scimtrail_proxy::audit::{self, Caller};
use scimtrail_proxy::fingerprint::KeySource;
use scimtrail_store::{Erasure, PruneReport, Retention};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Apply the retention policy now ([retention] of the configuration, else the defaults).
    Prune {
        /// Count what would go; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// The configuration file, for [retention], the store and this instance's name.
        #[arg(long)]
        config: Option<PathBuf>,
        /// sqlite://FILE or postgres://… (overrides the configuration's).
        #[arg(long)]
        store: Option<String>,
    },
    /// Erase one person's records: every exchange about them keeps its row, outcome and
    /// timing and loses its bodies, headers, query and userName; their snapshots and names
    /// go. Audited. A SQLite store served by a running scimtrail is erased through its admin
    /// API (POST /api/v1/erasures), which holds the journal.
    Erase {
        /// A userName, externalId or displayName (any casing).
        #[arg(long, conflicts_with = "resource", required_unless_present = "resource")]
        user: Option<String>,
        /// A resource id.
        #[arg(long)]
        resource: Option<String>,
        /// Only on this route.
        #[arg(long)]
        route: Option<String>,
        /// Count what would be erased; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The configuration file, for the store, its fingerprint key and this instance's name.
        #[arg(long)]
        config: Option<PathBuf>,
        /// sqlite://FILE or postgres://… (overrides the configuration's).
        #[arg(long)]
        store: Option<String>,
    },
    /// Copy a SQLite store, live, with what its journal holds, into a new file: opening the
    /// copy gives every exchange recorded before the backup began.
    Backup {
        /// The new file (its journal goes beside it, FILE.journal/).
        #[arg(long)]
        to: PathBuf,
        /// sqlite://FILE (default: $SCIMTRAIL_STORE_URL, else sqlite://scimtrail.db).
        #[arg(long)]
        store: Option<String>,
    },
}

pub(crate) async fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Prune { dry_run, config, store } => prune(dry_run, config, store).await,
        StoreCommand::Backup { to, store } => backup(&to, store).await,
        StoreCommand::Erase {
            user,
            resource,
            route,
            dry_run,
            config,
            store,
        } => {
            let erasure = Erasure { user, resource, route };
            erase(&erasure, dry_run, config, store).await
        }
    }
}

/// What an operator's action on a store needs: from the configuration file when one is
/// given, else from `--store` and the defaults.
pub(crate) struct Operator {
    /// The store URL.
    pub(crate) url: String,
    /// Where the fingerprint key comes from (the audit names people by fingerprint).
    pub(crate) key: KeySource,
    /// `<instance>/<action>`: the store's lease holder and the audit's instance.
    pub(crate) instance: String,
    /// The retention policy.
    pub(crate) retention: Retention,
}

pub(crate) fn operator(config: Option<PathBuf>, store: Option<String>, action: &str) -> anyhow::Result<Operator> {
    Ok(match config {
        Some(path) => {
            let raw = RawConfig::from_file(&path)?;
            let flags = Overrides {
                store,
                ..Overrides::default()
            };
            let settings = Settings::resolve(raw, &scimtrail_app::Environment::of_process().under(flags))?;
            Operator {
                instance: format!("{}/{action}", settings.proxy.instance),
                url: settings.store_url,
                key: settings.proxy.fingerprint_key,
                retention: settings.proxy.retention,
            }
        }
        None => {
            let url = store_url(store);
            Operator {
                key: scimtrail_app::config::fingerprint_key(&RawStore::default(), &url)?,
                url,
                instance: format!("scimtrail {action}"),
                retention: Retention::default(),
            }
        }
    })
}

async fn erase(erasure: &Erasure, dry_run: bool, config: Option<PathBuf>, store: Option<String>) -> anyhow::Result<()> {
    scimtrail_proxy::erasure::check(erasure).map_err(anyhow::Error::msg)?;
    let Operator { url, key, instance, .. } = operator(config, store, "erase")?;
    let store = crate::exchanges::open(Some(url.clone())).await?.with_journal()?;
    if scimtrail_store::private::sqlite_file(&url).is_some() && !store.journaled() {
        anyhow::bail!(
            "a running scimtrail holds this store's journal, which holds recent records too: erase through its admin API (POST /api/v1/erasures), which clears the journal as well"
        );
    }
    let key = key.load().map_err(anyhow::Error::msg)?;
    key.agree_with(&store).await.map_err(anyhow::Error::msg)?;
    let report = scimtrail_proxy::erasure::erase(&store, &key, &instance, &Caller::cli(), erasure, dry_run).await?;
    store.close().await;
    let verb = if dry_run { "would be erased" } else { "erased" };
    for resource in &report.resources {
        println!(
            "resource     {}/{}/{}",
            resource.route, resource.resource_type, resource.resource_id
        );
    }
    println!("exchanges    {:>9} {verb}", report.exchanges);
    println!("snapshots    {:>9} {verb}", report.snapshots);
    println!(
        "summary rows {:>9} {verb} (theirs deleted, others' values that name them forgotten)",
        report.summary_rows
    );
    for note in &report.notes {
        println!("note: {note}");
    }
    Ok(())
}

async fn backup(to: &std::path::Path, store: Option<String>) -> anyhow::Result<()> {
    let url = store_url(store);
    // Connected without migrating: a backup copies the store as it is.
    let store = scimtrail_store::Store::connect(&url).await?;
    let backup = store.backup_to(to).await?;
    println!(
        "{} backed up into {} ({} bytes, {} journal segments beside it)",
        scimtrail_app::config::without_password(&url),
        to.display(),
        backup.database_bytes,
        backup.segments
    );
    Ok(())
}

async fn prune(dry_run: bool, config: Option<PathBuf>, store: Option<String>) -> anyhow::Result<()> {
    let Operator {
        url,
        retention,
        instance: holder,
        ..
    } = operator(config, store, "prune")?;
    let store = scimtrail_app::connect(&url).await?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let before = store.size().await?;
    let warn = |size: &scimtrail_store::StoreSize| {
        eprintln!(
            "warning: the store takes {} bytes, over max_store_bytes, with no success left to delete: the oldest failures go",
            size.bytes
        );
    };
    let report = match store.prune_once(&holder, &retention, now, dry_run, warn).await? {
        Ok(report) => report,
        Err(why) => anyhow::bail!("not pruned: {why}"),
    };
    let after = store.size().await?;
    let instance = holder.trim_end_matches("/prune");
    audit::record(
        &store,
        &Caller::cli(),
        instance,
        "prune",
        audit::prune(&report, dry_run),
    )
    .await;
    print!("{}", describe(&report, dry_run));
    if !dry_run {
        println!(
            "store: {} exchanges, {} bytes (was {} exchanges, {} bytes)",
            after.rows, after.bytes, before.rows, before.bytes
        );
    }
    store.close().await;
    Ok(())
}

fn describe(report: &PruneReport, dry_run: bool) -> String {
    let verb = if dry_run { "would go" } else { "deleted" };
    let mut out = String::new();
    for (outcome, count) in &report.exchanges {
        out.push_str(&format!("{outcome:<12} {count:>9} {verb}\n"));
    }
    if report.children > 0 {
        out.push_str(&format!(
            "{:<12} {:>9} {verb} with the exchanges they were made for\n",
            "children", report.children
        ));
    }
    out.push_str(&format!(
        "{:<12} {:>9} {verb} (no exchange writes their resource any longer)\n",
        "snapshots", report.snapshots
    ));
    out.push_str(&format!(
        "{:<12} {:>9} {verb} (removals no older failure needs any longer)\n",
        "summary rows", report.summary_rows
    ));
    out.push_str(&format!(
        "{:<12} {:>9} {verb} (reconciliation runs older than the audit log keeps)\n",
        "reconciles", report.reconciliations
    ));
    out.push_str(&format!("{} exchanges {verb} in all\n", report.total()));
    out
}
