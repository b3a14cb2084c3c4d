//! Fast, selective episode reading: only the chunks that hold the wanted channels are read
//! and decompressed, found through the file's chunk index. The recorder writes small
//! messages (joints, forces, touch, clocks, events) in chunks of their own, so reading
//! everything but the cameras skips every image chunk.
//!
//! Falls back to reading every chunk when the file has no summary (a crashed recording;
//! `demotape recover` rebuilds one).

use crate::mcap_io::{MAGIC, RecordWalker, decompress_chunk};
use mcap::records::{Channel, MessageHeader, Record};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One message of a selected channel.
#[derive(Clone, Debug)]
pub struct Msg {
    pub header: MessageHeader,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Every channel in the file, by id.
    pub channels: BTreeMap<u16, Channel>,
    /// Schema names by id.
    pub schemas: BTreeMap<u16, String>,
    /// `ros2msg` schema texts by id (other encodings left out).
    pub schema_texts: BTreeMap<u16, String>,
    /// Messages of the selected channels, per channel id, in file order.
    pub messages: BTreeMap<u16, Vec<Msg>>,
    pub chunks_total: usize,
    pub chunks_read: usize,
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
}

impl Selection {
    pub fn topic(&self, id: u16) -> &str {
        self.channels.get(&id).map_or("", |c| c.topic.as_str())
    }
    /// Messages of one topic.
    pub fn by_topic(&self, topic: &str) -> &[Msg] {
        self.channels
            .iter()
            .find(|(_, c)| c.topic == topic)
            .and_then(|(id, _)| self.messages.get(id))
            .map_or(&[], Vec::as_slice)
    }
}

fn err(path: &Path, what: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{}: {what}", path.display())
}

/// An episode's summary: channels, schemas, metadata and the chunk index, read without
/// touching any chunk.
pub struct Summary {
    pub file: std::fs::File,
    pub len: u64,
    pub sel: Selection,
    pub chunk_index: Vec<mcap::records::ChunkIndex>,
}

/// Read the summary section of `path` (errors name the file and byte offset).
pub fn read_summary(path: &Path) -> anyhow::Result<Summary> {
    let mut f = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let len = f.metadata().map_err(|e| err(path, e))?.len();
    let mut magic = [0u8; 8];
    if len < 8 {
        return Err(err(
            path,
            format!("not an MCAP file ({len} bytes, shorter than the magic)"),
        ));
    }
    f.read_exact(&mut magic).map_err(|e| err(path, e))?;
    if &magic != MAGIC {
        return Err(err(path, "not an MCAP file (bad magic at byte 0)"));
    }
    // Footer: op(1) len(8) summary_start(8) summary_offset_start(8) crc(4), then magic.
    let footer_at = len
        .checked_sub(8 + 29)
        .ok_or_else(|| err(path, "too short for a footer"))?;
    let mut foot = [0u8; 29];
    f.seek(SeekFrom::Start(footer_at))
        .map_err(|e| err(path, e))?;
    f.read_exact(&mut foot).map_err(|e| err(path, e))?;
    let summary_start = u64::from_le_bytes(foot[9..17].try_into().expect("8 bytes"));
    if foot[0] != 0x02 || summary_start == 0 || summary_start >= footer_at {
        return Err(err(
            path,
            "no summary section (run `demotape recover` to rebuild one)",
        ));
    }
    let mut summary = vec![0u8; (footer_at - summary_start) as usize];
    f.seek(SeekFrom::Start(summary_start))
        .map_err(|e| err(path, e))?;
    f.read_exact(&mut summary).map_err(|e| err(path, e))?;
    let mut sel = Selection::default();
    let mut chunk_index = Vec::new();
    for item in RecordWalker::new(&summary) {
        let (at, op, body) = item.map_err(|e| err(path, format!("summary: {e}")))?;
        match crate::mcap_io::checked_parse_record(op, body).map_err(|e| {
            err(
                path,
                format!("summary record at {}: {e}", summary_start as usize + at),
            )
        })? {
            Record::Schema { header, data } => {
                if header.encoding == "ros2msg"
                    && let Ok(t) = std::str::from_utf8(&data)
                {
                    sel.schema_texts.insert(header.id, t.to_string());
                }
                sel.schemas.insert(header.id, header.name);
            }
            Record::Channel(c) => {
                sel.channels.insert(c.id, c);
            }
            Record::ChunkIndex(ci) => chunk_index.push(ci),
            Record::MetadataIndex(mi) => {
                // metadata records are small: read each
                let mut b = vec![0u8; mi.length as usize];
                f.seek(SeekFrom::Start(mi.offset))
                    .map_err(|e| err(path, e))?;
                f.read_exact(&mut b).map_err(|e| err(path, e))?;
                if b.len() > 9
                    && let Ok(Record::Metadata(m)) =
                        crate::mcap_io::checked_parse_record(b[0], &b[9..])
                {
                    sel.metadata.insert(m.name, m.metadata);
                }
            }
            _ => {}
        }
    }
    sel.chunks_total = chunk_index.len();
    Ok(Summary {
        file: f,
        len,
        sel,
        chunk_index,
    })
}

