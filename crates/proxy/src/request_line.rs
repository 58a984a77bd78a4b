//! Request lines repaired below hyper. The `http` crate's URI parser refuses a request-target
//! with `"`, `<` or `>` in its query, `<`, `>` or a backtick in its path, or a byte of invalid
//! UTF-8, and cuts one at a raw `#`; hyper then answers a bare 400 that nothing records, though
//! the application behind would have accepted the request (vendor documentation shows
//! `filter=userName eq "jdoe@example.com"` unencoded). [`RequestLines`] percent-encodes those
//! bytes of each HTTP/1 request line before hyper reads it, so that the request is admitted,
//! recorded (admission notes what was encoded) and forwarded canonically encoded (N10).
//!
//! Nothing but request lines changes. To know where each starts, [`Framing`] follows HTTP/1
//! message framing as hyper does (RFC 9112 §6: `Content-Length`, chunked). Whenever it meets
//! what it does not follow exactly as hyper would — both framings at once, a
//! `Transfer-Encoding` hyper refuses, an upgrade or CONNECT, HTTP/2, an over-long line, a
//! malformed chunk — it stops changing anything on that connection, and hyper reads the rest
//! as sent. So a body's bytes are never taken for a request line: the worst a disagreement can
//! do is leave a request line as sent, which hyper refuses as it would without this layer.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// The longest request line followed (the URI parser's own limit is 64 KiB).
const MAX_REQUEST_LINE: usize = 66 * 1024;
/// The longest header, chunk-size or trailer line read for its framing.
const MAX_SCANNED_LINE: usize = 8 * 1024;

/// The bytes encoded and what each is: `"`, `#`, `<`, `>`, a backtick.
const ENCODED_BYTES: [u8; 5] = [b'"', b'#', b'<', b'>', b'`'];

/// What was percent-encoded in one request-target, by kind: each of [`ENCODED_BYTES`], then
/// bytes of invalid UTF-8. Handed to the exchange as a request extension.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncodedTarget([u32; 6]);

impl EncodedTarget {
    fn count(&mut self, byte: u8) {
        let kind = ENCODED_BYTES
            .iter()
            .position(|&b| b == byte)
            .unwrap_or(ENCODED_BYTES.len());
        self.0[kind] += 1;
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }
}

impl std::fmt::Display for EncodedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (byte, &n) in ENCODED_BYTES.iter().zip(&self.0).filter(|(_, &n)| n > 0) {
            parts.push(format!("'{}' ×{n}", char::from(*byte)));
        }
        if self.0[ENCODED_BYTES.len()] > 0 {
            parts.push(format!("invalid UTF-8 ×{} bytes", self.0[ENCODED_BYTES.len()]));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A request-target in origin form with the bytes hyper refuses or cuts percent-encoded, and
/// what they were; `None` when it has none (or is not in origin form).
fn encode_target(target: &[u8]) -> Option<(Vec<u8>, EncodedTarget)> {
    let suspect = target.iter().any(|b| ENCODED_BYTES.contains(b)) || std::str::from_utf8(target).is_err();
    if !suspect || target.first() != Some(&b'/') {
        return None;
    }
    let mut out = Vec::with_capacity(target.len() + 16);
    let mut encoded = EncodedTarget::default();
    let mut in_query = false;
    for chunk in target.utf8_chunks() {
        for &byte in chunk.valid().as_bytes() {
            let refused = match byte {
                b'#' | b'<' | b'>' => true,
                b'"' => in_query,
                b'`' => !in_query,
                _ => false,
            };
            in_query |= byte == b'?';
            if refused {
                encoded.count(byte);
                percent_encode(byte, &mut out);
            } else {
                out.push(byte);
            }
        }
        for &byte in chunk.invalid() {
            encoded.count(byte);
            percent_encode(byte, &mut out);
        }
    }
    (!encoded.is_empty()).then_some((out, encoded))
}

fn percent_encode(byte: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xF)]]);
}

/// A request line as hyper's parser reads one: `method SP target SP HTTP/1.x`, the method a
/// token, the target without spaces or control bytes. `None` for anything else (HTTP/2's
/// preface among it).
struct RequestLine {
    target: Range<usize>,
    http10: bool,
    connect: bool,
}

