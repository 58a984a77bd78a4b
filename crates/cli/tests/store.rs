//! `scimtrail store prune`: the retention policy applied on demand, dry first; `store backup`;
//! and the files a store is kept in, private whatever the umask.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use scimtrail_store::{Store, Write};

mod common;

use common::{exchange, fresh_store, run, under_umask};
#[tokio::test]
async fn store_prune_shows_what_would_go_then_deletes_it() {
    let (_, url, store) = fresh_store().await;
    // Past the defaults: 3 successes (30 days), 2 refusals (7 days); kept: the rest.
    let writes = vec![
        exchange(40, 1, "ok"),
        exchange(35, 2, "ok"),
        exchange(31, 3, "ok"),
        exchange(10, 4, "rejected"),
        exchange(8, 5, "rejected"),
        exchange(5, 6, "ok"),
        exchange(2, 7, "rejected"),
        exchange(100, 8, "failed"),
    ];
    store.write_batch(writes).await.unwrap();
    store.close().await;
    drop(store);

    let (ok, out, err) = run(&["store", "prune", "--dry-run", "--store", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("ok                   3 would go"), "{out}");
    assert!(out.contains("rejected             2 would go"), "{out}");
    assert!(out.contains("5 exchanges would go in all"), "{out}");

    let (ok, out, err) = run(&["store", "prune", "--store", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("5 exchanges deleted in all"), "{out}");
    assert!(out.contains("store: 3 exchanges"), "{out}");

    let (ok, out, _) = run(&["store", "prune", "--dry-run", "--store", &url]);
    assert!(ok && out.contains("0 exchanges would go in all"), "{out}");

    // Each run is audited as the CLI's, with its counts: the dry ones as dry.
    let (ok, out, err) = run(&["audit", "list", "--store", &url, "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prunes: Vec<&serde_json::Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "prune")
        .collect();
    assert_eq!(prunes.len(), 3, "{out}");
    let dry: Vec<bool> = prunes.iter().map(|e| e["detail"]["dry_run"] == true).collect();
    assert_eq!(dry, [true, false, true], "newest first: {out}");
    assert!(
        prunes.iter().all(|e| e["actor"].as_str().unwrap().starts_with("cli:")),
        "{out}"
    );
    assert_eq!(prunes[1]["detail"]["exchanges"]["ok"], 3, "{out}");
    assert_eq!(prunes[1]["detail"]["exchanges"]["rejected"], 2, "{out}");
}

#[tokio::test]
async fn store_backup_copies_a_store_into_a_new_file_that_opens_whole() {
    let (file, url, store) = fresh_store().await;
    store
        .write_batch(vec![exchange(1, 1, "ok"), exchange(2, 2, "failed")])
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let target = file.with_extension("copy.db");
    let to = target.display().to_string();
    let backup = ["store", "backup", "--store", &url, "--to", &to];
    let (ok, out, err) = run(&backup);
    assert!(ok, "{err}");
    assert!(out.contains("backed up into"), "{out}");
    // Again, into the same file: refused.
    let (ok, _, err) = run(&backup);
    assert!(!ok && err.contains("exists"), "{err}");

    let copy = Store::connect(&format!("sqlite://{}", target.display())).await.unwrap();
    let all = copy
        .list(&scimtrail_store::ExchangeQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
}

/// A store's files hold personal data. Under a umask that would let everyone read them,
/// `serve` creates the database, its WAL and shared memory, the journal's directory and its
/// files private (0600, directories 0700), and `store backup` its copy; `check-config` warns
/// about a store file others may read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stores_files_are_private_whatever_the_umask() {
    let dir = std::env::temp_dir().join(format!("scimtrail-private-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("private.db").display());
    let (app, _) = scimtrail_integration::refapp::start().await;
    let upstream = app.base_url();
    let serve = ["serve", "--upstream", &upstream, "--store", &url];
    // No key given: one is generated beside the store, private too.
    let mut child = under_umask("022", &serve)
        .env_remove("SCIMTRAIL_FINGERPRINT_KEY")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = scimtrail_integration::process::proxy_address(&mut child).await;
    let idp = scimtrail_integration::Client::new(format!("http://{addr}"));
    let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "private"});
    assert_eq!(idp.post("/Users", &body).await.status, 201);
    let copy = dir.join("copy.db").display().to_string();
    let backup = under_umask("022", &["store", "backup", "--store", &url, "--to", &copy])
        .output()
        .unwrap();
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    child.kill().unwrap();
    child.wait().unwrap();

    let mut seen = Vec::new();
    let mut pending = vec![dir.clone()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let mode =
                std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions()) & 0o777;
            let expected = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, expected, "{} is {mode:o}", path.display());
            if path.is_dir() {
                pending.push(path.clone());
            }
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for name in [
        "private.db",
        "private.db-wal",
        "private.db.journal",
        "private.db.fingerprint-key",
        "copy.db",
        "copy.db.journal",
    ] {
        assert!(seen.iter().any(|s| s == name), "{name} in {seen:?}");
    }

    // One made open to others before is warned about.
    let database = dir.join("private.db");
    std::fs::set_permissions(&database, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let config = dir.join("check.toml");
    std::fs::write(
        &config,
        format!("[store]\nurl = \"{url}\"\n[[route]]\nname = \"app\"\nidp = \"generic\"\nupstream = \"{upstream}\"\n"),
    )
    .unwrap();
    let (valid, stdout, stderr) = run(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(valid, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "warning: {} is open to other users (mode 644)",
            database.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("fingerprint key = the environment variable SCIMTRAIL_FINGERPRINT_KEY"),
        "{stdout}"
    );

    // So is a key file others may read, given or generated.
    let key = dir.join("private.db.fingerprint-key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    for store_keys in [format!("fingerprint_key_file = \"{}\"\n", key.display()), String::new()] {
        std::fs::write(
            &config,
            format!("[store]\nurl = \"{url}\"\n{store_keys}[[route]]\nname = \"app\"\nidp = \"generic\"\nupstream = \"{upstream}\"\n"),
        )
        .unwrap();
        let output = std::process::Command::new(common::BINARY)
            .args(["check-config", "--config", config.to_str().unwrap()])
            .env_remove("SCIMTRAIL_FINGERPRINT_KEY")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(
            stdout.contains(&format!("warning: {} is open to other users (mode 644)", key.display())),
            "{store_keys}: {stdout}"
        );
    }
}

/// What the record keeps of a credential is an HMAC under the installation's key, so every
/// instance sharing a store must use one key: the store keeps the key's id, and an instance
/// with another key — or, on PostgreSQL, none — refuses to start, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_fingerprint_key_is_not_its_stores_refuses_to_start() {
    let (app, _) = scimtrail_integration::refapp::start().await;
    let upstream = app.base_url();
    for url in scimtrail_integration::proxy::fresh_store_urls().await {
        let serve = |key: Option<&str>| {
            let mut command = std::process::Command::new(common::BINARY);
            command
                .args(["serve", "--upstream", &upstream, "--store", &url])
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .env("SCIMTRAIL_LOG", "warn")
                .env_remove("SCIMTRAIL_FINGERPRINT_KEY");
            if let Some(key) = key {
                command.env("SCIMTRAIL_FINGERPRINT_KEY", key);
            }
            command
        };
        let mut first = serve(Some("the first installation's key"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = scimtrail_integration::process::proxy_address(&mut first).await;
        let idp = scimtrail_integration::Client::new(format!("http://{addr}"));
        assert_eq!(idp.get("/Users").await.status, 200);
        first.kill().unwrap();
        first.wait().unwrap();

        let other = serve(Some("another installation's key")).output().unwrap();
        let stderr = String::from_utf8_lossy(&other.stderr);
        assert!(!other.status.success(), "{url}: started with another key");
        assert!(
            stderr.contains("every instance sharing a store needs the same fingerprint key"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("installation's key"),
            "the key itself is never said: {stderr}"
        );

        if url.starts_with("postgres") {
            let none = serve(None).output().unwrap();
            let stderr = String::from_utf8_lossy(&none.stderr);
            assert!(!none.status.success());
            assert!(stderr.contains("a PostgreSQL store is shared"), "{stderr}");
        }
    }
}

#[tokio::test]
async fn store_erase_counts_then_erases_is_audited_and_waits_for_a_served_stores_api() {
    let (file, url, store) = fresh_store().await;
    let mut mine = exchange(1, 1, "ok");
    if let Write::Whole(new, done) = &mut mine {
        new.user_name = Some("gone.person@example.com".into());
        done.response_body =
            Some(r#"{"id":"1","userName":"gone.person@example.com","displayName":"Gone Person"}"#.into());
    }
    let by_id = exchange(1, 1, "failed");
    let other = exchange(1, 2, "ok");
    let names = Write::Names(vec![scimtrail_store::ResourceName {
        route: "app".into(),
        resource_type: "Users".into(),
        resource_id: "1".into(),
        user_name: Some("gone.person@example.com".into()),
        external_id: None,
        display_name: Some("Gone Person".into()),
        learned_at_ms: 1,
    }]);
    store.write_batch(vec![mine, by_id, other, names]).await.unwrap();
    store.close().await;
    drop(store);

    let (ok, out, err) = run(&[
        "store",
        "erase",
        "--user",
        "Gone.Person@example.com",
        "--dry-run",
        "--store",
        &url,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("resource     app/Users/1"), "{out}");
    assert!(out.contains("exchanges            2 would be erased"), "{out}");
    let (ok, out, err) = run(&["store", "erase", "--user", "Gone.Person@example.com", "--store", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("exchanges            2 erased"), "{out}");
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("gone.person"),
        "erased from the file"
    );

    let (ok, out, err) = run(&["audit", "list", "--store", &url, "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entries = listed["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{out}");
    assert_eq!(entries[0]["action"], "erasure");
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("cli:"), "{out}");
    assert_eq!(entries[0]["detail"]["exchanges"], 2);
    assert!(
        !out.contains("gone.person"),
        "the audit names the person by fingerprint: {out}"
    );

    // A store whose journal another process holds (a serving scimtrail) is erased through
    // that process's admin API.
    let served = Store::connect(&url).await.unwrap().with_journal().unwrap();
    let (ok, _, err) = run(&["store", "erase", "--resource", "2", "--store", &url]);
    assert!(!ok && err.contains("POST /api/v1/erasures"), "{err}");
    let (ok, _, err) = run(&["store", "erase", "--store", &url]);
    assert!(!ok && err.contains("--user"), "{err}");
    served.close().await;
}

/// One id on two routes is two applications' resources: `--resource` alone is refused, and
/// with `--route` only that route's person is erased, to the last stored byte — on SQLite
/// and on PostgreSQL alike, audited with the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_erase_with_a_route_erases_that_routes_person_only_on_every_backend() {
    for url in scimtrail_integration::proxy::fresh_store_urls().await {
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let mut writes = Vec::new();
        for (route, person) in [("app", "routed.person"), ("other", "kept.person")] {
            let mut write = exchange(1, 7, "ok");
            if let Write::Whole(new, done) = &mut write {
                new.route = Some(route.into());
                new.user_name = Some(format!("{person}@example.com"));
                done.response_body = Some(format!(r#"{{"id":"7","userName":"{person}@example.com"}}"#));
            }
            writes.push(write);
            writes.push(Write::Names(vec![scimtrail_store::ResourceName {
                route: route.into(),
                resource_type: "Users".into(),
                resource_id: "7".into(),
                user_name: Some(format!("{person}@example.com")),
                external_id: None,
                display_name: None,
                learned_at_ms: 1,
            }]));
        }
        store.write_batch(writes).await.unwrap();
        store.close().await;
        drop(store);

        let (ok, _, err) = run(&["store", "erase", "--resource", "7", "--store", &url]);
        assert!(!ok && err.contains("give the route"), "{url}: {err}");
        let (ok, out, err) = run(&["store", "erase", "--resource", "7", "--route", "app", "--store", &url]);
        assert!(ok, "{url}: {err}");
        assert!(out.contains("resource     app/Users/7"), "{url}: {out}");
        assert!(out.contains("exchanges            1 erased"), "{url}: {out}");
        let stored = scimtrail_integration::proxy::everything_stored(&url).await;
        assert!(!stored.contains("routed.person"), "{url}: the route's person is erased");
        assert!(stored.contains("kept.person"), "{url}: the other route's is kept");

        let (ok, out, err) = run(&["audit", "list", "--store", &url, "--json"]);
        assert!(ok, "{url}: {err}");
        let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
        let erasure = &listed["items"][0];
        assert_eq!(erasure["action"], "erasure", "{url}: {out}");
        assert_eq!(erasure["detail"]["route"], "app", "{url}: {out}");
        assert_eq!(erasure["detail"]["resource"], "7", "{url}: {out}");
    }
}
