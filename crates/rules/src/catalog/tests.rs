use super::*;
use crate::{builtin_profile, Action, RequestAction};

fn source(path: &str, text: &str) -> RuleSource {
    RuleSource {
        path: path.to_owned(),
        text: text.to_owned(),
    }
}

/// A profile file named `name` in `/rules`, extending `base` (none when empty), with these
/// `[[rule]]` entries (TOML text).
fn file(name: &str, base: &str, rules: &str) -> RuleSource {
    let extends = match base {
        "" => String::new(),
        base => format!("extends = \"{base}\"\n"),
    };
    source(
        &format!("/rules/{name}.toml"),
        &format!("[profile]\nname = \"{name}\"\ndescription = \"{name}'s rules\"\n{extends}{rules}"),
    )
}

fn ids(profile: &Profile) -> Vec<&str> {
    profile.rules.iter().map(|rule| rule.id.as_str()).collect()
}

fn resolved(sources: &[RuleSource]) -> Catalog {
    let resolution = Catalog::resolve(sources).unwrap();
    assert!(resolution.errors.is_empty(), "{:?}", resolution.errors);
    resolution.catalog
}

/// The one error `sources` resolve with, as text.
fn error_of(sources: &[RuleSource]) -> String {
    let resolution = Catalog::resolve(sources).unwrap();
    assert_eq!(resolution.errors.len(), 1, "{:?}", resolution.errors);
    resolution.errors[0].to_string()
}

const DROP_NULLS: &str = "[[rule]]\nid = \"N15\"\naction = \"drop_nulls\"\nwhy = \"the application refuses nulls\"\n";

#[test]
fn a_profile_extending_a_bundled_one_adds_replaces_and_disables_rules_by_id() {
    let okta = builtin_profile("okta").unwrap().unwrap();
    let text = format!(
        "{DROP_NULLS}after = \"N14\"\n\
         [[rule]]\nid = \"N10\"\nreplace = true\naction = \"canonical_query\"\ndrop_params = [\"tenant\"]\nwhy = \"the IdP here adds its tenant\"\n\
         [[rule]]\nid = \"R5\"\ndisable = true\nwhy = \"the application pages in a stable order\"\n\
         [[rule]]\nid = \"X1\"\naction = \"drop_null_refs\"\nwhy = \"ours\"\n\
         [[rule]]\nid = \"N22\"\nreplace = true\nbefore = \"N9\"\naction = \"scim_content_type\"\nwhy = \"first\"\n"
    );
    let catalog = resolved(&[file("acme", "okta", &text)]);
    let acme = catalog.get("acme").unwrap();
    assert_eq!(acme.origin, Origin::File("/rules/acme.toml".to_owned()));
    assert_eq!(acme.extends.as_deref(), Some("okta"));
    assert_eq!(acme.description, "acme's rules");
    assert_eq!(
        acme.disabled,
        [Disabled {
            id: "R5".to_owned(),
            why: "the application pages in a stable order".to_owned()
        }]
    );

    // What okta has, with N15 after N14, N22 moved first, R5 gone, X1 at the end.
    let mut expected: Vec<&str> = ids(&okta)
        .into_iter()
        .filter(|id| !matches!(*id, "R5" | "N22"))
        .collect();
    let n14 = expected.iter().position(|id| *id == "N14").unwrap();
    expected.insert(n14 + 1, "N15");
    expected.insert(0, "N22");
    expected.push("X1");
    assert_eq!(ids(acme), expected);

    let rule = |id: &str| acme.rules.iter().find(|r| r.id == id).unwrap();
    assert_eq!(
        rule("N10").action,
        Action::Request(RequestAction::CanonicalQuery {
            drop_params: vec!["tenant".to_owned()]
        })
    );
    assert_eq!(rule("N10").why, "the IdP here adds its tenant");
    // N10 was replaced where it stood: after N9 (N22, moved, is before both).
    let at = |profile: &Profile, id: &str| profile.rules.iter().position(|r| r.id == id);
    assert_eq!(at(acme, "N10").unwrap(), at(acme, "N9").unwrap() + 1);
    assert_eq!(at(&okta, "N10").unwrap(), at(&okta, "N9").unwrap() + 1);
    assert_ne!(acme.version(), okta.version());
    // The bundled profile is untouched.
    assert_eq!(catalog.get("okta").unwrap().rules, okta.rules);
}

