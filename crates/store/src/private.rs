//! The files a store is kept in hold the personal data of everyone an IdP provisions and the
//! fingerprints of credentials: only the user scimtrail runs as may read them, whatever the
//! umask. Files are created 0600, directories 0700. SQLite gives the files it makes beside a
//! database (its WAL and shared memory) the database file's mode, so the database is created
//! here, empty, before SQLite opens it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A private file's mode.
pub const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Options that create a file private (add what to open it for).
pub(crate) fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Creates (or truncates) a private file for writing.
pub fn create(path: &Path) -> io::Result<File> {
    options().write(true).create(true).truncate(true).open(path)
}

/// Creates a directory, and any missing parent, private.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(path)
}

/// An empty private file at `path`, unless one is there.
pub(crate) fn create_if_missing(path: &Path) -> io::Result<()> {
    options().write(true).create(true).truncate(false).open(path).map(drop)
}

/// Copies `from` to `to`, private whatever `from`'s mode.
pub(crate) fn copy(from: &Path, to: &Path) -> io::Result<u64> {
    let copied = std::fs::copy(from, to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(copied)
}

/// `path` with `suffix` added to its name: `scimtrail.db` → `scimtrail.db-wal`, the names of
/// what is kept beside a database.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What a SQLite store at `database` is kept in: the database, its WAL and shared memory, its
/// journal's directory and the records the journal moved aside.
pub fn database_paths(database: &Path) -> Vec<PathBuf> {
    let journal = crate::journal::directory(database);
    vec![
        database.to_path_buf(),
        with_suffix(database, "-wal"),
        with_suffix(database, "-shm"),
        crate::journal::rejected_path(&journal),
        journal,
    ]
}

/// The database file of a `sqlite://FILE` store URL (none for PostgreSQL or in memory).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|file| !file.is_empty() && *file != ":memory:")
        .map(PathBuf::from)
}

/// What the store at `url` (and a PostgreSQL store's spool, in `spool_dir`) is kept in on
/// this machine.
pub fn store_paths(url: &str, spool_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = sqlite_file(url).map(|file| database_paths(&file)).unwrap_or_default();
    paths.extend(spool_dir.map(Path::to_path_buf));
    paths
}

/// Of `paths` (and what the directories among them hold), those others than their owner may
/// read, write or enter, with their modes.
pub fn open_to_others(paths: &[PathBuf]) -> Vec<(PathBuf, u32)> {
    let mut all = Vec::new();
    for path in paths {
        if let Ok(entries) = std::fs::read_dir(path) {
            all.extend(entries.filter_map(|entry| entry.ok().map(|e| e.path())));
        }
        all.push(path.clone());
    }
    all.into_iter()
        .filter_map(|path| {
            let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
            (mode & 0o077 != 0).then_some((path, mode))
        })
        .collect()
}
