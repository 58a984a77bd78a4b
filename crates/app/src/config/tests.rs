//! The configuration: files, flags and environment resolved into settings, or refused.

use super::*;
use scimtrail_proxy::fingerprint::{self, KeySource};
use scimtrail_proxy::pacing::Pacing;
use scimtrail_proxy::RecordMode;

fn resolve(text: &str, flags: &Overrides) -> Result<Settings, ConfigError> {
    Settings::resolve(RawConfig::from_toml(text, "test.toml")?, flags)
}

#[test]
fn the_fingerprint_key_comes_from_the_configuration_else_beside_a_sqlite_store() {
    let key = |store: &str| {
        let route = "[[route]]\nname = \"a\"\nidp = \"generic\"\nupstream = \"http://127.0.0.1:9\"\n";
        resolve(&format!("[store]\n{store}\n{route}"), &Overrides::default()).map(|s| s.proxy.fingerprint_key)
    };
    assert_eq!(
        key("url = \"sqlite:///data/s.db\"\nfingerprint_key_env = \"KEY\"").unwrap(),
        KeySource::Env("KEY".into())
    );
    assert_eq!(
        key("url = \"postgres://h/db\"\nfingerprint_key_file = \"/k\"").unwrap(),
        KeySource::File("/k".into())
    );
    assert!(key("fingerprint_key_env = \"A\"\nfingerprint_key_file = \"/k\"")
        .unwrap_err()
        .to_string()
        .contains("keep one"));
    if std::env::var_os(fingerprint::KEY_ENV).is_none() {
        assert_eq!(
            key("url = \"sqlite:///data/s.db?mode=rwc\"").unwrap(),
            KeySource::BesideStore("/data/s.db.fingerprint-key".into())
        );
        assert_eq!(key("url = \"postgres://h/db\"").unwrap(), KeySource::Missing);
    }
}

#[test]
fn the_store_url_can_come_from_a_file_above_url_and_below_the_flags() {
    let route = "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\n";
    let file = std::env::temp_dir().join(format!("scimtrail-url-{}", std::process::id()));
    std::fs::write(&file, "postgres://u:secret@db:5432/s\n").unwrap();
    let text = format!(
        "[store]\nurl = \"sqlite://x.db\"\nurl_file = \"{}\"\n{route}",
        file.display()
    );
    let settings = resolve(&text, &Overrides::default()).unwrap();
    assert_eq!(settings.store_url, "postgres://u:secret@db:5432/s");
    assert!(
        !settings.describe().contains("secret"),
        "the password stays out of check-config"
    );
    let flagged = Overrides {
        store: Some("sqlite://flag.db".into()),
        ..Overrides::default()
    };
    assert_eq!(resolve(&text, &flagged).unwrap().store_url, "sqlite://flag.db");
    std::fs::remove_file(&file).unwrap();
    let missing = resolve(&text, &Overrides::default()).unwrap_err().to_string();
    assert!(
        missing.contains("[store] url_file") && missing.contains(&file.display().to_string()),
        "{missing}"
    );
}

