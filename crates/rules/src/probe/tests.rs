use super::*;

/// What the strict reference application shows every probe.
fn strict() -> Observations {
    let mut filters = Vec::new();
    for attribute in FILTER_ATTRIBUTES {
        for operator in FILTER_OPERATORS {
            filters.push(FilterCheck {
                attribute: attribute.to_owned(),
                operator: operator.to_owned(),
                correct: Some(true),
            });
        }
    }
    Observations {
        accepts_scim_json: Some(true),
        accepts_json: Some(true),
        answers_content_type: Some("application/scim+json".into()),
        op_case_insensitive: Some(false),
        pathless_patch: Some(true),
        member_filter_path: Some(true),
        value_filter_path: Some(true),
        value_array_removal: Some(ArrayRemoval::Refused),
        empty_members_replace: Some(true),
        member_type_required: Some(false),
        patch: Some(true),
        put: Some(true),
        patch_status: Some(200),
        string_boolean: Some(StringBoolean::Refused),
        user_name_case_exact: Some(false),
        uniqueness: Some(Uniqueness {
            same: Some(409),
            other_case: Some(409),
        }),
        filters,
        advertised_max_results: Some(1000),
        page_cap: None,
        count_honoured: Some(true),
        total_results: Some(true),
        sort_advertised: Some(true),
        sorting: Some(true),
        bulk_advertised: Some(BulkAdvertised {
            supported: true,
            max_operations: Some(1000),
            max_payload_bytes: Some(1_048_576),
        }),
        bulk_works: Some(true),
        etags: Some(Etags {
            advertised: Some(true),
            given: true,
            stale_if_match: Some(412),
        }),
        after_delete: Some(AfterDelete {
            delete_status: 204,
            get_status: 404,
            still_listed: false,
        }),
        after_deactivate: Some(AfterDeactivate {
            reads_inactive: true,
            still_listed: true,
        }),
    }
}

fn set_filter(seen: &mut Observations, attribute: &str, operator: &str, correct: Option<bool>) {
    for f in &mut seen.filters {
        if f.attribute == attribute && f.operator == operator {
            f.correct = correct;
        }
    }
}

