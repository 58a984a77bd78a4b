#![allow(dead_code)] // Each test binary uses what it needs of this.
//! What the binary's tests share.

use scimtrail_store::{Completion, NewExchange, Store, Write};
use std::process::Command;

/// The binary under test.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_scimtrail");

/// Runs the binary to its end: (success, stdout, stderr).
pub(crate) fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .env("SCIMTRAIL_LOG", "warn")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The binary with these arguments, started under `umask` (as a shell would).
pub(crate) fn under_umask(umask: &str, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(BINARY)
        .args(args)
        .env("SCIMTRAIL_LOG", "warn")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY);
    command
}

pub(crate) const DAY_MS: i64 = 86_400_000;

pub(crate) fn exchange(age_days: i64, n: u16, outcome: &str) -> Write {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - age_days * DAY_MS;
    let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        (ms / 1000) as u64,
        ((ms % 1000) * 1_000_000) as u32,
    ))
    .to_string();
    let new = NewExchange {
        id: id.clone(),
        received_at_ms: ms,
        instance: "cli-test".into(),
        route: Some("app".into()),
        idp: Some("okta".into()),
        method: "GET".into(),
        path: format!("/Users/{n}"),
        query: None,
        resource_type: Some("Users".into()),
        resource_id: Some(n.to_string()),
        user_name: None,
        operation: "get".into(),
        lifecycle: None,
        request_headers: serde_json::json!([]),
        request_body: None,
        replay_of: None,
        parent_id: None,
        client: Some("127.0.0.1".into()),
        rules_version: None,
        reconcile_of: None,
        synthetic: None,
    };
    let done = Completion {
        id,
        duration_ms: 1,
        forwarded_headers: Some(serde_json::json!([])),
        forwarded_body: None,
        changes: serde_json::json!([]),
        upstream_status: Some(200),
        status: 200,
        response_headers: serde_json::json!([]),
        response_body: Some("{}".into()),
        outcome: outcome.into(),
        findings: serde_json::json!([]),
        bulk_operations: None,
        error: None,
        resource_id: None,
        user_name: None,
        paced_ms: None,
    };
    Write::Whole(Box::new(new), Box::new(done))
}

/// A new SQLite store: its file, URL, and the store.
pub(crate) async fn fresh_store() -> (std::path::PathBuf, String, Store) {
    let file = std::env::temp_dir().join(format!("scimtrail-cli-store-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", file.display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (file, url, store)
}

/// The application, whose state outlives going down and coming back on the same address.
pub(crate) struct App {
    state: std::sync::Arc<scimtrail_refapp::RefApp>,
    addr: std::net::SocketAddr,
    running: Option<scimtrail_refapp::RunningRefApp>,
}

impl App {
    pub(crate) async fn start() -> App {
        let state = scimtrail_refapp::RefApp::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let running = Some(std::sync::Arc::clone(&state).serve(listener));
        App { state, addr, running }
    }

    pub(crate) async fn down(&mut self) {
        self.running.take().expect("up").shutdown().await;
    }

    pub(crate) async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.running = Some(std::sync::Arc::clone(&self.state).serve(listener));
    }

    /// Its base URL (`http://127.0.0.1:PORT`).
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn client(&self) -> scimtrail_integration::Client {
        scimtrail_integration::Client::new(format!("http://{}", self.addr))
    }

    /// scimtrail in front of it (one route, `/scim`, the generic profile) on `store_url`, and
    /// its configuration file, for `scimtrail replay`.
    pub(crate) async fn proxied(
        &self,
        store_url: &str,
    ) -> (std::path::PathBuf, scimtrail_integration::proxy::TestProxy) {
        self.proxied_with(store_url, "").await
    }

    /// [`App::proxied`], with `route_tables` (`[route.webhook]` …) after the route's keys.
    pub(crate) async fn proxied_with(
        &self,
        store_url: &str,
        route_tables: &str,
    ) -> (std::path::PathBuf, scimtrail_integration::proxy::TestProxy) {
        let config_text = format!(
            "[[route]]\nname = \"app\"\nidp = \"generic\"\npath_prefix = \"/scim\"\nupstream = \"http://{}\"\n{route_tables}",
            self.addr
        );
        let config = std::env::temp_dir().join(format!("scimtrail-replay-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&config, &config_text).unwrap();
        (
            config,
            scimtrail_integration::proxy::start(&config_text, store_url).await,
        )
    }
}

/// `scimtrail COMMAND ARGS… --json`: its exit status and the JSON it printed.
pub(crate) fn run_json(command: &str, args: &[&str]) -> (bool, serde_json::Value) {
    let output = Command::new(BINARY)
        .arg(command)
        .args(args)
        .arg("--json")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
        .env("SCIMTRAIL_LOG", "warn")
        .output()
        .expect("scimtrail runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "a JSON report from {command}; stdout: {} stderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}
