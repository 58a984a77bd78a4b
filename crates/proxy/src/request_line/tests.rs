use super::*;
use proptest::prelude::*;

/// What hyper would read of `input` fed in pieces of these sizes (the rest in one), and the
/// targets encoded.
fn through(input: &[u8], pieces: &[usize]) -> (Vec<u8>, Vec<(u64, EncodedTarget)>) {
    let mut framing = Framing::default();
    let mut out = Vec::new();
    let mut encoded = Vec::new();
    let mut at = 0;
    let mut sizes = pieces.iter().copied();
    while at < input.len() {
        let size = sizes.next().unwrap_or(usize::MAX).max(1);
        let end = at.saturating_add(size).min(input.len());
        let read = &input[at..end];
        match framing.feed(read) {
            Handed::AsRead => out.extend_from_slice(read),
            Handed::Prefix(n) => out.extend_from_slice(&read[..n]),
            Handed::Rewritten(bytes) => out.extend_from_slice(&bytes),
        }
        encoded.extend(framing.take_encoded());
        at = end;
    }
    out.extend(framing.withheld());
    (out, encoded)
}

fn whole(input: &[u8]) -> Vec<u8> {
    through(input, &[]).0
}

fn get(target: &[u8]) -> Vec<u8> {
    [b"GET ".as_slice(), target, b" HTTP/1.1\r\nHost: idp\r\n\r\n"].concat()
}

/// A request line whose target holds a byte to encode, and how it reads once encoded.
const QUOTED: &[u8] = b"GET /Users?filter=userName%20eq%20\"jdoe\" HTTP/1.1\r\n";
const QUOTED_ENCODED: &[u8] = b"GET /Users?filter=userName%20eq%20%22jdoe%22 HTTP/1.1\r\n";

#[test]
fn each_byte_the_uri_parser_refuses_or_cuts_is_encoded() {
    let cases: &[(&[u8], &[u8], &str)] = &[
        // A filter as vendor documentation writes it.
        (
            b"/Users?filter=userName%20eq%20\"jdoe@example.com\"",
            b"/Users?filter=userName%20eq%20%22jdoe@example.com%22",
            "'\"' ×2",
        ),
        (b"/Users?filter=a<b", b"/Users?filter=a%3Cb", "'<' ×1"),
        (b"/Users?filter=a>b", b"/Users?filter=a%3Eb", "'>' ×1"),
        (b"/Users/a<b>", b"/Users/a%3Cb%3E", "'<' ×1, '>' ×1"),
        // A raw `#` would cut the rest off, in the path or the query.
        (b"/Users?filter=x#1&count=2", b"/Users?filter=x%231&count=2", "'#' ×1"),
        (b"/Users/#1?count=2", b"/Users/%231?count=2", "'#' ×1"),
        (b"/Users/a`b", b"/Users/a%60b", "'`' ×1"),
        (b"/Users?q=\xff", b"/Users?q=%FF", "invalid UTF-8 ×1 bytes"),
        (
            b"/Users?q=caf\xc3&x=\xe9t\xe9",
            b"/Users?q=caf%C3&x=%E9t%E9",
            "invalid UTF-8 ×3 bytes",
        ),
        (
            b"/Users?q=\"\xff",
            b"/Users?q=%22%FF",
            "'\"' ×1, invalid UTF-8 ×1 bytes",
        ),
    ];
    for (target, expected, detail) in cases {
        let name = String::from_utf8_lossy(target);
        let as_parsed = std::str::from_utf8(target)
            .ok()
            .and_then(|t| t.parse::<http::uri::PathAndQuery>().ok());
        assert!(
            as_parsed.is_none_or(|parsed| parsed.as_str().len() < target.len()),
            "{name}: the URI parser takes it whole, nothing to repair"
        );
        let (out, encoded) = through(&get(target), &[]);
        assert_eq!(out, get(expected), "{name}");
        assert_eq!(encoded.len(), 1, "{name}");
        assert_eq!(encoded[0].0, 1, "{name}");
        assert_eq!(encoded[0].1.to_string(), *detail, "{name}");
        let repaired: http::uri::PathAndQuery = std::str::from_utf8(expected).unwrap().parse().unwrap();
        assert_eq!(
            repaired.as_str().as_bytes(),
            *expected,
            "{name}: the repair is taken whole"
        );
    }
}