#[test]
fn a_chain_of_operator_files_resolves_whatever_their_order() {
    let sources = [
        file(
            "c",
            "b",
            "[[rule]]\nid = \"N15\"\ndisable = true\nwhy = \"c does not want it\"\n",
        ),
        file(
            "b",
            "a",
            "[[rule]]\nid = \"X2\"\naction = \"drop_null_refs\"\nwhy = \"b\"\n",
        ),
        file("a", "generic", DROP_NULLS),
    ];
    let catalog = resolved(&sources);
    let generic = ids(catalog.get("generic").unwrap()).join(" ");
    assert_eq!(ids(catalog.get("a").unwrap()).join(" "), format!("{generic} N15"));
    assert_eq!(ids(catalog.get("b").unwrap()).join(" "), format!("{generic} N15 X2"));
    assert_eq!(ids(catalog.get("c").unwrap()).join(" "), format!("{generic} X2"));
    // Listed after the bundled ones, by name.
    let names = catalog.names();
    assert_eq!(names[names.len() - 3..], ["a", "b", "c"]);
    assert_eq!(catalog.operators().count(), 3);
}

#[test]
fn cycles_are_refused_naming_every_file_in_them() {
    let sources = [
        file("a", "b", DROP_NULLS),
        file("b", "a", DROP_NULLS),
        file("c", "a", DROP_NULLS),
        file("self", "self", DROP_NULLS),
        file("fine", "okta", DROP_NULLS),
    ];
    let resolution = Catalog::resolve(&sources).unwrap();
    let errors: Vec<String> = resolution.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let cycle = "extends in a cycle: a (/rules/a.toml) extends b (/rules/b.toml) extends a";
    assert_eq!(errors[0], format!("rule file /rules/a.toml: {cycle}"));
    assert_eq!(errors[1], format!("rule file /rules/b.toml: {cycle}"));
    assert_eq!(
        errors[2],
        "rule file /rules/c.toml: extends \"a\" (/rules/a.toml), which is refused: see its error"
    );
    assert_eq!(
        errors[3],
        "rule file /rules/self.toml: extends in a cycle: self (/rules/self.toml) extends self"
    );
    // What does resolve still does.
    assert!(resolution.catalog.get("fine").is_some());
    assert!(resolution.catalog.get("a").is_none());
}

