//! SPDY/3.1 framing, as far as a port-forward server needs it: kubectl
//! 1.31+ tunnels a SPDY session in WebSocket binary messages (subprotocol
//! `SPDY/3.1+portforward.k8s.io`, KEP-4006), the one its Go client
//! (`moby/spdystream`) speaks.
//!
//! A frame is a control frame (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS,
//! PING, GOAWAY, HEADERS, WINDOW_UPDATE) or a DATA frame; header blocks are
//! zlib-compressed with the SPDY/3 dictionary, one compression stream per
//! direction for the whole session.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1).
const DICTIONARY: &[u8] = include_bytes!("spdy3_dictionary.bin");
/// The protocol version in every control frame.
const VERSION: u16 = 3;
/// The largest frame accepted: the 24-bit length field allows 16 MiB, the
/// lab's peers send 32 KiB at most.
const MAX_FRAME: usize = 1 << 24;
/// The FIN flag of DATA and SYN frames: the sender's half of the stream ends.
pub(crate) const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

/// One frame received.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A new stream the client opened, with its headers (names lower case).
    SynStream { stream_id: u32, fin: bool, headers: Vec<(String, String)> },
    /// Data on a stream; `fin` ends the client's half of it.
    Data { stream_id: u32, fin: bool, data: Vec<u8> },
    /// The client abandons a stream.
    RstStream { stream_id: u32 },
    /// A liveness check, to be echoed.
    Ping { id: u32 },
    /// The client ends the session.
    GoAway,
    /// A frame with nothing for the server to do (SETTINGS, WINDOW_UPDATE,
    /// HEADERS, SYN_REPLY).
    Ignored,
}

/// Why a session cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("SPDY: {0}")]
pub(crate) struct SpdyError(String);

/// The server side of one SPDY session: buffers the bytes received, parses
/// frames out of them, and encodes the frames sent.
pub(crate) struct Session {
    received: Vec<u8>,
    inflater: Decompress,
    deflater: Compress,
}

impl Session {
    pub(crate) fn new() -> Session {
        Session { received: Vec::new(), inflater: Decompress::new(true), deflater: Compress::new(Compression::default(), true) }
    }

    /// Adds bytes received (a WebSocket message is any slice of the stream).
    pub(crate) fn receive(&mut self, bytes: &[u8]) {
        self.received.extend_from_slice(bytes);
    }

