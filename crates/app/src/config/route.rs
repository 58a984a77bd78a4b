//! Each `[[route]]` resolved and checked: its profile, upstream and credentials, target,
//! pacing, webhook and reconciliation; and the routes together.

use super::raw::generic;
use super::resolve::{required_secret, retention_ms, secret};
use super::{invalid, ConfigError, Overrides, RawPacing, RawRoute, RawRouteRecord, RawUpstreamAuth, RawWebhook};
use scimtrail_proxy::pacing::{self, Pacing};
use scimtrail_proxy::{Route, TlsFiles, UpstreamAuth, Webhook};
use scimtrail_rules::{Catalog, Mode, Target};
use scimtrail_scim::redact::Redaction;
use std::sync::Arc;
use std::time::Duration;

/// The shortest `[route.reconcile] every`: a run reads every user and group of the
/// application.
const MIN_RECONCILE_EVERY_MS: i64 = 10_000;

/// The routes of [`Settings::resolve`](super::Settings::resolve): the file's `[[route]]`s, or
/// the single one `--upstream` makes; no two of one name or path prefix; and a warning for
/// each that lets anyone act with its upstream credentials.
pub(super) fn routes(
    raw: Vec<RawRoute>,
    flags: &Overrides,
    limits: &RouteLimits<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Route>, ConfigError> {
    let mut routes = raw
        .into_iter()
        .map(|r| route(r, limits))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(upstream) = &flags.upstream {
        if !routes.is_empty() {
            return Err(invalid(
                "--upstream makes the single route; the configuration file already declares routes",
            ));
        }
        routes.push(route(
            RawRoute {
                name: "default".to_owned(),
                path_prefix: String::new(),
                idp: flags.idp.clone().unwrap_or_else(generic),
                upstream: upstream.clone(),
                timeout_secs: None,
                upstream_auth: None,
                upstream_tls: None,
                idp_token_env: None,
                idp_token_file: None,
                allow_anonymous_idp: false,
                mode: Mode::default(),
                target: Target::default(),
                shape_learning: None,
                webhook: None,
                read_back: false,
                record: RawRouteRecord::default(),
                pacing: None,
                reconcile: None,
            },
            limits,
        )?);
    } else if flags.idp.is_some() {
        return Err(invalid("--idp names the profile of the route that --upstream makes"));
    }
    if routes.is_empty() {
        return Err(invalid(
            "no route: give --upstream URL, or declare [[route]] in the configuration file",
        ));
    }
    for (index, route) in routes.iter().enumerate() {
        if routes[..index].iter().any(|other| other.name == route.name) {
            return Err(invalid(format!("two routes are named \"{}\"", route.name)));
        }
        if routes[..index]
            .iter()
            .any(|other| other.path_prefix.trim_end_matches('/') == route.path_prefix.trim_end_matches('/'))
        {
            return Err(invalid(format!(
                "two routes have the path prefix \"{}\"",
                route.path_prefix
            )));
        }
    }
    for route in routes.iter().filter(|r| r.allow_anonymous_idp) {
        warnings.push(format!(
            "route {}: allow_anonymous_idp: anyone who reaches the listener acts with its upstream credentials",
            route.name
        ));
    }
    Ok(routes)
}

/// What every route is resolved against.
pub(super) struct RouteLimits<'a> {
    pub(super) default_timeout: Duration,
    pub(super) max_body_bytes: usize,
    /// The profiles a route may name.
    pub(super) profiles: &'a Catalog,
    /// Where the operator's come from, if anywhere.
    pub(super) rules_dir: Option<&'a std::path::Path>,
}

