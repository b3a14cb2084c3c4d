//! The episode file's MCAP records, written by our own code so that closed chunks are
//! compressed on a small pool of threads, off the writer thread, and written in order.
//!
//! The `mcap` crate (which every reader here still uses) compresses a chunk inside its
//! writer's `finish_chunk`, on the calling thread, and has no way to append a chunk that was
//! compressed elsewhere (a private record must have an opcode ≥ 0x80), nor to add one to its
//! summary. So this module encodes the records itself, per the MCAP specification
//! (<https://mcap.dev/spec>), with the layout the crate writes: a Header; Schema, Channel and
//! Metadata records in the data section; one Chunk per channel (each followed by its
//! MessageIndex); DataEnd; a summary of Schema, Channel, Statistics, ChunkIndex and
//! MetadataIndex groups with a SummaryOffset per group; the Footer and the closing magic.
//!
//! Every record boundary the writer has flushed is a point where the file can be cut and
//! closed (see `writer::close_at`): a chunk is written whole or not at all.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Record opcodes (MCAP specification, "Records").
pub mod op {
    pub const HEADER: u8 = 0x01;
    pub const FOOTER: u8 = 0x02;
    pub const SCHEMA: u8 = 0x03;
    pub const CHANNEL: u8 = 0x04;
    pub const MESSAGE: u8 = 0x05;
    pub const CHUNK: u8 = 0x06;
    pub const MESSAGE_INDEX: u8 = 0x07;
    pub const CHUNK_INDEX: u8 = 0x08;
    pub const STATISTICS: u8 = 0x0B;
    pub const METADATA: u8 = 0x0C;
    pub const METADATA_INDEX: u8 = 0x0D;
    pub const SUMMARY_OFFSET: u8 = 0x0E;
    pub const DATA_END: u8 = 0x0F;
}

/// How one chunk's records are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Lz4,
    Zstd,
}

