//! The demo's failure scenario: the application goes away in the middle of a lifecycle —
//! first behind its load balancer's maintenance page (a 503 in HTML, not SCIM), then not at
//! all — and the leaver's deactivation, sent in Entra's dialect, is among the requests it
//! misses; it comes back without them, and `scimtrail replay --failed` repairs it.

use crate::play::Http;
use scimtrail_refapp::{RefApp, RunningRefApp};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The route the outage is played on.
pub const ROUTE: &str = "outage";

/// Its IdP profile: the leaver's deactivation comes in Entra's dialect, which the profile's
/// rules make SCIM (the exchange shows what they changed).
pub const IDP: &str = "entra";

/// What a load balancer answers for an application under maintenance.
const MAINTENANCE_PAGE: &str = "<html><head><title>503 Service Temporarily Unavailable</title></head>\
<body><h1>Down for maintenance</h1><p>We'll be back shortly.</p></body></html>";

/// An application that can go away and come back on the same address with its state.
pub struct OutageApp {
    state: Arc<RefApp>,
    addr: SocketAddr,
    running: Option<RunningRefApp>,
    maintenance: Option<tokio::task::JoinHandle<()>>,
}

impl OutageApp {
    /// Starts it on a free loopback port.
    pub async fn start() -> std::io::Result<OutageApp> {
        let state = RefApp::new();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let running = Some(Arc::clone(&state).serve(listener));
        Ok(OutageApp {
            state,
            addr,
            running,
            maintenance: None,
        })
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes it away: connections are refused until [`OutageApp::up`].
    pub async fn down(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        self.down_maintenance().await;
    }

    /// Puts its maintenance page in its place: every request is answered 503 in HTML.
    pub async fn maintenance(&mut self) -> std::io::Result<()> {
        self.down().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.maintenance = Some(tokio::spawn(serve_maintenance_page(listener)));
        Ok(())
    }

    /// Brings it back on the same address, with its state.
    pub async fn up(&mut self) -> std::io::Result<()> {
        self.down_maintenance().await;
        if self.running.is_none() {
            let listener = TcpListener::bind(self.addr).await?;
            self.running = Some(Arc::clone(&self.state).serve(listener));
        }
        Ok(())
    }

    async fn down_maintenance(&mut self) {
        if let Some(maintenance) = self.maintenance.take() {
            maintenance.abort();
            let _ = maintenance.await;
        }
    }

    /// Stops it for good.
    pub async fn shutdown(mut self) {
        self.down().await;
    }
}

/// What the outage left behind.
#[derive(Debug, Clone)]
pub struct Outage {
    /// The requests the IdP sent while the application was away, and their statuses.
    pub missed: Vec<(String, u16)>,
    /// What the application has wrong once it is back.
    pub wrong: Vec<String>,
    /// The users' ids (ada, grace, linus) and the team's, to check again after a replay.
    pub ids: Vec<String>,
    /// The team's id.
    pub team: String,
}

/// Plays the lifecycle through `proxy` (the route's base URL): joiners and a team with the
/// application up; a leaver, a mover and a team change while it is away; then it comes back.
pub async fn play(http: &Http, proxy: &str, app: &mut OutageApp) -> Result<Outage, String> {
    let send = |method: &'static str, path: String, body: Option<Value>| async move {
        http.send(method, &format!("{proxy}{path}"), &[], body.as_ref()).await
    };
    let mut ids = Vec::new();
    for name in ["ada", "grace", "linus"] {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("{name}@example.com"), "active": true, "title": "Engineer"
        });
        let created = send("POST", "/Users".into(), Some(user)).await?;
        let id = created.body["id"]
            .as_str()
            .ok_or("the application did not create a user")?;
        ids.push(id.to_owned());
    }
    let team = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Platform", "members": [{"value": ids[0]}, {"value": ids[1]}]
    });
    let created = send("POST", "/Groups".into(), Some(team)).await?;
    let team = created.body["id"]
        .as_str()
        .ok_or("the application did not create the group")?
        .to_owned();

    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let missed_requests = [
        (
            "grace leaves: deactivate",
            "PATCH",
            format!("/Users/{}", ids[1]),
            // Entra's dialect: a capitalised op and a boolean as a string (N1, N2).
            patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        ),
        (
            "grace leaves: out of Platform",
            "PATCH",
            format!("/Groups/{team}"),
            patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])}])),
        ),
        (
            "linus joins Platform",
            "PATCH",
            format!("/Groups/{team}"),
            patch(json!([{"op": "add", "path": "members", "value": [{"value": ids[2]}]}])),
        ),
        (
            "ada is promoted",
            "PATCH",
            format!("/Users/{}", ids[0]),
            patch(json!([{"op": "replace", "path": "title", "value": "Staff Engineer"}])),
        ),
    ];
    let mut missed = Vec::new();
    for (n, (what, method, path, body)) in missed_requests.into_iter().enumerate() {
        // The leaver meets the maintenance page; then the application is gone altogether.
        if n == 0 {
            app.maintenance()
                .await
                .map_err(|e| format!("the maintenance page could not start: {e}"))?;
        } else {
            app.down().await;
        }
        let answer = send(method, path, Some(body)).await?;
        missed.push((what.to_owned(), answer.status));
    }
    app.up()
        .await
        .map_err(|e| format!("the application could not come back: {e}"))?;

    let wrong = check(http, &app.base_url(), &ids, &team).await?;
    Ok(Outage {
        missed,
        wrong,
        ids,
        team,
    })
}

/// Answers every request on `listener` with the maintenance page (one request per
/// connection), as a load balancer does while the application is away.
async fn serve_maintenance_page(listener: TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            // Read the request's head and whatever body arrives with it; the answer does not
            // depend on it.
            let mut buffer = vec![0u8; 64 * 1024];
            let mut read = 0;
            while read < buffer.len() {
                match socket.read(&mut buffer[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
                if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 503 Service Temporarily Unavailable\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{MAINTENANCE_PAGE}",
                MAINTENANCE_PAGE.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// What the application has that the IdP did not intend (read directly, not through the
/// proxy). Empty once the state is repaired.
pub async fn check(http: &Http, app: &str, ids: &[String], team: &str) -> Result<Vec<String>, String> {
    let [ada, grace, linus] = ids else {
        return Err(format!(
            "the ids of ada, grace and linus are needed, not {} ids",
            ids.len()
        ));
    };
    let mut wrong = Vec::new();
    let grace_now = http.send("GET", &format!("{app}/Users/{grace}"), &[], None).await?;
    if grace_now.body["active"] != json!(false) {
        wrong.push("grace@example.com is still active: the leaver kept access".to_owned());
    }
    let ada_now = http.send("GET", &format!("{app}/Users/{ada}"), &[], None).await?;
    if ada_now.body["title"] != json!("Staff Engineer") {
        wrong.push("ada@example.com is not Staff Engineer".to_owned());
    }
    let group = http.send("GET", &format!("{app}/Groups/{team}"), &[], None).await?;
    let members: Vec<&str> = group.body["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default();
    if members.contains(&grace.as_str()) {
        wrong.push("grace@example.com is still in Platform".to_owned());
    }
    if !members.contains(&linus.as_str()) {
        wrong.push("linus@example.com is not in Platform".to_owned());
    }
    Ok(wrong)
}
