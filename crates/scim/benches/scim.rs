//! Benchmarks of the hot paths the proxy runs on every request: filter parsing and
//! evaluation, PATCH parsing and application, password redaction.
//!
//! Run: `cargo bench -p scimtrail-scim --bench scim -- --warm-up-time 1 --measurement-time 3`

// Benchmark set-up fails loudly on bad fixtures, like a test; the workspace denies
// unwrap/expect outside tests, and clippy does not count benches as tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use scimtrail_scim::redact::redact_passwords;
use scimtrail_scim::schema::{GROUP_TYPE, USER_TYPE};
use scimtrail_scim::{Filter, PatchRequest};
use serde_json::{json, Value};
use std::hint::black_box;

const SIMPLE: &str = r#"userName eq "bjensen@example.com""#;
/// Entra ID's lookup by its uniqueness attribute (IDP-QUIRKS.md §2.2, §2.4).
const ENTRA: &str = r#"emails[type eq "work"].value eq "Babs.Jensen@contoso.onmicrosoft.com""#;
const COMPLEX: &str = concat!(
    r#"userType eq "Employee" and (emails[type eq "work" and value co "@example.com"] or "#,
    r#"ims[type eq "xmpp" and value co "@foo.com"]) and not (title pr and "#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d") "#,
    r#"and (meta.lastModified ge "2011-05-13T04:42:34Z" or active eq true)"#,
);

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "bjensen@example.com",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III"
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [{
            "type": "work",
            "streetAddress": "100 Universal City Plaza",
            "locality": "Hollywood",
            "region": "CA",
            "postalCode": "91608",
            "country": "USA",
            "primary": true
        }],
        "phoneNumbers": [
            {"value": "555-555-5555", "type": "work"},
            {"value": "555-555-4444", "type": "mobile"}
        ],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "roles": [{"value": "Tour Guide", "primary": true}],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff591\"",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "John Smith"
            }
        }
    })
}

/// An Entra ID user update (`aadOptscim062020` shapes, IDP-QUIRKS.md §2.3): one op per
/// changed attribute, a filtered email, an extension attribute, the manager, deactivation.
fn entra_update() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "displayName", "value": "Barbara Jensen"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "Babs.Jensen@contoso.onmicrosoft.com"},
            {"op": "replace", "path": "name.givenName", "value": "Barbara"},
            {"op": "replace", "path": "name.familyName", "value": "Jensen-Smith"},
            {"op": "replace", "path": "externalId", "value": "babs"},
            {"op": "add", "path": "nickName", "value": "Babs"},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701985"},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "3f2b1c5a-0d4e-4f6a-9b8c-7d6e5f4a3b2c"}},
            {"op": "replace", "path": "active", "value": false}
        ]
    })
}

fn group_with_members(n: usize) -> Value {
    let members: Vec<Value> = (0..n)
        .map(|i| json!({"value": format!("00u{i:017}"), "display": format!("user{i}@example.com"), "type": "User"}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": members,
        "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    })
}

/// An Okta membership update (IDP-QUIRKS.md §1.3): remove one member by filter, add one.
fn okta_membership_update() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "remove", "path": "members[value eq \"00u00000000000000500\"]"},
            {"op": "add", "path": "members", "value": [{"value": "00u99999999999999999", "display": "new.user@example.com"}]}
        ]
    })
}

/// A BulkRequest of 50 operations: user creations with passwords, PATCHes that set one by
/// path and path-less, group membership changes, filters naming the password.
fn bulk_body() -> Value {
    let operations: Vec<Value> = (0..50)
        .map(|i| match i % 5 {
            0 => json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("user{i}@example.com"),
                "name": {"givenName": "Given", "familyName": format!("Family{i}")},
                "emails": [{"value": format!("user{i}@example.com"), "type": "work", "primary": true}],
                "password": format!("s3cret-{i}"),
                "active": true
            }}),
            1 => json!({"method": "PATCH", "path": format!("/Users/{i}"), "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "replace", "path": "password", "value": format!("n3w-{i}")},
                    {"op": "replace", "value": {"active": false, "urn:ietf:params:scim:schemas:core:2.0:User:password": "x"}}
                ]
            }}),
            2 => json!({"method": "PATCH", "path": format!("/Groups/{i}"), "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "remove", "path": format!("members[value eq \"u{i}\"]")},
                    {"op": "add", "path": "members", "value": [{"value": format!("u{}", i + 1)}]}
                ]
            }}),
            3 => json!({"method": "PUT", "path": format!("/Users/{i}"), "version": "W/\"1\"", "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("user{i}@example.com"),
                "displayName": "Someone",
                "Password": "Hunter2"
            }}),
            _ => json!({"method": "DELETE", "path": format!("/Users/{i}")}),
        })
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": operations,
        "filter": "userName eq \"x\" and password eq \"s3cret\""
    })
}

fn filter_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter_parse");
    for (name, text) in [("simple", SIMPLE), ("entra_lookup", ENTRA), ("complex", COMPLEX)] {
        Filter::parse(text).unwrap();
        group.bench_function(name, |b| b.iter(|| Filter::parse(black_box(text))));
    }
    group.finish();
}

fn filter_evaluation(c: &mut Criterion) {
    let user = user();
    let mut group = c.benchmark_group("filter_eval");
    for (name, text) in [("simple", SIMPLE), ("entra_lookup", ENTRA), ("complex", COMPLEX)] {
        let filter = Filter::parse(text).unwrap();
        filter.check(&USER_TYPE).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| black_box(&filter).matches(black_box(&user), &USER_TYPE))
        });
    }
    group.finish();
}

fn patching(c: &mut Criterion) {
    let mut group = c.benchmark_group("patch_parse_apply");

    let user = user();
    let body = entra_update();
    let mut check = user.clone();
    PatchRequest::from_json(&body)
        .unwrap()
        .apply(&mut check, &USER_TYPE)
        .unwrap();
    group.bench_function("entra_user_update_9_ops", |b| {
        b.iter_batched(
            || user.clone(),
            |mut resource| {
                let request = PatchRequest::from_json(black_box(&body)).unwrap();
                request.apply(&mut resource, &USER_TYPE).unwrap();
                resource
            },
            BatchSize::SmallInput,
        )
    });

    let group_resource = group_with_members(1000);
    let body = okta_membership_update();
    let mut check = group_resource.clone();
    PatchRequest::from_json(&body)
        .unwrap()
        .apply(&mut check, &GROUP_TYPE)
        .unwrap();
    assert_eq!(check["members"].as_array().map(Vec::len), Some(1000));
    group.bench_function("okta_membership_1000_members", |b| {
        b.iter_batched(
            || group_resource.clone(),
            |mut resource| {
                let request = PatchRequest::from_json(black_box(&body)).unwrap();
                request.apply(&mut resource, &GROUP_TYPE).unwrap();
                resource
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn redaction(c: &mut Criterion) {
    let body = bulk_body();
    let mut check = body.clone();
    assert_eq!(redact_passwords(&mut check), 41);
    c.bench_function("redact_passwords/bulk_50_ops", |b| {
        b.iter_batched(
            || body.clone(),
            |mut body| {
                redact_passwords(&mut body);
                body
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, filter_parsing, filter_evaluation, patching, redaction);
criterion_main!(benches);
