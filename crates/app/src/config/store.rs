//! The store's part of the configuration: its URL, what happens when it fails, how durable a
//! record is, and the key of the credentials' fingerprints.

use super::resolve::seconds;
use super::{invalid, without_password, ConfigError, Overrides, RawRecord, RawStore, DEFAULT_STORE_URL};
use scimtrail_proxy::fingerprint::{self, KeySource};
use scimtrail_store::{private, Durability};
use std::path::PathBuf;
use std::time::Duration;

/// The store a configuration chooses, and how recording meets its failures.
pub(super) struct StoreChoice {
    pub(super) url: String,
    pub(super) spool_dir: Option<PathBuf>,
    pub(super) fail_closed: bool,
    pub(super) fingerprint_key: KeySource,
}

/// The store phase of [`Settings::resolve`]: its URL (flags and environment, through
/// `flags.store` > `url_env` > `url_file` > `url` > the default), what happens when it fails,
/// the fingerprint key, and warnings about its files.
pub(super) fn store_choice(
    store: &RawStore,
    record: &RawRecord,
    flags: &Overrides,
    warnings: &mut Vec<String>,
) -> Result<StoreChoice, ConfigError> {
    let from_file = || -> Result<Option<String>, ConfigError> {
        let Some(path) = &store.url_file else { return Ok(None) };
        let text =
            std::fs::read_to_string(path).map_err(|e| invalid(format!("[store] url_file {}: {e}", path.display())))?;
        Ok(Some(text.trim().to_owned()))
    };
    let store_url = match (
        &flags.store,
        store.url_env.as_deref().and_then(|n| std::env::var(n).ok()),
        from_file()?,
        &store.url,
    ) {
        (Some(url), ..) => url.clone(),
        (None, Some(url), ..) => url,
        (None, None, Some(url), _) => url,
        (None, None, None, Some(url)) => url.clone(),
        (None, None, None, None) => DEFAULT_STORE_URL.to_owned(),
    };
    if !(store_url.starts_with("sqlite:") || store_url.starts_with("postgres:") || store_url.starts_with("postgresql:"))
    {
        return Err(invalid(format!(
            "store URL \"{}\": use sqlite://FILE or postgres://…",
            without_password(&store_url)
        )));
    }
    let on_store_failure = match (record.on_store_failure.as_deref(), record.fail_closed) {
        (Some(mode @ ("fail_closed" | "spool" | "serve_unrecorded")), None) => mode,
        (Some(other), None) => {
            return Err(invalid(format!(
                "[record] on_store_failure = \"{other}\": use \"fail_closed\", \"spool\" or \"serve_unrecorded\""
            )))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "[record] fail_closed and on_store_failure are both set: keep on_store_failure".to_owned(),
            ))
        }
        (None, Some(closed)) => {
            let mode = if closed { "fail_closed" } else { "serve_unrecorded" };
            warnings.push(format!(
                "[record] fail_closed is deprecated: write on_store_failure = \"{mode}\""
            ));
            mode
        }
        (None, None) => "fail_closed",
    };
    let postgres = !store_url.starts_with("sqlite:");
    let spool_dir = match on_store_failure {
        "spool" if postgres => Some(
            record
                .spool_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("scimtrail.spool")),
        ),
        "spool" => {
            warnings.push(
                "[record] on_store_failure = \"spool\" applies to PostgreSQL stores: a SQLite store's journal is local already, and it fails closed"
                    .to_owned(),
            );
            None
        }
        _ => None,
    };
    let fail_closed = on_store_failure != "serve_unrecorded";
    let fingerprint_key = fingerprint_key(store, &store_url)?;
    let mut private_paths = private::store_paths(&store_url, spool_dir.as_deref());
    if let KeySource::File(path) | KeySource::BesideStore(path) = &fingerprint_key {
        private_paths.push(path.clone());
    }
    for (path, mode) in private::open_to_others(&private_paths) {
        warnings.push(format!(
            "{} is open to other users (mode {mode:o}): it holds personal data or the key to its fingerprints; chmod go-rwx {}",
            path.display(),
            path.display()
        ));
    }
    Ok(StoreChoice {
        url: store_url,
        spool_dir,
        fail_closed,
        fingerprint_key,
    })
}

/// The durability phase of [`Settings::resolve`]: `[record] durability` (or its deprecated
/// alias `[store] sqlite_synchronous`, with a warning; both set must agree) and
/// `[record] sync_interval_ms`.
pub(super) fn durability(
    store: &RawStore,
    record: &RawRecord,
    warnings: &mut Vec<String>,
) -> Result<(Durability, Duration), ConfigError> {
    let chosen = match record.durability.as_deref() {
        None => None,
        Some("power") => Some(Durability::Power),
        Some("process") => Some(Durability::Process),
        Some(other) => {
            return Err(invalid(format!(
                "[record] durability = \"{other}\": use \"power\" or \"process\""
            )))
        }
    };
    let alias = match store.sqlite_synchronous.as_deref() {
        None => None,
        Some(text @ "full") => Some((text, Durability::Power)),
        Some(text @ "normal") => Some((text, Durability::Process)),
        Some(other) => {
            return Err(invalid(format!(
                "[store] sqlite_synchronous = \"{other}\" (deprecated): write [record] durability = \"power\" or \"process\""
            )))
        }
    };
    let durability = match (chosen, alias) {
        (Some(chosen), Some((text, aliased))) if chosen != aliased => {
            return Err(invalid(format!(
                "[record] durability = \"{chosen}\" and [store] sqlite_synchronous = \"{text}\" (deprecated, \"{aliased}\") disagree: keep [record] durability"
            )))
        }
        (chosen, Some((text, aliased))) => {
            warnings.push(format!(
                "[store] sqlite_synchronous is deprecated: write [record] durability = \"{aliased}\" (for \"{text}\")"
            ));
            chosen.unwrap_or(aliased)
        }
        (chosen, None) => chosen.unwrap_or(Durability::Power),
    };
    let interval_ms = seconds(record.sync_interval_ms, 10, 1..=1000, "[record] sync_interval_ms")?;
    Ok((durability, Duration::from_millis(interval_ms)))
}

/// Where the key credentials' fingerprints are made with comes from: the file or variable the
/// configuration names, else `SCIMTRAIL_FINGERPRINT_KEY`, else (SQLite) a file beside the
/// database; a PostgreSQL store, shared by instances, has none of its own.
pub fn fingerprint_key(store: &RawStore, store_url: &str) -> Result<KeySource, ConfigError> {
    Ok(match (&store.fingerprint_key_env, &store.fingerprint_key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "[store] fingerprint_key_env and fingerprint_key_file both name the key: keep one".to_owned(),
            ))
        }
        (Some(name), None) => KeySource::Env(name.clone()),
        (None, Some(path)) => KeySource::File(path.clone()),
        (None, None) if std::env::var_os(fingerprint::KEY_ENV).is_some() => {
            KeySource::Env(fingerprint::KEY_ENV.to_owned())
        }
        (None, None) => match private::sqlite_file(store_url) {
            Some(database) => KeySource::BesideStore(private::with_suffix(&database, ".fingerprint-key")),
            None => KeySource::Missing,
        },
    })
}
