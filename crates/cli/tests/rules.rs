//! The operator's own rule files through the binary: `scimtrail rules test DIR` (a line per
//! case, a failure's diff, the exit code), `scimtrail idps` (every profile, where it came
//! from), `check-config` (the profiles it loaded, or why not), and `serve` reading them again
//! on SIGHUP — all or nothing, each exchange recording the version of the rules it ran.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use scimtrail_integration::{refapp, Client};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::BINARY;

/// The operator's profile the tests share (`tests/fixtures/rules/acme-okta.toml`).
const ACME: &str = include_str!("../../../tests/fixtures/rules/acme-okta.toml");

/// A fresh folder holding `acme-okta.toml`, and `extra` files (name, text).
fn rules_dir(extra: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimtrail-cli-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("acme-okta.toml"), ACME).unwrap();
    for (name, text) in extra {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// Runs the binary to its end, without the caller's SCIMTRAIL_ settings: (success, stdout,
/// stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .env_remove("SCIMTRAIL_RULES_DIR")
        .env_remove("SCIMTRAIL_CONFIG")
        .env("SCIMTRAIL_LOG", "warn")
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn rules_test_runs_every_case_of_a_directory_and_fails_on_a_failing_case_with_its_diff() {
    let dir = rules_dir(&[]);
    let (passed, stdout, stderr) = run(&["rules", "test", &text(&dir)]);
    assert!(passed, "{stdout}{stderr}");
    assert!(
        stdout.contains("ok    acme-okta / a null title is dropped from a create\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    acme-okta / a paged list is forwarded without a sortBy\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("\n2 passed, 0 failed\n"), "{stdout}");

    // A case that does not hold: its diff, and a non-zero exit with one line on stderr.
    let wrong = ACME.replace(
        r#"expect_body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen"}'"#,
        r#"expect_body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen","title":null}'"#,
    );
    assert_ne!(wrong, ACME);
    std::fs::write(dir.join("acme-okta.toml"), &wrong).unwrap();
    let (passed, stdout, stderr) = run(&["rules", "test", &text(&dir)]);
    assert!(!passed);
    let file = text(&dir.join("acme-okta.toml"));
    assert!(
        stdout.contains(&format!(
            "FAIL  acme-okta / a null title is dropped from a create ({file})\n      forwarded body differs:\n        got      {{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"bjensen\"}}\n        expected {{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"bjensen\",\"title\":null}}\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    acme-okta / a paged list is forwarded without a sortBy"),
        "{stdout}"
    );
    assert!(stdout.ends_with("\n1 passed, 1 failed\n"), "{stdout}");
    assert_eq!(stderr.trim(), "scimtrail: 1 rule test(s) or file(s) failed");

    // A file that cannot be loaded fails too, naming itself and why; the others still run.
    std::fs::write(dir.join("acme-okta.toml"), ACME).unwrap();
    let cycle =
        |name: &str, base: &str| format!("[profile]\nname = \"{name}\"\ndescription = \"d\"\nextends = \"{base}\"\n");
    std::fs::write(dir.join("a.toml"), cycle("a", "b")).unwrap();
    std::fs::write(dir.join("b.toml"), cycle("b", "a")).unwrap();
    let (passed, stdout, _) = run(&["rules", "test", &text(&dir)]);
    assert!(!passed);
    let a = text(&dir.join("a.toml"));
    let b = text(&dir.join("b.toml"));
    assert!(
        stdout.contains(&format!(
            "FAIL  rule file {a}: extends in a cycle: a ({a}) extends b ({b}) extends a\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    acme-okta / a null title is dropped from a create"),
        "{stdout}"
    );
    assert!(stdout.ends_with("\n2 passed, 2 failed\n"), "{stdout}");

    // One file given alone is resolved against the bundled profiles.
    let (passed, stdout, _) = run(&["rules", "test", &text(&dir.join("acme-okta.toml"))]);
    assert!(passed && stdout.ends_with("\n2 passed, 0 failed\n"), "{stdout}");
    // None: the bundled profiles' cases.
    let (passed, stdout, _) = run(&["rules", "test"]);
    assert!(passed && stdout.contains("ok    okta / "), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn idps_lists_every_profile_with_where_it_came_from_and_what_an_extension_changed() {
    let dir = rules_dir(&[]);
    let (listed, bundled_only, stderr) = run(&["idps"]);
    assert!(listed, "{stderr}");
    assert!(bundled_only.contains("okta (bundled, rules_version "), "{bundled_only}");
    assert!(!bundled_only.contains("acme-okta"));
    assert!(
        bundled_only.contains("(bundled profiles only: --rules-dir DIR"),
        "{bundled_only}"
    );

    let (listed, stdout, stderr) = run(&["idps", "--rules-dir", &text(&dir)]);
    assert!(listed, "{stderr}");
    let heading = format!(
        "acme-okta ({}, extends okta, rules_version ",
        text(&dir.join("acme-okta.toml"))
    );
    let section = &stdout[stdout.find(&heading).expect(&stdout)..];
    assert!(
        section.contains("\n  N14  strip_read_only "),
        "inherited, unmarked: {section}"
    );
    assert!(
        section.contains("\n+ N15  drop_nulls                       Acme's application refuses null attributes"),
        "added: {section}"
    );
    assert!(
        section
            .contains("\n- R5   (disabled)                       Acme's application pages in a stable order by itself"),
        "disabled: {section}"
    );
    // The same through a configuration's [rules] dir.
    let config = dir.join("scimtrail.conf");
    std::fs::write(
        &config,
        format!(
            "[rules]\ndir = \"{}\"\n[[route]]\nname = \"a\"\nidp = \"acme-okta\"\nupstream = \"http://127.0.0.1:9\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let (listed, through_config, _) = run(&["idps", "--config", &text(&config)]);
    assert!(listed && through_config == stdout, "{through_config}");

    // check-config lists what it loaded, and refuses a directory with a broken file by name.
    let (valid, described, stderr) = run(&["check-config", "--config", &text(&config)]);
    assert!(valid, "{stderr}");
    assert!(
        described.contains(&format!(
            "rules = {}: 1 operator profiles beside the 7 bundled ones, read again on SIGHUP\n  profile acme-okta ({}): extends okta, rules_version ",
            dir.display(),
            dir.join("acme-okta.toml").display()
        )),
        "{described}"
    );
    assert!(described.contains("disables R5, 2 test cases passed\n"), "{described}");
    assert!(
        described.contains("SCIMTRAIL_RULES_DIR      the file ([rules] dir)"),
        "{described}"
    );
    std::fs::write(dir.join("broken.toml"), "[profile]\nname = \"broken\"\n").unwrap();
    let (valid, _, stderr) = run(&["check-config", "--config", &text(&config)]);
    assert!(!valid);
    assert!(
        stderr.contains(&format!(
            "rule file {}: TOML parse error",
            dir.join("broken.toml").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("missing field `description`"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let (listed, _, stderr) = run(&["idps", "--config", &text(&config)]);
    assert!(!listed && stderr.contains("broken.toml"), "{stderr}");
    // A failing case refuses it too, its diff on the one line.
    std::fs::remove_file(dir.join("broken.toml")).unwrap();
    std::fs::write(
        dir.join("acme-okta.toml"),
        ACME.replace("\"title\":null}'", "\"title\":\"x\"}'"),
    )
    .unwrap();
    let (valid, _, stderr) = run(&["check-config", "--config", &text(&config)]);
    assert!(!valid);
    assert!(
        stderr.contains(&format!(
            "rule file {}: profile acme-okta: case \"a null title is dropped from a create\" failed: forwarded body differs: got      {{",
            dir.join("acme-okta.toml").display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The exchange `id` as `scimtrail exchanges show --json` prints it (`text`: as it prints it
/// without), once in the database: `serve` journals it first, and its applier commits it to
/// SQLite within moments.
fn show_as(id: &str, store: &str, json: bool) -> String {
    let mut args = vec!["exchanges", "show", id, "--store", store];
    if json {
        args.push("--json");
    }
    let mut last = String::new();
    for _ in 0..100 {
        let (shown, stdout, stderr) = run(&args);
        if shown {
            return stdout;
        }
        last = stderr;
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("exchange {id} is not in the store: {last}");
}

fn show(id: &str, store: &str) -> Value {
    serde_json::from_str(&show_as(id, store, true)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_rules_whole_or_keeps_them_and_says_why() {
    let dir = rules_dir(&[]);
    let (app, _) = refapp::start().await;
    let config = dir.join("scimtrail.conf");
    std::fs::write(
        &config,
        format!(
            "[rules]\ndir = \"{}\"\n[[route]]\nname = \"app\"\nidp = \"acme-okta\"\nupstream = \"{}\"\n",
            dir.display(),
            app.base_url()
        ),
    )
    .unwrap();
    let store = format!("sqlite://{}", dir.join("store.db").display());
    let mut child = Command::new(BINARY)
        .args(["serve", "--config", &text(&config), "--store", &store])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env_remove("SCIMTRAIL_RULES_DIR")
        .env("SCIMTRAIL_LOG", "info")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let addr = scimtrail_integration::process::proxy_address(&mut child).await;
    let client = Client::new(format!("http://{addr}"));
    let version_of = |id: &str| show(id, &store)["rules_version"].as_str().unwrap().to_owned();
    let mut n = 0;
    let mut create = || {
        n += 1;
        let client = client.clone();
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{n}"), "title": null});
        async move {
            let created = client.post("/Users", &body).await;
            assert_eq!(created.status, 201, "{:?}", created.body);
            created.header("scimtrail-exchange-id").unwrap().to_owned()
        }
    };
    let first = create().await;
    let v1 = version_of(&first);
    assert_eq!(show(&first, &store)["changes"][0]["rule"], "N15");

    // A changed file: SIGHUP puts it in force for the next exchanges.
    let changed = ACME.replacen(
        "[[test]]",
        "[[rule]]\nid = \"R14\"\ndisable = true\nwhy = \"no dates here\"\n\n[[test]]",
        1,
    );
    std::fs::write(dir.join("acme-okta.toml"), changed).unwrap();
    scimtrail_integration::process::signal(&child, "HUP");
    let mut v2 = v1.clone();
    for _ in 0..100 {
        v2 = version_of(&create().await);
        if v2 != v1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(v2, v1, "SIGHUP did not reload the rules");
    let shown = show_as(&create().await, &store, false);
    assert!(shown.contains(&format!("rules      version {v2}\n")), "{shown}");

    // A broken file: the rules in force stay, and the log says which file and why.
    std::fs::write(dir.join("acme-okta.toml"), "[profile]\nname = \"acme-okta\"\n").unwrap();
    scimtrail_integration::process::signal(&child, "HUP");
    let mut audited = false;
    for _ in 0..100 {
        let (_, audit, _) = run(&["audit", "list", "--store", &store, "--json"]);
        if audit.contains("\"kept\"") {
            audited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(audited, "the refused reload is audited");
    assert_eq!(version_of(&create().await), v2, "the rules in force stayed");
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP did not stop the proxy");

    let log = scimtrail_integration::process::stop(child).await;
    let file = text(&dir.join("acme-okta.toml"));
    assert!(
        log.contains(&format!(
            "profile acme-okta ({file}): changed, rules_version {v1} -> {v2}"
        )),
        "{log}"
    );
    assert!(log.contains("Rules not reloaded; the profiles in force stay."), "{log}");
    assert!(log.contains(&format!("rule file {file}: TOML parse error")), "{log}");
    app.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
