//! `scimtrail exchanges list|show`: read the store directly and print for a terminal or as
//! JSON. Captured content is escaped: control characters never reach the terminal raw.

use clap::{Args, Subcommand};
use scimtrail_store::{rfc3339, Exchange, ExchangeQuery, Store};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub(crate) enum ExchangesCommand {
    /// List exchanges, newest first.
    List(ListArgs),
    /// Export exchanges, newest first, for other tools: HAR 1.2 (browsers' network panels,
    /// HAR viewers) or JSONL (one exchange per line, as the API shows it). Audited.
    Export(ExportArgs),
    /// Show one exchange: the request as received, as forwarded, and the response.
    Show {
        /// The exchange id.
        id: String,
        /// sqlite://FILE or postgres://…
        #[arg(long)]
        store: Option<String>,
        /// Print the exchange as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// sqlite://FILE or postgres://…
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    filters: Filters,
    /// Most exchanges to show.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// Print JSON: {"items": […], "next_cursor": …}.
    #[arg(long)]
    json: bool,
    /// Only synthetic traffic (what `scimtrail verify` sent), which is left out otherwise.
    #[arg(long)]
    synthetic: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// har or jsonl.
    #[arg(long, default_value = "har")]
    format: String,
    #[command(flatten)]
    filters: Filters,
    /// At most this many exchanges (default: every one the filters select).
    #[arg(long)]
    limit: Option<u64>,
    /// Write here (created readable by its owner only), not to standard output.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// The configuration file, for the store and its fingerprint key.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// sqlite://FILE or postgres://… (overrides the configuration's).
    #[arg(long)]
    store: Option<String>,
}

/// An export's pieces into a file or standard output.
struct WriteSink(Box<dyn std::io::Write + Send>);

impl scimtrail_proxy::export::Sink for WriteSink {
    async fn write(&mut self, bytes: bytes::Bytes) -> Result<(), String> {
        self.0.write_all(&bytes).map_err(|error| error.to_string())
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let format = scimtrail_proxy::export::Format::parse(&args.format).map_err(anyhow::Error::msg)?;
    let query = args.filters.query(0)?;
    let crate::store::Operator { url, key, instance, .. } = crate::store::operator(args.config, args.store, "export")?;
    let store = open(Some(url)).await?;
    let key = key.load().map_err(anyhow::Error::msg)?;
    key.agree_with(&store).await.map_err(anyhow::Error::msg)?;
    let out: Box<dyn std::io::Write + Send> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(scimtrail_store::private::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut sink = WriteSink(out);
    let caller = scimtrail_proxy::audit::Caller::cli();
    let count =
        scimtrail_proxy::export::export(&store, &key, &instance, &caller, query, args.limit, format, &mut sink).await?;
    sink.0.flush()?;
    store.close().await;
    if let Some(path) = &args.out {
        eprintln!("{count} exchanges exported into {}", path.display());
    }
    Ok(())
}

/// The filters `exchanges list` and `replay` share.
#[derive(Debug, Args)]
pub(crate) struct Filters {
    /// Only exchanges that did not succeed.
    #[arg(long)]
    pub(crate) failed: bool,
    /// Only this outcome (ok, failed, unreachable, partial, rejected, interrupted, in_flight).
    #[arg(long)]
    outcome: Option<String>,
    /// Only this IdP profile.
    #[arg(long)]
    pub(crate) idp: Option<String>,
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
    /// Only this resource type (Users, Groups, Bulk, …).
    #[arg(long)]
    resource: Option<String>,
    /// A person or group: userName, externalId, displayName (containing this text) or
    /// resource id; requests by id are found through the store's names index.
    #[arg(long)]
    user: Option<String>,
    /// Only this HTTP method.
    #[arg(long)]
    method: Option<String>,
    /// Only this lifecycle event (provision, update, membership, deactivate, reactivate,
    /// deprovision, lookup).
    #[arg(long)]
    lifecycle: Option<String>,
    /// Only exchanges with findings.
    #[arg(long)]
    findings: bool,
    /// Only exchanges with a finding of this kind (deprovision_not_applied, …).
    #[arg(long)]
    finding: Option<String>,
    /// Since a duration ago (15m, 2h, 7d) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Until a duration ago or an RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
}

impl Filters {
    /// Whether any filter is given.
    pub(crate) fn any(&self) -> bool {
        self.failed
            || self.findings
            || [
                &self.outcome,
                &self.idp,
                &self.route,
                &self.resource,
                &self.user,
                &self.method,
                &self.lifecycle,
                &self.finding,
                &self.since,
                &self.until,
            ]
            .iter()
            .any(|f| f.is_some())
    }

    pub(crate) fn query(&self, limit: u64) -> anyhow::Result<ExchangeQuery> {
        let now = now_ms();
        let time = |text: &Option<String>| {
            text.as_deref()
                .map(|t| scimtrail_proxy::parse_time(t, now))
                .transpose()
                .map_err(anyhow::Error::msg)
        };
        Ok(ExchangeQuery {
            failed: self.failed,
            outcome: self.outcome.clone(),
            idp: self.idp.clone(),
            route: self.route.clone(),
            resource: self.resource.clone(),
            user: self.user.clone(),
            method: self.method.as_deref().map(str::to_ascii_uppercase),
            lifecycle: self.lifecycle.clone(),
            has_findings: self.findings,
            finding: self.finding.clone(),
            since_ms: time(&self.since)?,
            until_ms: time(&self.until)?,
            limit,
            ..ExchangeQuery::default()
        })
    }
}

pub(crate) async fn run(command: ExchangesCommand) -> anyhow::Result<()> {
    match command {
        ExchangesCommand::List(args) => list(args).await,
        ExchangesCommand::Export(args) => export(args).await,
        ExchangesCommand::Show { id, store, json } => show(&id, store, json).await,
    }
}

/// Opens an existing store: reading must not create an empty SQLite file where a path was
/// mistyped.
pub(crate) async fn open(store: Option<String>) -> anyhow::Result<Store> {
    let url = crate::store_url(store);
    if let Some(path) = url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p)) {
        if !std::path::Path::new(path).exists() {
            anyhow::bail!("no store at {path} (give --store sqlite://FILE or postgres://…)");
        }
    }
    Ok(scimtrail_app::connect(&url).await?)
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let mut query = args.filters.query(args.limit)?;
    query.synthetic = args.synthetic;
    let store = open(args.store).await?;
    let page = store.list(&query).await?;
    if args.json {
        let items: Vec<Value> = page.items.iter().map(Exchange::to_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"items": items, "next_cursor": page.next_cursor}))?
        );
        return Ok(());
    }
    let header = [
        "TIME",
        "ROUTE/IDP",
        "METHOD",
        "PATH",
        "STATUS",
        "OUTCOME",
        "MS",
        "USER",
        "FINDINGS",
        "ID",
    ];
    let rows: Vec<[String; 10]> = page
        .items
        .iter()
        .map(|e| {
            [
                rfc3339(e.begun.received_at_ms),
                format!(
                    "{}/{}",
                    e.begun.route.as_deref().unwrap_or("-"),
                    e.begun.idp.as_deref().unwrap_or("-")
                ),
                e.begun.method.clone(),
                truncate(
                    &format!(
                        "{}{}",
                        e.begun.path,
                        e.begun.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default()
                    ),
                    48,
                ),
                e.status().map_or("-".to_owned(), |s| s.to_string()),
                e.outcome().to_owned(),
                e.duration_ms().map_or("-".to_owned(), |d| d.to_string()),
                truncate(e.begun.user_name.as_deref().unwrap_or("-"), 32),
                truncate(&finding_kinds(e.findings()), 40),
                e.begun.id.clone(),
            ]
            .map(|cell| escape(&cell))
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(header.to_vec()));
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        println!("(no exchanges)");
    } else if page.next_cursor.is_some() {
        println!("… more: raise --limit or narrow the filters");
    }
    Ok(())
}

