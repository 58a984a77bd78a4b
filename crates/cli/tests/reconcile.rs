//! Reconcile as an operator runs it: users and a group provisioned through scimtrail, then the
//! application changed behind its back and an outage that was not replayed; `scimtrail
//! reconcile` (and the admin API's run) report exactly those drifts, a leaver with access
//! first, each with the exchange that established the intent. On both backends.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::App;
use scimtrail_integration::proxy::fresh_store_urls;
use serde_json::{json, Value};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn active(value: bool) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": value}]})
}

/// `scimtrail reconcile --json` with these arguments: its exit status and its report.
fn reconcile(args: &[&str]) -> (bool, Value) {
    common::run_json("reconcile", args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_what_changed_behind_scimtrails_back_and_what_an_outage_left_undone() {
    for store_url in fresh_store_urls().await {
        let mut app = App::start().await;
        let direct = app.client();
        let (config, scimtrail) = app.proxied(&store_url).await;
        let idp = &scimtrail.client;
        let mut ids = std::collections::BTreeMap::new();
        for name in ["keep", "leaver", "gone", "mover"] {
            let created = idp
                .post(
                    "/scim/Users",
                    &json!({"schemas": [USER], "userName": name, "active": true}),
                )
                .await;
            assert_eq!(created.status, 201, "{store_url}: {name}");
            ids.insert(name, created.body["id"].as_str().unwrap().to_owned());
        }
        let team = idp
            .post(
                "/scim/Groups",
                &json!({"schemas": [GROUP], "displayName": "Team",
                    "members": [{"value": ids["keep"]}, {"value": ids["leaver"]}]}),
            )
            .await;
        let team_id = team.body["id"].as_str().unwrap().to_owned();
        // The IdP deactivates the leaver; the application takes it.
        let deactivated = idp
            .patch(&format!("/scim/Users/{}", ids["leaver"]), &active(false))
            .await;
        assert_eq!(deactivated.status, 200);

        // Behind scimtrail's back: the leaver reactivated, a stranger made and put in the
        // group, a user deleted.
        assert_eq!(
            direct
                .patch(&format!("/Users/{}", ids["leaver"]), &active(true))
                .await
                .status,
            200
        );
        let stranger = direct
            .post(
                "/Users",
                &json!({"schemas": [USER], "userName": "stranger", "active": true}),
            )
            .await;
        let stranger_id = stranger.body["id"].as_str().unwrap().to_owned();
        let add = json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": stranger_id}]}]});
        assert!(direct
            .patch(&format!("/Groups/{team_id}"), &add)
            .await
            .status
            .is_success());
        assert_eq!(direct.delete(&format!("/Users/{}", ids["gone"])).await.status, 204);

        // An outage no one replayed: the IdP deactivated the mover and created a newcomer.
        app.down().await;
        let lost = idp
            .patch(&format!("/scim/Users/{}", ids["mover"]), &active(false))
            .await;
        assert!(lost.status.is_server_error(), "{store_url}: {}", lost.status);
        let lost_id = lost.header("scimtrail-exchange-id").unwrap().to_owned();
        let late = idp
            .post(
                "/scim/Users",
                &json!({"schemas": [USER], "userName": "newcomer", "active": true}),
            )
            .await;
        assert!(late.status.is_server_error());
        app.up().await;
        // Everything recorded is in the database before the CLI reads it.
        assert!(scimtrail.exchanges_of("app").await.len() >= 8);

        let config = config.to_str().unwrap().to_owned();
        let (ok, report) = reconcile(&["--route", "app", "--store", &store_url, "--config", &config]);
        assert!(ok, "{store_url}: {report:#}");
        let counts = &report["counts"];
        let expected = json!({"active_mismatch": 2, "inactive_in_app": 0, "missing_in_app": 2, "member_missing": 0,
            "member_extra": 1, "attribute_mismatch": 0, "unknown_to_idp": 1});
        assert_eq!(counts, &expected, "{store_url}: {report:#}");
        let drifts = report["drifts"].as_array().unwrap();
        let seen: Vec<(&str, &str)> = drifts
            .iter()
            .map(|d| (d["kind"].as_str().unwrap(), d["name"].as_str().unwrap_or("-")))
            .collect();
        assert_eq!(
            &seen[..2],
            [("active_mismatch", "leaver"), ("active_mismatch", "mover")],
            "leavers with access first: {seen:?}"
        );
        let mover = &drifts[1];
        assert_eq!(
            mover["established_by"],
            lost_id.as_str(),
            "the failed deactivation is the intent"
        );
        assert_eq!(mover["resource_id"], ids["mover"].as_str());
        let mut missing: Vec<&str> = seen
            .iter()
            .filter(|(k, _)| *k == "missing_in_app")
            .map(|(_, n)| *n)
            .collect();
        missing.sort_unstable();
        assert_eq!(missing, ["gone", "newcomer"], "{seen:?}");
        let extra = drifts.iter().find(|d| d["kind"] == "member_extra").unwrap();
        assert_eq!(extra["actual"], stranger_id.as_str());
        assert_eq!(extra["resource_id"], team_id.as_str());

        // The admin API runs the same, shows its drifts, and `/metrics` its counts.
        let run = scimtrail
            .admin
            .post("/api/v1/reconciliations", &json!({"route": "app", "resource": "Users"}))
            .await;
        assert_eq!(run.status, 200, "{:?}", run.body);
        assert_eq!(run.body["counts"]["active_mismatch"], 2);
        assert_eq!(run.body["counts"]["member_extra"], 0, "Users only");
        let id = run.body["id"].as_str().unwrap();
        let listed = scimtrail
            .admin
            .get(&format!("/api/v1/reconciliations/{id}?limit=1"))
            .await;
        assert_eq!(listed.body["drifts"].as_array().unwrap().len(), 1);
        assert_eq!(listed.body["drifts"][0]["kind"], "active_mismatch");
        let metrics = scimtrail.metrics().await;
        assert!(
            metrics.contains("scimtrail_drift{route=\"app\",kind=\"active_mismatch\"} 2"),
            "{metrics}"
        );
        let refused = scimtrail
            .admin
            .post("/api/v1/reconciliations", &json!({"route": "nowhere"}))
            .await;
        assert_eq!(refused.status, 400);

        // A run is audited with its counts (a request for no route is refused before any).
        let query = scimtrail_store::AuditQuery {
            action: Some("reconcile".into()),
            limit: 10,
            ..Default::default()
        };
        let audited = scimtrail.store.audit_list(&query).await.unwrap();
        assert_eq!(audited.len(), 2, "{store_url}: {audited:?}");
        assert!(audited[1].actor.starts_with("cli:"), "{audited:?}");
        assert_eq!(audited[1].detail["counts"]["member_extra"], 1, "{audited:?}");

        scimtrail.running.shutdown().await;
        app.down().await;
    }
}
