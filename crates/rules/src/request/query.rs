//! The query string: decoded and re-encoded (`%20` for spaces, every reserved character
//! escaped), its filter edited in place (N9, N10), emptied parameters and the IdP's flags
//! dropped (N10).

use super::filter;
use super::Working;
use scimtrail_scim::ResourceType;
use serde_json::json;

impl Working {
    /// Rewrites the `filter` query parameter in place, keeping the rest of the query as sent.
    pub(super) fn edit_filter(&mut self, edit: impl Fn(&str, Option<&ResourceType>) -> Option<String>) {
        let Some(raw) = self.request.query.clone().filter(|raw| is_text(raw)) else {
            return;
        };
        let mut params = decode(&raw);
        let Some((name, filter)) = params.iter_mut().find(|(name, _)| name.eq_ignore_ascii_case("filter")) else {
            return;
        };
        let Some(edited) = edit(filter, self.resource_type) else {
            return;
        };
        if edited == *filter {
            return;
        }
        let pointer = format!("?{name}");
        let before = json!(filter);
        *filter = edited.clone();
        self.request.query = Some(encode(&params));
        self.changes.record(pointer, Some(before), Some(json!(edited)));
    }

    // === N10 ===

    pub(super) fn canonical_query(&mut self, drop_params: &[String]) {
        self.edit_filter(filter::canonical_filter);
        let Some(raw) = self.request.query.clone().filter(|raw| is_text(raw)) else {
            return;
        };
        let params: Vec<(String, String)> = decode(&raw)
            .into_iter()
            .filter(|(name, value)| {
                let flag = drop_params.iter().any(|d| d.eq_ignore_ascii_case(name));
                let empty = name.is_empty() && value.is_empty();
                !flag && !empty
            })
            .collect();
        let encoded = encode(&params);
        if encoded != raw {
            self.request.query = (!encoded.is_empty()).then_some(encoded.clone());
            self.changes.record("?", Some(json!(raw)), Some(json!(encoded)));
        }
    }
}

/// The query's parameters, decoded (`+` and `%XX`), in order.
pub(crate) fn decode(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether the query decodes to text. One that does not (`%FF`: a byte of invalid UTF-8, which
/// the listener percent-encodes rather than refuse) is forwarded as sent: decoding it into
/// text would replace that byte.
pub(crate) fn is_text(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes.get(at + 1..at + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[at], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// Parameters encoded with `%20` for spaces and every reserved character escaped.
pub(crate) fn encode(params: &[(String, String)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in params.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        percent_encode(name, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    }
    out
}

fn percent_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_reencode_with_percent_twenty() {
        let params = decode("filter=userName+eq+%22a%40b%22&&count=2");
        assert_eq!(
            params,
            vec![
                ("filter".to_owned(), "userName eq \"a@b\"".to_owned()),
                ("count".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(encode(&params), "filter=userName%20eq%20%22a%40b%22&count=2");
    }
}
