//! Playing a scenario over HTTP, and checking the state it left in the application.

use crate::scenario::{fill, fill_json, Scenario};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::HashMap;

/// A plain HTTP/1.1 client for loopback.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

/// An answer: status, headers we care about, and the body (JSON when it parses).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// `scimtrail-exchange-id`, when the proxy answered.
    pub exchange_id: Option<String>,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// A body as a step reads it: JSON when it parses, else its text.
    pub fn body_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// A step's headers as sent: a body without a content type is SCIM JSON.
pub fn with_content_type(headers: &[(String, String)], body: Option<&Value>) -> Vec<(String, String)> {
    let mut headers = headers.to_vec();
    if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("content-type".into(), "application/scim+json".into()));
    }
    headers
}

/// Where a scenario's requests go: over HTTP ([`Http`], to a full URL), or in process through
/// a route of scimtrail (`scimtrail verify`, to a path under the route's prefix).
pub trait Sender {
    /// Sends one request to `url` (as `base` and the step's path make it).
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> impl std::future::Future<Output = Result<Answer, String>>;
}

impl Sender for Http {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        Http::send(self, method, url, headers, body).await
    }
}

impl Http {
    /// Sends one request.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in with_content_type(headers, body) {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = builder
            .body(Full::new(bytes))
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let exchange_id = response
            .headers()
            .get(scimtrail_proxy::EXCHANGE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            exchange_id,
            body: Answer::body_of(&bytes),
        })
    }
}

/// What one step got.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// The step's name.
    pub name: String,
    /// What came back.
    pub answer: Answer,
}

/// Plays every step against `base` (`http://127.0.0.1:PORT/prefix`), saving created ids.
pub async fn play<S: Sender>(
    http: &S,
    base: &str,
    scenario: &Scenario,
) -> Result<(Vec<StepResult>, HashMap<String, String>), String> {
    let mut saved = HashMap::new();
    let mut results = Vec::with_capacity(scenario.steps.len());
    for step in &scenario.steps {
        let mut url = format!("{}{}", base.trim_end_matches('/'), fill(&step.path, &saved));
        if let Some(query) = &step.query {
            url.push('?');
            url.push_str(&fill(query, &saved));
        }
        let body = step.body.as_ref().map(|b| fill_json(b, &saved));
        let answer = http.send(&step.method, &url, &step.headers, body.as_ref()).await?;
        if let (Some(name), Some(id)) = (&step.save, answer.body.get("id").and_then(Value::as_str)) {
            saved.insert(name.clone(), id.to_owned());
        }
        results.push(StepResult {
            name: step.name.clone(),
            answer,
        });
    }
    Ok((results, saved))
}

/// One expectation and whether the application's state meets it.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is expected, for humans.
    pub what: String,
    /// What was found instead; `None` when it holds.
    pub mismatch: Option<String>,
}

/// Checks the scenario's `expect` block against the application at `app` (the demo reads it
/// directly, never through the proxy; `verify` through the route it verifies). `saved` maps names to the ids this play created.
pub async fn check<S: Sender>(
    http: &S,
    app: &str,
    scenario: &Scenario,
    saved: &HashMap<String, String>,
) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    let expect = &scenario.expect;
    for user in expect.get("users").and_then(Value::as_array).into_iter().flatten() {
        let Some(user_name) = user.get("userName").and_then(Value::as_str) else {
            continue;
        };
        let found = find(http, app, "Users", "userName", user_name).await?;
        for (path, expected) in user.as_object().into_iter().flatten() {
            if path == "userName" {
                continue;
            }
            let what = format!("user {user_name}: {path} = {expected}");
            let mismatch = match &found {
                None => Some("the user does not exist".to_owned()),
                Some(resource) => {
                    let actual = attribute(resource, path);
                    (actual.as_ref() != Some(expected)).then(|| match actual {
                        Some(actual) => format!("found {actual}"),
                        None => "absent".to_owned(),
                    })
                }
            };
            checks.push(Check { what, mismatch });
        }
    }
    for user_name in expect
        .get("absent_users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(user_name) = user_name.as_str() else { continue };
        let found = find(http, app, "Users", "userName", user_name).await?;
        checks.push(Check {
            what: format!("user {user_name} deleted"),
            mismatch: found.map(|_| "the user still exists".to_owned()),
        });
    }
    for group in expect.get("groups").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = group.get("displayName").and_then(Value::as_str) else {
            continue;
        };
        let expected: Vec<&str> = group
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let what = format!("group {name}: members {}", expected.join(", "));
        let found = find(http, app, "Groups", "displayName", name).await?;
        let mismatch = match found {
            None => Some("the group does not exist".to_owned()),
            Some(resource) => {
                let mut actual: Vec<String> = resource
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.get("value").and_then(Value::as_str))
                    .map(|id| {
                        // Show the scenario's names, not ids.
                        saved
                            .iter()
                            .find(|(_, saved_id)| saved_id.as_str() == id)
                            .map_or_else(|| id.to_owned(), |(name, _)| name.clone())
                    })
                    .collect();
                actual.sort();
                let mut wanted: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
                wanted.sort();
                (actual != wanted).then(|| {
                    if actual.is_empty() {
                        "found no members".to_owned()
                    } else {
                        format!("found {}", actual.join(", "))
                    }
                })
            }
        };
        checks.push(Check { what, mismatch });
    }
    Ok(checks)
}

async fn find<S: Sender>(
    http: &S,
    app: &str,
    endpoint: &str,
    attribute: &str,
    value: &str,
) -> Result<Option<Value>, String> {
    let filter = format!("{attribute} eq {}", json!(value));
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("filter", &filter)
        .finish();
    let answer = http
        .send("GET", &format!("{app}/{endpoint}?{query}"), &[], None)
        .await?;
    Ok(answer
        .body
        .get("Resources")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .cloned())
}

/// `name.givenName`, or `urn:…:User:employeeNumber` inside its extension object.
fn attribute(resource: &Value, path: &str) -> Option<Value> {
    if path.starts_with("urn:") {
        let (urn, name) = path.rsplit_once(':')?;
        return resource.get(urn)?.get(name).cloned();
    }
    let mut current = resource;
    for part in path.split('.') {
        current = current.get(part)?;
    }
    Some(current.clone())
}