impl RequestLine {
    fn parse(line: &[u8]) -> Option<RequestLine> {
        let text = line.strip_suffix(b"\n")?;
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let first = text.iter().position(|&b| b == b' ')?;
        let last = text.iter().rposition(|&b| b == b' ')?;
        let (method, version) = (&text[..first], &text[last + 1..]);
        let target = first + 1..last;
        let target_ok = !target.is_empty() && text[target.clone()].iter().all(|&b| b > b' ' && b != 0x7F);
        let method_ok = !method.is_empty() && method.iter().all(|&b| is_token(b));
        let http10 = match version {
            b"HTTP/1.1" => false,
            b"HTTP/1.0" => true,
            _ => return None,
        };
        (target_ok && method_ok).then_some(RequestLine {
            target,
            http10,
            connect: method == b"CONNECT",
        })
    }
}

/// RFC 9110 §5.6.2's `tchar`.
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Where the connection's bytes are, in HTTP/1 framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a request line (empty lines before one are allowed).
    RequestLine,
    Header,
    /// A body of this many bytes still to come.
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data; how much of it has come.
    ChunkEnd(usize),
    Trailer,
    /// Not followed: every byte is handed on as read.
    Opaque,
}

/// What a request's head says about its body.
#[derive(Debug, Default)]
struct Head {
    http10: bool,
    connect: bool,
    upgrade: bool,
    content_length: Option<u64>,
    /// Whether the last `Transfer-Encoding` ends in `chunked`, when there is one.
    chunked: Option<bool>,
    /// Something hyper might read otherwise than this does (a `Content-Length` that is not
    /// one number, several that differ, a folded line).
    unclear: bool,
}

impl Head {
    fn read_header(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            self.unclear = true;
            return;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            self.unclear = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (length, self.content_length) {
                (Some(length), None) => self.content_length = Some(length),
                (Some(length), Some(previous)) if length == previous => {}
                _ => self.unclear = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            self.chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = true;
        }
    }

    /// What follows the head: a request line, a body, or nothing followed any more.
    fn body(&self) -> State {
        if self.unclear || self.upgrade || self.connect {
            return State::Opaque;
        }
        match (self.chunked, self.content_length) {
            (Some(true), None) if !self.http10 => State::ChunkSize,
            (Some(_), _) => State::Opaque,
            (None, None | Some(0)) => State::RequestLine,
            (None, Some(length)) => State::Body(length),
        }
    }
}

/// What to hand on of one read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handed {
    /// The bytes as read.
    AsRead,
    /// The first this many bytes as read; the rest, a request line's start, is withheld.
    Prefix(usize),
    /// Other bytes.
    Rewritten(Vec<u8>),
}

/// The bytes of one read handed on: as read for as long as possible, copied only from the
/// first change on.
struct Emit<'a> {
    input: &'a [u8],
    /// How many of the input's first bytes are handed on as read, while nothing changed.
    passed: usize,
    rewritten: Option<Vec<u8>>,
}

