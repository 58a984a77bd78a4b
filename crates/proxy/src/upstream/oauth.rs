//! OAuth 2.0 client credentials (RFC 6749 §4.4) toward an application that asks for them: an
//! access token fetched from the application's token endpoint, kept, and fetched again before
//! it expires. The token endpoint is the one other place a route's requests go, named by the
//! route's configuration and reached with the route's client (its CA bundle and client
//! certificate); the token never reaches the record, a log line or an alert — it is set on a
//! request after `upstream::build`, whose headers are what is recorded.

use super::{error_chain, UpstreamClient};
use crate::config::Secret;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use std::time::{Duration, Instant};

/// The largest token endpoint answer read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A token without `expires_in` is kept this long: the endpoint did not say, so not long.
const UNSAID_LIFETIME: Duration = Duration::from_secs(60);

/// How a route obtains its access tokens.
#[derive(Debug)]
pub struct ClientCredentials {
    /// The token endpoint (https, or http on loopback).
    pub token_url: http::Uri,
    /// The client's id.
    pub client_id: String,
    /// The client's secret, sent as HTTP Basic (`client_secret_basic`).
    pub client_secret: Secret,
    /// The scope asked for, if any.
    pub scope: Option<String>,
    /// The token in use, and when it is to be replaced. One fetch at a time: requests that
    /// find it stale wait for the fetch under way rather than start their own.
    cached: tokio::sync::Mutex<Option<Token>>,
}

struct Token {
    value: String,
    refresh_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl PartialEq for ClientCredentials {
    fn eq(&self, other: &Self) -> bool {
        (&self.token_url, &self.client_id, &self.client_secret, &self.scope)
            == (&other.token_url, &other.client_id, &other.client_secret, &other.scope)
    }
}

impl Eq for ClientCredentials {}

impl ClientCredentials {
    /// Credentials for `token_url`; no token is fetched until the first request needs one.
    pub fn new(token_url: http::Uri, client_id: String, client_secret: Secret, scope: Option<String>) -> Self {
        ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The access token to send: the one kept, or a new one when it is due for replacement.
    pub(crate) async fn token(&self, client: &UpstreamClient) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let fetched = self.fetch(client).await?;
        let value = fetched.value.clone();
        *cached = Some(fetched);
        Ok(value)
    }

    /// The application refused the token (401): the next request fetches a new one. The
    /// refused request is not sent again (no automatic retries).
    pub(crate) async fn forget(&self, refused: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == refused) {
            *cached = None;
        }
    }

    async fn fetch(&self, client: &UpstreamClient) -> Result<Token, String> {
        let asked = Instant::now();
        let response = client.request(self.token_request()?).await.map_err(|error| {
            format!(
                "the token endpoint {} could not be reached: {}",
                self.token_url,
                error_chain(&error)
            )
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_TOKEN_RESPONSE)
            .collect()
            .await
            .map_err(|error| format!("the token endpoint's answer could not be read: {error}"))?
            .to_bytes();
        // The answer is read for its shape only: an error body may echo what was sent.
        if status != StatusCode::OK {
            return Err(format!(
                "the token endpoint {} answered {status}{}",
                self.token_url,
                oauth_error(&body).map(|e| format!(" ({e})")).unwrap_or_default()
            ));
        }
        parse_token(&body, asked).map_err(|why| format!("the token endpoint {} answered {why}", self.token_url))
    }

    /// `POST token_url` with `grant_type=client_credentials`, the client authenticated by
    /// HTTP Basic (RFC 6749 §2.3.1: id and secret form-encoded first).
    fn token_request(&self) -> Result<Request<Full<Bytes>>, String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &self.scope {
            form.append_pair("scope", scope);
        }
        let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let basic = format!("{}:{}", encode(&self.client_id), encode(&self.client_secret.expose()));
        Request::post(self.token_url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Basic {}", super::base64(basic.as_bytes())))
            .body(Full::new(Bytes::from(form.finish())))
            .map_err(|error| format!("the token request could not be built: {error}"))
    }
}

/// A token answer (RFC 6749 §5.1), replaced at four fifths of its lifetime.
fn parse_token(body: &[u8], asked: Instant) -> Result<Token, String> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "something that is not a JSON token answer".to_owned())?;
    let value = answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or("no usable access_token")?;
    match answer["token_type"].as_str() {
        Some(kind) if kind.eq_ignore_ascii_case("bearer") => {}
        other => return Err(format!("a token of type {other:?}, not Bearer")),
    }
    let lifetime = answer["expires_in"]
        .as_u64()
        .map_or(UNSAID_LIFETIME, Duration::from_secs);
    Ok(Token {
        value: value.to_owned(),
        refresh_at: asked + lifetime.mul_f64(0.8),
    })
}

/// The `error` code of an OAuth error answer (RFC 6749 §5.2), when it is one: a short token
/// from a closed set, safe to record.
fn oauth_error(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = answer["error"].as_str()?;
    (code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers() {
        let asked = Instant::now();
        let token = parse_token(
            br#"{"access_token":"abc","token_type":"Bearer","expires_in":100}"#,
            asked,
        )
        .unwrap();
        assert_eq!(token.value, "abc");
        assert_eq!(token.refresh_at, asked + Duration::from_secs(80));
        let unsaid = parse_token(br#"{"access_token":"abc","token_type":"bearer"}"#, asked).unwrap();
        assert_eq!(unsaid.refresh_at, asked + UNSAID_LIFETIME.mul_f64(0.8));
        for (body, why) in [
            (&b"<html>"[..], "not a JSON"),
            (br#"{"token_type":"Bearer"}"#, "no usable access_token"),
            (
                br#"{"access_token":"a b","token_type":"Bearer"}"#,
                "no usable access_token",
            ),
            (br#"{"access_token":"abc","token_type":"mac"}"#, "not Bearer"),
            (br#"{"access_token":"abc"}"#, "not Bearer"),
        ] {
            let error = parse_token(body, asked).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn only_an_oauth_error_code_is_kept_from_an_error_answer() {
        assert_eq!(
            oauth_error(br#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(oauth_error(br#"{"error":"secret s3cr3t was wrong"}"#), None);
        assert_eq!(oauth_error(b"not json"), None);
    }

    #[test]
    fn the_token_request_is_a_form_post_with_basic_client_authentication() {
        let credentials = ClientCredentials::new(
            "https://auth.example/token".parse().unwrap(),
            "id:1".into(),
            Secret::new("s&cret"),
            Some("scim write".into()),
        );
        let request = credentials.token_request().unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");
        let basic = request.headers()[AUTHORIZATION].to_str().unwrap().to_owned();
        assert_eq!(basic, format!("Basic {}", crate::upstream::base64(b"id%3A1:s%26cret")));
        let body = futures_body(request);
        assert_eq!(body, "grant_type=client_credentials&scope=scim+write");
    }

    fn futures_body(request: Request<Full<Bytes>>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = runtime.block_on(request.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
