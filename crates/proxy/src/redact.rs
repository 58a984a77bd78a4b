//! Secrets out of everything recorded: sensitive headers keep only a keyed fingerprint
//! (`fingerprint.rs`), and the SCIM `password` attribute is redacted in bodies (RFC 7643
//! `password`, any casing).

use crate::fingerprint::Key;
use http::HeaderMap;
use scimtrail_scim::redact::{names_password, redact_filter, redact_passwords, REDACTED};
use serde_json::{json, Value};

/// Headers whose values are always secrets.
pub const ALWAYS_REDACTED: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

/// Which headers to redact: the fixed set plus the configured ones (lowercase), and the key
/// their fingerprints are made with.
#[derive(Debug, Clone)]
pub struct Redactor {
    extra_headers: Vec<String>,
    key: Key,
}

impl Redactor {
    /// A redactor that also redacts `extra_headers` (case-insensitive), fingerprinting with
    /// `key`.
    pub fn new(extra_headers: &[String], key: Key) -> Redactor {
        Redactor {
            extra_headers: extra_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            key,
        }
    }

    /// Whether a header (named in lowercase) holds a secret.
    pub(crate) fn is_secret(&self, name: &str) -> bool {
        ALWAYS_REDACTED.contains(&name) || self.extra_headers.iter().any(|h| h == name)
    }

    /// Headers as `[[name, value], …]`, secrets replaced by their fingerprint.
    pub fn headers(&self, headers: &HeaderMap) -> Value {
        let pairs: Vec<Value> = headers
            .iter()
            .map(|(name, value)| {
                let text = String::from_utf8_lossy(value.as_bytes());
                let shown = if self.is_secret(name.as_str()) {
                    self.key.fingerprint(&text)
                } else {
                    text.into_owned()
                };
                json!([name.as_str(), shown])
            })
            .collect();
        Value::Array(pairs)
    }
}

/// A body as it is stored — JSON with every password redacted; other text as is unless it
/// mentions a password, in which case only its size is kept — and, when it is JSON, the
/// parsed (redacted) value, so that callers do not parse it again.
pub fn body(bytes: &[u8]) -> (Option<String>, Option<Value>) {
    body_of(bytes, serde_json::from_slice::<Value>(bytes).ok())
}

/// The same, for a body already parsed (`parsed` is what `bytes` parse to, if JSON).
pub fn body_of(bytes: &[u8], parsed: Option<Value>) -> (Option<String>, Option<Value>) {
    if bytes.is_empty() {
        return (None, None);
    }
    match parsed {
        Some(mut value) => {
            let redacted = redact_passwords(&mut value);
            // Keep the body exactly as received unless it mentions a password anywhere: a
            // duplicate key (`"password":"x","password":null`) is invisible in the parsed value.
            let stored = if redacted == 0 && !mentions_password(bytes) {
                String::from_utf8_lossy(bytes).into_owned()
            } else {
                value.to_string()
            };
            (Some(stored), Some(value))
        }
        None => {
            // PostgreSQL text cannot hold NUL: one would fail the whole batch.
            let text = String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}");
            let stored = if mentions_password(bytes) {
                format!(
                    "{REDACTED} non-JSON body of {} bytes that mentions a password",
                    bytes.len()
                )
            } else {
                text
            };
            (Some(stored), None)
        }
    }
}

fn mentions_password(bytes: &[u8]) -> bool {
    bytes.windows(8).any(|w| w.eq_ignore_ascii_case(b"password"))
}

/// A query string with any password in its filter redacted.
pub fn query(query: Option<&str>) -> Option<String> {
    let query = query?;
    let mut redacted = false;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("filter") {
                if let Some(safe) = redact_filter(&v) {
                    redacted = true;
                    return (k.into_owned(), safe);
                }
            }
            (k.into_owned(), v.into_owned())
        })
        .collect();
    if !redacted {
        return Some(query.to_owned());
    }
    Some(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish(),
    )
}

/// A recorded normalisation change with every password out of it: in its values, and the
/// whole value when its pointer names a password attribute.
pub fn change(mut change: Value) -> Value {
    let secret = change
        .get("pointer")
        .and_then(Value::as_str)
        .is_some_and(|pointer| pointer.split(['/', '.', ':']).any(names_password));
    for side in ["before", "after"] {
        if let Some(value) = change.get_mut(side) {
            if secret && !value.is_null() {
                *value = Value::String(REDACTED.to_owned());
            } else {
                redact_passwords(value);
            }
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_bodies() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer tok".parse().unwrap());
        headers.insert("x-api-key", "k3y".parse().unwrap());
        headers.insert("content-type", "application/scim+json".parse().unwrap());
        let key = crate::fingerprint::KeySource::Fixed(b"a test key of enough bytes".to_vec())
            .load()
            .unwrap();
        let shown = Redactor::new(&["X-Api-Key".to_owned()], key)
            .headers(&headers)
            .to_string();
        assert!(!shown.contains("tok\"") && !shown.contains("k3y"), "{shown}");
        assert!(shown.contains("application/scim+json"));
        let (stored, parsed) = body(br#"{"userName":"a","PassWord":"hunter2"}"#);
        assert!(!stored.unwrap().contains("hunter2"));
        assert_eq!(parsed.unwrap()["userName"], "a");
        assert_eq!(body(br#"{"a": 1}"#).0.unwrap(), r#"{"a": 1}"#, "kept byte for byte");
        assert!(!body(b"password=hunter2").0.unwrap().contains("hunter2"));
        let duplicate = body(br#"{"password":"hunter2","password":null}"#).0.unwrap();
        assert!(!duplicate.contains("hunter2"), "{duplicate}");
        assert_eq!(body(b"a\0b").0.unwrap(), "a\u{fffd}b");
        let q = query(Some("filter=password+eq+%22hunter2%22&count=1")).unwrap();
        assert!(!q.contains("hunter2"), "{q}");
    }

    #[test]
    fn recorded_changes_never_carry_a_password() {
        let cases = [
            json!({"rule": "N4", "pointer": "/Operations/0", "before": {"op": "replace", "value": {"password": "s3cret", "name.givenName": "B"}}, "after": [{"op": "replace", "path": "password", "value": "s3cret"}]}),
            json!({"rule": "N2", "pointer": "/urn:x:User/password", "before": "s3cret", "after": "s3cret"}),
            json!({"rule": "N15", "pointer": "/password", "before": null, "after": null}),
        ];
        for case in cases {
            let recorded = change(case.clone()).to_string();
            assert!(!recorded.contains("s3cret"), "{recorded}");
        }
    }
}