fn route(raw: RawRoute, limits: &RouteLimits<'_>) -> Result<Route, ConfigError> {
    let what = format!("route \"{}\"", raw.name);
    if raw.name.is_empty() {
        return Err(invalid("a route needs a name"));
    }
    if limits.profiles.get(&raw.idp).is_none() {
        let whence = match limits.rules_dir {
            Some(dir) => format!("the bundled ones and those of [rules] dir {}", dir.display()),
            None => "the bundled ones; an operator's own profiles come from [rules] dir".to_owned(),
        };
        return Err(invalid(format!(
            "{what}: idp \"{}\" is not one of {} ({whence})",
            raw.idp,
            limits.profiles.names().join(", ")
        )));
    }
    if !raw.path_prefix.is_empty() && !raw.path_prefix.starts_with('/') {
        return Err(invalid(format!(
            "{what}: path_prefix \"{}\" must start with /",
            raw.path_prefix
        )));
    }
    let upstream = http_url(&raw.upstream, &what, "upstream", "upstream_auth")?;
    if raw.timeout_secs == Some(0) {
        return Err(invalid(format!("{what}: timeout_secs must be at least 1")));
    }
    if upstream.query().is_some() {
        return Err(invalid(format!(
            "{what}: upstream \"{}\" must not carry a query string",
            raw.upstream
        )));
    }
    let upstream_auth = raw.upstream_auth.map(|auth| upstream_auth(auth, &what)).transpose()?;
    let idp_token = secret(
        raw.idp_token_env.as_deref(),
        raw.idp_token_file.as_deref(),
        &format!("{what} idp_token_env/idp_token_file"),
    )?;
    if upstream_auth.is_some() && idp_token.is_none() && !raw.allow_anonymous_idp {
        return Err(invalid(format!(
            "{what}: upstream_auth without an IdP token lets anyone who reaches the listener act with the application's credentials; set idp_token_env or idp_token_file (or allow_anonymous_idp = true)"
        )));
    }
    let webhook = raw.webhook.map(|hook| webhook(hook, &what)).transpose()?;
    let redaction = Redaction::new(&raw.record.redact_attributes)
        .map_err(|why| invalid(format!("{what}: [route.record] {why}")))?;
    let mut target = raw.target;
    if target.max_aggregate_results.is_some_and(|max| max < target.max_results) {
        return Err(invalid(format!(
            "{what}: [route.target] max_aggregate_results must be at least max_results ({})",
            target.max_results
        )));
    }
    if target.max_bulk_operations == 0 {
        return Err(invalid(format!(
            "{what}: [route.target] max_bulk_operations must be at least 1"
        )));
    }
    match target.max_bulk_payload_bytes {
        Some(bytes) if bytes > limits.max_body_bytes => {
            return Err(invalid(format!(
                "{what}: [route.target] max_bulk_payload_bytes = {bytes} is above [record] max_body_bytes ({})",
                limits.max_body_bytes
            )))
        }
        Some(_) => {}
        None => target.max_bulk_payload_bytes = Some(limits.max_body_bytes),
    }
    let timeout = raw.timeout_secs.map_or(limits.default_timeout, Duration::from_secs);
    let pacing = route_pacing(&target, raw.pacing, timeout, &what)?;
    let reconcile_every = raw
        .reconcile
        .map(|reconcile| match retention_ms("every", &reconcile.every) {
            Ok(Some(ms)) if ms >= MIN_RECONCILE_EVERY_MS => Ok(Duration::from_millis(ms.unsigned_abs())),
            _ => Err(invalid(format!(
                "{what}: [route.reconcile] every = \"{}\": use a number with s, m, h or d, at least 10s (\"6h\"); a run reads every user and group of the application",
                reconcile.every
            ))),
        })
        .transpose()?;
    Ok(Route {
        name: raw.name,
        path_prefix: raw.path_prefix.trim_end_matches('/').to_owned(),
        idp: raw.idp,
        mode: raw.mode,
        target,
        shape_learning: raw.shape_learning.unwrap_or(100),
        upstream,
        timeout,
        upstream_auth,
        client_identity: raw.upstream_tls.map(|tls| TlsFiles {
            cert_path: tls.client_cert_path,
            key_path: tls.client_key_path,
        }),
        idp_token,
        allow_anonymous_idp: raw.allow_anonymous_idp,
        webhook,
        read_back: raw.read_back,
        redaction,
        pacing,
        reconcile_every,
    })
}