#[test]
fn what_a_file_cannot_mean_is_refused_with_its_file_and_reason() {
    let cases = [
        (
            file("x", "nobody", DROP_NULLS),
            "rule file /rules/x.toml: extends \"nobody\": no profile has that name; there are okta, entra, onelogin, jumpcloud, google, ping, generic, x",
        ),
        (
            file("x", "okta", "[[rule]]\nid = \"N99\"\nreplace = true\naction = \"drop_nulls\"\nwhy = \"w\"\n"),
            "rule N99: okta has no rule N99 to replace",
        ),
        (
            file("x", "okta", "[[rule]]\nid = \"N99\"\ndisable = true\nwhy = \"w\"\n"),
            "rule N99: okta has no rule N99 to disable",
        ),
        (
            file("x", "okta", "[[rule]]\nid = \"N1\"\naction = \"lowercase_patch_ops\"\nwhy = \"w\"\n"),
            "rule N1: okta has a rule N1 already: say replace = true to replace it, or disable = true to turn it off",
        ),
        (
            file("x", "okta", &format!("{DROP_NULLS}before = \"N99\"\n")),
            "rule N15: before = \"N99\", and there is no rule N99 to place it against",
        ),
        (
            file("x", "okta", &format!("[[rule]]\nid = \"R5\"\ndisable = true\nwhy = \"w\"\n{DROP_NULLS}after = \"R5\"\n")),
            "rule N15: after = \"R5\", and there is no rule R5 to place it against",
        ),
        (
            source("/rules/x.toml", "[profile]\nname = \"y\"\ndescription = \"d\"\n"),
            "rule file /rules/x.toml: [profile] name is \"y\": a rule file is named after its profile (y.toml)",
        ),
        (
            file("okta", "okta", DROP_NULLS),
            "profile \"okta\" has the name of a bundled profile, which a route naming it must keep getting: name yours otherwise (and its file), with extends = \"okta\" to build on it",
        ),
        (
            file("x", "okta", "[[rule]]\nid = \"N1\"\naction = \"shout\"\nwhy = \"w\"\n"),
            "rule file /rules/x.toml: rule N1: unknown variant `shout`",
        ),
    ];
    for (source, expected) in cases {
        let error = error_of(std::slice::from_ref(&source));
        assert!(error.contains(expected), "{error:?} should say {expected:?}");
        assert!(error.contains("/rules/"), "{error:?} names the file");
    }
    // A file's entries apply in their order: placing against a rule disabled later in the
    // same file works; placing against it once it is gone does not (above).
    let ok = file(
        "x",
        "okta",
        &format!("{DROP_NULLS}after = \"R5\"\n[[rule]]\nid = \"R5\"\ndisable = true\nwhy = \"w\"\n"),
    );
    assert!(resolved(&[ok]).get("x").is_some());

    let twice = [
        file("x", "okta", DROP_NULLS),
        source("/other/x.toml", "[profile]\nname = \"x\"\ndescription = \"d\"\n"),
    ];
    assert_eq!(
        error_of(&twice),
        "rule file /other/x.toml: profile \"x\" is also defined by /rules/x.toml"
    );
}

#[test]
fn a_file_that_does_not_parse_refuses_the_files_built_on_it_by_name() {
    let sources = [
        source("/rules/broken.toml", "[profile]\nname = \"broken\"\n"),
        file("child", "broken", DROP_NULLS),
    ];
    let resolution = Catalog::resolve(&sources).unwrap();
    let errors: Vec<String> = resolution.errors.iter().map(ToString::to_string).collect();
    assert!(
        errors[0].starts_with("rule file /rules/broken.toml: TOML parse error at line 1"),
        "{errors:?}"
    );
    assert!(errors[0].contains("missing field `description`"), "{errors:?}");
    assert_eq!(
        errors[1],
        "rule file /rules/child.toml: extends \"broken\" (/rules/broken.toml), which is refused: see its error"
    );
}