/// The decompressed records of one chunk.
pub fn read_chunk(
    path: &Path,
    f: &mut std::fs::File,
    len: u64,
    ci: &mcap::records::ChunkIndex,
    raw: &mut Vec<u8>,
) -> anyhow::Result<Vec<u8>> {
    if ci.chunk_length > len || ci.chunk_length < 9 {
        return Err(err(
            path,
            format!(
                "chunk index at byte {} points outside the file",
                ci.chunk_start_offset
            ),
        ));
    }
    raw.resize(ci.chunk_length as usize, 0);
    f.seek(SeekFrom::Start(ci.chunk_start_offset))
        .map_err(|e| err(path, e))?;
    f.read_exact(raw).map_err(|e| {
        err(
            path,
            format!("chunk at byte {}: {e}", ci.chunk_start_offset),
        )
    })?;
    let Ok(Record::Chunk { header, data }) =
        crate::mcap_io::checked_parse_record(raw[0], &raw[9..])
    else {
        return Err(err(
            path,
            format!("no chunk at byte {}", ci.chunk_start_offset),
        ));
    };
    decompress_chunk(&header, &data).map_err(|e| {
        err(
            path,
            format!("chunk at byte {}: {e}", ci.chunk_start_offset),
        )
    })
}

/// One message record inside decompressed chunk bytes, its payload borrowed.
pub struct RawMessage<'a> {
    /// Offset of the record in the decompressed chunk.
    pub at: usize,
    pub channel: u16,
    pub log_time: u64,
    pub data: &'a [u8],
}

/// The message records of a decompressed chunk (other records skipped), in chunk order,
/// without copying payloads. Errors name the file and the chunk's byte offset.
pub fn chunk_messages<'a>(
    path: &'a Path,
    ci: &'a mcap::records::ChunkIndex,
    plain: &'a [u8],
) -> impl Iterator<Item = anyhow::Result<RawMessage<'a>>> + 'a {
    RecordWalker::new(plain).filter_map(move |item| {
        let (at, op, body) = match item {
            Ok(r) => r,
            Err(e) => {
                return Some(Err(err(
                    path,
                    format!("chunk at byte {}: {e}", ci.chunk_start_offset),
                )));
            }
        };
        // Message: channel_id u16, sequence u32, log_time u64, publish_time u64, data
        if op != 0x05 || body.len() < 22 {
            return None;
        }
        Some(Ok(RawMessage {
            at,
            channel: u16::from_le_bytes([body[0], body[1]]),
            log_time: u64::from_le_bytes(body[6..14].try_into().expect("8 bytes")),
            data: &body[22..],
        }))
    })
}

