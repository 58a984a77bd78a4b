//! The file and the flags resolved into [`Settings`], step by step: each step takes its
//! section, refuses what it cannot accept with the key's name, and adds its warnings; the
//! steps run in the order the checks always have, so that the first error reported is the
//! same.

use super::route::{routes, RouteLimits};
use super::store::{durability, store_choice, StoreChoice};
use super::{invalid, ConfigError, Overrides, RawAdmin, RawConfig, RawListen, RawRecord, RawRetention, Settings};
use scimtrail_proxy::{IpNet, ProxyConfig, RecordMode, Secret, SecretSource, TlsFiles};
use scimtrail_rules::Catalog;
use scimtrail_store::Retention;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A secret named by the configuration: from the environment variable `env`, or from the
/// file `file` (never both); `None` when neither is given.
pub(super) fn secret(
    env: Option<&str>,
    file: Option<&std::path::Path>,
    what: &str,
) -> Result<Option<Secret>, ConfigError> {
    let source = match (env, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "{what}: give the environment variable or the file, not both"
            )))
        }
        (Some(name), None) => SecretSource::Env(name.to_owned()),
        (None, Some(path)) => SecretSource::File(path.to_owned()),
        (None, None) => return Ok(None),
    };
    Secret::load(source)
        .map(Some)
        .map_err(|error| invalid(format!("{what}: {error}")))
}

/// A secret that must be given, as `keys` (`x_env` or `x_file`) say.
pub(super) fn required_secret(
    env: Option<&str>,
    file: Option<&std::path::Path>,
    what: &str,
    keys: &str,
) -> Result<Secret, ConfigError> {
    secret(env, file, what)?.ok_or_else(|| invalid(format!("{what}: give {keys}")))
}

fn address(text: &str, what: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| invalid(format!("{what} \"{text}\" is not an address like 127.0.0.1:8080")))
}

impl Settings {
    /// Resolves a file (or none) and flags into settings.
    pub fn resolve(raw: RawConfig, flags: &Overrides) -> Result<Settings, ConfigError> {
        let listen = address(
            flags
                .listen
                .as_deref()
                .or(raw.listen.addr.as_deref())
                .unwrap_or("127.0.0.1:8080"),
            "listen address",
        )?;
        let mut warnings = Vec::new();
        let (admin_listen, admin_token) = admin(&raw.admin, flags, &mut warnings)?;
        let StoreChoice {
            url: store_url,
            spool_dir,
            fail_closed,
            fingerprint_key,
        } = store_choice(&raw.store, &raw.record, flags, &mut warnings)?;
        let (durability, sync_interval) = durability(&raw.store, &raw.record, &mut warnings)?;
        let record_mode = record_mode(raw.record.mode.as_deref())?;
        let default_timeout = Duration::from_secs(raw.upstream.timeout_secs.unwrap_or(30));
        let max_body_bytes = raw.record.max_body_bytes.unwrap_or(1024 * 1024);
        let rules_dir = flags.rules_dir.as_ref().map(PathBuf::from).or(raw.rules.dir);
        let profiles = profiles(rules_dir.as_deref(), &mut warnings)?;
        let limits = RouteLimits {
            default_timeout,
            max_body_bytes,
            profiles: &profiles,
            rules_dir: rules_dir.as_deref(),
        };
        let routes = routes(raw.route, flags, &limits, &mut warnings)?;
        let instance = flags
            .instance
            .clone()
            .or(raw.store.instance)
            .unwrap_or_else(|| format!("{}:{listen}", scimtrail_proxy::config::hostname()));
        let log_format = log_format(flags.log_format.clone().or(raw.log.format))?;
        let listener = ListenerLimits::resolve(
            &raw.listen,
            raw.store.heartbeat_secs,
            raw.store.instance_dead_after_secs,
        )?;
        let (queue_max_bytes, max_response_bytes, max_buffered_bytes) =
            record_bounds(&raw.record, raw.listen.max_buffered_bytes, max_body_bytes)?;
        let (retention, prune_every) = raw.retention.resolve()?;
        Ok(Settings {
            proxy: ProxyConfig {
                listen,
                retention,
                prune_every,
                max_connections: listener.max_connections,
                max_exchanges: listener.max_exchanges,
                idle_timeout: listener.idle_timeout,
                first_byte_timeout: listener.first_byte_timeout,
                body_timeout: listener.body_timeout,
                ready_grace: listener.ready_grace,
                drain: listener.drain,
                heartbeat: listener.heartbeat,
                instance_dead_after: listener.instance_dead_after,
                max_connections_per_client: listener.max_connections_per_client,
                trusted_proxies: listener.trusted_proxies,
                tls: raw.listen.tls.map(|t| TlsFiles {
                    cert_path: t.cert_path,
                    key_path: t.key_path,
                }),
                admin_listen,
                admin_token,
                admin_allowed_hosts: raw.admin.allowed_hosts.unwrap_or_default(),
                record_mode,
                fail_closed,
                max_body_bytes,
                max_response_bytes,
                max_buffered_bytes,
                queue_capacity: raw.record.queue_capacity.unwrap_or(4096),
                queue_max_bytes,
                max_batch: raw.record.max_batch.unwrap_or(256),
                redact_headers: raw.record.redact_headers.unwrap_or_default(),
                routes,
                profiles: Arc::new(profiles),
                instance,
                ca_bundle: raw.upstream.ca_bundle_path,
                fingerprint_key,
            },
            store_url,
            durability,
            sync_interval,
            spool_dir,
            rules_dir,
            log_format,
            log_level: flags
                .log_level
                .clone()
                .or(raw.log.level)
                .unwrap_or_else(|| "info".to_owned()),
            warnings,
        })
    }
}

