//! The filter's text: bare literals quoted and typed by the schema (N9), names in their
//! canonical spelling (N10), boolean comparisons made boolean (N2), the operators a filter
//! uses (R12), and the check every profile makes: an invalid filter is refused, never
//! forwarded.

use super::attributes::boolean_string;
use super::query;
use super::Working;
use crate::{Refusal, Request};
use scimtrail_scim::filter::{AttrTest, CompValue, CompareOp, SubAttrTest};
use scimtrail_scim::schema::{AttrType, AttributeDef};
use scimtrail_scim::{json, AttrPath, Filter, ResourceType, ScimError, ScimType};
use serde_json::Value;

impl Working {
    // === N9 ===

    pub(super) fn quote_filter_literals(&mut self) {
        self.edit_filter(|filter, rt| {
            let quoted = quote_bare_literals(filter);
            Some(typed_literals(&quoted, rt).unwrap_or(quoted))
        });
    }
}

/// Refuses a request whose filter (of a GET query or a `.search` body) does not parse.
pub(super) fn check(request: &Request) -> Result<(), Refusal> {
    let from_query = request.query.as_deref().and_then(|q| {
        query::decode(q)
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("filter"))
            .map(|(_, value)| value)
    });
    let from_body = request
        .path
        .ends_with("/.search")
        .then_some(request.body.as_ref())
        .flatten()
        .and_then(|body| body.as_object())
        .and_then(|body| json::get(body, "filter"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    for filter in from_query.into_iter().chain(from_body) {
        if let Err(error) = Filter::parse(&filter) {
            return Err(Refusal {
                rule: "filter".to_owned(),
                error: ScimError::bad_request(
                    ScimType::InvalidFilter,
                    format!("the filter {filter:?} cannot be evaluated: {error}"),
                ),
            });
        }
    }
    Ok(())
}

/// The filter with every bare literal after a comparison operator quoted (N9). `true`,
/// `false`, `null` and numbers stay as they are; so does a filter with nothing to quote.
pub(super) fn quote_bare_literals(filter: &str) -> String {
    let mut out = String::with_capacity(filter.len() + 8);
    let mut previous_word = String::new();
    let mut chars = filter.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' => {
                // A quoted string: copy through its closing quote, honouring escapes.
                out.push(c);
                let mut escaped = false;
                for (_, c) in chars.by_ref() {
                    out.push(c);
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                previous_word.clear();
            }
            c if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']') => {
                out.push(c);
                if !c.is_whitespace() {
                    previous_word.clear();
                }
            }
            _ => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, next)) = chars.peek() {
                    if next.is_whitespace() || matches!(next, '(' | ')' | '[' | ']' | '"') {
                        break;
                    }
                    end = i + next.len_utf8();
                    chars.next();
                }
                let word = &filter[start..end];
                let after_operator = CompareOp::from_keyword(&previous_word).is_some();
                if after_operator && !is_json_literal(word) {
                    out.push('"');
                    for c in word.chars() {
                        if matches!(c, '"' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(word);
                }
                previous_word = word.to_owned();
            }
        }
    }
    out
}

/// N9's schema-aware half, after the bare literals are quoted: an unqualified extension
/// attribute is named with its URN; a single-valued complex
/// attribute compared as a whole (`manager eq "7f3b"`, as older Entra tutorials write it) is
/// compared by its `value`, named with its schema's URN
/// (`urn:…:enterprise:2.0:User:manager.value eq "7f3b"`); a number or boolean compared with a
/// string attribute (`employeeNumber eq 701984`) is quoted, since a strict application
/// compares types. `None` when there is nothing to change, the filter does not parse, or
/// the resource type is unknown.
pub(super) fn typed_literals(filter: &str, resource_type: Option<&ResourceType>) -> Option<String> {
    let rt = resource_type?;
    let mut parsed = Filter::parse(filter).ok()?;
    type_literals(&mut parsed, rt, None).then(|| parsed.to_string())
}

