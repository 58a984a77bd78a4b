//! Secrets the configuration names: read from an environment variable or a file, compared in
//! constant time, rotated without a restart.
//!
//! A secret that is *checked* (an IdP's bearer token, the admin token) accepts two values
//! during a rotation: the current one and the next one, read from `NAME_NEXT` beside the
//! variable `NAME`, or from `FILE.next` beside the file `FILE`. A secret that is *sent* (to the
//! application, to a webhook) uses the current value. [`Secret::reload`] reads a file-backed
//! secret again (`serve` does on SIGHUP); a process's environment does not change under it,
//! so a variable-backed secret keeps its value until a restart.
//!
//! `Debug` never shows a value, and nothing here logs one.

use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable; the next value of a rotation is in `NAME_NEXT`.
    Env(String),
    /// A file (trailing line breaks ignored); the next value is in `FILE.next`.
    File(PathBuf),
    /// Given in code (tests, or a value handed over by the caller): never reloaded.
    Fixed,
}

impl SecretSource {
    /// Where the next value of a rotation comes from, for messages.
    pub fn next_name(&self) -> Option<String> {
        match self {
            SecretSource::Env(name) => Some(format!("{name}_NEXT")),
            SecretSource::File(path) => Some(format!("{}.next", path.display())),
            SecretSource::Fixed => None,
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "the environment variable {name}"),
            SecretSource::File(path) => write!(f, "the file {}", path.display()),
            SecretSource::Fixed => f.write_str("a value given in code"),
        }
    }
}

/// One value, with the digest it is compared through.
#[derive(Clone)]
struct Value {
    text: Arc<str>,
    digest: [u8; 32],
}

impl Value {
    fn new(text: String) -> Value {
        Value {
            digest: Sha256::digest(text.as_bytes()).into(),
            text: Arc::from(text),
        }
    }
}

#[derive(Clone)]
struct Values {
    current: Value,
    next: Option<Value>,
}

/// A secret value, shared by every clone: a reload is seen by all of them.
#[derive(Clone)]
pub struct Secret {
    source: Arc<SecretSource>,
    values: Arc<RwLock<Values>>,
}

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct SecretError {
    what: String,
}

impl Secret {
    /// A fixed secret (never reloaded, no next value).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            source: Arc::new(SecretSource::Fixed),
            values: Arc::new(RwLock::new(Values {
                current: Value::new(value.into()),
                next: None,
            })),
        }
    }

    /// Reads the secret from `source` (and its next value, when there is one).
    pub fn load(source: SecretSource) -> Result<Secret, SecretError> {
        let values = read(&source)?;
        Ok(Secret {
            source: Arc::new(source),
            values: Arc::new(RwLock::new(values)),
        })
    }

    /// Where the secret comes from.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// The current value, for the one place that sends it.
    pub fn expose(&self) -> Arc<str> {
        Arc::clone(&self.values().current.text)
    }

    /// The current value and the next one, if any: for what is derived from the secret and
    /// must follow its rotation (the UI's sessions name the token that opened them).
    pub(crate) fn each_value(&self) -> Vec<Arc<str>> {
        let values = self.values();
        std::iter::once(&values.current)
            .chain(values.next.as_ref())
            .map(|value| Arc::clone(&value.text))
            .collect()
    }

    /// Whether a next value is set (a rotation is under way).
    pub fn rotating(&self) -> bool {
        self.values().next.is_some()
    }

    /// Whether `presented` is the current or the next value. Constant time: both values are
    /// always compared, through their SHA-256 digests, so neither the length nor the
    /// position of a difference shows in the time taken.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let values = self.values();
        let current = constant_time_eq(&presented, &values.current.digest);
        let next = values
            .next
            .as_ref()
            .map_or(0, |next| u8::from(constant_time_eq(&presented, &next.digest)));
        (u8::from(current) | next) == 1
    }

    /// Reads a file-backed secret again. `Ok(true)` when a value changed; a secret from the
    /// environment or from code is unchanged. On error the old values stay in force.
    pub fn reload(&self) -> Result<bool, SecretError> {
        if !matches!(*self.source, SecretSource::File(_)) {
            return Ok(false);
        }
        let fresh = read(&self.source)?;
        let mut values = match self.values.write() {
            Ok(values) => values,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = values.current.digest != fresh.current.digest
            || values.next.as_ref().map(|v| v.digest) != fresh.next.as_ref().map(|v| v.digest);
        *values = fresh;
        Ok(changed)
    }

    fn values(&self) -> Values {
        // A poisoned lock still holds whole values: they are replaced in one assignment.
        match self.values.read() {
            Ok(values) => values.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        let (ours, theirs) = (self.values(), other.values());
        self.source == other.source && ours.current.digest == theirs.current.digest
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted] from {})", self.source)
    }
}