#[test]
fn the_version_is_a_hash_of_the_rules_as_resolved_and_of_nothing_else() {
    let okta = builtin_profile("okta").unwrap().unwrap();
    let generic = builtin_profile("generic").unwrap().unwrap();
    assert_eq!(okta.version().len(), 16);
    assert!(okta.version().chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(okta.version(), generic.version());

    // Stable across releases: records compare it with the rules of another day. Changing the
    // canonical form changes every version; if that is meant, say so in the release notes.
    assert_eq!(rules_version(&[]), "f328aa0b69f54eb2");
    let catalog = resolved(&[file("plain", "", DROP_NULLS)]);
    assert_eq!(catalog.get("plain").unwrap().version(), "7995c55a6bdf7e9c");

    // Two files that resolve to the same rules have the same version: okta extended with
    // nothing, and okta's rules written out in full under another name and other reasons.
    let mut written_out = String::new();
    for rule in &okta.rules {
        let action = toml::to_string(&rule.action).unwrap();
        written_out.push_str(&format!(
            "[[rule]]\nid = \"{}\"\nwhy = \"reworded\"\n{action}\n",
            rule.id
        ));
    }
    let sources = [
        file("same", "okta", ""),
        file("copy", "", &written_out),
        file(
            "plus-minus",
            "okta",
            &format!("{DROP_NULLS}[[rule]]\nid = \"N15\"\ndisable = true\nwhy = \"w\"\n"),
        ),
    ];
    let resolution = Catalog::resolve(&sources).unwrap();
    // N15 added then disabled in one file is the same id twice: refused.
    assert_eq!(resolution.errors.len(), 1);
    let catalog = resolution.catalog;
    assert_eq!(catalog.get("same").unwrap().version(), okta.version());
    let acting = |profile: &Profile| -> Vec<(String, Action)> {
        profile.rules.iter().map(|r| (r.id.clone(), r.action.clone())).collect()
    };
    assert_eq!(acting(catalog.get("copy").unwrap()), acting(&okta));
    assert_eq!(catalog.get("copy").unwrap().version(), okta.version());

    // What changes it: a parameter, the order, an id, a rule more or less.
    let version_of = |rules: &str| resolved(&[file("v", "", rules)]).get("v").unwrap().version().to_owned();
    let query = |params: &str| format!("[[rule]]\nid = \"N10\"\naction = \"canonical_query\"\nwhy = \"w\"\n{params}\n");
    let nulls = |id: &str| format!("[[rule]]\nid = \"{id}\"\naction = \"drop_nulls\"\nwhy = \"w\"\n");
    let base = version_of(&format!("{}{}", query(""), nulls("N15")));
    assert_eq!(
        base,
        version_of(&format!("{}{}", query("drop_params = []"), nulls("N15"))),
        "a parameter at its default is the default"
    );
    for other in [
        format!("{}{}", query("drop_params = [\"aadOptscim062020\"]"), nulls("N15")),
        format!("{}{}", nulls("N15"), query("")),
        format!("{}{}", query(""), nulls("N16")),
        query(""),
    ] {
        assert_ne!(version_of(&other), base, "{other}");
    }
}

#[test]
fn loading_runs_each_files_cases_and_refuses_the_set_with_a_failing_cases_diff() {
    let case = |expect: &str| {
        format!(
            "[[test]]\nname = \"nulls dropped\"\nmethod = \"POST\"\npath = \"/Users\"\n\
             body = '{{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"a\",\"title\":null}}'\n\
             expect_body = '{expect}'\n"
        )
    };
    let passing = file(
        "acme",
        "okta",
        &format!(
            "{DROP_NULLS}{}",
            case(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a"}"#)
        ),
    );
    let catalog = Catalog::load(std::slice::from_ref(&passing)).unwrap();
    assert!(catalog.get("acme").is_some());
    assert!(catalog.warnings().is_empty(), "{:?}", catalog.warnings());

    let failing = file(
        "acme",
        "okta",
        &case(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a"}"#),
    );
    let error = Catalog::load(&[failing]).unwrap_err();
    assert_eq!(error.errors.len(), 1);
    let text = error.to_string();
    assert!(
        text.starts_with(
            "rule file /rules/acme.toml: profile acme: case \"nulls dropped\" failed: forwarded body differs:"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "forwarded body differs: got      {\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"a\",\"title\":null} expected {\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"a\"}"
        ),
        "the diff, on one line: {text}"
    );
    assert!(!text.contains('\n'), "{text}");
    let ProfileError::Case { failure, .. } = &error.errors[0] else {
        panic!("{error:?}")
    };
    assert!(
        failure.contains("\n  got      {\"schemas\""),
        "the diff's lines kept: {failure}"
    );

    // One bad file refuses the whole set, with every reason.
    let bad = file("bad", "nobody", "");
    let error = Catalog::load(&[passing, bad]).unwrap_err();
    assert_eq!(error.errors.len(), 1, "{error}");
    assert!(error.to_string().contains("/rules/bad.toml"));
}

#[test]
fn profiles_loaded_without_cases_or_a_safe_repair_are_warned_about() {
    let catalog = Catalog::load(&[
        file("untested", "okta", ""),
        file("unsafe", "okta", "[[rule]]\nid = \"N3\"\ndisable = true\nwhy = \"w\"\n"),
    ])
    .unwrap();
    let warnings = catalog.warnings();
    assert!(
        warnings.contains(
            &"profile untested (/rules/untested.toml) has no [[test]] cases: its rules are loaded untested".to_owned()
        ),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w
                .starts_with("profile unsafe (/rules/unsafe.toml) lacks N3, among the repairs safe for every client")),
        "{warnings:?}"
    );
    assert!(Catalog::bundled().unwrap().warnings().is_empty());
}
