//! `demotape inspect`: what is in an episode, and whether all of it is readable.
//!
//! The file is walked record by record from the start (not trusted from its summary), every
//! chunk is decompressed and CRC-checked, and messages are counted only from chunks that read
//! clean. A truncated or corrupted file therefore yields a precise account: each problem with
//! its byte offset, and everything that was readable. When the file is intact, the counts are
//! also checked against the summary's statistics.

use crate::mcap_io::{ChunkStream, MAGIC, checked_parse_record, message_header, read_full};
use hal::msgs::EpisodeEvent;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// A fault found in the file.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Problem {
    /// Byte offset of the record where the problem was found.
    pub offset: u64,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct ChannelInfo {
    pub id: u16,
    pub topic: String,
    pub schema: String,
    pub encoding: String,
    pub messages: u64,
    pub bytes: u64,
    pub first_log_ns: Option<u64>,
    pub last_log_ns: Option<u64>,
    /// Messages per second between the first and the last message.
    pub rate_hz: f64,
    /// Dropped samples: from the closing metadata if present, else summed drop events.
    pub drops: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip)]
    schema_id: u16,
}

/// Everything `inspect` found.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Inspection {
    pub file: PathBuf,
    pub file_bytes: u64,
    pub profile: String,
    pub library: String,
    /// Footer and end magic present, every chunk read clean, counts match the statistics.
    pub intact: bool,
    /// Messages counted in readable chunks.
    pub messages: u64,
    pub chunks: u64,
    pub bad_chunks: u64,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub duration_s: f64,
    pub channels: Vec<ChannelInfo>,
    /// Metadata records by name.
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    pub events: Vec<EventInfo>,
    pub problems: Vec<Problem>,
    /// Bytes after the last record that could be read.
    pub readable_bytes: u64,
    /// With `--resync`: per device, |online stamp − offline re-estimate|.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resync: Option<BTreeMap<String, crate::resync::ResyncStat>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventInfo {
    pub log_ns: u64,
    pub kind: String,
    pub topic: String,
    pub count: u64,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{file}: {source}")]
    Open {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not an MCAP file (bad magic at byte 0)")]
    NotMcap { file: PathBuf },
}

/// Messages (with their offset in the chunk), schemas (id, name), channels and the events
/// channel id found in one chunk.
type ChunkContents = (
    Vec<(u64, Pending)>,
    Vec<(u16, String)>,
    Vec<mcap::records::Channel>,
    Option<u16>,
);

/// A chunk's messages by their offset in it: (channel, log time).
type ChunkMessages = std::collections::HashMap<u64, (u16, u64)>;

/// A chunk as the walk found it, to check the summary's chunk index against.
struct ChunkSeen {
    record_len: u64,
    start: u64,
    end: u64,
    compression: String,
    compressed_size: u64,
    uncompressed_size: u64,
    /// Message index records that followed it: offset → (channel, record length).
    indexes: BTreeMap<u64, (u16, u64)>,
}

/// Log times at or past this (year 2262 as signed ns) are no real capture time.
const IMPLAUSIBLE_LOG_NS: u64 = 1 << 63;

struct Pending {
    channel: u16,
    log: u64,
    len: u64,
    event: Option<EventInfo>,
}

