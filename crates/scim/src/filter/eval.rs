//! Evaluating a filter against a resource, and checking it against the schema first.

use super::{AttrTest, CompValue, CompareOp, Filter, SubAttrTest};
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, ResourceType};
use crate::value::{fold, locate, locate_in_element, order, parse_date_time, scalar, Located};
use crate::{ScimError, ScimType};
use serde_json::Value;
use std::cmp::Ordering;

/// A filter that parses but cannot be evaluated against the schema: an unknown attribute, or
/// an operator or value that does not suit the attribute's type (RFC 7644 §3.4.2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {detail}")]
pub struct FilterCheckError {
    /// What is wrong, naming the attribute.
    pub detail: String,
}

impl FilterCheckError {
    fn new(detail: String) -> Self {
        FilterCheckError { detail }
    }

    /// The SCIM error (400 `invalidFilter`).
    pub fn to_scim_error(&self) -> ScimError {
        ScimError::bad_request(ScimType::InvalidFilter, self.to_string())
    }
}

/// Where paths are resolved: at the resource, or inside one value of a multi-valued attribute.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource(&'a ResourceType),
    Element(Option<&'static AttributeDef>),
}

impl Filter {
    /// Whether `resource` matches. Strings honour `caseExact` (case-insensitive otherwise),
    /// date-times compare as instants, a multi-valued attribute matches when any value does,
    /// and `ne` is the negation of `eq`. Attributes no schema knows compare as
    /// case-insensitive strings, numbers or booleans by their JSON type.
    pub fn matches(&self, resource: &Value, rt: &ResourceType) -> bool {
        self.eval(resource, Scope::Resource(rt))
    }

    fn eval(&self, node: &Value, scope: Scope<'_>) -> bool {
        match self {
            Filter::Attr { path, test } => test_located(&locate_scoped(node, scope, path), test),
            Filter::ValuePath { path, filter, then } => {
                let located = locate_scoped(node, scope, path);
                let parent = located.def;
                located.values.iter().any(|element| {
                    filter.eval(element, Scope::Element(parent))
                        && match then {
                            None => true,
                            Some(SubAttrTest { sub, test }) => {
                                test_located(&locate_in_element(element, parent, &AttrPath::named(sub)), test)
                            }
                        }
                })
            }
            Filter::And(l, r) => l.eval(node, scope) && r.eval(node, scope),
            Filter::Or(l, r) => l.eval(node, scope) || r.eval(node, scope),
            Filter::Not(inner) => !inner.eval(node, scope),
        }
    }

    /// Whether one value of the multi-valued complex attribute `attr` matches this value
    /// filter (the filter's paths name sub-attributes of `attr`).
    pub fn matches_element(&self, element: &Value, attr: &'static AttributeDef) -> bool {
        self.eval(element, Scope::Element(Some(attr)))
    }

    /// Checks a value filter against the sub-attributes of `attr`.
    pub fn check_element(&self, attr: &'static AttributeDef) -> Result<(), FilterCheckError> {
        self.check_scoped(Scope::Element(Some(attr)))
    }

    /// Checks every path and comparison against the resource type's schemas.
    pub fn check(&self, rt: &ResourceType) -> Result<(), FilterCheckError> {
        self.check_scoped(Scope::Resource(rt))
    }

    fn check_scoped(&self, scope: Scope<'_>) -> Result<(), FilterCheckError> {
        match self {
            Filter::Attr { path, test } => check_test(resolve_scoped(scope, path)?, test, &path.to_string()),
            Filter::ValuePath { path, filter, then } => {
                let def = resolve_scoped(scope, path)?;
                if def.kind != AttrType::Complex {
                    return Err(FilterCheckError::new(format!(
                        "'{path}' is not a complex attribute: a value filter '[…]' selects values of a complex attribute"
                    )));
                }
                filter.check_scoped(Scope::Element(Some(def)))?;
                if let Some(SubAttrTest { sub, test }) = then {
                    let sub_def = def
                        .sub_attribute(sub)
                        .ok_or_else(|| FilterCheckError::new(format!("'{path}' has no sub-attribute '{sub}'")))?;
                    check_test(sub_def, test, &format!("{path}.{sub}"))?;
                }
                Ok(())
            }
            Filter::And(l, r) | Filter::Or(l, r) => {
                l.check_scoped(scope)?;
                r.check_scoped(scope)
            }
            Filter::Not(inner) => inner.check_scoped(scope),
        }
    }
}

fn locate_scoped<'v>(node: &'v Value, scope: Scope<'_>, path: &AttrPath) -> Located<'v> {
    match scope {
        Scope::Resource(rt) => locate(node, rt, path),
        Scope::Element(parent) => locate_in_element(node, parent, path),
    }
}

