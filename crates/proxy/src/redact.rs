//! Secrets out of everything recorded: sensitive headers keep only a keyed fingerprint
//! (`fingerprint.rs`); the SCIM `password` attribute (any casing) and the attributes a route
//! names (`[route.record] redact_attributes`) are redacted in bodies, queries and changes.
//! Only the record: what is forwarded is untouched.

use crate::fingerprint::Key;
use http::HeaderMap;
use scimtrail_scim::redact::{Redaction, REDACTED};
use serde_json::{json, Value};
use std::borrow::Cow;

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

    /// The key fingerprints are made with.
    pub(crate) fn key(&self) -> &Key {
        &self.key
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

/// A body as it is stored: JSON with every redacted attribute replaced; other text as is
/// unless it mentions one, in which case only its size is kept.
pub fn body(bytes: &[u8], redaction: &Redaction) -> Option<String> {
    let parsed = serde_json::from_slice::<Value>(bytes).ok();
    body_of(bytes, parsed.as_ref(), redaction).0
}

/// The same, for a body already parsed (`parsed` is what `bytes` parse to, if JSON), and the
/// parsed value as redacted: copied only when something in it is redacted.
pub fn body_of<'v>(
    bytes: &[u8],
    parsed: Option<&'v Value>,
    redaction: &Redaction,
) -> (Option<String>, Option<Cow<'v, Value>>) {
    if bytes.is_empty() {
        return (None, None);
    }
    match parsed {
        // No redacted name anywhere, not even spelled with an escape: kept as received.
        Some(value) if !redaction.mentioned_in(bytes) && !bytes.contains(&b'\\') => (
            Some(String::from_utf8_lossy(bytes).into_owned()),
            Some(Cow::Borrowed(value)),
        ),
        Some(value) => {
            let mut value = value.clone();
            let redacted = redaction.redact(&mut value);
            // Keep the body exactly as received unless it mentions a redacted name anywhere: a
            // duplicate key (`"password":"x","password":null`) is invisible in the parsed value.
            let stored = if redacted == 0 && !redaction.mentioned_in(bytes) {
                String::from_utf8_lossy(bytes).into_owned()
            } else {
                value.to_string()
            };
            (Some(stored), Some(Cow::Owned(value)))
        }
        None => {
            // PostgreSQL text cannot hold NUL: one would fail the whole batch.
            let text = String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}");
            let stored = if redaction.mentioned_in(bytes) {
                format!(
                    "{REDACTED} non-JSON body of {} bytes that mentions an attribute never stored",
                    bytes.len()
                )
            } else {
                text
            };
            (Some(stored), None)
        }
    }
}

