//! Property tests: no input makes a parser, PATCH, redaction or resource check panic; every
//! filter the parser accepts prints to a form that parses back to the same tree; and every
//! filter tree that respects the grammar survives `parse(print(tree))`.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use scimtrail_scim::filter::{AttrTest, CompValue, CompareOp, ParseError, SubAttrTest};
use scimtrail_scim::patch::PATCH_OP_SCHEMA;
use scimtrail_scim::redact::{names_password, redact_passwords, Redaction, REDACTED};
use scimtrail_scim::resource::check_input;
use scimtrail_scim::schema::{GROUP_TYPE, USER_TYPE};
use scimtrail_scim::{AttrPath, Filter, PatchPath, PatchRequest, ScimType};
use serde_json::{json, Map, Number, Value};

const VALID_CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/filters/valid.txt"
));

fn corpus() -> Vec<&'static str> {
    VALID_CORPUS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

// === (a) arbitrary strings into the parsers ===

/// Fragments that reach deep parser states when concatenated.
const TOKENS: &[&str] = &[
    "userName",
    "emails",
    "members",
    "value",
    "type",
    "a",
    "$ref",
    "name",
    "givenName",
    " ",
    " ",
    "  ",
    "\t",
    "\n",
    "[",
    "]",
    "(",
    ")",
    ".",
    ":",
    "\"",
    "\\",
    "\\u",
    "\\uD83D",
    "\\uDE00",
    "\\u00e9",
    "\\n",
    "\\\"",
    "\\/",
    "eq",
    "EQ",
    "ne",
    "co",
    "sw",
    "ew",
    "gt",
    "ge",
    "lt",
    "le",
    "pr",
    "and",
    "or",
    "not",
    "AND",
    "Not",
    "true",
    "False",
    "null",
    "0",
    "1",
    "-",
    "e",
    "E",
    "+",
    "1.5",
    "-2e3",
    "01",
    "1e999",
    "urn:",
    "urn:ietf:params:scim:schemas:core:2.0:User:",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:",
    "2.0",
    "\"work\"",
    "\"a\\\"b\"",
    "é",
    "日",
    "😀",
    "\u{1}",
    "\u{7f}",
    "#",
    "'",
    ",",
    "*",
    "]. value",
    "].value eq ",
];

fn grammarish() -> impl Strategy<Value = String> {
    vec(select(TOKENS), 0..24).prop_map(|tokens| tokens.concat())
}

/// The alphabet `[ ]().\"\\:a-zA-Z0-9$-_` character by character.
fn alphabet() -> impl Strategy<Value = String> {
    r#"[\[\]()."\\:a-zA-Z0-9$_ -]{0,48}"#
}

/// A valid corpus filter, truncated, with a token spliced in, or with a range deleted.
fn mutated_corpus() -> impl Strategy<Value = String> {
    (
        select(corpus()),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        select(TOKENS),
        0..3u8,
    )
        .prop_map(|(filter, at, to, token, how)| {
            let boundaries: Vec<usize> = (0..=filter.len()).filter(|&i| filter.is_char_boundary(i)).collect();
            let (i, j) = (at.get(&boundaries), to.get(&boundaries));
            let (i, j) = (*i.min(j), *i.max(j));
            match how {
                0 => filter[..i].to_owned(),
                1 => format!("{}{token}{}", &filter[..i], &filter[i..]),
                _ => format!("{}{}", &filter[..i], &filter[j..]),
            }
        })
}

fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![2 => any::<String>(), 3 => grammarish(), 3 => alphabet(), 4 => mutated_corpus()]
}

/// What every syntax error promises: the right `scimType`, and an offset that lies within
/// the input on a character boundary.
fn check_error(input: &str, err: &ParseError, scim_type: ScimType) -> Result<(), TestCaseError> {
    prop_assert_eq!(err.scim_type(), scim_type);
    prop_assert!(err.offset <= input.len(), "offset {} beyond {:?}", err.offset, input);
    prop_assert!(
        input.is_char_boundary(err.offset),
        "offset {} inside a character of {:?}",
        err.offset,
        input
    );
    prop_assert!(!err.expected.is_empty() && !err.found.is_empty());
    Ok(())
}

