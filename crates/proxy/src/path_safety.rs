//! What a request path may hold before it is routed or forwarded. Pure: no I/O.
//!
//! The proxy joins the path after a route's prefix to the route's upstream base URL. An
//! application, or a server in front of it, that decodes or normalises a path differently
//! from the proxy could then serve something outside that base, or outside the route the
//! proxy matched: `..` and `.` segments however they are spelled (`%2e`, `..;` for servlet
//! containers), a `/` or `\` hidden in a segment (`%2f`, `%5c`, a raw `\` that some servers
//! read as `/`), or any of these encoded twice (`%252e`), and control characters (`%00`). Such
//! a path is refused, whoever would read it which way. Empty segments (`//Users`, from a tenant
//! URL typed with a trailing slash) mean nothing in SCIM: they are collapsed, and the caller
//! records the change. The query string is not a path: `%5c` there is a filter's escape.

/// What a path becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathCheck {
    /// Safe as it is.
    Clean,
    /// Safe once its empty segments are collapsed: this path.
    Collapsed(String),
    /// Refused: why, naming the segment.
    Refused(String),
}

/// Checks a request path (the URI's path, still percent-encoded).
pub(crate) fn check(path: &str) -> PathCheck {
    if !path.starts_with('/') {
        return PathCheck::Refused(format!("\"{path}\" is not an absolute path"));
    }
    let mut empty = false;
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            // A single trailing slash is the application's to read; `//` anywhere is not.
            empty |= index != last || path.ends_with("//");
            continue;
        }
        if let Some(why) = segment_refusal(segment) {
            return PathCheck::Refused(format!("the path segment \"{segment}\" {why}"));
        }
    }
    if !empty {
        return PathCheck::Clean;
    }
    let mut collapsed = String::with_capacity(path.len());
    for segment in segments.iter().filter(|s| !s.is_empty()) {
        collapsed.push('/');
        collapsed.push_str(segment);
    }
    if path.ends_with('/') || collapsed.is_empty() {
        collapsed.push('/');
    }
    PathCheck::Collapsed(collapsed)
}

/// Why one (non-empty) segment is refused, if it is.
fn segment_refusal(segment: &str) -> Option<&'static str> {
    if segment.contains('\\') {
        return Some("holds a backslash, which some servers read as a '/'");
    }
    // Most segments escape nothing: read as they are, without a copy.
    if !segment.contains('%') {
        return plain_refusal(segment.as_bytes());
    }
    let Some(decoded) = percent_decode(segment.as_bytes()) else {
        return Some("holds a '%' that does not start an escape like %2F");
    };
    if decoded.contains(&b'/') || decoded.contains(&b'\\') {
        return Some("holds an encoded '/' or '\\' (%2F, %5C), which could end the segment early");
    }
    if let Some(why) = plain_refusal(&decoded) {
        return Some(why);
    }
    if twice_encoded(&decoded) {
        return Some("is percent-encoded twice (such as %252E), which a server could decode into '.' or '/'");
    }
    None
}

/// Why a segment, decoded, is refused for what it reads as: a control character, or a dot
/// segment (`..;jsessionid=x` is `..` to a servlet container).
fn plain_refusal(decoded: &[u8]) -> Option<&'static str> {
    if decoded.iter().any(|b| b.is_ascii_control()) {
        return Some("holds a control character (such as %00)");
    }
    let name = decoded.split(|b| *b == b';').next().unwrap_or_default();
    if name == b"." || name == b".." {
        return Some("is a '.' or '..' segment, which could leave the application's base path");
    }
    None
}

/// Whether a once-decoded segment still holds an escape of `.`, `/`, `\`, `%` or a control
/// character: what a second decoding would turn into one of them.
fn twice_encoded(decoded: &[u8]) -> bool {
    decoded.windows(3).any(|w| match (w[0], hex(w[1]), hex(w[2])) {
        (b'%', Some(high), Some(low)) => {
            let byte = high << 4 | low;
            matches!(byte, b'.' | b'/' | b'\\' | b'%') || byte.is_ascii_control()
        }
        _ => false,
    })
}

/// Decodes `%XX` escapes once; `None` when a `%` is not followed by two hex digits.
pub(crate) fn percent_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_are_refused_wherever_they_are_in_the_path() {
        for path in [
            "/Users/..",
            "/../admin",
            "/./Users",
            "/%2e%2e/admin",
            "/Users/%2E",
            "/Users/..;/admin",
            "/..;jsessionid=1/admin",
            "/%2e%2e;/admin",
            "/Users/..%2fadmin",
            "/Users/a%2Fb",
            "/Users/a%5cb",
            "/Users/a\\b",
            "/Users\\..\\admin",
            "/Users/%252e%252e",
            "/Users/%252F",
            "/Users/%255c",
            "/Users/%2500",
            "/Users/%00",
            "/Users/a%0d%0aX-Injected:1",
            "/Users/%zz",
            "/Users/%2",
            "Users",
            "*",
        ] {
            assert!(matches!(check(path), PathCheck::Refused(_)), "{path}");
        }
    }

    #[test]
    fn ordinary_paths_are_clean() {
        for path in [
            "/",
            "/Users",
            "/Users/",
            "/Users/2819c223-7f76-453a-919d-413861904646",
            "/Users/a.b",
            "/Users/..x",
            "/Users/x..",
            "/Users/...",
            "/Users/50%25off",
            "/Users/a%20b",
            "/Users/%C3%A9",
            "/Users/a;b",
            "/scim/v2/Groups/.search",
        ] {
            assert_eq!(check(path), PathCheck::Clean, "{path}");
        }
    }

    #[test]
    fn empty_segments_are_collapsed() {
        for (path, collapsed) in [
            ("//Users", "/Users"),
            ("/okta//Users//42", "/okta/Users/42"),
            ("/Users//", "/Users/"),
            ("//", "/"),
            ("///Users/", "/Users/"),
        ] {
            assert_eq!(check(path), PathCheck::Collapsed(collapsed.to_owned()), "{path}");
        }
    }

    #[test]
    fn a_refusal_names_the_segment_and_why() {
        let PathCheck::Refused(why) = check("/Users/..;/admin") else {
            panic!("refused")
        };
        assert!(why.contains("\"..;\"") && why.contains("'..'"), "{why}");
    }
}
