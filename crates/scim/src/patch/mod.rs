//! PATCH (RFC 7644 §3.5.2): strict parsing of the request and application of
//! `add`, `remove` and `replace`, with and without `path`, value-path filters and
//! sub-attribute targets.
//!
//! Decisions, each citing the RFC:
//! - `op` is compared exactly: RFC 7644 §3.5.2 lists "add", "remove" and "replace", and JSON
//!   string values are case-sensitive (RFC 8259 §8.3). `"Replace"` is refused (`invalidSyntax`).
//! - `remove` has no `value` in the RFC; a `value` present is not used. A `remove` of a
//!   multi-valued attribute without a filter removes every value (§3.5.2.2), so
//!   `{"op":"remove","path":"members","value":[…]}` empties the group.
//! - A value filter that matches nothing is `noTarget` for every op (§3.5.2, table of errors).
//! - A readOnly attribute may be named only with its current value (nothing is modified);
//!   any change is `mutability` (RFC 7643 §7: "SHALL NOT be modified").
//! - Setting `primary` to true on one value sets it to false on the others (§3.5.2).
//! - A path that is exactly an extension schema URN targets the whole extension object, as
//!   the path-less form does with the URN as key.
//! - The request is applied atomically: on any error the resource is left unchanged.
//!
//! Parsing is `parse.rs`; applying an operation (with a path, without, to a whole extension)
//! is `apply.rs`; reading and writing the value a resolved path designates is `target.rs`.

mod apply;
mod parse;
mod target;

use apply::apply_operation;
use parse::parse_operation;

use crate::json;
use crate::path::PatchPath;
use crate::resource::{check_primary, check_required};
use crate::schema::ResourceType;
use crate::{ScimError, ScimType};
use serde_json::Value;
use std::fmt;

/// The PatchOp message schema URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `replace`.
    Replace,
}

impl PatchOpKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// What to do.
    pub op: PatchOpKind,
    /// Where; `None` means the resource itself.
    pub path: Option<PatchPath>,
    /// The value (`add` and `replace`).
    pub value: Option<Value>,
}

/// A parsed PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, applied in order.
    pub operations: Vec<PatchOperation>,
}

/// Why a PATCH request was refused: which operation, the `scimType`, and what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PatchError {
    /// Index of the operation in `Operations`, when one is at fault.
    pub op_index: Option<usize>,
    /// The SCIM error keyword.
    pub scim_type: ScimType,
    /// What went wrong.
    pub detail: String,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op_index {
            Some(index) => write!(f, "Operations[{index}]: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

impl PatchError {
    fn at(op_index: usize, scim_type: ScimType, detail: impl Into<String>) -> Self {
        PatchError {
            op_index: Some(op_index),
            scim_type,
            detail: detail.into(),
        }
    }

    fn from_scim(op_index: usize, error: ScimError) -> Self {
        PatchError {
            op_index: Some(op_index),
            scim_type: error.scim_type.unwrap_or(ScimType::InvalidValue),
            detail: error.detail,
        }
    }

    /// The SCIM error (400).
    pub fn to_scim_error(&self) -> ScimError {
        ScimError::bad_request(self.scim_type, self.to_string())
    }
}

impl PatchRequest {
    /// Parses a PatchOp message strictly (RFC 7644 §3.5.2).
    pub fn from_json(body: &Value) -> Result<PatchRequest, PatchError> {
        let syntax = |detail: String| PatchError {
            op_index: None,
            scim_type: ScimType::InvalidSyntax,
            detail,
        };
        let Value::Object(members) = body else {
            return Err(syntax("the body must be a JSON object (a PatchOp message)".to_owned()));
        };
        let schemas_ok = matches!(json::get(members, "schemas"), Some(Value::Array(urns))
            if urns.len() == 1 && urns[0].as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_SCHEMA)));
        if !schemas_ok {
            return Err(syntax(format!("\"schemas\" must be [\"{PATCH_OP_SCHEMA}\"]")));
        }
        if let Some(key) = members
            .keys()
            .find(|k| !k.eq_ignore_ascii_case("schemas") && !k.eq_ignore_ascii_case("Operations"))
        {
            return Err(syntax(format!(
                "unknown member \"{key}\": a PatchOp message has \"schemas\" and \"Operations\""
            )));
        }
        let operations = match json::get(members, "Operations") {
            Some(Value::Array(ops)) if !ops.is_empty() => ops,
            _ => return Err(syntax("\"Operations\" must be a non-empty array".to_owned())),
        };
        let operations = operations
            .iter()
            .enumerate()
            .map(|(i, op)| parse_operation(i, op))
            .collect::<Result<_, _>>()?;
        Ok(PatchRequest { operations })
    }

    /// Applies every operation in order to `resource`, atomically, then checks the result
    /// (required attributes, at most one primary).
    pub fn apply(&self, resource: &mut Value, rt: &ResourceType) -> Result<(), PatchError> {
        let Value::Object(original) = resource else {
            return Err(PatchError {
                op_index: None,
                scim_type: ScimType::InvalidValue,
                detail: "the resource is not an object".into(),
            });
        };
        let mut working = original.clone();
        for (index, operation) in self.operations.iter().enumerate() {
            apply_operation(&mut working, rt, operation).map_err(|e| e.into_patch_error(index))?;
        }
        let last = self.operations.len().saturating_sub(1);
        check_required(&working, rt).map_err(|e| PatchError::from_scim(last, e))?;
        check_primary(&working, rt).map_err(|e| PatchError::from_scim(last, e))?;
        *original = working;
        Ok(())
    }
}

/// An error inside one operation, before the operation index is known.
struct OpError(ScimType, String);

impl OpError {
    fn into_patch_error(self, index: usize) -> PatchError {
        PatchError::at(index, self.0, self.1)
    }
}

impl From<ScimError> for OpError {
    fn from(error: ScimError) -> Self {
        OpError(error.scim_type.unwrap_or(ScimType::InvalidValue), error.detail)
    }
}

type OpResult = Result<(), OpError>;

#[cfg(test)]
mod tests;
