//! The filter corpus (`tests/fixtures/filters/{valid,invalid}.txt` at the workspace root) and a
//! PATCH-path corpus: every valid entry parses and round-trips through the canonical printer,
//! every invalid entry fails at exactly the listed byte offset with the right `scimType`.

use scimtrail_scim::filter::ParseError;
use scimtrail_scim::schema::{GROUP_TYPE, USER_TYPE};
use scimtrail_scim::{AttrPath, Filter, PatchPath, ScimType};
use serde_json::json;

const VALID: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/filters/valid.txt"
));
const INVALID: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/filters/invalid.txt"
));

/// The non-comment, non-empty lines of a fixture, with their 1-based line numbers. Lines are
/// taken literally: surrounding spaces are part of the filter.
fn entries(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

fn valid_filters() -> Vec<(usize, &'static str)> {
    entries(VALID)
}

/// The entries of invalid.txt as (line, offset, filter); a malformed line is an error.
fn invalid_filters() -> Result<Vec<(usize, usize, &'static str)>, String> {
    entries(INVALID)
        .into_iter()
        .map(|(line, entry)| {
            let (offset, filter) = entry
                .split_once('\t')
                .ok_or_else(|| format!("invalid.txt:{line}: expected OFFSET<TAB>FILTER: {entry:?}"))?;
            let offset = offset
                .parse()
                .map_err(|e| format!("invalid.txt:{line}: bad offset {offset:?}: {e}"))?;
            Ok((line, offset, filter))
        })
        .collect()
}

#[test]
fn corpus_is_large_enough() {
    let valid = valid_filters().len();
    let invalid = invalid_filters().unwrap().len();
    assert!(valid >= 100, "valid.txt has only {valid} filters");
    assert!(invalid >= 50, "invalid.txt has only {invalid} filters");
}

#[test]
fn valid_filters_parse_and_round_trip() {
    let mut failures = Vec::new();
    for (line, input) in valid_filters() {
        let filter = match Filter::parse(input) {
            Ok(filter) => filter,
            Err(e) => {
                failures.push(format!("valid.txt:{line}: {input:?} does not parse: {e}"));
                continue;
            }
        };
        let printed = filter.to_string();
        match Filter::parse(&printed) {
            Ok(reparsed) if reparsed == filter => {
                let reprinted = reparsed.to_string();
                if reprinted != printed {
                    failures.push(format!("valid.txt:{line}: {input:?}: printing is not idempotent: {printed:?} then {reprinted:?}"));
                }
            }
            Ok(reparsed) => failures.push(format!(
                "valid.txt:{line}: {input:?}: canonical form {printed:?} parses to a different tree:\n  {filter:?}\n  {reparsed:?}"
            )),
            Err(e) => failures.push(format!("valid.txt:{line}: {input:?}: canonical form {printed:?} does not parse: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_filters_fail_at_the_listed_offset() {
    let mut failures = Vec::new();
    for (line, offset, input) in invalid_filters().unwrap() {
        match Filter::parse(input) {
            Ok(filter) => failures.push(format!("invalid.txt:{line}: {input:?} parses, as {filter}")),
            Err(e) => {
                if e.offset != offset {
                    failures.push(format!(
                        "invalid.txt:{line}: {input:?}: offset {} (expected {offset}): {e}",
                        e.offset
                    ));
                }
                if e.scim_type() != ScimType::InvalidFilter {
                    failures.push(format!("invalid.txt:{line}: {input:?}: scimType {:?}", e.scim_type()));
                }
                if !input.is_char_boundary(e.offset) {
                    failures.push(format!(
                        "invalid.txt:{line}: {input:?}: offset {} is not a character boundary",
                        e.offset
                    ));
                }
                if e.expected.is_empty() || e.found.is_empty() {
                    failures.push(format!("invalid.txt:{line}: {input:?}: empty expected/found: {e:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every valid filter evaluates and checks against both resource types without panicking.
#[test]
fn valid_filters_evaluate() {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "meta": {"created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}
    });
    for (line, input) in valid_filters() {
        let filter = Filter::parse(input).unwrap_or_else(|e| panic!("valid.txt:{line}: {e}"));
        let _ = filter.matches(&user, &USER_TYPE);
        let _ = filter.check(&USER_TYPE);
        let _ = filter.check(&GROUP_TYPE);
        let _ = filter.is_rfc_grammar();
    }
    let filter = Filter::parse(
        r#"emails[type eq "work" and value co "@example.com"] and meta.lastModified ge "2011-05-13T04:42:34Z""#,
    )
    .unwrap();
    assert!(filter.matches(&user, &USER_TYPE));
}

/// `and`/`or` chains are bounded: a chain builds a tree as deep as it is long, and printing,
/// evaluating, comparing and dropping it recurse per level (an unbounded chain of ~5,000
/// operators overflowed the stack of a debug test thread).
#[test]
fn long_operator_chains_are_bounded() {
    let chain = |n: usize, op: &str| {
        let mut text = String::from("userName pr");
        for _ in 0..n {
            text.push_str(op);
            text.push_str("userName pr");
        }
        text
    };
    for op in [" and ", " or "] {
        let longest = chain(1000, op);
        let filter = Filter::parse(&longest).unwrap();
        assert_eq!(filter.to_string(), longest);
        assert_eq!(filter.clone(), filter);
        assert!(filter.matches(&json!({"userName": "x"}), &USER_TYPE));
        assert!(filter.check(&USER_TYPE).is_ok());

        let too_long = chain(1001, op);
        let err = Filter::parse(&too_long).unwrap_err();
        assert_eq!(err.offset, longest.len() + 1, "{err}");
        assert_eq!(err.scim_type(), ScimType::InvalidFilter);
    }
    // Also inside the deepest parentheses and in PATCH paths.
    let nested = format!("{}{}{}", "(".repeat(63), chain(1000, " and "), ")".repeat(63));
    assert_eq!(Filter::parse(&nested).unwrap().to_string(), chain(1000, " and "));
    let path = format!("emails[{}]", chain(1001, " or ").replace("userName", "value"));
    assert_eq!(PatchPath::parse(&path).unwrap_err().scim_type(), ScimType::InvalidPath);
}

// === PATCH paths (RFC 7644 §3.5.2 and IDP-QUIRKS.md §0, §1.3, §2.3, §2.5, §9) ===

/// Valid PATCH paths, each already in canonical form.
const VALID_PATCH_PATHS: &[&str] = &[
    // RFC 7644 §3.5.2
    "members",
    "name.familyName",
    r#"addresses[type eq "work"]"#,
    r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
    r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#,
    // RFC 7644 §3.5.2.2, §3.5.2.3
    r#"emails[type eq "work" and value ew "example.com"]"#,
    r#"addresses[type eq "work"].streetAddress"#,
    // IDP-QUIRKS.md §0, §2.3, §9 (Entra per-attribute updates and normalised forms)
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "active",
    "nickName",
    "displayName",
    "externalId",
    "name.givenName",
    r#"emails[type eq "work"].value"#,
    r#"emails[type eq "home"].display"#,
    r#"emails[type eq "home"].primary"#,
    r#"roles[primary eq "True"].value"#,
    "roles.primary",
    "roles",
    "manager",
    r#"members[value eq "7f4b…"]"#,
    r#"members[value eq "<id>"]"#,
    // IDP-QUIRKS.md §2.5 (Entra custom extension attribute)
    "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:CustomAttribute",
    "members.$ref",
];

/// Invalid PATCH paths with the byte offset of the error.
const INVALID_PATCH_PATHS: &[(usize, &str)] = &[
    (0, ""),
    (0, " members"),
    (7, "members "),
    (13, "members.value.display"),
    (20, r#"members[value eq "x""#),
    (21, r#"members[value eq "x"]x"#),
    (22, r#"members[value eq "x"]."#),
    (8, "members[]"),
    (14, r#"members[emails[type eq "a"] pr]"#),
    (14, "name.givenName[value pr]"),
    (22, r#"emails[type eq "work"][value pr]"#),
    (28, r#"emails[type eq "work"].value.display"#),
    // The filter extension `].value eq "x"` is not a path.
    (28, r#"emails[type eq "work"].value eq "x""#),
    // An unquoted value inside the value filter (IDP-QUIRKS.md §2.4 style).
    (15, "emails[type eq work]"),
    (4, "urn:"),
    (15, r#"name.familyName eq "x""#),
];

#[test]
fn valid_patch_paths_parse_and_print_canonically() {
    for input in VALID_PATCH_PATHS {
        let path = PatchPath::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(path.to_string(), *input, "canonical form of {input:?}");
        assert_eq!(
            PatchPath::parse(&path.to_string()).unwrap(),
            path,
            "reparse of {input:?}"
        );
        if path.filter.is_none() {
            assert_eq!(
                AttrPath::parse(input).unwrap(),
                path.attr,
                "{input:?} as an attribute path"
            );
        }
    }
    let path = PatchPath::parse(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#).unwrap();
    assert_eq!(
        path.attr,
        AttrPath {
            urn: None,
            name: "members".into(),
            sub: Some("displayName".into())
        }
    );
    assert_eq!(
        path.filter.unwrap().to_string(),
        r#"value eq "2819c223-7f76-453a-919d-413861904646""#
    );
}

#[test]
fn invalid_patch_paths_fail_at_the_listed_offset() {
    for (offset, input) in INVALID_PATCH_PATHS {
        let err: ParseError = match PatchPath::parse(input) {
            Ok(path) => panic!("{input:?} parses, as {path}"),
            Err(err) => err,
        };
        assert_eq!(err.offset, *offset, "{input:?}: {err}");
        assert_eq!(err.scim_type(), ScimType::InvalidPath, "{input:?}");
    }
}

// === Regressions: each test is named after what broke ===

/// A string that ends in a lone backslash reports an offset one past the end of the input,
/// so `&input[err.offset..]` panics in a caller.
#[test]
fn regression_offset_past_end_after_trailing_backslash() {
    let input = r#"a eq "abc\"#;
    let err = Filter::parse(input).unwrap_err();
    assert!(
        err.offset <= input.len(),
        "offset {} > len {}: {err}",
        err.offset,
        input.len()
    );
}

/// serde_json reports string error columns in bytes; the parser treats them as characters, so
/// every non-ASCII character before a bad escape or control character shifts the offset.
#[test]
fn regression_string_error_offset_after_non_ascii() {
    // The bad escape `\q` starts at byte 8, its `q` at byte 9 (for `"abc\q"` the parser
    // reports the `q`).
    let err = Filter::parse(r#"a eq "é\q""#).unwrap_err();
    assert_eq!(err.offset, 9, "{err}");
    // A raw TAB at byte 8.
    let err = Filter::parse("a eq \"é\tb\"").unwrap_err();
    assert_eq!(err.offset, 8, "{err}");
}

/// A raw line feed inside a string is reported at the opening quote: serde_json's column
/// restarts after the line feed.
#[test]
fn regression_line_feed_in_string() {
    let err = Filter::parse("a eq \"ab\ncd\"").unwrap_err();
    assert_eq!(err.offset, 8, "{err}");
}

/// `skip_ws` accepts LF and CR between tokens, but the `not (` look-ahead accepts only space
/// and TAB, so `not\n(a pr)` is refused while `a pr and\nb pr` is accepted.
#[test]
fn regression_whitespace_after_not() {
    assert!(Filter::parse("a pr and\nb pr").is_ok());
    assert!(
        Filter::parse("not\n(a pr)").is_ok(),
        "{:?}",
        Filter::parse("not\n(a pr)")
    );
}

/// serde_json (without its `float_roundtrip` feature) does not always read back the shortest
/// representation it prints, so a number literal drifts by one ulp per print → parse.
#[test]
fn regression_f64_literal_drifts() {
    let first = Filter::parse("a eq 1.0715660391465826e-75").unwrap();
    let printed = first.to_string();
    assert_eq!(Filter::parse(&printed).unwrap(), first, "printed as {printed}");
}