#[test]
fn the_example_file_is_valid_and_sets_every_section() {
    let text = include_str!("../../../../config/scimtrail.example.toml");
    let raw = RawConfig::from_toml(text, "scimtrail.example.toml").unwrap();
    assert!(raw.listen.addr.is_some() && raw.admin.addr.is_some() && raw.store.url.is_some());
    assert!(raw.record.mode.is_some() && raw.record.max_body_bytes.is_some() && raw.record.redact_headers.is_some());
    assert!(raw.upstream.timeout_secs.is_some() && raw.log.format.is_some() && !raw.route.is_empty());
    for key in [
        "addr",
        "tls",
        "cert_path",
        "key_path",
        "token_env",
        "url",
        "url_env",
        "url_file",
        "instance",
        "mode",
        "max_body_bytes",
        "max_response_bytes",
        "queue_capacity",
        "queue_max_bytes",
        "max_connections",
        "max_exchanges",
        "max_buffered_bytes",
        "idle_timeout_secs",
        "ready_grace_secs",
        "drain_secs",
        "heartbeat_secs",
        "instance_dead_after_secs",
        "on_store_failure",
        "spool_dir",
        "ok",
        "rejected",
        "failed",
        "unreachable",
        "partial",
        "interrupted",
        "max_store_bytes",
        "prune_every",
        "max_batch",
        "redact_headers",
        "timeout_secs",
        "ca_bundle_path",
        "format",
        "level",
        "name",
        "path_prefix",
        "idp",
        "upstream",
        "upstream_auth",
        "bearer_token_env",
        "basic_username",
        "basic_password_env",
        "header",
        "value_env",
        "idp_token_env",
        "target",
        "content_type",
        "member_type_required",
        "patch",
        "value_path_filters",
        "password_sync",
        "empty_members_replace",
        "filter_attributes",
        "user_name_case_exact",
        "max_results",
        "put",
        "max_patch_operations",
        "max_operation_values",
        "filter_operators",
        "shape_learning",
        "strict_booleans",
        "bulk",
        "sorting",
        "webhook",
        "max_attempts",
        "read_back",
        "first_byte_timeout_secs",
        "body_timeout_secs",
        "max_connections_per_client",
        "trusted_proxies",
        "token_file",
        "allowed_hosts",
        "allow_unauthenticated",
        "idp_token_file",
        "allow_anonymous_idp",
        "bearer_token_file",
        "max_aggregate_results",
        "max_bulk_operations",
        "max_bulk_payload_bytes",
        "fingerprint_key_env",
        "fingerprint_key_file",
        "durability",
        "sync_interval_ms",
        "sqlite_synchronous",
        "dir",
        "max_requests_per_second",
        "max_in_flight",
        "pacing",
        "max_queued",
        "max_wait_secs",
        "max_pause_secs",
        "reconcile",
        "every",
    ] {
        assert!(
            text.contains(&format!("{key} ="))
                || text.contains(&format!("{key} = "))
                || text.contains(&format!("# {key}"))
                || text.contains(&format!(".{key}]")),
            "the example does not document {key}"
        );
    }
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = resolve("[listen]\nadress = \"127.0.0.1:1\"\n", &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("adress"), "{err}");
    let err = resolve(
        "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\nupstrem_auth = {}\n",
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("upstrem_auth"), "{err}");
}

