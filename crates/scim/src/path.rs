//! Attribute paths (RFC 7644 §3.10): `[URI ":"] ATTRNAME ["." subAttr]`, and PATCH paths,
//! which add a value-path filter: `emails[type eq "work"].value`.

use crate::filter::parse::Parser;
use crate::filter::{Filter, ParseError, SyntaxKind};
use std::fmt;

/// An attribute path as written: optional schema URN, attribute name, optional sub-attribute.
/// Names keep the spelling of the input; [`crate::schema::ResourceType::resolve`] gives the
/// canonical one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN prefix (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
    pub urn: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute with no URN.
    pub fn named(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_owned(),
            sub: None,
        }
    }

    /// Parses a whole string as an attribute path (errors map to `invalidPath`).
    pub fn parse(input: &str) -> Result<AttrPath, ParseError> {
        let mut parser = Parser::new(input, SyntaxKind::Path);
        let path = parser.attr_path()?;
        parser.expect_end("end of path")?;
        Ok(path)
    }

    /// Whether the name (ignoring URN and sub-attribute) equals `name`, ignoring case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A PATCH `path` (RFC 7644 §3.5.2): `attrPath` or `valuePath [subAttr]`.
///
/// With a filter, `attr.sub` holds the sub-attribute written *after* the brackets
/// (`emails[type eq "work"].value` has `attr = emails.value`, `filter = type eq "work"`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (and sub-attribute) targeted.
    pub attr: AttrPath,
    /// The value-selection filter, evaluated against each value of a multi-valued attribute.
    pub filter: Option<Filter>,
}

impl PatchPath {
    /// Parses a PATCH path (errors map to `invalidPath`).
    pub fn parse(input: &str) -> Result<PatchPath, ParseError> {
        let mut parser = Parser::new(input, SyntaxKind::Path);
        let path = parser.patch_path()?;
        parser.expect_end("end of path")?;
        Ok(path)
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.filter {
            None => write!(f, "{}", self.attr),
            Some(filter) => {
                if let Some(urn) = &self.attr.urn {
                    write!(f, "{urn}:")?;
                }
                write!(f, "{}[{filter}]", self.attr.name)?;
                if let Some(sub) = &self.attr.sub {
                    write!(f, ".{sub}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_paths_parse_and_print() {
        let cases = [
            ("userName", None, "userName", None),
            ("name.givenName", None, "name", Some("givenName")),
            ("$ref", None, "$ref", None),
            ("members.$ref", None, "members", Some("$ref")),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                "manager",
                Some("value"),
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
                Some("urn:ietf:params:scim:schemas:core:2.0:User"),
                "name",
                Some("familyName"),
            ),
        ];
        for (input, urn, name, sub) in cases {
            let path = AttrPath::parse(input).unwrap();
            assert_eq!(path.urn.as_deref(), urn, "{input}");
            assert_eq!(path.name, name, "{input}");
            assert_eq!(path.sub.as_deref(), sub, "{input}");
            assert_eq!(path.to_string(), input);
        }
    }

    #[test]
    fn bad_attribute_paths_say_where() {
        let cases = [
            ("", 0),
            ("9lives", 0),
            ("name.", 5),
            ("name.givenName.x", 14),
            ("user name", 4),
            ("urn:", 4),
            ("urn:ietf:", 9),
            ("emails[type eq \"work\"]", 6),
        ];
        for (input, offset) in cases {
            let err = AttrPath::parse(input).unwrap_err();
            assert_eq!(err.offset, offset, "{input}: {err}");
            assert_eq!(err.scim_type(), crate::ScimType::InvalidPath);
        }
    }

    #[test]
    fn patch_paths_with_value_filters() {
        let path = PatchPath::parse(r#"emails[type eq "work" and primary eq true].value"#).unwrap();
        assert_eq!(path.attr.name, "emails");
        assert_eq!(path.attr.sub.as_deref(), Some("value"));
        assert_eq!(
            path.filter.as_ref().unwrap().to_string(),
            r#"type eq "work" and primary eq true"#
        );
        assert_eq!(path.to_string(), r#"emails[type eq "work" and primary eq true].value"#);

        let path = PatchPath::parse(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
        assert!(path.attr.sub.is_none());

        let path = PatchPath::parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"#).unwrap();
        assert_eq!(path.attr.name, "manager");
    }

    #[test]
    fn bad_patch_paths_say_where() {
        let cases = [
            (r#"members[value eq "x""#, 20),
            (r#"members[value eq "x"]x"#, 21),
            (r#"members[value eq "x"]."#, 22),
            (r#"members[emails[type eq "a"] pr]"#, 14),
            (r#"name.givenName[value pr]"#, 14),
            (r#"members[]"#, 8),
        ];
        for (input, offset) in cases {
            let err = PatchPath::parse(input).unwrap_err();
            assert_eq!(err.offset, offset, "{input}: {err}");
        }
    }
}
