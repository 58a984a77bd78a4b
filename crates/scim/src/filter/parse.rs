//! A recursive-descent parser over bytes for filters and paths. Every error carries the byte
//! offset where the grammar stopped accepting the input.

use super::{AttrTest, CompValue, CompareOp, Filter, ParseError, SubAttrTest, SyntaxKind};
use crate::path::{AttrPath, PatchPath};

/// Deepest nesting of parentheses accepted, so that hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Most `and`/`or` operators accepted in one filter. A chain `a pr and a pr and …` builds a
/// tree as deep as it is long, and printing, evaluating, comparing or dropping that tree
/// recurses once per level: without a bound, a long enough filter overflows the stack.
const MAX_OPERATORS: usize = 1000;

pub(crate) struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    kind: SyntaxKind,
    depth: usize,
    operators: usize,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'$'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$'
}

/// Characters of a schema URN as they appear before an attribute name.
fn is_urn_char(b: u8) -> bool {
    is_name_char(b) || b == b':' || b == b'.'
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, kind: SyntaxKind) -> Self {
        Parser {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            kind,
            depth: 0,
            operators: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error_at(&self, offset: usize, expected: impl Into<String>) -> ParseError {
        ParseError {
            kind: self.kind,
            offset,
            expected: expected.into(),
            found: self.describe(offset),
        }
    }

    fn error(&self, expected: impl Into<String>) -> ParseError {
        self.error_at(self.pos, expected)
    }

    /// What stands at `offset`: a word, a quoted character, or the end.
    fn describe(&self, offset: usize) -> String {
        let rest = self.src.get(offset..).unwrap_or_default();
        let Some(first) = rest.chars().next() else {
            return "end of input".to_owned();
        };
        let word: String = if first.is_ascii_alphanumeric() {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .take(24)
                .collect()
        } else {
            first.to_string()
        };
        format!("'{word}'")
    }

    /// Skips spaces and tabs; returns whether any were skipped.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        self.pos > start
    }

    pub(crate) fn expect_end(&mut self, expected: &str) -> Result<(), ParseError> {
        if self.kind == SyntaxKind::Filter {
            self.skip_ws();
        }
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(expected)),
        }
    }

    fn expect_byte(&mut self, byte: u8, expected: &str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    /// The word (run of name characters) at the cursor, without consuming it.
    fn word_at(&self, pos: usize) -> &'a str {
        let end = self.bytes[pos.min(self.bytes.len())..]
            .iter()
            .position(|b| !is_name_char(*b))
            .map_or(self.bytes.len(), |n| pos + n);
        self.src.get(pos..end).unwrap_or_default()
    }

    /// Consumes `keyword` (case-insensitive) if it stands at the cursor as a whole word.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.word_at(self.pos).eq_ignore_ascii_case(keyword) {
            self.pos += keyword.len();
            true
        } else {
            false
        }
    }

    // === filters ===

    /// `FILTER` (or `valFilter` inside brackets): `or` of `and` of unary terms.
    pub(crate) fn filter(&mut self, in_value_path: bool) -> Result<Filter, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("at most {MAX_DEPTH} levels of nesting")));
        }
        let mut left = self.and_term(in_value_path)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.eat_keyword("or") {
                self.count_operator(self.pos - 2)?;
                self.skip_ws();
                let right = self.and_term(in_value_path)?;
                left = Filter::or(left, right);
            } else {
                self.pos = save;
                break;
            }
        }
        self.depth -= 1;
        Ok(left)
    }

    fn count_operator(&mut self, at: usize) -> Result<(), ParseError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(self.error_at(at, format!("at most {MAX_OPERATORS} 'and'/'or' operators")));
        }
        Ok(())
    }

    fn and_term(&mut self, in_value_path: bool) -> Result<Filter, ParseError> {
        let mut left = self.unary(in_value_path)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.eat_keyword("and") {
                self.count_operator(self.pos - 3)?;
                self.skip_ws();
                let right = self.unary(in_value_path)?;
                left = Filter::and(left, right);
            } else {
                self.pos = save;
                break;
            }
        }
        Ok(left)
    }

    fn unary(&mut self, in_value_path: bool) -> Result<Filter, ParseError> {
        self.skip_ws();
        if self.peek() == Some(b'(') {
            self.pos += 1;
            let inner = self.filter(in_value_path)?;
            self.skip_ws();
            self.expect_byte(b')', "')' or a logical operator ('and', 'or')")?;
            return Ok(inner);
        }
        // `not` is a keyword only before a parenthesis; otherwise it is an attribute name.
        let word = self.word_at(self.pos);
        if word.eq_ignore_ascii_case("not") {
            let mut after = self.pos + 3;
            while matches!(self.bytes.get(after), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                after += 1;
            }
            if self.bytes.get(after) == Some(&b'(') {
                self.pos = after + 1;
                let inner = self.filter(in_value_path)?;
                self.skip_ws();
                self.expect_byte(b')', "')' or a logical operator ('and', 'or')")?;
                return Ok(Filter::Not(Box::new(inner)));
            }
        }
        self.attribute_expression(in_value_path)
    }

    fn attribute_expression(&mut self, in_value_path: bool) -> Result<Filter, ParseError> {
        let path = self.attr_path_or("an attribute path, '(' or 'not ('")?;
        if self.peek() == Some(b'[') {
            if in_value_path {
                return Err(self.error("a comparison operator (value paths do not nest)"));
            }
            if path.sub.is_some() {
                return Err(self.error("a comparison operator (a value filter cannot follow a sub-attribute)"));
            }
            let filter = self.bracketed_filter()?;
            let then = if self.peek() == Some(b'.') {
                self.pos += 1;
                let sub = self.attr_name()?;
                self.require_ws("a space and a comparison operator")?;
                Some(SubAttrTest {
                    sub,
                    test: self.attr_test()?,
                })
            } else {
                None
            };
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(filter),
                then,
            });
        }
        self.require_ws("a space and a comparison operator ('eq', 'pr', …)")?;
        let test = self.attr_test()?;
        Ok(Filter::Attr { path, test })
    }

    fn bracketed_filter(&mut self) -> Result<Filter, ParseError> {
        self.pos += 1; // '['
        let filter = self.filter(true)?;
        self.skip_ws();
        self.expect_byte(b']', "']' or a logical operator ('and', 'or')")?;
        Ok(filter)
    }

    fn require_ws(&mut self, expected: &str) -> Result<(), ParseError> {
        if self.skip_ws() {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn attr_test(&mut self) -> Result<AttrTest, ParseError> {
        let start = self.pos;
        let word = self.word_at(start);
        if word.eq_ignore_ascii_case("pr") {
            self.pos += 2;
            return Ok(AttrTest::Present);
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            return Err(self.error("a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"));
        };
        self.pos += 2;
        self.require_ws("a space and a value")?;
        Ok(AttrTest::Compare(op, self.comp_value()?))
    }

    fn comp_value(&mut self) -> Result<CompValue, ParseError> {
        const EXPECTED: &str = "a value (a string in double quotes, a number, true, false or null)";
        let start = self.pos;
        match self.peek() {
            Some(b'"') => self.string().map(CompValue::String),
            Some(b'-' | b'0'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
                    self.pos += 1;
                }
                let text = self.src.get(start..self.pos).unwrap_or_default();
                match serde_json::from_str::<serde_json::Number>(text) {
                    Ok(number) if !self.peek().is_some_and(is_name_char) => Ok(CompValue::Number(number)),
                    _ => Err(self.error_at(start, EXPECTED)),
                }
            }
            _ => {
                let word = self.word_at(start);
                let value = if word.eq_ignore_ascii_case("true") {
                    CompValue::Bool(true)
                } else if word.eq_ignore_ascii_case("false") {
                    CompValue::Bool(false)
                } else if word.eq_ignore_ascii_case("null") {
                    CompValue::Null
                } else {
                    return Err(self.error(EXPECTED));
                };
                self.pos += word.len();
                Ok(value)
            }
        }
    }

    /// A JSON string literal, escapes decoded by serde_json.
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(self.error("a closing '\"'")),
                Some(b'"') => break,
                // An escape takes two bytes; a trailing backslash must not step past the end.
                Some(b'\\') => self.pos = (self.pos + 2).min(self.bytes.len()),
                Some(_) => self.pos += 1,
            }
        }
        self.pos += 1;
        let literal = self.src.get(start..self.pos).unwrap_or_default();
        serde_json::from_str::<String>(literal).map_err(|error| {
            // serde_json reports a 1-based line and a byte column within that line; column 0
            // on a later line means the line feed that ended the previous one.
            let line_start: usize = literal
                .split_inclusive('\n')
                .take(error.line().saturating_sub(1))
                .map(str::len)
                .sum();
            let mut offset = (start + line_start + error.column())
                .saturating_sub(1)
                .clamp(start, self.bytes.len());
            while !self.src.is_char_boundary(offset) {
                offset -= 1;
            }
            self.error_at(offset, "a valid JSON string (escape \\\" \\\\ and control characters)")
        })
    }

    // === paths ===

    fn attr_name(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(b) if is_name_start(b) => {
                let word = self.word_at(self.pos);
                self.pos += word.len();
                Ok(word.to_owned())
            }
            _ => Err(self.error("an attribute name")),
        }
    }

    pub(crate) fn attr_path(&mut self) -> Result<AttrPath, ParseError> {
        self.attr_path_or("an attribute path")
    }

    /// `[URI ":"] ATTRNAME ["." subAttr]`. A URN runs up to its last `:` before the name.
    fn attr_path_or(&mut self, expected: &str) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        if self.word_at(start).eq_ignore_ascii_case("urn") && self.bytes.get(start + 3) == Some(&b':') {
            let mut end = start;
            while self.bytes.get(end).is_some_and(|b| is_urn_char(*b)) {
                end += 1;
            }
            let run = self.src.get(start..end).unwrap_or_default();
            // The attribute starts after the last ':'; a '.' before it belongs to the URN (`2.0`).
            let Some(colon) = run.rfind(':').filter(|&c| c > 3) else {
                return Err(self.error_at(end, "':' and an attribute name after the schema URN"));
            };
            self.pos = start + colon + 1;
            let name = self.attr_name()?;
            let sub = self.sub_attr()?;
            return Ok(AttrPath {
                urn: Some(run[..colon].to_owned()),
                name,
                sub,
            });
        }
        if !self.peek().is_some_and(is_name_start) {
            return Err(self.error(expected));
        }
        let name = self.attr_name()?;
        let sub = self.sub_attr()?;
        Ok(AttrPath { urn: None, name, sub })
    }

    fn sub_attr(&mut self) -> Result<Option<String>, ParseError> {
        if self.peek() != Some(b'.') {
            return Ok(None);
        }
        self.pos += 1;
        let sub = self.attr_name()?;
        if self.peek() == Some(b'.') {
            return Err(self.error("no further '.' (paths have at most one sub-attribute)"));
        }
        Ok(Some(sub))
    }

    /// `attrPath / valuePath [subAttr]`.
    pub(crate) fn patch_path(&mut self) -> Result<PatchPath, ParseError> {
        let mut attr = self.attr_path()?;
        if self.peek() != Some(b'[') {
            return Ok(PatchPath { attr, filter: None });
        }
        if attr.sub.is_some() {
            return Err(self.error("end of path (a value filter cannot follow a sub-attribute)"));
        }
        let filter = self.bracketed_filter()?;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            attr.sub = Some(self.attr_name()?);
        }
        Ok(PatchPath {
            attr,
            filter: Some(filter),
        })
    }
}
