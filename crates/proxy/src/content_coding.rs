//! Content codings of bodies (RFC 9110 §8.4), both ways.
//!
//! The rules, the findings and redaction read JSON: a body they cannot read is a body they
//! silently skip — a gzip answer would switch off findings and leave a password in the store.
//! So a body that arrives encoded (`gzip`, `deflate`, `br`) is decoded first, to at most the
//! size the body limits allow (a small body that inflates past them is a decompression bomb,
//! refused as too large), and what is recorded, normalised and forwarded is the decoded body.
//! Toward the IdP a response is encoded again, with gzip, only when the application had encoded
//! it and the IdP said it accepts gzip. The codecs are flate2's and Dropbox's brotli decoder.

use http::header::{HeaderMap, ACCEPT_ENCODING, CONTENT_ENCODING};
use std::io::Read;

/// The codings the proxy decodes, as an `Accept-Encoding` toward the application.
pub(crate) const ACCEPTED: &str = "gzip, deflate, br";

/// Most codings one body may stack (`gzip, gzip` …).
const MAX_LAYERS: usize = 3;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// A coding the proxy does not decode.
    #[error("the content coding \"{0}\" is not one of gzip, deflate, br")]
    Unsupported(String),
    /// More codings than [`MAX_LAYERS`].
    #[error("the body has more than {MAX_LAYERS} content codings")]
    TooManyLayers,
    /// Decoded, it would be larger than the limit.
    #[error("the body decoded is larger than {0} bytes")]
    TooLarge(usize),
    /// Not valid in its coding.
    #[error("the body is not valid {coding}: {reason}")]
    Corrupt {
        /// The coding.
        coding: &'static str,
        /// What the decoder said.
        reason: String,
    },
}

/// A coding the proxy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// The codings `headers` say a body carries, in the order they were applied; empty for
/// none (or only `identity`).
pub(crate) fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, DecodeError> {
    let mut found = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value
            .to_str()
            .map_err(|_| DecodeError::Unsupported(String::from_utf8_lossy(value.as_bytes()).into_owned()))?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let coding = match name.to_ascii_lowercase().as_str() {
                "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Brotli,
                _ => return Err(DecodeError::Unsupported(name.to_owned())),
            };
            if found.len() == MAX_LAYERS {
                return Err(DecodeError::TooManyLayers);
            }
            found.push(coding);
        }
    }
    Ok(found)
}

/// `body` with `codings` undone (the last applied first), at most `limit` bytes.
pub(crate) fn decode(codings: &[Coding], body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut data = body.to_vec();
    for coding in codings.iter().rev() {
        data = decode_one(*coding, &data, limit)?;
    }
    Ok(data)
}

fn decode_one(coding: Coding, body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let read = |reader: &mut dyn Read| -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::new();
        // One byte past the limit tells "exactly the limit" from "more".
        let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        reader
            .take(bound)
            .read_to_end(&mut out)
            .map_err(|error| DecodeError::Corrupt {
                coding: coding.name(),
                reason: error.to_string(),
            })?;
        if out.len() > limit {
            return Err(DecodeError::TooLarge(limit));
        }
        Ok(out)
    };
    match coding {
        Coding::Gzip => read(&mut flate2::read::MultiGzDecoder::new(body)),
        // HTTP's deflate is the zlib format (RFC 9110 §8.4.1.2); some servers send raw
        // deflate instead, which clients have long accepted too.
        Coding::Deflate => read(&mut flate2::read::ZlibDecoder::new(body)).or_else(|zlib| match zlib {
            DecodeError::Corrupt { .. } => read(&mut flate2::read::DeflateDecoder::new(body)),
            other => Err(other),
        }),
        Coding::Brotli => read(&mut brotli_decompressor::Decompressor::new(body, 4096)),
    }
}

