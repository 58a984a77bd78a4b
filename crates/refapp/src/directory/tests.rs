use super::*;
use serde_json::json;

fn base() -> BaseUrl {
    BaseUrl("http://scim.test".into())
}

fn user(name: &str) -> Value {
    json!({"schemas": [USER_TYPE.schema.id], "userName": name, "active": true})
}

fn create_user(directory: &mut Directory, name: &str) -> String {
    directory.create(&USER_TYPE, &user(name)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn user_name_is_unique_case_insensitively() {
    let mut directory = Directory::new();
    create_user(&mut directory, "bjensen@example.com");
    let err = directory.create(&USER_TYPE, &user("BJensen@Example.com")).unwrap_err();
    assert_eq!((err.status, err.scim_type), (409, Some(ScimType::Uniqueness)));
}

#[test]
fn members_must_exist_and_get_a_type() {
    let mut directory = Directory::new();
    let id = create_user(&mut directory, "a");
    let group = directory
        .create(
            &GROUP_TYPE,
            &json!({"schemas": [GROUP_TYPE.schema.id], "displayName": "g", "members": [{"value": id}]}),
        )
        .unwrap();
    assert_eq!(group["members"][0]["type"], "User");
    let rendered = directory.render(&GROUP_TYPE, &group, &base(), &Projection::default());
    assert_eq!(rendered["members"][0]["$ref"], format!("http://scim.test/Users/{id}"));
    let err = directory
        .create(
            &GROUP_TYPE,
            &json!({"schemas": [GROUP_TYPE.schema.id], "displayName": "g", "members": [{"value": "ghost"}]}),
        )
        .unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
    assert!(err.detail.contains("ghost"));
}

#[test]
fn users_show_their_groups_and_deletion_cleans_memberships() {
    let mut directory = Directory::new();
    let id = create_user(&mut directory, "a");
    let other = create_user(&mut directory, "b");
    let group = directory.create(&GROUP_TYPE, &json!({"schemas": [GROUP_TYPE.schema.id], "displayName": "Admins", "members": [{"value": id}, {"value": other}]})).unwrap();
    let stored = directory.get(&USER_TYPE, &id).unwrap().clone();
    let rendered = directory.render(&USER_TYPE, &stored, &base(), &Projection::default());
    assert_eq!(rendered["groups"][0]["display"], "Admins");
    directory.delete(&USER_TYPE, &id, &Precondition::default()).unwrap();
    let group = directory.get(&GROUP_TYPE, group["id"].as_str().unwrap()).unwrap();
    assert_eq!(group["members"].as_array().unwrap().len(), 1);
}

#[test]
fn if_match_is_enforced() {
    let mut directory = Directory::new();
    let id = create_user(&mut directory, "a");
    let version = directory.version(&USER_TYPE, &id).unwrap();
    let stale = Precondition::if_match(Some("W/\"999\""));
    let err = directory.replace(&USER_TYPE, &id, &user("a"), &stale).unwrap_err();
    assert_eq!(err.status, 412);
    let fresh = Precondition::if_match(Some(&version));
    let updated = directory.replace(&USER_TYPE, &id, &user("a2"), &fresh).unwrap();
    assert_ne!(updated["meta"]["version"], json!(version));
    assert_eq!(updated["userName"], "a2");
}

#[test]
fn search_filters_sorts_and_pages() {
    let mut directory = Directory::new();
    for name in ["carol", "alice", "bob", "dave"] {
        create_user(&mut directory, name);
    }
    let query = ListQuery::from_params([
        ("filter", "userName ne \"dave\""),
        ("sortBy", "userName"),
        ("startIndex", "2"),
        ("count", "1"),
    ])
    .unwrap();
    let list = directory.search(&[&USER_TYPE], &query, &base()).unwrap();
    assert_eq!(list.total_results, 3);
    assert_eq!(list.resources.len(), 1);
    assert_eq!(list.resources[0]["userName"], "bob");
    let bad = ListQuery::from_params([("filter", "emails[type eq \"work\"].value eq \"x\"")]).unwrap();
    assert_eq!(
        directory.search(&[&USER_TYPE], &bad, &base()).unwrap_err().scim_type,
        Some(ScimType::InvalidFilter)
    );
    let unknown = ListQuery::from_params([("filter", "nope eq \"x\"")]).unwrap();
    assert_eq!(
        directory
            .search(&[&USER_TYPE], &unknown, &base())
            .unwrap_err()
            .scim_type,
        Some(ScimType::InvalidFilter)
    );
}

#[test]
fn password_is_kept_across_put_and_never_rendered() {
    let mut directory = Directory::new();
    let mut body = user("a");
    body["password"] = json!("s3cret");
    let id = directory.create(&USER_TYPE, &body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let updated = directory
        .replace(&USER_TYPE, &id, &user("a"), &Precondition::default())
        .unwrap();
    assert_eq!(updated["password"], "s3cret");
    let rendered = directory.render(&USER_TYPE, &updated, &base(), &Projection::default());
    assert!(rendered.get("password").is_none());
}

#[test]
fn bulk_resolves_forward_references_and_honours_fail_on_errors() {
    let mut directory = Directory::new();
    let request = BulkRequest::from_json(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": [GROUP_TYPE.schema.id], "displayName": "G", "members": [{"value": "bulkId:u"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": user("u")},
            {"method": "PATCH", "path": "/Users/bulkId:u", "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]}},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("U")},
            {"method": "DELETE", "path": "/Users/bulkId:never"}
        ]
    })).unwrap();
    let results = directory.bulk(&request, &base());
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 201, 200, 409, 409]);
    let group_id = results[0].location.as_ref().unwrap().rsplit('/').next().unwrap();
    let user_id = results[1].location.as_ref().unwrap().rsplit('/').next().unwrap();
    assert_eq!(
        directory.get(&GROUP_TYPE, group_id).unwrap()["members"][0]["value"],
        user_id
    );
    assert_eq!(directory.get(&USER_TYPE, user_id).unwrap()["active"], false);

    let mut directory = Directory::new();
    let request = BulkRequest::from_json(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "PUT", "path": "/Users/missing", "data": user("x")},
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user("a")}
        ]
    }))
    .unwrap();
    let results = directory.bulk(&request, &base());
    assert_eq!(results.len(), 1, "processing stops after failOnErrors errors");
    assert_eq!(results[0].status, 404);
}

#[test]
fn renaming_or_deleting_a_user_frees_its_user_name() {
    let mut directory = Directory::new();
    let id = create_user(&mut directory, "alice");
    directory
        .replace(&USER_TYPE, &id, &user("Alicia"), &Precondition::default())
        .unwrap();
    create_user(&mut directory, "ALICE");
    assert_eq!(directory.create(&USER_TYPE, &user("alicia")).unwrap_err().status, 409);
    directory.delete(&USER_TYPE, &id, &Precondition::default()).unwrap();
    create_user(&mut directory, "alicia");
}
