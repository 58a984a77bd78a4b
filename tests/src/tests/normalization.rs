//! Normalisation end to end: every bundled IdP lifecycle played against the strict reference
//! application directly and through scimtrail, and the records the rules leave.

use scimtrail_demo::play::Http;
use scimtrail_demo::{compare, demo_config, scenario, DemoOptions};
use scimtrail_integration::{proxy, refapp, Client};
use scimtrail_refapp::RunningRefApp;
use serde_json::{json, Value};

/// The acceptance table of the normalisation issue: per IdP scenario, whether the strict
/// application reaches the state the IdP intended directly and through scimtrail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_idp_lifecycle_reaches_the_intended_state_through_scimtrail() {
    for store_url in proxy::fresh_store_urls().await {
        let (direct, _) = refapp::start().await;
        let (behind, _) = refapp::start().await;
        let scenarios = scenario::bundled().unwrap();
        let options = DemoOptions {
            store_url: store_url.clone(),
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
        };
        let proxy = proxy::start(&demo_config(&scenarios, &options, &behind.base_url(), None), &store_url).await;
        let http = Http::default();
        for scenario in &scenarios {
            let base = format!("http://{}/{}", proxy.running.proxy_addr, scenario.name);
            let comparison = compare(&http, scenario, &direct.base_url(), &base, &behind.base_url())
                .await
                .unwrap();
            let (d, p) = (&comparison.direct, &comparison.proxied);
            eprintln!(
                "{store_url} {:<11} directly {}/{} checks, {} refused; through scimtrail {}/{} checks, {} refused",
                scenario.name,
                d.holding(),
                d.checks.len(),
                d.refused().len(),
                p.holding(),
                p.checks.len(),
                p.refused().len()
            );
            let misses: Vec<String> = p
                .checks
                .iter()
                .filter_map(|c| c.mismatch.as_ref().map(|m| format!("{}: {m}", c.what)))
                .collect();
            assert!(misses.is_empty(), "{} through scimtrail: {misses:#?}", scenario.name);
            let refused: Vec<String> = p
                .refused()
                .iter()
                .map(|s| format!("{} → {} {}", s.name, s.answer.status, s.answer.body))
                .collect();
            assert!(refused.is_empty(), "{} through scimtrail: {refused:#?}", scenario.name);
            // Against the reference application, nothing through scimtrail is a finding.
            for exchange in &proxy.exchanges_of(&scenario.name).await {
                assert_eq!(
                    exchange.findings(),
                    &json!([]),
                    "{} {} {}",
                    scenario.name,
                    exchange.begun.method,
                    exchange.begun.path
                );
            }
            // The scenarios carry real quirks: sent directly, every one fails but Okta's and
            // Google's (whose shapes beyond the probe are undocumented, so plain RFC).
            let rfc_shaped = scenario.name == "okta" || scenario.name == "google";
            assert_eq!(d.reached(), rfc_shaped, "{} directly", scenario.name);
        }
        proxy.running.shutdown().await;
    }
}

fn group_with_three(members: [&str; 3]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "members": members.iter().map(|id| json!({"value": id})).collect::<Vec<_>>(),
    })
}

async fn three_users(app: &scimtrail_integration::Client) -> [String; 3] {
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let created = app
            .post(
                "/Users",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
            )
            .await;
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    [ids[0].clone(), ids[1].clone(), ids[2].clone()]
}

/// A proxy with one route for `idp` in front of a fresh application holding alice, bob and
/// carol, all members of one group; returns the proxy, the application, its client, the
/// group id and bob's id.
async fn group_of_three_behind(idp: &str, extra: &str) -> (proxy::TestProxy, RunningRefApp, Client, String, String) {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (app, app_client) = refapp::start().await;
    let proxy = proxy::start(&proxy::route_for(idp, &app.base_url(), extra), &store_url).await;
    let [alice, bob, carol] = three_users(&app_client).await;
    let group = app_client
        .post("/Groups", &group_with_three([&alice, &bob, &carol]))
        .await;
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    (proxy, app, app_client, group_id, bob)
}

fn entra_default_removal(id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"value": id}]}]
    })
}