/// Types the literals of `filter` (see [`typed_literals`]); whether anything changed.
fn type_literals(filter: &mut Filter, rt: &ResourceType, parent: Option<&AttrPath>) -> bool {
    match filter {
        Filter::Attr {
            path,
            test: AttrTest::Compare(_, value),
        } => {
            let qualified = parent.is_none() && qualify_extension(path, rt);
            let by_value = parent.is_none() && compare_by_value(path, rt);
            let quoted = leaf(path, rt, parent).is_some_and(|def| is_textual(def.kind)) && quote_literal(value);
            qualified || by_value || quoted
        }
        Filter::Attr { path, .. } => parent.is_none() && qualify_extension(path, rt),
        Filter::ValuePath { path, filter, then } => {
            let parent = path.clone();
            let inner = type_literals(filter, rt, Some(&parent));
            let tail = match then {
                Some(SubAttrTest {
                    sub,
                    test: AttrTest::Compare(_, value),
                }) => {
                    leaf(&AttrPath::named(sub), rt, Some(&parent)).is_some_and(|def| is_textual(def.kind))
                        && quote_literal(value)
                }
                _ => false,
            };
            inner || tail
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            let left = type_literals(left, rt, parent);
            type_literals(right, rt, parent) || left
        }
        Filter::Not(inner) => type_literals(inner, rt, parent),
    }
}

/// An unqualified name that is no core or common attribute but is one extension's (only
/// one's): named with that extension's URN, as RFC 7644 §3.10 requires; whether it was.
fn qualify_extension(path: &mut AttrPath, rt: &ResourceType) -> bool {
    if path.urn.is_some() || rt.top_attribute(&path.name).is_some() {
        return false;
    }
    let mut owners = rt
        .schema_urns()
        .skip(1)
        .filter_map(|urn| rt.extension(urn))
        .filter_map(|extension| extension.schema.attribute(&path.name).map(|attr| (extension, attr)));
    let (Some((extension, attr)), None) = (owners.next(), owners.next()) else {
        return false;
    };
    path.urn = Some(extension.schema.id.to_owned());
    attr.name.clone_into(&mut path.name);
    true
}

/// A path to a single-valued complex attribute with a `value`, made to name that `value`;
/// whether it did.
fn compare_by_value(path: &mut AttrPath, rt: &ResourceType) -> bool {
    let Some(resolved) = rt.resolve(path) else { return false };
    let whole = resolved.sub.is_none() && resolved.attr.kind == AttrType::Complex && !resolved.attr.multi_valued;
    let Some(value) = resolved.attr.sub_attribute("value").filter(|_| whole) else {
        return false;
    };
    path.urn = resolved.extension.map(|schema| schema.id.to_owned());
    path.name = resolved.attr.name.to_owned();
    path.sub = Some(value.name.to_owned());
    true
}

/// The definition a path ends at; inside a value path, a sub-attribute of `parent`.
fn leaf(path: &AttrPath, rt: &ResourceType, parent: Option<&AttrPath>) -> Option<&'static AttributeDef> {
    match parent {
        Some(parent) => rt
            .resolve(parent)
            .and_then(|resolved| resolved.attr.sub_attribute(&path.name)),
        None => rt.resolve(path).map(|resolved| resolved.leaf()),
    }
}

/// Whether an attribute's values are JSON strings.
fn is_textual(kind: AttrType) -> bool {
    matches!(
        kind,
        AttrType::String | AttrType::DateTime | AttrType::Binary | AttrType::Reference
    )
}

/// A number or boolean literal as the string it spells; whether it was one.
fn quote_literal(value: &mut CompValue) -> bool {
    let text = match value {
        CompValue::Number(number) => number.to_string(),
        CompValue::Bool(flag) => flag.to_string(),
        CompValue::Null | CompValue::String(_) => return false,
    };
    *value = CompValue::String(text);
    true
}

fn is_json_literal(word: &str) -> bool {
    matches!(word, "true" | "false" | "null") || serde_json::from_str::<serde_json::Number>(word).is_ok()
}

