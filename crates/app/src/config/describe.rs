//! `check-config`'s account of the resolved settings: every value, where each secret comes
//! from (never its value), store passwords redacted.

use super::{without_password, Settings};
use scimtrail_proxy::pacing;
use scimtrail_proxy::{Route, Secret, UpstreamAuth};
use scimtrail_store::Durability;

impl Settings {
    /// The resolved settings for `check-config`: secrets and store passwords redacted.
    pub fn describe(&self) -> String {
        let mut out = self.describe_service();
        out.push_str(&self.describe_buffers());
        out.push_str(&format!(
            "fingerprint key = {}\n",
            self.proxy.fingerprint_key.describe()
        ));
        out.push_str(&self.describe_rules());
        out.push_str(&self.describe_retention());
        for route in &self.proxy.routes {
            out.push_str(&self.describe_route(route));
        }
        for warning in &self.warnings {
            out.push_str(&format!("warning: {warning}\n"));
        }
        out
    }

    /// The lines on the listeners, the store, the instance, recording and logging.
    fn describe_service(&self) -> String {
        let p = &self.proxy;
        format!(
            "listen = {}{} (at most {} connections, {} exchanges in flight{}; first bytes within {} s, bodies within {} s, idle connections closed after {} s{}; on SIGTERM unready for {} s, then drained within {} s)\nadmin = {} (token: {}{})\nstore = {}\ndurability = {}\ninstance = {} (heartbeat every {} s, dead to the others after {} s silent)\nrecord = {:?} ({}), max_body_bytes {}, max_response_bytes {}, queue {} ({} bytes), batch {}\nredact_headers = authorization, proxy-authorization, cookie, set-cookie{}\nlog = {} {}\n",
            p.listen,
            if p.tls.is_some() { " (TLS)" } else { "" },
            p.max_connections,
            p.max_exchanges,
            p.max_connections_per_client
                .map(|n| format!(", {n} per client"))
                .unwrap_or_default(),
            p.first_byte_timeout.as_secs(),
            p.body_timeout.as_secs(),
            p.idle_timeout.as_secs(),
            if p.trusted_proxies.is_empty() {
                String::new()
            } else {
                format!(
                    "; clients named by X-Forwarded-For behind {}",
                    p.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )
            },
            p.ready_grace.as_secs(),
            p.drain.as_secs(),
            p.admin_listen,
            describe_secret(p.admin_token.as_ref()),
            if p.admin_allowed_hosts.is_empty() {
                String::new()
            } else {
                format!("; also answers as {}", p.admin_allowed_hosts.join(", "))
            },
            without_password(&self.store_url),
            match self.durability {
                Durability::Power => "power (a record is synced before the exchange goes on)".to_owned(),
                Durability::Process => format!(
                    "process (a record is written before the exchange goes on, and synced within {} ms; a replay's is synced)",
                    self.sync_interval.as_millis()
                ),
            },
            p.instance,
            p.heartbeat.as_secs(),
            p.instance_dead_after.as_secs(),
            p.record_mode,
            match (&self.spool_dir, p.fail_closed) {
                (Some(dir), _) => format!("store failing: spooled into {}", dir.display()),
                (None, true) => "store failing: fail closed".to_owned(),
                (None, false) => "store failing: served unrecorded".to_owned(),
            },
            p.max_body_bytes,
            p.max_response_bytes,
            p.queue_capacity,
            p.queue_max_bytes,
            p.max_batch,
            p.redact_headers.iter().map(|h| format!(", {h}")).collect::<String>(),
            self.log_format,
            self.log_level,
        )
    }

    /// The line on the bodies buffered, and what they would be without the bound.
    fn describe_buffers(&self) -> String {
        let p = &self.proxy;
        format!(
            "buffers = at most {} bytes of bodies buffered by exchanges in flight, as received (each reserves its request's length or max_body_bytes, then its answer's or max_response_bytes; parsed and recorded, an exchange holds some 10 to 25 times its bodies: bench/memory); without this bound {} exchanges at their limits would buffer {} bytes\n",
            p.max_buffered_bytes,
            p.max_exchanges,
            p.max_exchanges
                .saturating_mul(p.max_body_bytes.saturating_add(p.max_response_bytes)),
        )
    }

    /// The line on retention: each outcome's age, the size budget, how often.
    fn describe_retention(&self) -> String {
        let p = &self.proxy;
        let keep = |outcome: &str| match p.retention.keep_ms.get(outcome) {
            Some(Some(ms)) => format!("{outcome} {} d", *ms as f64 / 86_400_000.0),
            _ => format!("{outcome} forever"),
        };
        format!(
            "retention = {}; max_store_bytes {}; pruned every {} s\n",
            scimtrail_store::OUTCOMES.map(keep).join(", "),
            p.retention.max_store_bytes.map_or("none".to_owned(), |b| b.to_string()),
            p.prune_every.as_secs(),
        )
    }

