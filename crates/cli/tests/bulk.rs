//! `/Bulk` through scimtrail, passed through to an application that serves it and fanned
//! out for one that does not: a bulk request with mixed results shows each operation's
//! outcome in `exchanges show` and in the admin API; its replay sends only the operations
//! that did not take effect. And the demo's outage, repaired through the admin API.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use scimtrail_demo::outage::{self, OutageApp};
use scimtrail_demo::play::Http;
use scimtrail_integration::proxy::{self, fresh_store_urls};
use scimtrail_integration::{refapp, Client};
use serde_json::{json, Value};
use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_scimtrail");

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_with_mixed_results_shows_each_operations_outcome() {
    let stores = fresh_store_urls().await;
    // Passed through (the application serves /Bulk), then fanned out (the default target).
    let cases = stores
        .iter()
        .map(|url| (url, "[route.target]\nbulk = true\n"))
        .chain(stores.iter().map(|url| (url, "")));
    for (store_url, target) in cases {
        let store_url = store_url.as_str();
        let fanned_out = target.is_empty();
        let (app, direct) = refapp::start().await;
        let scimtrail = proxy::start(&proxy::single_route(&app.base_url(), target), store_url).await;
        let taken = direct.post("/Users", &user("taken@example.com")).await;
        let taken_id = taken.body["id"].as_str().unwrap().to_owned();
        let answered = scimtrail.client.post("/Bulk", &mixed_bulk_request()).await;
        assert_eq!(answered.status, 200, "{}", answered.body);
        let id = answered.header("scimtrail-exchange-id").unwrap().to_owned();

        let api = the_api_shows_each_operations_outcome(&scimtrail, &id, fanned_out).await;
        exchanges_show_has_a_line_per_operation(&id, store_url);
        a_dry_run_replay_leaves_out_what_took_effect(&scimtrail, &id, &api).await;
        the_replay_creates_the_freed_user_name(&scimtrail, &direct, &id, &taken_id).await;

        scimtrail.running.shutdown().await;
        app.shutdown().await;
    }
}

/// A bulk request of a create, a create of a taken userName, and a PATCH of a missing group.
fn mixed_bulk_request() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "new", "data": user("new@example.com")},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("taken@example.com")},
            {"method": "PATCH", "path": "/Groups/no-such-group", "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:new"}]}]
            }}
        ]
    })
}

