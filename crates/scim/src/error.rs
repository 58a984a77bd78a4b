//! The SCIM error vocabulary: [`ScimType`] (RFC 7644 §3.12) and the error message [`ScimError`].

use serde_json::{json, Value};
use std::fmt;

/// The error message schema URN (RFC 7644 §3.12).
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` detail error keywords of RFC 7644 §3.12 (table 9), plus `tooLarge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax was invalid, or the attribute and comparison combination is unsupported.
    InvalidFilter,
    /// The filter yields more results than the server will return.
    TooMany,
    /// One or more unique attribute values are in use or reserved.
    Uniqueness,
    /// The modification is incompatible with the attribute's mutability or current state.
    Mutability,
    /// The request body structure was invalid or did not conform to the request schema.
    InvalidSyntax,
    /// The `path` attribute was invalid or malformed.
    InvalidPath,
    /// The `path` did not yield an attribute or value that could be operated on.
    NoTarget,
    /// A required value was missing, or a value was incompatible with the operation or type.
    InvalidValue,
    /// The SCIM protocol version is not supported.
    InvalidVers,
    /// The request cannot be completed because of sensitive information in the URI.
    Sensitive,
    /// The request is larger than the server accepts (used with status 413; not in the RFC table).
    TooLarge,
}

impl ScimType {
    /// The keyword as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::TooLarge => "tooLarge",
        }
    }

    /// Parses a wire keyword (exact spelling).
    pub fn from_wire(keyword: &str) -> Option<ScimType> {
        ALL_SCIM_TYPES.iter().copied().find(|t| t.as_str() == keyword)
    }
}

const ALL_SCIM_TYPES: [ScimType; 11] = [
    ScimType::InvalidFilter,
    ScimType::TooMany,
    ScimType::Uniqueness,
    ScimType::Mutability,
    ScimType::InvalidSyntax,
    ScimType::InvalidPath,
    ScimType::NoTarget,
    ScimType::InvalidValue,
    ScimType::InvalidVers,
    ScimType::Sensitive,
    ScimType::TooLarge,
];

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error response: HTTP status, optional `scimType` and a human-readable `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.map(ScimType::as_str).unwrap_or("-"))]
pub struct ScimError {
    /// The HTTP status code.
    pub status: u16,
    /// The SCIM detail error keyword, if any.
    pub scim_type: Option<ScimType>,
    /// What went wrong and where, for a human.
    pub detail: String,
}

impl ScimError {
    /// An error with a status, a keyword and a detail.
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// A 400 Bad Request with the given keyword.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError::new(400, Some(scim_type), detail)
    }

    /// A 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ScimError::new(404, None, detail)
    }

    /// The error message body of RFC 7644 §3.12; `status` is a JSON string, as the RFC says.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = Value::String(scim_type.as_str().to_owned());
        }
        body["detail"] = Value::String(self.detail.clone());
        body
    }

    /// Reads an error body. Returns `None` when the body is not a SCIM error message
    /// (no error schema, or no status as a string or number).
    pub fn from_json(body: &Value) -> Option<ScimError> {
        let schemas = body.get("schemas")?.as_array()?;
        if !schemas.iter().any(|s| s.as_str() == Some(ERROR_SCHEMA)) {
            return None;
        }
        let status = match body.get("status")? {
            Value::String(s) => s.parse().ok()?,
            Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
            _ => return None,
        };
        let scim_type = body
            .get("scimType")
            .and_then(Value::as_str)
            .and_then(ScimType::from_wire);
        let detail = body
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Some(ScimError {
            status,
            scim_type,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_status_as_string() {
        let err = ScimError::bad_request(ScimType::InvalidFilter, "bad");
        let body = err.to_json();
        assert_eq!(body["status"], "400");
        assert_eq!(body["scimType"], "invalidFilter");
        assert_eq!(body["schemas"][0], ERROR_SCHEMA);
        assert_eq!(ScimError::from_json(&body), Some(err));
    }

    #[test]
    fn numeric_status_is_read_too() {
        let body = json!({"schemas": [ERROR_SCHEMA], "status": 404, "detail": "x"});
        assert_eq!(ScimError::from_json(&body).map(|e| e.status), Some(404));
        assert_eq!(ScimError::from_json(&json!({"status": "404"})), None);
    }

    #[test]
    fn every_keyword_round_trips() {
        for t in ALL_SCIM_TYPES {
            assert_eq!(ScimType::from_wire(t.as_str()), Some(t));
        }
    }
}
