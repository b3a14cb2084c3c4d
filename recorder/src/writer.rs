//! The episode writer: one MCAP file per episode, on its own thread, off the capture path.
//!
//! For each sample it maps the device stamp onto the reference clock (`sync`), writes that
//! into `header.stamp` and MCAP `log_time` (the host receive time goes to `publish_time`),
//! CDR-encodes the message and appends it to its channel's open chunk ([`crate::mcap_file`]:
//! closed chunks are compressed on a pool of threads, by the stream's compression policy).
//! Every `flush_interval` it writes the batched raw clock observations and any new drop
//! counts, closes the chunks and flushes them to the OS, so a crash (even SIGKILL) loses at
//! most that interval plus the age of what still waits in the capture queue.

use crate::config::CompressionPolicy;
use crate::mcap_file::{ChannelCodec, Codec, FileOptions, McapFile};
use hal::msgs::{ClockObservations, EpisodeEvent, Header, RosMessage, Time};
use hal::{Modality, Sample, StreamSpec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use sync::ptp::{PtpClock, PtpConfig};
use sync::{ClockMapper, EnvelopeClock, ResetReason, SyncReport};

/// rosbag2's default offered QoS (reliable, volatile, keep-last), as it writes it.
pub const QOS_RELIABLE: &str = "- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n  avoid_ros_namespace_conventions: false\n";

/// Sensor QoS (best effort) for high-rate sensor streams.
pub const QOS_SENSOR: &str = "- history: 3\n  depth: 0\n  reliability: 2\n  durability: 2\n  deadline:\n    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n  avoid_ros_namespace_conventions: false\n";

#[derive(Clone, Debug)]
pub struct WriterOptions {
    pub flush_interval: std::time::Duration,
    pub chunk_size: u64,
    pub compression: CompressionPolicy,
    /// `fdatasync` the episode this often from a helper thread (never blocking the writer);
    /// `None` = only when the episode is finished.
    pub fsync_interval: Option<std::time::Duration>,
    /// Streams bound while recording (topics discovered on the network): a stream declared
    /// as an unbound slot (empty topic) gets its channel when its first sample arrives, from
    /// this table's entry.
    pub table: Option<hal::StreamTable>,
    /// Cameras stamped from trigger pulses (`[[sync.triggers]]`, resolved).
    pub triggers: Vec<crate::timing::TriggerBinding>,
    /// Devices stamping in PTP time (`[[sync.ptp]]`).
    pub ptp: Vec<crate::timing::PtpEntry>,
}

impl WriterOptions {
    pub fn from_config(r: &crate::config::RecorderConfig) -> Self {
        WriterOptions {
            flush_interval: std::time::Duration::from_millis(r.flush_interval_ms),
            chunk_size: r.chunk_size_bytes,
            compression: r.compression.clone(),
            fsync_interval: (r.fsync_interval_ms > 0)
                .then(|| std::time::Duration::from_millis(r.fsync_interval_ms)),
            table: None,
            triggers: Vec::new(),
            ptp: Vec::new(),
        }
    }
}

/// A device's clock model: fitted (every free-running clock) or PTP (taken as stamped while
/// the claim holds).
enum Mapper {
    Envelope(EnvelopeClock),
    Ptp(PtpClock),
}

impl Mapper {
    fn observe(&mut self, stamp_us: u64, host_ns: u64, boot_id: u64) -> u64 {
        match self {
            Mapper::Envelope(m) => m.observe(stamp_us, host_ns, boot_id),
            Mapper::Ptp(m) => m.observe(stamp_us, host_ns, boot_id),
        }
    }
    fn map(&self, stamp_us: u64) -> Option<u64> {
        match self {
            Mapper::Envelope(m) => m.map(stamp_us),
            Mapper::Ptp(m) => m.map(stamp_us),
        }
    }
    fn report(&self) -> SyncReport {
        match self {
            Mapper::Envelope(m) => m.report(),
            Mapper::Ptp(m) => m.report(),
        }
    }
    fn last_reset(&self) -> Option<ResetReason> {
        match self {
            Mapper::Envelope(m) => m.last_reset(),
            Mapper::Ptp(m) => m.envelope().last_reset(),
        }
    }
    /// A PTP device's fault, once raised.
    fn ptp_fault(&self) -> Option<&str> {
        match self {
            Mapper::Envelope(_) => None,
            Mapper::Ptp(m) => m.ptp_report().fault.as_deref(),
        }
    }
}

/// Periodic `fdatasync` of an episode file on its own thread.
struct Syncer {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn start(file: File, every: std::time::Duration, path: PathBuf) -> std::io::Result<Syncer> {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fsync".into())
            .spawn(move || {
                let (lock, cv) = &*s2;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !*stopped {
                    let (g, _) = cv
                        .wait_timeout(stopped, every)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = g;
                    if *stopped {
                        break;
                    }
                    drop(stopped);
                    if let Err(e) = file.sync_data() {
                        tracing::warn!(path = %path.display(), "fdatasync failed: {e}");
                    }
                    stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                }
            })?;
        Ok(Syncer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The episode file under the MCAP writer, in a slot the episode writer can empty: after a
/// write error the file is closed here, so nothing the writer still holds reaches it.
#[derive(Clone)]
struct SlotFile(std::sync::Arc<std::sync::Mutex<Option<File>>>);

impl SlotFile {
    fn new(f: File) -> Self {
        SlotFile(std::sync::Arc::new(std::sync::Mutex::new(Some(f))))
    }
    fn with<T>(&self, op: impl FnOnce(&mut File) -> std::io::Result<T>) -> std::io::Result<T> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_mut() {
            Some(f) => op(f),
            None => Err(std::io::Error::other(
                "the episode file was closed after an error",
            )),
        }
    }
    /// Close the file: every later write through the MCAP writer fails.
    fn close(&self) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

impl std::io::Write for SlotFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.with(|f| f.write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.with(|f| f.flush())
    }
}

impl std::io::Seek for SlotFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.with(|f| f.seek(pos))
    }
}

type McapOut = McapFile<BufWriter<SlotFile>>;

/// Who, what and how: written as the `demotape.episode` metadata record at the start.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EpisodeMeta {
    pub robot_id: String,
    pub episode_id: String,
    pub sequence: u64,
    pub task: String,
    pub operator: String,
    pub source: String,
    pub start_ns: u64,
    pub config_toml: String,
    pub extra: BTreeMap<String, String>,
}