fn resolve_scoped(scope: Scope<'_>, path: &AttrPath) -> Result<&'static AttributeDef, FilterCheckError> {
    let found = match scope {
        Scope::Resource(rt) => rt.resolve(path).map(|r| r.leaf()),
        Scope::Element(parent) if path.urn.is_none() => {
            let sub = parent.and_then(|p| p.sub_attribute(&path.name));
            match (&path.sub, sub) {
                (None, sub) => sub,
                (Some(inner), Some(sub)) => sub.sub_attribute(inner),
                (Some(_), None) => None,
            }
        }
        Scope::Element(_) => None,
    };
    found.ok_or_else(|| match scope {
        Scope::Resource(rt) => {
            FilterCheckError::new(format!("unknown attribute '{path}' for resource type {}", rt.name))
        }
        Scope::Element(parent) => FilterCheckError::new(format!(
            "'{path}' is not a sub-attribute of '{}'",
            parent.map_or("?", |p| p.name)
        )),
    })
}

fn check_test(def: &'static AttributeDef, test: &AttrTest, path: &str) -> Result<(), FilterCheckError> {
    let AttrTest::Compare(op, literal) = test else {
        return Ok(());
    };
    let op = *op;
    // A complex attribute compares through its `value` sub-attribute (`emails eq "a@b"`).
    let def = if def.kind == AttrType::Complex {
        def.sub_attribute("value").ok_or_else(|| {
            FilterCheckError::new(format!(
                "'{path}' is complex and has no 'value': compare one of its sub-attributes"
            ))
        })?
    } else {
        def
    };
    let kind = def.kind.as_str();
    let refuse = |why: String| Err(FilterCheckError::new(format!("'{path}' ({kind}) {why}")));
    if let CompValue::Null = literal {
        return if matches!(op, CompareOp::Eq | CompareOp::Ne) {
            Ok(())
        } else {
            refuse(format!("cannot be compared with null using '{}'", op.as_str()))
        };
    }
    match def.kind {
        AttrType::Boolean => {
            if !matches!(literal, CompValue::Bool(_)) {
                return refuse(format!("is compared with {}: use true or false", describe(literal)));
            }
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return refuse(format!("does not support '{}': only eq, ne and pr", op.as_str()));
            }
        }
        AttrType::Binary => {
            if !matches!(literal, CompValue::String(_)) {
                return refuse(format!("is compared with {}: use a string", describe(literal)));
            }
            if op.is_ordering() {
                return refuse(format!("does not support '{}' (RFC 7644 §3.4.2.2)", op.as_str()));
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            if !matches!(literal, CompValue::Number(_)) {
                return refuse(format!("is compared with {}: use a number", describe(literal)));
            }
            if op.is_substring() {
                return refuse(format!("does not support '{}' on numbers", op.as_str()));
            }
        }
        AttrType::DateTime => {
            let CompValue::String(text) = literal else {
                return refuse(format!(
                    "is compared with {}: use a date-time string",
                    describe(literal)
                ));
            };
            if !op.is_substring() && parse_date_time(text).is_none() {
                return refuse(format!(
                    "is compared with \"{text}\", which is not an RFC 3339 date-time"
                ));
            }
        }
        AttrType::String | AttrType::Reference => {
            if !matches!(literal, CompValue::String(_)) {
                return refuse(format!(
                    "is compared with {}: use a string in double quotes",
                    describe(literal)
                ));
            }
        }
        AttrType::Complex => return refuse("cannot be compared".to_owned()),
    }
    Ok(())
}

fn describe(literal: &CompValue) -> String {
    match literal {
        CompValue::Null => "null".to_owned(),
        CompValue::Bool(b) => format!("the boolean {b}"),
        CompValue::Number(n) => format!("the number {n}"),
        CompValue::String(s) => format!("the string \"{s}\""),
    }
}

fn test_located(located: &Located<'_>, test: &AttrTest) -> bool {
    match test {
        AttrTest::Present => located.values.iter().any(|v| is_present(v)),
        AttrTest::Compare(CompareOp::Ne, literal) => !compare_any(located, CompareOp::Eq, literal),
        AttrTest::Compare(op, literal) => compare_any(located, *op, literal),
    }
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.is_empty(),
        other => crate::json::is_assigned(other),
    }
}

fn compare_any(located: &Located<'_>, op: CompareOp, literal: &CompValue) -> bool {
    if let CompValue::Null = literal {
        // `eq null` holds for an unassigned attribute (RFC 7643 §2.5).
        return op == CompareOp::Eq && !located.values.iter().any(|v| crate::json::is_assigned(v));
    }
    located.values.iter().any(|v| compare_one(v, located.def, op, literal))
}

fn compare_one(value: &Value, def: Option<&'static AttributeDef>, op: CompareOp, literal: &CompValue) -> bool {
    let Some((value, def)) = scalar(value, def) else {
        return false;
    };
    match (value, literal) {
        (Value::String(actual), CompValue::String(wanted)) if op.is_substring() => {
            let case_exact = def.is_some_and(|d| d.case_exact);
            let (actual, wanted) = if case_exact {
                (actual.clone(), wanted.clone())
            } else {
                (fold(actual), fold(wanted))
            };
            match op {
                CompareOp::Co => actual.contains(&wanted),
                CompareOp::Sw => actual.starts_with(&wanted),
                _ => actual.ends_with(&wanted),
            }
        }
        (Value::String(_), CompValue::String(wanted)) => {
            ordering_holds(op, order(value, &Value::String(wanted.clone()), def))
        }
        (Value::Number(_), CompValue::Number(wanted)) if !op.is_substring() => {
            ordering_holds(op, order(value, &Value::Number(wanted.clone()), def))
        }
        (Value::Bool(actual), CompValue::Bool(wanted)) => op == CompareOp::Eq && actual == wanted,
        _ => false,
    }
}

fn ordering_holds(op: CompareOp, ordering: Option<Ordering>) -> bool {
    let Some(ordering) = ordering else { return false };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        _ => false,
    }
}