fn member_count(group: &Value) -> usize {
    group["members"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_member_removal_is_recorded_with_what_scimtrail_changed() {
    let (proxy, _app, app_client, group_id, bob) = group_of_three_behind("entra", "").await;

    let removed = proxy
        .client
        .patch(&format!("/Groups/{group_id}"), &entra_default_removal(&bob))
        .await;
    assert!(removed.status.is_success(), "{}", removed.body);
    let group = app_client.get(&format!("/Groups/{group_id}")).await;
    assert_eq!(member_count(&group.body), 2, "only bob is gone: {}", group.body);

    let id = removed.header("scimtrail-exchange-id").unwrap().to_owned();
    let exchange = proxy.store.get(&id).await.unwrap();
    assert_eq!(exchange.outcome(), "ok");
    assert_eq!(exchange.begun.lifecycle.as_deref(), Some("membership"));
    assert!(exchange.begun.request_body.as_deref().unwrap().contains("\"Remove\""));
    let forwarded: Value = serde_json::from_str(exchange.forwarded_body().unwrap()).unwrap();
    assert_eq!(
        forwarded["Operations"][0]["path"],
        format!("members[value eq \"{bob}\"]")
    );
    let rules: Vec<&str> = exchange
        .changes()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["applied"], true);
            c["rule"].as_str().unwrap()
        })
        .collect();
    // N1 and N3 on the request; R9 on the response: Entra expects 204 to a group PATCH.
    assert_eq!(rules, ["N1", "N3", "R9", "R9"]);
    assert_eq!(removed.status, 204);
    assert!(removed.bytes.is_empty());
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_forwards_the_original_and_records_what_it_would_change() {
    let (proxy, _app, app_client, group_id, bob) = group_of_three_behind("jumpcloud", "mode = \"observe\"\n").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": "members", "value": [{"value": bob}]}]
    });
    let removed = proxy.client.patch(&format!("/Groups/{group_id}"), &body).await;
    assert!(removed.status.is_success());
    // Observed, not enforced: the strict application applied the original and emptied the group.
    let group = app_client.get(&format!("/Groups/{group_id}")).await;
    assert_eq!(member_count(&group.body), 0);
    let exchange = proxy
        .store
        .get(removed.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(
        exchange.forwarded_body(),
        exchange.begun.request_body.as_deref(),
        "forwarded as received"
    );
    let changes = exchange.changes().as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["rule"], "N3");
    assert_eq!(changes[0]["applied"], false);
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_and_invalid_requests_are_refused_recorded_and_never_forwarded() {
    let (proxy, _app, app_client, group_id, _bob) = group_of_three_behind("entra", "").await;

    // A removal that does not say which member: forwarded, it would empty the group.
    let unclear = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"display": "Bob"}]}]
    });
    let refused = proxy.client.patch(&format!("/Groups/{group_id}"), &unclear).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["scimType"], "invalidValue");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("would remove all of them"));
    assert_eq!(
        member_count(&app_client.get(&format!("/Groups/{group_id}")).await.body),
        3
    );

    let bad_filter = proxy.client.get("/Users?filter=userName%20eq%20%22unterminated").await;
    assert_eq!(bad_filter.status, 400);
    assert_eq!(bad_filter.body["scimType"], "invalidFilter");

    for response in [&refused, &bad_filter] {
        let exchange = proxy
            .store
            .get(response.header("scimtrail-exchange-id").unwrap())
            .await
            .unwrap();
        assert_eq!(exchange.outcome(), "rejected");
        assert_eq!(exchange.upstream_status(), None, "never forwarded");
    }
    proxy.running.shutdown().await;
}

/// A user on the application (created directly), and a proxy route for `idp` with `extra`.
async fn user_behind(idp: &str, extra: &str, user: Value) -> (proxy::TestProxy, RunningRefApp, Client, String) {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (app, app_client) = refapp::start().await;
    let proxy = proxy::start(&proxy::route_for(idp, &app.base_url(), extra), &store_url).await;
    let created = app_client.post("/Users", &user).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    (proxy, app, app_client, id)
}

