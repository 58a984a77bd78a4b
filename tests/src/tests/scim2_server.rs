//! The bundled IdP lifecycles against a third-party strict SCIM server: `scim2-server` from
//! PyPI, started on loopback with two tenants (one played directly, one through scimtrail).
//! Runs when `SCIMTRAIL_TEST_SCIM2_SERVER` names its command; `.ci/run` installs it in a venv
//! and sets it.

use http::StatusCode;
use scimtrail_demo::play::Http;
use scimtrail_demo::{compare, demo_config, scenario, DemoOptions};
use scimtrail_integration::{proxy, Client};
use serde_json::{json, Value};
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

/// scim2-server on a free loopback port with these tenants, and its base URL; `None` (said,
/// and refused under CI) when `SCIMTRAIL_TEST_SCIM2_SERVER` does not name its command.
async fn start_scim2_server(tenants: &[&str]) -> Option<(Server, String)> {
    let Ok(command) = std::env::var("SCIMTRAIL_TEST_SCIM2_SERVER") else {
        // CI must run it; a developer's machine may not have scim2-server.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set SCIMTRAIL_TEST_SCIM2_SERVER (.ci/run does)"
        );
        eprintln!(
            "SCIMTRAIL_TEST_SCIM2_SERVER is not set: scim2-server is not installed here (.ci/run installs it); skipped"
        );
        return None;
    };
    let port = free_port();
    let mut args = vec![
        "--hostname".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
    ];
    for tenant in tenants {
        args.extend(["--tenant".to_owned(), (*tenant).to_owned()]);
    }
    let server = Server(
        Command::new(&command)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command}: {error}")),
    );
    let http = Http::default();
    let base = format!("http://127.0.0.1:{port}");
    let probe = match tenants.first() {
        Some(tenant) => format!("{base}/{tenant}/ServiceProviderConfig"),
        None => format!("{base}/v2/ServiceProviderConfig"),
    };
    for _ in 0..100 {
        if http.send("GET", &probe, &[], None).await.is_ok() {
            return Some((server, base));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("scim2-server did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_idp_lifecycle_against_scim2_server() {
    let Some((_server, base)) = start_scim2_server(&["direct", "proxied"]).await else {
        return;
    };
    let http = Http::default();
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
            .filter(|e| e.findings() != &serde_json::json!([]))
        {
            failures.push(format!(
                "{}: finding on {} {}: {}",
                scenario.name,
                exchange.begun.method,
                exchange.begun.path,
                exchange.findings()
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

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What vendor documentation shows IdPs sending, which a strict server refuses or misreads:
/// through scimtrail, under every profile, each reaches scim2-server as what the IdP meant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shapes_from_vendor_documentation_reach_scim2_server_under_every_profile() {
    let Some((_server, base)) = start_scim2_server(&[]).await else {
        return;
    };
    let app = Client::new(format!("{base}/v2"));
    let idps = ["generic", "entra", "okta", "onelogin", "jumpcloud", "google", "ping"];
    let config: String = idps
        .iter()
        .map(|idp| {
            format!(
                "[[route]]\nname = \"{idp}\"\nidp = \"{idp}\"\npath_prefix = \"/{idp}\"\nupstream = \"{base}/v2\"\n"
            )
        })
        .collect();
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let proxy = proxy::start(&config, &store_url).await;

    // A manager, and a report whose enterprise extension names it and an employee number.
    let boss = app
        .post("/Users", &json!({"schemas": [USER], "userName": "boss"}))
        .await;
    let boss_id = boss.body["id"].as_str().expect("the manager is created").to_owned();
    let mut report = json!({"schemas": [USER, ENTERPRISE], "userName": "report"});
    report[ENTERPRISE] = json!({"manager": {"value": boss_id}, "employeeNumber": "701984"});
    assert_eq!(app.post("/Users", &report).await.status, StatusCode::CREATED);
    // Directly, scim2-server refuses the legacy form: the proxy is what makes it work.
    let legacy = format!("/Users?filter={}", encode(&format!("manager eq {boss_id}")));
    assert_eq!(app.get(&legacy).await.status, StatusCode::BAD_REQUEST);

    for idp in idps {
        // N9: a manager compared as a whole with a bare id, and a bare number for a string.
        for filter in [format!("manager eq {boss_id}"), "employeeNumber eq 701984".to_owned()] {
            let found = proxy
                .client
                .get(&format!("/{idp}/Users?filter={}", encode(&filter)))
                .await;
            assert_eq!(found.status, StatusCode::OK, "{idp}: {filter}: {}", found.body);
            assert_eq!(found.body["totalResults"], 1, "{idp}: {filter}: {}", found.body);
            assert_eq!(found.body["Resources"][0]["userName"], "report", "{idp}: {filter}");
        }

        // N1 and N3: a capitalised member removal with a value array (Entra's default dialect,
        // JumpCloud's) removes that member only; a strict server would empty the group.
        let mut members = Vec::new();
        for name in ["m1", "m2"] {
            let user = json!({"schemas": [USER], "userName": format!("{idp}-{name}")});
            members.push(json!({"value": user_id(&app, &user).await}));
        }
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": format!("{idp} group"), "members": members});
        let created = app.post("/Groups", &group).await;
        let group_id = created.body["id"].as_str().expect("the group is created").to_owned();
        let removal = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Remove", "path": "members", "value": [members[0].clone()]}]});
        let removed = proxy.client.patch(&format!("/{idp}/Groups/{group_id}"), &removal).await;
        assert!(
            removed.status.is_success(),
            "{idp}: {} {}",
            removed.status,
            removed.body
        );
        let kept = app.get(&format!("/Groups/{group_id}")).await;
        let left: Vec<&Value> = kept.body["members"]
            .as_array()
            .map(|members| members.iter().map(|member| &member["value"]).collect())
            .unwrap_or_default();
        assert_eq!(
            left,
            vec![&members[1]["value"]],
            "{idp}: only the named member is removed"
        );
    }
    proxy.running.shutdown().await;
}

async fn user_id(app: &Client, user: &Value) -> String {
    let created = app.post("/Users", user).await;
    created.body["id"].as_str().expect("the user is created").to_owned()
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Sends `request` as raw bytes on a new connection to `addr` and reads until it closes:
/// the answer (or answers, when pipelined) as text.
async fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status of the first answer in `text` and the body of the last (`Connection: close`).
fn status_and_body(text: &str) -> (u16, Value) {
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .rsplit_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

/// Request-targets as vendor documentation and IdPs write them, which the `http` crate's URI
/// parser refuses (or cuts at `#`): through scimtrail, each reaches scim2-server and gets the
/// answer it gets directly, and is recorded with what the listener encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_request_targets_the_uri_parser_refuses_reach_scim2_server_and_are_recorded() {
    let Some((_server, base)) = start_scim2_server(&[]).await else {
        return;
    };
    let app = Client::new(format!("{base}/v2"));
    for name in ["jdoe@example.com", "jdoe#1", "a<b>"] {
        let created = app.post("/Users", &json!({"schemas": [USER], "userName": name})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{name}");
    }
    let config = format!("[[route]]\nname = \"generic\"\nidp = \"generic\"\nupstream = \"{base}/v2\"\n");
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let proxy = proxy::start(&config, &store_url).await;
    let proxy_addr = proxy.running.proxy_addr.to_string();
    let app_addr = base.trim_start_matches("http://");

    // (target after the base path, what the listener encoded, users found)
    let cases: &[(&[u8], &str, Option<u64>)] = &[
        (
            b"/Users?filter=userName%20eq%20\"jdoe@example.com\"",
            "'\"' ×2",
            Some(1),
        ),
        (b"/Users?filter=userName%20eq%20\"jdoe#1\"", "'\"' ×2, '#' ×1", Some(1)),
        (
            b"/Users?filter=userName%20eq%20\"a<b>\"",
            "'\"' ×2, '<' ×1, '>' ×1",
            Some(1),
        ),
        (
            b"/Users?filter=userName%20eq%20\"\xff\"",
            "'\"' ×2, invalid UTF-8 ×1 bytes",
            None,
        ),
        (b"/Users/not`here", "'`' ×1", None),
    ];
    for (index, (target, encoded, found)) in cases.iter().enumerate() {
        let name = String::from_utf8_lossy(target).into_owned();
        let request = |prefix: &str| {
            [
                b"GET ".as_slice(),
                prefix.as_bytes(),
                target,
                b" HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
            ]
            .concat()
        };
        let direct = status_and_body(&raw_exchange(app_addr, &request("/v2")).await);
        let through = status_and_body(&raw_exchange(&proxy_addr, &request("")).await);
        assert_eq!(through.0, direct.0, "{name}: the status scim2-server gives directly");
        if let Some(found) = found {
            assert_eq!(through.0, 200, "{name}: {}", through.1);
            assert_eq!(through.1["totalResults"], *found, "{name}: {}", through.1);
        }
        let exchanges = proxy.exchanges_of("generic").await;
        assert_eq!(exchanges.len(), index + 1, "{name}: recorded");
        let recorded = proxy.store.get(&exchanges[0].begun.id).await.unwrap();
        let change = recorded.changes().as_array().unwrap()[0].clone();
        assert_eq!(change["rule"], "request_line", "{name}: {change}");
        assert!(
            change["detail"].as_str().unwrap().ends_with(encoded),
            "{name}: {change}"
        );
        assert_eq!(recorded.status(), Some(through.0), "{name}");
    }

    // Pipelined on one connection: a create whose body looks like a request line with a raw
    // quote, then a search with raw quotes. The body reaches scim2-server byte for byte; the
    // second request line is found where hyper finds it, and repaired.
    let lookalike = "GET /Users?filter=\"x\" HTTP/1.1\r\nHost: app";
    let body = json!({"schemas": [USER], "userName": "smuggled", "displayName": lookalike}).to_string();
    let pipelined = format!(
        "POST /Users HTTP/1.1\r\nHost: app\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /Users?filter=userName%20eq%20\"smuggled\" HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answers = raw_exchange(&proxy_addr, pipelined.as_bytes()).await;
    assert!(answers.starts_with("HTTP/1.1 201"), "{answers}");
    let (_, searched) = status_and_body(&answers);
    assert_eq!(searched["totalResults"], 1, "{answers}");
    assert_eq!(
        searched["Resources"][0]["displayName"], lookalike,
        "the body is unchanged"
    );

    // A request line that is not HTTP at all gets hyper's bare 400, counted.
    let refused = raw_exchange(&proxy_addr, b"\x16\x03\x01 not http\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused:?}");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("scimtrail_connections_closed_total{reason=\"not_http\"} 1"),
        "{metrics}"
    );
    proxy.running.shutdown().await;
}
