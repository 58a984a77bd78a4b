//! The operator's web UI at `/ui/` on the admin listener: server-rendered HTML (maud: checked
//! at compile time, every value escaped), a stylesheet and one small script embedded in the
//! binary; no CDN, no build step, nothing fetched at run time.
//!
//! Pages, one file each: `exchanges.rs` (the table, its filters and live mode),
//! `exchange.rs` (one exchange as every side saw it), `timeline.rs` (one person's or group's
//! life), `overview.rs`, `replay.rs` (dry run, confirm, results) and `login.rs`. `page.rs`
//! holds the layout and the shared pieces (badges, times, JSON trees).
//!
//! Every request passes [`ui_guard`] first: `Host` and `Origin` as the API checks them
//! (`admin/access.rs`), then a session — the login form's, or, where the listener requires no
//! token, one issued on the first visit to anchor the CSRF token — and, for a POST, that
//! session's CSRF token. Every answer carries a strict Content-Security-Policy: no inline
//! script or style, nothing from elsewhere.

mod exchange;
mod exchanges;
mod login;
mod overview;
mod page;
mod replay;
mod timeline;

use crate::admin::{Access, Admin, OverTls, Peer, Session};
use crate::audit::Caller;
use crate::clock::now_ms;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;

/// Largest form a UI page posts, in bytes.
const MAX_FORM: usize = 64 * 1024;

/// Every `/ui` path.
pub(crate) fn router(admin: Arc<Admin>) -> Router<Arc<Admin>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(exchanges::page))
        .route("/ui/exchanges/rows", get(exchanges::live_rows))
        .route("/ui/exchanges/{id}", get(exchange::page))
        .route("/ui/exchanges/{id}/download", get(exchange::download))
        .route("/ui/timeline", get(timeline::page))
        .route("/ui/overview", get(overview::page))
        .route("/ui/replay", post(replay::preview))
        .route("/ui/replay/run", post(replay::run))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/assets/{file}", get(page::asset))
        .route_layer(axum::middleware::from_fn_with_state(admin, ui_guard))
}

/// Who is looking at a page: the CSRF token its forms carry, and who acts, for the audit.
#[derive(Clone)]
pub(crate) struct Viewer {
    /// Empty for a caller authenticated by `Authorization: Bearer` (no cookie, no CSRF).
    pub(crate) csrf: String,
    /// Whether a session can be ended (a login form's).
    pub(crate) logged_in: bool,
    pub(crate) caller: Caller,
}

/// The UI's door (see the module's documentation).
async fn ui_guard(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    if let Some((status, error)) = admin.foreign(&request) {
        return secured(page::refusal(status, &error), None);
    }
    let path = request.uri().path().to_owned();
    let public = path == "/ui/login" || path.starts_with("/ui/assets/");
    let peer = Peer::of(&request);
    let tls = request.extensions().get::<OverTls>().copied().unwrap_or(OverTls(false));
    let key = admin.proxy.redactor.key();
    let mut issued = None;
    let viewer = match admin.access(request.headers()) {
        Access::Session(session) => Some(Viewer {
            csrf: session.csrf(key),
            logged_in: admin.settings.token_required(),
            caller: session.caller(peer),
        }),
        Access::Bearer if admin.settings.token_required() => Some(Viewer {
            csrf: String::new(),
            logged_in: false,
            caller: admin.bearer_caller(request.headers(), peer),
        }),
        // Open: a session to anchor the CSRF token, from the first page on.
        Access::Bearer if request.method() == Method::GET => {
            let (session, cookie) = Session::issue(key, &admin.session_holder(None), now_ms());
            issued = Some(cookie);
            Some(Viewer {
                csrf: session.csrf(key),
                logged_in: false,
                caller: session.caller(peer),
            })
        }
        Access::Bearer | Access::Refused => None,
    };
    let Some(viewer) = viewer else {
        if public {
            return secured(next.run(request).await, None);
        }
        // A page goes to the login form; live mode's rows must not become one.
        if request.method() == Method::GET && path != "/ui/exchanges/rows" {
            let to = format!("/ui/login?next={}", page::query_escaped(&path));
            return secured(Redirect::to(&to).into_response(), None);
        }
        let refused = if admin.settings.token_required() {
            (StatusCode::UNAUTHORIZED, "log in first")
        } else {
            (
                StatusCode::FORBIDDEN,
                "this form is stale: reload the page and try again",
            )
        };
        return secured(page::refusal(refused.0, refused.1), None);
    };
    // The login form is the one POST a session need not have made: the token proves more.
    let request = match if public {
        Ok(request)
    } else {
        csrf_checked(request, &viewer).await
    } {
        Ok(request) => request,
        Err(refused) => return secured(refused, None),
    };
    let mut request = request;
    request.extensions_mut().insert(viewer);
    let cookie = issued.map(|value| crate::admin::session_cookie(&value, tls));
    secured(next.run(request).await, cookie)
}

/// A POST of a session carries its CSRF token, as the form field `csrf` or the header
/// `x-csrf-token`; the form is read here (bounded) and handed on whole.
async fn csrf_checked(request: Request, viewer: &Viewer) -> Result<Request, Response> {
    if request.method() != Method::POST || viewer.csrf.is_empty() {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let stale = || {
        page::refusal(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page",
        )
    };
    let bytes = match http_body_util::Limited::new(body, MAX_FORM).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(page::refusal(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")),
    };
    let header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let field = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned());
    let presented = header.or(field).ok_or_else(stale)?;
    if !crate::secret::constant_time_eq(presented.as_bytes(), viewer.csrf.as_bytes()) {
        return Err(stale());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The headers every UI answer carries: a strict Content-Security-Policy (scripts and styles
/// from this listener's own files only, nothing inline, no frames, forms posted here only),
/// no sniffing, no referrer to other sites, no caching of recorded bodies.
fn secured(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: with it a browser sends `Origin: null` on the UI's own forms.
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    }
    if let Some(cookie) = cookie {
        headers.append(SET_COOKIE, cookie);
    }
    response
}