/// Log times of every message of `channel` in a chunk, from the chunk's message index (no
/// decompression). Errors when the file has no message index for it.
pub fn message_times(
    path: &Path,
    f: &mut std::fs::File,
    ci: &mcap::records::ChunkIndex,
    channel: u16,
) -> anyhow::Result<Vec<u64>> {
    let Some(&at) = ci.message_index_offsets.get(&channel) else {
        return Ok(Vec::new());
    };
    let mut head = [0u8; 9];
    f.seek(SeekFrom::Start(at)).map_err(|e| err(path, e))?;
    f.read_exact(&mut head).map_err(|e| err(path, e))?;
    let n = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
    if head[0] != 0x07 || n > ci.message_index_length {
        return Err(err(path, format!("no message index at byte {at}")));
    }
    let mut body = vec![0u8; n as usize];
    f.read_exact(&mut body).map_err(|e| err(path, e))?;
    match crate::mcap_io::checked_parse_record(0x07, &body) {
        Ok(Record::MessageIndex(mi)) => Ok(mi.records.iter().map(|e| e.log_time).collect()),
        _ => Err(err(path, format!("bad message index at byte {at}"))),
    }
}

/// Read the messages of the channels for which `want(topic, schema_name)` is true.
pub fn read_selected(path: &Path, want: impl Fn(&str, &str) -> bool) -> anyhow::Result<Selection> {
    select(path, &mut read_summary(path)?, want)
}

/// [`read_selected`] with the summary already read.
fn select(
    path: &Path,
    summary: &mut Summary,
    want: impl Fn(&str, &str) -> bool,
) -> anyhow::Result<Selection> {
    let Summary {
        file: f,
        len,
        sel,
        chunk_index,
    } = summary;
    let (len, mut sel) = (*len, sel.clone());
    let wanted: Vec<u16> = sel
        .channels
        .values()
        .filter(|c| {
            want(
                &c.topic,
                sel.schemas.get(&c.schema_id).map_or("", String::as_str),
            )
        })
        .map(|c| c.id)
        .collect();
    let mut raw = Vec::new();
    for ci in chunk_index.iter() {
        if !ci
            .message_index_offsets
            .keys()
            .any(|id| wanted.contains(id))
        {
            continue;
        }
        sel.chunks_read += 1;
        let plain = read_chunk(path, f, len, ci, &mut raw)?;
        for item in RecordWalker::new(&plain) {
            let (at, op, body) = item.map_err(|e| {
                err(
                    path,
                    format!("chunk at byte {}: {e}", ci.chunk_start_offset),
                )
            })?;
            if op != 0x05 {
                continue; // only messages matter here; schemas/channels came from the summary
            }
            if let Ok(Record::Message { header, data }) =
                crate::mcap_io::checked_parse_record(op, body)
            {
                if wanted.contains(&header.channel_id) {
                    sel.messages
                        .entry(header.channel_id)
                        .or_default()
                        .push(Msg {
                            header,
                            data: data.into_owned(),
                        });
                }
            } else {
                return Err(err(
                    path,
                    format!(
                        "chunk at byte {}: bad message at offset {at}",
                        ci.chunk_start_offset
                    ),
                ));
            }
        }
    }
    Ok(sel)
}

/// Metadata records by name (`demotape.episode`, `demotape.labels`, ...).
pub type Metadata = BTreeMap<String, BTreeMap<String, String>>;

/// The part that continues `path`'s episode: `demotape.split` → `next_part`, a bare file name
/// in the same directory (metadata never leads the reader out of it), if the recorder split
/// the episode there.
pub fn next_part(path: &Path, meta: &Metadata) -> Option<PathBuf> {
    meta.get("demotape.split")
        .and_then(|m| m.get("next_part"))
        .filter(|n| !n.is_empty() && Path::new(n.as_str()).file_name() == Some(n.as_ref()))
        .map(|n| path.with_file_name(n))
}

