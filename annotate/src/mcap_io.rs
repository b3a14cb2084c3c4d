//! MCAP at the record level, hardened against damaged files: the magic, a walker over
//! length-prefixed records, chunk decompression with the size and CRC checked (never trusting
//! a length inside the compressed stream), a streaming chunk reader with bounded memory, and
//! `checked_parse_record` (every length field checked before the `mcap` crate sizes a buffer
//! from it). The layer under `read` (the selective reader every command uses), `inspect` and
//! `recover`.

use std::io::Read;

pub const MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
/// lz4 and zstd cannot expand data by more than this factor (and we never write chunks
/// larger than a few hundred MiB), so a larger claim is corruption, not data.
pub(crate) const MAX_CHUNK_RATIO: u64 = 300;
/// The most a chunk may decompress to when a command needs it whole in memory (the selective
/// reader under annotate, export and view). `inspect` and `recover` never hold a chunk whole:
/// they stream it ([`ChunkStream`]), so their memory stays bounded whatever a chunk claims.
pub const MAX_CHUNK_IN_MEMORY: u64 = 1 << 30;
/// The largest single record inside a chunk that is read into memory whole (a schema, a
/// channel, a message to copy or decode). A larger one is an error, not an allocation.
pub const MAX_RECORD_IN_MEMORY: u64 = 512 << 20;

/// Decompress a chunk into exactly `uncompressed_size` bytes (already bounded by the caller)
/// and check its CRC, without trusting any length inside the compressed stream.
pub(crate) fn decompress_chunk(
    h: &mcap::records::ChunkHeader,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    // lz4 and zstd cannot expand by more than MAX_CHUNK_RATIO: a larger claim is corruption,
    // and must be refused before anything is allocated for it
    check_ratio(h)?;
    if h.uncompressed_size > MAX_CHUNK_IN_MEMORY {
        return Err(format!(
            "decompresses to {} bytes, more than the {} MiB a chunk may take in memory \
             (`demotape recover` streams it into a file with smaller chunks)",
            h.uncompressed_size,
            MAX_CHUNK_IN_MEMORY >> 20
        ));
    }
    let want = h.uncompressed_size as usize;
    let mut out = Vec::with_capacity(want);
    let limit = h.uncompressed_size + 1;
    match h.compression.as_str() {
        "" => out.extend_from_slice(data),
        "lz4" => {
            let d = lz4::Decoder::new(data).map_err(|e| format!("lz4: {e}"))?;
            d.take(limit)
                .read_to_end(&mut out)
                .map_err(|e| format!("lz4: {e}"))?;
        }
        "zstd" => {
            let d = zstd::stream::read::Decoder::new(data).map_err(|e| format!("zstd: {e}"))?;
            d.take(limit)
                .read_to_end(&mut out)
                .map_err(|e| format!("zstd: {e}"))?;
        }
        other => return Err(format!("unsupported compression {other:?}")),
    }
    if out.len() != want {
        return Err(format!(
            "decompressed to {} bytes, header says {want}",
            out.len()
        ));
    }
    if h.uncompressed_crc != 0 {
        let got = crc32fast::hash(&out);
        if got != h.uncompressed_crc {
            return Err(format!(
                "CRC mismatch (stored {:08x}, computed {got:08x})",
                h.uncompressed_crc
            ));
        }
    }
    Ok(out)
}

pub(crate) fn check_ratio(h: &mcap::records::ChunkHeader) -> Result<(), String> {
    if h.uncompressed_size > h.compressed_size.saturating_mul(MAX_CHUNK_RATIO) + (1 << 20) {
        return Err(format!(
            "claims {} uncompressed bytes from {} compressed",
            h.uncompressed_size, h.compressed_size
        ));
    }
    Ok(())
}

/// One record of a chunk read by [`ChunkStream`]: its offset in the decompressed chunk, its
/// opcode and length, and its body — whole if `complete`, else only its first bytes.
pub(crate) struct StreamRecord {
    pub at: u64,
    pub op: u8,
    pub len: u64,
    pub body: Vec<u8>,
    pub complete: bool,
}

/// How much of each record [`ChunkStream`] always reads (a message header is 22 bytes).
const RECORD_PREFIX: u64 = 64;

/// The records of one chunk, decompressed as a stream and CRC-checked as they pass, so that
/// memory is bounded by the largest record kept ([`MAX_RECORD_IN_MEMORY`]), not by the size
/// a chunk claims: an honest 2 GiB chunk is walked in a few KiB plus its largest message.
pub(crate) struct ChunkStream<'a> {
    r: Box<dyn Read + 'a>,
    crc: crc32fast::Hasher,
    pos: u64,
    size: u64,
    want_crc: u32,
    done: bool,
    /// Reused for the bytes streamed past.
    scratch: Vec<u8>,
}

