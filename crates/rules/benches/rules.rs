//! What normalisation costs per request: the Entra profile on its default-dialect requests
//! and on requests that need no change.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use scimtrail_rules::{builtin_profile, normalize_request, normalize_response, Request, Response, Target};
use serde_json::json;

fn request(method: &str, path: &str, query: Option<&str>, body: Option<serde_json::Value>) -> Request {
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        content_type: Some("application/scim+json".to_owned()),
        body,
        if_match: None,
        post_filter: None,
        then: Vec::new(),
        pages: None,
    }
}

fn entra(c: &mut Criterion) {
    let Ok(Some(profile)) = builtin_profile("entra") else {
        return;
    };
    let target = Target::default();
    let deactivate = request(
        "PATCH",
        "/Users/2819c223",
        None,
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})),
    );
    let remove_members = request(
        "PATCH",
        "/Groups/g1",
        None,
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]}]})),
    );
    let rfc_patch = request(
        "PATCH",
        "/Users/2819c223",
        None,
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]})),
    );
    let lookup = request(
        "GET",
        "/Users",
        Some("filter=userName%20eq%20%22bjensen%40example.com%22"),
        None,
    );
    let found = Response {
        status: 200,
        content_type: Some("application/scim+json".to_owned()),
        body: Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
            "startIndex": 1, "itemsPerPage": 1, "Resources": [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "2819c223", "userName": "bjensen@example.com", "active": true}]}),
        ),
        has_body: true,
        retry_after: None,
        received_at_secs: 0,
    };
    c.bench_function("entra: default deactivation (N1, N2)", |b| {
        b.iter(|| normalize_request(black_box(&deactivate), &profile, &target, None))
    });
    c.bench_function("entra: default removal of 3 members (N1, N3)", |b| {
        b.iter(|| normalize_request(black_box(&remove_members), &profile, &target, None))
    });
    c.bench_function("entra: RFC PATCH, nothing to change", |b| {
        b.iter(|| normalize_request(black_box(&rfc_patch), &profile, &target, None))
    });
    c.bench_function("entra: lookup request and its response", |b| {
        b.iter(|| {
            let forwarded = normalize_request(black_box(&lookup), &profile, &target, None);
            normalize_response(&lookup, black_box(&found), &profile, &target);
            forwarded
        })
    });
}

criterion_group!(benches, entra);
criterion_main!(benches);
