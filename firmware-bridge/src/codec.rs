//! A `tokio_util` codec for the board protocol: splits the byte stream at 0x00 delimiters,
//! decodes COBS, checks the CRC and parses. Never panics and never allocates more than
//! [`MAX_WIRE_FRAME`] per frame on hostile input.
//!
//! Resynchronization: after garbage or a corrupted frame, decoding simply resumes at the next
//! delimiter. If a delimiter itself was corrupted, two frames arrive fused into one chunk;
//! the codec then tries splitting the chunk at the positions where the COBS chain of the
//! first frame could have ended, so the intact frame of the pair is still delivered.

use crate::Frame;
use crate::protocol::{FrameError, MAX_WIRE_FRAME, decode_chunk, encode_frame};
use bytes::{Buf, BufMut, BytesMut};
use std::collections::VecDeque;
use tokio_util::codec::{Decoder, Encoder};

/// What the decoder has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecStats {
    /// Frames delivered.
    pub frames: u64,
    /// Chunks between delimiters that were not a valid frame.
    pub bad_chunks: u64,
    /// Frames recovered from two frames fused by a corrupted delimiter.
    pub recovered: u64,
    /// Bytes thrown away without a delimiter in sight (line noise, oversize runs).
    pub garbage_bytes: u64,
    /// The last error seen, for logs.
    pub last_error: Option<FrameError>,
}

#[derive(Debug, Default)]
pub struct BoardCodec {
    scratch: Vec<u8>,
    pending: VecDeque<Frame>,
    /// Inside an oversize run: drop bytes until the next delimiter.
    discarding: bool,
    pub stats: CodecStats,
}

impl BoardCodec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode one chunk (bytes between delimiters), with fused-frame recovery.
    pub fn decode_chunk(&mut self, chunk: &[u8]) {
        match decode_chunk(chunk, &mut self.scratch) {
            Ok(f) => {
                self.stats.frames += 1;
                self.pending.push_back(f);
            }
            Err(e) => {
                let got = self.split_fused(chunk, 2);
                if got.is_empty() {
                    self.stats.bad_chunks += 1;
                    self.stats.last_error = Some(e);
                } else {
                    // the part that did not decode was a damaged frame
                    self.stats.bad_chunks += (got.len() < 2) as u64;
                    self.stats.recovered += got.len() as u64;
                    self.stats.frames += got.len() as u64;
                    self.pending.extend(got);
                }
            }
        }
    }

    fn split_fused(&mut self, chunk: &[u8], depth: u32) -> Vec<Frame> {
        if depth == 0 || chunk.len() < 2 {
            return Vec::new();
        }
        // COBS chain positions from the start: where the first frame may have ended.
        let mut p = 0usize;
        let mut hops = 0;
        while p < chunk.len() && hops < 512 {
            let c = chunk[p] as usize;
            if c == 0 {
                break;
            }
            if p > 0 {
                let (left, right) = (&chunk[..p], &chunk[p + 1..]);
                let l = decode_chunk(left, &mut self.scratch).ok();
                let mut r: Vec<Frame> = decode_chunk(right, &mut self.scratch)
                    .ok()
                    .into_iter()
                    .collect();
                if r.is_empty() && l.is_some() {
                    r = self.split_fused(right, depth - 1);
                }
                if l.is_some() || !r.is_empty() {
                    let mut out: Vec<Frame> = l.into_iter().collect();
                    out.extend(r);
                    return out;
                }
            }
            p += c;
            hops += 1;
        }
        self.intact_suffix(chunk).into_iter().collect()
    }

    /// Last resort when the first frame's own chain is damaged too: the frame after a
    /// corrupted delimiter is a complete, valid COBS chain ending exactly at the chunk's end.
    /// Find the starts of such chains (one backward pass) and try them.
    fn intact_suffix(&mut self, chunk: &[u8]) -> Option<Frame> {
        let n = chunk.len();
        let mut valid = vec![false; n + 1];
        valid[n] = true;
        for p in (0..n).rev() {
            let c = chunk[p] as usize;
            valid[p] = c != 0 && p + c <= n && valid[p + c];
        }
        // From the end: the frame after the corrupted delimiter starts at the earliest valid
        // position of its own chain, which comes right after that chain's few later code
        // positions, before any position inside the damaged first frame.
        let mut tries = 0;
        for p in (2..n).rev() {
            // a frame starts with a code byte followed by the protocol version: checking that
            // first keeps the search from spending its tries on chains inside the frame
            if !valid[p]
                || chunk[p] < 2
                || p + 1 >= n
                || chunk[p + 1] != crate::protocol::PROTOCOL_VERSION
            {
                continue;
            }
            tries += 1;
            if tries > 64 {
                break;
            }
            if let Ok(f) = decode_chunk(&chunk[p..], &mut self.scratch) {
                return Some(f);
            }
        }
        None
    }
}

impl Decoder for BoardCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Ok(Some(f));
            }
            let Some(i) = src.iter().position(|&b| b == 0) else {
                if src.len() > MAX_WIRE_FRAME {
                    // no delimiter within a maximal frame: noise; keep the tail
                    let drop = src.len() - 1;
                    self.stats.garbage_bytes += drop as u64;
                    src.advance(drop);
                    self.discarding = true;
                }
                return Ok(None);
            };
            let chunk = src.split_to(i + 1);
            let body = &chunk[..i];
            if self.discarding {
                self.discarding = false;
                self.stats.garbage_bytes += body.len() as u64;
                self.stats.bad_chunks += 1;
                continue;
            }
            if body.is_empty() {
                continue; // idle fill or back-to-back delimiters
            }
            self.decode_chunk(body);
        }
    }
}

impl Encoder<Frame> for BoardCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        let mut v = Vec::new();
        encode_frame(&item, &mut v);
        dst.reserve(v.len());
        dst.put_slice(&v);
        Ok(())
    }
}