/// The kinds of an exchange's findings, comma-separated, or `-`.
fn finding_kinds(findings: &Value) -> String {
    let kinds: Vec<&str> = findings
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|f| f.get("kind").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if kinds.is_empty() {
        "-".to_owned()
    } else {
        kinds.join(",")
    }
}

async fn show(id: &str, store: Option<String>, json: bool) -> anyhow::Result<()> {
    let store = open(store).await?;
    let exchange = store.get(id).await?;
    let full = exchange.to_json();
    if json {
        println!("{}", serde_json::to_string_pretty(&full)?);
        return Ok(());
    }
    println!("exchange   {}", exchange.begun.id);
    println!(
        "received   {} ({} ms)",
        rfc3339(exchange.begun.received_at_ms),
        exchange.duration_ms().map_or("-".to_owned(), |d| d.to_string())
    );
    if let Some(paced) = exchange.paced_ms() {
        println!("paced      waited {paced} ms in the route's pacing queue");
    }
    println!(
        "route      {} (idp {})",
        exchange.begun.route.as_deref().unwrap_or("-"),
        exchange.begun.idp.as_deref().unwrap_or("-")
    );
    if let Some(version) = &exchange.begun.rules_version {
        println!("rules      version {}", escape(version));
    }
    println!(
        "request    {} {}{}",
        exchange.begun.method,
        escape(&exchange.begun.path),
        exchange
            .begun
            .query
            .as_deref()
            .map(|q| format!("?{}", escape(q)))
            .unwrap_or_default()
    );
    println!(
        "scim       {} {} {}{}",
        exchange.begun.operation,
        exchange.begun.resource_type.as_deref().unwrap_or("-"),
        exchange.begun.resource_id.as_deref().map(escape).unwrap_or_default(),
        exchange
            .begun
            .lifecycle
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default()
    );
    if let Some(user) = &exchange.begun.user_name {
        println!("user       {}", escape(user));
    }
    println!(
        "outcome    {} (status {}, application {})",
        exchange.outcome(),
        exchange.status().map_or("-".to_owned(), |s| s.to_string()),
        exchange.upstream_status().map_or("-".to_owned(), |s| s.to_string())
    );
    if let Some(error) = &exchange.error() {
        println!("error      {}", escape(error));
    }
    if let Some(original) = &exchange.begun.replay_of {
        println!("replay of  {original}");
    }
    for replay in &exchange.replays {
        println!("replayed   {replay}");
    }
    if let Some(parent) = &exchange.begun.parent_id {
        println!("made for   {parent}");
    }
    for child in &exchange.children {
        println!("made       {child} (read-back or bulk operation)");
    }
    section("Request as received", &full["request"]);
    section("Request as forwarded", &full["forwarded"]);
    if full["changes"].as_array().is_some_and(|c| !c.is_empty()) {
        println!("\n== Changes ==\n{}", pretty(&full["changes"]));
    }
    section("Response", &full["response"]);
    if full["findings"].as_array().is_some_and(|f| !f.is_empty()) {
        println!("\n== Findings ==\n{}", pretty(&full["findings"]));
    }
    if let Some(operations) = exchange.bulk_operations().and_then(Value::as_array) {
        println!("\n== Bulk operations ==");
        for op in operations {
            let text = |key: &str| op[key].as_str().map_or("-".to_owned(), escape);
            let detail = op["detail"]
                .as_str()
                .map(|d| format!("  {}", escape(d)))
                .unwrap_or_default();
            println!(
                "#{:<3} {:<6} {:<40} bulkId {:<12} {:>3}  {}{detail}",
                op["index"],
                text("method"),
                text("path"),
                text("bulkId"),
                op["status"].as_u64().map_or("-".to_owned(), |s| s.to_string()),
                text("outcome"),
            );
        }
    }
    Ok(())
}

fn section(title: &str, part: &Value) {
    println!("\n== {title} ==");
    if part.is_null() {
        println!("(none)");
        return;
    }
    for (name, value) in part["headers"].as_object().into_iter().flatten() {
        println!("{}: {}", escape(name), escape(value.as_str().unwrap_or_default()));
    }
    match &part["body"] {
        Value::Null => {}
        Value::String(text) => println!("\n{}", escape(text)),
        body => println!("\n{}", pretty(body)),
    }
}

/// Pretty JSON; serde_json escapes control characters inside strings.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Control characters (terminal escapes among them) shown as \u{…}; newlines and tabs kept.
pub(crate) fn escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