/// A query string with every redacted attribute's value in its filter redacted.
pub fn query(query: Option<&str>, redaction: &Redaction) -> Option<String> {
    let query = query?;
    let mut redacted = false;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("filter") {
                if let Some(safe) = redaction.redact_filter(&v) {
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

/// A recorded normalisation change with every redacted attribute out of it: in its values,
/// and the whole value when its pointer names one — or points into a PATCH operation of
/// `body` (the request the change was made to) whose `path` names one.
pub fn change(mut change: Value, redaction: &Redaction, body: Option<&Value>) -> Value {
    let pointer = change
        .get("pointer")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let pointer = pointer.as_str();
    let secret = pointer.split('/').any(|step| redaction.names(step)) || operation_path_named(pointer, body, redaction);
    for side in ["before", "after"] {
        if let Some(value) = change.get_mut(side) {
            if secret && !value.is_null() {
                *value = Value::String(REDACTED.to_owned());
            } else if let Some(text) = value.as_str().and_then(|text| redact_text(text, pointer, redaction)) {
                *value = Value::String(text);
            } else {
                redaction.redact(value);
            }
        }
    }
    change
}

/// Whether `pointer` is inside `/Operations/N` of `body` and that operation's `path` names a
/// redacted attribute.
fn operation_path_named(pointer: &str, body: Option<&Value>, redaction: &Redaction) -> bool {
    let mut steps = pointer.split('/').skip(1);
    let (Some(operations), Some(index)) = (steps.next(), steps.next()) else {
        return false;
    };
    if !operations.eq_ignore_ascii_case("Operations") {
        return false;
    }
    let operation = body
        .and_then(Value::as_object)
        .and_then(|b| b.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
        .and_then(|(_, ops)| ops.get(index.parse::<usize>().ok()?));
    operation
        .and_then(Value::as_object)
        .and_then(|op| op.iter().find(|(k, _)| k.eq_ignore_ascii_case("path")))
        .and_then(|(_, path)| path.as_str())
        .is_some_and(|path| redaction.names(path))
}

/// A message of our own that may quote what a peer sent (a refusal quoting a filter): as is,
/// unless it mentions an attribute never stored, then without the quote.
pub fn free_text(text: &str, redaction: &Redaction) -> String {
    if redaction.mentioned_in(text.as_bytes()) {
        format!("{REDACTED} (a message that quotes an attribute never stored)")
    } else {
        text.to_owned()
    }
}

/// A changed string with what it compares to a redacted attribute replaced: a whole query
/// string (pointer `?`), else a filter or a PATCH path. `None` when nothing is.
fn redact_text(text: &str, pointer: &str, redaction: &Redaction) -> Option<String> {
    if pointer == "?" {
        return query(Some(text), redaction).filter(|redacted| redacted != text);
    }
    redaction.redact_text(text)
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
        let none = Redaction::passwords_only();
        let received: Value = serde_json::from_str(r#"{"userName":"a","PassWord":"hunter2"}"#).unwrap();
        let (stored, parsed) = body_of(br#"{"userName":"a","PassWord":"hunter2"}"#, Some(&received), &none);
        assert!(!stored.unwrap().contains("hunter2"));
        assert!(matches!(parsed, Some(Cow::Owned(_))), "copied to be redacted");
        assert_eq!(parsed.unwrap()["userName"], "a");
        let plain: Value = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        let (stored, parsed) = body_of(br#"{"a": 1}"#, Some(&plain), &none);
        assert_eq!(stored.unwrap(), r#"{"a": 1}"#, "kept byte for byte");
        assert!(
            matches!(parsed, Some(Cow::Borrowed(_))),
            "nothing to redact: not copied"
        );
        assert!(!body(b"password=hunter2", &none).unwrap().contains("hunter2"));
        let duplicate = body(br#"{"password":"hunter2","password":null}"#, &none).unwrap();
        assert!(!duplicate.contains("hunter2"), "{duplicate}");
        // The name spelled with an escape never appears in the bytes: redacted all the same.
        let escaped = body(br#"{"pass\u0077ord":"hunter2"}"#, &none).unwrap();
        assert!(!escaped.contains("hunter2"), "{escaped}");
        assert_eq!(body(b"a\0b", &none).unwrap(), "a\u{fffd}b");
        let q = query(Some("filter=password+eq+%22hunter2%22&count=1"), &none).unwrap();
        assert!(!q.contains("hunter2"), "{q}");
    }

    #[test]
    fn recorded_changes_never_carry_a_password() {
        let cases = [
            json!({"rule": "N4", "pointer": "/Operations/0", "before": {"op": "replace", "value": {"password": "s3cret", "name.givenName": "B"}}, "after": [{"op": "replace", "path": "password", "value": "s3cret"}]}),
            json!({"rule": "N2", "pointer": "/urn:x:User/password", "before": "s3cret", "after": "s3cret"}),
            json!({"rule": "N15", "pointer": "/password", "before": null, "after": null}),
            // N10 re-encodes the whole query string: a filter's password was in it.
            json!({"rule": "N10", "pointer": "?", "before": "filter=password%20eq%20%22s3cret%22", "after": "filter=password+eq+%22s3cret%22"}),
        ];
        for case in cases {
            let recorded = change(case.clone(), &Redaction::passwords_only(), None).to_string();
            assert!(!recorded.contains("s3cret"), "{recorded}");
        }
        let phones = Redaction::new(&["phoneNumbers".to_owned()]).unwrap();
        let chosen = [
            json!({"rule": "N9", "pointer": "?filter", "before": "PhoneNumbers.value eq \"555-0101\"", "after": "phoneNumbers.value eq \"555-0101\""}),
            json!({"rule": "N4", "pointer": "/Operations/0/path", "before": "phoneNumbers[value eq \"555-0101\"].type", "after": "phoneNumbers[value eq \"555-0101\"].type"}),
            json!({"rule": "N2", "pointer": "/phoneNumbers/0/type", "before": "Work 555-0101", "after": "work"}),
            json!({"rule": "N10", "pointer": "?", "before": "filter=phoneNumbers.value%20eq%20%22555-0101%22", "after": "filter=phoneNumbers.value+eq+%22555-0101%22"}),
        ];
        for case in chosen {
            let recorded = change(case, &phones, None).to_string();
            assert!(!recorded.contains("0101"), "{recorded}");
        }
        // A rule that reshapes an operation's value: the pointer says only where; the
        // operation's path says what.
        let roles = Redaction::new(&["roles".to_owned()]).unwrap();
        let body =
            json!({"Operations": [{"op": "add", "path": "roles", "value": "[{\"value\":\"secret-role-0101\"}]"}]});
        let reshaped = json!({"rule": "N7", "pointer": "/Operations/0/value", "before": "[{\"value\":\"secret-role-0101\"}]", "after": [{"value": "secret-role-0101"}]});
        let recorded = change(reshaped, &roles, Some(&body)).to_string();
        assert!(!recorded.contains("0101"), "{recorded}");
    }
}