impl Inspection {
    /// Walk `path`. Errors only when the file cannot be opened or is not MCAP at all;
    /// everything else is reported in `problems`.
    pub fn run(path: &Path) -> Result<Self, InspectError> {
        let file = std::fs::File::open(path).map_err(|source| InspectError::Open {
            file: path.into(),
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut ins = Inspection {
            file: path.into(),
            file_bytes: size,
            ..Default::default()
        };
        let mut magic = [0u8; 8];
        if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(InspectError::NotMcap { file: path.into() });
        }
        let mut off = 8u64;
        let mut channels: BTreeMap<u16, ChannelInfo> = BTreeMap::new();
        let mut schemas: BTreeMap<u16, String> = BTreeMap::new();
        let mut events_channel: Option<u16> = None;
        let mut saw_footer = false;
        let mut stats_count: Option<BTreeMap<u16, u64>> = None;
        let mut body = Vec::new();
        // CRC of the data section (magic up to the Data End record), and of the summary
        // section (its first record up to the footer's summary_crc field)
        let mut data_crc = crc32fast::Hasher::new();
        data_crc.update(&magic);
        let mut in_data = true;
        let mut summary_crc = crc32fast::Hasher::new();
        let mut summary_start: Option<u64> = None;
        let mut summary_offset_start: Option<u64> = None;
        let mut chunks_seen: BTreeMap<u64, ChunkSeen> = BTreeMap::new();
        // the last chunk read clean: its offset and its messages by offset in the chunk, for
        // the message index records that follow it
        let mut last_chunk: Option<(u64, ChunkMessages)> = None;
        let mut chunk_indexes: Vec<(u64, mcap::records::ChunkIndex)> = Vec::new();
        let mut episode_end_at: Option<u64> = None;
        let mut last_chunk_bad = false;
        loop {
            let mut head = [0u8; 9];
            match read_full(&mut r, &mut head) {
                Ok(0) => break,
                Ok(n) if n < 9 => {
                    ins.problem(
                        off,
                        format!("file ends inside a record header ({n} of 9 bytes): truncated"),
                    );
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    ins.problem(off, format!("read error: {e}"));
                    break;
                }
            }
            let op = head[0];
            let len = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
            let remaining = size.saturating_sub(off + 9);
            if len > remaining {
                ins.problem(
                    off,
                    format!("record (opcode 0x{op:02x}) claims {len} bytes but only {remaining} remain: truncated or corrupt"),
                );
                break;
            }
            body.clear();
            body.resize(len as usize, 0);
            if let Err(e) = r.read_exact(&mut body) {
                ins.problem(off, format!("read error: {e}"));
                break;
            }
            const DATA_END: u8 = 0x0f;
            const FOOTER: u8 = 0x02;
            if in_data && op != DATA_END {
                data_crc.update(&head);
                data_crc.update(&body);
            } else if !in_data && op != FOOTER {
                summary_start.get_or_insert(off);
                if op == 0x0e {
                    summary_offset_start.get_or_insert(off);
                }
                summary_crc.update(&head);
                summary_crc.update(&body);
            } else if !in_data && op == FOOTER {
                summary_crc.update(&head);
                summary_crc.update(&body[..body.len().min(16)]);
            }
            let rec = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                checked_parse_record(op, &body)
            }));
            let rec = match rec {
                Ok(Ok(rec)) => rec,
                Ok(Err(e)) => {
                    ins.problem(
                        off,
                        format!("unreadable record (opcode 0x{op:02x}, {len} bytes): {e}"),
                    );
                    off += 9 + len;
                    continue;
                }
                Err(_) => {
                    ins.problem(
                        off,
                        format!("record (opcode 0x{op:02x}) crashed the parser; skipped"),
                    );
                    off += 9 + len;
                    continue;
                }
            };
            use mcap::records::Record;
            match rec {
                Record::Header(h) => {
                    ins.profile = h.profile;
                    ins.library = h.library;
                }
                Record::Schema { header, .. } => {
                    schemas.insert(header.id, header.name);
                }
                Record::Channel(c) => {
                    if c.topic == "/demotape/events" {
                        events_channel = Some(c.id);
                    }
                    channels.entry(c.id).or_insert_with(|| ChannelInfo {
                        id: c.id,
                        topic: c.topic.clone(),
                        schema_id: c.schema_id,
                        encoding: c.message_encoding.clone(),
                        metadata: c.metadata.clone(),
                        ..Default::default()
                    });
                }
                Record::Message { header, data } => {
                    let ev =
                        decode_event(events_channel, header.channel_id, header.log_time, &data);
                    commit(
                        &mut ins,
                        &mut channels,
                        Pending {
                            channel: header.channel_id,
                            log: header.log_time,
                            len: data.len() as u64,
                            event: ev,
                        },
                    );
                }
                Record::Chunk { header, data } => {
                    ins.chunks += 1;
                    let (start, end) = (header.message_start_time, header.message_end_time);
                    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                        || -> Result<ChunkContents, String> {
                            let mut pend = Vec::new();
                            let mut sch = Vec::new();
                            let mut chs = Vec::new();
                            let mut ev_ch = events_channel;
                            let mut stream = ChunkStream::new(&header, &data)?;
                            while let Some(rec) = stream.next_record(|op, pre| {
                                // whole bodies only for what is decoded: schemas, channels
                                // and our own events (message payloads are streamed past)
                                op != 0x05
                                    || (pre.len() >= 2
                                        && Some(u16::from_le_bytes([pre[0], pre[1]])) == ev_ch)
                            }) {
                                let rec = rec?;
                                let at = rec.at;
                                if rec.op == 0x05 {
                                    let h = message_header(&rec.body).ok_or_else(|| {
                                        format!("message record at chunk offset {at} is too short")
                                    })?;
                                    let ev = if rec.complete {
                                        decode_event(
                                            ev_ch,
                                            h.channel_id,
                                            h.log_time,
                                            &rec.body[22..],
                                        )
                                    } else {
                                        None
                                    };
                                    pend.push((
                                        at,
                                        Pending {
                                            channel: h.channel_id,
                                            log: h.log_time,
                                            len: rec.len - 22,
                                            event: ev,
                                        },
                                    ));
                                    continue;
                                }
                                let r = checked_parse_record(rec.op, &rec.body)
                                    .map_err(|e| format!("record at chunk offset {at}: {e}"))?;
                                match r {
                                    Record::Schema { header, .. } => {
                                        sch.push((header.id, header.name))
                                    }
                                    Record::Channel(c) => {
                                        if c.topic == "/demotape/events" {
                                            ev_ch = Some(c.id);
                                        }
                                        chs.push(c)
                                    }
                                    _ => {}
                                }
                            }
                            Ok((pend, sch, chs, ev_ch))
                        },
                    ));
                    chunks_seen.insert(
                        off,
                        ChunkSeen {
                            record_len: 9 + len,
                            start,
                            end,
                            compression: header.compression.clone(),
                            compressed_size: header.compressed_size,
                            uncompressed_size: header.uncompressed_size,
                            indexes: BTreeMap::new(),
                        },
                    );
                    last_chunk = None;
                    last_chunk_bad = !matches!(res, Ok(Ok(_)));
                    match res {
                        Ok(Ok((pend, sch, chs, ev_ch))) => {
                            let outside = pend
                                .iter()
                                .filter(|(_, p)| p.log < start || p.log > end)
                                .count();
                            if outside > 0 {
                                ins.problem(
                                    off,
                                    format!(
                                        "{outside} messages have log times outside their chunk's range ({start} .. {end} ns): the chunk header or the messages are corrupt"
                                    ),
                                );
                            }
                            last_chunk = Some((
                                off,
                                pend.iter()
                                    .map(|(at, p)| (*at, (p.channel, p.log)))
                                    .collect(),
                            ));
                            let pend: Vec<Pending> = pend.into_iter().map(|(_, p)| p).collect();
                            events_channel = ev_ch;
                            schemas.extend(sch);
                            for c in chs {
                                channels.entry(c.id).or_insert_with(|| ChannelInfo {
                                    id: c.id,
                                    topic: c.topic.clone(),
                                    schema_id: c.schema_id,
                                    encoding: c.message_encoding.clone(),
                                    metadata: c.metadata.clone(),
                                    ..Default::default()
                                });
                            }
                            for p in pend {
                                commit(&mut ins, &mut channels, p);
                            }
                        }
                        Ok(Err(e)) => {
                            ins.bad_chunks += 1;
                            ins.problem(off, format!("chunk is corrupt ({e}); its messages ({start} .. {end} ns) are lost"));
                        }
                        Err(_) => {
                            ins.bad_chunks += 1;
                            ins.problem(off, format!("chunk crashed the decoder; its messages ({start} .. {end} ns) are lost"));
                        }
                    }
                }
                Record::Metadata(m) => {
                    if m.name == "demotape.episode_end" {
                        episode_end_at = Some(off);
                    }
                    ins.metadata.insert(m.name, m.metadata);
                }
                Record::Statistics(s) => {
                    stats_count = Some(s.channel_message_counts.clone());
                }
                Record::DataEnd(d) => {
                    in_data = false;
                    let crc = data_crc.clone().finalize();
                    if d.data_section_crc != 0 && d.data_section_crc != crc {
                        ins.problem(
                            off,
                            format!(
                                "data section CRC mismatch: Data End says {:08x}, the bytes give {crc:08x}",
                                d.data_section_crc
                            ),
                        );
                    }
                }
                Record::MessageIndex(mi) => match &last_chunk {
                    Some((chunk_at, msgs)) => {
                        let bad = mi
                            .records
                            .iter()
                            .filter(|e| msgs.get(&e.offset) != Some(&(mi.channel_id, e.log_time)))
                            .count();
                        let want = msgs.values().filter(|(c, _)| *c == mi.channel_id).count();
                        if bad > 0 || want != mi.records.len() {
                            ins.problem(
                                off,
                                format!(
                                    "message index for channel {} of the chunk at byte {chunk_at} is wrong: {bad} of {} entries point at no such message, and the chunk holds {want} messages of that channel",
                                    mi.channel_id,
                                    mi.records.len()
                                ),
                            );
                        }
                        if let Some(c) = chunks_seen.get_mut(chunk_at) {
                            c.indexes.insert(off, (mi.channel_id, 9 + len));
                        }
                    }
                    None => {
                        // (after a corrupt chunk its indexes are expected: already reported)
                        if !last_chunk_bad {
                            ins.problem(
                                off,
                                "message index record with no readable chunk before it".into(),
                            );
                        }
                    }
                },
                Record::ChunkIndex(ci) => chunk_indexes.push((off, ci)),
                Record::Unknown { opcode, .. } if opcode < 0x80 => {
                    ins.problem(
                        off,
                        format!(
                            "record with the reserved opcode 0x{opcode:02x} ({len} bytes): not MCAP, likely a corrupted opcode; skipped"
                        ),
                    );
                }
                Record::Footer(f) => {
                    let want_summary = summary_start.unwrap_or(0);
                    if f.summary_start != want_summary {
                        ins.problem(
                            off,
                            format!(
                                "footer says the summary starts at byte {}, but it starts at byte {want_summary}: readers that seek will fail",
                                f.summary_start
                            ),
                        );
                    }
                    let want_offsets = summary_offset_start.unwrap_or(0);
                    if f.summary_offset_start != want_offsets {
                        ins.problem(
                            off,
                            format!(
                                "footer says the summary offsets start at byte {}, but they start at byte {want_offsets}",
                                f.summary_offset_start
                            ),
                        );
                    }
                    let crc = summary_crc.clone().finalize();
                    if f.summary_crc != 0 && f.summary_crc != crc {
                        ins.problem(
                            off,
                            format!(
                                "summary CRC mismatch: the footer says {:08x}, the bytes give {crc:08x}",
                                f.summary_crc
                            ),
                        );
                    }
                    saw_footer = true;
                    off += 9 + len;
                    ins.readable_bytes = off;
                    let mut end = [0u8; 8];
                    if read_full(&mut r, &mut end).unwrap_or(0) != 8 || &end != MAGIC {
                        saw_footer = false;
                        ins.problem(off, "footer is not followed by the closing magic".into());
                    }
                    break;
                }
                _ => {}
            }
            off += 9 + len;
            ins.readable_bytes = off;
        }
        if !saw_footer && ins.problems.is_empty() {
            ins.problem(off, "file ends without a summary and footer: the recorder did not finish it (crash or still recording)".into());
        } else if !saw_footer && !ins.problems.iter().any(|p| p.message.contains("truncated")) {
            ins.problem(off, "no footer: the file is incomplete".into());
        }
        // The summary's chunk index, against the chunks and message indexes actually there.
        for (at, ci) in &chunk_indexes {
            let Some(c) = chunks_seen.get(&ci.chunk_start_offset) else {
                ins.problem(
                    *at,
                    format!(
                        "chunk index points at byte {}, where no chunk starts (readers that seek will read garbage)",
                        ci.chunk_start_offset
                    ),
                );
                continue;
            };
            let mut wrong = Vec::new();
            if ci.chunk_length != c.record_len {
                wrong.push(format!("length {} (is {})", ci.chunk_length, c.record_len));
            }
            if (ci.message_start_time, ci.message_end_time) != (c.start, c.end) {
                wrong.push(format!(
                    "times {} .. {} (are {} .. {})",
                    ci.message_start_time, ci.message_end_time, c.start, c.end
                ));
            }
            if ci.compression != c.compression
                || ci.compressed_size != c.compressed_size
                || ci.uncompressed_size != c.uncompressed_size
            {
                wrong.push("compression or sizes".into());
            }
            let idx: BTreeMap<u16, u64> = c.indexes.iter().map(|(o, (ch, _))| (*ch, *o)).collect();
            if ci.message_index_offsets != idx {
                wrong.push(format!(
                    "message index offsets {:?} (are {:?})",
                    ci.message_index_offsets, idx
                ));
            }
            let idx_len: u64 = c.indexes.values().map(|(_, l)| *l).sum();
            if ci.message_index_length != idx_len {
                wrong.push(format!(
                    "message index length {} (is {idx_len})",
                    ci.message_index_length
                ));
            }
            if !wrong.is_empty() {
                ins.problem(
                    *at,
                    format!(
                        "chunk index for the chunk at byte {} is wrong: {}",
                        ci.chunk_start_offset,
                        wrong.join(", ")
                    ),
                );
            }
        }
        if saw_footer
            && !chunks_seen.is_empty()
            && summary_start.is_some()
            && chunk_indexes.len() != chunks_seen.len()
        {
            ins.problem(
                summary_start.unwrap_or(0),
                format!(
                    "the summary indexes {} chunks, the file holds {}",
                    chunk_indexes.len(),
                    chunks_seen.len()
                ),
            );
        }
        // Messages of channels no Channel record defines cannot be decoded by any reader.
        for c in channels.values() {
            if c.topic.starts_with("<unknown channel") {
                ins.problem(
                    ins.readable_bytes,
                    format!(
                        "{} messages on channel id {}, which no Channel record defines (a corrupted or lost record)",
                        c.messages, c.id
                    ),
                );
            }
        }
        if let Some(e) = ins.end_ns.filter(|e| *e >= IMPLAUSIBLE_LOG_NS) {
            ins.problem(
                ins.readable_bytes,
                format!("a message has the log time {e} ns (after the year 2262): corrupt"),
            );
        }
        // An episode the recorder had to close after a write error (disk full) is a valid
        // file, but not a complete recording.
        if let Some(err) = ins
            .metadata
            .get("demotape.episode_end")
            .and_then(|m| m.get("error"))
        {
            let err = err.clone();
            ins.problem(
                episode_end_at.unwrap_or(0),
                format!(
                    "the recorder closed this episode after a write error: {err} (what was flushed before it is here; the rest was never written)"
                ),
            );
        }
        // Drops: closing metadata if present, else the drop events seen.
        let closing = ins.metadata.get("demotape.channels").cloned();
        for c in channels.values_mut() {
            if c.schema.is_empty() {
                c.schema = schemas.get(&c.schema_id).cloned().unwrap_or_default();
            }
            if let Some(v) = closing.as_ref().and_then(|m| m.get(&c.topic)) {
                if let Ok(j) = serde_json::from_str::<serde_json::Value>(v) {
                    c.drops = j.get("drops").and_then(|d| d.as_u64()).unwrap_or(0);
                }
            } else {
                c.drops = ins
                    .events
                    .iter()
                    .filter(|e| e.kind == "drop" && e.topic == c.topic)
                    .map(|e| e.count)
                    .sum();
            }
            if let (Some(a), Some(b)) = (c.first_log_ns, c.last_log_ns)
                && b > a
                && c.messages > 1
            {
                c.rate_hz = (c.messages - 1) as f64 / ((b - a) as f64 * 1e-9);
            }
        }
        if let Some(stats) = stats_count {
            for c in channels.values() {
                let want = stats.get(&c.id).copied().unwrap_or(0);
                if want != c.messages {
                    ins.problem(
                        ins.readable_bytes,
                        format!(
                            "channel {} has {} readable messages but the statistics say {}",
                            c.topic, c.messages, want
                        ),
                    );
                }
            }
        }
        ins.channels = channels.into_values().collect();
        if let (Some(a), Some(b)) = (ins.start_ns, ins.end_ns) {
            ins.duration_s = (b.saturating_sub(a)) as f64 * 1e-9;
        }
        ins.intact = saw_footer && ins.problems.is_empty();
        Ok(ins)
    }

    fn problem(&mut self, offset: u64, message: String) {
        self.problems.push(Problem { offset, message });
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "File:      {} ({:.1} MB)",
            self.file.display(),
            self.file_bytes as f64 / 1e6
        );
        let status = if self.intact {
            "intact (every chunk read clean, summary and footer present)".to_string()
        } else {
            format!(
                "DAMAGED: {} problem(s); readable up to byte {} of {}",
                self.problems.len(),
                self.readable_bytes,
                self.file_bytes
            )
        };
        let _ = writeln!(s, "Status:    {status}");
        let _ = writeln!(s, "Profile:   {}   Library: {}", self.profile, self.library);
        if let Some(e) = self.metadata.get("demotape.episode") {
            let g = |k: &str| e.get(k).map(String::as_str).unwrap_or("");
            let _ = writeln!(
                s,
                "Episode:   {} (robot {}, source {}, task {:?}, operator {:?})",
                g("episode_id"),
                g("robot_id"),
                g("source"),
                g("task"),
                g("operator")
            );
        }
        if let Some(a) = self.start_ns {
            let t = chrono::DateTime::from_timestamp_nanos(a as i64);
            let _ = writeln!(
                s,
                "Start:     {}   Duration: {:.3} s",
                t.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
                self.duration_s
            );
        }
        let drops: u64 = self.channels.iter().map(|c| c.drops).sum();
        let _ = writeln!(
            s,
            "Messages:  {}   Drops: {}   Chunks: {} ({} unreadable)",
            self.messages, drops, self.chunks, self.bad_chunks
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<34} {:<36} {:>8} {:>9} {:>7} {:>9}",
            "topic", "type", "count", "rate Hz", "drops", "MB"
        );
        for c in &self.channels {
            let _ = writeln!(
                s,
                "{:<34} {:<36} {:>8} {:>9.1} {:>7} {:>9.2}",
                c.topic,
                c.schema,
                c.messages,
                c.rate_hz,
                c.drops,
                c.bytes as f64 / 1e6
            );
        }
        if let Some(sync) = self.metadata.get("demotape.sync") {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "{:<20} {:<19} {:>9} {:>10} {:>11} {:>11} {:>9} {:>6}",
                "clock sync: device",
                "method",
                "samples",
                "drift ppm",
                "delay p50",
                "delay p99",
                "+/- us",
                "resets"
            );
            for (dev, v) in sync {
                let j: serde_json::Value = serde_json::from_str(v).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "{:<20} {:<19} {:>9} {:>10.2} {:>9.1}us {:>9.1}us {:>9.2} {:>6}",
                    dev,
                    j["method"].as_str().unwrap_or(""),
                    j["samples"].as_u64().unwrap_or(0),
                    j["drift_ppm"].as_f64().unwrap_or(0.0),
                    j["residual_median_us"].as_f64().unwrap_or(0.0),
                    j["residual_p99_us"].as_f64().unwrap_or(0.0),
                    j["uncertainty_us"].as_f64().unwrap_or(0.0),
                    j["resets"].as_u64().unwrap_or(0)
                );
            }
        }
        // how triggered cameras and PTP devices fared
        if let Some(sync) = self.metadata.get("demotape.sync") {
            for (dev, v) in sync {
                let Ok(r) = serde_json::from_str::<sync::SyncReport>(v) else {
                    continue;
                };
                if let Some(t) = &r.trigger {
                    let st = &t.stats;
                    let _ = writeln!(
                        s,
                        "  {dev}: {} of {} frames stamped from trigger pulses ({}, {}); {} skipped frames, {} missing pulses, unmatched: {} before the lock, {} without their pulse{}",
                        st.matched,
                        st.matched + st.unmatched,
                        t.board,
                        t.pulses_topic,
                        st.skipped_frames,
                        st.missing_pulses,
                        st.unmatched_unlocked,
                        st.unmatched_no_pulse,
                        if st.lock_losses > 0 {
                            format!(", lock lost {} times", st.lock_losses)
                        } else {
                            String::new()
                        }
                    );
                }
                if let Some(p) = &r.ptp {
                    match &p.fault {
                        None => {
                            let _ = writeln!(
                                s,
                                "  {dev}: PTP stamps taken as they are (servo error {} us, offset span {:.1} us)",
                                p.servo_error_us, p.offset_span_us
                            );
                        }
                        Some(f) => {
                            let _ = writeln!(s, "  {dev}: PTP FAULT: {f}; fitted since");
                        }
                    }
                }
            }
        }
        if let Some(r) = &self.resync {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "{:<20} {:<19} {:>9} {:>12} {:>12} {:>12}",
                "offline resync", "method", "samples", "|diff| p50", "p99", "max"
            );
            for (dev, v) in r {
                let _ = writeln!(
                    s,
                    "{:<20} {:<19} {:>9} {:>10.1}us {:>10.1}us {:>10.1}us",
                    dev, v.method, v.samples, v.p50_us, v.p99_us, v.max_us
                );
                if let Some(n) = &v.note {
                    let _ = writeln!(s, "  {dev}: {n}");
                }
            }
        }
        let notable: Vec<&EventInfo> = self
            .events
            .iter()
            .filter(|e| e.kind != "start" && e.kind != "stop")
            .collect();
        if !notable.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "Events ({}):", notable.len());
            for e in notable.iter().take(20) {
                let _ = writeln!(s, "  {} {} {} {}", e.kind, e.topic, e.count, e.detail);
            }
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "Problems:");
            for p in &self.problems {
                let _ = writeln!(
                    s,
                    "  {}: byte {}: {}",
                    self.file.display(),
                    p.offset,
                    p.message
                );
            }
        }
        s
    }
}

