//! hyper's own answers to requests it cannot parse, given the JSON error body every other
//! error has.
//!
//! A request hyper cannot parse never reaches the router: hyper answers it itself — 400 for a
//! malformed request line or header (or `Content-Length`s that disagree), 414 for a URI over
//! its limit, 431 for a head over `max_buf_size` — with a bare head (`content-length: 0`) and
//! closes the connection (hyper 1.12 `proto/h1/conn.rs`, `on_parse_error` → `write_head(msg,
//! None)`). It offers no hook to change that answer, so [`ParseErrors`] sits between hyper and
//! the socket and recognises it on its way out: a write that is exactly one response head,
//! starting `HTTP/1.x 400 ` (or `414 `, `431 `) and carrying `content-length: 0`. It writes
//! that status instead with the [`ApiError`] body, `content-type: application/json`, its
//! length and `connection: close`, and tells hyper its own bytes were written.
//!
//! Nothing else can look like that: every 4xx the router answers has a JSON body (the
//! handlers' errors are [`ApiError`]s, and [`super::App`] gives a JSON body to any error
//! response that lacks one, axum's own included), so its head carries a non-zero
//! `content-length` (or, for a streamed body, none); and the head must be the whole write, which
//! a piece of a body never is in practice (a JSON body holds no bare CR LF).
//!
//! hyper's URI limit (65,534 bytes) is above our head limit (`server::READ_BUFFER_BYTES`), so a
//! very long URI makes the head too large first: 431, not 414. The 414 is still recognised, in
//! case either limit changes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::ApiError;

/// hyper's longest URI (`MAX_URI_LEN` in hyper 1.12 `proto/h1/role.rs`; private there).
const HYPER_MAX_URI_BYTES: usize = u16::MAX as usize - 1;

/// Longer writes are not hyper's error heads (those are about 80 bytes), and are passed
/// through without a look beyond their first bytes.
const MAX_HEAD_BYTES: usize = 1024;

/// A connection's IO, with hyper's answers to unparseable requests given a JSON body.
#[derive(Debug)]
pub struct ParseErrors<T> {
    inner: T,
    /// hyper's limit on a request head (its `max_buf_size`), named in a 431.
    head_limit: usize,
    /// The answer written instead of hyper's, and how much of it the socket took so far: it
    /// goes out before anything else.
    replacement: Option<Replacement>,
}

#[derive(Debug)]
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
}