#[test]
fn upstream_flag_alone_is_enough() {
    let settings = resolve(
        "",
        &Overrides {
            upstream: Some("http://127.0.0.1:8180".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(settings.proxy.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.proxy.admin_listen.to_string(), "127.0.0.1:9180");
    assert_eq!(settings.proxy.routes[0].idp, "generic");
    assert_eq!(settings.proxy.record_mode, RecordMode::Durable);
    assert!(resolve("", &Overrides::default())
        .unwrap_err()
        .to_string()
        .contains("no route"));
}

#[test]
fn retention_reads_durations_per_outcome_and_keeps_the_defaults_for_the_rest() {
    let settings = resolve(
        "[retention]\nok = \"12h\"\nfailed = \"forever\"\nmax_store_bytes = 1000000\nprune_every = \"90s\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n",
        &Overrides::default(),
    )
    .unwrap();
    let retention = &settings.proxy.retention;
    assert_eq!(retention.keep_ms["ok"], Some(12 * 3_600_000));
    assert_eq!(retention.keep_ms["failed"], None);
    assert_eq!(retention.keep_ms["rejected"], Some(7 * 86_400_000));
    assert_eq!(retention.keep_ms["partial"], Some(180 * 86_400_000));
    assert_eq!(retention.max_store_bytes, Some(1_000_000));
    assert_eq!(settings.proxy.prune_every, Duration::from_secs(90));
    assert!(
        settings
            .describe()
            .contains("retention = ok 0.5 d, rejected 7 d, failed forever"),
        "{}",
        settings.describe()
    );
}

#[test]
fn on_store_failure_says_what_happens_when_the_store_cannot_be_written() {
    let route = "[[route]]\nname = \"a\"\nupstream = \"http://x\"\n";
    let postgres = Overrides {
        store: Some("postgres://scimtrail@127.0.0.1:5432/scimtrail".into()),
        ..Overrides::default()
    };
    // ([record] lines, flags, fail closed, the spool's directory, a warning)
    type Case<'a> = (&'a str, &'a Overrides, bool, Option<&'a str>, Option<&'a str>);
    let cases: [Case<'_>; 6] = [
        ("", &postgres, true, None, None),
        (
            "on_store_failure = \"spool\"\nspool_dir = \"/var/spool/scimtrail\"\n",
            &postgres,
            true,
            Some("/var/spool/scimtrail"),
            None,
        ),
        (
            "on_store_failure = \"spool\"\n",
            &postgres,
            true,
            Some("scimtrail.spool"),
            None,
        ),
        (
            "on_store_failure = \"spool\"\n",
            &Overrides::default(),
            true,
            None,
            Some("applies to PostgreSQL stores"),
        ),
        (
            "on_store_failure = \"serve_unrecorded\"\n",
            &postgres,
            false,
            None,
            None,
        ),
        (
            "fail_closed = false\n",
            &postgres,
            false,
            None,
            Some("fail_closed is deprecated: write on_store_failure = \"serve_unrecorded\""),
        ),
    ];
    for (record, flags, fail_closed, spool, warning) in cases {
        let settings = resolve(&format!("[record]\n{record}{route}"), flags).unwrap();
        assert_eq!(settings.proxy.fail_closed, fail_closed, "{record}");
        assert_eq!(
            settings.spool_dir.as_deref(),
            spool.map(std::path::Path::new),
            "{record}"
        );
        match warning {
            Some(warning) => assert!(
                settings.warnings.iter().any(|w| w.contains(warning)),
                "{record}: {:?}",
                settings.warnings
            ),
            None => assert!(settings.warnings.is_empty(), "{record}: {:?}", settings.warnings),
        }
    }
    for (record, error) in [
        (
            "on_store_failure = \"retry\"\n",
            "use \"fail_closed\", \"spool\" or \"serve_unrecorded\"",
        ),
        ("on_store_failure = \"spool\"\nfail_closed = true\n", "both set"),
    ] {
        let refused = resolve(&format!("[record]\n{record}{route}"), &postgres)
            .unwrap_err()
            .to_string();
        assert!(refused.contains(error), "{record}: {refused}");
    }
}

#[test]
fn durability_is_chosen_in_record_and_its_older_key_is_an_alias_with_a_warning() {
    let route = "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\n";
    // ([record] lines, [store] lines, durability, sync interval ms, a warning, check-config)
    type Case<'a> = (&'a str, &'a str, Durability, u64, Option<&'a str>, &'a str);
    let cases: [Case<'_>; 7] = [
        ("", "", Durability::Power, 10, None, "\ndurability = power ("),
        (
            "durability = \"power\"\n",
            "",
            Durability::Power,
            10,
            None,
            "\ndurability = power (",
        ),
        (
            "durability = \"process\"\n",
            "",
            Durability::Process,
            10,
            None,
            "\ndurability = process (a record is written before the exchange goes on, and synced within 10 ms",
        ),
        (
            "durability = \"process\"\nsync_interval_ms = 1000\n",
            "",
            Durability::Process,
            1000,
            None,
            "synced within 1000 ms",
        ),
        (
            "",
            "sqlite_synchronous = \"normal\"\n",
            Durability::Process,
            10,
            Some("[store] sqlite_synchronous is deprecated: write [record] durability = \"process\""),
            "\ndurability = process (",
        ),
        (
            "",
            "sqlite_synchronous = \"full\"\n",
            Durability::Power,
            10,
            Some("[store] sqlite_synchronous is deprecated: write [record] durability = \"power\""),
            "\ndurability = power (",
        ),
        (
            "durability = \"process\"\n",
            "sqlite_synchronous = \"normal\"\n",
            Durability::Process,
            10,
            Some("[store] sqlite_synchronous is deprecated"),
            "\ndurability = process (",
        ),
    ];
    for (record, store, durability, interval_ms, warning, described) in cases {
        let text = format!("[store]\n{store}[record]\n{record}{route}");
        let settings = resolve(&text, &Overrides::default()).unwrap();
        assert_eq!(settings.durability, durability, "{text}");
        assert_eq!(settings.sync_interval, Duration::from_millis(interval_ms), "{text}");
        let warnings: Vec<&String> = settings
            .warnings
            .iter()
            .filter(|w| w.contains("sqlite_synchronous"))
            .collect();
        match warning {
            Some(warning) => assert!(
                warnings.len() == 1 && warnings[0].contains(warning),
                "{text}: {warnings:?}"
            ),
            None => assert!(warnings.is_empty(), "{text}: {warnings:?}"),
        }
        let description = settings.describe();
        assert!(description.contains(described), "{text}: {description}");
        // check-config prints the deprecation as it prints every warning.
        if let Some(warning) = warning {
            assert!(description.contains(&format!("warning: {warning}")), "{description}");
        }
    }
    for (record, store, error) in [
        (
            "durability = \"power\"\n",
            "sqlite_synchronous = \"normal\"\n",
            "[record] durability = \"power\" and [store] sqlite_synchronous = \"normal\"",
        ),
        (
            "durability = \"process\"\n",
            "sqlite_synchronous = \"full\"\n",
            "[record] durability = \"process\" and [store] sqlite_synchronous = \"full\"",
        ),
        (
            "durability = \"full\"\n",
            "",
            "[record] durability = \"full\": use \"power\" or \"process\"",
        ),
        (
            "",
            "sqlite_synchronous = \"off\"\n",
            "[store] sqlite_synchronous = \"off\" (deprecated): write [record] durability",
        ),
        (
            "sync_interval_ms = 0\n",
            "",
            "[record] sync_interval_ms = 0: use 1 to 1000",
        ),
        (
            "sync_interval_ms = 1001\n",
            "",
            "[record] sync_interval_ms = 1001: use 1 to 1000",
        ),
        (
            "durability = \"process\"\nsync_interval_ms = 60000\n",
            "",
            "[record] sync_interval_ms = 60000: use 1 to 1000",
        ),
    ] {
        let text = format!("[store]\n{store}[record]\n{record}{route}");
        let refused = resolve(&text, &Overrides::default()).unwrap_err().to_string();
        assert!(refused.contains(error), "{text}: {refused}");
    }
}

#[test]
fn bad_values_are_explained() {
    let cases = [
        ("[[route]]\nname = \"a\"\nidp = \"azure\"\nupstream = \"http://x\"\n", "not one of"),
        ("[[route]]\nname = \"a\"\nupstream = \"ftp://x\"\n", "http:// or https://"),
        ("[[route]]\nname = \"a\"\nupstream = \"https://u:p@x\"\n", "must not carry credentials"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\ntimeout_secs = 0\n", "at least 1"),
        ("[record]\nqueue_max_bytes = 1000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[record] queue_max_bytes = 1000: use at least 1048576"),
        ("[retention]\nok = \"30 days\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[retention] ok = \"30 days\": use a number with s, m, h or d"),
        ("[retention]\nfailed = \"0d\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[retention] failed = \"0d\""),
        ("[retention]\nok = \"99999999999999d\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[retention] ok"),
        ("[retention]\nprune_every = \"forever\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "prune_every cannot be \"forever\""),
        ("[listen]\nidle_timeout_secs = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] idle_timeout_secs = 0: use 1 to 3600"),
        ("[listen]\nmax_exchanges = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] max_exchanges = 0: use 1 to 1000000"),
        ("[listen]\nmax_connections = 2000000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] max_connections = 2000000: use 1 to 1000000"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nupstream_auth = { bearer_token_env = \"SCIMTRAIL_TEST_UNSET_VARIABLE\" }\n", "SCIMTRAIL_TEST_UNSET_VARIABLE is not set"),
        ("[store]\nheartbeat_secs = 5\ninstance_dead_after_secs = 14\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "use at least three heartbeats (15 s with heartbeat_secs = 5)"),
        ("[listen]\nready_grace_secs = 301\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] ready_grace_secs = 301: use 0 to 300"),
        ("[listen]\ndrain_secs = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] drain_secs = 0: use 1 to 3600"),
        ("[listen]\nmax_buffered_bytes = 1000000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] max_buffered_bytes = 1000000 cannot hold one exchange at its limits: use at least [record] max_body_bytes + max_response_bytes = 17825792"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nidp_token_file = \"/dev/null\"\nupstream_auth = { oauth_token_url = \"http://auth.example/token\", oauth_client_id = \"c\", oauth_client_secret_file = \"/dev/null\" }\n", "the client secret would cross the network in clear text"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nupstream_auth = { basic_username = \"u\" }\n", "give basic_password_env or basic_password_file beside basic_username"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nupstream_auth = { basic_username = \"u\", header = \"x-key\" }\n", "exactly one of"),
        ("[record]\nmode = \"eventually\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "durable"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[[route]]\nname = \"a\"\npath_prefix = \"/b\"\nupstream = \"http://x\"\n", "two routes are named"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"ftp://h\"\n", "webhook: url \"ftp://h\" must be an http:// or https:// URL"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.record]\nredact_attributes = [\"userName\"]\n", "[route.record] redact_attributes: \"userName\" cannot be redacted"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.record]\nredact_attributes = [\"name.familyName\"]\n", "give a whole attribute"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"http://h\"\nmax_attempts = 0\n", "max_attempts must be from 1 to 20"),
        ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"http://h\"\nretries = 3\n", "retries"),
    ];
    for (text, fragment) in cases {
        let err = resolve(text, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains(fragment), "{text}: {err}");
    }
}

#[test]
fn a_rules_dir_adds_profiles_routes_name_like_bundled_ones_and_check_config_lists_them() {
    let dir = std::env::temp_dir().join(format!("scimtrail-config-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("acme.toml"),
        "[profile]\nname = \"acme\"\ndescription = \"Okta for Acme\"\nextends = \"okta\"\n\
         [[rule]]\nid = \"R5\"\ndisable = true\nwhy = \"Acme pages stably\"\n\
         [[test]]\nname = \"a lookup\"\nmethod = \"GET\"\npath = \"/Users\"\nquery = \"filter=userName+eq+%22a%22\"\n\
         expect_query = \"filter=userName%20eq%20%22a%22\"\n",
    )
    .unwrap();
    let route = "[[route]]\nname = \"a\"\nidp = \"acme\"\nupstream = \"http://127.0.0.1:9\"\n";
    let in_file = format!("[rules]\ndir = \"{}\"\n{route}", dir.display());
    let settings = resolve(&in_file, &Overrides::default()).unwrap();
    assert_eq!(settings.rules_dir.as_deref(), Some(dir.as_path()));
    let acme = settings.proxy.profiles.get("acme").unwrap();
    let described = settings.describe();
    assert!(
        described.contains(&format!(
            "rules = {}: 1 operator profiles beside the 7 bundled ones, read again on SIGHUP\n  profile acme ({}): extends okta, rules_version {}, {} rules, disables R5, 1 test cases passed\n",
            dir.display(),
            dir.join("acme.toml").display(),
            acme.version(),
            acme.rules.len()
        )),
        "{described}"
    );
    assert!(
        described.contains(&format!("(idp acme, rules_version {},", acme.version())),
        "{described}"
    );
    assert!(
        settings.warnings.is_empty(),
        "tested, with every safe repair: {:?}",
        settings.warnings
    );

    // From the environment (through the overrides), as well.
    let flagged = Overrides {
        rules_dir: Some(dir.display().to_string()),
        ..Overrides::default()
    };
    assert!(resolve(route, &flagged).unwrap().proxy.profiles.get("acme").is_some());

    // Without the directory, the route names nothing there is; the error says where from.
    let error = resolve(route, &Overrides::default()).unwrap_err().to_string();
    assert!(
        error.contains("route \"a\": idp \"acme\" is not one of okta, entra, onelogin, jumpcloud, google, ping, generic (the bundled ones; an operator's own profiles come from [rules] dir)"),
        "{error}"
    );
    let bundled_only = resolve(
        "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\n",
        &Overrides::default(),
    )
    .unwrap();
    assert!(bundled_only.describe().contains(
        "rules = the 7 bundled profiles (okta, entra, onelogin, jumpcloud, google, ping, generic); no [rules] dir\n"
    ));

    // A file that fails refuses the configuration, naming it and why; so does a key the
    // section does not have.
    std::fs::write(
        dir.join("broken.toml"),
        "[profile]\nname = \"broken\"\ndescription = \"d\"\nextends = \"nobody\"\n",
    )
    .unwrap();
    let error = resolve(&in_file, &Overrides::default()).unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "rule file {}: extends \"nobody\"",
            dir.join("broken.toml").display()
        )),
        "{error}"
    );
    std::fs::remove_file(dir.join("broken.toml")).unwrap();
    let error = resolve("[rules]\ndirectory = \"/x\"\n", &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("directory"), "{error}");

    // A profile without cases loads, and check-config warns.
    std::fs::write(
        dir.join("bare.toml"),
        "[profile]\nname = \"bare\"\ndescription = \"d\"\nextends = \"generic\"\n",
    )
    .unwrap();
    let settings = resolve(&in_file, &Overrides::default()).unwrap();
    assert!(
        settings.describe().contains(&format!(
            "warning: [rules] profile bare ({}) has no [[test]] cases: its rules are loaded untested",
            dir.join("bare.toml").display()
        )),
        "{}",
        settings.describe()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unsafe_configurations_are_refused_unless_said_and_then_warned() {
    let dir = std::env::temp_dir().join(format!("scimtrail-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let token = token.display();
    let app_auth = format!("upstream_auth = {{ bearer_token_file = \"{token}\" }}\n");
    let cases = [
        (
            format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n{app_auth}"),
            "upstream_auth without an IdP token lets anyone who reaches the listener act with the application's credentials",
        ),
        (
            "[admin]\naddr = \"0.0.0.0:9180\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n".to_owned(),
            "the admin listener 0.0.0.0:9180 is off loopback without a token",
        ),
        (
            format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"http://hooks.example/x\"\nbearer_token_file = \"{token}\"\n"),
            "a bearer token would cross the network in clear text to http://hooks.example/x",
        ),
        (
            format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nidp_token_env = \"X\"\nidp_token_file = \"{token}\"\n"),
            "give the environment variable or the file, not both",
        ),
        (
            "[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.target]\nmax_results = 100\nmax_aggregate_results = 50\n".to_owned(),
            "max_aggregate_results must be at least max_results (100)",
        ),
        (
            "[record]\nmax_body_bytes = 1000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.target]\nmax_bulk_payload_bytes = 2000\n".to_owned(),
            "max_bulk_payload_bytes = 2000 is above [record] max_body_bytes (1000)",
        ),
        (
            "[listen]\ntrusted_proxies = [\"10.0.0.0/33\"]\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n".to_owned(),
            "[listen] trusted_proxies: \"10.0.0.0/33\" is not an address",
        ),
        (
            "[listen]\nfirst_byte_timeout_secs = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n".to_owned(),
            "[listen] first_byte_timeout_secs = 0: use 1 to 300",
        ),
    ];
    for (text, fragment) in &cases {
        let err = resolve(text, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains(fragment), "{text}: {err}");
    }

    // Said in so many words, they start, and check-config says what they allow.
    let allowed = format!(
        "[admin]\naddr = \"0.0.0.0:9180\"\nallow_unauthenticated = true\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\nallow_anonymous_idp = true\n{app_auth}[route.webhook]\nurl = \"http://127.0.0.1:9/hook\"\nbearer_token_file = \"{token}\"\n"
    );
    let settings = resolve(&allowed, &Overrides::default()).unwrap();
    assert_eq!(settings.warnings.len(), 2, "{:?}", settings.warnings);
    let described = settings.describe();
    for expected in [
        "warning: [admin] allow_unauthenticated",
        "warning: route a: allow_anonymous_idp",
        "idp token: not checked (allow_anonymous_idp)",
    ] {
        assert!(described.contains(expected), "{expected}: {described}");
    }
    assert!(!described.contains("s3cret"));
    assert_eq!(
        settings.proxy.routes[0].target.max_bulk_payload_bytes,
        Some(1024 * 1024)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_says_where_each_secret_comes_from_and_a_rotation() {
    let dir = std::env::temp_dir().join(format!("scimtrail-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("idp");
    std::fs::write(&token, "current").unwrap();
    std::fs::write(dir.join("idp.next"), "next").unwrap();
    let text = format!(
        "[[route]]\nname = \"a\"\nupstream = \"http://x\"\nidp_token_file = \"{}\"\n",
        token.display()
    );
    let described = resolve(&text, &Overrides::default()).unwrap().describe();
    let expected = format!(
        "idp token: required, redacted, from the file {0}, next value from {0}.next also accepted",
        token.display()
    );
    assert!(described.contains(&expected), "{described}");
    assert!(!described.contains("current") && !described.contains("next\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `[route.target] max_requests_per_second` and `max_in_flight` pace a route, with a queue
/// whose wait and the route's timeout stay under 55 s (R15); what breaks that is refused,
/// saying what would do.
#[test]
fn pacing_is_resolved_within_the_idps_patience_or_refused() {
    let route = |route: &str, target: &str, pacing: &str| {
        format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n{route}[route.target]\n{target}{pacing}")
    };
    let refused = [
        (route("", "max_requests_per_second = 0\n", ""), "route \"a\": [route.target] max_requests_per_second = 0: use 1 to 100000"),
        (route("", "max_in_flight = 100001\n", ""), "[route.target] max_in_flight = 100001: use 1 to 100000"),
        (route("", "", "[route.pacing]\nmax_queued = 5\n"), "[route.pacing] paces nothing: set [route.target] max_requests_per_second or max_in_flight"),
        (
            route("timeout_secs = 30\n", "max_requests_per_second = 10\n", "[route.pacing]\nmax_wait_secs = 25\n"),
            "[route.pacing] max_wait_secs = 25 and the route's timeout of 30 s make 55 s, not under 55 s: an IdP gives up after 60 s and sends the write again (R15); use at most 24",
        ),
        (
            route("timeout_secs = 54\n", "max_in_flight = 2\n", ""),
            "the route's timeout of 54 s leaves its pacing queue no time to wait under 55 s",
        ),
        (
            route("timeout_secs = 60\n", "max_in_flight = 2\n", "[route.pacing]\nmax_wait_secs = 1\n"),
            "with this timeout, use 0 (never wait)",
        ),
        (route("", "max_in_flight = 2\n", "[route.pacing]\nmax_queued = 0\n"), "[route.pacing] max_queued = 0: use 1 to 65536"),
        (route("", "max_in_flight = 2\n", "[route.pacing]\nmax_pause_secs = 0\n"), "[route.pacing] max_pause_secs = 0: use 1 to 3600"),
        (route("", "max_in_flight = 2\n", "[route.pacing]\nmax_wait = 3\n"), "unknown field `max_wait`"),
        (route("", "requests_per_second = 2\n", ""), "unknown field `requests_per_second`"),
    ];
    for (text, fragment) in &refused {
        let err = resolve(text, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains(fragment), "{text}: {err}");
    }

    // Defaults: the longest wait the timeout allows, 256 queued, pauses of 60 s at most.
    let paced = resolve(
        &route("", "max_requests_per_second = 100\nmax_in_flight = 8\n", ""),
        &Overrides::default(),
    )
    .unwrap();
    let expected = Pacing {
        max_requests_per_second: Some(100),
        max_in_flight: Some(8),
        max_queued: 256,
        max_wait: Duration::from_secs(24),
        max_pause: Duration::from_secs(60),
    };
    assert_eq!(paced.proxy.routes[0].pacing.as_ref(), Some(&expected));
    let described = paced.describe();
    assert!(
        described.contains("  paced: at most 100 requests per second and 8 in flight, per instance; at most 256 requests wait, each at most 24 s (with the 30 s timeout, under 55 s); an application's 429 pauses the route for its Retry-After, at most 60 s\n"),
        "{described}"
    );
    // Said: kept; 0 never waits, whatever the timeout.
    let said = route(
        "timeout_secs = 5\n",
        "max_in_flight = 1\n",
        "[route.pacing]\nmax_queued = 3\nmax_wait_secs = 49\nmax_pause_secs = 600\n",
    );
    let pacing = resolve(&said, &Overrides::default()).unwrap().proxy.routes[0]
        .pacing
        .clone()
        .unwrap();
    assert_eq!(
        (pacing.max_queued, pacing.max_wait.as_secs(), pacing.max_pause.as_secs()),
        (3, 49, 600)
    );
    let never = route(
        "timeout_secs = 90\n",
        "max_in_flight = 1\n",
        "[route.pacing]\nmax_wait_secs = 0\n",
    );
    assert_eq!(
        resolve(&never, &Overrides::default()).unwrap().proxy.routes[0]
            .pacing
            .as_ref()
            .map(|p| p.max_wait),
        Some(Duration::ZERO)
    );
    // Unpaced, a route has no pacing and says nothing of it.
    let plain = resolve(
        "[[route]]\nname = \"a\"\nupstream = \"http://x\"\n",
        &Overrides::default(),
    )
    .unwrap();
    assert!(plain.proxy.routes[0].pacing.is_none());
    assert!(!plain.describe().contains("paced"));
}

#[test]
fn passwords_leave_urls_in_messages() {
    assert_eq!(
        without_password("postgres://app:s3cret@db:5432/scim"),
        "postgres://app:[redacted]@db:5432/scim"
    );
    assert_eq!(without_password("sqlite://scimtrail.db"), "sqlite://scimtrail.db");
}
