//! `demotape recover IN OUT`: rebuild a valid, indexed MCAP from a truncated or damaged one
//! (a recording cut off by a crash or power loss, a file with a corrupted chunk), and say
//! exactly what could not be recovered.
//!
//! Every top-level record is read with its length checked against the file; every chunk is
//! decompressed and CRC-checked on its own, so one bad chunk costs only its own messages.
//! Schemas, channels, metadata and every message of every readable chunk are copied
//! bit-exact into a new file with a summary section; a `demotape.recovered` metadata record
//! documents the source and the losses.

use crate::mcap_io::{ChunkStream, MAGIC, message_header};
use mcap::records::Record;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A stretch of the input that could not be recovered.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Loss {
    /// Byte range in the input.
    pub offset: u64,
    pub bytes: u64,
    /// Log-time range of the messages it held, when its chunk header said so.
    pub log_start_ns: Option<u64>,
    pub log_end_ns: Option<u64>,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct RecoveryReport {
    pub input: PathBuf,
    pub output: PathBuf,
    pub input_bytes: u64,
    /// Messages copied, per topic.
    pub recovered: BTreeMap<String, u64>,
    pub losses: Vec<Loss>,
    /// Per topic, messages the input's own closing metadata promised that are missing
    /// (only when that metadata survived).
    pub missing_vs_metadata: BTreeMap<String, u64>,
    /// Messages left out because no Channel record defines their channel (per channel id).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub no_channel: BTreeMap<u16, u64>,
    pub input_was_intact: bool,
}

impl RecoveryReport {
    pub fn lost_anything(&self) -> bool {
        !self.losses.is_empty()
            || self.missing_vs_metadata.values().any(|&n| n > 0)
            || !self.no_channel.is_empty()
    }

    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let total: u64 = self.recovered.values().sum();
        let _ = writeln!(
            s,
            "Recovered {} messages from {} into {}",
            total,
            self.input.display(),
            self.output.display()
        );
        for (t, n) in &self.recovered {
            let _ = writeln!(s, "  {t:<40} {n:>9}");
        }
        if self.input_was_intact {
            let _ = writeln!(s, "The input was intact: nothing was lost.");
        } else if !self.lost_anything() {
            let _ = writeln!(
                s,
                "The input was damaged outside its messages (summary, index or CRC; `demotape inspect` says where): every message was recovered, the output is indexed anew."
            );
        }
        for l in &self.losses {
            let range = match (l.log_start_ns, l.log_end_ns) {
                (Some(a), Some(b)) => format!(
                    ", messages logged {:.3} s .. {:.3} s",
                    a as f64 * 1e-9,
                    b as f64 * 1e-9
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "LOST: bytes {}..{} ({} bytes{range}): {}",
                l.offset,
                l.offset + l.bytes,
                l.bytes,
                l.reason
            );
        }
        for (id, n) in &self.no_channel {
            let _ = writeln!(
                s,
                "LOST: {n} messages on channel id {id}, which no readable Channel record defines"
            );
        }
        for (t, n) in &self.missing_vs_metadata {
            if *n > 0 {
                let _ = writeln!(
                    s,
                    "LOST: {n} messages on {t} (counted in the input's closing metadata)"
                );
            }
        }
        s
    }
}

/// Recover `input` into `output` (which must not exist).
pub fn recover(input: &Path, output: &Path) -> anyhow::Result<RecoveryReport> {
    // a device or a pipe (`/dev/zero`) would be read forever
    let md = std::fs::metadata(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    if !md.is_file() {
        anyhow::bail!("{}: not a regular file", input.display());
    }
    let data = std::fs::read(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    if data.len() < 8 || &data[..8] != MAGIC {
        anyhow::bail!(
            "{}: not an MCAP file (bad magic at byte 0)",
            input.display()
        );
    }
    let out = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(output)
        .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
    let mut report = RecoveryReport {
        input: input.into(),
        output: output.into(),
        input_bytes: data.len() as u64,
        ..Default::default()
    };
    let mut header: Option<mcap::records::Header> = None;
    let mut schemas: BTreeMap<u16, (String, String, Vec<u8>)> = BTreeMap::new();
    let mut channels: BTreeMap<u16, mcap::records::Channel> = BTreeMap::new();
    let mut metadata: Vec<mcap::records::Metadata> = Vec::new();
    // records whose messages are copied in pass 2: readable chunks and top-level messages
    let mut copy: Vec<usize> = Vec::new();
    let mut saw_footer = false;
    let mut off = 8usize;
    let handle = |rec: Record<'_>,
                  schemas: &mut BTreeMap<u16, (String, String, Vec<u8>)>,
                  channels: &mut BTreeMap<u16, mcap::records::Channel>| match rec {
        Record::Schema { header, data } => {
            schemas
                .entry(header.id)
                .or_insert((header.name, header.encoding, data.into_owned()));
        }
        Record::Channel(c) => {
            channels.entry(c.id).or_insert(c);
        }
        _ => {}
    };
    while off < data.len() {
        let rest = data.len() - off;
        if rest < 9 {
            report.losses.push(Loss {
                offset: off as u64,
                bytes: rest as u64,
                log_start_ns: None,
                log_end_ns: None,
                reason: "file ends inside a record header".into(),
            });
            break;
        }
        let op = data[off];
        let len = u64::from_le_bytes(data[off + 1..off + 9].try_into().expect("8 bytes"));
        if len > (rest - 9) as u64 {
            // A cut-off chunk still tells which messages it held, if its header survived.
            let (a, b) = chunk_time_range(op, &data[off + 9..]);
            report.losses.push(Loss {
                offset: off as u64,
                bytes: rest as u64,
                log_start_ns: a,
                log_end_ns: b,
                reason: format!(
                    "record (opcode 0x{op:02x}) claims {len} bytes, only {} remain: the file was cut off here{}",
                    rest - 9,
                    match op {
                        0x06 => "",
                        0x07 => " (a message index: it holds no messages, nothing of the data is lost)",
                        _ => " (not a chunk)",
                    }
                ),
            });
            break;
        }
        let body = &data[off + 9..off + 9 + len as usize];
        match crate::mcap_io::checked_parse_record(op, body) {
            Ok(Record::Header(h)) => header = Some(h),
            Ok(Record::Chunk {
                header: ch,
                data: cdata,
            }) => {
                let (a, b) = (ch.message_start_time, ch.message_end_time);
                // pass 1 reads the chunk as a stream (message payloads hashed, not kept):
                // all or nothing per chunk, so every record is checked before any is used
                let result = (|| -> Result<Vec<Record<'static>>, String> {
                    let mut stream = ChunkStream::new(&ch, &cdata)?;
                    let mut recs = Vec::new();
                    while let Some(rec) = stream.next_record(|op, _| op != 0x05) {
                        let rec = rec?;
                        if rec.op == 0x05 {
                            message_header(&rec.body).ok_or_else(|| {
                                format!("message record at chunk offset {} is too short", rec.at)
                            })?;
                            continue;
                        }
                        let r = crate::mcap_io::checked_parse_record(rec.op, &rec.body)
                            .map_err(|e| format!("record at chunk offset {}: {e}", rec.at))?
                            .into_owned();
                        recs.push(r);
                    }
                    Ok(recs)
                })();
                match result {
                    Ok(recs) => {
                        for r in recs {
                            handle(r, &mut schemas, &mut channels);
                        }
                        copy.push(off);
                    }
                    Err(e) => report.losses.push(Loss {
                        offset: off as u64,
                        bytes: 9 + len,
                        log_start_ns: Some(a),
                        log_end_ns: Some(b),
                        reason: format!("chunk is corrupt: {e}"),
                    }),
                }
            }
            Ok(Record::Metadata(m)) => metadata.push(m),
            Ok(Record::Footer(_)) => {
                saw_footer = true;
                break;
            }
            Ok(Record::DataEnd(_)) | Ok(Record::Attachment { .. }) => {}
            Ok(Record::Message { .. }) => copy.push(off),
            Ok(r @ (Record::Schema { .. } | Record::Channel(_))) => {
                handle(r, &mut schemas, &mut channels)
            }
            Ok(_) => {} // indexes and statistics are rebuilt
            Err(e) => report.losses.push(Loss {
                offset: off as u64,
                bytes: 9 + len,
                log_start_ns: None,
                log_end_ns: None,
                reason: format!("unreadable record (opcode 0x{op:02x}): {e}"),
            }),
        }
        off += 9 + len as usize;
    }
    if !saw_footer && report.losses.is_empty() {
        // cut exactly at a record boundary (or only the magic survived): whatever was written
        // after this point is not in the file, and nothing says how much that was
        report.losses.push(Loss {
            offset: off as u64,
            bytes: 0,
            log_start_ns: None,
            log_end_ns: None,
            reason: if header.is_none() {
                "the file ends without a Header record: it holds nothing to recover".into()
            } else {
                "the file ends without Data End and Footer: the recording was cut off here \
                 (what was written after it is not in the file)"
                    .into()
            },
        });
    }
    // no message lost is not the same as intact: a wrong footer offset, chunk index or CRC
    // leaves every message readable here but breaks readers that trust the summary
    report.input_was_intact = saw_footer
        && report.losses.is_empty()
        && crate::inspect::Inspection::run(input).is_ok_and(|i| i.intact);

    // Write the new file.
    let h = header.unwrap_or(mcap::records::Header {
        profile: "ros2".into(),
        library: String::new(),
    });
    let mut w = mcap::WriteOptions::new()
        .profile(h.profile)
        .library(concat!("demotape recover ", env!("CARGO_PKG_VERSION")))
        .compression(Some(mcap::Compression::Lz4))
        .create(std::io::BufWriter::new(out))?;
    let mut schema_map = BTreeMap::new();
    for (id, (name, enc, d)) in &schemas {
        schema_map.insert(*id, w.add_schema(name, enc, d)?);
    }
    let mut channel_map = BTreeMap::new();
    for (id, c) in &channels {
        let sid = schema_map.get(&c.schema_id).copied().unwrap_or(0);
        channel_map.insert(
            *id,
            (
                w.add_channel(sid, &c.topic, &c.message_encoding, &c.metadata)?,
                c.topic.clone(),
            ),
        );
    }
    // Pass 2: stream the messages of every readable chunk (and top-level ones) straight into
    // the new file, one record in memory at a time.
    let mut write = |mh: &mcap::records::MessageHeader, d: &[u8]| -> anyhow::Result<()> {
        let Some((cid, topic)) = channel_map.get(&mh.channel_id) else {
            *report.no_channel.entry(mh.channel_id).or_default() += 1;
            return Ok(());
        };
        w.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: *cid,
                ..*mh
            },
            d,
        )?;
        *report.recovered.entry(topic.clone()).or_default() += 1;
        Ok(())
    };
    for &at in &copy {
        let len = u64::from_le_bytes(data[at + 1..at + 9].try_into().expect("8 bytes")) as usize;
        let body = &data[at + 9..at + 9 + len];
        match crate::mcap_io::checked_parse_record(data[at], body) {
            Ok(Record::Message { header, data: d }) => write(&header, &d)?,
            Ok(Record::Chunk {
                header: ch,
                data: cdata,
            }) => {
                let mut stream =
                    ChunkStream::new(&ch, &cdata).map_err(|e| anyhow::anyhow!("{e}"))?;
                while let Some(rec) = stream.next_record(|_, _| true) {
                    let rec = rec.map_err(|e| {
                        anyhow::anyhow!(
                            "{}: chunk at byte {at} changed between passes: {e}",
                            input.display()
                        )
                    })?;
                    if rec.op == 0x05
                        && let Some(h) = message_header(&rec.body)
                    {
                        write(&h, &rec.body[22..])?;
                    }
                }
            }
            _ => {}
        }
    }
    if !report.no_channel.is_empty() {
        report.input_was_intact = false;
    }
    for m in &metadata {
        w.write_metadata(m)?;
    }
    // what the input's own closing metadata promised, if it survived
    if let Some(ch) = metadata.iter().find(|m| m.name == "demotape.channels") {
        for (topic, v) in &ch.metadata {
            if let Ok(j) = serde_json::from_str::<serde_json::Value>(v)
                && let Some(n) = j.get("messages").and_then(|x| x.as_u64())
            {
                let got = report.recovered.get(topic).copied().unwrap_or(0);
                report
                    .missing_vs_metadata
                    .insert(topic.clone(), n.saturating_sub(got));
            }
        }
    }
    let losses = serde_json::to_string(&report.losses).unwrap_or_default();
    w.write_metadata(&mcap::records::Metadata {
        name: "demotape.recovered".into(),
        metadata: BTreeMap::from([
            ("source".to_string(), input.display().to_string()),
            ("source_bytes".to_string(), report.input_bytes.to_string()),
            ("losses".to_string(), losses),
            (
                "software".to_string(),
                concat!("demotape ", env!("CARGO_PKG_VERSION")).to_string(),
            ),
        ]),
    })?;
    w.finish()?;
    Ok(report)
}

/// The message time range of a (possibly cut-off) chunk, from its header alone.
fn chunk_time_range(op: u8, body: &[u8]) -> (Option<u64>, Option<u64>) {
    if op != 0x06 || body.len() < 16 {
        return (None, None);
    }
    let a = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    (Some(a), Some(b))
}
