//! Reading back JSON the store wrote itself: journal frames and JSON columns.
//!
//! serde_json refuses to read more than 128 levels of nesting, but writes any depth. A
//! record can be deeper than what the proxy parsed: a rule's change wraps the value it
//! changed (`[{rule, before: {op, value: …}}]`) a few levels further down. So records are
//! read with the limit off, behind a depth check of our own that keeps a damaged or crafted
//! file from exhausting the stack.

use serde::de::{DeserializeOwned, Error as _};

/// Deeper than anything the proxy writes (what it parsed, at most 128 levels, plus a
/// record's own few), shallow enough for any thread's stack.
const MAX_DEPTH: usize = 512;

/// Decodes `bytes`, a JSON text the store wrote.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    if depth(bytes) > MAX_DEPTH {
        return Err(serde_json::Error::custom(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    deserializer.disable_recursion_limit();
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// The deepest nesting of arrays and objects in `bytes`, brackets inside strings aside.
fn depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!("core"), |inner, _| json!({ "value": [inner] }))
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        for (text, expected) in [
            (r#"1"#, 0),
            (r#"[]"#, 1),
            (r#"{"a":[{"b":[]}]}"#, 4),
            (r#"["[[[[", "\"{{{"]"#, 1),
            (r#"{"a\\":"]"}"#, 1),
        ] {
            assert_eq!(depth(text.as_bytes()), expected, "{text}");
        }
    }

    #[test]
    fn a_record_deeper_than_serde_jsons_default_limit_reads_back() {
        // 100 levels of {"value":[…]} are 200 levels of nesting: serde_json's own reader
        // refuses it, the store's must not.
        let value = nested(100);
        let text = value.to_string();
        assert!(serde_json::from_str::<Value>(&text).is_err());
        assert_eq!(from_slice::<Value>(text.as_bytes()).unwrap(), value);
    }

    #[test]
    fn nesting_past_the_guard_is_an_error_not_a_stack_overflow() {
        let text = "[".repeat(100_000) + &"]".repeat(100_000);
        let error = from_slice::<Value>(text.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("deeper than 512"), "{error}");
    }
}