/// Whether some member a redaction names still holds the marker.
fn has_redacted_member(value: &Value, redaction: &Redaction) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| has_redacted_member(item, redaction)),
        Value::Object(members) => members
            .iter()
            .any(|(k, v)| (redaction.names(k) && v == REDACTED) || has_redacted_member(v, redaction)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn filter_parse_never_panics_and_accepted_filters_round_trip(input in any_input()) {
        match Filter::parse(&input) {
            Ok(filter) => {
                let printed = filter.to_string();
                let reparsed = Filter::parse(&printed);
                prop_assert!(
                    reparsed.as_ref() == Ok(&filter),
                    "{:?} printed as {:?}, which parses to {:?}, not {:?}", input, printed, reparsed, filter
                );
                if reparsed.as_ref() == Ok(&filter) {
                    prop_assert_eq!(reparsed.map(|f| f.to_string()), Ok(printed));
                }
                let _ = filter.matches(&sample_user(), &USER_TYPE);
                let _ = filter.check(&USER_TYPE);
            }
            Err(err) => check_error(&input, &err, ScimType::InvalidFilter)?,
        }
    }

    #[test]
    fn path_parsers_never_panic_and_accepted_paths_round_trip(input in any_input()) {
        match AttrPath::parse(&input) {
            Ok(path) => prop_assert_eq!(AttrPath::parse(&path.to_string()), Ok(path)),
            Err(err) => check_error(&input, &err, ScimType::InvalidPath)?,
        }
        match PatchPath::parse(&input) {
            Ok(path) => {
                let reparsed = PatchPath::parse(&path.to_string());
                prop_assert!(
                    reparsed.as_ref() == Ok(&path),
                    "{:?} printed as {}, which parses to {:?}", input, path, reparsed
                );
            }
            Err(err) => check_error(&input, &err, ScimType::InvalidPath)?,
        }
    }
}

// === (b) arbitrary JSON into PATCH, redaction and resource checks ===

/// Member names worth hitting: SCIM attributes (any casing), message members, URNs.
const KEYS: &[&str] = &[
    "schemas",
    "id",
    "externalId",
    "userName",
    "USERNAME",
    "name",
    "givenName",
    "familyName",
    "formatted",
    "displayName",
    "nickName",
    "title",
    "userType",
    "active",
    "password",
    "Password",
    "emails",
    "value",
    "type",
    "primary",
    "display",
    "$ref",
    "members",
    "groups",
    "roles",
    "phoneNumbers",
    "addresses",
    "streetAddress",
    "meta",
    "created",
    "lastModified",
    "x509Certificates",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "employeeNumber",
    "manager",
    "urn:ietf:params:scim:schemas:core:2.0:User:password",
    "name.givenName",
    "op",
    "path",
    "Operations",
    "filter",
    "data",
    "method",
    "bulkId",
];

/// String values worth hitting: enum-ish values, string booleans, ids, dates, URNs, filters.
const STRINGS: &[&str] = &[
    "",
    "work",
    "home",
    "True",
    "False",
    "false",
    "bjensen",
    "Babs",
    "2819c223-7f76-453a-919d-413861904646",
    "m-1",
    "m-2",
    "2011-05-13T04:42:34Z",
    "not a date",
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
    "urn:ietf:params:scim:api:messages:2.0:PatchOp",
    "password eq \"s3cret\"",
    "password eq s3cret",
    "userName eq \"x\" and password pr",
    "password",
    "add",
    "remove",
    "replace",
    "members",
    "emails[type eq \"work\"].value",
];

fn scim_string() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(STRINGS).prop_map(str::to_owned), 1 => any::<String>()]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => select(KEYS).prop_map(str::to_owned), 1 => "[a-zA-Z$.:_-]{0,12}"]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        scim_string().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key(), inner), 0..6).prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// PATCH paths: realistic ones for both resource types (including readOnly, immutable,
/// extension and unknown targets), and arbitrary strings.
const PATCH_PATHS: &[&str] = &[
    "members",
    "members[value eq \"m-1\"]",
    "members[value eq \"m-2\"].display",
    "members[value eq \"nobody\"]",
    "members[display sw \"B\"]",
    "displayName",
    "externalId",
    "id",
    "meta",
    "meta.lastModified",
    "schemas",
    "userName",
    "active",
    "nickName",
    "password",
    "name",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails[type eq \"work\"]",
    "emails[type eq \"work\"].value",
    "emails[type eq \"home\"].primary",
    "emails[primary eq true]",
    "emails.value",
    "phoneNumbers[type eq \"mobile\"].value",
    "addresses[type eq \"work\"].streetAddress",
    "roles",
    "roles[primary eq \"True\"].value",
    "groups",
    "x509Certificates",
    "manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
    "urn:ietf:params:scim:schemas:extension:other:1.0:User:x",
    "unknownAttribute",
    "emails[type eq work]",
];

/// What a value for a path looks like, so that many generated operations succeed and reach
/// the deeper parts of `apply`.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Text,
    Flag,
    Members,
    Member,
    Emails,
    Email,
    Name,
    Manager,
    Enterprise,
}