/// The filter printed canonically: attribute names in the schema's spelling, operators in
/// lower case, one space between tokens. `None` when it does not parse (the caller refuses
/// it) and unchanged names where the schema does not know them.
pub(super) fn canonical_filter(filter: &str, resource_type: Option<&ResourceType>) -> Option<String> {
    let mut parsed = Filter::parse(filter).ok()?;
    if let Some(rt) = resource_type {
        canonical_names(&mut parsed, rt, None);
    }
    Some(parsed.to_string())
}

fn canonical_names(filter: &mut Filter, rt: &ResourceType, parent: Option<&AttrPath>) {
    match filter {
        Filter::Attr { path, .. } => canonical_path(path, rt, parent),
        Filter::ValuePath { path, filter, then } => {
            canonical_path(path, rt, None);
            let parent = path.clone();
            canonical_names(filter, rt, Some(&parent));
            if let Some(SubAttrTest { sub, .. }) = then {
                if let Some(def) = rt
                    .resolve(&parent)
                    .and_then(|resolved| resolved.attr.sub_attribute(sub))
                {
                    *sub = def.name.to_owned();
                }
            }
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            canonical_names(left, rt, parent);
            canonical_names(right, rt, parent);
        }
        Filter::Not(inner) => canonical_names(inner, rt, parent),
    }
}

/// Rewrites a path's names to their canonical spelling; inside `emails[…]` the names are
/// sub-attributes of the parent.
fn canonical_path(path: &mut AttrPath, rt: &ResourceType, parent: Option<&AttrPath>) {
    match parent {
        Some(parent) => {
            if let Some(def) = rt
                .resolve(parent)
                .and_then(|resolved| resolved.attr.sub_attribute(&path.name))
            {
                path.name = def.name.to_owned();
            }
        }
        None => {
            if let Some(resolved) = rt.resolve(path) {
                path.urn = resolved.extension.map(|schema| schema.id.to_owned());
                path.name = resolved.attr.name.to_owned();
                path.sub = resolved.sub.map(|sub| sub.name.to_owned());
            }
        }
    }
}

/// Every comparison of a boolean attribute with `"true"`/`"false"` (any case) as a boolean
/// literal; returns whether anything changed. `parent` is set inside a value path.
pub(super) fn coerce_boolean_literals(filter: &mut Filter, rt: &ResourceType, parent: Option<&AttrPath>) -> bool {
    let is_boolean = |path: &AttrPath, parent: Option<&AttrPath>| {
        leaf(path, rt, parent).is_some_and(|def| def.kind == AttrType::Boolean)
    };
    match filter {
        Filter::Attr {
            path,
            test: AttrTest::Compare(_, value),
        } => is_boolean(path, parent) && coerce_literal(value),
        Filter::Attr { .. } => false,
        Filter::ValuePath { path, filter, then } => {
            let parent = path.clone();
            let mut changed = coerce_boolean_literals(filter, rt, Some(&parent));
            if let Some(SubAttrTest {
                sub,
                test: AttrTest::Compare(_, value),
            }) = then
            {
                let sub_path = AttrPath::named(sub);
                changed |= is_boolean(&sub_path, Some(&parent)) && coerce_literal(value);
            }
            changed
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            let left = coerce_boolean_literals(left, rt, parent);
            coerce_boolean_literals(right, rt, parent) || left
        }
        Filter::Not(inner) => coerce_boolean_literals(inner, rt, parent),
    }
}

fn coerce_literal(value: &mut CompValue) -> bool {
    let CompValue::String(text) = value else {
        return false;
    };
    match boolean_string(text) {
        Some(flag) => {
            *value = CompValue::Bool(flag);
            true
        }
        None => false,
    }
}

