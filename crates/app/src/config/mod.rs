//! The configuration file (TOML) and its validation: raw serde types with
//! `deny_unknown_fields` (`raw.rs`), checked into [`Settings`] (`resolve.rs`, with the store's
//! part in `store.rs` and each route's in `route.rs`), and described for `check-config`
//! (`describe.rs`).

mod describe;
mod raw;
mod resolve;
mod route;
mod store;

pub use raw::*;
pub use store::fingerprint_key;

use scimtrail_proxy::ProxyConfig;
use scimtrail_store::Durability;
use std::path::PathBuf;
use std::time::Duration;

/// The default store.
pub const DEFAULT_STORE_URL: &str = "sqlite://scimtrail.db";

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys are named).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What and where.
        message: String,
    },
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// What overrides the file: the flags, and under them the environment
/// (`environment::Environment::under`).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--upstream`: with no file, the single route's upstream.
    pub upstream: Option<String>,
    /// `--idp`: the single route's profile.
    pub idp: Option<String>,
    /// `--store`.
    pub store: Option<String>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// This instance's name (`SCIMTRAIL_INSTANCE`): stable across restarts where the host
    /// name is not (a container's).
    pub instance: Option<String>,
    /// `human` or `json` (`SCIMTRAIL_LOG_FORMAT`).
    pub log_format: Option<String>,
    /// The tracing filter (`SCIMTRAIL_LOG_LEVEL`).
    pub log_level: Option<String>,
    /// The operator's rule files (`SCIMTRAIL_RULES_DIR`).
    pub rules_dir: Option<String>,
}

/// Everything resolved and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The proxy's settings.
    pub proxy: ProxyConfig,
    /// The store URL.
    pub store_url: String,
    /// When a recorded write is durable (`[record] durability`).
    pub durability: Durability,
    /// How long a write at [`Durability::Process`] may stay unsynced.
    pub sync_interval: Duration,
    /// `on_store_failure = "spool"` on a PostgreSQL store: the spool's directory.
    pub spool_dir: Option<PathBuf>,
    /// The operator's rule files (`[rules] dir`), read again on SIGHUP; their profiles are
    /// in `proxy.profiles`.
    pub rules_dir: Option<PathBuf>,
    /// `human` or `json`.
    pub log_format: String,
    /// The tracing filter.
    pub log_level: String,
    /// What the configuration allows that an operator should know it allows: logged at start,
    /// printed by `check-config`.
    pub warnings: Vec<String>,
}

/// A URL with any password replaced, for messages.
pub fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