/// The files of the episode that starts at `path`: it, then each later part.
pub struct Parts {
    pub files: Vec<PathBuf>,
    /// Their summaries (open files), in the same order.
    pub summaries: Vec<Summary>,
    /// A later part the split metadata names but that is not there (the files end before it).
    pub missing: Option<PathBuf>,
}

impl Parts {
    /// The whole episode's metadata ([`merge_metadata`] over the parts).
    pub fn metadata(&self) -> Metadata {
        let mut m = self.summaries[0].sel.metadata.clone();
        for s in &self.summaries[1..] {
            merge_metadata(&mut m, &s.sel.metadata);
        }
        m
    }
}

/// The MCAP file `path` names: itself, or the one `.mcap` inside a directory (a rosbag2 bag
/// directory: `metadata.yaml` beside `<bag>_0.mcap`). A directory with several is an error
/// that lists them.
pub fn bag_file(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mcap") && p.is_file())
        .collect();
    files.sort();
    match files.len() {
        1 => Ok(files.remove(0)),
        0 => Err(err(path, "a directory without .mcap files")),
        n => Err(err(
            path,
            format!(
                "a directory of {n} .mcap files (a split bag?): name one of {}",
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Follow `path`'s `demotape.split` chain, reading each part's summary. A cycle is an error.
/// A directory holding one `.mcap` (a rosbag2 bag) stands for that file.
pub fn episode_parts(path: &Path) -> anyhow::Result<Parts> {
    let path = &bag_file(path)?;
    let mut files = vec![path.to_path_buf()];
    let mut summaries = vec![read_summary(path)?];
    loop {
        let cur = files.last().expect("non-empty");
        let meta = &summaries.last().expect("one per file").sel.metadata;
        let Some(next) = next_part(cur, meta) else {
            return Ok(Parts {
                files,
                summaries,
                missing: None,
            });
        };
        if files.contains(&next) {
            return Err(err(
                cur,
                format!(
                    "its next part {} comes earlier in the chain",
                    next.display()
                ),
            ));
        }
        if !next.exists() {
            return Ok(Parts {
                files,
                summaries,
                missing: Some(next),
            });
        }
        summaries.push(read_summary(&next)?);
        files.push(next);
    }
}

/// Of `paths`, those that start an episode: a file another of them names as its next part
/// is left out (it is read as part of that episode).
/// Whether `path` is one of demotape's own companion files (the automatic layer
/// `<stem>.annotations.mcap`, the human layer `<stem>.annotations.human.mcap`, any other
/// `<stem>.annotations.<layer>.mcap`), which hold labels, not an episode.
pub fn is_companion(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".mcap"))
        .is_some_and(|stem| stem.ends_with(".annotations") || stem.contains(".annotations."))
}

pub fn episode_heads(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let continued: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| next_part(p, &read_summary(p).ok()?.sel.metadata))
        .collect();
    paths
        .into_iter()
        .filter(|p| !continued.contains(p))
        .collect()
}

/// The metadata of a whole episode from its parts' (in order): the first part's
/// `demotape.episode`; closing figures added up (`demotape.episode_end` messages and drops,
/// `demotape.channels` per topic), its end from the last part; per device the worst
/// `demotape.sync` report; other records (operator labels, written when the episode stops)
/// from the latest part that has them. No `demotape.split`: the whole is not split.
pub fn merge_metadata(into: &mut Metadata, later: &Metadata) {
    fn num(m: &BTreeMap<String, String>, k: &str) -> u64 {
        m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    for (name, rec) in later {
        match name.as_str() {
            "demotape.episode" if into.contains_key(name) => {}
            "demotape.episode_end" => {
                let e = into.entry(name.clone()).or_default();
                let (m, d) = (
                    num(e, "messages") + num(rec, "messages"),
                    num(e, "drops") + num(rec, "drops"),
                );
                let peak = num(e, "peak_queue_bytes").max(num(rec, "peak_queue_bytes"));
                e.extend(rec.clone());
                e.insert("messages".into(), m.to_string());
                e.insert("drops".into(), d.to_string());
                e.insert("peak_queue_bytes".into(), peak.to_string());
            }
            "demotape.channels" => {
                let e = into.entry(name.clone()).or_default();
                for (topic, v) in rec {
                    let add = |a: Option<&String>| -> String {
                        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
                        let (Some(mut x), Some(y)) = (a.and_then(|a| parse(a)), parse(v)) else {
                            return v.clone();
                        };
                        for k in ["messages", "drops", "bytes"] {
                            let sum = x[k].as_u64().unwrap_or(0) + y[k].as_u64().unwrap_or(0);
                            x[k] = sum.into();
                        }
                        x.to_string()
                    };
                    let merged = add(e.get(topic));
                    e.insert(topic.clone(), merged);
                }
            }
            "demotape.sync" => {
                let e = into.entry(name.clone()).or_default();
                let p99 = |s: Option<&String>| {
                    s.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                        .and_then(|j| j["residual_p99_us"].as_f64())
                        .unwrap_or(f64::NEG_INFINITY)
                };
                for (dev, v) in rec {
                    if p99(Some(v)) >= p99(e.get(dev)) {
                        e.insert(dev.clone(), v.clone());
                    }
                }
            }
            _ => {
                into.insert(name.clone(), rec.clone());
            }
        }
    }
    if !later.contains_key("demotape.split") {
        into.remove("demotape.split");
    }
}

/// [`read_selected`] over the parts of one episode, as if it were one file: channels and
/// schemas matched by topic and name (ids as in the first part that has them), messages in
/// part order, metadata by [`merge_metadata`].
pub fn read_selected_parts(
    parts: &mut Parts,
    want: impl Fn(&str, &str) -> bool,
) -> anyhow::Result<Selection> {
    let mut out: Option<Selection> = None;
    for (f, summary) in parts.files.iter().zip(parts.summaries.iter_mut()) {
        let part = select(f, summary, &want)?;
        let Some(all) = out.as_mut() else {
            out = Some(part);
            continue;
        };
        let mut schema_map = BTreeMap::new();
        for (id, name) in &part.schemas {
            let to = match all.schemas.iter().find(|(_, n)| *n == name) {
                Some((to, _)) => *to,
                None => {
                    let to = all.schemas.keys().max().map_or(1, |m| m + 1);
                    all.schemas.insert(to, name.clone());
                    if let Some(t) = part.schema_texts.get(id) {
                        all.schema_texts.insert(to, t.clone());
                    }
                    to
                }
            };
            schema_map.insert(*id, to);
        }
        let mut channel_map = BTreeMap::new();
        for (id, c) in &part.channels {
            let schema = schema_map.get(&c.schema_id).copied().unwrap_or(0);
            let to = match all
                .channels
                .iter()
                .find(|(_, x)| x.topic == c.topic && x.schema_id == schema)
            {
                Some((to, _)) => *to,
                None => {
                    let to = all.channels.keys().max().map_or(1, |m| m + 1);
                    let mut c = c.clone();
                    (c.id, c.schema_id) = (to, schema);
                    all.channels.insert(to, c);
                    to
                }
            };
            channel_map.insert(*id, to);
        }
        for (id, msgs) in part.messages {
            let to = channel_map[&id];
            all.messages
                .entry(to)
                .or_default()
                .extend(msgs.into_iter().map(|mut m| {
                    m.header.channel_id = to;
                    m
                }));
        }
        all.chunks_total += part.chunks_total;
        all.chunks_read += part.chunks_read;
        merge_metadata(&mut all.metadata, &part.metadata);
    }
    out.ok_or_else(|| anyhow::anyhow!("an episode without files"))
}