/// The admin listener's address and token: off loopback without a token it is refused,
/// unless the file allows it in as many words, and then warned.
fn admin(
    admin: &RawAdmin,
    flags: &Overrides,
    warnings: &mut Vec<String>,
) -> Result<(SocketAddr, Option<Secret>), ConfigError> {
    let admin_listen = address(
        flags
            .admin_listen
            .as_deref()
            .or(admin.addr.as_deref())
            .unwrap_or("127.0.0.1:9180"),
        "admin address",
    )?;
    let admin_token = secret(
        admin.token_env.as_deref(),
        admin.token_file.as_deref(),
        "[admin] token_env/token_file",
    )?;
    if !admin_listen.ip().is_loopback() && admin_token.is_none() {
        if !admin.allow_unauthenticated {
            return Err(invalid(format!(
                "the admin listener {admin_listen} is off loopback without a token: anyone who reaches it could read every recorded exchange and start replays; set [admin] token_env or token_file (or allow_unauthenticated = true)"
            )));
        }
        warnings.push(format!(
            "[admin] allow_unauthenticated: the admin listener {admin_listen} serves every recorded exchange and replays to anyone who reaches it"
        ));
    }
    Ok((admin_listen, admin_token))
}

/// `[record] mode`: `durable` (the default) or `async`.
fn record_mode(mode: Option<&str>) -> Result<RecordMode, ConfigError> {
    match mode.unwrap_or("durable") {
        "durable" => Ok(RecordMode::Durable),
        "async" => Ok(RecordMode::Async),
        other => Err(invalid(format!(
            "[record] mode \"{other}\": use \"durable\" or \"async\""
        ))),
    }
}

/// The profiles routes may name: the bundled ones, and the operator's from `[rules] dir`
/// (their warnings kept).
fn profiles(rules_dir: Option<&Path>, warnings: &mut Vec<String>) -> Result<Catalog, ConfigError> {
    let profiles = match rules_dir {
        Some(dir) => crate::rules_dir::load(dir).map_err(|error| invalid(error.to_string()))?,
        None => Catalog::bundled().map_err(|error| invalid(error.to_string()))?,
    };
    warnings.extend(profiles.warnings().into_iter().map(|w| format!("[rules] {w}")));
    Ok(profiles)
}

