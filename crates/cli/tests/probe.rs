//! `scimtrail probe` as an operator runs it, over real HTTP on loopback: against the strict
//! reference application, against fronts that bend its answers, and against scim2-server
//! (when installed); the keys each one yields, the evidence, no token in anything it prints
//! or writes, nothing left behind. And what the block is for: a bundled scenario that does
//! not reach its intended state through scimtrail with the default target does with the
//! probed one.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::App;
use scimtrail_demo::play::{check, play, Http};
use scimtrail_integration::misbehave::{self, Misbehaviour};
use scimtrail_integration::proxy;
use std::process::Command;

const TOKEN: &str = "probe-test-token-7f3a9c";

/// What one probe run printed and wrote.
struct Probed {
    ok: bool,
    stdout: String,
    stderr: String,
    block: String,
}

impl Probed {
    fn has(&self, line: &str) -> bool {
        self.block.lines().any(|l| l == line)
    }

    fn assert_keys(&self, lines: &[&str]) {
        for line in lines {
            assert!(
                self.has(line),
                "no `{line}` in the block:\n{}\n{}",
                self.block,
                self.stdout
            );
        }
    }
}

/// `scimtrail probe --upstream URL --token-env … --out FILE --i-understand-this-writes`.
async fn probe(upstream: String) -> Probed {
    tokio::task::spawn_blocking(move || {
        let out = std::env::temp_dir().join(format!("scimtrail-probe-{}.toml", uuid::Uuid::new_v4()));
        let output = Command::new(common::BINARY)
            .args([
                "probe",
                "--upstream",
                &upstream,
                "--token-env",
                "PROBE_TEST_TOKEN",
                "--out",
            ])
            .arg(&out)
            .arg("--i-understand-this-writes")
            .env("PROBE_TEST_TOKEN", TOKEN)
            .env("SCIMTRAIL_LOG", "warn")
            .output()
            .expect("the binary runs");
        let block = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        let probed = Probed {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            block,
        };
        for text in [&probed.stdout, &probed.stderr, &probed.block] {
            assert!(!text.contains(TOKEN), "the token was printed or written:\n{text}");
        }
        probed
    })
    .await
    .unwrap()
}

/// The users and groups whose names start with the probe's prefix, read directly.
async fn probe_leftovers(app: &scimtrail_integration::Client) -> Vec<String> {
    let mut left = Vec::new();
    for (endpoint, attribute) in [("Users", "userName"), ("Groups", "displayName")] {
        let listed = app.get(&format!("/{endpoint}?count=1000")).await;
        for resource in listed.body["Resources"].as_array().into_iter().flatten() {
            let name = resource[attribute].as_str().unwrap_or_default();
            if name.to_ascii_lowercase().starts_with("scimtrail-probe-") {
                left.push(format!("{endpoint}/{name}"));
            }
        }
    }
    left
}