/// `body` gzip-encoded, for an IdP that accepts it.
pub(crate) fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Whether an `Accept-Encoding` accepts gzip (listed, or by `*`, with a weight above 0).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match name.as_str() {
                "gzip" | "x-gzip" => gzip = Some(weight > 0.0),
                "*" => any = Some(weight > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::io::Write;

    fn headers(name: http::header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn zlib(body: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(body).unwrap();
        encoder.finish().unwrap()
    }

    fn raw_deflate(body: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(body).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn each_coding_round_trips_and_stacks() {
        let body = br#"{"userName":"bjensen","password":"hunter2"}"#;
        assert_eq!(decode(&[Coding::Gzip], &gzip(body), 1024).unwrap(), body);
        assert_eq!(decode(&[Coding::Deflate], &zlib(body), 1024).unwrap(), body);
        assert_eq!(decode(&[Coding::Deflate], &raw_deflate(body), 1024).unwrap(), body);
        // `br` of a list, made by Google's reference encoder (PyPI `brotli`, quality 5).
        let list: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"userName":"user{i}","active":true}}"#))
            .collect();
        let list = format!(r#"{{"Resources":[{}]}}"#, list.join(","));
        let brotli: &[u8] = &[
            0x1b, 0xa4, 0x05, 0x00, 0x04, 0x12, 0xdd, 0x52, 0xbe, 0x7a, 0x82, 0x5e, 0x79, 0xa7, 0x2c, 0x41, 0x10, 0x82,
            0x40, 0x43, 0x30, 0xcb, 0xf8, 0x07, 0x77, 0xb9, 0xb7, 0x3d, 0x95, 0x00, 0x6b, 0x8b, 0x24, 0xe0, 0xf0, 0xcb,
            0xa1, 0x1e, 0xe1, 0xe2, 0x6e, 0xf0, 0xa0, 0x51, 0xa5, 0x3b, 0x4d, 0x2f, 0x70, 0xbd, 0xaa, 0x7b, 0x53, 0x1d,
            0x61, 0x1e, 0x60, 0xab, 0xe6, 0x77, 0x50, 0xd1, 0x79, 0x7d, 0xcf, 0x7f, 0xab, 0xf6, 0x30, 0xbe, 0x7b, 0x19,
            0x43, 0x23, 0x18, 0x1c, 0x71, 0xc2, 0x19, 0x17, 0x5c, 0x71, 0xcb, 0x5e, 0xf1, 0xab, 0x6a, 0xd5, 0xaa, 0x55,
            0xab, 0x56, 0xad, 0x5a, 0x35, 0x45, 0x51, 0x14, 0x45, 0x51, 0x14, 0x45, 0xd1, 0x68, 0x34, 0x1a, 0x8d, 0x46,
            0xa3, 0xd1, 0x8c, 0xb3, 0x8e, 0x0e,
        ];
        assert_eq!(decode(&[Coding::Brotli], brotli, 4096).unwrap(), list.as_bytes());
        assert_eq!(
            decode(&[Coding::Brotli], brotli, 1000),
            Err(DecodeError::TooLarge(1000))
        );
        let twice = gzip(&zlib(body));
        assert_eq!(decode(&[Coding::Deflate, Coding::Gzip], &twice, 1024).unwrap(), body);
    }

    #[test]
    fn a_bomb_is_too_large_and_garbage_is_corrupt() {
        let bomb = gzip(&vec![b'a'; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(
            decode(&[Coding::Gzip], &bomb, 1024 * 1024),
            Err(DecodeError::TooLarge(1024 * 1024))
        );
        assert_eq!(decode(&[Coding::Gzip], &gzip(&[b'a'; 100]), 100).unwrap().len(), 100);
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
            assert!(
                matches!(
                    decode(&[coding], b"not encoded at all", 1024),
                    Err(DecodeError::Corrupt { .. })
                ),
                "{coding:?}"
            );
        }
    }

    #[test]
    fn content_encoding_headers() {
        assert_eq!(codings(&HeaderMap::new()), Ok(vec![]));
        assert_eq!(codings(&headers(CONTENT_ENCODING, "identity")), Ok(vec![]));
        assert_eq!(
            codings(&headers(CONTENT_ENCODING, "deflate, GZIP")),
            Ok(vec![Coding::Deflate, Coding::Gzip])
        );
        assert_eq!(
            codings(&headers(CONTENT_ENCODING, "zstd")),
            Err(DecodeError::Unsupported("zstd".into()))
        );
        assert_eq!(
            codings(&headers(CONTENT_ENCODING, "gzip, gzip, gzip, gzip")),
            Err(DecodeError::TooManyLayers)
        );
    }

    #[test]
    fn accept_encoding_weights() {
        for (value, accepted) in [
            ("gzip,deflate", true),
            ("br;q=1.0, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("*", true),
            ("*;q=0", false),
            ("gzip;q=0, *", false),
            ("br", false),
            ("identity", false),
        ] {
            assert_eq!(accepts_gzip(&headers(ACCEPT_ENCODING, value)), accepted, "{value}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