impl<'a> ChunkStream<'a> {
    pub(crate) fn new(h: &mcap::records::ChunkHeader, data: &'a [u8]) -> Result<Self, String> {
        check_ratio(h)?;
        let r: Box<dyn Read + 'a> = match h.compression.as_str() {
            "" => {
                if data.len() as u64 != h.uncompressed_size {
                    return Err(format!(
                        "uncompressed chunk holds {} bytes, header says {}",
                        data.len(),
                        h.uncompressed_size
                    ));
                }
                Box::new(data)
            }
            "lz4" => Box::new(lz4::Decoder::new(data).map_err(|e| format!("lz4: {e}"))?),
            "zstd" => {
                Box::new(zstd::stream::read::Decoder::new(data).map_err(|e| format!("zstd: {e}"))?)
            }
            other => return Err(format!("unsupported compression {other:?}")),
        };
        Ok(ChunkStream {
            r,
            crc: crc32fast::Hasher::new(),
            pos: 0,
            size: h.uncompressed_size,
            want_crc: h.uncompressed_crc,
            done: false,
            scratch: Vec::new(),
        })
    }

    fn read_hashed(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let n = read_full(&mut self.r, buf).map_err(|e| format!("decompressing: {e}"))?;
        self.crc.update(&buf[..n]);
        self.pos += n as u64;
        if n < buf.len() {
            return Err(format!(
                "decompresses to {} bytes, header says {}",
                self.pos, self.size
            ));
        }
        Ok(())
    }

    fn skip_hashed(&mut self, mut n: u64) -> Result<(), String> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(64 << 10, 0);
        let mut r = Ok(());
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            r = self.read_hashed(&mut buf[..k]);
            if r.is_err() {
                break;
            }
            n -= k as u64;
        }
        self.scratch = buf;
        r
    }

    /// The end of the chunk: nothing past its declared size, and its CRC.
    fn finish(&mut self) -> Result<(), String> {
        let mut extra = [0u8; 1];
        if read_full(&mut self.r, &mut extra).map_err(|e| format!("decompressing: {e}"))? > 0 {
            return Err(format!(
                "decompresses to more than the {} bytes its header says",
                self.size
            ));
        }
        let got = self.crc.clone().finalize();
        if self.want_crc != 0 && got != self.want_crc {
            return Err(format!(
                "CRC mismatch (stored {:08x}, computed {got:08x})",
                self.want_crc
            ));
        }
        Ok(())
    }

    /// The next record. `keep(op, prefix)` is asked, with the first bytes of the body,
    /// whether the whole body is wanted; if not, the rest is streamed past (still hashed).
    /// `None` at the end of a chunk that checked out; an error ends the walk.
    pub(crate) fn next_record(
        &mut self,
        keep: impl FnOnce(u8, &[u8]) -> bool,
    ) -> Option<Result<StreamRecord, String>> {
        if self.done {
            return None;
        }
        let r = (|| {
            if self.pos == self.size {
                self.done = true;
                return self.finish().map(|()| None);
            }
            let at = self.pos;
            let rest = self.size - self.pos;
            if rest < 9 {
                return Err(format!("record header at chunk offset {at} is cut short"));
            }
            let mut head = [0u8; 9];
            self.read_hashed(&mut head)?;
            let op = head[0];
            let len = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
            if len > rest - 9 {
                return Err(format!(
                    "record at chunk offset {at} claims {len} bytes, {} remain",
                    rest - 9
                ));
            }
            let pre = len.min(RECORD_PREFIX);
            let mut body = vec![0u8; pre as usize];
            self.read_hashed(&mut body)?;
            let complete = if len > pre && keep(op, &body) {
                if len > MAX_RECORD_IN_MEMORY {
                    return Err(format!(
                        "record at chunk offset {at} is {len} bytes, over the {} MiB one record may take in memory",
                        MAX_RECORD_IN_MEMORY >> 20
                    ));
                }
                body.resize(len as usize, 0);
                self.read_hashed(&mut body[pre as usize..])?;
                true
            } else if len > pre {
                self.skip_hashed(len - pre)?;
                false
            } else {
                true
            };
            Ok(Some(StreamRecord {
                at,
                op,
                len,
                body,
                complete,
            }))
        })();
        match r {
            Ok(Some(rec)) => Some(Ok(rec)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Channel id, sequence, log time and publish time of a Message record's first 22 bytes.
pub(crate) fn message_header(body: &[u8]) -> Option<mcap::records::MessageHeader> {
    if body.len() < 22 {
        return None;
    }
    Some(mcap::records::MessageHeader {
        channel_id: u16::from_le_bytes([body[0], body[1]]),
        sequence: u32::from_le_bytes(body[2..6].try_into().ok()?),
        log_time: u64::from_le_bytes(body[6..14].try_into().ok()?),
        publish_time: u64::from_le_bytes(body[14..22].try_into().ok()?),
    })
}

/// Walks `(offset, opcode, body)` of the records in a buffer, checking every length against
/// what remains.
pub(crate) struct RecordWalker<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> RecordWalker<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        RecordWalker { buf, off: 0 }
    }
}

impl<'a> Iterator for RecordWalker<'a> {
    type Item = Result<(usize, u8, &'a [u8]), String>;
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.len() - self.off;
        if rest == 0 {
            return None;
        }
        let at = self.off;
        if rest < 9 {
            self.off = self.buf.len();
            return Some(Err(format!(
                "record header at chunk offset {at} is cut short"
            )));
        }
        let op = self.buf[at];
        let len = u64::from_le_bytes(self.buf[at + 1..at + 9].try_into().expect("8 bytes"));
        if len > (rest - 9) as u64 {
            self.off = self.buf.len();
            return Some(Err(format!(
                "record at chunk offset {at} claims {len} bytes, {} remain",
                rest - 9
            )));
        }
        let body = &self.buf[at + 9..at + 9 + len as usize];
        self.off = at + 9 + len as usize;
        Some(Ok((at, op, body)))
    }
}

pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `mcap::parse_record`, after checking every length field inside the record body against
/// the bytes that remain. The mcap crate sizes its buffers from those fields before reading
/// (a corrupted string length of 0xFFFFFFFF in a Header record allocated 4 GiB: found by the
/// `mcap_input` fuzz target), so bytes from a file never reach it unchecked.
pub fn checked_parse_record(op: u8, body: &[u8]) -> Result<mcap::records::Record<'_>, RecordError> {
    check_record_lengths(op, body)
        .map_err(|what| RecordError(format!("record 0x{op:02x}: {what}")))?;
    mcap::parse_record(op, body).map_err(|e| RecordError(e.to_string()))
}

