//! The reference application over real HTTP: endpoints, status codes, headers and the strict
//! refusals, as a SCIM client sees them.

use http::{Method, StatusCode};
use scimtrail_integration::refapp::start;
use serde_json::{json, Value};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "name": {"givenName": "Given", "familyName": name}, "active": true,
           "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}]})
}

#[track_caller]
fn assert_scim_error(
    response: &scimtrail_integration::TestResponse,
    status: u16,
    scim_type: Option<&str>,
    fragment: &str,
) {
    assert_eq!(response.status.as_u16(), status, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/scim+json"));
    assert_eq!(
        response.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(response.body["status"], json!(status.to_string()), "status is a string");
    assert_eq!(
        response.body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{}",
        response.body
    );
    assert!(
        response.body["detail"].as_str().unwrap_or_default().contains(fragment),
        "{}",
        response.body
    );
}

#[tokio::test]
async fn user_lifecycle_over_http() {
    let (app, client) = start().await;
    let created = client.post("/Users", &user("bjensen")).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("content-type"), Some("application/scim+json"));
    let id = created.body["id"].as_str().unwrap().to_owned();
    let location = format!("{}/Users/{id}", app.base_url());
    assert_eq!(created.header("location"), Some(location.as_str()));
    assert_eq!(created.body["meta"]["location"], location);
    assert_eq!(created.body["meta"]["resourceType"], "User");
    let etag = created.header("etag").unwrap().to_owned();
    assert_eq!(created.body["meta"]["version"], etag);

    // Okta's lookup, both encodings of the space.
    for query in [
        "filter=userName%20eq%20%22BJENSEN%22&startIndex=1&count=100",
        "filter=userName+eq+%22bjensen%22",
    ] {
        let found = client.get(&format!("/Users?{query}")).await;
        assert_eq!(found.status, StatusCode::OK);
        assert_eq!(found.body["totalResults"], 1, "{query}");
        assert_eq!(found.body["Resources"][0]["id"], id.as_str());
    }
    // Zero hits is 200 with an empty list.
    let none = client.get("/Users?filter=userName%20eq%20%22nobody%22").await;
    assert_eq!(
        (
            none.status,
            none.body["totalResults"].clone(),
            none.body["Resources"].clone()
        ),
        (StatusCode::OK, json!(0), json!([]))
    );

    // Conditional GET.
    let not_modified = client
        .send(Method::GET, &format!("/Users/{id}"), None, &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);

    // Deactivate (Okta's path-less shape), with a stale and then a fresh If-Match.
    let deactivate = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let stale = client
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&deactivate),
            &[("if-match", "W/\"999\"")],
        )
        .await;
    assert_scim_error(&stale, 412, None, "does not match");
    let patched = client
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&deactivate),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["active"], false);
    assert_ne!(patched.header("etag"), Some(etag.as_str()));

    // PUT replaces: what is not sent is gone.
    let mut replacement = user("bjensen");
    replacement.as_object_mut().unwrap().remove("emails");
    let replaced = client
        .put(&format!("/Users/{id}?attributes=userName,emails"), &replacement)
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert!(replaced.body.get("emails").is_none());
    assert!(
        replaced.body.get("name").is_none(),
        "attributes= applies to PUT responses"
    );

    let deleted = client.delete(&format!("/Users/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.bytes.is_empty());
    assert_scim_error(&client.get(&format!("/Users/{id}")).await, 404, None, "not found");
    app.shutdown().await;
}

#[tokio::test]
async fn strict_refusals_carry_the_right_status_and_scim_type() {
    let (app, client) = start().await;
    client.post("/Users", &user("taken")).await;
    assert_scim_error(
        &client.post("/Users", &user("TAKEN")).await,
        409,
        Some("uniqueness"),
        "already used",
    );
    assert_scim_error(
        &client
            .post(
                "/Users",
                &json!({"schemas": ["urn:scim:schemas:core:1.0"], "userName": "a"}),
            )
            .await,
        400,
        Some("invalidSyntax"),
        "urn:scim:schemas:core:1.0",
    );
    let mut string_bool = user("a");
    string_bool["active"] = json!("False");
    assert_scim_error(
        &client.post("/Users", &string_bool).await,
        400,
        Some("invalidValue"),
        "true or false",
    );
    assert_scim_error(
        &client.get("/Users?filter=externalId%20eq%20jyoung").await,
        400,
        Some("invalidFilter"),
        "offset 14",
    );
    assert_scim_error(
        &client.get("/Users?filter=active%20eq%20%22True%22").await,
        400,
        Some("invalidFilter"),
        "use true or false",
    );
    assert_scim_error(
        &client.get("/Users?sortOrder=up").await,
        400,
        Some("invalidValue"),
        "sortOrder",
    );
    assert_scim_error(
        &client.get("/Users?attributes=nope").await,
        400,
        Some("invalidValue"),
        "nope",
    );

    let raw = client
        .send_raw(
            Method::POST,
            "/Users",
            "{\"schemas\":".into(),
            Some("application/scim+json"),
            &[],
        )
        .await;
    assert_scim_error(&raw, 400, Some("invalidSyntax"), "not valid JSON");
    let xml = client
        .send_raw(Method::POST, "/Users", "<user/>".into(), Some("application/xml"), &[])
        .await;
    assert_scim_error(&xml, 415, None, "application/xml");
    let huge = vec![b' '; scimtrail_refapp::MAX_PAYLOAD_BYTES + 1];
    let too_large = client
        .send_raw(Method::POST, "/Users", huge.into(), Some("application/scim+json"), &[])
        .await;
    assert_scim_error(&too_large, 413, Some("tooLarge"), "larger than");
    let wrong_method = client.send(Method::DELETE, "/ServiceProviderConfig", None, &[]).await;
    assert_scim_error(&wrong_method, 405, None, "not allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET"));
    assert_scim_error(&client.get("/Nope").await, 404, None, "/Nope");
    assert_scim_error(&client.get("/Me").await, 501, None, "not implemented");
    app.shutdown().await;
}

