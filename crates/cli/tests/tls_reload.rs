//! `scimtrail serve` with TLS on the IdP side, its certificate renewed on disk and read again
//! on SIGHUP: new connections get the new certificate, and a connection open across the reload
//! keeps working.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use http::StatusCode;
use scimtrail_integration::guarded::private_ca;
use scimtrail_integration::refapp;
use scimtrail_integration::tls_client::{first_certificate, TlsConnection};
use std::process::{Command, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_scimtrail");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_listener_certificate_without_dropping_open_connections() {
    let (app, _) = refapp::start().await;
    let dir = std::env::temp_dir().join(format!("scimtrail-tls-reload-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let install = |name: &str| {
        std::fs::copy(private_ca(&format!("{name}.crt")), &cert).unwrap();
        std::fs::copy(private_ca(&format!("{name}.key")), &key).unwrap();
    };
    install("server-a");
    let config = dir.join("scimtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nready_grace_secs = 0\ntls = {{ cert_path = \"{}\", key_path = \"{}\" }}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let store = format!("sqlite://{}", dir.join("store.db").display());
    let mut child = Command::new(BINARY)
        .args([
            "serve",
            "--config",
            &config.display().to_string(),
            "--upstream",
            &app.base_url(),
        ])
        .args([
            "--store",
            &store,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("SCIMTRAIL_LOG_LEVEL", "info")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let (proxy, _) = scimtrail_integration::process::addresses(&mut child).await;
    let addr = proxy.parse().unwrap();
    let ca = private_ca("ca.crt");

    let mut open = TlsConnection::open(addr, &ca).await;
    assert_eq!(open.server_certificate, first_certificate(&private_ca("server-a.crt")));
    assert_eq!(open.get("/Users").await, Ok(StatusCode::OK));

    // The certificate is renewed on disk, and the proxy told.
    install("server-b");
    scimtrail_integration::process::signal(&child, "HUP");
    let renewed = first_certificate(&private_ca("server-b.crt"));
    let mut served = None;
    for _ in 0..100 {
        let fresh = TlsConnection::open(addr, &ca).await;
        if fresh.server_certificate == renewed {
            served = Some(fresh);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut fresh = served.expect("new connections get the renewed certificate after SIGHUP");
    assert_eq!(fresh.get("/Users").await, Ok(StatusCode::OK));
    // The connection opened before the reload was not dropped.
    assert_eq!(open.get("/Users").await, Ok(StatusCode::OK));

    // A broken renewal (a key that is not the certificate's) keeps the renewed one in force.
    std::fs::copy(private_ca("server-a.key"), &key).unwrap();
    scimtrail_integration::process::signal(&child, "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_broken = TlsConnection::open(addr, &ca).await;
    assert_eq!(after_broken.server_certificate, renewed);

    let log = scimtrail_integration::process::stop(child).await;
    assert!(log.contains("Listener certificate reloaded: changed"), "{log}");
    assert!(
        log.contains("do not work together"),
        "the broken renewal is logged: {log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    app.shutdown().await;
}