impl<'a> Emit<'a> {
    fn new(input: &'a [u8]) -> Emit<'a> {
        Emit {
            input,
            passed: 0,
            rewritten: None,
        }
    }

    fn pass(&mut self, range: Range<usize>) {
        match &mut self.rewritten {
            None if range.start == self.passed => self.passed = range.end,
            None => {
                let mut out = self.input[..self.passed].to_vec();
                out.extend_from_slice(&self.input[range]);
                self.rewritten = Some(out);
            }
            Some(out) => out.extend_from_slice(&self.input[range]),
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        let (input, passed) = (self.input, self.passed);
        self.rewritten
            .get_or_insert_with(|| input[..passed].to_vec())
            .extend_from_slice(bytes);
    }

    fn finish(self) -> Handed {
        match self.rewritten {
            Some(out) => Handed::Rewritten(out),
            None if self.passed == self.input.len() => Handed::AsRead,
            None => Handed::Prefix(self.passed),
        }
    }
}

/// One connection's HTTP/1 framing, followed to find its request lines (see the module's
/// documentation).
#[derive(Debug)]
pub(crate) struct Framing {
    state: State,
    /// The line being read: a request line, withheld until whole; or a header, chunk-size or
    /// trailer line, handed on as read and copied here (up to [`MAX_SCANNED_LINE`]) to be
    /// understood.
    line: Vec<u8>,
    head: Head,
    /// Request lines read.
    requests: u64,
    /// Targets encoded, by request number, not yet taken.
    encoded: Vec<(u64, EncodedTarget)>,
}

impl Default for Framing {
    fn default() -> Framing {
        Framing {
            state: State::RequestLine,
            line: Vec::new(),
            head: Head::default(),
            requests: 0,
            encoded: Vec::new(),
        }
    }
}

impl Framing {
    /// What to hand on of `input`, the next bytes read.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Handed {
        let mut emit = Emit::new(input);
        let mut at = 0;
        while at < input.len() {
            let rest = &input[at..];
            let used = match self.state {
                State::Opaque => rest.len(),
                State::Body(left) | State::ChunkData(left) => {
                    let used = left.min(rest.len() as u64);
                    let after = match (self.state, left - used) {
                        (State::Body(_), 0) => State::RequestLine,
                        (State::Body(_), left) => State::Body(left),
                        (_, 0) => State::ChunkEnd(0),
                        (_, left) => State::ChunkData(left),
                    };
                    self.state = after;
                    // Less than `rest.len()`, a `usize`.
                    usize::try_from(used).unwrap_or(rest.len())
                }
                State::ChunkEnd(seen) => {
                    if rest[0] == b"\r\n"[seen] {
                        self.state = if seen == 0 {
                            State::ChunkEnd(1)
                        } else {
                            State::ChunkSize
                        };
                        1
                    } else {
                        self.state = State::Opaque;
                        0
                    }
                }
                State::RequestLine => {
                    let used = self.request_line(rest, at, &mut emit);
                    at += used;
                    continue;
                }
                State::Header | State::ChunkSize | State::Trailer => self.scanned_line(rest),
            };
            emit.pass(at..at + used);
            at += used;
        }
        emit.finish()
    }

    /// The bytes withheld when the connection's input ends: handed on as they came.
    pub(crate) fn withheld(&mut self) -> Vec<u8> {
        match self.state {
            State::RequestLine => std::mem::take(&mut self.line),
            _ => Vec::new(),
        }
    }

    /// The targets encoded since last asked, by request number (counted from 1).
    pub(crate) fn take_encoded(&mut self) -> Vec<(u64, EncodedTarget)> {
        std::mem::take(&mut self.encoded)
    }

    /// Reads a request line from `rest` (at `at` in the input); how many bytes it used.
    fn request_line(&mut self, rest: &[u8], at: usize, emit: &mut Emit<'_>) -> usize {
        let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
            if self.line.len() + rest.len() > MAX_REQUEST_LINE {
                self.give_up(emit);
                emit.pass(at..at + rest.len());
            } else {
                self.line.extend_from_slice(rest);
            }
            return rest.len();
        };
        let used = newline + 1;
        let whole_here = self.line.is_empty();
        if !whole_here {
            self.line.extend_from_slice(&rest[..used]);
        }
        let line = if whole_here { &rest[..used] } else { &self.line[..] };
        let parsed = RequestLine::parse(line).filter(|_| line.len() <= MAX_REQUEST_LINE);
        let is_empty = matches!(line, b"\n" | b"\r\n");
        let encoded = match &parsed {
            Some(request) => encode_target(&line[request.target.clone()]).map(|(target, encoded)| {
                let mut out = Vec::with_capacity(line.len() + target.len());
                out.extend_from_slice(&line[..request.target.start]);
                out.extend_from_slice(&target);
                out.extend_from_slice(&line[request.target.end..]);
                (out, encoded)
            }),
            None => None,
        };
        match (encoded, whole_here) {
            (Some((out, encoded)), _) => {
                emit.put(&out);
                self.encoded.push((self.requests + 1, encoded));
            }
            (None, true) => emit.pass(at..at + used),
            (None, false) => emit.put(&self.line),
        }
        self.line.clear();
        // A long line's room is not kept for the connection's life.
        self.line.shrink_to(MAX_SCANNED_LINE);
        match parsed {
            Some(request) => {
                self.requests += 1;
                self.head = Head {
                    http10: request.http10,
                    connect: request.connect,
                    ..Head::default()
                };
                self.state = State::Header;
            }
            None if is_empty => {}
            None => self.state = State::Opaque,
        }
        used
    }

    /// Reads a header, chunk-size or trailer line, handed on as read.
    fn scanned_line(&mut self, rest: &[u8]) -> usize {
        let newline = rest.iter().position(|&b| b == b'\n');
        let used = newline.map_or(rest.len(), |i| i + 1);
        if self.line.len() + used > MAX_SCANNED_LINE {
            self.line.clear();
            self.state = State::Opaque;
            return used;
        }
        self.line.extend_from_slice(&rest[..used]);
        if newline.is_some() {
            let line = std::mem::take(&mut self.line);
            self.state = self.after_line(&line);
            self.line = line;
            self.line.clear();
        }
        used
    }