/// Per-stream totals of a finished episode.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StreamSummary {
    pub topic: String,
    pub messages: u64,
    pub drops: u64,
    /// Serialized message bytes.
    pub bytes: u64,
    /// The codec of the stream's last chunk (`auto` decides per chunk).
    pub compression: Option<Codec>,
    /// Bytes its chunks take in the file (compressed).
    pub stored_bytes: u64,
}

/// What an episode ended with.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeSummary {
    pub path: PathBuf,
    pub streams: Vec<StreamSummary>,
    pub sync: BTreeMap<String, SyncReport>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub file_bytes: u64,
    pub peak_queue_bytes: usize,
    /// The longest a sample waited in the capture queue (ms), as `demotape.episode_end`
    /// records it.
    pub peak_queue_age_ms: f64,
    /// The 99th percentile of the samples' waits in the capture queue (ms).
    pub queue_age_p99_ms: f64,
}

impl EpisodeSummary {
    pub fn total_drops(&self) -> u64 {
        self.streams.iter().map(|s| s.drops).sum()
    }
    pub fn total_messages(&self) -> u64 {
        self.streams.iter().map(|s| s.messages).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Writing failed and the episode was closed at its last complete flush.
    #[error("{error}; {closed}")]
    Closed {
        error: Box<WriteError>,
        closed: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: encoding a message on {topic} failed: {source}")]
    Encode {
        path: PathBuf,
        topic: String,
        source: cdr::Error,
    },
}

struct DeviceState {
    name: String,
    channel: u16,
    mapper: Mapper,
    resets_written: u64,
    ptp_fault_written: bool,
    batch: ClockObservations,
    sequence: u32,
}

pub struct EpisodeWriter {
    mcap: McapOut,
    /// The file under `mcap`, to close after a write error.
    slot: SlotFile,
    path: PathBuf,
    streams: Vec<StreamSpec>,
    /// Per stream: its channel and its device (index into `devices`); `None` for a slot not
    /// bound yet (see [`WriterOptions::table`]).
    bound: Vec<Option<(u16, usize)>>,
    devices: Vec<DeviceState>,
    schema_ids: BTreeMap<String, u16>,
    clock_schema: u16,
    table: Option<hal::StreamTable>,
    events_channel: u16,
    events_seq: u32,
    counts: Vec<u64>,
    bytes: Vec<u64>,
    drops_written: Vec<u64>,
    /// The message being encoded.
    buf: Vec<u8>,
    last_host_ns: u64,
    start_ns: u64,
    /// A second handle on the file, for fdatasync.
    sync_file: Option<File>,
    syncer: Option<Syncer>,
    /// File length after the last successful flush: a record boundary, everything before it
    /// complete chunks.
    good_len: u64,
    compression: CompressionPolicy,
    /// The longest a sample waited in the capture queue (set by the caller before
    /// `finish`; written into `demotape.episode_end` as `peak_queue_age_ms`).
    pub peak_queue_age_ns: u64,
    /// The 99th percentile of this episode's samples' waits in the capture queue (set by the
    /// caller before `finish`; `queue_age_p99_ms` in `demotape.episode_end`).
    pub queue_age_p99_ns: u64,
    /// Clock observations the capture queue refused (set by the caller before `finish`;
    /// written into `demotape.episode_end` as `clock_observations_dropped`).
    pub clock_drops: u64,
    /// Sensor messages (the streams' samples, not the recorder's own clock and event
    /// messages) in the file up to `good_len`.
    good_messages: u64,
    /// Triggered cameras' frames waiting for their pulses.
    triggers: crate::timing::Triggers,
    ptp: BTreeMap<String, PtpConfig>,
}

impl EpisodeWriter {
    pub fn create(
        path: &Path,
        streams: &[StreamSpec],
        opts: &WriterOptions,
        meta: &EpisodeMeta,
    ) -> Result<Self, WriteError> {
        // Never overwrite an existing episode. (A character device such as /dev/null is
        // opened as it is: the capacity benchmark writes to a discarding sink.)
        let is_device = {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
        };
        let file = File::options()
            .write(true)
            .create_new(!is_device)
            .open(path)
            .map_err(|source| WriteError::Io {
                path: path.into(),
                source,
            })?;
        match Self::create_in(file, is_device, path, streams, opts, meta) {
            Ok(w) => Ok(w),
            Err(e) => {
                // Nothing was recorded yet: leave no empty or header-only episode behind (a
                // full disk would otherwise leave a 0-byte .mcap).
                if !is_device {
                    let _ = std::fs::remove_file(path);
                }
                Err(e)
            }
        }
    }

    fn create_in(
        file: File,
        is_device: bool,
        path: &Path,
        streams: &[StreamSpec],
        opts: &WriterOptions,
        meta: &EpisodeMeta,
    ) -> Result<Self, WriteError> {
        let io = |source| WriteError::Io {
            path: path.into(),
            source,
        };
        let sync_file = if is_device {
            None
        } else {
            Some(file.try_clone().map_err(io)?)
        };
        let syncer = match (&sync_file, opts.fsync_interval) {
            (Some(f), Some(every)) => {
                Some(Syncer::start(f.try_clone().map_err(io)?, every, path.into()).map_err(io)?)
            }
            _ => None,
        };
        let slot = SlotFile::new(file);
        let library = concat!("demotape-recorder ", env!("CARGO_PKG_VERSION")).to_string();
        let created = McapFile::new(
            BufWriter::with_capacity(1 << 20, slot.clone()),
            FileOptions {
                profile: "ros2".into(),
                library,
                chunk_size: opts.chunk_size,
                workers: opts.compression.worker_count(),
                max_in_flight: opts.compression.max_in_flight_mb << 20,
            },
        );
        let mut w = match created {
            Ok(w) => w,
            Err(e) => {
                slot.close();
                return Err(io(e));
            }
        };
        let r = Self::header_records(&mut w, meta);
        let (clock_schema, ev_schema, events_channel) = match r {
            Ok(v) => v,
            Err(e) => {
                slot.close();
                return Err(io(e));
            }
        };

        let n = streams.len();
        let mut me = EpisodeWriter {
            mcap: w,
            slot: slot.clone(),
            path: path.into(),
            streams: streams.to_vec(),
            bound: vec![None; n],
            devices: Vec::new(),
            schema_ids: BTreeMap::from([
                (ClockObservations::TYPE_NAME.to_string(), clock_schema),
                (EpisodeEvent::TYPE_NAME.to_string(), ev_schema),
            ]),
            clock_schema,
            table: opts.table.clone(),
            events_channel,
            events_seq: 0,
            counts: vec![0; n],
            bytes: vec![0; n],
            drops_written: vec![0; n],
            buf: Vec::with_capacity(1 << 20),
            last_host_ns: meta.start_ns,
            start_ns: meta.start_ns,
            sync_file,
            syncer,
            good_len: 0,
            compression: opts.compression.clone(),
            peak_queue_age_ns: 0,
            queue_age_p99_ns: 0,
            clock_drops: 0,
            good_messages: 0,
            triggers: crate::timing::Triggers::new(&opts.triggers, n),
            ptp: opts
                .ptp
                .iter()
                .map(|p| (p.device.clone(), p.config()))
                .collect(),
        };
        let r = (|| {
            for i in 0..n {
                me.bind_channel(i)?;
            }
            me.event(
                meta.start_ns,
                "start",
                "",
                0,
                &format!("episode {}", meta.episode_id),
            )?;
            // Make the header, schemas, channels and metadata durable right away.
            me.mcap.flush().map_err(|e| me.io_err(e))
        })();
        match r {
            Ok(()) => {
                me.mark_good();
                Ok(me)
            }
            Err(e) => {
                me.abandon();
                Err(e)
            }
        }
    }

    /// The records every episode starts with: its metadata, our own two schemas and the
    /// events channel. Returns (clock schema, event schema, events channel).
    fn header_records(w: &mut McapOut, meta: &EpisodeMeta) -> std::io::Result<(u16, u16, u16)> {
        // The episode metadata goes first, outside any chunk: a Metadata record closes the
        // open chunk, and a chunk of schema and channel records alone would have a message
        // time range of 0..0, which viewers (Lichtblick) take for the timeline's start.
        let mut m = BTreeMap::from([
            ("robot_id".to_string(), meta.robot_id.clone()),
            ("episode_id".to_string(), meta.episode_id.clone()),
            ("sequence".to_string(), meta.sequence.to_string()),
            ("task".to_string(), meta.task.clone()),
            ("operator".to_string(), meta.operator.clone()),
            ("source".to_string(), meta.source.clone()),
            ("start_ns".to_string(), meta.start_ns.to_string()),
            (
                "software".to_string(),
                concat!("demotape-recorder ", env!("CARGO_PKG_VERSION")).to_string(),
            ),
            ("config".to_string(), meta.config_toml.clone()),
        ]);
        m.extend(meta.extra.clone());
        w.write_metadata("demotape.episode", &m)?;

        let clock_schema = w.add_schema(
            ClockObservations::TYPE_NAME,
            "ros2msg",
            ClockObservations::schema_text().as_bytes(),
        )?;
        let ev_schema = w.add_schema(
            EpisodeEvent::TYPE_NAME,
            "ros2msg",
            EpisodeEvent::schema_text().as_bytes(),
        )?;
        let md = BTreeMap::from([("offered_qos_profiles".to_string(), QOS_RELIABLE.to_string())]);
        let events_channel = w.add_channel(
            ev_schema,
            "/demotape/events",
            "cdr",
            &md,
            ChannelCodec::Fixed(Codec::Zstd),
        )?;
        Ok((clock_schema, ev_schema, events_channel))
    }

    /// Give up on the file after a write error: close it first, so that nothing the MCAP
    /// writer still holds reaches it when it is dropped.
    fn abandon(self) {
        drop(self.syncer);
        self.slot.close();
        drop(self.mcap);
    }

    /// After a flush: everything up to the writer's position is complete records.
    fn mark_good(&mut self) {
        if self.sync_file.is_some() {
            self.good_len = self.mcap.position();
            self.good_messages = self.counts.iter().sum();
        }
    }

    /// After a write error (disk full, file too large, I/O error): cut the file back to the
    /// end of the last completely written flush, then append a `demotape.episode_end`
    /// metadata record naming the error, a Data End record and a Footer without summary. The
    /// result is a valid MCAP (readers scan it; `demotape recover` can add an index) holding
    /// everything up to the last flush — cutting the interrupted chunk frees the room the
    /// closing records need. Returns what happened, for the error message.
    pub fn close_after_error(mut self, why: &str) -> String {
        let good = self.good_len;
        let path = self.path.clone();
        drop(self.syncer.take());
        let Some(file) = self.sync_file.take() else {
            return "not a regular file; nothing to close".into();
        };
        let messages: u64 = self.counts.iter().sum();
        // discard what the MCAP writer and its buffer still hold: it cannot be written
        self.slot.close();
        drop(self.mcap);
        let tail = closing_records(&[
            ("error", why.to_string()),
            ("end_ns", self.last_host_ns.to_string()),
            ("closed_at_byte", good.to_string()),
        ]);
        match close_at(&file, good, &tail) {
            Ok(()) => format!(
                "{} closed cleanly at byte {good}, the last complete flush: it holds {kept} sensor messages (plus the recorder's clock and event messages); {lost} sensor messages written after that flush are lost",
                path.display(),
                kept = self.good_messages,
                lost = messages.saturating_sub(self.good_messages)
            ),
            Err(e) => format!(
                "{}: could not append the closing records ({e}); the file is complete up to byte {good}: `demotape recover` rebuilds it",
                path.display()
            ),
        }
    }

    fn io_err(&self, source: std::io::Error) -> WriteError {
        WriteError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Write an event on `/demotape/events`.
    pub fn event(
        &mut self,
        t_ns: u64,
        kind: &str,
        topic: &str,
        count: u64,
        detail: &str,
    ) -> Result<(), WriteError> {
        let ev = EpisodeEvent {
            header: Header {
                stamp: Time::from_nanos(t_ns),
                frame_id: String::new(),
            },
            kind: kind.into(),
            topic: topic.into(),
            count,
            detail: detail.into(),
        };
        let (ch, seq) = (self.events_channel, self.events_seq);
        self.events_seq = self.events_seq.wrapping_add(1);
        self.append(ch, seq, t_ns, &ev, "/demotape/events")
    }

    /// Encode one of the recorder's own messages and append it with log = publish = `t`.
    fn append(
        &mut self,
        channel_id: u16,
        sequence: u32,
        t: u64,
        msg: &impl RosMessage,
        topic: &str,
    ) -> Result<(), WriteError> {
        self.buf.clear();
        msg.encode_into(&mut self.buf)
            .map_err(|source| WriteError::Encode {
                path: self.path.clone(),
                topic: topic.into(),
                source,
            })?;
        self.mcap
            .write_message(channel_id, sequence, t, t, &self.buf)
            .map_err(|e| WriteError::Io {
                path: self.path.clone(),
                source: e,
            })
    }

    /// Give stream `i` its channel (and its device's clock channel) if it is bound: declared
    /// with a topic, or a slot the table has bound since. Returns its (channel, device).
    fn bind_channel(&mut self, i: usize) -> Result<Option<(u16, usize)>, WriteError> {
        if let Some(b) = self.bound[i] {
            return Ok(Some(b));
        }
        if self.streams[i].topic.is_empty()
            && let Some(t) = &self.table
            && let Some(spec) = t.read().unwrap_or_else(|e| e.into_inner()).get(i)
        {
            self.streams[i] = spec.clone();
        }
        if self.streams[i].topic.is_empty() {
            return Ok(None);
        }
        let s = self.streams[i].clone();
        let path = self.path.clone();
        let mc = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        let w = &mut self.mcap;
        let sid = match self.schema_ids.get(s.type_name()) {
            Some(id) => *id,
            None => {
                let id = w
                    .add_schema(s.type_name(), "ros2msg", s.schema_text().as_bytes())
                    .map_err(mc)?;
                self.schema_ids.insert(s.type_name().to_string(), id);
                id
            }
        };
        let qos = if matches!(
            s.modality,
            Modality::Rgb | Modality::Depth | Modality::CompressedRgb
        ) {
            QOS_SENSOR
        } else {
            QOS_RELIABLE
        };
        let mut md = BTreeMap::from([
            ("offered_qos_profiles".to_string(), qos.to_string()),
            ("demotape.device".to_string(), s.device.clone()),
        ]);
        // as rosbag2 (Iron and later) writes it; our own types hash like any other
        let hash = match &s.ros_type {
            Some(t) => Some(t.hash.clone()),
            None => hal::ros::Registry::builtin().type_hash(s.type_name()).ok(),
        };
        if let Some(h) = hash {
            md.insert("topic_type_hash".to_string(), h);
        }
        // which time header.stamp / log_time is: the publisher's (clock-synchronized) header
        // stamp, or the receive time for a type without a header
        let stamp = match &s.ros_type {
            Some(t) if !t.stamped => "receive",
            _ => "header",
        };
        md.insert("demotape.stamp".to_string(), stamp.to_string());
        let codec = self.compression.for_stream(&s.topic, s.modality);
        let channel_id = w
            .add_channel(sid, &s.topic, "cdr", &md, codec)
            .map_err(mc)?;
        let di = match self.devices.iter().position(|d| d.name == s.device) {
            Some(d) => d,
            None => {
                let topic = format!("/demotape/clock/{}", crate::config::sanitize(&s.device));
                let md = BTreeMap::from([(
                    "offered_qos_profiles".to_string(),
                    QOS_RELIABLE.to_string(),
                )]);
                let channel = w
                    .add_channel(
                        self.clock_schema,
                        &topic,
                        "cdr",
                        &md,
                        ChannelCodec::Fixed(Codec::Zstd),
                    )
                    .map_err(mc)?;
                let mapper = match self.ptp.get(&s.device) {
                    Some(c) => Mapper::Ptp(PtpClock::new(c.clone())),
                    None => Mapper::Envelope(EnvelopeClock::default()),
                };
                self.devices.push(DeviceState {
                    name: s.device.clone(),
                    channel,
                    mapper,
                    resets_written: 0,
                    ptp_fault_written: false,
                    batch: ClockObservations {
                        device: s.device.clone(),
                        ..Default::default()
                    },
                    sequence: 0,
                });
                self.devices.len() - 1
            }
        };
        self.bound[i] = Some((channel_id, di));
        self.triggers.bind(i, &s);
        Ok(self.bound[i])
    }

    /// Synchronize, stamp, encode and append one sample. A triggered camera's frame waits
    /// (in memory, a frame period or so) for the pulse that exposed it.
    pub fn write_sample(&mut self, s: Sample) -> Result<(), WriteError> {
        let i = s.stream;
        let bound = if i < self.streams.len() {
            self.bind_channel(i)?
        } else {
            None
        };
        let Some((channel_id, di)) = bound else {
            // a source pushed for a slot it never bound: a bug, but never a crash
            tracing::error!(stream = i, "sample of an unbound stream not written");
            return Ok(());
        };
        self.last_host_ns = self.last_host_ns.max(s.host_receive_ns);
        let mapped = self.synchronize(&s, di)?;
        if matches!(s.payload, hal::Payload::Clock) {
            // an observation only: it is on the clock channel now
            return self.release_frames(false);
        }
        if self.triggers.is_empty() {
            return self.emit(s, channel_id, mapped);
        }
        if matches!(s.payload, hal::Payload::Trigger(_)) {
            let topic = self.streams[i].topic.clone();
            self.triggers.pulse(i, &topic, s.sequence, mapped);
        }
        if let Some(s) = self.triggers.hold(s, channel_id, mapped) {
            self.emit(s, channel_id, mapped)?;
        }
        self.release_frames(false)
    }

    /// Write the triggered frames whose time is decided.
    fn release_frames(&mut self, all: bool) -> Result<(), WriteError> {
        for r in self.triggers.release(self.last_host_ns, all) {
            self.emit(r.sample, r.channel, r.stamp_ns)?;
        }
        Ok(())
    }

    /// Map the sample's device stamp onto the reference clock and record the observation on
    /// its device's clock channel.
    fn synchronize(&mut self, s: &Sample, di: usize) -> Result<u64, WriteError> {
        let dev = &mut self.devices[di];
        let mapped = dev.mapper.observe(
            s.transmit_stamp_us.unwrap_or(s.device_stamp_us),
            s.host_receive_ns,
            s.boot_id,
        );
        // Fitted on the transmit stamp; the event stamp is translated with that fit (and can
        // be no later than the receive time either).
        let mapped = match s.transmit_stamp_us {
            Some(_) => dev
                .mapper
                .map(s.device_stamp_us)
                .unwrap_or(mapped)
                .min(s.host_receive_ns),
            None => mapped,
        };
        let resets = dev.mapper.report().resets;
        if resets > dev.resets_written {
            dev.resets_written = resets;
            let why = dev
                .mapper
                .last_reset()
                .map(|r| format!("{r:?}"))
                .unwrap_or_default();
            let detail = format!(
                "clock of {} started over ({why}); boot id {}",
                dev.name, s.boot_id
            );
            let topic = format!("/demotape/clock/{}", crate::config::sanitize(&dev.name));
            self.event(s.host_receive_ns, "clock_reset", &topic, resets, &detail)?;
        }
        let dev = &mut self.devices[di];
        if !dev.ptp_fault_written
            && let Some(f) = dev.mapper.ptp_fault()
        {
            dev.ptp_fault_written = true;
            let detail = format!(
                "{}: {f}; its samples are mapped by the fitted clock from here on",
                dev.name
            );
            tracing::warn!(device = %dev.name, "PTP claim failed: {f}");
            let topic = format!("/demotape/clock/{}", crate::config::sanitize(&dev.name));
            self.event(s.host_receive_ns, "ptp_fault", &topic, 1, &detail)?;
        }
        let dev = &self.devices[di];
        if dev.batch.boot_id != s.boot_id && !dev.batch.device_stamp_us.is_empty() {
            // a counter restart ends the batch: one batch never mixes two boots
            let now = s.host_receive_ns;
            self.flush_clock(di, now)?;
        }
        let dev = &mut self.devices[di];
        dev.batch.boot_id = s.boot_id;
        dev.batch
            .device_stamp_us
            .push(s.transmit_stamp_us.unwrap_or(s.device_stamp_us));
        dev.batch.event_stamp_us.push(s.device_stamp_us);
        dev.batch.host_receive_ns.push(s.host_receive_ns);
        dev.batch.sequence.push(s.sequence);
        dev.batch.mapped_ns.push(mapped);
        Ok(mapped)
    }

    /// Stamp, encode and append one sample at `stamp_ns`.
    fn emit(&mut self, mut s: Sample, channel_id: u16, stamp_ns: u64) -> Result<(), WriteError> {
        let i = s.stream;
        if let Some(h) = s.payload.header_mut() {
            h.stamp = Time::from_nanos(stamp_ns);
        }
        self.buf.clear();
        s.payload
            .encode_into(&mut self.buf)
            .map_err(|source| WriteError::Encode {
                path: self.path.clone(),
                topic: self.streams[i].topic.clone(),
                source,
            })?;
        self.mcap
            .write_message(
                channel_id,
                s.sequence as u32,
                stamp_ns,
                s.host_receive_ns,
                &self.buf,
            )
            .map_err(|e| WriteError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        self.counts[i] += 1;
        self.bytes[i] += self.buf.len() as u64;
        Ok(())
    }

    /// Bytes of messages written so far (serialized, before compression).
    pub fn bytes_written(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// Messages written so far, per stream.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Where this episode is being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The clock-sync state of every device so far (a triggered camera's with its match
    /// state).
    pub fn sync_reports(&self) -> BTreeMap<String, SyncReport> {
        let mut out: BTreeMap<String, SyncReport> = self
            .devices
            .iter()
            .map(|d| (d.name.clone(), d.mapper.report()))
            .collect();
        let streams = &self.streams;
        for (device, t) in self
            .triggers
            .reports(|camera| crate::timing::Triggers::camera_device(camera, streams))
        {
            if let Some(r) = out.get_mut(&device) {
                r.trigger = Some(t);
            }
        }
        out
    }

    /// Write a metadata record now (labels, split links), after flushing held messages.
    pub fn write_metadata(
        &mut self,
        name: &str,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), WriteError> {
        self.mcap
            .write_metadata(name, &metadata)
            .map_err(|e| self.io_err(e))
    }

    fn flush_clock(&mut self, di: usize, now: u64) -> Result<(), WriteError> {
        let dev = &mut self.devices[di];
        if dev.batch.device_stamp_us.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::replace(
            &mut dev.batch,
            ClockObservations {
                device: dev.name.clone(),
                ..Default::default()
            },
        );
        let t = batch.host_receive_ns.last().copied().unwrap_or(now);
        batch.header = Header {
            stamp: Time::from_nanos(t),
            frame_id: dev.name.clone(),
        };
        let (ch, seq) = (dev.channel, dev.sequence);
        dev.sequence = dev.sequence.wrapping_add(1);
        let topic = format!("/demotape/clock/{}", batch.device);
        self.append(ch, seq, t, &batch, &topic)
    }

    /// Write clock batches and new drop counts, close the chunk and hand it to the OS.
    pub fn flush(&mut self, drops: &[u64]) -> Result<(), WriteError> {
        // frames that waited too long for a pulse go out with their own clock's time
        self.release_frames(false)?;
        let now = self.last_host_ns;
        for di in 0..self.devices.len() {
            self.flush_clock(di, now)?;
        }
        for i in 0..self.streams.len() {
            let d = drops.get(i).copied().unwrap_or(0);
            if d > self.drops_written[i] {
                let delta = d - self.drops_written[i];
                self.drops_written[i] = d;
                let topic = self.streams[i].topic.clone();
                self.event(
                    now,
                    "drop",
                    &topic,
                    delta,
                    &format!("{delta} samples dropped (capture queue full); {d} in total"),
                )?;
            }
        }
        self.mcap.flush().map_err(|e| self.io_err(e))?;
        self.mark_good();
        Ok(())
    }

    /// Final flush, the closing metadata records and the MCAP summary section.
    /// The last flush, the stop event, the closing metadata and the summary section.
    #[allow(clippy::type_complexity)]
    fn finish_records(
        &mut self,
        drops: &[u64],
        end_ns: u64,
        peak_queue_bytes: usize,
    ) -> Result<(Vec<StreamSummary>, BTreeMap<String, SyncReport>, u64), WriteError> {
        self.release_frames(true)?;
        self.flush(drops)?;
        let end = end_ns.max(self.last_host_ns);
        let total: u64 = self.counts.iter().sum();
        self.event(end, "stop", "", total, "episode complete")?;
        self.mcap.flush().map_err(|e| self.io_err(e))?;
        let comp = self.mcap.compression();
        let streams: Vec<StreamSummary> = self
            .streams
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.topic.is_empty()) // slots never bound
            .map(|(i, s)| StreamSummary {
                topic: s.topic.clone(),
                messages: self.counts[i],
                drops: drops.get(i).copied().unwrap_or(0),
                bytes: self.bytes[i],
                compression: self.bound[i]
                    .and_then(|(ch, _)| comp.get(&ch))
                    .and_then(|c| c.codec),
                stored_bytes: self.bound[i]
                    .and_then(|(ch, _)| comp.get(&ch))
                    .map_or(0, |c| c.stored_bytes),
            })
            .collect();
        let channels: BTreeMap<String, String> = streams
            .iter()
            .map(|s| {
                (
                    s.topic.clone(),
                    serde_json::to_string(s).unwrap_or_default(),
                )
            })
            .collect();
        let sync = self.sync_reports();
        let sync_md: BTreeMap<String, String> = sync
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default()))
            .collect();
        let end_md = BTreeMap::from([
            ("end_ns".to_string(), end.to_string()),
            ("messages".to_string(), total.to_string()),
            ("drops".to_string(), drops.iter().sum::<u64>().to_string()),
            ("peak_queue_bytes".to_string(), peak_queue_bytes.to_string()),
            (
                "peak_queue_age_ms".to_string(),
                format!("{:.1}", self.peak_queue_age_ns as f64 / 1e6),
            ),
            (
                "queue_age_p99_ms".to_string(),
                format!("{:.1}", self.queue_age_p99_ns as f64 / 1e6),
            ),
            (
                "clock_observations_dropped".to_string(),
                self.clock_drops.to_string(),
            ),
        ]);
        for (name, metadata) in [
            ("demotape.channels", channels),
            ("demotape.sync", sync_md),
            ("demotape.episode_end", end_md),
        ] {
            self.mcap
                .write_metadata(name, &metadata)
                .map_err(|e| self.io_err(e))?;
        }
        self.mcap.finish().map_err(|e| self.io_err(e))?;
        Ok((streams, sync, end))
    }

    pub fn finish(
        mut self,
        drops: &[u64],
        end_ns: u64,
        peak_queue_bytes: usize,
    ) -> Result<EpisodeSummary, WriteError> {
        // A failure before the summary is written closes the file at its last complete
        // flush, like any write error: what was captured stays readable.
        let (streams, sync, end) = match self.finish_records(drops, end_ns, peak_queue_bytes) {
            Ok(v) => v,
            Err(e) => {
                let closed = self.close_after_error(&e.to_string());
                return Err(WriteError::Closed {
                    error: Box::new(e),
                    closed,
                });
            }
        };
        let path = self.path.clone();
        let mut inner = self.mcap.into_inner();
        let io = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        if let Err(e) = std::io::Write::flush(&mut inner) {
            // the summary did not reach the file: close it at the last complete flush
            drop(inner.into_parts());
            drop(self.syncer.take());
            let why = format!("writing the summary section failed: {e}");
            let good = self.good_len;
            let closed = match &self.sync_file {
                Some(f) => match close_at(
                    f,
                    good,
                    &closing_records(&[
                        ("error", why.clone()),
                        ("end_ns", end.to_string()),
                        ("closed_at_byte", good.to_string()),
                    ]),
                ) {
                    Ok(()) => format!("{} closed cleanly at byte {good}", path.display()),
                    Err(e2) => format!(
                        "{}: could not append the closing records ({e2}); `demotape recover` rebuilds it",
                        path.display()
                    ),
                },
                None => "not a regular file; nothing to close".into(),
            };
            return Err(WriteError::Closed {
                error: Box::new(io(e)),
                closed,
            });
        }
        drop(self.syncer.take());
        // A finished episode is durable: its data, then its directory entry.
        if let Some(f) = &self.sync_file {
            f.sync_data().map_err(io)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(EpisodeSummary {
            path,
            streams,
            sync,
            start_ns: self.start_ns,
            end_ns: end,
            file_bytes,
            peak_queue_bytes,
            peak_queue_age_ms: self.peak_queue_age_ns as f64 / 1e6,
            queue_age_p99_ms: self.queue_age_p99_ns as f64 / 1e6,
        })
    }
}

/// Cut `file` back to `good` (a record boundary) and append `tail` there, durably.
fn close_at(file: &File, good: u64, tail: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.set_len(good)?;
    let mut f = file;
    f.seek(SeekFrom::Start(good))?;
    f.write_all(tail)?;
    f.sync_data()
}

/// A `Metadata` record (`demotape.episode_end`), `DataEnd` and `Footer` (no summary) and the
/// closing magic, encoded per the MCAP spec.
fn closing_records(entries: &[(&str, String)]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut map = Vec::new();
    for (k, v) in entries {
        string(&mut map, k);
        string(&mut map, v);
    }
    let mut md = Vec::new();
    string(&mut md, "demotape.episode_end");
    md.extend_from_slice(&(map.len() as u32).to_le_bytes());
    md.extend_from_slice(&map);
    let mut out = Vec::new();
    out.push(0x0C); // Metadata
    out.extend_from_slice(&(md.len() as u64).to_le_bytes());
    out.extend_from_slice(&md);
    out.push(0x0F); // DataEnd: data section CRC 0 = not computed
    out.extend_from_slice(&4u64.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0x02); // Footer: no summary section
    out.extend_from_slice(&20u64.to_le_bytes());
    out.extend_from_slice(&[0u8; 20]);
    out.extend_from_slice(mcap::MAGIC);
    out
}