const TYPED_PATHS: &[(&str, Shape)] = &[
    ("members", Shape::Members),
    ("members[value eq \"m-1\"]", Shape::Member),
    ("members[value eq \"m-2\"].display", Shape::Text),
    ("members[type eq \"User\"].display", Shape::Text),
    ("displayName", Shape::Text),
    ("externalId", Shape::Text),
    ("userName", Shape::Text),
    ("nickName", Shape::Text),
    ("title", Shape::Text),
    ("active", Shape::Flag),
    ("password", Shape::Text),
    ("name", Shape::Name),
    ("name.givenName", Shape::Text),
    ("emails", Shape::Emails),
    ("emails[type eq \"work\"]", Shape::Email),
    ("emails[type eq \"work\"].value", Shape::Text),
    ("emails[type eq \"home\"].primary", Shape::Flag),
    ("emails[primary eq true].type", Shape::Text),
    ("roles[primary eq true].value", Shape::Text),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        Shape::Enterprise,
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        Shape::Manager,
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        Shape::Text,
    ),
    (
        "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
        Shape::Text,
    ),
];

fn member() -> impl Strategy<Value = Value> {
    (select(vec!["m-1", "m-2", "m-3", "new"]), option::of(scim_string())).prop_map(|(id, display)| match display {
        Some(display) => json!({"value": id, "display": display}),
        None => json!({"value": id}),
    })
}

fn email() -> impl Strategy<Value = Value> {
    (
        scim_string(),
        select(vec!["work", "home", "other"]),
        option::of(any::<bool>()),
    )
        .prop_map(|(value, kind, primary)| match primary {
            Some(primary) => json!({"value": value, "type": kind, "primary": primary}),
            None => json!({"value": value, "type": kind}),
        })
}

fn shaped(shape: Shape) -> BoxedStrategy<Value> {
    match shape {
        Shape::Text => scim_string().prop_map(Value::String).boxed(),
        Shape::Flag => prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            select(vec!["True", "False"]).prop_map(Value::from)
        ]
        .boxed(),
        Shape::Members => vec(member(), 0..4).prop_map(Value::Array).boxed(),
        Shape::Member => member().boxed(),
        Shape::Emails => vec(email(), 0..3).prop_map(Value::Array).boxed(),
        Shape::Email => email().boxed(),
        Shape::Name => (scim_string(), scim_string())
            .prop_map(|(g, f)| json!({"givenName": g, "familyName": f}))
            .boxed(),
        Shape::Manager => prop_oneof![
            scim_string().prop_map(|id| json!({"value": id})),
            scim_string().prop_map(Value::String)
        ]
        .boxed(),
        Shape::Enterprise => (scim_string(), scim_string())
            .prop_map(|(n, m)| json!({"employeeNumber": n, "manager": {"value": m}}))
            .boxed(),
    }
}

fn typed_path_and_value() -> impl Strategy<Value = (Value, Option<Value>)> {
    select(TYPED_PATHS).prop_flat_map(|(path, shape)| (Just(Value::from(path)), option::weighted(0.95, shaped(shape))))
}

fn patch_path() -> impl Strategy<Value = Value> {
    prop_oneof![
        16 => select(PATCH_PATHS).prop_map(Value::from),
        1 => grammarish().prop_map(Value::String),
        1 => json_leaf(),
    ]
}

fn patch_value() -> impl Strategy<Value = Value> {
    let partial = vec((key(), json_leaf()), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()));
    prop_oneof![
        json_leaf(),
        vec(member(), 0..4).prop_map(Value::Array),
        vec(email(), 0..3).prop_map(Value::Array),
        partial,
        json_value(),
    ]
}