    /// A route's lines: where it goes, with which credentials, and what it does beside.
    fn describe_route(&self, route: &Route) -> String {
        let p = &self.proxy;
        let auth = describe_upstream_auth(route);
        let mut out = String::new();
        out.push_str(&format!(
            "route {}: {} -> {} (idp {}, rules_version {}, timeout {} s, upstream auth: {auth}, idp token: {})\n",
            route.name,
            if route.path_prefix.is_empty() {
                "/"
            } else {
                &route.path_prefix
            },
            route.upstream,
            route.idp,
            p.profiles.get(&route.idp).map_or("-", |profile| profile.version()),
            route.timeout.as_secs_f64(),
            match &route.idp_token {
                Some(token) => format!("required, {}", describe_secret(Some(token))),
                None if route.allow_anonymous_idp => "not checked (allow_anonymous_idp)".to_owned(),
                None => "not checked".to_owned(),
            },
        ));
        if route.read_back {
            out.push_str("  reads each accepted write back with a GET\n");
        }
        if let Some(pacing) = &route.pacing {
            out.push_str(&format!(
                "  paced: {}; at most {} requests wait, each at most {} s (with the {} s timeout, under {} s); an application's 429 pauses the route for its Retry-After, at most {} s\n",
                pacing.limits(),
                pacing.max_queued,
                pacing.max_wait.as_secs(),
                route.timeout.as_secs(),
                pacing::IDP_PATIENCE.as_secs(),
                pacing.max_pause.as_secs(),
            ));
        }
        out.push_str(&format!(
            "  never stored: password{}\n",
            route
                .redaction
                .configured()
                .iter()
                .map(|a| format!(", {a}"))
                .collect::<String>()
        ));
        if let Some(hook) = &route.webhook {
            out.push_str(&format!(
                "  alerts to {} ({} attempts, token: {})\n",
                hook.url,
                hook.max_attempts,
                describe_secret(hook.bearer_token.as_ref()),
            ));
        }
        out
    }

    /// `check-config`'s lines on the profiles: where the operator's come from, and each one
    /// loaded (its base, version, rules and cases, all of which passed).
    fn describe_rules(&self) -> String {
        let catalog = &self.proxy.profiles;
        let bundled = catalog.profiles().len() - catalog.operators().count();
        let Some(dir) = &self.rules_dir else {
            return format!(
                "rules = the {bundled} bundled profiles ({}); no [rules] dir\n",
                catalog.names().join(", ")
            );
        };
        let mut out = format!(
            "rules = {}: {} operator profiles beside the {bundled} bundled ones, read again on SIGHUP\n",
            dir.display(),
            catalog.operators().count()
        );
        for profile in catalog.operators() {
            let disabled = match profile.disabled.is_empty() {
                true => String::new(),
                false => format!(
                    ", disables {}",
                    profile
                        .disabled
                        .iter()
                        .map(|d| d.id.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            };
            out.push_str(&format!(
                "  profile {} ({}): {}rules_version {}, {} rules{disabled}, {} test cases passed\n",
                profile.name,
                profile.origin,
                profile
                    .extends
                    .as_ref()
                    .map(|base| format!("extends {base}, "))
                    .unwrap_or_default(),
                profile.version(),
                profile.rules.len(),
                profile.tests.len(),
            ));
        }
        out
    }
}

/// How a route's requests are authenticated to the application.
fn describe_upstream_auth(route: &Route) -> String {
    let auth = match &route.upstream_auth {
        None => "the IdP's credentials are passed through".to_owned(),
        Some(UpstreamAuth::Bearer(token)) => format!("bearer token, {}", describe_secret(Some(token))),
        Some(UpstreamAuth::Basic { username, password }) => {
            format!("basic as {username}, password {}", describe_secret(Some(password)))
        }
        Some(UpstreamAuth::Header { name, value }) => {
            format!("header {name}, {}", describe_secret(Some(value)))
        }
        Some(UpstreamAuth::ClientCredentials(oauth)) => format!(
            "OAuth client credentials from {} as {}{}, client secret {}",
            oauth.token_url,
            oauth.client_id,
            oauth
                .scope
                .as_deref()
                .map(|s| format!(" (scope {s})"))
                .unwrap_or_default(),
            describe_secret(Some(&oauth.client_secret))
        ),
    };
    match &route.client_identity {
        Some(identity) => format!("{auth}; client certificate {}", identity.cert_path.display()),
        None => auth,
    }
}

/// Where a secret comes from, never its value; and whether a rotation is under way.
fn describe_secret(secret: Option<&Secret>) -> String {
    match secret {
        None => "none".to_owned(),
        Some(secret) => {
            let mut text = format!("redacted, from {}", secret.source());
            if let (true, Some(next)) = (secret.rotating(), secret.source().next_name()) {
                text.push_str(&format!(", next value from {next} also accepted"));
            }
            text
        }
    }
}