impl Codec {
    /// The name the Chunk record carries ("" = uncompressed).
    pub fn mcap_name(self) -> &'static str {
        match self {
            Codec::None => "",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// A channel's compression: a fixed codec, or `Measured`: lz4 while it pays (a probe chunk
/// every [`PROBE_EVERY`] chunks shrinks by at least `min_ratio`), otherwise none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChannelCodec {
    Fixed(Codec),
    Measured { min_ratio: f64 },
}

/// Under a measured policy, one chunk in this many is compressed with lz4 to measure again
/// what it saves (a scene's content changes: a lens cap, a dark room).
pub const PROBE_EVERY: u64 = 16;

/// A little-endian record body being encoded.
#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A String: uint32 byte length, then UTF-8.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// Bytes with a uint32 length prefix (Schema data).
    pub fn bytes32(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    /// A Map<string, string>: uint32 byte length of the entries, then key/value pairs.
    pub fn map_str(&mut self, m: &BTreeMap<String, String>) -> &mut Self {
        let mut inner = Enc::default();
        for (k, v) in m {
            inner.str(k).str(v);
        }
        self.bytes32(&inner.0)
    }
    /// A Map<uint16, uint64>.
    pub fn map_u16_u64(&mut self, m: &BTreeMap<u16, u64>) -> &mut Self {
        let mut inner = Enc::default();
        for (k, v) in m {
            inner.u16(*k).u64(*v);
        }
        self.bytes32(&inner.0)
    }
}

/// One record: opcode, uint64 body length, body.
pub fn record(opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    out.push(opcode);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The Metadata record.
pub fn metadata_record(name: &str, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut e = Enc::default();
    e.str(name).map_str(metadata);
    record(op::METADATA, &e.0)
}

/// A chunk being filled: the uncompressed Message records of one channel.
struct OpenChunk {
    records: Vec<u8>,
    start: u64,
    end: u64,
    /// (log_time, offset of the Message record in `records`)
    index: Vec<(u64, u64)>,
}

/// A closed chunk, handed to a compression worker.
struct Job {
    channel: u16,
    codec: Codec,
    chunk: OpenChunk,
    done: mpsc::Sender<Result<Done, String>>,
}

/// A compressed chunk, encoded and ready to append: the Chunk record's header, its records
/// (compressed, or the uncompressed ones), and the MessageIndex record after it.
struct Done {
    channel: u16,
    codec: Codec,
    header: Vec<u8>,
    body: Vec<u8>,
    message_index: Vec<u8>,
    start: u64,
    end: u64,
    uncompressed: u64,
    /// The uncompressed buffer, back for reuse.
    spare: Option<Vec<u8>>,
    /// CRC of header, body and message index, for the data section's CRC.
    crc: crc32fast::Hasher,
}

fn compress(job: Job) -> Result<Done, String> {
    let Job {
        channel,
        codec,
        chunk,
        ..
    } = job;
    let crc = crc32fast::hash(&chunk.records);
    let uncompressed = chunk.records.len() as u64;
    // the data section's CRC over the stored body: for an uncompressed chunk that is the
    // records' own CRC, not computed twice
    let (body, spare) = match codec {
        Codec::None => (chunk.records, None),
        Codec::Lz4 => {
            let out = Vec::with_capacity(chunk.records.len() / 2 + 64);
            // No block checksum, as the mcap crate writes it (some MCAP tools reject lz4
            // block checksums), and no content checksum either: the Chunk record carries the
            // CRC of the records, which every reader checks; an XXH32 over the same bytes
            // cost ~1/4 of lz4's own time.
            let mut enc = lz4::EncoderBuilder::new()
                .level(0)
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(out)
                .map_err(|e| format!("lz4: {e}"))?;
            enc.write_all(&chunk.records)
                .map_err(|e| format!("lz4: {e}"))?;
            let (out, r) = enc.finish();
            r.map_err(|e| format!("lz4: {e}"))?;
            (out, Some(chunk.records))
        }
        Codec::Zstd => {
            let out = zstd::bulk::compress(&chunk.records, 0).map_err(|e| format!("zstd: {e}"))?;
            (out, Some(chunk.records))
        }
    };
    let mut h = Enc::default();
    h.u64(chunk.start)
        .u64(chunk.end)
        .u64(uncompressed)
        .u32(crc)
        .str(codec.mcap_name())
        .u64(body.len() as u64);
    let mut header = Vec::with_capacity(h.0.len() + 9);
    header.push(op::CHUNK);
    header.extend_from_slice(&((h.0.len() + body.len()) as u64).to_le_bytes());
    header.extend_from_slice(&h.0);
    let mut mi = Enc::default();
    mi.u16(channel).u32((chunk.index.len() * 16) as u32);
    for (t, off) in &chunk.index {
        mi.u64(*t).u64(*off);
    }
    let message_index = record(op::MESSAGE_INDEX, &mi.0);
    let mut data_crc = crc32fast::Hasher::new();
    data_crc.update(&header);
    let body_crc = match codec {
        Codec::None => crc32fast::Hasher::new_with_initial_len(crc, uncompressed),
        _ => {
            let mut h = crc32fast::Hasher::new();
            h.update(&body);
            h
        }
    };
    data_crc.combine(&body_crc);
    data_crc.update(&message_index);
    Ok(Done {
        channel,
        codec,
        header,
        body,
        message_index,
        crc: data_crc,
        start: chunk.start,
        end: chunk.end,
        uncompressed,
        spare,
    })
}

/// Compression workers: closed chunks in, compressed chunks out (each on its own reply
/// channel, so the writer takes them back in the order it closed them).
struct Pool {
    tx: Option<mpsc::Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(n: usize) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..n.max(1) {
            let rx = rx.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("compress-{i}"))
                    .spawn(move || {
                        loop {
                            let job = {
                                let g = rx.lock().unwrap_or_else(|e| e.into_inner());
                                g.recv()
                            };
                            let Ok(job) = job else { break };
                            let done = job.done.clone();
                            // the writer may have gone (an error): nobody to tell
                            let _ = done.send(compress(job));
                        }
                    })?,
            );
        }
        Ok(Pool {
            tx: Some(tx),
            workers,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// What waits to be appended, in file order.
enum Pending {
    Chunk {
        rx: mpsc::Receiver<Result<Done, String>>,
        bytes: usize,
    },
    /// A data-section record; `Some(name)` for a Metadata record (indexed in the summary).
    Record {
        bytes: Vec<u8>,
        metadata: Option<String>,
    },
}

/// What the writer measured of one channel's chunks.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ChannelCompression {
    /// The codec of its last chunk.
    pub codec: Option<Codec>,
    pub chunks: u64,
    pub uncompressed_bytes: u64,
    pub stored_bytes: u64,
    /// Ratio of the last lz4 probe under a measured policy.
    pub probe_ratio: Option<f64>,
}

struct ChannelState {
    codec: ChannelCodec,
    open: Option<OpenChunk>,
    count: u64,
    stats: ChannelCompression,
    /// Measured policy: lz4 pays (by the last probe).
    lz4_pays: bool,
    closed: u64,
    /// Bytes of its last chunk (the next one's capacity).
    last_len: usize,
}

/// Options of the file writer.
#[derive(Clone, Debug)]
pub struct FileOptions {
    pub profile: String,
    pub library: String,
    /// Close a channel's chunk once it holds this many uncompressed bytes.
    pub chunk_size: u64,
    /// Compression threads.
    pub workers: usize,
    /// Bytes of closed chunks waiting for or in compression before the writer waits.
    pub max_in_flight: usize,
}

/// The MCAP file being written. `W` is the file (behind a buffer).
pub struct McapFile<W: Write> {
    out: W,
    /// Bytes appended to `out` (the file position: the file is written from its start).
    pos: u64,
    opts: FileOptions,
    pool: Pool,
    pending: VecDeque<Pending>,
    in_flight: usize,
    schemas: Vec<(u16, Vec<u8>)>,
    channels: BTreeMap<u16, (Vec<u8>, ChannelState)>,
    next_schema: u16,
    next_channel: u16,
    chunk_indexes: Vec<Vec<u8>>,
    metadata_indexes: Vec<Vec<u8>>,
    metadata_count: u32,
    message_bounds: Option<(u64, u64)>,
    spare: Vec<Vec<u8>>,
    /// Set by a failed write: nothing more is written.
    failed: bool,
    /// CRC of the data section so far (chunks' CRCs are computed by the workers and
    /// combined here).
    data_crc: crc32fast::Hasher,
}

fn io_other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl<W: Write> McapFile<W> {
    /// Start the file: the magic and the Header record.
    pub fn new(out: W, opts: FileOptions) -> std::io::Result<Self> {
        let pool = Pool::new(opts.workers)?;
        let mut f = McapFile {
            out,
            pos: 0,
            opts,
            pool,
            pending: VecDeque::new(),
            in_flight: 0,
            schemas: Vec::new(),
            channels: BTreeMap::new(),
            next_schema: 1,
            next_channel: 0,
            chunk_indexes: Vec::new(),
            metadata_indexes: Vec::new(),
            metadata_count: 0,
            message_bounds: None,
            spare: Vec::new(),
            failed: false,
            data_crc: crc32fast::Hasher::new(),
        };
        f.put(mcap::MAGIC)?;
        let mut h = Enc::default();
        h.str(&f.opts.profile.clone()).str(&f.opts.library.clone());
        let rec = record(op::HEADER, &h.0);
        f.put(&rec)?;
        Ok(f)
    }

    /// Append bytes of the data section (their CRC joins the data section's).
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.put_raw(b)?;
        self.data_crc.update(b);
        Ok(())
    }

    /// Append bytes whose CRC is accounted for elsewhere (a chunk, the summary).
    fn put_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        if self.failed {
            return Err(io_other("the episode file failed earlier"));
        }
        match self.out.write_all(b) {
            Ok(()) => {
                self.pos += b.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// The file position after everything appended so far (not what still waits).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Append a data-section record after everything before it.
    fn append_record(&mut self, bytes: Vec<u8>, metadata: Option<String>) -> std::io::Result<()> {
        self.pending.push_back(Pending::Record { bytes, metadata });
        self.drain(false)
    }

    pub fn add_schema(&mut self, name: &str, encoding: &str, data: &[u8]) -> std::io::Result<u16> {
        let id = self.next_schema;
        self.next_schema += 1;
        let mut e = Enc::default();
        e.u16(id).str(name).str(encoding).bytes32(data);
        let rec = record(op::SCHEMA, &e.0);
        self.schemas.push((id, rec.clone()));
        self.append_record(rec, None)?;
        Ok(id)
    }

    pub fn add_channel(
        &mut self,
        schema_id: u16,
        topic: &str,
        message_encoding: &str,
        metadata: &BTreeMap<String, String>,
        codec: ChannelCodec,
    ) -> std::io::Result<u16> {
        let id = self.next_channel;
        self.next_channel = self
            .next_channel
            .checked_add(1)
            .ok_or_else(|| io_other("more than 65535 channels"))?;
        let mut e = Enc::default();
        e.u16(id)
            .u16(schema_id)
            .str(topic)
            .str(message_encoding)
            .map_str(metadata);
        let rec = record(op::CHANNEL, &e.0);
        self.channels.insert(
            id,
            (
                rec.clone(),
                ChannelState {
                    codec,
                    open: None,
                    count: 0,
                    stats: ChannelCompression::default(),
                    lz4_pays: true,
                    closed: 0,
                    last_len: 0,
                },
            ),
        );
        self.append_record(rec, None)?;
        Ok(id)
    }

    pub fn write_metadata(
        &mut self,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> std::io::Result<()> {
        self.append_record(metadata_record(name, metadata), Some(name.to_string()))
    }

    /// Append a message to its channel's open chunk; a full chunk goes to compression.
    pub fn write_message(
        &mut self,
        channel: u16,
        sequence: u32,
        log_time: u64,
        publish_time: u64,
        data: &[u8],
    ) -> std::io::Result<()> {
        if self.failed {
            return Err(io_other("the episode file failed earlier"));
        }
        let chunk_size = self.opts.chunk_size;
        let spare = &mut self.spare;
        let Some((_, ch)) = self.channels.get_mut(&channel) else {
            return Err(io_other(format!("message on unknown channel {channel}")));
        };
        let last_len = ch.last_len;
        let c = ch.open.get_or_insert_with(|| {
            let mut records = spare.pop().unwrap_or_default();
            records.clear();
            // as large as this channel's last chunk: no reallocation while it fills
            records.reserve(last_len);
            OpenChunk {
                records,
                start: log_time,
                end: log_time,
                index: Vec::new(),
            }
        });
        c.start = c.start.min(log_time);
        c.end = c.end.max(log_time);
        c.index.push((log_time, c.records.len() as u64));
        c.records.push(op::MESSAGE);
        c.records
            .extend_from_slice(&((22 + data.len()) as u64).to_le_bytes());
        c.records.extend_from_slice(&channel.to_le_bytes());
        c.records.extend_from_slice(&sequence.to_le_bytes());
        c.records.extend_from_slice(&log_time.to_le_bytes());
        c.records.extend_from_slice(&publish_time.to_le_bytes());
        c.records.extend_from_slice(data);
        ch.count += 1;
        self.message_bounds = Some(match self.message_bounds {
            None => (log_time, log_time),
            Some((a, b)) => (a.min(log_time), b.max(log_time)),
        });
        if c.records.len() as u64 >= chunk_size {
            self.close_chunk(channel)?;
        }
        Ok(())
    }

    /// Close a channel's open chunk and hand it to the pool.
    fn close_chunk(&mut self, channel: u16) -> std::io::Result<()> {
        let Some((_, ch)) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let Some(chunk) = ch.open.take() else {
            return Ok(());
        };
        ch.last_len = chunk.records.len();
        let codec = match ch.codec {
            ChannelCodec::Fixed(c) => c,
            ChannelCodec::Measured { .. } => {
                if ch.lz4_pays || ch.closed % PROBE_EVERY == 0 {
                    Codec::Lz4
                } else {
                    Codec::None
                }
            }
        };
        ch.closed += 1;
        let bytes = chunk.records.len();
        let (tx, rx) = mpsc::channel();
        let job = Job {
            channel,
            codec,
            chunk,
            done: tx,
        };
        self.pool
            .tx
            .as_ref()
            .expect("the pool lives as long as the file")
            .send(job)
            .map_err(|_| io_other("the compression workers stopped"))?;
        self.in_flight += bytes;
        self.pending.push_back(Pending::Chunk { rx, bytes });
        // wait while too much is in flight; otherwise append what is ready
        self.drain(false)?;
        while self.in_flight > self.opts.max_in_flight {
            self.drain_one(true)?;
        }
        Ok(())
    }

    /// Append the pending items at the head that are ready (all of them, waiting, if `wait`).
    fn drain(&mut self, wait: bool) -> std::io::Result<()> {
        while !self.pending.is_empty() {
            if !self.drain_one(wait)? {
                break;
            }
        }
        Ok(())
    }

    /// Append the head item if it is ready (or wait for it). Returns whether it did.
    fn drain_one(&mut self, wait: bool) -> std::io::Result<bool> {
        let Some(head) = self.pending.front() else {
            return Ok(false);
        };
        let done = match head {
            Pending::Record { .. } => None,
            Pending::Chunk { rx, .. } => {
                let r = if wait {
                    rx.recv()
                        .map_err(|_| "a compression worker stopped".to_string())
                } else {
                    match rx.try_recv() {
                        Ok(r) => Ok(r),
                        Err(mpsc::TryRecvError::Empty) => return Ok(false),
                        Err(mpsc::TryRecvError::Disconnected) => {
                            Err("a compression worker stopped".to_string())
                        }
                    }
                };
                match r.and_then(|x| x) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.failed = true;
                        return Err(io_other(format!("compressing a chunk failed: {e}")));
                    }
                }
            }
        };
        match (self.pending.pop_front().expect("front exists"), done) {
            (Pending::Record { bytes, metadata }, _) => {
                let offset = self.pos;
                self.put(&bytes)?;
                if let Some(name) = metadata {
                    self.metadata_count += 1;
                    let mut e = Enc::default();
                    e.u64(offset).u64(bytes.len() as u64).str(&name);
                    self.metadata_indexes.push(record(op::METADATA_INDEX, &e.0));
                }
            }
            (Pending::Chunk { bytes, .. }, Some(d)) => {
                self.in_flight -= bytes;
                self.append_chunk(d)?;
            }
            (Pending::Chunk { .. }, None) => unreachable!("a chunk's result was taken above"),
        }
        Ok(true)
    }

    fn append_chunk(&mut self, mut d: Done) -> std::io::Result<()> {
        let chunk_start = self.pos;
        self.put_raw(&d.header)?;
        self.put_raw(&d.body)?;
        let chunk_length = self.pos - chunk_start;
        let mi_offset = self.pos;
        self.put_raw(&d.message_index)?;
        self.data_crc.combine(&d.crc);
        let mut e = Enc::default();
        e.u64(d.start)
            .u64(d.end)
            .u64(chunk_start)
            .u64(chunk_length)
            .map_u16_u64(&BTreeMap::from([(d.channel, mi_offset)]))
            .u64(d.message_index.len() as u64)
            .str(d.codec.mcap_name())
            .u64(d.body.len() as u64)
            .u64(d.uncompressed);
        self.chunk_indexes.push(record(op::CHUNK_INDEX, &e.0));
        if let Some((_, ch)) = self.channels.get_mut(&d.channel) {
            let s = &mut ch.stats;
            s.codec = Some(d.codec);
            s.chunks += 1;
            s.uncompressed_bytes += d.uncompressed;
            s.stored_bytes += d.body.len() as u64;
            if let ChannelCodec::Measured { min_ratio } = ch.codec
                && d.codec == Codec::Lz4
            {
                let ratio = d.uncompressed as f64 / d.body.len().max(1) as f64;
                s.probe_ratio = Some(ratio);
                ch.lz4_pays = ratio >= min_ratio;
            }
        }
        // keep a few buffers for the next chunks (a chunk's worth each)
        let mut recycle = |v: Vec<u8>| {
            if self.spare.len() < 8 {
                self.spare.push(v);
            }
        };
        if let Some(s) = d.spare.take() {
            recycle(s);
        } else if d.codec == Codec::None {
            recycle(std::mem::take(&mut d.body));
        }
        Ok(())
    }

    /// Close every open chunk, append everything pending (waiting for the pool) and flush
    /// the buffer to the OS. Afterwards [`Self::position`] is a record boundary with
    /// everything before it complete.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            self.close_chunk(id)?;
        }
        self.drain(true)?;
        if self.failed {
            return Err(io_other("the episode file failed earlier"));
        }
        self.out.flush().inspect_err(|_| self.failed = true)
    }