    /// The next complete frame received, if any.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.received.len() < 8 {
            return Ok(None);
        }
        let word = u32::from_be_bytes([self.received[0], self.received[1], self.received[2], self.received[3]]);
        let flags = self.received[4];
        let length = u32::from_be_bytes([0, self.received[5], self.received[6], self.received[7]]) as usize;
        if length > MAX_FRAME {
            return Err(SpdyError(format!("a frame of {length} bytes is too large")));
        }
        if self.received.len() < 8 + length {
            return Ok(None);
        }
        let payload: Vec<u8> = self.received[8..8 + length].to_vec();
        self.received.drain(..8 + length);
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { stream_id: word & 0x7fff_ffff, fin: flags & FLAG_FIN != 0, data: payload }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError(format!("version {version} is not supported (only SPDY/3)")));
        }
        let stream_id = |p: &[u8]| p.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff);
        let short = || SpdyError(format!("a control frame of type {} is too short", word & 0xffff));
        Ok(Some(match (word & 0xffff) as u16 {
            SYN_STREAM => {
                let id = stream_id(&payload).ok_or_else(short)?;
                let block = payload.get(10..).ok_or_else(short)?;
                let headers = parse_headers(&self.inflate(block)?)?;
                Frame::SynStream { stream_id: id, fin: flags & FLAG_FIN != 0, headers }
            }
            RST_STREAM => Frame::RstStream { stream_id: stream_id(&payload).ok_or_else(short)? },
            PING => Frame::Ping { id: stream_id(&payload).map(|_| u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])).ok_or_else(short)? },
            GOAWAY => Frame::GoAway,
            // HEADERS and SYN_REPLY carry header blocks: decompress them to keep the shared zlib stream in step.
            SYN_REPLY | 8 => {
                self.inflate(payload.get(4..).ok_or_else(short)?)?;
                Frame::Ignored
            }
            _ => Frame::Ignored,
        }))
    }

    /// Decompresses one header block, continuing the session's zlib stream.
    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(1024));
            }
            let before = self.inflater.total_in();
            let result = self.inflater.decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.inflater.total_in() - before) as usize..];
            match result {
                Ok(_) if input.is_empty() && out.len() < out.capacity() => return Ok(out),
                Ok(flate2::Status::StreamEnd) => return Err(SpdyError("the header compression stream ended".into())),
                Ok(flate2::Status::BufError) if out.len() < out.capacity() => {
                    return Err(SpdyError("a header block ends in the middle of its compressed data".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflater.set_dictionary(DICTIONARY).map_err(|e| SpdyError(format!("header compression dictionary: {e}")))?;
                }
                Err(e) => return Err(SpdyError(format!("a header block does not decompress: {e}"))),
            }
        }
    }

    /// A SYN_REPLY accepting `stream_id`, with no headers.
    pub(crate) fn syn_reply(&mut self, stream_id: u32) -> Result<Vec<u8>, SpdyError> {
        let block = self.deflate(&0u32.to_be_bytes())?;
        let mut payload = stream_id.to_be_bytes().to_vec();
        payload.extend_from_slice(&block);
        Ok(control(SYN_REPLY, 0, &payload))
    }

    fn deflate(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.deflater.total_in();
            self.deflater.compress_vec(input, &mut out, FlushCompress::Sync).map_err(|e| SpdyError(format!("compressing headers: {e}")))?;
            input = &input[(self.deflater.total_in() - before) as usize..];
            // A sync flush is complete once all input is in and the output did not fill up.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// A PING answered: the same frame back.
pub(crate) fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

/// A RST_STREAM with status CANCEL (5).
pub(crate) fn rst_stream(stream_id: u32) -> Vec<u8> {
    let mut payload = stream_id.to_be_bytes().to_vec();
    payload.extend_from_slice(&5u32.to_be_bytes());
    control(RST_STREAM, 0, &payload)
}

/// A DATA frame (`flags` [`FLAG_FIN`] ends the server's half of the stream).
pub(crate) fn data(stream_id: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(data);
    frame
}

fn control(frame_type: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    frame.extend_from_slice(&frame_type.to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(payload);
    frame
}

/// An uncompressed header block: a count, then length-prefixed names and
/// values (several values of one name are NUL-separated; kept as one).
fn parse_headers(block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let malformed = || SpdyError("a header block is malformed".into());
    let mut rest = block;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        if rest.len() < n {
            return Err(malformed());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = word(take(4)?);
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name_len = word(take(4)?);
        let name = String::from_utf8_lossy(take(name_len)?).to_lowercase();
        let value_len = word(take(4)?);
        let value = String::from_utf8_lossy(take(value_len)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block as the Go client sends it: compressed with the dictionary.
    fn client_block(deflater: &mut Compress, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for part in [name, value] {
                block.extend_from_slice(&(part.len() as u32).to_be_bytes());
                block.extend_from_slice(part.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(1024);
        deflater.compress_vec(&block, &mut out, FlushCompress::Sync).unwrap();
        out
    }

    fn syn_stream(deflater: &mut Compress, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        payload.extend_from_slice(&client_block(deflater, headers));
        control(SYN_STREAM, 0, &payload)
    }

    #[test]
    fn reads_streams_compressed_with_the_dictionary_across_frames_and_messages() {
        let mut deflater = Compress::new(Compression::best(), true);
        deflater.set_dictionary(DICTIONARY).unwrap();
        let mut bytes = syn_stream(&mut deflater, 1, &[("streamtype", "error"), ("port", "5432"), ("requestid", "0")]);
        bytes.extend(syn_stream(&mut deflater, 3, &[("streamtype", "data"), ("port", "5432"), ("requestid", "0")]));
        bytes.extend(data(3, FLAG_FIN, b"hello"));
        bytes.extend(ping(7));
        let mut session = Session::new();
        let mut frames = Vec::new();
        // Slices of any size, as WebSocket messages may cut the stream.
        for chunk in bytes.chunks(5) {
            session.receive(chunk);
            while let Some(frame) = session.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        let headers = |kind: &str| vec![("streamtype".into(), kind.into()), ("port".into(), "5432".into()), ("requestid".into(), "0".into())];
        assert_eq!(
            frames,
            vec![
                Frame::SynStream { stream_id: 1, fin: false, headers: headers("error") },
                Frame::SynStream { stream_id: 3, fin: false, headers: headers("data") },
                Frame::Data { stream_id: 3, fin: true, data: b"hello".to_vec() },
                Frame::Ping { id: 7 },
            ]
        );
    }

    #[test]
    fn replies_decompress_as_one_zlib_stream() {
        let mut session = Session::new();
        let mut inflater = Decompress::new(true);
        for id in [1u32, 3, 5] {
            let frame = session.syn_reply(id).unwrap();
            assert_eq!(&frame[..4], &[0x80, 3, 0, 2]);
            assert_eq!(u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]), id);
            let mut out = Vec::with_capacity(64);
            inflater.decompress_vec(&frame[12..], &mut out, FlushDecompress::Sync).unwrap();
            assert_eq!(out, [0, 0, 0, 0], "an empty header block");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut session = Session::new();
        session.receive(&control(SYN_STREAM, 0, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xde, 0xad]));
        assert!(session.next_frame().is_err());
        let mut session = Session::new();
        session.receive(&control(PING, 0, &[1]));
        assert!(session.next_frame().is_err());
        let mut session = Session::new();
        session.receive(&[0x80, 2, 0, 1, 0, 0, 0, 0]);
        assert!(session.next_frame().is_err(), "SPDY/2 is refused");
    }
}
