//! The operator's own rule files (`[rules] dir`, `SCIMTRAIL_RULES_DIR`): read at start, by
//! `check-config`, by `scimtrail rules test DIR` and `scimtrail idps`, and again on SIGHUP.
//!
//! Every `*.toml` file of the directory, by name (files whose name begins with `.` are not
//! read: editors' and Kubernetes' own; symbolic links are followed, as a ConfigMap mounts its
//! files), at most [`MAX_FILES`] of them and [`MAX_FILE_BYTES`] each. What they mean is
//! `scimtrail_rules::Catalog`'s to decide; this is only the reading.

use scimtrail_rules::{Catalog, LoadError, RuleSource};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most rule files a directory may hold.
pub const MAX_FILES: usize = 256;

/// The largest rule file: the largest bundled one is under 40 KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a rules directory was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesDirError {
    /// The directory, or one of its files, could not be read.
    #[error("[rules] dir {path}: {detail}")]
    Read {
        /// The directory or file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The files were read, and refused: each reason names its file.
    #[error("[rules] dir {dir}: {error}")]
    Refused {
        /// The directory.
        dir: String,
        /// Every reason.
        error: LoadError,
    },
}

fn unreadable(path: &Path, detail: impl std::fmt::Display) -> RulesDirError {
    RulesDirError::Read {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

/// The rule files of `dir`, sorted by name, within the bounds.
pub fn read(dir: &Path) -> Result<Vec<RuleSource>, RulesDirError> {
    let entries = std::fs::read_dir(dir).map_err(|error| unreadable(dir, error))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|error| unreadable(dir, error))?.path();
        let Some(name) = path.file_name() else { continue };
        let Some(name) = name.to_str() else {
            return Err(unreadable(&path, "a file name that is not UTF-8"));
        };
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        paths.push(path);
        if paths.len() > MAX_FILES {
            return Err(unreadable(
                dir,
                format!("more than {MAX_FILES} rule files (*.toml): keep the profiles routes use"),
            ));
        }
    }
    paths.sort();
    paths.iter().map(|path| read_file(path)).collect()
}

/// One rule file, within [`MAX_FILE_BYTES`] (even one that grows while it is read).
pub fn read_file(path: &Path) -> Result<RuleSource, RulesDirError> {
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(path, error))?;
    if !metadata.is_file() {
        return Err(unreadable(path, "not a regular file"));
    }
    let file = std::fs::File::open(path).map_err(|error| unreadable(path, error))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| unreadable(path, error))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(unreadable(
            path,
            format!("larger than {MAX_FILE_BYTES} bytes, the most a rule file may be"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|error| unreadable(path, format!("not UTF-8 text: {error}")))?;
    Ok(RuleSource {
        path: path.display().to_string(),
        text,
    })
}

/// The bundled profiles and those of `dir`, every file resolved and its cases holding: all
/// of them, or why not (every reason, each naming its file).
pub fn load(dir: &Path) -> Result<Catalog, RulesDirError> {
    let sources = read(dir)?;
    Catalog::load(&sources).map_err(|error| RulesDirError::Refused {
        dir: dir.display().to_string(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scimtrail-rules-dir-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const ACME: &str = "[profile]\nname = \"acme\"\ndescription = \"d\"\nextends = \"okta\"\n";

    #[test]
    fn toml_files_are_read_by_name_and_the_rest_left_alone() {
        let dir = folder();
        std::fs::write(dir.join("zeta.toml"), ACME.replace("acme", "zeta")).unwrap();
        std::fs::write(dir.join("acme.toml"), ACME).unwrap();
        std::fs::write(dir.join("README.md"), "not a rule file").unwrap();
        std::fs::write(dir.join(".acme.toml.swp"), "an editor's").unwrap();
        std::fs::write(dir.join(".hidden.toml"), "not read").unwrap();
        std::os::unix::fs::symlink(dir.join("acme.toml"), dir.join("linked.toml")).unwrap();
        let names: Vec<String> = read(&dir)
            .unwrap()
            .into_iter()
            .map(|s| Path::new(&s.path).file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["acme.toml", "linked.toml", "zeta.toml"]);
        // The link's profile is named acme, not linked: refused, naming the file.
        let error = load(&dir).unwrap_err().to_string();
        assert!(error.contains("linked.toml: [profile] name is \"acme\""), "{error}");
        std::fs::remove_file(dir.join("linked.toml")).unwrap();
        let catalog = load(&dir).unwrap();
        assert_eq!(
            catalog.operators().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["acme", "zeta"]
        );
    }

    #[test]
    fn a_directory_past_its_bounds_is_refused_saying_which_bound() {
        let missing = std::env::temp_dir().join(format!("scimtrail-no-such-{}", uuid::Uuid::new_v4()));
        let error = read(&missing).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("[rules] dir {}: ", missing.display())),
            "{error}"
        );

        let dir = folder();
        std::fs::write(dir.join("big.toml"), "#".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        let error = read(&dir).unwrap_err().to_string();
        assert!(error.contains("big.toml: larger than 1048576 bytes"), "{error}");
        std::fs::remove_file(dir.join("big.toml")).unwrap();

        std::fs::create_dir(dir.join("sub.toml")).unwrap();
        assert!(read(&dir)
            .unwrap_err()
            .to_string()
            .contains("sub.toml: not a regular file"));
        std::fs::remove_dir(dir.join("sub.toml")).unwrap();

        std::fs::write(dir.join("latin1.toml"), b"# caf\xe9\n").unwrap();
        assert!(read(&dir)
            .unwrap_err()
            .to_string()
            .contains("latin1.toml: not UTF-8 text"));
        std::fs::remove_file(dir.join("latin1.toml")).unwrap();

        for n in 0..=MAX_FILES {
            std::fs::write(dir.join(format!("p{n:03}.toml")), "").unwrap();
        }
        let error = read(&dir).unwrap_err().to_string();
        assert!(error.contains("more than 256 rule files"), "{error}");
    }
}