    /// Per channel: what its chunks were compressed with, and by how much.
    pub fn compression(&self) -> BTreeMap<u16, ChannelCompression> {
        self.channels
            .iter()
            .map(|(id, (_, c))| (*id, c.stats.clone()))
            .collect()
    }

    /// Flush, then DataEnd, the summary section, the Footer and the closing magic. Nothing
    /// can be written after it.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.flush()?;
        // the data section's CRC: every byte from the magic to the end of the last record
        let mut e = Enc::default();
        e.u32(self.data_crc.clone().finalize());
        let rec = record(op::DATA_END, &e.0);
        self.put_raw(&rec)?;

        let summary_start = self.pos;
        let mut summary = Vec::new();
        let mut offsets: Vec<(u8, u64, u64)> = Vec::new();
        let mut group = |opcode: u8, recs: &mut dyn Iterator<Item = &Vec<u8>>| {
            let start = summary_start + summary.len() as u64;
            let mut any = false;
            for r in recs {
                summary.extend_from_slice(r);
                any = true;
            }
            if any {
                let end = summary_start + summary.len() as u64;
                offsets.push((opcode, start, end - start));
            }
        };
        let schemas: Vec<Vec<u8>> = self.schemas.iter().map(|(_, r)| r.clone()).collect();
        group(op::SCHEMA, &mut schemas.iter());
        let channels: Vec<Vec<u8>> = self.channels.values().map(|(r, _)| r.clone()).collect();
        group(op::CHANNEL, &mut channels.iter());
        let counts: BTreeMap<u16, u64> = self
            .channels
            .iter()
            .map(|(id, (_, c))| (*id, c.count))
            .collect();
        let (t0, t1) = self.message_bounds.unwrap_or((0, 0));
        let mut st = Enc::default();
        st.u64(counts.values().sum())
            .u16(self.schemas.len() as u16)
            .u32(self.channels.len() as u32)
            .u32(0) // attachments
            .u32(self.metadata_count)
            .u32(self.chunk_indexes.len() as u32)
            .u64(t0)
            .u64(t1)
            .map_u16_u64(&counts);
        let stats = [record(op::STATISTICS, &st.0)];
        group(op::STATISTICS, &mut stats.iter());
        group(op::CHUNK_INDEX, &mut self.chunk_indexes.iter());
        group(op::METADATA_INDEX, &mut self.metadata_indexes.iter());
        let summary_offset_start = summary_start + summary.len() as u64;
        for (opcode, start, len) in offsets {
            let mut e = Enc::default();
            e.u8(opcode).u64(start).u64(len);
            summary.extend_from_slice(&record(op::SUMMARY_OFFSET, &e.0));
        }
        // Footer; its CRC covers the summary section and the footer up to the CRC
        summary.push(op::FOOTER);
        summary.extend_from_slice(&20u64.to_le_bytes());
        summary.extend_from_slice(&summary_start.to_le_bytes());
        summary.extend_from_slice(&summary_offset_start.to_le_bytes());
        let crc = crc32fast::hash(&summary);
        summary.extend_from_slice(&crc.to_le_bytes());
        summary.extend_from_slice(mcap::MAGIC);
        self.put_raw(&summary)?;
        self.failed = true; // finished: no more records
        self.out.flush()
    }

    /// The file, after [`Self::finish`] (the compression threads are stopped).
    pub fn into_inner(self) -> W {
        let McapFile { out, pool, .. } = self;
        drop(pool);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(chunk_size: u64) -> FileOptions {
        FileOptions {
            profile: "ros2".into(),
            library: "test".into(),
            chunk_size,
            workers: 2,
            max_in_flight: 1 << 20,
        }
    }

    /// Every message, read back by the `mcap` crate both ways: the linear stream and the
    /// summary's chunk and message indexes.
    #[test]
    fn the_mcap_crate_reads_what_we_write() {
        let mut f = McapFile::new(Vec::new(), opts(4096)).unwrap();
        let s = f
            .add_schema("std_msgs/msg/String", "ros2msg", b"string data")
            .unwrap();
        let md = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let codecs = [
            ChannelCodec::Fixed(Codec::None),
            ChannelCodec::Fixed(Codec::Lz4),
            ChannelCodec::Fixed(Codec::Zstd),
            ChannelCodec::Measured { min_ratio: 1.5 },
        ];
        let chans: Vec<u16> = codecs
            .iter()
            .enumerate()
            .map(|(i, c)| f.add_channel(s, &format!("/t{i}"), "cdr", &md, *c).unwrap())
            .collect();
        f.write_metadata("demotape.episode", &md).unwrap();
        let mut expect = Vec::new();
        for k in 0..2000u64 {
            let ch = chans[(k % 4) as usize];
            let data: Vec<u8> = (0..(k % 97) as u8).map(|b| b.wrapping_mul(7)).collect();
            f.write_message(ch, k as u32, 1000 + k, 2000 + k, &data)
                .unwrap();
            expect.push((ch, k as u32, 1000 + k, data));
            if k % 500 == 499 {
                f.flush().unwrap();
                f.write_metadata("demotape.labels", &md).unwrap();
            }
        }
        let comp = f.compression();
        f.finish().unwrap();
        let bytes = f.into_inner();

        let got: Vec<_> = mcap::MessageStream::new(&bytes)
            .unwrap()
            .map(|m| {
                let m = m.unwrap();
                (m.channel.id, m.sequence, m.log_time, m.data.to_vec())
            })
            .collect();
        let mut sorted = got.clone();
        sorted.sort_by_key(|m| m.2);
        assert_eq!(sorted, expect, "every message, once, intact");

        // the data section's CRC (in DataEnd, just before the summary) covers every byte before it
        let n = bytes.len();
        let summary_start = u64::from_le_bytes(bytes[n - 28..n - 20].try_into().unwrap()) as usize;
        let data_end = summary_start - 13;
        assert_eq!(bytes[data_end], op::DATA_END);
        let stored = u32::from_le_bytes(bytes[data_end + 9..data_end + 13].try_into().unwrap());
        assert_eq!(stored, crc32fast::hash(&bytes[..data_end]));
        let summary = mcap::Summary::read(&bytes).unwrap().expect("a summary");
        let st = summary.stats.as_ref().unwrap();
        assert_eq!(st.message_count, 2000);
        assert_eq!(st.channel_count, 4);
        assert_eq!(st.metadata_count, 5);
        assert_eq!((st.message_start_time, st.message_end_time), (1000, 2999));
        assert_eq!(st.chunk_count as usize, summary.chunk_indexes.len());
        assert_eq!(summary.metadata_indexes.len(), 5);
        let mut indexed = 0;
        for ci in &summary.chunk_indexes {
            let idx = summary.read_message_indexes(&bytes, ci).unwrap();
            for (ch, entries) in &idx {
                for e in entries {
                    let m = summary.seek_message(&bytes, ci, e).unwrap();
                    assert_eq!(m.channel.id, ch.id);
                    assert_eq!(m.log_time, e.log_time);
                    indexed += 1;
                }
            }
        }
        assert_eq!(indexed, 2000, "every message through the indexes");
        // the compressed channels' chunks carry their codec
        assert!(
            summary
                .chunk_indexes
                .iter()
                .any(|c| c.compression == "zstd")
        );
        assert!(summary.chunk_indexes.iter().any(|c| c.compression == "lz4"));
        assert!(
            summary
                .chunk_indexes
                .iter()
                .any(|c| c.compression.is_empty())
        );
        assert_eq!(comp[&chans[2]].codec, Some(Codec::Zstd));
        let names: Vec<&str> = summary
            .metadata_indexes
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names.iter().filter(|n| **n == "demotape.labels").count(), 4);
        for m in &summary.metadata_indexes {
            let rec = &bytes[m.offset as usize..(m.offset + m.length) as usize];
            assert_eq!(
                rec[0],
                op::METADATA,
                "the index points at a Metadata record"
            );
        }
    }

    /// Under the measured policy incompressible data leaves lz4 after its probe, and data that
    /// compresses keeps it.
    #[test]
    fn measured_policy_follows_what_lz4_saves() {
        use rand::{RngCore, SeedableRng};
        let mut f = McapFile::new(Vec::new(), opts(64 * 1024)).unwrap();
        let s = f.add_schema("x", "ros2msg", b"").unwrap();
        let m = ChannelCodec::Measured { min_ratio: 1.5 };
        let noise = f
            .add_channel(s, "/noise", "cdr", &BTreeMap::new(), m)
            .unwrap();
        let flat = f
            .add_channel(s, "/flat", "cdr", &BTreeMap::new(), m)
            .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut buf = vec![0u8; 16 * 1024];
        for k in 0..400u64 {
            rng.fill_bytes(&mut buf);
            f.write_message(noise, k as u32, k, k, &buf).unwrap();
            f.write_message(flat, k as u32, k, k, &[7u8; 16 * 1024])
                .unwrap();
            if k % 50 == 0 {
                f.flush().unwrap();
            }
        }
        f.flush().unwrap();
        let c = f.compression();
        assert_eq!(c[&noise].codec, Some(Codec::None), "{:?}", c[&noise]);
        assert!(c[&noise].probe_ratio.unwrap() < 1.1);
        assert_eq!(c[&flat].codec, Some(Codec::Lz4));
        assert!(c[&flat].probe_ratio.unwrap() > 10.0);
        // the probes stay a small share of the noise channel's chunks
        f.finish().unwrap();
        let bytes = f.into_inner();
        let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
        let of_noise: Vec<_> = summary
            .chunk_indexes
            .iter()
            .filter(|ci| ci.message_index_offsets.contains_key(&noise))
            .collect();
        let lz4 = of_noise.iter().filter(|ci| ci.compression == "lz4").count();
        assert!(of_noise.len() >= 40, "{} chunks", of_noise.len());
        assert!(
            lz4 <= 1 + of_noise.len() / PROBE_EVERY as usize + 1,
            "{lz4} of {} noise chunks compressed",
            of_noise.len()
        );
    }
}
