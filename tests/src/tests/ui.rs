//! The operator's web UI over real HTTP: its door (login, session cookie, CSRF, `Host`,
//! `Origin`), its headers (a strict Content-Security-Policy), and that a recorded value is
//! shown as text wherever it appears, however hostile. The browser test
//! (`tests/browser/ui_test.py`, run by `.ci/run`) drives the same pages in Chromium.

use bytes::Bytes;
use http::{Method, StatusCode};
use scimtrail_integration::client::TestResponse;
use scimtrail_integration::proxy::{fresh_store_urls, single_route, start, start_with, TestProxy};
use scimtrail_integration::refapp;
use scimtrail_proxy::Secret;
use scimtrail_refapp::RunningRefApp;
use serde_json::json;

const TOKEN: &str = "the-admin-token";

/// Values an IdP (or whoever holds its token) could put in a request, each aimed at a page
/// that would write it unescaped.
const HOSTILE: [&str; 3] = [
    "<script>alert('ui')</script>",
    "\"><img src=x onerror=alert(1)>",
    "\u{1b}[31mred\u{1b}[0m",
];

async fn with_token() -> (TestProxy, RunningRefApp) {
    let (app, _) = refapp::start().await;
    let store_url = fresh_store_urls().await.remove(0);
    let proxy = start_with(&single_route(&app.base_url(), ""), &store_url, |settings| {
        settings.proxy.admin_token = Some(Secret::new(TOKEN));
    })
    .await;
    (proxy, app)
}

fn form(
    proxy: &TestProxy,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> impl std::future::Future<Output = TestResponse> {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (key, value) in fields {
        body.append_pair(key, value);
    }
    let body = Bytes::from(body.finish());
    let admin = proxy.admin.clone();
    let path = path.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        admin
            .send_raw(
                Method::POST,
                &path,
                body,
                Some("application/x-www-form-urlencoded"),
                &headers,
            )
            .await
    }
}

/// `name=value` of the session cookie a response sets.
fn session_cookie(response: &TestResponse) -> String {
    let set = response.header("set-cookie").expect("a session cookie");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

fn text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.bytes).into_owned()
}