#[test]
fn targets_the_uri_parser_takes_are_left_as_sent() {
    let targets: &[&[u8]] = &[
        b"/Users",
        b"/Users?filter=userName%20eq%20%22jdoe%22",
        b"/Users/\"quoted\"",
        b"/Users?q=`tick`",
        b"/Users?filter=emails[type%20eq%20%22work%22]|{}^",
        "/Users?filter=displayName%20eq%20%22Zoë%22&x=é".as_bytes(),
        b"*",
        // Absolute form is not repaired: the proxy is addressed in origin form.
        b"http://app/Users?q=\"x\"",
    ];
    for target in targets {
        let (out, encoded) = through(&get(target), &[]);
        assert_eq!(out, get(target), "{}", String::from_utf8_lossy(target));
        assert!(encoded.is_empty());
    }
}

#[test]
fn what_is_not_an_http1_request_line_is_left_to_hyper_and_nothing_after_it_changes() {
    let lines: &[&[u8]] = &[
        // A raw space: not one target.
        b"GET /Users?filter=userName eq \"x\" HTTP/1.1\r\n",
        b"GET /Users?q=\"x\" HTTP/2.0\r\n",
        b"G(T /Users?q=\"x\" HTTP/1.1\r\n",
        b"GET /Users?q=\"x\"\x01 HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
    ];
    for line in lines {
        let stream = [*line, b"\r\n", QUOTED, b"\r\n"].concat();
        assert_eq!(whole(&stream), stream, "{}", String::from_utf8_lossy(line));
    }
}

#[test]
fn leading_empty_lines_are_handed_on_and_the_request_after_them_is_repaired() {
    let stream = [b"\r\n\n".as_slice(), QUOTED, b"\r\n"].concat();
    let (out, encoded) = through(&stream, &[]);
    assert_eq!(out, [b"\r\n\n".as_slice(), QUOTED_ENCODED, b"\r\n"].concat());
    assert_eq!(encoded[0].0, 1);
}

/// Request smuggling: bodies that look like request lines stay as sent, and the request
/// lines after them are found where hyper finds them.
#[test]
fn a_body_that_looks_like_a_request_line_is_never_changed() {
    let smuggled = b"GET /Users?filter=\"evil\" HTTP/1.1\r\n\r\n";
    let length = format!("Content-Length: {}\r\n", smuggled.len());
    let chunked = [
        b"Transfer-Encoding: chunked\r\n\r\n".as_slice(),
        b"7\r\nGET /Us\r\n",
        b"1c;x=\"y\"\r\ners?filter=\"evil\" HTTP/1.1\r\n\r\n",
        b"0\r\nX-Trailer: \"z\"\r\n\r\n",
    ]
    .concat();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "content-length",
            [
                b"POST /Users HTTP/1.1\r\n".as_slice(),
                length.as_bytes(),
                b"\r\n",
                smuggled,
            ]
            .concat(),
            [
                b"POST /Users HTTP/1.1\r\n".as_slice(),
                length.as_bytes(),
                b"\r\n",
                smuggled,
            ]
            .concat(),
        ),
        (
            "chunked",
            [b"POST /Users HTTP/1.1\r\n".as_slice(), &chunked].concat(),
            [b"POST /Users HTTP/1.1\r\n".as_slice(), &chunked].concat(),
        ),
        (
            "a repaired request with a body",
            [QUOTED, length.as_bytes(), b"\r\n", smuggled].concat(),
            [QUOTED_ENCODED, length.as_bytes(), b"\r\n", smuggled].concat(),
        ),
    ];
    for (name, request, expected) in cases {
        // Pipelined: the request with the body, then one to repair.
        let stream = [&request[..], QUOTED, b"\r\n"].concat();
        let (out, encoded) = through(&stream, &[]);
        assert_eq!(out, [&expected[..], QUOTED_ENCODED, b"\r\n"].concat(), "{name}");
        assert_eq!(encoded.last().map(|(n, _)| *n), Some(2), "{name}: the second request");
    }
}

#[test]
fn framing_hyper_might_read_otherwise_stops_every_change_on_the_connection() {
    let heads: &[&[u8]] = &[
        b"POST /Users HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /Users HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
        b"GET /socket HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"CONNECT app:443 HTTP/1.1\r\n\r\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n",
        b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
    ];
    for head in heads {
        let stream = [*head, QUOTED, b"\r\n", QUOTED, b"\r\n"].concat();
        assert_eq!(whole(&stream), stream, "{}", String::from_utf8_lossy(head));
    }
}

