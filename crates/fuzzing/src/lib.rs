//! The bodies of scimtrail's fuzz targets: `fuzz/fuzz_targets/*.rs` call them under libFuzzer
//! (`bench/fuzz` runs the campaign), and `cargo test` replays the corpus committed under
//! `fuzz/corpus/<target>/` through them (`tests/corpus.rs`).
//!
//! A target takes arbitrary bytes and must neither panic nor hang. Where an invariant can be
//! checked on the way, it is asserted: a failed assertion is a finding like any crash.

// A fuzz target reports a broken invariant by panicking: that is what libFuzzer catches.
#![allow(clippy::expect_used, clippy::panic)]

mod exchange;
mod structured;

pub use exchange::exchange;

use scimtrail_rules::{builtin_profiles, normalize_request, normalize_response};
use scimtrail_scim::message::BulkRequest;
use scimtrail_scim::schema::{GROUP_TYPE, USER_TYPE};
use scimtrail_scim::{strict_json, AttrPath, Filter, PatchPath, PatchRequest};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::OnceLock;
use structured::Parts;

/// A fuzz target: arbitrary bytes in, a panic out if an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name `fuzz/` and its corpus folder give it.
pub const TARGETS: [(&str, Target); 9] = [
    ("filter", filter),
    ("path", path),
    ("patch", patch),
    ("bulk", bulk),
    ("strict_json", strict_json),
    ("rules", rules),
    ("findings", findings),
    ("journal", journal),
    ("exchange", exchange),
];

/// A user and a group with something of everything, for filters and PATCHes to work on.
fn sample_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "u1", "externalId": "e1", "userName": "bjensen@example.com", "active": true,
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        "displayName": "Babs", "title": "Tour Guide",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@home.example", "type": "home"}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "roles": [{"value": "admin"}],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3\""},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "u9"}}
    })
}

fn sample_group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1", "displayName": "Tour Guides",
        "members": [{"value": "u1", "type": "User"}, {"value": "u2", "type": "User"}]
    })
}

/// The filter parser, its printer (what it prints parses to the same filter), the schema
/// check and evaluation.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(filter) = Filter::parse(text) else { return };
    let printed = filter.to_string();
    match Filter::parse(&printed) {
        Ok(again) => assert_eq!(again, filter, "{text:?} printed as {printed:?}"),
        Err(error) => panic!("{text:?} printed as {printed:?}, which does not parse: {error:?}"),
    }
    let (user, group) = (sample_user(), sample_group());
    for (resource, rt) in [(&user, &USER_TYPE), (&group, &GROUP_TYPE)] {
        let _ = filter.check(rt);
        let _ = filter.matches(resource, rt);
    }
}

/// Attribute paths and PATCH paths.
pub fn path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = AttrPath::parse(text);
    let _ = PatchPath::parse(text);
}

/// PATCH, parsed strictly and applied to a user and a group.
pub fn patch(data: &[u8]) {
    let Ok(body) = strict_json::parse(data) else { return };
    let Ok(request) = PatchRequest::from_json(&body) else {
        return;
    };
    for (mut resource, rt) in [(sample_user(), &USER_TYPE), (sample_group(), &GROUP_TYPE)] {
        let _ = request.apply(&mut resource, rt);
    }
}

/// BulkRequest, parsed and each operation's references resolved.
pub fn bulk(data: &[u8]) {
    let Ok(body) = strict_json::parse(data) else { return };
    let Ok(request) = BulkRequest::from_json(&body) else {
        return;
    };
    let resolved = HashMap::from([("a".to_owned(), "u1".to_owned()), ("b".to_owned(), "g1".to_owned())]);
    for operation in &request.operations {
        let _ = operation.resolved(&resolved);
    }
}

/// strict JSON: what it accepts, serde_json reads to the same value.
pub fn strict_json(data: &[u8]) {
    if let Ok(ours) = strict_json::parse(data) {
        match serde_json::from_slice::<Value>(data) {
            Ok(theirs) => assert_eq!(ours, theirs),
            Err(error) => panic!("strict JSON accepted what serde_json refuses: {error}"),
        }
    }
}

/// An IdP profile's request and response normalisation (the selector picks which), for a
/// strict application or one lacking everything a target profile can lack, with or without
/// the resource's state; and R4's pages.
pub fn rules(data: &[u8]) {
    let parts = Parts::of(data);
    let profiles = profiles();
    let Some(profile) = profiles.get(parts.choice(2, profiles.len())) else {
        return;
    };
    let target = if parts.choice(3, 2) == 1 {
        scimtrail_rules::Target {
            patch: false,
            put: false,
            value_path_filters: false,
            password_sync: false,
            empty_members_replace: false,
            filter_attributes: vec!["userName".to_owned()],
            filter_operators: vec!["eq".to_owned()],
            strict_booleans: false,
            user_name_case_exact: true,
            max_results: 3,
            max_aggregate_results: Some(7),
            sorting: false,
            member_type_required: true,
            max_patch_operations: Some(2),
            max_operation_values: Some(1),
            ..scimtrail_rules::Target::default()
        }
    } else {
        scimtrail_rules::Target::default()
    };
    let state = parts.state().filter(|_| parts.choice(4, 2) == 1);
    let Ok(normalized) = normalize_request(&parts.request(), profile, &target, state.as_ref()) else {
        return;
    };
    let forwarded = normalized.value;
    if let Some(pages) = &forwarded.pages {
        let listed = (0..).map_while(|n| pages.query(n)).take(100).count() as u64;
        assert!(listed <= target.aggregate_limit().div_ceil(target.max_results.max(1)));
    }
    let _ = normalize_response(&forwarded, &parts.response(), profile, &target);
}

/// The bundled profiles, parsed once.
fn profiles() -> &'static [scimtrail_rules::Profile] {
    static PROFILES: OnceLock<Vec<scimtrail_rules::Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| builtin_profiles().expect("the bundled profiles parse"))
}

/// What the findings read of an answer against a request, and request shapes.
pub fn findings(data: &[u8]) {
    use scimtrail_analysis::findings::{findings, shape, Observed, ReadBack};
    let parts = Parts::of(data);
    let request = parts.request();
    let response = parts.response();
    let read_back = parts.state().map(ReadBack::Resource);
    let filter = parts.filter();
    for lifecycle in [None, Some("deactivate"), Some("membership"), Some("lookup")] {
        let _ = findings(&Observed {
            method: &request.method,
            path: &request.path,
            filter: filter.as_deref(),
            request: request.body.as_ref(),
            lifecycle,
            status: response.status,
            response: response.body.as_ref(),
            has_body: response.has_body,
            read_back: read_back.as_ref(),
            redaction: &scimtrail_scim::redact::Redaction::passwords_only(),
        });
    }
    let _ = shape(&request.method, &request.path, filter.as_deref(), request.body.as_ref());
}

/// The journal's frame decoder, on raw segments and on well-framed arbitrary payloads.
pub fn journal(data: &[u8]) {
    let _ = scimtrail_store::fuzz_journal_decode(data);
}