    /// Where a whole header, chunk-size or trailer line leads.
    fn after_line(&mut self, line: &[u8]) -> State {
        let crlf = line.ends_with(b"\r\n") && !line[..line.len() - 2].contains(&b'\r');
        let empty = matches!(line, b"\n" | b"\r\n");
        match self.state {
            State::Header if empty => self.head.body(),
            // A folded line (obsolete; hyper refuses it in a request).
            State::Header if matches!(line[0], b' ' | b'\t') => State::Opaque,
            State::Header => {
                self.head.read_header(line);
                State::Header
            }
            State::ChunkSize => match chunk_size(line).filter(|_| crlf) {
                Some(0) => State::Trailer,
                Some(size) => State::ChunkData(size),
                None => State::Opaque,
            },
            State::Trailer if !crlf => State::Opaque,
            State::Trailer if empty => State::RequestLine,
            State::Trailer => State::Trailer,
            _ => State::Opaque,
        }
    }

    /// Stops following: what was withheld is handed on as it came.
    fn give_up(&mut self, emit: &mut Emit<'_>) {
        emit.put(&self.line);
        self.line.clear();
        self.state = State::Opaque;
    }
}

/// A chunk's size from its line (`1a;name=value\r\n`): hexadecimal digits, then an optional
/// extension; `None` when it is not one.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let digits = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(digits, 16).ok()
}

/// The targets a connection's framing encoded, shared with its service, which takes each with
/// its request (HTTP/1 requests are served in the order they came).
#[derive(Debug, Default)]
pub(crate) struct EncodedTargets(Mutex<VecDeque<(u64, EncodedTarget)>>);

impl EncodedTargets {
    fn extend(&self, encoded: Vec<(u64, EncodedTarget)>) {
        if let Ok(mut queue) = self.0.lock() {
            queue.extend(encoded);
        }
    }

    /// What was encoded in the target of request `number` (from 1), if anything.
    pub(crate) fn take(&self, number: u64) -> Option<EncodedTarget> {
        let mut queue = self.0.lock().ok()?;
        while queue.front().is_some_and(|(n, _)| *n < number) {
            queue.pop_front();
        }
        match queue.front() {
            Some((n, _)) if *n == number => queue.pop_front().map(|(_, encoded)| encoded),
            _ => None,
        }
    }
}

/// `io`, whose request lines reach hyper repaired (see the module's documentation).
pub(crate) struct RequestLines<IO> {
    io: IO,
    framing: Framing,
    /// Bytes to hand on before reading more, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
    targets: Arc<EncodedTargets>,
}

impl<IO> RequestLines<IO> {
    pub(crate) fn new(io: IO, targets: Arc<EncodedTargets>) -> RequestLines<IO> {
        RequestLines {
            io,
            framing: Framing::default(),
            pending: Vec::new(),
            pending_at: 0,
            targets,
        }
    }

    /// Hands on as much of `pending` as `buf` holds.
    fn hand_pending(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.pending.len() - self.pending_at);
        buf.put_slice(&self.pending[self.pending_at..self.pending_at + n]);
        self.pending_at += n;
        if self.pending_at == self.pending.len() {
            self.pending.clear();
            self.pending.shrink_to(MAX_SCANNED_LINE);
            self.pending_at = 0;
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for RequestLines<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending_at < this.pending.len() || buf.remaining() == 0 {
            this.hand_pending(buf);
            return Poll::Ready(Ok(()));
        }
        loop {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let read = &buf.filled()[before..];
            if read.is_empty() {
                // The end of the input: whatever was withheld goes on as it came.
                this.pending = this.framing.withheld();
                this.hand_pending(buf);
                return Poll::Ready(Ok(()));
            }
            match this.framing.feed(read) {
                Handed::AsRead => {}
                Handed::Prefix(n) => buf.set_filled(before + n),
                Handed::Rewritten(bytes) => {
                    buf.set_filled(before);
                    this.pending = bytes;
                    this.hand_pending(buf);
                }
            }
            let encoded = this.framing.take_encoded();
            if !encoded.is_empty() {
                this.targets.extend(encoded);
            }
            // Everything read was withheld (a request line's start): read on.
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

crate::read_layer::writes_pass_through!(RequestLines);

#[cfg(test)]
mod tests;
