//! Fingerprints of credentials, keyed: what the record keeps of a secret header is an HMAC
//! under this installation's key, so whoever reads the store can neither test guesses
//! offline nor link one token across installations. (Records made before hold `sha256:`, an
//! unkeyed SHA-256 prefix: the old scheme, named as such.)
//!
//! The key comes from an environment variable or a file, or — for a SQLite store, when none
//! is given — from a file generated beside the database on first start (0600). The store
//! keeps the key's id (never the key): every instance sharing a store must use the same key,
//! and one whose key differs refuses to start, saying so.

use hmac::{Hmac, Mac};
use scimtrail_store::Store;
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable read for the key when the configuration names none.
pub const KEY_ENV: &str = "SCIMTRAIL_FINGERPRINT_KEY";

/// The fewest bytes a key may have.
const MIN_KEY_BYTES: usize = 16;

/// Where the key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable.
    Env(String),
    /// A file (trailing line breaks ignored).
    File(PathBuf),
    /// A file beside a SQLite store, generated on first start.
    BesideStore(PathBuf),
    /// None can be used: a PostgreSQL store (shared by instances) without a key given.
    Missing,
    /// Given in code (tests).
    Fixed(Vec<u8>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySource {
    /// Where the key comes from, for `check-config` (never the key).
    pub fn describe(&self) -> String {
        match self {
            KeySource::Env(name) => format!("the environment variable {name}"),
            KeySource::File(path) => format!("the file {}", path.display()),
            KeySource::BesideStore(path) if path.exists() => {
                format!("the file {} beside the store", path.display())
            }
            KeySource::BesideStore(path) => format!(
                "the file {} beside the store, generated on first start",
                path.display()
            ),
            KeySource::Missing => format!(
                "none: a PostgreSQL store is shared, give every instance the same key ([store] fingerprint_key_env or fingerprint_key_file, or {KEY_ENV})"
            ),
            KeySource::Fixed(_) => "given in code".to_owned(),
        }
    }

    /// The key, generating the file beside a SQLite store when it is not there yet.
    pub fn load(&self) -> Result<Key, String> {
        let bytes = match self {
            KeySource::Env(name) => std::env::var(name)
                .map_err(|_| format!("the fingerprint key's environment variable {name} is not set"))?
                .into_bytes(),
            KeySource::File(path) => read(path)?,
            KeySource::BesideStore(path) if path.exists() => read(path)?,
            KeySource::BesideStore(path) => generate(path)?,
            KeySource::Missing => return Err(format!("no fingerprint key: {}", self.describe())),
            KeySource::Fixed(bytes) => bytes.clone(),
        };
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the fingerprint key from {} has {} bytes; it needs at least {MIN_KEY_BYTES}",
                self.describe(),
                bytes.len()
            ));
        }
        Ok(Key(Arc::from(bytes)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the fingerprint key {}: {error}", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
}

/// 64 hex digits from the system's random source, written private.
fn generate(path: &Path) -> Result<Vec<u8>, String> {
    let random = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .map(|u| u.simple().to_string())
        .collect::<String>();
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(scimtrail_store::private::FILE_MODE)
        .open(path);
    let mut file = match created {
        Ok(file) => file,
        // Another process sharing the store made it first: theirs is the key.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => return read(path),
        Err(error) => return Err(format!("cannot create the fingerprint key {}: {error}", path.display())),
    };
    file.write_all(format!("{random}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| format!("cannot write the fingerprint key {}: {error}", path.display()))?;
    tracing::info!(path = %path.display(), "Generated the key credentials' fingerprints are made with; keep it with the store.");
    Ok(random.into_bytes())
}

/// The key credentials' fingerprints are made with.
#[derive(Clone)]
pub struct Key(Arc<[u8]>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

impl Key {
    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        // Invariant: HMAC takes a key of any length.
        #[allow(clippy::expect_used)]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// The first `bytes` bytes (at most 32) of a MAC of `parts` under this key, in hex: what
    /// this installation signs for itself (the UI's sessions and CSRF tokens).
    pub(crate) fn mac_hex(&self, parts: &[&[u8]], bytes: usize) -> String {
        hex(&self.mac(parts)[..bytes.min(32)])
    }

    /// The key's id, as the store keeps it: says which key, reveals nothing of it.
    pub fn id(&self) -> String {
        hex(&self.mac(&[b"scimtrail fingerprint key id"])[..8])
    }

    /// `Bearer hmac:1a2b3c4d5e6f`: the scheme (for credentials) and 12 hex digits of the HMAC
    /// of the secret, enough to tell tokens apart and nothing to recover or test them.
    pub fn fingerprint(&self, value: &str) -> String {
        let (scheme, secret) = match value.split_once(' ') {
            Some((scheme, secret))
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                (Some(scheme), secret.trim())
            }
            _ => (None, value),
        };
        let short = hex(&self.mac(&[b"scimtrail credential\0", secret.as_bytes()])[..6]);
        match scheme {
            Some(scheme) => format!("{scheme} hmac:{short}"),
            None => format!("hmac:{short}"),
        }
    }

    /// Makes sure every instance sharing `store` fingerprints with this key: the first one
    /// writes its id; an instance whose key differs is refused, saying so.
    pub async fn agree_with(&self, store: &Store) -> Result<(), String> {
        let id = self.id();
        let agreed = store
            .agree_on("fingerprint_key_id", &id)
            .await
            .map_err(|error| format!("cannot read the store's fingerprint key id: {error}"))?;
        if agreed != id {
            return Err(format!(
                "this store's credential fingerprints are made with the key of id {agreed}, and this instance's key has id {id}: every instance sharing a store needs the same fingerprint key"
            ));
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        KeySource::Fixed(text.as_bytes().to_vec()).load().unwrap()
    }

    #[test]
    fn fingerprints_are_keyed_keep_the_scheme_and_hide_the_secret() {
        let (one, other) = (
            key("an installation's key, 32 bytes!"),
            key("another installation's own key.."),
        );
        let shown = one.fingerprint("Bearer s3cr3t-token");
        assert!(
            shown.starts_with("Bearer hmac:") && shown.len() == "Bearer hmac:".len() + 12,
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"));
        assert_eq!(shown, one.fingerprint("Bearer s3cr3t-token"), "stable");
        assert_ne!(
            shown,
            other.fingerprint("Bearer s3cr3t-token"),
            "not linkable across keys"
        );
        assert_ne!(one.fingerprint("Bearer a"), one.fingerprint("Bearer b"));
        assert!(one.fingerprint("session=abc; other=def").starts_with("hmac:"));
        // Not the unkeyed scheme: the plain SHA-256 of the secret does not show.
        use sha2::Digest;
        let plain = hex(&Sha256::digest(b"s3cr3t-token")[..6]);
        assert!(!shown.contains(&plain));
        assert_ne!(one.id(), other.id());
        assert_eq!(one.id().len(), 16);
    }

    #[test]
    fn a_key_beside_the_store_is_generated_once_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("scimtrail-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scimtrail.db.fingerprint-key");
        let source = KeySource::BesideStore(path.clone());
        assert!(source.describe().contains("generated on first start"));
        let first = source.load().unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            source.load().unwrap().id(),
            first.id(),
            "read again, not generated again"
        );
        assert!(!source.describe().contains("generated"));
        assert!(KeySource::Fixed(b"short".to_vec())
            .load()
            .unwrap_err()
            .contains("at least 16"));
        assert!(KeySource::Missing.load().unwrap_err().contains("PostgreSQL"));
        assert!(KeySource::Env("SCIMTRAIL_TEST_NO_SUCH_KEY".into())
            .load()
            .unwrap_err()
            .contains("not set"));
    }
}
