//! Where a resource is: its id as one segment of its endpoint's path (`/Users/{id}`), and
//! which requests create one.

/// `id` as one path segment (RFC 3986 `segment`): every byte that is not a `pchar` —
/// unreserved, a sub-delimiter, `:` or `@` — percent-encoded, so that an id can neither end
/// the segment (`/`), start a query (`?`) or a fragment (`#`), nor be read as an escape (`%`).
pub fn id_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(byte)),
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' => {
                out.push(char::from(byte));
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Whether a request creates a resource: a `POST` to the Users or Groups endpoint itself (RFC
/// 7644 §3.3), the endpoint being the last segment of `path` (a trailing `/` aside, and
/// whatever base path is before it). The endpoint is matched whatever its case, as the
/// exchange's classification reads it: the application decides how it reads a path, and many
/// match routes ignoring case. The method is matched as it is: methods are case-sensitive
/// (RFC 9110 §9.1).
pub fn is_create(method: &str, path: &str) -> bool {
    let endpoint = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    method == "POST" && (endpoint.eq_ignore_ascii_case("Users") || endpoint.eq_ignore_ascii_case("Groups"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_is_a_post_to_the_users_or_groups_endpoint() {
        for path in [
            "/Users",
            "/Groups",
            "/scim/v2/Users",
            "/Users/",
            "Users",
            "/users",
            "/GROUPS",
        ] {
            assert!(is_create("POST", path), "{path}");
        }
        for (method, path) in [
            ("POST", "/Users/2819c223"),
            ("POST", "/Users/.search"),
            ("POST", "/Bulk"),
            ("PUT", "/Users"),
            ("post", "/Users"),
            ("POST", "/UsersX"),
        ] {
            assert!(!is_create(method, path), "{method} {path}");
        }
    }

    #[test]
    fn an_id_stays_one_segment() {
        let cases = [
            (
                "2819c223-7f76-453a-919d-413861904646",
                "2819c223-7f76-453a-919d-413861904646",
            ),
            ("a/b", "a%2Fb"),
            ("a?b#c", "a%3Fb%23c"),
            ("100%", "100%25"),
            ("ann smith", "ann%20smith"),
            ("x\"<>`{}|\\^", "x%22%3C%3E%60%7B%7D%7C%5C%5E"),
            ("user@example.com:1", "user@example.com:1"),
            ("é", "%C3%A9"),
        ];
        for (id, segment) in cases {
            assert_eq!(id_segment(id), segment, "{id}");
        }
    }
}
