//! `/ui/login`: the admin token exchanged for a session cookie (HttpOnly, SameSite=Strict;
//! see `admin/access.rs`), and `/ui/logout`. The API keeps taking `Authorization: Bearer`.

use super::page::{self, Section};
use super::Viewer;
use crate::admin::{cleared_cookie, session_cookie, OverTls, Session};
use crate::clock::now_ms;
use crate::ui::Admin;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::header::SET_COOKIE;
use http::StatusCode;
use maud::html;
use std::sync::Arc;
use std::time::Duration;

/// How long a wrong token waits before its answer: guessing stays slow.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(500);

#[derive(serde::Deserialize)]
pub(super) struct Login {
    token: String,
    #[serde(default)]
    next: String,
}

/// Where to go after logging in: a page of the UI, never elsewhere.
fn destination(next: &str) -> &str {
    let local = next.starts_with("/ui/") && !next.starts_with("//") && !next.contains(['\\', '\r', '\n']);
    if local {
        next
    } else {
        "/ui/"
    }
}

/// `GET /ui/login?next=…`.
pub(super) async fn form(State(admin): State<Arc<Admin>>, RawQuery(query): RawQuery) -> Response {
    let next = page::param(query.as_deref(), "next").unwrap_or_default();
    login_page(&admin, destination(&next), None, StatusCode::OK)
}

fn login_page(admin: &Admin, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let content = html! {
        @if admin.settings.token_required() {
            form.login method="post" action="/ui/login" {
                @if let Some(error) = error { p.error role="alert" { (error) } }
                input type="hidden" name="next" value=(next);
                label { "Admin token" input type="password" name="token" id="token" autocomplete="current-password" required autofocus; }
                button type="submit" id="login" { "Log in" }
                p.muted { "The token of " code { "[admin] token_env" } " or " code { "token_file" } ". It is exchanged for a session cookie that lasts 12 hours." }
            }
        } @else {
            p { "This admin listener requires no token. " a href=(next) { "Go on" } }
        }
    };
    let mut response = page::layout("Log in", Section::Other, None, content);
    *response.status_mut() = status;
    response
}

/// `POST /ui/login` with `token` and `next`.
pub(super) async fn submit(
    State(admin): State<Arc<Admin>>,
    tls: Option<Extension<OverTls>>,
    Form(login): Form<Login>,
) -> Response {
    let next = destination(&login.next).to_owned();
    if !admin.settings.token_required() {
        return Redirect::to(&next).into_response();
    }
    if !admin.settings.token_matches(&login.token) {
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return login_page(
            &admin,
            &next,
            Some("That is not the admin token."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let who = admin.session_holder(Some(login.token.trim()));
    let (_, cookie) = Session::issue(admin.proxy.redactor.key(), &who, now_ms());
    let tls = tls.map_or(OverTls(false), |Extension(tls)| tls);
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(SET_COOKIE, session_cookie(&cookie, tls));
    response
}

/// `POST /ui/logout`: the cookie cleared (it expires by itself too).
pub(super) async fn logout(Extension(_viewer): Extension<Viewer>) -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(SET_COOKIE, cleared_cookie());
    response
}
