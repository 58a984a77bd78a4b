//! The `scimtrail` binary refuses to start where a configuration would hand the application's
//! credentials or the whole record to whoever reaches it, starts when the file says so in
//! as many words (and `check-config` warns), and rotates a token on SIGHUP without a restart.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use http::{Method, StatusCode};
use scimtrail_integration::{refapp, Client};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{run, BINARY};

/// A fresh folder for one test's files.
fn folder() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimtrail-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn serve_refuses_what_would_give_credentials_or_records_away() {
    let dir = folder();
    let token = write(&dir, "app-token", "app-secret\n");
    let store = format!("sqlite://{}", dir.join("store.db").display());
    let route = "[[route]]\nname = \"app\"\nupstream = \"http://127.0.0.1:9\"\n";
    let app_auth = format!("upstream_auth = {{ bearer_token_file = \"{token}\" }}\n");
    let cases = [
        (
            format!("{route}{app_auth}"),
            "upstream_auth without an IdP token lets anyone who reaches the listener act with the application's credentials",
        ),
        (
            format!("{route}[route.webhook]\nurl = \"http://hooks.example.com/scim\"\nbearer_token_file = \"{token}\"\n"),
            "a bearer token would cross the network in clear text",
        ),
        (
            format!("[admin]\naddr = \"0.0.0.0:0\"\n{route}"),
            "the admin listener 0.0.0.0:0 is off loopback without a token",
        ),
    ];
    for (index, (text, reason)) in cases.iter().enumerate() {
        let config = write(&dir, &format!("refused-{index}.toml"), text);
        let (started, _, stderr) = run(&[
            "serve",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--store",
            &store,
        ]);
        assert!(!started, "{text}");
        assert!(stderr.contains(reason), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("app-secret"));
        let (valid, _, stderr) = run(&["check-config", "--config", &config]);
        assert!(!valid && stderr.contains(reason), "{stderr}");
    }

    // Said in so many words: accepted, and check-config says what it allows.
    let allowed = write(
        &dir,
        "allowed.toml",
        &format!("[admin]\naddr = \"0.0.0.0:0\"\nallow_unauthenticated = true\n{route}allow_anonymous_idp = true\n{app_auth}"),
    );
    let (valid, stdout, stderr) = run(&["check-config", "--config", &allowed]);
    assert!(valid, "{stderr}");
    assert!(stdout.contains("warning: [admin] allow_unauthenticated"), "{stdout}");
    assert!(stdout.contains("warning: route app: allow_anonymous_idp"), "{stdout}");
    assert!(!stdout.contains("app-secret"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_a_rotated_token_file_without_a_restart() {
    let dir = folder();
    let token = write(&dir, "idp-token", "old-token\n");
    write(&dir, "idp-token.next", "new-token\n");
    let (app, _) = refapp::start().await;
    let config = write(
        &dir,
        "scimtrail.toml",
        &format!(
            "[[route]]\nname = \"app\"\nupstream = \"{}\"\nidp_token_file = \"{token}\"\n",
            app.base_url()
        ),
    );
    let store = format!("sqlite://{}", dir.join("store.db").display());
    let mut child = Command::new(BINARY)
        .args(["serve", "--config", &config, "--store", &store])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("SCIMTRAIL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let addr = scimtrail_integration::process::proxy_address(&mut child).await;
    let client = Client::new(format!("http://{addr}"));
    let status = |bearer: &'static str| {
        let client = client.clone();
        async move {
            client
                .send(Method::GET, "/Users", None, &[("authorization", bearer)])
                .await
                .status
        }
    };
    assert_eq!(status("Bearer old-token").await, StatusCode::OK);
    assert_eq!(status("Bearer new-token").await, StatusCode::OK);
    assert_eq!(status("Bearer neither").await, StatusCode::UNAUTHORIZED);

    // The rotation is done: the new value is current, the next file gone. SIGHUP.
    std::fs::write(&token, "new-token\n").unwrap();
    std::fs::remove_file(dir.join("idp-token.next")).unwrap();
    scimtrail_integration::process::signal(&child, "HUP");
    let mut refused = false;
    for _ in 0..100 {
        if status("Bearer old-token").await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the old token is still accepted after SIGHUP");
    assert_eq!(status("Bearer new-token").await, StatusCode::OK);
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP did not stop the proxy");

    let log = scimtrail_integration::process::stop(child).await;
    assert!(log.contains("SIGHUP: secrets read again"), "{log}");
    assert!(
        !log.contains("old-token") && !log.contains("new-token"),
        "no secret in the log: {log}"
    );
    app.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