/// The admin API shows bulk exchange `id` as partial, with an outcome per operation (and,
/// fanned out, a linked exchange per operation); what it shows.
async fn the_api_shows_each_operations_outcome(scimtrail: &proxy::TestProxy, id: &str, fanned_out: bool) -> Value {
    // The API: one outcome per operation; the exchange is partial.
    let api = scimtrail.admin.get(&format!("/api/v1/exchanges/{id}")).await.body;
    assert_eq!(api["outcome"], "partial", "{api:#}");
    let outcomes: Vec<(&str, &str, u64)> = api["bulk_operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["bulkId"].as_str().unwrap_or("-"),
                o["outcome"].as_str().unwrap(),
                o["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [("new", "ok", 201), ("dup", "failed", 409), ("-", "failed", 404)]
    );
    assert!(api["findings"].to_string().contains("bulk_partial_failure"));
    // Fanned out, each operation is an exchange of its own, linked to the bulk request.
    let children = api["children"].as_array().unwrap();
    assert_eq!(children.len(), if fanned_out { 3 } else { 0 });
    for (operation, child) in api["bulk_operations"].as_array().unwrap().iter().zip(children) {
        assert_eq!(&operation["exchange"], child);
        let child = scimtrail.store.get(child.as_str().unwrap()).await.unwrap();
        assert_eq!(child.begun.parent_id.as_deref(), Some(id));
        assert_eq!(child.status().map(i64::from), operation["status"].as_i64());
    }
    api
}

/// `exchanges show` lists each operation of bulk exchange `id` with its status and outcome.
fn exchanges_show_has_a_line_per_operation(id: &str, store_url: &str) {
    // `exchanges show`: a line per operation.
    let shown = Command::new(BINARY)
        .args(["exchanges", "show", id, "--store", store_url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text}");
    let section = text.split("== Bulk operations ==").nth(1).expect("a bulk section");
    let lines: Vec<&str> = section.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(lines.len(), 3, "{section}");
    assert!(
        lines[0].contains("new") && lines[0].contains("201") && lines[0].contains("ok"),
        "{section}"
    );
    assert!(lines[1].contains("dup") && lines[1].contains("409") && lines[1].contains("failed"));
    assert!(lines[2].contains("/Groups/no-such-group") && lines[2].contains("404"));
}

/// A dry run of replaying bulk exchange `id` (as `api` shows it) would send only the two
/// operations that failed, the reference to the create resolved to the id it created.
async fn a_dry_run_replay_leaves_out_what_took_effect(scimtrail: &proxy::TestProxy, id: &str, api: &Value) {
    // Replay sends only what did not take effect: the create that is already done stays out.
    let dry = dry_run_replay(scimtrail, id).await;
    let item = &dry["items"][0];
    assert_eq!(item["action"], "would_replay", "{dry:#}");
    let sent = &item["preview"]["send"][0]["body"]["Operations"];
    assert_eq!(sent.as_array().unwrap().len(), 2, "{dry:#}");
    assert_eq!(sent[0]["bulkId"], "dup");
    // The reference to the create that succeeded is now the id it created.
    let created = api["bulk_operations"][0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    assert_eq!(sent[1]["data"]["Operations"][0]["value"][0]["value"], created);
    assert!(item["notes"].to_string().contains("2 of 3 bulk operations"), "{item}");
}

/// Once the taken userName (user `taken_id`) is freed, replaying bulk exchange `id` creates
/// it; the PATCH of the missing group fails again.
async fn the_replay_creates_the_freed_user_name(
    scimtrail: &proxy::TestProxy,
    direct: &Client,
    id: &str,
    taken_id: &str,
) {
    // The operator frees the userName; the replay creates it, the group is still missing.
    assert_eq!(direct.delete(&format!("/Users/{taken_id}")).await.status, 204);
    let run = scimtrail
        .admin
        .send(
            http::Method::POST,
            &format!("/api/v1/exchanges/{id}/replay"),
            Some(&json!({})),
            &[],
        )
        .await
        .body;
    let replay_id = run["items"][0]["replay"].as_str().unwrap().to_owned();
    let replay = scimtrail.store.get(&replay_id).await.unwrap();
    assert_eq!(replay.begun.replay_of.as_deref(), Some(id));
    let outcomes = operation_outcomes(&replay);
    assert_eq!(outcomes, ["ok", "failed"]);
    assert_eq!(run["summary"]["failed"], 1, "{run:#}");
    let found = direct
        .get("/Users?filter=userName%20eq%20%22taken@example.com%22")
        .await;
    assert_eq!(found.body["totalResults"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanned_out_bulk_resolves_bulk_ids_and_stops_at_fail_on_errors() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, direct) = refapp::start().await;
    let scimtrail = proxy::start(&proxy::single_route(&app.base_url(), ""), &store_url).await;
    direct.post("/Users", &user("taken@example.com")).await;
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user("one@example.com")},
            {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Team",
                "members": [{"value": "bulkId:u1"}]}},
            {"method": "PATCH", "path": "/Groups/bulkId:g1", "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Team One"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("taken@example.com")},
            {"method": "POST", "path": "/Users", "bulkId": "late", "data": user("late@example.com")}
        ]
    });
    let answered = scimtrail.client.post("/Bulk", &bulk).await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(
        answered.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    let statuses: Vec<&str> = answered.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201", "201", "200", "409"],
        "failOnErrors 1 stops after the first error"
    );
    let id = answered.header("scimtrail-exchange-id").unwrap();
    let recorded = scimtrail.store.get(id).await.unwrap();
    let outcomes = operation_outcomes(&recorded);
    assert_eq!(outcomes, ["ok", "ok", "ok", "failed", "not_attempted"]);
    assert_eq!(recorded.outcome(), "partial");
    assert_eq!(recorded.children.len(), 4);
    // The group holds the user the first operation created, under its new name.
    let one = direct
        .get("/Users?filter=userName%20eq%20%22one%40example.com%22")
        .await
        .body;
    let group = direct
        .get("/Groups?filter=displayName%20eq%20%22Team%20One%22")
        .await
        .body;
    assert_eq!(group["totalResults"], 1, "{group}");
    assert_eq!(group["Resources"][0]["members"][0]["value"], one["Resources"][0]["id"]);
    let late = direct
        .get("/Users?filter=userName%20eq%20%22late%40example.com%22")
        .await
        .body;
    assert_eq!(late["totalResults"], 0);

    // A bulk request whose first operation wrote the resource its second failed on: a replay
    // sends the second, the first is not "a later write" that supersedes it.
    let one_id = one["Resources"][0]["id"].as_str().unwrap();
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": format!("/Users/{one_id}"), "data": patch(json!([{"op": "replace", "path": "title", "value": "Lead"}]))},
            {"method": "PATCH", "path": format!("/Users/{one_id}"), "data": patch(json!([{"op": "replace", "path": "noSuchAttribute", "value": 1}]))}
        ]
    });
    let answered = scimtrail.client.post("/Bulk", &bulk).await;
    let id = answered.header("scimtrail-exchange-id").unwrap();
    assert_eq!(scimtrail.store.get(id).await.unwrap().outcome(), "partial");
    let dry = dry_run_replay(&scimtrail, id).await;
    assert_eq!(dry["items"][0]["action"], "would_replay", "{dry:#}");
    let sent = &dry["items"][0]["preview"]["send"][0]["body"]["Operations"];
    assert_eq!(sent.as_array().unwrap().len(), 1, "{dry:#}");
    assert_eq!(sent[0]["data"]["Operations"][0]["path"], "noSuchAttribute");
    scimtrail.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_outage_is_repaired_through_the_admin_api() {
    let store_url = fresh_store_urls().await.remove(0);
    let mut app = OutageApp::start().await.unwrap();
    let config = format!(
        "[[route]]\nname = \"{0}\"\npath_prefix = \"/{0}\"\nidp = \"{1}\"\nupstream = \"{2}\"\n",
        outage::ROUTE,
        outage::IDP,
        app.base_url()
    );
    let scimtrail = proxy::start(&config, &store_url).await;
    let http = Http::default();
    let base = format!("http://{}/{}", scimtrail.running.proxy_addr, outage::ROUTE);
    let played = outage::play(&http, &base, &mut app).await.unwrap();
    let statuses: Vec<u16> = played.missed.iter().map(|(_, status)| *status).collect();
    assert_eq!(statuses, [503, 502, 502, 502], "the maintenance page, then nothing");
    assert_eq!(played.wrong.len(), 4, "{:?}", played.wrong);

    // Only POST, and the filter keys of the list.
    assert_eq!(scimtrail.admin.get("/api/v1/replays").await.status, 405);
    let bad = scimtrail
        .admin
        .send(
            http::Method::POST,
            "/api/v1/replays",
            Some(&json!({"filter": {"colour": "red"}})),
            &[],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"].as_str().unwrap().contains("colour"));

    let replays = |dry_run: bool| {
        let admin = &scimtrail.admin;
        async move {
            let body = json!({"filter": {"route": outage::ROUTE}, "dry_run": dry_run});
            admin
                .send(http::Method::POST, "/api/v1/replays", Some(&body), &[])
                .await
                .body
        }
    };
    let dry = replays(true).await;
    assert_eq!(dry["summary"]["would_replay"], 4, "{dry:#}");
    let app_url = app.base_url();
    let check = || outage::check(&http, &app_url, &played.ids, &played.team);
    assert_eq!(check().await.unwrap().len(), 4, "a dry run changes nothing");
    let run = replays(false).await;
    assert_eq!(run["summary"]["succeeded"], 4, "{run:#}");
    assert_eq!(check().await.unwrap(), Vec::<String>::new());
    let again = replays(false).await;
    assert_eq!(again["summary"]["replayed"], 0, "{again:#}");
    assert_eq!(again["summary"]["skipped_because"]["already_replayed"], 4);

    // The failed deprovision is its own series until then; the replay's success is counted too.
    let metrics = String::from_utf8_lossy(&scimtrail.admin.get("/metrics").await.bytes).into_owned();
    assert!(
        metrics
            .contains("scimtrail_deprovisions_failed_total{route=\"outage\",idp=\"entra\",lifecycle=\"deactivate\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "scimtrail_lifecycle_total{route=\"outage\",idp=\"entra\",lifecycle=\"deactivate\",outcome=\"ok\"} 1"
    ));
    scimtrail.running.shutdown().await;
    app.shutdown().await;
}

/// What replaying exchange `id` would do, through the admin API (`dry_run`).
async fn dry_run_replay(scimtrail: &proxy::TestProxy, id: &str) -> Value {
    scimtrail
        .admin
        .send(
            http::Method::POST,
            &format!("/api/v1/exchanges/{id}/replay"),
            Some(&json!({"dry_run": true})),
            &[],
        )
        .await
        .body
}

/// What became of each operation of a recorded bulk request, in order.
fn operation_outcomes(exchange: &scimtrail_store::Exchange) -> Vec<&str> {
    exchange
        .bulk_operations()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect()
}
