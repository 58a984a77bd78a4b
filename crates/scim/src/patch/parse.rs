//! An operation parsed strictly: its members, `op` compared exactly, `path` parsed, and the
//! `value` each op needs.

use super::{PatchError, PatchOpKind, PatchOperation};
use crate::json;
use crate::path::PatchPath;
use crate::ScimType;
use serde_json::Value;

pub(super) fn parse_operation(index: usize, op: &Value) -> Result<PatchOperation, PatchError> {
    let Value::Object(members) = op else {
        return Err(PatchError::at(
            index,
            ScimType::InvalidSyntax,
            "an operation must be a JSON object",
        ));
    };
    if let Some(key) = members
        .keys()
        .find(|k| !["op", "path", "value"].iter().any(|m| k.eq_ignore_ascii_case(m)))
    {
        return Err(PatchError::at(
            index,
            ScimType::InvalidSyntax,
            format!("unknown member \"{key}\": an operation has \"op\", \"path\" and \"value\""),
        ));
    }
    let kind = match json::get(members, "op") {
        Some(Value::String(s)) if s == "add" => PatchOpKind::Add,
        Some(Value::String(s)) if s == "remove" => PatchOpKind::Remove,
        Some(Value::String(s)) if s == "replace" => PatchOpKind::Replace,
        Some(other) => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidSyntax,
                format!(
                    "\"op\" is {other}; RFC 7644 §3.5.2 allows \"add\", \"remove\" or \"replace\", compared exactly"
                ),
            ))
        }
        None => return Err(PatchError::at(index, ScimType::InvalidSyntax, "\"op\" is missing")),
    };
    let path = match json::get(members, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            PatchPath::parse(text)
                .map_err(|e| PatchError::at(index, ScimType::InvalidPath, format!("\"path\": {e}")))?,
        ),
        Some(other) => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidPath,
                format!("\"path\" must be a string, not {other}"),
            ))
        }
    };
    let value = json::get(members, "value").cloned();
    match (kind, &path, &value) {
        (PatchOpKind::Remove, None, _) => {
            return Err(PatchError::at(
                index,
                ScimType::NoTarget,
                "\"remove\" needs a \"path\" (RFC 7644 §3.5.2.2)",
            ));
        }
        (PatchOpKind::Add | PatchOpKind::Replace, _, None) => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidValue,
                format!("\"{}\" needs a \"value\"", kind.as_str()),
            ));
        }
        (PatchOpKind::Add | PatchOpKind::Replace, None, Some(v)) if !v.is_object() => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidValue,
                format!("without \"path\", \"value\" must be an object of attributes, not {v}"),
            ));
        }
        _ => {}
    }
    Ok(PatchOperation { op: kind, path, value })
}
