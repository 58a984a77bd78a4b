//! What a text column may hold, whatever a peer sent.
//!
//! Values that come from a request (a path, a userName, a resource id or type) reach indexed
//! columns. PostgreSQL refuses a NUL in any text value, and an index entry over about 2.7 KB
//! (`index row size exceeds btree maximum`); either made the whole batch fail, and so every
//! other exchange waiting in it. So every text value is cleaned (NUL becomes U+FFFD), and the
//! values of indexed columns are cut to a bound with a marker that says how long they were.
//! The full values stay in the bodies; the request line is cut only past [`PATH_MAX_BYTES`].
//!
//! Reads that look a value up (`writes_to`, `later_creates`, snapshots) bind it through the
//! same functions, so a cut value still finds its rows.

use std::borrow::Cow;

/// The longest value of an indexed text column, in bytes. Four of them and an id fit in one
/// PostgreSQL index entry (`(route, resource_type, resource_id, id)`) with room to spare.
pub(crate) const KEY_MAX_BYTES: usize = 512;

/// The longest request path kept, in bytes.
pub(crate) const PATH_MAX_BYTES: usize = 2048;

/// The longest route shape kept (part of `route_shapes`' primary key), in bytes.
pub(crate) const SHAPE_MAX_BYTES: usize = 1024;

/// `value` without NUL characters, which PostgreSQL's text type cannot hold.
pub(crate) fn clean(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// `value` cleaned and, past `max` bytes, cut on a character boundary and marked with its
/// length: `abc…[cut from 4000 bytes]`. The result is never longer than `max` bytes.
pub(crate) fn bounded(value: &str, max: usize) -> String {
    let value = clean(value);
    if value.len() <= max {
        return value.into_owned();
    }
    let marker = format!("…[cut from {} bytes]", value.len());
    let mut end = max.saturating_sub(marker.len());
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &value[..end])
}

/// An indexed column's value: cleaned and bounded by [`KEY_MAX_BYTES`].
pub(crate) fn key(value: &str) -> String {
    bounded(value, KEY_MAX_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cleaned_and_bounded_with_a_marker() {
        let cases: &[(&str, usize, &str)] = &[
            ("ada@example.com", 512, "ada@example.com"),
            ("a\0b", 512, "a\u{FFFD}b"),
            ("", 512, ""),
            // Exactly at the bound: kept whole.
            ("abcdefghij", 10, "abcdefghij"),
        ];
        for (value, max, expected) in cases {
            assert_eq!(bounded(value, *max), *expected, "{value:?}");
        }
    }

    #[test]
    fn a_cut_value_says_how_long_it_was_and_stays_within_the_bound() {
        let long = "x".repeat(4000);
        let cut = key(&long);
        assert!(cut.len() <= KEY_MAX_BYTES, "{}", cut.len());
        assert!(cut.starts_with("xxxx"));
        assert!(cut.ends_with("…[cut from 4000 bytes]"), "{cut}");
        // The same value cut twice is the same key: lookups bind through `key` too.
        assert_eq!(key(&long), cut);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        for len in 500..530 {
            let value = "é".repeat(len);
            let cut = key(&value);
            assert!(cut.len() <= KEY_MAX_BYTES);
            assert!(cut.starts_with('é'));
        }
        let nul_heavy = "\0".repeat(1000);
        let cut = key(&nul_heavy);
        assert!(!cut.contains('\0'));
        assert!(cut.len() <= KEY_MAX_BYTES);
    }
}