fn read(source: &SecretSource) -> Result<Values, SecretError> {
    match source {
        SecretSource::Env(name) => {
            let current = env(name)?.ok_or_else(|| SecretError {
                what: format!("the environment variable {name} is not set"),
            })?;
            Ok(Values {
                current: Value::new(current),
                next: env(&format!("{name}_NEXT"))?.map(Value::new),
            })
        }
        SecretSource::File(path) => {
            let current = file(path)?.ok_or_else(|| SecretError {
                what: format!("{} does not exist", path.display()),
            })?;
            let mut next_path = path.as_os_str().to_owned();
            next_path.push(".next");
            Ok(Values {
                current: Value::new(current),
                next: file(Path::new(&next_path))?.map(Value::new),
            })
        }
        SecretSource::Fixed => Err(SecretError {
            what: "a fixed secret has nothing to read".to_owned(),
        }),
    }
}

/// A set, non-empty variable; `None` when unset or empty.
fn env(name: &str) -> Result<Option<String>, SecretError> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(SecretError {
            what: format!("the environment variable {name} is not valid UTF-8"),
        }),
    }
}

/// A file's text without its trailing line breaks; `None` when it does not exist. An empty
/// file is an error: a secret half-written by a rotation must not become the empty string.
fn file(path: &Path) -> Result<Option<String>, SecretError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                Err(SecretError {
                    what: format!("{} is empty", path.display()),
                })
            } else {
                Ok(Some(text.to_owned()))
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(SecretError {
            what: format!("cannot read {}: {error}", path.display()),
        }),
    }
}

/// The credentials of `Authorization: Bearer <token>` (RFC 6750), as presented: the scheme
/// matched case-insensitively, as RFC 7235 §2.1 says of every auth-scheme. `None` for
/// another scheme or no `Authorization`. The one reading of a bearer token, for the IdP's
/// (admission) and the operator's (the admin listener).
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
}

/// Whether two byte strings are equal, in a time that does not depend on where they differ
/// (only on their length, which is no secret: digests, MACs).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_whatever_the_scheme_s_case() {
        let with = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(bearer(&with(&format!("{scheme} abc"))), Some("abc"), "{scheme}");
        }
        assert_eq!(bearer(&with("Basic YWJj")), None);
        assert_eq!(bearer(&with("Bearerabc")), None);
        assert_eq!(bearer(&http::HeaderMap::new()), None);
    }

    #[test]
    fn a_checked_secret_matches_its_value_only_whatever_the_length() {
        let secret = Secret::new("the-token");
        assert!(secret.matches(b"the-token"));
        for other in ["", "the-toke", "the-token ", "the-tokeN", "x".repeat(10_000).as_str()] {
            assert!(!secret.matches(other.as_bytes()), "{other:?}");
        }
        assert!(!format!("{secret:?}").contains("the-token"));
    }

    #[test]
    fn a_file_secret_rotates_through_its_next_file_and_reloads() {
        let dir = std::env::temp_dir().join(format!("scimtrail-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("idp-token");
        std::fs::write(&path, "old\n").unwrap();
        let secret = Secret::load(SecretSource::File(path.clone())).unwrap();
        assert!(secret.matches(b"old") && !secret.matches(b"new") && !secret.rotating());

        std::fs::write(dir.join("idp-token.next"), "new").unwrap();
        assert_eq!(secret.reload(), Ok(true));
        assert!(secret.matches(b"old") && secret.matches(b"new") && secret.rotating());
        assert_eq!(&*secret.expose(), "old");

        std::fs::write(&path, "new").unwrap();
        std::fs::remove_file(dir.join("idp-token.next")).unwrap();
        let clone = secret.clone();
        assert_eq!(secret.reload(), Ok(true));
        assert!(
            clone.matches(b"new") && !clone.matches(b"old"),
            "a clone sees the reload"
        );
        assert_eq!(secret.reload(), Ok(false));

        // A file emptied or removed mid-rotation keeps the values in force.
        std::fs::write(&path, "").unwrap();
        assert!(secret.reload().unwrap_err().to_string().contains("is empty"));
        std::fs::remove_file(&path).unwrap();
        assert!(secret.reload().unwrap_err().to_string().contains("does not exist"));
        assert!(secret.matches(b"new"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unset_variable_is_named() {
        let error = Secret::load(SecretSource::Env("SCIMTRAIL_TEST_UNSET_SECRET".into())).unwrap_err();
        assert!(error.to_string().contains("SCIMTRAIL_TEST_UNSET_SECRET is not set"));
    }
}