fn rules_of(exchange: &scimtrail_store::Exchange) -> Vec<String> {
    let mut rules: Vec<String> = exchange
        .changes()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rule"].as_str().unwrap().to_owned())
        .collect();
    rules.dedup();
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n8_entra_write_to_a_missing_work_email_creates_it() {
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dana@example.com"});
    let (proxy, _app, app_client, id) = user_behind("entra", "", user).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "dana@work.example"}]
    });
    // Sent directly, a strict application has no element to write to.
    let direct = app_client.patch(&format!("/Users/{id}"), &body).await;
    assert_eq!(direct.status, 400, "{}", direct.body);

    let through = proxy.client.patch(&format!("/Users/{id}"), &body).await;
    assert!(through.status.is_success(), "{}", through.body);
    let user = app_client.get(&format!("/Users/{id}")).await.body;
    assert_eq!(
        user["emails"],
        json!([{"type": "work", "value": "dana@work.example", "primary": true}])
    );
    let exchange = proxy
        .store
        .get(through.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(rules_of(&exchange), ["N1", "N8"]);
    // What the rule decided from, and what the application answered, are kept.
    let snapshot = proxy.store.snapshot("app", "Users", &id).await.unwrap().unwrap();
    assert_eq!(snapshot["emails"][0]["value"], "dana@work.example");
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n20_patch_becomes_a_put_of_the_current_resource_for_an_application_without_patch() {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "erin@example.com",
        "active": true,
        "name": {"givenName": "Erin", "familyName": "Doe"},
        "emails": [{"type": "work", "value": "erin@example.com", "primary": true}]
    });
    let (proxy, _app, app_client, id) = user_behind("entra", "[route.target]\npatch = false\n", user).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
    });
    let through = proxy.client.patch(&format!("/Users/{id}"), &body).await;
    assert!(through.status.is_success(), "{}", through.body);
    let user = app_client.get(&format!("/Users/{id}")).await.body;
    assert_eq!(user["active"], false);
    // Nothing else was lost by replacing the whole resource.
    assert_eq!(user["name"], json!({"givenName": "Erin", "familyName": "Doe"}));
    assert_eq!(user["emails"][0]["value"], "erin@example.com");
    let exchange = proxy
        .store
        .get(through.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(rules_of(&exchange), ["N1", "N2", "N20"]);
    assert_eq!(exchange.begun.lifecycle.as_deref(), Some("deactivate"));
    let method_change = exchange
        .changes()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pointer"] == "method")
        .unwrap();
    assert_eq!(method_change["after"], "PUT");
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_filtered_write_replaces_the_whole_attribute_for_an_application_without_filters() {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "finn@example.com",
        "emails": [
            {"type": "work", "value": "finn@old.example", "primary": true},
            {"type": "home", "value": "finn@home.example"}
        ]
    });
    let (proxy, _app, app_client, id) =
        user_behind("entra", "[route.target]\nvalue_path_filters = false\n", user).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "finn@new.example"}]
    });
    let through = proxy.client.patch(&format!("/Users/{id}"), &body).await;
    assert!(through.status.is_success(), "{}", through.body);
    let user = app_client.get(&format!("/Users/{id}")).await.body;
    assert_eq!(
        user["emails"],
        json!([
            {"type": "work", "value": "finn@new.example", "primary": true},
            {"type": "home", "value": "finn@home.example"}
        ])
    );
    let exchange = proxy
        .store
        .get(through.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    let forwarded: Value = serde_json::from_str(exchange.forwarded_body().unwrap()).unwrap();
    assert_eq!(forwarded["Operations"][0]["path"], "emails");
    assert_eq!(rules_of(&exchange), ["R13"]);
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_patch_over_the_limit_is_sent_in_order_and_a_failing_part_is_partial_not_ok() {
    let extra = "[route.target]\nmax_patch_operations = 1\nmax_operation_values = 1\n";
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (app, app_client) = refapp::start().await;
    let proxy = proxy::start(&proxy::route_for("generic", &app.base_url(), extra), &store_url).await;
    let [alice, bob, carol] = three_users(&app_client).await;
    let group = app_client
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng"}),
        )
        .await;
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    let add = |ids: &[&str]| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()}]
        })
    };
    let added = proxy
        .client
        .patch(&format!("/Groups/{group_id}"), &add(&[&alice, &bob]))
        .await;
    assert!(added.status.is_success(), "{}", added.body);
    let exchange = proxy
        .store
        .get(added.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(exchange.outcome(), "ok");
    assert_eq!(rules_of(&exchange), ["R16"]);
    assert_eq!(
        member_count(&app_client.get(&format!("/Groups/{group_id}")).await.body),
        2
    );

    // The second part names a member that does not exist: the first is applied, the IdP is
    // told the request failed, and the record says partial.
    let failing = proxy
        .client
        .patch(&format!("/Groups/{group_id}"), &add(&[&carol, "no-such-user"]))
        .await;
    assert_eq!(failing.status, 400, "{}", failing.body);
    let exchange = proxy
        .store
        .get(failing.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(exchange.outcome(), "partial");
    assert!(
        exchange.error().unwrap().contains("request 2 of 2"),
        "{:?}",
        exchange.error()
    );
    assert_eq!(
        member_count(&app_client.get(&format!("/Groups/{group_id}")).await.body),
        3
    );
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n20_put_becomes_a_patch_of_the_differences_for_an_application_without_put() {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "gus@example.com",
        "title": "Engineer",
        "nickName": "Gus",
        "active": true
    });
    let (proxy, _app, app_client, id) = user_behind("okta", "[route.target]\nput = false\n", user).await;
    let put = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": id,
        "userName": "gus@example.com",
        "title": "Staff Engineer",
        "active": false,
        "groups": [],
        "meta": {"resourceType": "User"}
    });
    let through = proxy.client.put(&format!("/Users/{id}"), &put).await;
    assert!(through.status.is_success(), "{}", through.body);
    let user = app_client.get(&format!("/Users/{id}")).await.body;
    assert_eq!(user["title"], "Staff Engineer");
    assert_eq!(user["active"], false);
    assert!(
        user.get("nickName").is_none(),
        "what the PUT left out is cleared: {user}"
    );
    let exchange = proxy
        .store
        .get(through.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(rules_of(&exchange), ["N14", "N20"]);
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_okta_import_page_is_aggregated_from_smaller_application_pages() {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (app, app_client) = refapp::start().await;
    let config = proxy::route_for("okta", &app.base_url(), "[route.target]\nmax_results = 2\n");
    let proxy = proxy::start(&config, &store_url).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let created = app_client
            .post(
                "/Users",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("user{n}")}),
            )
            .await;
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let page = proxy.client.get("/Users?startIndex=1&count=100").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["totalResults"], 5);
    assert_eq!(page.body["itemsPerPage"], 5);
    let returned: Vec<&str> = page.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(returned, ids, "every user once, in id order");
    let exchange = proxy
        .store
        .get(page.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(rules_of(&exchange), ["R5", "R4"]);
    assert_eq!(exchange.outcome(), "ok");
    proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_a_create_answered_without_the_resource_is_read_back_for_okta() {
    use scimtrail_integration::misbehave::{self, Misbehaviour};
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let front = misbehave::start(app.base_url(), Misbehaviour::EmptyCreateBody).await;
    let proxy = proxy::start(&proxy::route_for("okta", &format!("http://{front}"), ""), &store_url).await;
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "hal@example.com"});
    // Without scimtrail Okta gets an empty body, and fails: "Create new user returned empty user".
    let direct = Client::new(format!("http://{front}")).post("/Users", &user).await;
    assert!(direct.bytes.is_empty());
    let created = proxy
        .client
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ida@example.com"}),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["userName"], "ida@example.com");
    assert!(created.body["id"].as_str().is_some(), "{}", created.body);
    let exchange = proxy
        .store
        .get(created.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert!(
        rules_of(&exchange).contains(&"R6".to_owned()),
        "{:?}",
        exchange.changes()
    );
    assert_eq!(exchange.begun.resource_id.as_deref(), created.body["id"].as_str());
    proxy.running.shutdown().await;
}