#[test]
fn probe_refuses_to_run_without_saying_it_may_write() {
    let (ok, stdout, stderr) = common::run(&["probe", "--upstream", "http://127.0.0.1:9"]);
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("--i-understand-this-writes"), "{stderr}");
    assert!(stderr.contains("scimtrail-probe-*"), "{stderr}");
    for (args, said) in [
        (
            vec!["--upstream", "https://u:p@127.0.0.1:9", "--i-understand-this-writes"],
            "must not carry credentials",
        ),
        (
            vec![
                "--upstream",
                "http://127.0.0.1:9",
                "--token-env",
                "SCIMTRAIL_PROBE_UNSET_VAR",
                "--i-understand-this-writes",
            ],
            "SCIMTRAIL_PROBE_UNSET_VAR: the variable is not set",
        ),
    ] {
        let (ok, _, stderr) = common::run(&[&["probe"][..], &args].concat());
        assert!(!ok);
        assert!(stderr.contains(said), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_pins_the_strict_reference_application_and_leaves_nothing() {
    let app = App::start().await;
    let probed = probe(app.base_url()).await;
    assert!(probed.ok, "{}\n{}", probed.stdout, probed.stderr);
    probed.assert_keys(&[
        "content_type = \"application/scim+json\"",
        "patch = true",
        "put = true",
        "value_path_filters = true",
        "empty_members_replace = true",
        "member_type_required = false",
        "strict_booleans = true",
        "user_name_case_exact = false",
        "filter_attributes = []",
        "filter_operators = []",
        "max_results = 1000",
        "sorting = true",
        "bulk = true",
        "max_bulk_operations = 1000",
        "max_bulk_payload_bytes = 1048576",
    ]);
    // Each key under the probe that decided it; the evidence in the report.
    assert!(probed
        .block
        .contains("# bulk: bulk.supported: true, a bulk create succeeded\nbulk = true"));
    assert!(probed.stdout.contains("POST /Bulk → 200"), "{}", probed.stdout);
    assert!(probed.stdout.contains("a stale If-Match is refused 412"));
    assert!(probed.stdout.contains("a deactivated user reads back active: false"));
    assert!(!probed.stdout.contains("WARNING"), "{}", probed.stdout);
    assert!(probed.stdout.contains("clean-up:"));
    assert_eq!(probe_leftovers(&app.client()).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_pins_what_misbehaving_applications_show() {
    // (misbehaviour, lines the block must hold, a finding the report must show)
    let cases: [(Misbehaviour, &[&str], &str); 4] = [
        (
            Misbehaviour::JsonOnly,
            &["content_type = \"application/json\"", "patch = true"],
            "application/scim+json refused, application/json accepted",
        ),
        (
            Misbehaviour::NoPatch,
            &["patch = false", "put = true"],
            "PATCH is refused",
        ),
        (
            Misbehaviour::IgnoreActive,
            &["strict_booleans = true"],
            "WARNING: a deactivated user reads back active",
        ),
        (
            Misbehaviour::IgnoreFilters,
            &["filter_attributes = [\"id\"]", "filter_operators = [\"eq\"]"],
            "eq answered wrong on every attribute asked",
        ),
    ];
    for (misbehaviour, lines, finding) in cases {
        let app = App::start().await;
        let front = misbehave::start(app.base_url(), misbehaviour).await;
        let probed = probe(format!("http://{front}")).await;
        assert!(probed.ok, "{misbehaviour:?}: {}\n{}", probed.stdout, probed.stderr);
        probed.assert_keys(lines);
        assert!(
            probed.stdout.contains(finding),
            "{misbehaviour:?}: no {finding:?} in\n{}",
            probed.stdout
        );
        assert_eq!(
            probe_leftovers(&app.client()).await,
            Vec::<String>::new(),
            "{misbehaviour:?}"
        );
    }
}

/// The acceptance of the probe: behind an application that takes only `application/json`,
/// Okta's lifecycle through scimtrail with the default target is refused and misses its
/// intended state; with the target the probe wrote, the same lifecycle reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probed_target_makes_a_bundled_scenario_reach_its_intended_state() {
    let scenario = scimtrail_demo::scenario::bundled()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "okta")
        .unwrap();
    let probed_app = App::start().await;
    let probed_front = misbehave::start(probed_app.base_url(), Misbehaviour::JsonOnly).await;
    let probed = probe(format!("http://{probed_front}")).await;
    assert!(probed.ok, "{}\n{}", probed.stdout, probed.stderr);
    let http = Http::default();
    let mut reached = Vec::new();
    for block in ["", probed.block.as_str()] {
        let app = App::start().await;
        let direct = app.base_url();
        let front = misbehave::start(direct.clone(), Misbehaviour::JsonOnly).await;
        let store_url = proxy::fresh_store_urls().await.remove(0);
        let config = format!(
            "[[route]]\nname = \"okta\"\npath_prefix = \"/okta\"\nidp = \"okta\"\nupstream = \"http://{front}\"\n{block}"
        );
        let scimtrail = proxy::start(&config, &store_url).await;
        let base = format!("http://{}/okta", scimtrail.running.proxy_addr);
        let (steps, saved) = play(&http, &base, &scenario).await.unwrap();
        let checks = check(&http, &direct, &scenario, &saved).await.unwrap();
        let refused = steps.iter().filter(|s| s.answer.status >= 400).count();
        reached.push((checks.iter().all(|c| c.mismatch.is_none()), refused));
        scimtrail.running.shutdown().await;
    }
    let (default, pinned) = (reached[0], reached[1]);
    assert!(
        !default.0 && default.1 > 0,
        "the default target should fail: {default:?}"
    );
    assert_eq!(pinned, (true, 0), "the probed target should reach the intended state");
}

/// scim2-server (PyPI), a third-party strict server: what the probe pins for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_pins_scim2_server() {
    let Ok(command) = std::env::var("SCIMTRAIL_TEST_SCIM2_SERVER") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set SCIMTRAIL_TEST_SCIM2_SERVER (.ci/run does)"
        );
        eprintln!(
            "skipped: SCIMTRAIL_TEST_SCIM2_SERVER is not set (scim2-server is not installed here; .ci/run installs it)"
        );
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(&command)
        .args([
            "--hostname",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--tenant",
            "probe",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let base = format!("http://127.0.0.1:{port}/probe");
    let http = Http::default();
    let mut up = false;
    for _ in 0..100 {
        if http
            .send("GET", &format!("{base}/ServiceProviderConfig"), &[], None)
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "scim2-server did not start");
    let probed = probe(base.clone()).await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(probed.ok, "{}\n{}", probed.stdout, probed.stderr);
    eprintln!("{}", probed.block);
    probed.assert_keys(&[
        "content_type = \"application/scim+json\"",
        "patch = true",
        "put = true",
        "user_name_case_exact = false",
        // Where it differs from the reference application.
        "strict_booleans = false",
    ]);
    assert!(
        probed.stdout.contains("a successful PATCH is answered 204"),
        "{}",
        probed.stdout
    );
    assert!(
        probed.stdout.contains("\"op\":\"Replace\" is accepted"),
        "{}",
        probed.stdout
    );
}