#[test]
fn an_overlong_line_stops_every_change_and_loses_no_byte() {
    let long_target = [
        b"GET /Users?q=\"".as_slice(),
        &vec![b'a'; MAX_REQUEST_LINE],
        b" HTTP/1.1\r\n\r\n",
    ]
    .concat();
    assert_eq!(through(&long_target, &[1000; 100]).0, long_target);
    let long_header = [
        b"GET / HTTP/1.1\r\nX-Long: ".as_slice(),
        &vec![b'a'; MAX_SCANNED_LINE],
        b"\r\n\r\n",
        QUOTED,
    ]
    .concat();
    assert_eq!(whole(&long_header), long_header);
}

#[test]
fn a_request_line_cut_by_the_end_of_input_is_handed_on_as_it_came() {
    let cut = &QUOTED[..20];
    assert_eq!(through(cut, &[3, 5]).0, cut);
}

#[test]
fn requests_are_numbered_as_hyper_serves_them() {
    let plain = b"GET /Users HTTP/1.1\r\n\r\n".as_slice();
    let body = b"POST /Users HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".as_slice();
    let stream = [plain, QUOTED, b"\r\n", body, plain, QUOTED, b"\r\n"].concat();
    let numbers: Vec<u64> = through(&stream, &[]).1.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [2, 5]);
}

/// A stream of several requests of every framing, with targets to repair.
fn pipelined() -> Vec<u8> {
    let chunked = b"POST /Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n";
    let length = b"PUT /Users/1 HTTP/1.1\r\ncontent-length: 11\r\n\r\n{\"q\":\"#<>\"}";
    [
        QUOTED,
        b"\r\n",
        chunked,
        length,
        b"GET /Users?q=\xff\"#` HTTP/1.0\r\n\r\n",
        QUOTED,
        b"Host: x\r\n\r\n",
    ]
    .concat()
}

#[test]
fn reads_cut_anywhere_hand_on_the_same_bytes() {
    let stream = pipelined();
    let (expected, encoded) = through(&stream, &[]);
    assert_eq!(encoded.len(), 3);
    for split in 0..stream.len() {
        assert_eq!(
            through(&stream, &[split]),
            (expected.clone(), encoded.clone()),
            "split at {split}"
        );
    }
    assert_eq!(through(&stream, &[1; 4096]).0, expected, "byte by byte");
}

#[tokio::test]
async fn the_reader_hands_on_what_the_framing_makes_through_small_buffers() {
    use tokio::io::AsyncReadExt;
    let stream = pipelined();
    let targets = Arc::new(EncodedTargets::default());
    let mut reader = RequestLines::new(&stream[..], Arc::clone(&targets));
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, whole(&stream));
    assert!(targets.take(1).is_some());
    assert_eq!(targets.take(2), None, "the chunked request had nothing to repair");
    assert!(targets.take(4).is_some(), "the third request is skipped, not mistaken");
    assert!(targets.take(5).is_some());
    assert_eq!(targets.take(6), None);
}

proptest! {
    /// Whatever arrives, in whatever pieces: nothing is lost, a stream with nothing to repair
    /// is handed on exactly, and the pieces change nothing.
    #[test]
    fn no_byte_is_lost_and_the_pieces_do_not_matter(
        parts in proptest::collection::vec(prop_oneof![
            Just(b"GET /Users HTTP/1.1\r\n".to_vec()),
            Just(b"POST /Users HTTP/1.1\r\n".to_vec()),
            Just(b"Content-Length: 3\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"3\r\n".to_vec()),
            Just(b"0\r\n".to_vec()),
            Just(QUOTED.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ], 0..24),
        pieces in proptest::collection::vec(1usize..40, 0..40),
    ) {
        let stream = parts.concat();
        let (out, _) = through(&stream, &pieces);
        prop_assert_eq!(&out, &whole(&stream));
        let untouched = stream.is_ascii() && !stream.iter().any(|b| ENCODED_BYTES.contains(b));
        if untouched {
            prop_assert_eq!(out, stream);
        } else {
            prop_assert!(out.len() >= stream.len());
        }
    }
}