/// Every operator a filter uses: comparison operators, `pr`, `and`, `or`, `not`.
pub(super) fn operators(filter: &Filter) -> Vec<&'static str> {
    let test = |test: &AttrTest| match test {
        AttrTest::Present => "pr",
        AttrTest::Compare(op, _) => op.as_str(),
    };
    match filter {
        Filter::Attr { test: t, .. } => vec![test(t)],
        Filter::ValuePath { filter, then, .. } => {
            let mut ops = operators(filter);
            if let Some(SubAttrTest { test: t, .. }) = then {
                ops.push(test(t));
            }
            ops
        }
        Filter::And(left, right) => [vec!["and"], operators(left), operators(right)].concat(),
        Filter::Or(left, right) => [vec!["or"], operators(left), operators(right)].concat(),
        Filter::Not(inner) => [vec!["not"], operators(inner)].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_scim::schema::USER_TYPE;

    #[test]
    fn bare_literals_are_quoted_and_json_literals_kept() {
        let cases = [
            ("externalId eq jyoung", "externalId eq \"jyoung\""),
            (
                "id eq 5e4a and manager eq 7f3b",
                "id eq \"5e4a\" and manager eq \"7f3b\"",
            ),
            ("userName eq \"a b\"", "userName eq \"a b\""),
            ("active eq true", "active eq true"),
            ("meta.version gt 3", "meta.version gt 3"),
            ("title pr", "title pr"),
            ("emails[type eq work]", "emails[type eq \"work\"]"),
            ("userName EQ bjensen", "userName EQ \"bjensen\""),
            ("displayName eq a\"b", "displayName eq \"a\"\"b"),
        ];
        for (input, expected) in cases {
            assert_eq!(quote_bare_literals(input), expected, "{input}");
        }
    }

    #[test]
    fn literals_take_the_type_the_schema_gives_and_a_whole_manager_is_compared_by_value() {
        const MANAGER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value";
        const EMPLOYEE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
        let cases = [
            // An older Entra tutorial's lookup of a manager by id.
            ("manager eq \"8a2f\"", format!("{MANAGER} eq \"8a2f\"")),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq \"8a2f\"",
                format!("{MANAGER} eq \"8a2f\""),
            ),
            // An extension attribute named without its URN.
            ("manager.value eq \"8a2f\"", format!("{MANAGER} eq \"8a2f\"")),
            ("manager pr", format!("{} pr", MANAGER.trim_end_matches(".value"))),
            // A number or boolean compared with a string attribute.
            ("employeeNumber eq 701984", format!("{EMPLOYEE} eq \"701984\"")),
            (
                "externalId eq 42 and active eq true",
                "externalId eq \"42\" and active eq true".to_owned(),
            ),
            ("emails[type eq 1]", "emails[type eq \"1\"]".to_owned()),
            ("nickName eq false", "nickName eq \"false\"".to_owned()),
        ];
        for (input, expected) in cases {
            assert_eq!(
                typed_literals(input, Some(&USER_TYPE)).as_deref(),
                Some(expected.as_str()),
                "{input}"
            );
        }
        // Nothing to type: left to the other rules as it is.
        for unchanged in [
            "title pr",
            "nickName eq null",
            // A multi-valued complex attribute is left as the RFC reads it.
            "emails co \"example.com\"",
            "userName EQ \"bjensen\"",
        ] {
            assert_eq!(typed_literals(unchanged, Some(&USER_TYPE)), None, "{unchanged}");
        }
        assert_eq!(typed_literals("manager eq", Some(&USER_TYPE)), None);
        assert_eq!(typed_literals("manager eq \"x\"", None), None);
    }

    #[test]
    fn filters_print_with_canonical_names() {
        let cases = [
            ("USERNAME Eq \"x\"", "userName eq \"x\""),
            (
                "emails[TYPE eq \"work\"].VALUE eq \"a@b\"",
                "emails[type eq \"work\"].value eq \"a@b\"",
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:EMPLOYEENUMBER eq \"1\"",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"1\"",
            ),
            ("madeUp eq \"x\"", "madeUp eq \"x\""),
        ];
        for (input, expected) in cases {
            assert_eq!(
                canonical_filter(input, Some(&USER_TYPE)).as_deref(),
                Some(expected),
                "{input}"
            );
        }
        assert_eq!(canonical_filter("userName eq", Some(&USER_TYPE)), None);
    }
}