/// A route's pacing: `None` unless its target limits the requests it takes.
fn route_pacing(
    target: &Target,
    raw: Option<RawPacing>,
    timeout: Duration,
    what: &str,
) -> Result<Option<Pacing>, ConfigError> {
    let limits = [
        ("max_requests_per_second", target.max_requests_per_second),
        ("max_in_flight", target.max_in_flight),
    ];
    for (key, value) in limits {
        if let Some(value) = value.filter(|value| !(1..=100_000).contains(value)) {
            return Err(invalid(format!(
                "{what}: [route.target] {key} = {value}: use 1 to 100000"
            )));
        }
    }
    if target.max_requests_per_second.is_none() && target.max_in_flight.is_none() {
        return match raw {
            Some(_) => Err(invalid(format!(
                "{what}: [route.pacing] paces nothing: set [route.target] max_requests_per_second or max_in_flight"
            ))),
            None => Ok(None),
        };
    }
    let raw = raw.unwrap_or_default();
    let max_queued = raw.max_queued.unwrap_or(pacing::DEFAULT_MAX_QUEUED);
    if !(1..=65_536).contains(&max_queued) {
        return Err(invalid(format!(
            "{what}: [route.pacing] max_queued = {max_queued}: use 1 to 65536"
        )));
    }
    let patience = pacing::IDP_PATIENCE.as_secs();
    let max_wait = match raw.max_wait_secs {
        // 0 never waits: what cannot be sent at once is refused at once.
        Some(secs) if secs > 0 && Duration::from_secs(secs).saturating_add(timeout) >= pacing::IDP_PATIENCE => {
            return Err(invalid(format!(
                "{what}: [route.pacing] max_wait_secs = {secs} and the route's timeout of {} s make {} s, not under {patience} s: an IdP gives up after 60 s and sends the write again (R15); {}",
                timeout.as_secs(),
                secs.saturating_add(timeout.as_secs()),
                match Pacing::longest_wait(timeout) {
                    Some(longest) => format!("use at most {}", longest.as_secs()),
                    None => "with this timeout, use 0 (never wait)".to_owned(),
                }
            )))
        }
        Some(secs) => Duration::from_secs(secs),
        None => Pacing::longest_wait(timeout).ok_or_else(|| {
            invalid(format!(
                "{what}: the route's timeout of {} s leaves its pacing queue no time to wait under {patience} s (R15: an IdP gives up after 60 s and sends the write again); lower timeout_secs, or set [route.pacing] max_wait_secs = 0 to refuse at once what cannot be sent at once",
                timeout.as_secs()
            ))
        })?,
    };
    let max_pause_secs = raw.max_pause_secs.unwrap_or(pacing::DEFAULT_MAX_PAUSE.as_secs());
    if !(1..=3600).contains(&max_pause_secs) {
        return Err(invalid(format!(
            "{what}: [route.pacing] max_pause_secs = {max_pause_secs}: use 1 to 3600"
        )));
    }
    Ok(Some(Pacing {
        max_requests_per_second: target.max_requests_per_second,
        max_in_flight: target.max_in_flight,
        max_queued,
        max_wait,
        max_pause: Duration::from_secs(max_pause_secs),
    }))
}

/// An http:// or https:// URL with a host and no credentials in it (`key` names it in
/// messages; credentials go in `credentials_key` instead).
fn http_url(text: &str, what: &str, key: &str, credentials_key: &str) -> Result<http::Uri, ConfigError> {
    let url: http::Uri = text
        .parse()
        .map_err(|_| invalid(format!("{what}: {key} \"{text}\" is not a URL")))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(invalid(format!(
            "{what}: {key} \"{text}\" must be an http:// or https:// URL"
        )));
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid(format!(
            "{what}: the {key} must not carry credentials; use {credentials_key}"
        )));
    }
    Ok(url)
}

fn webhook(raw: RawWebhook, what: &str) -> Result<Webhook, ConfigError> {
    let what = format!("{what} webhook");
    let url = http_url(&raw.url, &what, "url", "bearer_token_env")?;
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if !(1..=20).contains(&max_attempts) {
        return Err(invalid(format!("{what}: max_attempts must be from 1 to 20")));
    }
    let bearer_token = secret(
        raw.bearer_token_env.as_deref(),
        raw.bearer_token_file.as_deref(),
        &format!("{what} bearer_token_env/bearer_token_file"),
    )?;
    // A bearer token in clear text, across a network, is a token given away.
    if bearer_token.is_some() && url.scheme_str() == Some("http") && !url.host().is_some_and(is_loopback_host) {
        return Err(invalid(format!(
            "{what}: a bearer token would cross the network in clear text to {url}; use https:// (plain http:// only to loopback)"
        )));
    }
    Ok(Webhook {
        url,
        bearer_token,
        max_attempts,
    })
}