fn commit(ins: &mut Inspection, channels: &mut BTreeMap<u16, ChannelInfo>, p: Pending) {
    ins.messages += 1;
    ins.start_ns = Some(ins.start_ns.map_or(p.log, |s| s.min(p.log)));
    ins.end_ns = Some(ins.end_ns.map_or(p.log, |s| s.max(p.log)));
    let c = channels.entry(p.channel).or_insert_with(|| ChannelInfo {
        id: p.channel,
        topic: format!("<unknown channel {}>", p.channel),
        ..Default::default()
    });
    c.messages += 1;
    c.bytes += p.len;
    c.first_log_ns = Some(c.first_log_ns.map_or(p.log, |s| s.min(p.log)));
    c.last_log_ns = Some(c.last_log_ns.map_or(p.log, |s| s.max(p.log)));
    if let Some(e) = p.event {
        ins.events.push(e);
    }
}

/// Decode an event with a decoder that checks every length against the remaining input.
fn decode_event(events: Option<u16>, channel: u16, log: u64, data: &[u8]) -> Option<EventInfo> {
    if events != Some(channel) {
        return None;
    }
    let ev: EpisodeEvent = hal::msgs::decode(data).ok()?;
    Some(EventInfo {
        log_ns: log,
        kind: ev.kind,
        topic: ev.topic,
        count: ev.count,
        detail: ev.detail,
    })
}

#[cfg(test)]
mod checked_parse_tests {
    use super::*;

    #[test]
    fn hostile_inner_lengths_are_refused_before_allocating() {
        // a Header record whose profile string claims 4 GiB (the fuzzer's find)
        let mut body = vec![0xff, 0xff, 0xff, 0xff];
        body.extend_from_slice(&[0; 8]);
        let e = checked_parse_record(0x01, &body).unwrap_err().to_string();
        assert!(e.contains("profile") && e.contains("exceeds"), "{e}");
        // a metadata map entry longer than the map
        let mut md = Vec::new();
        md.extend_from_slice(&1u32.to_le_bytes());
        md.push(b'x');
        md.extend_from_slice(&8u32.to_le_bytes());
        md.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
        md.extend_from_slice(&[0; 4]);
        assert!(checked_parse_record(0x0C, &md).is_err());
        // a well-formed record still parses
        let mut ok = Vec::new();
        ok.extend_from_slice(&4u32.to_le_bytes());
        ok.extend_from_slice(b"ros2");
        ok.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            checked_parse_record(0x01, &ok),
            Ok(mcap::records::Record::Header(_))
        ));
    }
}
