use super::*;
use crate::schema::{GROUP_TYPE, USER_TYPE};
use serde_json::{json, Value};

#[track_caller]
fn check_print(input: &str, canonical: &str) {
    let filter = Filter::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
    assert_eq!(filter.to_string(), canonical, "{input}");
    assert_eq!(Filter::parse(canonical).unwrap(), filter, "reparse of {canonical}");
}

#[test]
fn parses_and_prints_canonically() {
    check_print(r#"userName Eq "john""#, r#"userName eq "john""#);
    check_print(r#"title pr"#, "title pr");
    check_print(
        r#"title PR and userType eq "Employee""#,
        r#"title pr and userType eq "Employee""#,
    );
    check_print(
        r#"title pr or userType eq "Intern""#,
        r#"title pr or userType eq "Intern""#,
    );
    check_print(
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
    );
    check_print(r#"((a eq 1))"#, "a eq 1");
    check_print(r#"a eq 1 or b eq 2 and c eq 3"#, "a eq 1 or b eq 2 and c eq 3");
    check_print(r#"(a eq 1 or b eq 2) and c eq 3"#, "(a eq 1 or b eq 2) and c eq 3");
    check_print(r#"a eq 1 and (b eq 2 and c eq 3)"#, "a eq 1 and (b eq 2 and c eq 3)");
    check_print(r#"NOT (a eq 1)"#, "not (a eq 1)");
    check_print(r#"not(a eq 1)"#, "not (a eq 1)");
    check_print(r#"a eq TRUE"#, "a eq true");
    check_print(r#"a eq Null"#, "a eq null");
    check_print(r#"a gt -1.5e3"#, "a gt -1500.0");
    check_print(r#"a eq "\u0041\"\\\n""#, r#"a eq "A\"\\\n""#);
    check_print(
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    );
    check_print(
        r#"emails[type eq "work"].value eq "a@b.c""#,
        r#"emails[type eq "work"].value eq "a@b.c""#,
    );
    check_print(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
    );
    check_print(r#"not eq "x""#, r#"not eq "x""#);
}

#[test]
fn and_binds_tighter_than_or() {
    let filter = Filter::parse("a pr or b pr and c pr").unwrap();
    assert!(matches!(filter, Filter::Or(_, ref right) if matches!(**right, Filter::And(..))));
    let filter = Filter::parse("a pr and b pr or c pr").unwrap();
    assert!(matches!(filter, Filter::Or(ref left, _) if matches!(**left, Filter::And(..))));
}

#[track_caller]
fn check_error(input: &str, offset: usize, expected_fragment: &str) {
    let err = Filter::parse(input).unwrap_err();
    assert_eq!(err.offset, offset, "{input}: {err}");
    assert!(err.expected.contains(expected_fragment), "{input}: {err}");
    assert_eq!(err.scim_type(), crate::ScimType::InvalidFilter);
}

#[test]
fn errors_give_offset_and_expectation() {
    check_error("", 0, "attribute path");
    check_error("userName", 8, "comparison operator");
    check_error("userName xx \"a\"", 9, "comparison operator");
    check_error("userName eq", 11, "space and a value");
    check_error("userName eq ", 12, "value");
    check_error("externalId eq jyoung", 14, "value");
    check_error("userName eq \"abc", 16, "closing");
    check_error("userName eq \"a\" xor b pr", 16, "'and', 'or'");
    check_error("(userName pr", 12, "')'");
    check_error("emails[type eq \"work\"", 21, "']'");
    check_error("emails[type eq \"work\"].", 23, "attribute name");
    check_error("emails[ims[type pr] pr]", 10, "do not nest");
    check_error("a eq \"\\x\"", 7, "valid JSON string");
    check_error("a eq 01", 5, "value");
    check_error("a eq 1x", 5, "value");
    check_error("not (a pr", 9, "')'");
}

#[test]
fn hostile_nesting_is_refused_not_overflowing() {
    let deep = format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Filter::parse(&deep).is_err());
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223",
        "externalId": "Bjensen",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "title": "",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "meta": {"lastModified": "2011-05-13T04:42:34Z", "created": "2010-01-23T04:56:22Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "26118915"}
        },
        "x-custom": 7
    })
}

#[track_caller]
fn check_match(filter: &str, expected: bool) {
    let parsed = Filter::parse(filter).unwrap();
    assert_eq!(parsed.matches(&user(), &USER_TYPE), expected, "{filter}");
}

#[test]
fn evaluation_honours_case_exact_types_and_multi_values() {
    check_match(r#"userName eq "BJENSEN@example.com""#, true); // caseExact false
    check_match(r#"USERNAME sw "bjensen""#, true);
    check_match(r#"externalId eq "bjensen""#, false); // caseExact true
    check_match(r#"externalId eq "Bjensen""#, true);
    check_match(r#"id eq "2819C223""#, false);
    check_match(r#"name.familyName co "ens""#, true);
    check_match(r#"name.givenName ew "ARA""#, true);
    check_match(r#"title pr"#, false); // empty string is not a value
    check_match(r#"nickName pr"#, false);
    check_match(r#"not (nickName pr)"#, true);
    check_match(r#"active eq true"#, true);
    check_match(r#"active ne true"#, false);
    check_match(r#"active eq false"#, false);
    check_match(r#"emails co "jensen.org""#, true);
    check_match(r#"emails.value ew ".org""#, true);
    check_match(r#"emails[type eq "work" and value co "@example.com"]"#, true);
    check_match(r#"emails[type eq "home" and primary eq true]"#, false);
    check_match(r#"emails[type eq "work"].value eq "bjensen@example.com""#, true);
    check_match(r#"emails[type eq "home"].value eq "bjensen@example.com""#, false);
    check_match(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false);
    check_match(r#"meta.lastModified ge "2011-05-13T06:42:34+02:00""#, true); // same instant
    check_match(r#"meta.lastModified lt "2012-01-01T00:00:00Z""#, true);
    check_match(r#"meta.created le "2010-01-23T04:56:22Z""#, true);
    check_match(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
        true,
    );
    check_match(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
        true,
    );
    check_match(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#, true);
    check_match(r#"x-custom gt 6"#, true);
    check_match(r#"x-custom eq 7.0"#, true);
    check_match(r#"nickName eq null"#, true);
    check_match(r#"userName ne null"#, true);
    check_match(r#"nickName ne "x""#, true);
    check_match(r#"userName gt "a" and userName lt "c""#, true);
    check_match(r#"userName eq "x" or name.givenName eq "barbara""#, true);
}

#[track_caller]
fn check_refused(filter: &str, fragment: &str) {
    let err = Filter::parse(filter).unwrap().check(&USER_TYPE).unwrap_err();
    assert!(err.detail.contains(fragment), "{filter}: {err}");
    assert_eq!(err.to_scim_error().scim_type, Some(crate::ScimType::InvalidFilter));
}

#[test]
fn check_refuses_what_the_schema_does_not_allow() {
    check_refused(r#"nope eq "x""#, "unknown attribute 'nope'");
    check_refused(r#"manager eq "x""#, "unknown attribute");
    check_refused(r#"active eq "True""#, "use true or false");
    check_refused(r#"active gt true"#, "only eq, ne and pr");
    check_refused(r#"userName eq 1"#, "use a string");
    check_refused(r#"meta.created gt "yesterday""#, "not an RFC 3339");
    check_refused(r#"name eq "x""#, "complex");
    check_refused(r#"emails[nope eq "x"]"#, "not a sub-attribute");
    check_refused(r#"userName[value eq "x"]"#, "not a complex attribute");
    check_refused(r#"x509Certificates.value gt "x""#, "does not support 'gt'");
    check_refused(r#"emails[type eq "work"].nope eq "x""#, "no sub-attribute 'nope'");
    for ok in [
        r#"userName eq "a""#,
        r#"emails[type eq "work" and primary eq true]"#,
        r#"emails eq "a@b.c""#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"groups.value eq "x""#,
    ] {
        Filter::parse(ok).unwrap().check(&USER_TYPE).unwrap();
    }
    Filter::parse(r#"members[value eq "x"]"#)
        .unwrap()
        .check(&GROUP_TYPE)
        .unwrap();
}

#[test]
fn rfc_grammar_extension_is_reported() {
    assert!(Filter::parse(r#"emails[type eq "work"]"#).unwrap().is_rfc_grammar());
    assert!(!Filter::parse(r#"a pr and emails[type eq "work"].value eq "x""#)
        .unwrap()
        .is_rfc_grammar());
}