/// One case: how the application differs from the strict one, the keys expected (as
/// `key = value`, with the probe named in the comment above it), and the notes expected
/// (substrings, `!` first for a warning).
struct Case {
    name: &'static str,
    change: fn(&mut Observations),
    keys: &'static [(&'static str, &'static str)],
    notes: &'static [&'static str],
    undecided: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "strict application: the defaults, bulk on",
        change: |_| {},
        keys: &[
            ("content_type = \"application/scim+json\"", "content-type"),
            ("patch = true", "patch-support"),
            ("put = true", "put-support"),
            ("value_path_filters = true", "value-filter-path"),
            ("empty_members_replace = true", "empty-members-replace"),
            ("member_type_required = false", "member-type"),
            ("strict_booleans = true", "string-boolean"),
            ("user_name_case_exact = false", "username-case"),
            ("filter_attributes = []", "filters"),
            ("filter_operators = []", "filters"),
            ("max_results = 1000", "paging"),
            ("sorting = true", "sorting"),
            ("bulk = true", "bulk"),
            ("max_bulk_operations = 1000", "bulk"),
            ("max_bulk_payload_bytes = 1048576", "bulk"),
        ],
        notes: &["a successful PATCH is answered 200", "stale If-Match is refused 412"],
        undecided: &[],
    },
    Case {
        name: "JSON only",
        change: |s| s.accepts_scim_json = Some(false),
        keys: &[("content_type = \"application/json\"", "content-type")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "neither media type",
        change: |s| {
            s.accepts_scim_json = Some(false);
            s.accepts_json = Some(false);
        },
        keys: &[],
        notes: &["!a create was refused with either media type"],
        undecided: &["content_type"],
    },
    Case {
        name: "no PATCH",
        change: |s| s.patch = Some(false),
        keys: &[("patch = false", "patch-support"), ("put = true", "put-support")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "neither PATCH nor PUT",
        change: |s| {
            s.patch = Some(false);
            s.put = Some(false);
        },
        keys: &[("patch = false", "patch-support"), ("put = false", "put-support")],
        notes: &["!neither PATCH nor PUT"],
        undecided: &[],
    },
    Case {
        name: "member filters not applied",
        change: |s| s.member_filter_path = Some(false),
        keys: &[("value_path_filters = false", "member-filter-path")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "value filters not applied",
        change: |s| s.value_filter_path = Some(false),
        keys: &[("value_path_filters = false", "value-filter-path")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "path probes failed",
        change: |s| {
            s.value_filter_path = None;
            s.member_filter_path = None;
        },
        keys: &[],
        notes: &[],
        undecided: &["value_path_filters"],
    },
    Case {
        name: "member type required, empty replace not applied",
        change: |s| {
            s.member_type_required = Some(true);
            s.empty_members_replace = Some(false);
        },
        keys: &[
            ("member_type_required = true", "member-type"),
            ("empty_members_replace = false", "empty-members-replace"),
        ],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "string booleans taken",
        change: |s| s.string_boolean = Some(StringBoolean::Applied),
        keys: &[("strict_booleans = false", "string-boolean")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "string booleans accepted and ignored",
        change: |s| s.string_boolean = Some(StringBoolean::Ignored),
        keys: &[("strict_booleans = true", "string-boolean")],
        notes: &["!\"active\":\"False\" is answered with success"],
        undecided: &[],
    },
    Case {
        name: "case-exact userNames, duplicates by case",
        change: |s| {
            s.user_name_case_exact = Some(true);
            s.uniqueness = Some(Uniqueness {
                same: Some(409),
                other_case: Some(201),
            });
        },
        keys: &[("user_name_case_exact = true", "username-case")],
        notes: &["!a second create of the same userName got 409, in another casing 201"],
        undecided: &[],
    },
    Case {
        name: "a duplicate answered 400",
        change: |s| {
            s.uniqueness = Some(Uniqueness {
                same: Some(400),
                other_case: Some(400),
            })
        },
        keys: &[],
        notes: &["RFC 7644 says 409 uniqueness"],
        undecided: &[],
    },
    Case {
        name: "filters on externalId and displayName wrong, co and not refused",
        change: |s| {
            set_filter(s, "externalId", "eq", Some(false));
            set_filter(s, "displayName", "eq", Some(false));
            for attribute in FILTER_ATTRIBUTES {
                set_filter(s, attribute, "co", Some(false));
            }
            set_filter(s, "userName", "not", Some(false));
            // Cannot tell on a page that was cut: not held against it.
            set_filter(s, "userName", "ne", None);
        },
        keys: &[
            ("filter_attributes = [\"userName\", \"emails.value\"]", "filters"),
            (
                "filter_operators = [\"eq\", \"ne\", \"sw\", \"ew\", \"pr\", \"gt\", \"ge\", \"lt\", \"le\", \"and\", \"or\"]",
                "filters",
            ),
        ],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "filters ignored altogether",
        change: |s| {
            for f in &mut s.filters {
                f.correct = Some(false);
            }
        },
        keys: &[
            ("filter_attributes = [\"id\"]", "filters"),
            ("filter_operators = [\"eq\"]", "filters"),
        ],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "a page smaller than advertised",
        change: |s| s.page_cap = Some(2),
        keys: &[("max_results = 2", "paging")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "nothing advertised, a page cap seen",
        change: |s| {
            s.advertised_max_results = None;
            s.page_cap = Some(50);
        },
        keys: &[("max_results = 50", "paging")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "no sorting, though advertised",
        change: |s| s.sorting = Some(false),
        keys: &[("sorting = false", "sorting")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "bulk advertised but failing",
        change: |s| s.bulk_works = Some(false),
        keys: &[("bulk = false", "bulk")],
        notes: &["!/Bulk is advertised but"],
        undecided: &[],
    },
    Case {
        name: "bulk payload above the proxy's body limit",
        change: |s| {
            if let Some(b) = &mut s.bulk_advertised {
                b.max_payload_bytes = Some(10_000_000);
            }
        },
        keys: &[("max_bulk_payload_bytes = 1048576", "bulk")],
        notes: &[],
        undecided: &[],
    },
    Case {
        name: "a deactivation and a deletion that do not take",
        change: |s| {
            s.after_deactivate = Some(AfterDeactivate {
                reads_inactive: false,
                still_listed: true,
            });
            s.after_delete = Some(AfterDelete {
                delete_status: 204,
                get_status: 200,
                still_listed: true,
            });
            s.patch_status = Some(204);
            s.etags = Some(Etags {
                advertised: Some(false),
                given: true,
                stale_if_match: Some(200),
            });
        },
        keys: &[],
        notes: &[
            "!a deactivated user reads back active",
            "!DELETE answered 204; a GET afterwards 200; still listed by userName: a deleted user stays",
            "answered 204 with no body",
            "not enforced",
        ],
        undecided: &[],
    },
    Case {
        name: "nothing observed: every key undecided, nothing emitted",
        change: |s| *s = Observations::default(),
        keys: &[],
        notes: &[],
        undecided: &[
            "content_type",
            "patch",
            "put",
            "value_path_filters",
            "empty_members_replace",
            "member_type_required",
            "strict_booleans",
            "user_name_case_exact",
            "filter_attributes",
            "filter_operators",
            "max_results",
            "sorting",
            "bulk",
        ],
    },
];

#[test]
fn observations_decide_keys_and_notes() {
    for case in CASES {
        let mut seen = strict();
        (case.change)(&mut seen);
        let decision = decide(&seen, 1024 * 1024);
        let block = decision.toml("http://app.test/scim");
        for (line, probe) in case.keys {
            let at = block
                .lines()
                .position(|l| l == *line)
                .unwrap_or_else(|| panic!("{}: no line `{line}` in\n{block}", case.name));
            let comment = block.lines().nth(at - 1).unwrap_or_default();
            assert!(
                comment.starts_with(&format!("# {probe}: ")),
                "{}: `{line}` is under `{comment}`, not probe {probe}",
                case.name
            );
        }
        for note in case.notes {
            let (warning, text) = match note.strip_prefix('!') {
                Some(text) => (true, text),
                None => (false, *note),
            };
            assert!(
                decision
                    .notes
                    .iter()
                    .any(|n| n.warning == warning && n.text.contains(text)),
                "{}: no {} containing {text:?} in {:#?}",
                case.name,
                if warning { "warning" } else { "note" },
                decision.notes
            );
        }
        let undecided: Vec<&str> = decision.undecided.iter().map(|(key, _)| *key).collect();
        assert_eq!(undecided, case.undecided, "{}: undecided", case.name);
        // Every key emitted is one of the target's, once, and every undecided one is absent.
        let mut keys: Vec<&str> = decision.keys.iter().map(|k| k.key).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "{}: a key twice", case.name);
        for key in &undecided {
            assert!(!keys.contains(key), "{}: {key} both decided and not", case.name);
        }
    }
}

/// The block parses as TOML into the very target decided (the configuration's own check of
/// it is the CLI's test), and comments hold no line breaks from what an application said.
#[test]
fn the_block_parses_back_into_the_target() {
    for case in CASES {
        let mut seen = strict();
        (case.change)(&mut seen);
        seen.answers_content_type = Some("text/plain\n[evil]\nx = 1".into());
        let decision = decide(&seen, 1024 * 1024);
        let block = decision.toml("http://app.test/scim\n[more]");
        let parsed: toml::Table = toml::from_str(&block).unwrap_or_else(|e| panic!("{}: {e}\n{block}", case.name));
        assert_eq!(parsed.keys().collect::<Vec<_>>(), ["route"], "{}", case.name);
        let route = parsed["route"].as_table().unwrap();
        assert_eq!(route.keys().collect::<Vec<_>>(), ["target"], "{}", case.name);
        let target: Target = route["target"].clone().try_into().unwrap();
        assert_eq!(target, decision.target, "{}", case.name);
    }
}

#[test]
fn every_probe_has_its_own_name() {
    let mut names: Vec<&str> = Probe::ALL.iter().map(|p| p.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Probe::ALL.len());
}
