//! Configuration from the environment, as a container is given it: one precedence for every
//! setting — flags > environment > file > defaults — and `check-config` saying where each
//! resolved value came from.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::Command;

mod common;

use common::BINARY;

/// `check-config` with these variables (and nothing else of the caller's SCIMTRAIL_*).
fn check_config(args: &[&str], vars: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(BINARY);
    command.arg("check-config").args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SCIMTRAIL_")) {
        command.env_remove(name);
    }
    command.env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY);
    command.envs(vars.iter().copied());
    let output = command.output().expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn flags_over_environment_over_file_over_defaults() {
    let dir = std::env::temp_dir().join(format!("scimtrail-env-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("scimtrail.toml");
    std::fs::write(
        &config,
        "[listen]\naddr = \"127.0.0.1:7001\"\n[log]\nformat = \"json\"\n[[route]]\nname = \"app\"\nidp = \"okta\"\nupstream = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let alias_store = format!("sqlite://{}", dir.join("alias.db").display());
    let config_text = config.display().to_string();
    let vars = [
        ("SCIMTRAIL_CONFIG", config_text.as_str()),
        ("SCIMTRAIL_LISTEN", "127.0.0.1:7002"),
        ("SCIMTRAIL_DATABASE_URL", alias_store.as_str()),
        ("SCIMTRAIL_INSTANCE", "scimtrail-1"),
    ];
    let (ok, out, err) = check_config(&[], &vars);
    assert!(ok, "{err}");
    for expected in [
        "listen = 127.0.0.1:7002",
        "instance = scimtrail-1",
        &format!("store = {alias_store}"),
        "SCIMTRAIL_CONFIG         the environment (SCIMTRAIL_CONFIG)",
        "SCIMTRAIL_LISTEN         the environment (SCIMTRAIL_LISTEN)",
        "SCIMTRAIL_ADMIN_LISTEN   the default",
        "SCIMTRAIL_STORE_URL      the environment (SCIMTRAIL_DATABASE_URL)",
        "SCIMTRAIL_LOG_FORMAT     the file ([log] format)",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }

    // The file alone; a flag over the environment; the name over its alias.
    let (ok, out, err) = check_config(&["--config", &config_text], &[("SCIMTRAIL_CONFIG", "/nowhere.toml")]);
    assert!(ok, "{err}");
    assert!(out.contains("listen = 127.0.0.1:7001"), "{out}");
    assert!(out.contains("SCIMTRAIL_CONFIG         the flag --config"), "{out}");
    assert!(
        out.contains("SCIMTRAIL_LISTEN         the file ([listen] addr)"),
        "{out}"
    );
    let new_store = format!("sqlite://{}", dir.join("new.db").display());
    let (ok, out, _) = check_config(
        &[],
        &[
            ("SCIMTRAIL_CONFIG", config_text.as_str()),
            ("SCIMTRAIL_DATABASE_URL", alias_store.as_str()),
            ("SCIMTRAIL_STORE_URL", new_store.as_str()),
        ],
    );
    assert!(ok && out.contains(&format!("store = {new_store}")), "{out}");

    let (ok, _, err) = check_config(&[], &[]);
    assert!(!ok && err.contains("SCIMTRAIL_CONFIG"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