/// Why a record body could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

/// Walk the length-prefixed fields of a record (MCAP spec layouts) without allocating.
pub fn check_record_lengths(op: u8, body: &[u8]) -> Result<(), String> {
    struct C<'a>(&'a [u8], usize);
    impl C<'_> {
        fn take(&mut self, n: u64, what: &str) -> Result<(), String> {
            let left = (self.0.len() - self.1) as u64;
            if n > left {
                return Err(format!(
                    "{what} length {n} at body offset {} exceeds the {left} bytes left",
                    self.1
                ));
            }
            self.1 += n as usize;
            Ok(())
        }
        fn int(&mut self, n: usize, what: &str) -> Result<u64, String> {
            let start = self.1;
            self.take(n as u64, what)?;
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(u64::from_le_bytes(b))
        }
        fn string(&mut self, what: &str) -> Result<(), String> {
            let n = self.int(4, what)?;
            self.take(n, what)
        }
        fn prefixed32(&mut self, what: &str) -> Result<(), String> {
            self.string(what)
        }
        fn prefixed64(&mut self, what: &str) -> Result<(), String> {
            let n = self.int(8, what)?;
            self.take(n, what)
        }
        fn string_map(&mut self, what: &str) -> Result<(), String> {
            let n = self.int(4, what)?;
            let start = self.1;
            self.take(n, what)?;
            let mut inner = C(&self.0[start..start + n as usize], 0);
            while inner.1 < inner.0.len() {
                inner.string(what)?;
                inner.string(what)?;
            }
            Ok(())
        }
    }
    let mut c = C(body, 0);
    match op {
        0x01 => {
            c.string("profile")?;
            c.string("library")?;
        }
        0x03 => {
            c.int(2, "schema id")?;
            c.string("schema name")?;
            c.string("schema encoding")?;
            c.prefixed32("schema data")?;
        }
        0x04 => {
            c.take(4, "channel ids")?;
            c.string("topic")?;
            c.string("message encoding")?;
            c.string_map("channel metadata")?;
        }
        0x06 => {
            c.int(8, "chunk times")?;
            c.int(8, "chunk times")?;
            c.int(8, "uncompressed size")?;
            c.int(4, "crc")?;
            c.string("compression")?;
            c.prefixed64("chunk records")?;
        }
        0x07 => {
            c.int(2, "channel id")?;
            c.prefixed32("message index entries")?;
        }
        0x08 => {
            for _ in 0..4 {
                c.int(8, "chunk index")?;
            }
            c.prefixed32("message index offsets")?;
            c.int(8, "message index length")?;
            c.string("compression")?;
        }
        0x09 => {
            c.take(16, "attachment times")?;
            c.string("attachment name")?;
            c.string("media type")?;
            c.prefixed64("attachment data")?;
        }
        0x0A => {
            c.int(8, "offset")?;
            c.int(8, "length")?;
            c.int(8, "log time")?;
            c.int(8, "create time")?;
            c.int(8, "data size")?;
            c.string("attachment name")?;
            c.string("media type")?;
        }
        0x0B => {
            c.take(8 + 2 + 4 * 4 + 16, "statistics")?;
            c.prefixed32("channel message counts")?;
        }
        0x0C => {
            c.string("metadata name")?;
            c.string_map("metadata")?;
        }
        0x0D => {
            c.int(8, "offset")?;
            c.int(8, "length")?;
            c.string("metadata name")?;
        }
        _ => {}
    }
    Ok(())
}
