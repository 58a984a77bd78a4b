//! The filter language of RFC 7644 §3.4.2.2.
//!
//! [`Filter::parse`] accepts the complete grammar — every comparison operator, `pr`, `and`/`or`
//! (with `and` binding tighter), `not (…)`, grouping, value paths
//! (`emails[type eq "work" and primary eq true]`), URN-qualified paths, JSON string escapes,
//! numbers, booleans, `null` — and one widespread extension: a comparison after a value path
//! (`emails[type eq "work"].value eq "x"`, sent by Entra ID), reported by
//! [`Filter::is_rfc_grammar`] so that strict servers can refuse it.
//!
//! Keywords (`eq`, `and`, `not`, `true`, …) are case-insensitive, as ABNF literals are
//! (RFC 5234 §2.3). [`Filter`]'s `Display` prints a canonical form: lowercase keywords, single
//! spaces, parentheses only where precedence needs them; `parse(print(f)) == f`.

mod eval;
pub(crate) mod parse;

use crate::path::AttrPath;
use crate::ScimType;
use serde_json::Number;
use std::fmt;

pub use eval::FilterCheckError;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath pr` or `attrPath op value`.
    Attr {
        /// The attribute compared.
        path: AttrPath,
        /// What it is tested for.
        test: AttrTest,
    },
    /// `attrPath "[" valFilter "]"`, optionally followed by `.subAttr test` (extension).
    ValuePath {
        /// The multi-valued (or complex) attribute whose values are selected.
        path: AttrPath,
        /// Evaluated against each value; its paths are sub-attribute names.
        filter: Box<Filter>,
        /// The non-RFC `].sub op value` tail.
        then: Option<SubAttrTest>,
    },
    /// `left and right`.
    And(Box<Filter>, Box<Filter>),
    /// `left or right`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (inner)`.
    Not(Box<Filter>),
}

/// The tail of `emails[type eq "work"].value eq "x"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubAttrTest {
    /// The sub-attribute (`value`).
    pub sub: String,
    /// The test applied to it.
    pub test: AttrTest,
}

/// What an attribute is tested for.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrTest {
    /// `pr`: has a non-empty value.
    Present,
    /// A comparison with a literal.
    Compare(CompareOp, CompValue),
}

/// The comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    /// Every operator.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The keyword, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator for a keyword, case-insensitive.
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// Whether this is an ordering operator (`gt`, `ge`, `lt`, `le`).
    pub fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }

    /// Whether this is a substring operator (`co`, `sw`, `ew`).
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// A comparison literal: JSON `false`, `null`, `true`, a number or a string.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A JSON number.
    Number(Number),
    /// A JSON string (escapes decoded).
    String(String),
}

/// Whether a syntax error is in a filter or in a path; decides the `scimType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxKind {
    /// A `filter` query parameter or SearchRequest member: `invalidFilter`.
    Filter,
    /// A PATCH `path`, `sortBy`, `attributes`: `invalidPath`.
    Path,
}

/// A syntax error: where (byte offset into the input) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {} at offset {offset}: expected {expected}, found {found}", match kind { SyntaxKind::Filter => "filter", SyntaxKind::Path => "path" })]
pub struct ParseError {
    /// Filter or path.
    pub kind: SyntaxKind,
    /// Byte offset of the first character that could not be accepted.
    pub offset: usize,
    /// What the grammar allows there.
    pub expected: String,
    /// What is there instead, quoted, or `end of input`.
    pub found: String,
}

impl ParseError {
    /// `invalidFilter` or `invalidPath`.
    pub fn scim_type(&self) -> ScimType {
        match self.kind {
            SyntaxKind::Filter => ScimType::InvalidFilter,
            SyntaxKind::Path => ScimType::InvalidPath,
        }
    }

    /// The SCIM error (400) for this syntax error.
    pub fn to_scim_error(&self) -> crate::ScimError {
        crate::ScimError::bad_request(self.scim_type(), self.to_string())
    }
}

impl Filter {
    /// Parses a filter (errors map to `invalidFilter`).
    pub fn parse(input: &str) -> Result<Filter, ParseError> {
        let mut parser = parse::Parser::new(input, SyntaxKind::Filter);
        let filter = parser.filter(false)?;
        parser.expect_end("'and', 'or' or end of filter")?;
        Ok(filter)
    }

    /// `left and right`.
    pub fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    /// `left or right`.
    pub fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    /// `path op value`.
    pub fn compare(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
        Filter::Attr {
            path,
            test: AttrTest::Compare(op, value),
        }
    }

    /// Whether the filter stays within the RFC 7644 ABNF (no `].sub op value` tails).
    pub fn is_rfc_grammar(&self) -> bool {
        match self {
            Filter::Attr { .. } => true,
            Filter::ValuePath { filter, then, .. } => then.is_none() && filter.is_rfc_grammar(),
            Filter::And(l, r) | Filter::Or(l, r) => l.is_rfc_grammar() && r.is_rfc_grammar(),
            Filter::Not(inner) => inner.is_rfc_grammar(),
        }
    }

    /// Calls `visit` on every attribute path in the filter, with the enclosing value path's
    /// attribute for paths inside brackets.
    pub fn for_each_path<'f>(&'f self, visit: &mut impl FnMut(Option<&'f AttrPath>, &'f AttrPath)) {
        self.walk_paths(None, visit)
    }

    fn walk_paths<'f>(
        &'f self,
        parent: Option<&'f AttrPath>,
        visit: &mut impl FnMut(Option<&'f AttrPath>, &'f AttrPath),
    ) {
        match self {
            Filter::Attr { path, .. } => visit(parent, path),
            Filter::ValuePath { path, filter, .. } => {
                visit(parent, path);
                filter.walk_paths(Some(path), visit);
            }
            Filter::And(l, r) | Filter::Or(l, r) => {
                l.walk_paths(parent, visit);
                r.walk_paths(parent, visit);
            }
            Filter::Not(inner) => inner.walk_paths(parent, visit),
        }
    }
}

// === impl Display ===

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Attr { path, test } => write!(f, "{path} {test}"),
            Filter::ValuePath { path, filter, then } => {
                write!(f, "{path}[{filter}]")?;
                if let Some(SubAttrTest { sub, test }) = then {
                    write!(f, ".{sub} {test}")?;
                }
                Ok(())
            }
            // `and` binds tighter than `or`, both associate to the left: parenthesise an `or`
            // under an `and`, and any right operand of the same or lower precedence.
            Filter::And(left, right) => {
                write_operand(f, left, matches!(**left, Filter::Or(..)))?;
                f.write_str(" and ")?;
                write_operand(f, right, matches!(**right, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Or(left, right) => {
                write_operand(f, left, false)?;
                f.write_str(" or ")?;
                write_operand(f, right, matches!(**right, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, parenthesise: bool) -> fmt::Result {
    if parenthesise {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

impl fmt::Display for AttrTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrTest::Present => f.write_str("pr"),
            AttrTest::Compare(op, value) => write!(f, "{} {value}", op.as_str()),
        }
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
        }
    }
}

#[cfg(test)]
mod tests;