impl<T> ParseErrors<T> {
    /// `head_limit`: the `max_buf_size` hyper was given.
    pub fn new(inner: T, head_limit: usize) -> Self {
        Self {
            inner,
            head_limit,
            replacement: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> ParseErrors<T> {
    /// Writes what is left of the replacement; ready once all of it is written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(r) = &mut self.replacement {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &r.bytes[r.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            r.written += n;
            if r.written == r.bytes.len() {
                self.replacement = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// If `buf` is hyper's answer to an unparseable request, takes the replacement in its
    /// place and starts writing it: hyper is told all of `buf` went out (`None` otherwise).
    fn intercept(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let bytes = replacement(buf, self.head_limit)?;
        tracing::debug!(
            status = %String::from_utf8_lossy(&buf[9..12]),
            "answering a request hyper could not parse with the JSON error body"
        );
        self.replacement = Some(Replacement { bytes, written: 0 });
        // As much as the socket takes now; the rest on the next write, flush or shutdown
        // (hyper flushes and shuts down next).
        Some(match self.poll_replacement(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) | Poll::Pending => Poll::Ready(Ok(buf.len())),
        })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParseErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if let Some(answered) = this.intercept(cx, buf) {
            return answered;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    /// hyper writes a head from its one headers buffer: an error head (with no body behind
    /// it) is the only non-empty slice.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && let Some(answered) = this.intercept(cx, only)
        {
            return answered;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The error of hyper's answer with that status.
fn error_for(status: &[u8], head_limit: usize) -> Option<ApiError> {
    match status {
        b"400" => Some(ApiError::BadRequestHead),
        b"414" => Some(ApiError::UriTooLong(HYPER_MAX_URI_BYTES)),
        b"431" => Some(ApiError::HeadersTooLarge(head_limit)),
        _ => None,
    }
}

/// What to write instead of `written` if it is hyper's answer to an unparseable request: its
/// status line and headers (`date`) with the JSON error body, its type and length, and
/// `connection: close`.
fn replacement(written: &[u8], head_limit: usize) -> Option<Vec<u8>> {
    // Most writes are turned away here, by their first bytes.
    if written.len() > MAX_HEAD_BYTES
        || !(written.starts_with(b"HTTP/1.1 ") || written.starts_with(b"HTTP/1.0 "))
    {
        return None;
    }
    let error = error_for(written.get(9..12)?, head_limit)?;
    if written.get(12) != Some(&b' ') {
        return None;
    }
    // Exactly one head, nothing after it: lines ending CR LF, the last one empty.
    let head = written.strip_suffix(b"\r\n")?;
    let mut lines = head
        .split_inclusive(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r\n"));
    let status_line = lines.next()??;
    let mut kept = Vec::new();
    let mut empty_body = false;
    for line in lines {
        let line = line?;
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            if value != b"0" {
                return None;
            }
            empty_body = true;
        } else if !name.eq_ignore_ascii_case(b"connection")
            && !name.eq_ignore_ascii_case(b"content-type")
        {
            kept.push(line);
        }
    }
    if !empty_body {
        return None;
    }
    let body = serde_json::to_vec(&error.body()).expect("an error body serializes");
    let mut out = Vec::with_capacity(written.len() + body.len() + 96);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\r\n");
    for line in kept {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::task::Waker;

    use super::*;

    const HEAD_LIMIT: usize = 64 * 1024;

    const DATE: &str = "date: Tue, 02 Jun 2026 10:00:00 GMT";

    /// hyper's answer with `status`, as hyper 1.12 writes it.
    fn hyper_head(status: &str) -> Vec<u8> {
        format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n\r\n")
            .into_bytes()
    }

    /// The head and the parsed JSON body of a replacement.
    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len(), "{text}");
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn hyper_answers_to_unparseable_requests_are_recognised_and_given_a_json_body() {
        for (status, code, limit) in [
            ("400 Bad Request", "bad_request", None),
            ("414 URI Too Long", "uri_too_long", Some(65_534)),
            (
                "431 Request Header Fields Too Large",
                "headers_too_large",
                Some(HEAD_LIMIT as u64),
            ),
        ] {
            let answer = replacement(&hyper_head(status), HEAD_LIMIT).expect(status);
            let (head, body) = split(&answer);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains(DATE), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            assert_eq!(head.matches("connection: close").count(), 1, "{head}");
            assert_eq!(head.matches("content-length: ").count(), 1, "{head}");
            assert_eq!(body["code"], code);
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
            assert_eq!(body["limit"].as_u64(), limit);
        }
        // An HTTP/1.0 client gets its version back.
        let old = b"HTTP/1.0 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let (head, body) = split(&replacement(old, HEAD_LIMIT).unwrap());
        assert!(head.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{head}");
        assert_eq!(body["code"], "bad_request");
    }

    #[test]
    fn other_writes_are_not_recognised() {
        let not = [
            // Not one of hyper's parse-error statuses.
            hyper_head("200 OK"),
            hyper_head("404 Not Found"),
            hyper_head("413 Payload Too Large"),
            // A 400 with a body: ours (the router's errors all have one).
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
            // No length at all, or the head with something after it.
            format!("HTTP/1.1 400 Bad Request\r\n{DATE}\r\n\r\n").into_bytes(),
            [hyper_head("400 Bad Request"), b"{}".to_vec()].concat(),
            // Not a whole head (a piece of a larger write), or not a head.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n".to_vec(),
            b"HTTP/1.1 4000 Bad Request\r\ncontent-length: 0\r\n\r\n".to_vec(),
            b"{\"error\": \"HTTP/1.1 400 \"}".to_vec(),
            Vec::new(),
        ];
        for written in not {
            assert_eq!(
                replacement(&written, HEAD_LIMIT),
                None,
                "{}",
                String::from_utf8_lossy(&written)
            );
        }
    }

    /// A socket that takes at most 7 bytes a write, and is not ready every other call.
    #[derive(Default)]
    struct Slow {
        written: Vec<u8>,
        calls: usize,
        flushed: bool,
        shut_down: bool,
    }

    impl Slow {
        fn busy(&mut self, cx: &mut Context<'_>) -> bool {
            self.calls += 1;
            let busy = self.calls % 2 == 1;
            if busy {
                cx.waker().wake_by_ref();
            }
            busy
        }
    }

    impl AsyncWrite for Slow {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.busy(cx) {
                return Poll::Pending;
            }
            let n = buf.len().min(7);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.busy(cx) {
                return Poll::Pending;
            }
            self.flushed = true;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut_down = true;
            Poll::Ready(Ok(()))
        }
    }

    type Io = ParseErrors<Slow>;

    /// Polls `f` on `io` until it is ready ([`Slow`] is never busy twice in a row).
    fn until_ready<T>(
        io: &mut Io,
        mut f: impl FnMut(Pin<&mut Io>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> T {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(result) = f(Pin::new(io), &mut cx) {
                return result.unwrap();
            }
        }
    }

    fn write_all(io: &mut Io, mut buf: &[u8]) {
        while !buf.is_empty() {
            let n = until_ready(io, |io, cx| io.poll_write(cx, buf));
            buf = &buf[n..];
        }
    }

    #[test]
    fn a_vectored_error_head_is_reported_written_and_its_replacement_finished_by_the_flush() {
        let head = hyper_head("431 Request Header Fields Too Large");
        let mut io = ParseErrors::new(Slow::default(), HEAD_LIMIT);
        let bufs = [IoSlice::new(&head), IoSlice::new(&[])];
        // hyper hears that its whole head went out, in one write.
        let n = until_ready(&mut io, |io, cx| io.poll_write_vectored(cx, &bufs));
        assert_eq!(n, head.len());
        assert!(io.inner.written.len() < 10, "written in 7-byte pieces");
        until_ready(&mut io, |io, cx| io.poll_flush(cx));
        assert!(io.inner.flushed);
        assert_eq!(io.inner.written, replacement(&head, HEAD_LIMIT).unwrap());
        assert_eq!(split(&io.inner.written).1["code"], "headers_too_large");
    }

    #[test]
    fn the_rest_of_a_replacement_goes_out_before_a_later_write_or_the_shutdown() {
        let head = hyper_head("400 Bad Request");
        let want = replacement(&head, HEAD_LIMIT).unwrap();
        let mut io = ParseErrors::new(Slow::default(), HEAD_LIMIT);
        let n = until_ready(&mut io, |io, cx| io.poll_write(cx, &head));
        assert_eq!(n, head.len());
        // A later write waits for the replacement (hyper writes none, but order is kept).
        write_all(&mut io, b"later");
        assert_eq!(io.inner.written, [want.as_slice(), b"later"].concat());

        let mut io = ParseErrors::new(Slow::default(), HEAD_LIMIT);
        until_ready(&mut io, |io, cx| io.poll_write(cx, &head));
        until_ready(&mut io, |io, cx| io.poll_shutdown(cx));
        assert!(io.inner.shut_down);
        assert_eq!(io.inner.written, want);
    }

    #[test]
    fn other_writes_pass_through_unchanged() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let mut io = ParseErrors::new(Slow::default(), HEAD_LIMIT);
        write_all(&mut io, ok);
        // An error head followed by more in the same write is not hyper's answer alone.
        let head = hyper_head("400 Bad Request");
        let bufs = [IoSlice::new(&head), IoSlice::new(b"x")];
        let n = until_ready(&mut io, |io, cx| io.poll_write_vectored(cx, &bufs));
        assert_eq!(io.inner.written, [&ok[..], &bufs[0][..n]].concat());
    }
}