#[tokio::test]
async fn entra_default_member_removal_empties_a_group_on_a_strict_server() {
    let (app, client) = start().await;
    let mut ids = Vec::new();
    for name in ["stays1", "stays2", "leaver"] {
        ids.push(
            client.post("/Users", &user(name)).await.body["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let group = client
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Engineering", "members": members}),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED);
    let path = format!("/Groups/{}", group.body["id"].as_str().unwrap());

    // As Entra sends it by default: refused for its capitalised op.
    let entra = json!({"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": ids[2]}]}]});
    assert_scim_error(
        &client.patch(&path, &entra).await,
        400,
        Some("invalidSyntax"),
        "\"Remove\"",
    );
    // With only the op lowercased (JumpCloud's shape): every member is gone, not just the leaver.
    let lowered = json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members", "value": [{"value": ids[2]}]}]});
    let emptied = client.patch(&path, &lowered).await;
    assert_eq!(emptied.status, StatusCode::OK);
    assert!(
        emptied.body.get("members").is_none(),
        "the strict server emptied the group: {}",
        emptied.body
    );
    app.shutdown().await;
}

#[tokio::test]
async fn groups_members_refs_and_user_groups() {
    let (app, client) = start().await;
    let alice = client.post("/Users", &user("alice")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = client
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Admins", "members": [{"value": alice, "display": "alice"}]}),
        )
        .await;
    assert_eq!(group.body["members"][0]["type"], "User");
    assert_eq!(
        group.body["members"][0]["$ref"],
        format!("{}/Users/{alice}", app.base_url())
    );
    let alice_view = client.get(&format!("/Users/{alice}")).await;
    assert_eq!(alice_view.body["groups"][0]["display"], "Admins");
    let lookup = client
        .get("/Groups?excludedAttributes=members&filter=displayName%20eq%20%22admins%22")
        .await;
    assert_eq!(lookup.body["totalResults"], 1);
    assert!(lookup.body["Resources"][0].get("members").is_none());
    let ghost = client
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": "ghost"}]}),
        )
        .await;
    assert_scim_error(&ghost, 400, Some("invalidValue"), "ghost");
    let by_member = client
        .get(&format!("/Groups?filter=members%5Bvalue%20eq%20%22{alice}%22%5D"))
        .await;
    assert_eq!(by_member.body["totalResults"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn list_sorting_paging_and_search_endpoint() {
    let (app, client) = start().await;
    for name in ["delta", "alpha", "charlie", "bravo", "echo"] {
        client.post("/Users", &user(name)).await;
    }
    let page = client
        .get("/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=2")
        .await;
    assert_eq!(page.body["totalResults"], 5);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 2);
    let names: Vec<&str> = page.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["delta", "charlie"]);
    let searched = client
        .post("/Users/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"a\" or userName sw \"e\"", "attributes": ["userName"], "sortBy": "userName"}))
        .await;
    assert_eq!(searched.status, StatusCode::OK);
    assert_eq!(
        searched.body["Resources"],
        json!([
            {"schemas": [USER], "id": searched.body["Resources"][0]["id"], "userName": "alpha"},
            {"schemas": [USER], "id": searched.body["Resources"][1]["id"], "userName": "echo"}
        ])
    );
    let root = client
        .post(
            "/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}),
        )
        .await;
    assert_eq!(root.body["totalResults"], 5);
    app.shutdown().await;
}

#[tokio::test]
async fn bulk_over_http_reports_each_operation() {
    let (app, client) = start().await;
    let response = client
        .post("/Bulk", &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user("bulk1")},
                {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"schemas": [GROUP], "displayName": "G", "members": [{"value": "bulkId:u1"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "u2", "data": user("BULK1")},
                {"method": "DELETE", "path": "/Users/missing"}
            ]
        }))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    let statuses: Vec<&str> = response.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201", "409", "404"]);
    assert_eq!(response.body["Operations"][2]["response"]["scimType"], "uniqueness");
    let bad = client.post("/Bulk", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": "1", "Operations": []})).await;
    assert_scim_error(&bad, 400, Some("invalidValue"), "failOnErrors");
    app.shutdown().await;
}

#[tokio::test]
async fn discovery_endpoints() {
    let (app, client) = start().await;
    let config = client.get("/ServiceProviderConfig").await;
    assert_eq!(config.body["patch"]["supported"], true);
    assert_eq!(config.body["bulk"]["maxOperations"], 1000);
    let schemas = client.get("/Schemas").await;
    assert_eq!(schemas.body["totalResults"], 3);
    let user_schema = client.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await;
    assert_eq!(user_schema.body["name"], "User");
    let types = client.get("/ResourceTypes").await;
    assert_eq!(
        types.body["Resources"][0]["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    assert_scim_error(
        &client.get("/ResourceTypes/Nope").await,
        404,
        None,
        "/ResourceTypes/Nope",
    );
    app.shutdown().await;
}
