//! Finds where a chunked body (RFC 9112 §7.1) ends while it streams past.
//!
//! The relay forwards a backend's chunked response as it is; it only needs
//! to know where the message ends, so that the connection can carry the
//! next one. Sizes and line ends are checked strictly: a body that is not
//! well-formed chunked coding ends the exchange (and both connections).

/// Longest chunk-size line kept track of: the size, extensions and CRLF.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size (this many so far).
    Size(usize),
    /// After the size, in extensions, up to the CR.
    Extension,
    /// After the size line's CR.
    SizeLf,
    /// Inside chunk data: this many bytes left.
    Data(u64),
    /// After chunk data: CR then LF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the end).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the CR of the empty line that ends the message.
    EndLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// The size on the current size line.
    size: u64,
    /// Bytes of the current size line so far.
    line: usize,
    /// Chunk data so far (the body without its framing).
    data: u64,
}

/// A body that is not chunked coding.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

impl Default for Chunked {
    fn default() -> Self {
        Self { state: State::Size(0), size: 0, line: 0, data: 0 }
    }
}

impl Chunked {
    /// Takes the next bytes of the body; returns how many of them belong
    /// to it when the message ends within `data`, else `None` (all do).
    pub fn advance(&mut self, data: &[u8]) -> Result<Option<usize>, Malformed> {
        let mut at = 0;
        while at < data.len() {
            if let State::Data(left) = self.state {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len() - at);
                at += take;
                self.data += take as u64;
                let left = left - take as u64;
                self.state = if left == 0 { State::DataCr } else { State::Data(left) };
                continue;
            }
            self.step(data[at])?;
            at += 1;
            if self.state == State::Done {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Bytes of chunk data seen so far.
    pub fn data_len(&self) -> u64 {
        self.data
    }

    fn step(&mut self, byte: u8) -> Result<(), Malformed> {
        self.state = match (&self.state, byte) {
            (State::Size(digits), b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                // 15 hex digits are more than any body; more is an overflow.
                if *digits >= 15 {
                    return Err(Malformed);
                }
                let digit = (byte as char).to_digit(16).expect("a hex digit");
                self.size = self.size * 16 + u64::from(digit);
                State::Size(digits + 1)
            }
            (State::Size(0), _) => return Err(Malformed),
            (State::Size(_), b';' | b' ' | b'\t') => State::Extension,
            (State::Size(_) | State::Extension, b'\r') => State::SizeLf,
            (State::Extension, b'\t' | b' '..=b'~' | 0x80..) => State::Extension,
            (State::SizeLf, b'\n') => match std::mem::take(&mut self.size) {
                0 => State::TrailerStart,
                size => State::Data(size),
            },
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size(0),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerLine, b'\t' | b' '..=b'~' | 0x80..) => State::TrailerLine,
            (State::TrailerLine, b'\r') => State::TrailerLf,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            _ => return Err(Malformed),
        };
        if matches!(self.state, State::Size(_) | State::Extension | State::SizeLf) {
            self.line += 1;
            if self.line > MAX_LINE {
                return Err(Malformed);
            }
        } else {
            self.line = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the message ends when `body` comes in pieces of `step` bytes.
    fn end_in_steps(body: &[u8], step: usize) -> Result<Option<usize>, Malformed> {
        let mut chunked = Chunked::default();
        for (i, piece) in body.chunks(step).enumerate() {
            if let Some(end) = chunked.advance(piece)? {
                return Ok(Some(i * step + end));
            }
        }
        Ok(None)
    }

    fn end(body: &[u8]) -> Result<Option<usize>, Malformed> {
        let whole = end_in_steps(body, body.len().max(1));
        for step in 1..body.len() {
            assert_eq!(end_in_steps(body, step), whole, "in pieces of {step}");
        }
        whole
    }

    #[test]
    fn the_end_is_found_however_the_body_is_split() {
        let body = b"5\r\nhello\r\n1A;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        assert_eq!(end(body), Ok(Some(body.len())));
        let mut next = body.to_vec();
        next.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(end(&next), Ok(Some(body.len())), "what follows is not the body's");
    }

    #[test]
    fn data_is_counted_without_its_framing() {
        let body = b"5\r\nhello\r\n1A;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX: 1\r\n\r\n";
        for step in 1..=body.len() {
            let mut chunked = Chunked::default();
            body.chunks(step).for_each(|piece| drop(chunked.advance(piece)));
            assert_eq!(chunked.data_len(), 5 + 26, "in pieces of {step}");
        }
    }

    #[test]
    fn trailers_belong_to_the_body() {
        let body = b"3\r\nabc\r\n0\r\nEtag: \"x\"\r\nX-Sum: 1\r\n\r\n";
        assert_eq!(end(body), Ok(Some(body.len())));
    }

    #[test]
    fn an_unfinished_body_has_no_end_yet() {
        assert_eq!(end(b"5\r\nhel"), Ok(None));
        assert_eq!(end(b"0\r\n"), Ok(None));
        assert_eq!(end(b"0\r\nX: 1\r\n"), Ok(None));
    }

    #[test]
    fn malformed_coding_is_refused() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\r\n0\r\nX\n",
            b"1000000000000000\r\n",
            b"5\x00\r\n",
        ] {
            assert_eq!(end(bad), Err(Malformed), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_extension = [b"1;".as_slice(), &[b'x'; MAX_LINE], b"\r\n"].concat();
        assert_eq!(end(&long_extension), Err(Malformed));
    }
}