fn patch_operation() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        16 => select(vec!["add", "remove", "replace"]).prop_map(Value::from),
        1 => select(vec!["Add", "Replace", "Remove", "delete", ""]).prop_map(Value::from),
        1 => json_leaf(),
    ];
    // Without a path, `add` and `replace` need an object of attributes.
    let partial = vec((select(KEYS).prop_map(str::to_owned), patch_value()), 1..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    let path_and_value = prop_oneof![
        4 => typed_path_and_value().prop_map(|(path, value)| (Some(path), value)),
        2 => (patch_path(), option::weighted(0.9, patch_value())).prop_map(|(path, value)| (Some(path), value)),
        1 => option::weighted(0.95, partial).prop_map(|value| (None, value)),
    ];
    (
        option::weighted(0.98, op),
        path_and_value,
        option::weighted(0.02, (key(), json_leaf())),
    )
        .prop_map(|(op, (path, value), extra)| {
            let mut m = Map::new();
            for (k, v) in [("op", op), ("path", path), ("value", value)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

fn patch_body() -> impl Strategy<Value = Value> {
    let well_formed =
        vec(patch_operation(), 1..4).prop_map(|ops| json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}));
    prop_oneof![8 => well_formed, 1 => json_value(), 1 => vec(patch_operation(), 0..3).prop_map(|ops| json!({"Operations": ops}))]
}

fn sample_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "roles": [{"value": "Admin", "primary": true}],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        }
    })
}

fn sample_group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [
            {"value": "m-1", "display": "Babs Jensen", "type": "User"},
            {"value": "m-2", "display": "Mandy Pepperidge", "type": "User"},
            {"value": "m-3", "display": "Admins", "type": "Group"}
        ],
        "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    })
}

/// A body shaped like a User (or Group), with arbitrary members mixed in.
fn resource_body() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        vec((key(), prop_oneof![json_leaf(), patch_value()]), 0..5),
    )
        .prop_map(|(user, extra)| {
            let mut body = if user { sample_user() } else { sample_group() };
            if let Value::Object(members) = &mut body {
                for (k, v) in extra {
                    members.insert(k, v);
                }
            }
            body
        })
}

/// Every member naming a password is null or redacted.
fn no_password_left(value: &Value) -> bool {
    nothing_left(value, &names_password)
}

/// Every member `redacted` names is null or redacted.
fn nothing_left(value: &Value, redacted: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|item| nothing_left(item, redacted)),
        Value::Object(members) => members.iter().all(|(k, v)| {
            if redacted(k) {
                v.is_null() || v == REDACTED
            } else {
                nothing_left(v, redacted)
            }
        }),
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn patch_never_panics_and_failed_patches_change_nothing(body in patch_body()) {
        let Ok(request) = PatchRequest::from_json(&body) else { return Ok(()) };
        for (resource, rt) in [(sample_user(), &USER_TYPE), (sample_group(), &GROUP_TYPE)] {
            let mut patched = resource.clone();
            match request.apply(&mut patched, rt) {
                Ok(()) => {
                    let _ = check_input(&patched, rt);
                }
                Err(err) => prop_assert_eq!(&patched, &resource, "{} left the resource changed", err),
            }
        }
    }

    #[test]
    fn patch_from_arbitrary_json_never_panics(body in json_value()) {
        if let Ok(request) = PatchRequest::from_json(&body) {
            let mut user = sample_user();
            let _ = request.apply(&mut user, &USER_TYPE);
            let mut group = sample_group();
            let _ = request.apply(&mut group, &GROUP_TYPE);
        }
    }

    #[test]
    fn redaction_never_panics_leaves_no_password_and_is_idempotent(body in prop_oneof![json_value(), patch_body(), resource_body()]) {
        let mut once = body;
        redact_passwords(&mut once);
        prop_assert!(no_password_left(&once), "{}", once);
        let mut twice = once.clone();
        redact_passwords(&mut twice);
        prop_assert_eq!(twice, once);
    }

    #[test]
    fn chosen_attribute_redaction_leaves_none_and_is_idempotent(body in prop_oneof![json_value(), patch_body(), resource_body()]) {
        let redaction = Redaction::new(&["emails".to_owned(), "urn:ietf:params:scim:schemas:core:2.0:User:displayName".to_owned()]).unwrap();
        let mut once = body;
        redaction.redact(&mut once);
        prop_assert!(nothing_left(&once, &|name| redaction.names(name)), "{}", once);
        let mut twice = once.clone();
        redaction.redact(&mut twice);
        prop_assert_eq!(&twice, &once);
        // What replay sends holds no member that was redacted.
        let mut stripped = once;
        redaction.strip_redacted(&mut stripped);
        prop_assert!(!has_redacted_member(&stripped, &redaction), "{}", stripped);
    }

    #[test]
    fn check_input_never_panics_and_is_idempotent(body in prop_oneof![json_value(), resource_body()], user in any::<bool>()) {
        let rt = if user { &USER_TYPE } else { &GROUP_TYPE };
        if let Ok(checked) = check_input(&body, rt) {
            let again = check_input(&Value::Object(checked.clone()), rt);
            prop_assert_eq!(again.as_ref().ok(), Some(&checked), "{:?}", again);
        }
    }
}

