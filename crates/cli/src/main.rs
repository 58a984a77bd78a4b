//! `scimtrail`: the command line. Thin by design: parse arguments, set up logging, call the
//! library crates, and turn an error into a one-line reason and a non-zero exit code.

mod audit;
mod exchanges;
mod health;
mod instances;
mod probe;
mod reconcile;
mod replay;
mod rules;
mod store;
mod verify;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use scimtrail_app::config::{RawConfig, DEFAULT_STORE_URL};
use scimtrail_app::Environment;
use scimtrail_app::{Overrides, Settings};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "scimtrail", version, about = "A recording SCIM reverse proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy: record every exchange, serve the admin API.
    Serve(ServeArgs),
    /// Inspect recorded exchanges (reads the store directly; no running proxy needed).
    #[command(subcommand)]
    Exchanges(exchanges::ExchangesCommand),
    /// Send failed exchanges again through the current rules, safely: superseded ones and
    /// creates of resources that exist are skipped, each replay is recorded and linked.
    Replay(replay::ReplayArgs),
    /// Read what a route's application holds and compare it with what the IdP intended (every
    /// write recorded through the route): drifts by kind, a leaver with access first.
    Reconcile(reconcile::ReconcileArgs),
    /// Learn how an application behaves (a test tenant: it writes) into a `[route.target]`
    /// block, a comment per key naming the probe that decided it, with the evidence.
    Probe(probe::ProbeArgs),
    /// The pair test: play the bundled scenario of a route's IdP through the route against
    /// its application (a test tenant: it writes), resources named scimtrail-probe-*, and
    /// report each step; its exchanges are recorded as synthetic.
    Verify(verify::VerifyArgs),
    /// Create the store if needed and apply its migrations.
    Migrate {
        /// sqlite://FILE or postgres://… (default: $SCIMTRAIL_STORE_URL, else sqlite://scimtrail.db).
        #[arg(long)]
        store: Option<String>,
    },
    /// The store's upkeep: `store prune [--dry-run]` applies the retention policy now;
    /// `store backup --to FILE` copies a live SQLite store with its journal.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Operators' actions: replay runs, erasures, exports, prunes, reloads.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check a configuration file and print the resolved settings, secrets redacted.
    CheckConfig {
        /// The configuration file (default: $SCIMTRAIL_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Play the bundled IdP scenarios against a strict application, directly and through
    /// scimtrail, print what each way left behind, and keep serving until Ctrl-C.
    Demo {
        /// Where the demo records (default sqlite://scimtrail-demo.db).
        #[arg(long, default_value = "sqlite://scimtrail-demo.db")]
        store: String,
        /// Proxy listen address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Admin listen address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        admin_listen: String,
    },
    /// List the IdP profiles and their rules: the bundled ones, and the operator's (from
    /// --rules-dir, $SCIMTRAIL_RULES_DIR or the configuration's [rules] dir), each with where
    /// it came from and its rules_version.
    Idps(rules::IdpsArgs),
    /// Rule files.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Run the reference SCIM 2.0 application: strict, in memory, at the root of its listener.
    Refapp {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8180")]
        listen: String,
    },
    /// The instances serving a store, and reaping a dead one's exchanges left in flight.
    #[command(subcommand)]
    Instances(instances::InstancesCommand),
    /// Ask a running instance's admin listener whether it is alive (or ready): exit 0 on 200.
    /// The container image's HEALTHCHECK.
    Health(health::HealthArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The configuration file (TOML; default: $SCIMTRAIL_CONFIG). The environment overrides
    /// it (SCIMTRAIL_LISTEN, SCIMTRAIL_ADMIN_LISTEN, SCIMTRAIL_STORE_URL, SCIMTRAIL_INSTANCE,
    /// SCIMTRAIL_LOG_FORMAT, SCIMTRAIL_LOG_LEVEL, SCIMTRAIL_RULES_DIR), and flags override both.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Proxy listen address (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    /// The application's SCIM base URL; with no configuration file, enough on its own.
    #[arg(long)]
    upstream: Option<String>,
    /// The IdP profile of the route --upstream makes (default generic).
    #[arg(long)]
    idp: Option<String>,
    /// sqlite://FILE or postgres://… (default sqlite://scimtrail.db).
    #[arg(long)]
    store: Option<String>,
    /// Admin listen address (default 127.0.0.1:9180).
    #[arg(long)]
    admin_listen: Option<String>,
}

/// mimalloc rather than glibc's malloc: the request path allocates per exchange from two
/// runtime threads and the recorder's, where glibc's arenas cost several percent of the CPU
/// (`bench/run`, interleaved A/B).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scimtrail: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scimtrail: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logging to stderr at `level`, unless the environment names one (`SCIMTRAIL_LOG_LEVEL`,
/// or its older name `SCIMTRAIL_LOG`): for the commands whose level is not configured.
pub(crate) fn init_logging(format: &str, level: &str) {
    let environment = Environment::of_process();
    let level = environment.get("SCIMTRAIL_LOG_LEVEL").unwrap_or(level);
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Exchanges(command) => exchanges::run(command).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Reconcile(args) => reconcile::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Probe(args) => {
            init_logging("human", "warn");
            probe::run(args).await
        }
        Command::Migrate { store } => {
            let url = store_url(store);
            scimtrail_app::connect(&url).await?;
            println!("{} is migrated", scimtrail_app::config::without_password(&url));
            Ok(())
        }
        Command::Store(command) => store::run(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::CheckConfig { config } => {
            let environment = Environment::of_process();
            let config_flag = config.is_some();
            let Some(config) = config_path(config, &environment) else {
                anyhow::bail!("give --config FILE (or set SCIMTRAIL_CONFIG)");
            };
            let raw = RawConfig::from_file(&config)?;
            let sources = environment.provenance(&Overrides::default(), config_flag, &raw);
            let settings = Settings::resolve(raw, &environment.under(Overrides::default()))?;
            print!("{}", settings.describe());
            println!("where each came from (flags > environment > file > defaults):");
            for (name, source) in sources {
                println!("  {name:<24} {source}");
            }
            Ok(())
        }
        Command::Demo {
            store,
            listen,
            admin_listen,
        } => {
            init_logging("human", "warn");
            let options = scimtrail_demo::DemoOptions {
                store_url: store,
                listen,
                admin_listen,
            };
            scimtrail_demo::run(options, shutdown_signal()).await?;
            Ok(())
        }
        Command::Idps(args) => rules::idps(args),
        Command::Rules(command) => rules::run(command),
        Command::Refapp { listen } => {
            init_logging("human", "info");
            refapp(&listen).await
        }
        Command::Health(args) => health::run(args).await,
        Command::Instances(command) => instances::run(command).await,
    }
}

/// `--store`, else `$SCIMTRAIL_STORE_URL` (or its alias `$SCIMTRAIL_DATABASE_URL`), else the
/// default file.
pub(crate) fn store_url(flag: Option<String>) -> String {
    flag.or_else(|| Environment::of_process().get("SCIMTRAIL_STORE_URL").map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_STORE_URL.to_owned())
}

/// The settings of the configuration file the proxy serves with, the store overridden by
/// `--store` when given, and logging at warn unless configured: for the commands that act
/// through its routes without serving (`reconcile`, `verify`).
pub(crate) fn route_settings(config: &std::path::Path, store: Option<String>) -> anyhow::Result<Settings> {
    let raw = RawConfig::from_file(config)?;
    let flags = Overrides {
        store,
        ..Overrides::default()
    };
    let settings = Settings::resolve(raw, &Environment::of_process().under(flags))?;
    init_logging(&settings.log_format, "warn");
    Ok(settings)
}

/// `--config`, else `$SCIMTRAIL_CONFIG`.
pub(crate) fn config_path(flag: Option<PathBuf>, environment: &Environment) -> Option<PathBuf> {
    flag.or_else(|| environment.get("SCIMTRAIL_CONFIG").map(PathBuf::from))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let environment = Environment::of_process();
    let raw = match config_path(args.config, &environment) {
        Some(path) => RawConfig::from_file(&path)?,
        None => RawConfig::default(),
    };
    let flags = Overrides {
        listen: args.listen,
        upstream: args.upstream,
        idp: args.idp,
        store: args.store,
        admin_listen: args.admin_listen,
        ..Overrides::default()
    };
    let settings = Settings::resolve(raw, &environment.under(flags))?;
    init_logging(&settings.log_format, &settings.log_level);
    let (running, _store) = scimtrail_app::start(&settings).await?;
    println!(
        "scimtrail: proxy on http{}://{}",
        if settings.proxy.tls.is_some() { "s" } else { "" },
        running.proxy_addr
    );
    println!("scimtrail: admin on http://{}", running.admin_addr);
    for route in &settings.proxy.routes {
        println!(
            "scimtrail: route {} ({}, rules_version {}) {} -> {}",
            route.name,
            route.idp,
            settings
                .proxy
                .profiles
                .get(&route.idp)
                .map_or("-", |profile| profile.version()),
            if route.path_prefix.is_empty() {
                "/"
            } else {
                &route.path_prefix
            },
            route.upstream
        );
    }
    for warning in &settings.warnings {
        tracing::warn!(%warning, "The configuration allows this.");
    }
    // SIGHUP re-reads the secrets given as files (a token rotated without a restart) and the
    // operator's rule files (all or nothing: a file that fails keeps the rules in force).
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut hangups = hangup_signals();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = hangups.recv() => {
                for line in scimtrail_app::reload(&running, &settings).await {
                    match line.starts_with("rules: ") {
                        true => tracing::info!(%line, "SIGHUP: rules read again."),
                        false => tracing::info!(%line, "SIGHUP: secrets read again."),
                    }
                }
            }
        }
    }
    // Unready first (a load balancer stops sending), then the drain.
    running.stop().await;
    tracing::info!("Stopped.");
    Ok(())
}

/// SIGHUP, one message each (none where there is no such signal).
fn hangup_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut signal) => {
            tokio::spawn(async move {
                while signal.recv().await.is_some() {
                    let _ = sender.try_send(());
                }
            });
        }
        Err(error) => tracing::warn!(%error, "SIGHUP cannot be handled: secrets are read at start only."),
    }
    #[cfg(not(unix))]
    drop(sender);
    receiver
}

async fn refapp(listen: &str) -> anyhow::Result<()> {
    let running = scimtrail_refapp::RefApp::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "scimtrail refapp: strict SCIM 2.0 reference application at {}",
        running.base_url()
    );
    println!("  try: curl -s {}/ServiceProviderConfig", running.base_url());
    println!("  stop with Ctrl-C");
    shutdown_signal().await;
    tracing::info!("Shutting down.");
    running.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