fn upstream_auth(raw: RawUpstreamAuth, what: &str) -> Result<UpstreamAuth, ConfigError> {
    let what = format!("{what} upstream_auth");
    let RawUpstreamAuth {
        bearer_token_env,
        bearer_token_file,
        basic_username,
        basic_password_env,
        basic_password_file,
        header,
        value_env,
        value_file,
        oauth_token_url,
        oauth_client_id,
        oauth_client_secret_env,
        oauth_client_secret_file,
        oauth_scope,
    } = raw;
    let bearer = bearer_token_env.is_some() || bearer_token_file.is_some();
    let basic = basic_username.is_some() || basic_password_env.is_some() || basic_password_file.is_some();
    let custom = header.is_some() || value_env.is_some() || value_file.is_some();
    let oauth = oauth_token_url.is_some()
        || oauth_client_id.is_some()
        || oauth_client_secret_env.is_some()
        || oauth_client_secret_file.is_some()
        || oauth_scope.is_some();
    let forms = [bearer, basic, custom, oauth].into_iter().filter(|form| *form).count();
    let exactly_one = || {
        invalid(format!(
            "{what}: give exactly one of {{ bearer_token_env | bearer_token_file }}, {{ basic_username, basic_password_env | basic_password_file }}, {{ header, value_env | value_file }}, {{ oauth_token_url, oauth_client_id, oauth_client_secret_env | oauth_client_secret_file[, oauth_scope] }}"
        ))
    };
    if forms != 1 {
        return Err(exactly_one());
    }
    if oauth {
        let needs = |key: &str| invalid(format!("{what}: OAuth client credentials need {key}"));
        let token_url = http_url(
            &oauth_token_url.ok_or_else(|| needs("oauth_token_url"))?,
            &what,
            "oauth_token_url",
            "oauth_client_secret_env",
        )?;
        // The client secret crosses to the token endpoint: never in clear text over a network.
        if token_url.scheme_str() == Some("http") && !token_url.host().is_some_and(is_loopback_host) {
            return Err(invalid(format!(
                "{what}: the client secret would cross the network in clear text to {token_url}; use https:// (plain http:// only to loopback)"
            )));
        }
        let client_id = oauth_client_id.ok_or_else(|| needs("oauth_client_id"))?;
        let client_secret = required_secret(
            oauth_client_secret_env.as_deref(),
            oauth_client_secret_file.as_deref(),
            &what,
            "oauth_client_secret_env or oauth_client_secret_file",
        )?;
        return Ok(UpstreamAuth::ClientCredentials(Arc::new(
            scimtrail_proxy::upstream::ClientCredentials::new(token_url, client_id, client_secret, oauth_scope),
        )));
    }
    if bearer {
        return Ok(UpstreamAuth::Bearer(required_secret(
            bearer_token_env.as_deref(),
            bearer_token_file.as_deref(),
            &what,
            "bearer_token_env or bearer_token_file",
        )?));
    }
    if basic {
        let username = basic_username.ok_or_else(|| invalid(format!("{what}: basic needs basic_username")))?;
        let password = required_secret(
            basic_password_env.as_deref(),
            basic_password_file.as_deref(),
            &what,
            "basic_password_env or basic_password_file beside basic_username",
        )?;
        return Ok(UpstreamAuth::Basic { username, password });
    }
    let name = header.ok_or_else(|| invalid(format!("{what}: value_env or value_file needs header")))?;
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(invalid(format!("{what}: \"{name}\" is not a header name")));
    }
    let value = required_secret(
        value_env.as_deref(),
        value_file.as_deref(),
        &what,
        "value_env or value_file beside header",
    )?;
    Ok(UpstreamAuth::Header { name, value })
}

/// Whether `host` (a URL's host) is this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
