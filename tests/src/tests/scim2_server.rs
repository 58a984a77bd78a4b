//! The bundled IdP lifecycles against a third-party strict SCIM server: `scim2-server` from
//! PyPI, started on loopback with two tenants (one played directly, one through scimtrail).
//! Runs when `SCIMTRAIL_TEST_SCIM2_SERVER` names its command; `.ci/run` installs it in a venv
//! and sets it.

use scimtrail_demo::play::Http;
use scimtrail_demo::{compare, demo_config, scenario, DemoOptions};
use scimtrail_integration::proxy;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_idp_lifecycle_against_scim2_server() {
    let Ok(command) = std::env::var("SCIMTRAIL_TEST_SCIM2_SERVER") else {
        // CI must run it; a developer's machine may not have scim2-server.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set SCIMTRAIL_TEST_SCIM2_SERVER (.ci/run does)"
        );
        eprintln!("SCIMTRAIL_TEST_SCIM2_SERVER is not set: scim2-server is not installed here (.ci/run installs it)");
        return;
    };
    let port = free_port();
    let _server = Server(
        Command::new(&command)
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--tenant", "direct", "--tenant", "proxied"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command}: {error}")),
    );
    let http = Http::default();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if http
            .send("GET", &format!("{base}/direct/ServiceProviderConfig"), &[], None)
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "scim2-server did not start on port {port}");

    let (direct_app, proxied_app) = (format!("{base}/direct"), format!("{base}/proxied"));
    let scenarios = scenario::bundled().unwrap();
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let options = DemoOptions {
        store_url: store_url.clone(),
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
    };
    let proxy = proxy::start(&demo_config(&scenarios, &options, &proxied_app, None), &store_url).await;
    let mut failures = Vec::new();
    for scenario in &scenarios {
        let through = format!("http://{}/{}", proxy.running.proxy_addr, scenario.name);
        let comparison = compare(&http, scenario, &direct_app, &through, &proxied_app)
            .await
            .unwrap();
        let (d, p) = (&comparison.direct, &comparison.proxied);
        eprintln!(
            "scim2-server {:<11} directly {}/{} checks, {} refused; through scimtrail {}/{} checks, {} refused",
            scenario.name,
            d.holding(),
            d.checks.len(),
            d.refused().len(),
            p.holding(),
            p.checks.len(),
            p.refused().len()
        );
        for exchange in proxy
            .exchanges_of(&scenario.name)
            .await
            .iter()
            .filter(|e| e.findings != serde_json::json!([]))
        {
            failures.push(format!(
                "{}: finding on {} {}: {}",
                scenario.name, exchange.method, exchange.path, exchange.findings
            ));
        }
        for check in p.checks.iter().filter(|c| c.mismatch.is_some()) {
            failures.push(format!(
                "{}: {}: {}",
                scenario.name,
                check.what,
                check.mismatch.as_deref().unwrap_or_default()
            ));
        }
        for step in p.refused() {
            failures.push(format!(
                "{}: {} → {} {}",
                scenario.name, step.name, step.answer.status, step.answer.body
            ));
        }
    }
    proxy.running.shutdown().await;
    assert!(
        failures.is_empty(),
        "through scimtrail to scim2-server:\n{}",
        failures.join("\n")
    );
}
