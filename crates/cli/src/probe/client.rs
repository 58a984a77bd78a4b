//! The probe's side of HTTP: one application, its token, the evidence of every request, and
//! the resources the probe created (and must delete).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use scimtrail_proxy::upstream::{error_chain, UpstreamClient};
use scimtrail_rules::probe::Evidence;
use serde_json::Value;
use std::time::Duration;

/// What every resource the probe creates is called: its userName or displayName starts so,
/// and the probe deletes nothing else.
pub(crate) const PREFIX: &str = "scimtrail-probe-";

/// How long one request may take, its whole answer included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The most of an answer kept: evidence is an excerpt.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// An answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    /// The body as JSON, `Null` when empty or not JSON.
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ids of a ListResponse's resources, in order.
    pub(crate) fn listed_ids(&self) -> Vec<String> {
        self.body
            .get("Resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// `totalResults`, a number or a numeric string.
    pub(crate) fn total_results(&self) -> Option<u64> {
        match self.body.get("totalResults")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// A resource the probe created.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    /// `Users` or `Groups`.
    pub(crate) endpoint: &'static str,
    pub(crate) id: String,
    /// Its userName or displayName (always starting with [`PREFIX`]).
    pub(crate) name: String,
}

/// The application under probe.
pub(crate) struct App {
    client: UpstreamClient,
    /// The base URL, without a trailing `/`.
    base: String,
    token: Option<String>,
    /// What the probe created and has not deleted yet, oldest first.
    pub(crate) created: Vec<Created>,
}

impl App {
    pub(crate) fn new(client: UpstreamClient, base: &str, token: Option<String>) -> App {
        App {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
            created: Vec::new(),
        }
    }

    /// Sends one request to `path` (with its query) under the base URL. `content_type` is
    /// set when there is a body.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let mut builder = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("accept", "application/scim+json, application/json");
        if body.is_some() {
            builder = builder.header("content-type", content_type);
        }
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = builder
            .body(Full::new(bytes))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("no answer: {}", error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let limited = http_body_util::Limited::new(body, MAX_ANSWER_BYTES);
            let bytes = limited
                .collect()
                .await
                .map_err(|e| format!("the answer could not be read: {e}"))?
                .to_bytes();
            Ok::<_, String>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no whole answer within {} s", TIMEOUT.as_secs()))??;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        })
    }

    /// The evidence of one request: its line, its status and an excerpt of the answer (a
    /// list as its counts only: it may show other people's accounts), the token never in it.
    pub(crate) fn evidence(&self, method: &str, path: &str, reply: &Result<Reply, String>) -> Evidence {
        let (status, excerpt) = match reply {
            Ok(reply) => (Some(reply.status), excerpt(reply)),
            Err(error) => (None, error.clone()),
        };
        Evidence {
            request: format!("{method} {path}"),
            status,
            excerpt: self.scrub(&excerpt),
        }
    }

    /// The token out of a text the application sent back.
    pub(crate) fn scrub(&self, text: &str) -> String {
        match &self.token {
            Some(token) if !token.is_empty() => text.replace(token.as_str(), "[token]"),
            _ => text.to_owned(),
        }
    }

    /// Remembers a resource the probe created, to delete it at the end; refuses one not
    /// named as the probe names them.
    pub(crate) fn created(&mut self, endpoint: &'static str, id: &str, name: &str) -> Result<(), String> {
        if !name.starts_with(PREFIX) {
            return Err(format!(
                "{endpoint}/{id} is called {name:?}, not {PREFIX}…: not the probe's"
            ));
        }
        if !self.created.iter().any(|c| c.endpoint == endpoint && c.id == id) {
            self.created.push(Created {
                endpoint,
                id: id.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Forgets a resource deleted already.
    pub(crate) fn deleted(&mut self, endpoint: &str, id: &str) {
        self.created.retain(|c| !(c.endpoint == endpoint && c.id == id));
    }

    /// Deletes what the probe created, groups first, newest first: each with what happened.
    pub(crate) async fn clean_up(&mut self) -> Vec<(Created, Result<u16, String>)> {
        let mut order: Vec<Created> = self.created.drain(..).rev().collect();
        order.sort_by_key(|c| c.endpoint != "Groups");
        let mut done = Vec::new();
        for created in order {
            let path = format!("/{}/{}", created.endpoint, encode(&created.id));
            let outcome = match self.send("DELETE", &path, "", None, &[]).await {
                Ok(reply) if reply.ok() || reply.status == 404 => Ok(reply.status),
                Ok(reply) => Err(format!("answered {}: {}", reply.status, self.scrub(&excerpt(&reply)))),
                Err(error) => Err(error),
            };
            done.push((created, outcome));
        }
        done
    }
}

/// An answer's body on one line, at most 120 characters; a ListResponse as its counts.
pub(crate) fn excerpt(reply: &Reply) -> String {
    let text = if reply.body.get("Resources").is_some() {
        format!(
            "ListResponse totalResults={} itemsPerPage={} Resources=[{} resources]",
            reply.body.get("totalResults").map_or("-".to_owned(), Value::to_string),
            reply.body.get("itemsPerPage").map_or("-".to_owned(), Value::to_string),
            reply.listed_ids().len()
        )
    } else if reply.text.is_empty() {
        "(no body)".to_owned()
    } else {
        reply.text.clone()
    };
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(120).collect::<String>())
    } else {
        line
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a space is `%20`, which
/// every application reads as a space; `+` some read as a plus).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        for (text, encoded) in [
            ("userName eq \"a@b.c\"", "userName%20eq%20%22a%40b.c%22"),
            ("scimtrail-probe-1_~", "scimtrail-probe-1_~"),
            ("a+b/é", "a%2Bb%2F%C3%A9"),
        ] {
            assert_eq!(encode(text), encoded);
        }
    }
}