// === (c) arbitrary filter trees survive print → parse ===

/// Attribute names: `[a-zA-Z][a-zA-Z0-9_-]*`, `$ref`, and words that are keywords elsewhere.
fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z][a-zA-Z0-9_-]{0,10}",
        1 => Just("$ref".to_owned()),
        2 => select(vec!["not", "NOT", "and", "Or", "pr", "eq", "true", "False", "null", "urn", "e", "E"]).prop_map(str::to_owned),
    ]
}

fn urn() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER",
        ])
        .prop_map(str::to_owned),
        vec("[a-zA-Z0-9._-]{1,8}", 1..5).prop_map(|segments| format!("urn:{}", segments.join(":"))),
    ]
}

fn attr_path(with_sub: bool) -> impl Strategy<Value = AttrPath> {
    let sub = if with_sub {
        option::of(attr_name()).boxed()
    } else {
        Just(None).boxed()
    };
    (option::weighted(0.2, urn()), attr_name(), sub).prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
}

/// Any finite f64 (serde_json's `float_roundtrip` makes every one survive print → parse).
fn finite_f64() -> impl Strategy<Value = Number> {
    any::<f64>().prop_filter_map("finite", Number::from_f64)
}

fn comp_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        any::<i64>().prop_map(|i| CompValue::Number(i.into())),
        finite_f64().prop_map(CompValue::Number),
        any::<String>().prop_map(CompValue::String),
    ]
}

fn attr_test() -> impl Strategy<Value = AttrTest> {
    prop_oneof![
        1 => Just(AttrTest::Present),
        4 => (select(CompareOp::ALL.to_vec()), comp_value()).prop_map(|(op, value)| AttrTest::Compare(op, value)),
    ]
}

fn attr_filter() -> impl Strategy<Value = Filter> {
    (attr_path(true), attr_test()).prop_map(|(path, test)| Filter::Attr { path, test })
}

/// `and`/`or`/`not` over `leaf`.
fn logical(leaf: BoxedStrategy<Filter>, depth: u32, size: u32) -> BoxedStrategy<Filter> {
    leaf.prop_recursive(depth, size, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::and(l, r)),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::or(l, r)),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
    .boxed()
}

/// A value filter: no value path inside.
fn value_filter() -> BoxedStrategy<Filter> {
    logical(attr_filter().boxed(), 3, 8)
}

/// A value path, outside brackets: its attribute has no sub-attribute; it may have the
/// `].sub op value` tail.
fn value_path() -> impl Strategy<Value = Filter> {
    (
        attr_path(false),
        value_filter(),
        option::weighted(0.3, (attr_name(), attr_test())),
    )
        .prop_map(|(path, filter, then)| Filter::ValuePath {
            path,
            filter: Box::new(filter),
            then: then.map(|(sub, test)| SubAttrTest { sub, test }),
        })
}

fn filter_tree() -> BoxedStrategy<Filter> {
    logical(prop_oneof![3 => attr_filter(), 1 => value_path()].boxed(), 5, 24)
}

fn patch_path_tree() -> impl Strategy<Value = PatchPath> {
    (attr_path(true), option::of(value_filter())).prop_map(|(attr, filter)| PatchPath { attr, filter })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn filter_trees_survive_print_and_parse(filter in filter_tree()) {
        let printed = filter.to_string();
        let reparsed = Filter::parse(&printed);
        prop_assert_eq!(reparsed.as_ref(), Ok(&filter), "printed as {}", printed);
        prop_assert_eq!(reparsed.map(|f| f.to_string()), Ok(printed));
        let _ = filter.matches(&sample_user(), &USER_TYPE);
    }

    #[test]
    fn path_trees_survive_print_and_parse(attr in attr_path(true), patch in patch_path_tree()) {
        prop_assert_eq!(AttrPath::parse(&attr.to_string()), Ok(attr));
        prop_assert_eq!(PatchPath::parse(&patch.to_string()), Ok(patch));
    }
}

proptest! {
    /// `Filter::parse(&f.to_string()) == f` for every finite f64 literal. Regression: without
    /// serde_json's `float_roundtrip`, `a eq 1.0715660391465826e-75` drifted to `…823e-75`.
    #[test]
    fn f64_literals_round_trip(n in finite_f64()) {
        let filter = Filter::compare(AttrPath::named("a"), CompareOp::Eq, CompValue::Number(n));
        prop_assert_eq!(Filter::parse(&filter.to_string()), Ok(filter));
    }
}