/// `[log] format`: `human` (the default) or `json`.
fn log_format(configured: Option<String>) -> Result<String, ConfigError> {
    let log_format = configured.unwrap_or_else(|| "human".to_owned());
    if !matches!(log_format.as_str(), "human" | "json") {
        return Err(invalid(format!(
            "[log] format \"{log_format}\": use \"human\" or \"json\""
        )));
    }
    Ok(log_format)
}

/// The listener's limits and timings (`[listen]`), and the instance's heartbeat (`[store]`).
struct ListenerLimits {
    max_connections: usize,
    max_exchanges: usize,
    idle_timeout: Duration,
    first_byte_timeout: Duration,
    body_timeout: Duration,
    ready_grace: Duration,
    drain: Duration,
    heartbeat: Duration,
    instance_dead_after: Duration,
    max_connections_per_client: Option<usize>,
    trusted_proxies: Vec<IpNet>,
}

impl ListenerLimits {
    fn resolve(
        listen: &RawListen,
        heartbeat_secs: Option<u64>,
        dead_after_secs: Option<u64>,
    ) -> Result<ListenerLimits, ConfigError> {
        let max_connections = capacity(listen.max_connections, 1024, "max_connections")?;
        let max_exchanges = capacity(listen.max_exchanges, 256, "max_exchanges")?;
        let idle_timeout_secs = seconds(listen.idle_timeout_secs, 30, 1..=3600, "[listen] idle_timeout_secs")?;
        let first_byte_timeout_secs = seconds(
            listen.first_byte_timeout_secs,
            10,
            1..=300,
            "[listen] first_byte_timeout_secs",
        )?;
        let body_timeout_secs = seconds(listen.body_timeout_secs, 10, 1..=3600, "[listen] body_timeout_secs")?;
        let ready_grace_secs = seconds(listen.ready_grace_secs, 5, 0..=300, "[listen] ready_grace_secs")?;
        let drain_secs = seconds(listen.drain_secs, 30, 1..=3600, "[listen] drain_secs")?;
        let (heartbeat, instance_dead_after) = heartbeats(heartbeat_secs, dead_after_secs)?;
        let max_connections_per_client = listen
            .max_connections_per_client
            .map(|limit| capacity(Some(limit), limit, "max_connections_per_client"))
            .transpose()?;
        let trusted_proxies = listen
            .trusted_proxies
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .map_err(|error| invalid(format!("[listen] trusted_proxies: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListenerLimits {
            max_connections,
            max_exchanges,
            idle_timeout: Duration::from_secs(idle_timeout_secs),
            first_byte_timeout: Duration::from_secs(first_byte_timeout_secs),
            body_timeout: Duration::from_secs(body_timeout_secs),
            ready_grace: Duration::from_secs(ready_grace_secs),
            drain: Duration::from_secs(drain_secs),
            heartbeat,
            instance_dead_after,
            max_connections_per_client,
            trusted_proxies,
        })
    }
}

/// The recorder's queue (`[record] queue_max_bytes`, at least 1 MiB), the largest answer
/// (`[record] max_response_bytes`), and the bodies buffered at once (`[listen]
/// max_buffered_bytes`).
fn record_bounds(
    record: &RawRecord,
    max_buffered_bytes: Option<usize>,
    max_body_bytes: usize,
) -> Result<(usize, usize, usize), ConfigError> {
    let queue_max_bytes = record.queue_max_bytes.unwrap_or(64 * 1024 * 1024);
    if queue_max_bytes < 1024 * 1024 {
        return Err(invalid(format!(
            "[record] queue_max_bytes = {queue_max_bytes}: use at least 1048576 (1 MiB)"
        )));
    }
    let max_response_bytes = record.max_response_bytes.unwrap_or(16 * 1024 * 1024);
    let max_buffered_bytes = buffered(max_buffered_bytes, max_body_bytes, max_response_bytes)?;
    Ok((queue_max_bytes, max_response_bytes, max_buffered_bytes))
}

/// A retention duration in milliseconds: `30d`, `12h`, `45m`, `90s`; `None` for `forever`.
pub(super) fn retention_ms(key: &str, text: &str) -> Result<Option<i64>, ConfigError> {
    if text == "forever" {
        return Ok(None);
    }
    let refuse = || {
        invalid(format!(
            "[retention] {key} = \"{text}\": use a number with s, m, h or d (\"30d\"), or \"forever\""
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(refuse)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| refuse())?;
    let unit_ms: i64 = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(refuse()),
    };
    match number.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(Some(ms)),
        _ => Err(refuse()),
    }
}

impl RawRetention {
    fn resolve(&self) -> Result<(Retention, Duration), ConfigError> {
        let mut retention = Retention::default();
        for (key, value) in [
            ("ok", &self.ok),
            ("rejected", &self.rejected),
            ("failed", &self.failed),
            ("unreachable", &self.unreachable),
            ("partial", &self.partial),
            ("interrupted", &self.interrupted),
        ] {
            if let Some(text) = value {
                retention.keep_ms.insert(key.to_owned(), retention_ms(key, text)?);
            }
        }
        retention.max_store_bytes = self.max_store_bytes;
        let every = match &self.prune_every {
            Some(text) => retention_ms("prune_every", text)?
                .ok_or_else(|| invalid("[retention] prune_every cannot be \"forever\"".to_owned()))?,
            None => 10 * 60_000,
        };
        Ok((
            retention,
            Duration::from_millis(u64::try_from(every).unwrap_or(u64::MAX)),
        ))
    }
}

/// A listener's `[listen]` limit: `default` when unset, refused unless from 1 to 1,000,000.
fn capacity(value: Option<usize>, default: usize, key: &str) -> Result<usize, ConfigError> {
    match value.unwrap_or(default) {
        value @ 1..=1_000_000 => Ok(value),
        value => Err(invalid(format!("[listen] {key} = {value}: use 1 to 1000000"))),
    }
}

/// `[listen] max_buffered_bytes`: at least one exchange's request and answer at their
/// limits; by default 256 MiB, or that if larger.
fn buffered(configured: Option<usize>, max_body_bytes: usize, max_response_bytes: usize) -> Result<usize, ConfigError> {
    let one_exchange = max_body_bytes.saturating_add(max_response_bytes);
    match configured {
        None => Ok(one_exchange.max(256 * 1024 * 1024)),
        Some(bytes) if bytes >= one_exchange => Ok(bytes),
        Some(bytes) => Err(invalid(format!(
            "[listen] max_buffered_bytes = {bytes} cannot hold one exchange at its limits: use at least [record] max_body_bytes + max_response_bytes = {one_exchange}"
        ))),
    }
}

/// How often an instance heartbeats, and after how long without one it is dead to the others.
fn heartbeats(heartbeat_secs: Option<u64>, dead_after_secs: Option<u64>) -> Result<(Duration, Duration), ConfigError> {
    let heartbeat_secs = seconds(heartbeat_secs, 5, 1..=300, "[store] heartbeat_secs")?;
    let dead_after_secs = seconds(dead_after_secs, 30, 1..=86_400, "[store] instance_dead_after_secs")?;
    // Three heartbeats missed, at least: a busy store or a pause must not make a live
    // instance look dead (a survivor would then mark its exchanges interrupted).
    if dead_after_secs < 3 * heartbeat_secs {
        return Err(invalid(format!(
            "[store] instance_dead_after_secs = {dead_after_secs}: use at least three heartbeats ({} s with heartbeat_secs = {heartbeat_secs})",
            3 * heartbeat_secs
        )));
    }
    Ok((
        Duration::from_secs(heartbeat_secs),
        Duration::from_secs(dead_after_secs),
    ))
}

/// `key` (its section named: `[listen] drain_secs`) within `range`, or `default`.
pub(super) fn seconds(
    value: Option<u64>,
    default: u64,
    range: RangeInclusive<u64>,
    key: &str,
) -> Result<u64, ConfigError> {
    match value.unwrap_or(default) {
        value if range.contains(&value) => Ok(value),
        value => Err(invalid(format!(
            "{key} = {value}: use {} to {}",
            range.start(),
            range.end()
        ))),
    }
}