#[tokio::test]
async fn the_ui_needs_the_token_once_and_then_its_session_and_csrf_token() {
    let (proxy, app) = with_token().await;
    // Not logged in: to the login form; the API is unchanged (a bearer token, or 401).
    let page = proxy.admin.get("/ui/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.header("location"), Some("/ui/login?next=%2Fui%2F"));
    assert_eq!(
        proxy.admin.get("/api/v1/exchanges").await.status,
        StatusCode::UNAUTHORIZED
    );

    let wrong = form(&proxy, "/ui/login", &[("token", "guess"), ("next", "/ui/")], &[]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.header("set-cookie").is_none());
    // An open redirect is not what a login gives.
    let login = form(
        &proxy,
        "/ui/login",
        &[("token", TOKEN), ("next", "//attacker.example/")],
        &[],
    )
    .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.header("location"), Some("/ui/"));
    let cookie = session_cookie(&login);

    let page = proxy
        .admin
        .send(Method::GET, "/ui/", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let csrf = csrf_of(&text(&page));
    // The session reads the API too; its POSTs carry the CSRF token.
    let api = proxy
        .admin
        .send(Method::GET, "/api/v1/exchanges", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(api.status, StatusCode::OK);
    let replay = json!({"filter": {}, "dry_run": true});
    let no_csrf = proxy
        .admin
        .send(Method::POST, "/api/v1/replays", Some(&replay), &[("cookie", &cookie)])
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN, "{:?}", no_csrf.body);
    let with_csrf = proxy
        .admin
        .send(
            Method::POST,
            "/api/v1/replays",
            Some(&replay),
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(with_csrf.status, StatusCode::OK, "{:?}", with_csrf.body);

    // A form without the token, or with another session's, is refused; with it, it runs.
    let fields = [("scope", "filter")];
    let refused = form(&proxy, "/ui/replay", &fields, &[("cookie", &cookie)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let wrong = form(
        &proxy,
        "/ui/replay",
        &[("scope", "filter"), ("csrf", "0123456789abcdef0123456789abcdef")],
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let dry_run = form(
        &proxy,
        "/ui/replay",
        &[("scope", "filter"), ("csrf", &csrf)],
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(dry_run.status, StatusCode::OK, "{}", text(&dry_run));
    assert!(text(&dry_run).contains("0 selected"), "{}", text(&dry_run));
    // A forged or expired cookie is no session.
    let last = if cookie.ends_with('0') { "1" } else { "0" };
    let forged = format!("{}{last}", &cookie[..cookie.len() - 1]);
    let page = proxy
        .admin
        .send(Method::GET, "/ui/", None, &[("cookie", &forged)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    // Logging in again from a session needs no CSRF token: the token proves more.
    let again = form(&proxy, "/ui/login", &[("token", TOKEN)], &[("cookie", &cookie)]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    // Logging out clears the cookie.
    let out = form(&proxy, "/ui/logout", &[("csrf", &csrf)], &[("cookie", &cookie)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    proxy.running.shutdown().await;
    app.shutdown().await;
}

/// A session is worth what its token is: another instance of the same store whose token is
/// another (the old one rotated out) does not take it.
#[tokio::test]
async fn a_session_ends_with_its_token() {
    let (proxy, app) = with_token().await;
    let login = form(&proxy, "/ui/login", &[("token", TOKEN)], &[]).await;
    let cookie = session_cookie(&login);
    let rotated = start_with(&single_route(&app.base_url(), ""), &proxy.store_url, |settings| {
        settings.proxy.admin_token = Some(Secret::new("the-next-admin-token"));
    })
    .await;
    let page = rotated
        .admin
        .send(Method::GET, "/ui/", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "to the login form");
    let rows = rotated
        .admin
        .send(Method::GET, "/ui/exchanges/rows?after=", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(
        rows.status,
        StatusCode::UNAUTHORIZED,
        "live mode is told, not given the login page"
    );
    let api = rotated
        .admin
        .send(Method::GET, "/api/v1/exchanges", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    rotated.running.shutdown().await;
    proxy.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_ui_refuses_a_foreign_host_and_a_cross_site_origin() {
    let (proxy, app) = with_token().await;
    let login = form(&proxy, "/ui/login", &[("token", TOKEN)], &[]).await;
    let cookie = session_cookie(&login);
    let rebound = proxy
        .admin
        .send(
            Method::GET,
            "/ui/",
            None,
            &[("cookie", &cookie), ("host", "attacker.example:9180")],
        )
        .await;
    assert_eq!(rebound.status, StatusCode::MISDIRECTED_REQUEST);
    let page = proxy
        .admin
        .send(Method::GET, "/ui/", None, &[("cookie", &cookie)])
        .await;
    let csrf = csrf_of(&text(&page));
    let cross_site = form(
        &proxy,
        "/ui/replay",
        &[("scope", "filter"), ("csrf", &csrf)],
        &[("cookie", &cookie), ("origin", "https://attacker.example")],
    )
    .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    proxy.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_open_listener_anchors_its_forms_to_a_session_of_the_first_visit() {
    let (app, _) = refapp::start().await;
    let store_url = fresh_store_urls().await.remove(0);
    let proxy = start(&single_route(&app.base_url(), ""), &store_url).await;
    let page = proxy.admin.get("/ui/").await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = session_cookie(&page);
    let csrf = csrf_of(&text(&page));
    // A form posted from another site comes without the cookie (SameSite=Strict).
    let cookieless = form(&proxy, "/ui/replay", &[("scope", "filter"), ("csrf", &csrf)], &[]).await;
    assert_eq!(cookieless.status, StatusCode::FORBIDDEN);
    let posted = form(
        &proxy,
        "/ui/replay",
        &[("scope", "filter"), ("csrf", &csrf)],
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK);
    proxy.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn hostile_recorded_values_are_shown_as_text_on_every_page() {
    let (proxy, app) = with_token().await;
    let login = form(&proxy, "/ui/login", &[("token", TOKEN)], &[]).await;
    let cookie = session_cookie(&login);
    let mut ids = Vec::new();
    for (n, hostile) in HOSTILE.iter().enumerate() {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("{hostile}{n}"),
            "displayName": hostile,
        });
        let created = proxy
            .client
            .send(
                Method::POST,
                &format!(
                    "/Users?note={}",
                    form_urlencoded::byte_serialize(hostile.as_bytes()).collect::<String>()
                ),
                Some(&user),
                &[("x-hostile", "\"><svg onload=alert(2)>")],
            )
            .await;
        ids.push(created.header("scimtrail-exchange-id").unwrap().to_owned());
    }
    // A method is a token that may hold `|` and a backtick: refused, recorded, and quoted
    // in the curl command an operator copies into a shell.
    let shell = Method::from_bytes(b"X|id`whoami`").unwrap();
    let refused = proxy.client.send(shell, "/Users", None, &[]).await;
    let refused_id = refused.header("scimtrail-exchange-id").unwrap().to_owned();
    let page = proxy
        .admin
        .send(
            Method::GET,
            &format!("/ui/exchanges/{refused_id}"),
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert!(text(&page).contains("curl -X 'X|id`whoami`'"), "{}", text(&page));
    let mut pages = vec!["/ui/".to_owned(), "/ui/overview".to_owned()];
    for (n, hostile) in HOSTILE.iter().enumerate() {
        let person = form_urlencoded::byte_serialize(format!("{hostile}{n}").as_bytes()).collect::<String>();
        pages.push(format!("/ui/timeline?user={person}"));
        pages.push(format!("/ui/?user={person}"));
    }
    pages.extend(ids.iter().map(|id| format!("/ui/exchanges/{id}")));
    for path in pages {
        let page = proxy.admin.send(Method::GET, &path, None, &[("cookie", &cookie)]).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let html = text(&page);
        for raw in ["<script>alert", "<img src=x", "<svg onload", "\u{1b}["] {
            assert!(!html.contains(raw), "{path} shows {raw:?} unescaped");
        }
        // The only scripts are the UI's own file.
        assert_eq!(html.matches("<script").count(), 1, "{path}");
    }
    // Its downloads: the record as the API gives it, and a HAR of exactly this exchange.
    let download = |format: &'static str| {
        let admin = proxy.admin.clone();
        let path = format!("/ui/exchanges/{}/download?format={format}", ids[1]);
        let cookie = cookie.clone();
        async move { admin.send(Method::GET, &path, None, &[("cookie", &cookie)]).await }
    };
    assert_eq!(download("json").await.body["id"], ids[1].as_str());
    let har = download("har").await;
    let entries = har.body["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{:?}", har.body);
    assert_eq!(entries[0]["_scimtrail"]["id"], ids[1].as_str());
    let detail = text(
        &proxy
            .admin
            .send(
                Method::GET,
                &format!("/ui/exchanges/{}", ids[0]),
                None,
                &[("cookie", &cookie)],
            )
            .await,
    );
    assert!(detail.contains("&lt;script&gt;alert"), "shown, as text");
    let detail = text(
        &proxy
            .admin
            .send(
                Method::GET,
                &format!("/ui/exchanges/{}", ids[2]),
                None,
                &[("cookie", &cookie)],
            )
            .await,
    );
    assert!(detail.contains("\\u{1b}[31m"), "a terminal escape shown as an escape");
    proxy.running.shutdown().await;
    app.shutdown().await;
}
