//! `demotape-recorder run`: the service. Sources run for the life of the process; a single
//! episode-manager thread owns the capture queue's receiving end and decides, sample by
//! sample, where each one goes:
//!
//! - **idle**: into the pre-roll ring (bounded by seconds and by bytes), so an episode can
//!   begin with what happened just before "start";
//! - **recording**: into the current episode file; when a part reaches the split size or
//!   duration, the part is finished and the next one opened *between two samples*, so no
//!   message is lost or written twice at the seam.
//!
//! Commands (start, stop, discard, mark, status) arrive from Zenoh queryables under
//! `<prefix>/<robot>/ctl/<verb>` (JSON in, JSON out) and are executed by the manager thread
//! in order. Stop is exact: everything the recorder received before the stop command was
//! taken is written, nothing after. Status is published every second on
//! `<prefix>/<robot>/status`. The disk guard refuses to start, or stops the episode cleanly,
//! when free space falls below `control.min_free_mb`.

use crate::config::{Config, sanitize};
use crate::queue::{CaptureQueue, Item, QueueStats};
use crate::writer::{EpisodeMeta, EpisodeWriter, WriterOptions};
use crate::{OffsetSink, QueueLimits};
use anyhow::Context;
use crossbeam_channel::{Receiver, Sender};
use hal::{Sample, Source, StreamSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// `[control]`: episode control, pre-roll, splitting, disk guard, status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Queryables live under `<key_prefix>/<robot_id>/ctl/*`, status on `.../status`.
    pub key_prefix: String,
    /// Seconds of data kept while idle and written at the start of the next episode.
    pub preroll_s: f64,
    /// Upper bound of the pre-roll ring in bytes (oldest samples leave first).
    pub preroll_max_bytes: usize,
    /// Start a new part when the current one holds this many message bytes (0 = never).
    pub split_max_bytes: u64,
    /// Start a new part after this many seconds (0 = never).
    pub split_max_s: f64,
    /// Refuse to start, or stop cleanly, below this much free space (MB) on out_dir.
    pub min_free_mb: u64,
    /// Status publication period.
    pub status_period_ms: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            key_prefix: "demotape".into(),
            preroll_s: 2.0,
            preroll_max_bytes: 256 * 1024 * 1024,
            split_max_bytes: 0,
            split_max_s: 0.0,
            min_free_mb: 1024,
            status_period_ms: 1000,
        }
    }
}

impl ControlConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=600.0).contains(&self.preroll_s) {
            return Err(format!(
                "control.preroll_s = {} is outside 0..=600",
                self.preroll_s
            ));
        }
        if !(self.split_max_s == 0.0 || self.split_max_s >= 1.0) {
            return Err("control.split_max_s must be 0 (off) or at least 1".into());
        }
        if self.split_max_bytes != 0 && self.split_max_bytes < 1024 * 1024 {
            return Err("control.split_max_bytes must be 0 (off) or at least 1 MiB".into());
        }
        if !(100..=60_000).contains(&self.status_period_ms) {
            return Err("control.status_period_ms must be in 100..=60000".into());
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['*', '$', '?', '#']) {
            return Err("control.key_prefix must be a plain key (no wildcards)".into());
        }
        Ok(())
    }
}

/// A command from an operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CommandArgs {
    pub task: Option<String>,
    pub operator: Option<String>,
    pub tags: Vec<String>,
    /// Outcome label: success, slip, drop, miss, failure, or anything the lab uses.
    pub outcome: Option<String>,
    pub note: Option<String>,
}

/// Limits on what one control request may carry. Labels are copied into the episode's
/// metadata and into every status message (once a second to every subscriber), so they are
/// bounded; a request over a limit is refused with the limit named.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// `task`, `note`: bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 4096;
/// `operator`, `outcome`, each tag.
pub const MAX_LABEL_BYTES: usize = 256;
/// Tags in one request.
pub const MAX_TAGS: usize = 32;
/// Tags and marks one episode collects over all its requests.
pub const MAX_EPISODE_TAGS: usize = 256;
pub const MAX_EPISODE_MARKS: usize = 1000;

impl CommandArgs {
    /// Check every string and list against the limits above.
    pub fn validate(&self) -> Result<(), String> {
        let check = |what: &str, v: &str, max: usize| {
            if v.len() > max {
                Err(format!(
                    "{what} is {} bytes; at most {max} are accepted",
                    v.len()
                ))
            } else if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                Err(format!("{what} contains control characters"))
            } else {
                Ok(())
            }
        };
        for (what, v, max) in [
            ("task", &self.task, MAX_TEXT_BYTES),
            ("note", &self.note, MAX_TEXT_BYTES),
            ("operator", &self.operator, MAX_LABEL_BYTES),
            ("outcome", &self.outcome, MAX_LABEL_BYTES),
        ] {
            if let Some(v) = v {
                check(what, v, max)?;
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!(
                "{} tags; at most {MAX_TAGS} per request",
                self.tags.len()
            ));
        }
        for t in &self.tags {
            check("a tag", t, MAX_LABEL_BYTES)?;
            if t.contains(',') {
                return Err(format!(
                    "tag {t:?} contains a comma (tags are stored comma-separated)"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Discard,
    Mark,
    Status,
}

impl Verb {
    pub fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "start" => Verb::Start,
            "stop" => Verb::Stop,
            "discard" => Verb::Discard,
            "mark" => Verb::Mark,
            "status" => Verb::Status,
            _ => return None,
        })
    }
}

/// The answer to a command: `ok` with details, or an error message.
pub type Reply = Result<serde_json::Value, String>;

type Command = (Verb, CommandArgs, u64, Sender<Reply>);

/// Per-channel live figures.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct ChannelStatus {
    pub topic: String,
    /// Messages taken into the capture queue since the recorder started (on their way to the
    /// episode or the pre-roll).
    pub received: u64,
    pub bytes: u64,
    /// Samples dropped because the capture queue was full, since the recorder started.
    pub drops: u64,
    /// Messages per second over the last status period.
    pub rate_hz: f64,
    pub mb_per_s: f64,
    /// Zenoh topics: messages refused as malformed CDR / of another type, publisher
    /// sequence gaps, silences (`stale` events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkCounters>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct NetworkCounters {
    pub malformed: u64,
    pub wrong_type: u64,
    pub gaps: u64,
    pub stale: u64,
}

/// Per-channel rates over the last status period, from the cumulative counters.
#[derive(Default)]
pub struct RateMeter {
    prev: Option<(u64, Vec<(u64, u64)>)>,
}

impl RateMeter {
    /// Set `rate_hz` and `mb_per_s` of `channels` from what changed since the last call.
    pub fn update(&mut self, now_ns: u64, channels: &mut [ChannelStatus]) {
        if let Some((t0, p)) = &self.prev {
            let dt = now_ns.saturating_sub(*t0) as f64 / 1e9;
            if dt > 0.0 {
                for (c, (m0, b0)) in channels.iter_mut().zip(p) {
                    c.rate_hz = c.received.saturating_sub(*m0) as f64 / dt;
                    c.mb_per_s = c.bytes.saturating_sub(*b0) as f64 / dt / 1e6;
                }
            }
        }
        self.prev = Some((
            now_ns,
            channels.iter().map(|c| (c.received, c.bytes)).collect(),
        ));
    }
}

/// What `<prefix>/<robot>/status` carries.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Status {
    pub robot: String,
    pub t_ns: u64,
    /// `idle` or `recording`.
    pub state: String,
    pub episode: Option<serde_json::Value>,
    pub channels: Vec<ChannelStatus>,
    pub disk_path: PathBuf,
    pub disk_free_bytes: u64,
    /// Per device: p99 of |mapped - fitted| residual (µs) and resets, while recording.
    pub sync: BTreeMap<String, serde_json::Value>,
    pub preroll_s: f64,
    pub preroll_bytes: usize,
    /// Samples that aged out of the pre-roll while idle (not part of any episode).
    pub preroll_evicted: u64,
    pub episodes_recorded: u64,
    pub last_episode: Option<serde_json::Value>,
    /// Why the last episode stopped on its own (disk low, write error), if it did.
    pub last_error: Option<String>,
    /// The live copy for viewers (`[live]`), when enabled.
    pub live: Option<crate::live::LiveCounters>,
    /// Age of the oldest sample received but not yet handed to the writer (ms): with the
    /// flush interval, how much a crash (kill -9, power cut) would lose right now.
    pub queue_age_ms: f64,
    /// The longest any sample has waited in the capture queue so far (ms).
    pub queue_peak_age_ms: f64,
}

/// Free bytes available to us on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

struct Recording {
    writer: EpisodeWriter,
    meta: EpisodeMeta,
    part: u32,
    part_start_ns: u64,
    drops_base: Vec<u64>,
    paths: Vec<PathBuf>,
    marks: Vec<serde_json::Value>,
    outcome: Option<String>,
    note: Option<String>,
    tags: Vec<String>,
    messages: u64,
    /// The queue's wait histogram when the episode started (its p99 is the episode's own).
    age_hist_start: Vec<u64>,
}

/// The episode manager (runs on its own thread).
struct Manager {
    cfg: Config,
    robot: String,
    dir: PathBuf,
    streams: Vec<StreamSpec>,
    stats: Arc<QueueStats>,
    opts: WriterOptions,
    preroll: VecDeque<(Sample, usize)>,
    preroll_bytes: usize,
    preroll_evicted: u64,
    /// Topics whose last source event was `stale` (not `resumed` since), with that event.
    stale: BTreeMap<String, hal::SourceEvent>,
    rec: Option<Recording>,
    sequence: u64,
    status: Arc<Mutex<Status>>,
    last_free_check: std::time::Instant,
    episodes_recorded: u64,
    /// Free space of a directory ([`free_bytes`]; replaceable in tests).
    free_space: FreeSpace,
}

type FreeSpace = Arc<dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync>;

impl Manager {
    fn new(
        cfg: Config,
        streams: Vec<StreamSpec>,
        stats: Arc<QueueStats>,
        status: Arc<Mutex<Status>>,
        free_space: FreeSpace,
    ) -> Manager {
        let robot = sanitize(&cfg.recorder.robot_id);
        Manager {
            dir: cfg.recorder.out_dir.join(&robot),
            robot,
            opts: WriterOptions {
                ptp: cfg.sync.ptp.clone(),
                // resolved (or refused) when the service starts, in `run_async`
                triggers: crate::timing::resolve_triggers(&cfg.sync.triggers, &cfg.serial)
                    .unwrap_or_default(),
                ..WriterOptions::from_config(&cfg.recorder)
            },
            cfg,
            streams,
            stats,
            preroll: VecDeque::new(),
            preroll_bytes: 0,
            preroll_evicted: 0,
            stale: BTreeMap::new(),
            rec: None,
            sequence: 0,
            status,
            last_free_check: std::time::Instant::now(),
            episodes_recorded: 0,
            free_space,
        }
    }

    fn preroll_push(&mut self, s: Sample, bytes: usize) {
        self.preroll_bytes += bytes;
        let horizon = s
            .host_receive_ns
            .saturating_sub((self.cfg.control.preroll_s * 1e9) as u64);
        self.preroll.push_back((s, bytes));
        while let Some((front, b)) = self.preroll.front() {
            if front.host_receive_ns < horizon
                || self.preroll_bytes > self.cfg.control.preroll_max_bytes
            {
                self.preroll_bytes -= *b;
                self.preroll.pop_front();
                self.preroll_evicted += 1;
            } else {
                break;
            }
        }
    }

    fn take(&mut self, item: Item) -> anyhow::Result<()> {
        match item {
            Item::Sample { sample, bytes } => {
                self.stats.taken(&sample, bytes, hal::sim::now_ns());
                if self.rec.is_some() {
                    self.maybe_split(sample.host_receive_ns)?;
                    let rec = self.rec.as_mut().expect("recording");
                    if !matches!(sample.payload, hal::Payload::Clock) {
                        rec.messages += 1;
                    }
                    rec.writer.write_sample(sample)?;
                } else if self.cfg.control.preroll_s > 0.0 {
                    self.preroll_push(sample, bytes);
                }
            }
            Item::Event(e) => {
                // the state of every stream is known at all times, so an episode starting
                // while a publisher is gone begins by saying so
                match e.kind.as_str() {
                    "stale" => {
                        self.stale.insert(e.topic.clone(), e.clone());
                    }
                    "resumed" => {
                        self.stale.remove(&e.topic);
                    }
                    _ => {}
                }
                if let Some(rec) = self.rec.as_mut() {
                    rec.writer
                        .event(e.t_ns, &e.kind, &e.topic, e.count, &e.detail)?;
                } else {
                    tracing::info!(kind = %e.kind, topic = %e.topic, detail = %e.detail, "event while idle");
                }
            }
        }
        Ok(())
    }

    fn drops(&self, rec: &Recording) -> Vec<u64> {
        relative_drops(&self.stats, &rec.drops_base)
    }

    /// `<robot>_<UTC start>_<seq>`: the episode id, and the stem of its part files.
    fn episode_id(&self, start_ns: u64, seq: u64) -> String {
        let t = chrono::DateTime::from_timestamp_nanos(start_ns as i64).format("%Y%m%dT%H%M%S");
        format!("{}_{t}_{seq:04}", self.robot)
    }

    fn episode_path(&self, meta: &EpisodeMeta, part: u32) -> PathBuf {
        let id = &meta.episode_id;
        self.dir.join(if part == 0 {
            format!("{id}.mcap")
        } else {
            format!("{id}_part{part:03}.mcap")
        })
    }

    fn open_part(&self, meta: &EpisodeMeta, part: u32) -> anyhow::Result<(EpisodeWriter, PathBuf)> {
        let path = self.episode_path(meta, part);
        let mut m = meta.clone();
        m.extra.insert("part".into(), part.to_string());
        let w = EpisodeWriter::create(&path, &self.streams, &self.opts, &m)?;
        Ok((w, path))
    }

    fn start(&mut self, args: CommandArgs, t_cmd: u64) -> Reply {
        if let Some(rec) = &self.rec {
            return Err(format!(
                "already recording episode {} ({}); stop or discard it first",
                rec.meta.episode_id,
                rec.writer.path().display()
            ));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let free =
            (self.free_space)(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let need = self.cfg.control.min_free_mb * 1_000_000;
        if free < need {
            return Err(format!(
                "refusing to start: only {} MB free on {} (control.min_free_mb = {})",
                free / 1_000_000,
                self.dir.display(),
                self.cfg.control.min_free_mb
            ));
        }
        let seq = self.sequence;
        let start_ns = t_cmd;
        let task = args.task.unwrap_or_else(|| self.cfg.recorder.task.clone());
        let operator = args
            .operator
            .unwrap_or_else(|| self.cfg.recorder.operator.clone());
        let mut extra = BTreeMap::new();
        extra.insert("tags".into(), args.tags.join(","));
        extra.insert("preroll_s".into(), self.cfg.control.preroll_s.to_string());
        // streams whose publisher was already gone when the episode started
        extra.insert(
            "stale_at_start".into(),
            self.stale.keys().cloned().collect::<Vec<_>>().join(","),
        );
        let meta = EpisodeMeta {
            robot_id: self.cfg.recorder.robot_id.clone(),
            episode_id: self.episode_id(start_ns, seq),
            sequence: seq,
            task,
            operator,
            source: "run".into(),
            start_ns,
            config_toml: toml::to_string(&self.cfg).unwrap_or_default(),
            extra,
        };
        let (writer, path) = self.open_part(&meta, 0).map_err(|e| format!("{e:#}"))?;
        self.sequence += 1;
        let mut rec = Recording {
            writer,
            meta,
            part: 0,
            part_start_ns: start_ns,
            drops_base: self.stats.drops_snapshot(),
            paths: vec![path.clone()],
            marks: Vec::new(),
            outcome: None,
            note: args.note,
            tags: args.tags,
            messages: 0,
            age_hist_start: self.stats.age_histogram(),
        };
        // the pre-roll: what arrived within preroll_s before the command
        let horizon = start_ns.saturating_sub((self.cfg.control.preroll_s * 1e9) as u64);
        let mut pre = 0u64;
        for (s, _) in self.preroll.drain(..) {
            if s.host_receive_ns >= horizon {
                pre += 1;
                rec.messages += 1;
                rec.writer.write_sample(s).map_err(|e| e.to_string())?;
            }
        }
        self.preroll_bytes = 0;
        for (topic, e) in &self.stale {
            let detail = format!(
                "stale at start: silent since {:.2} s before the episode ({})",
                start_ns.saturating_sub(e.t_ns) as f64 / 1e9,
                e.detail
            );
            rec.writer
                .event(start_ns, "stale", topic, 1, &detail)
                .map_err(|e| e.to_string())?;
        }
        rec.writer
            .event(
                start_ns,
                "preroll",
                "",
                pre,
                &format!(
                    "{pre} messages from the {} s before start",
                    self.cfg.control.preroll_s
                ),
            )
            .map_err(|e| e.to_string())?;
        let id = rec.meta.episode_id.clone();
        tracing::info!(episode = %id, path = %path.display(), preroll = pre, "recording");
        self.rec = Some(rec);
        Ok(serde_json::json!({"episode": id, "path": path, "preroll_messages": pre}))
    }

    fn maybe_split(&mut self, t: u64) -> anyhow::Result<()> {
        let c = &self.cfg.control;
        let Some(rec) = &self.rec else { return Ok(()) };
        let by_bytes = c.split_max_bytes > 0 && rec.writer.bytes_written() >= c.split_max_bytes;
        let by_time = c.split_max_s > 0.0
            && t.saturating_sub(rec.part_start_ns) as f64 / 1e9 >= c.split_max_s;
        if !(by_bytes || by_time) {
            return Ok(());
        }
        let next = rec.part + 1;
        let (writer, path) = {
            let mut m = rec.meta.clone();
            // open the next part before closing this one so a failure leaves this one intact
            let path = self.episode_path(&m, next);
            m.extra.insert("part".into(), next.to_string());
            m.extra
                .insert("previous_part".into(), file_name(rec.writer.path()));
            (
                EpisodeWriter::create(&path, &self.streams, &self.opts, &m)?,
                path,
            )
        };
        let rec = self.rec.as_mut().expect("recording");
        let mut old = std::mem::replace(&mut rec.writer, writer);
        let linked = old.write_metadata(
            "demotape.split",
            BTreeMap::from([
                ("part".into(), rec.part.to_string()),
                ("next_part".into(), file_name(&path)),
                (
                    "reason".into(),
                    if by_bytes { "size" } else { "duration" }.into(),
                ),
            ]),
        );
        if let Err(e) = linked {
            // keep what this part holds: closed at its last complete flush
            let closed = old.close_after_error(&e.to_string());
            return Err(crate::writer::WriteError::Closed {
                error: Box::new(e),
                closed,
            }
            .into());
        }
        let drops = relative_drops(&self.stats, &rec.drops_base);
        let summary = old.finish(&drops, t, 0)?;
        // drops are reported once, in the part where they happened
        rec.drops_base = self.stats.drops_snapshot();
        tracing::info!(part = rec.part, path = %summary.path.display(), "part finished, split");
        rec.part = next;
        rec.part_start_ns = t;
        rec.paths.push(path);
        Ok(())
    }

    /// End the current episode: write what arrived before `t_cmd`, labels, finish.
    fn finish(&mut self, rx: &Receiver<Item>, t_cmd: u64, reason: &str) -> Result<Closed, String> {
        // drain what was received before the command (FIFO: stop at the first later one)
        while let Ok(item) = rx.try_recv() {
            if let Item::Sample { sample, bytes } = item {
                if sample.host_receive_ns > t_cmd {
                    let rec = self.rec.take().expect("recording");
                    let out = self.close(rec, t_cmd, reason);
                    // idle now: the later sample starts the next pre-roll
                    self.take(Item::Sample { sample, bytes })
                        .map_err(|e| format!("{e:#}"))?;
                    return out;
                }
                self.take(Item::Sample { sample, bytes })
                    .map_err(|e| format!("{e:#}"))?;
            } else {
                self.take(item).map_err(|e| format!("{e:#}"))?;
            }
        }
        let rec = self.rec.take().expect("recording");
        self.close(rec, t_cmd, reason)
    }

    fn close(&mut self, rec: Recording, t_end: u64, reason: &str) -> Result<Closed, String> {
        let drops = self.drops(&rec);
        let labels = BTreeMap::from([
            (
                "outcome".to_string(),
                rec.outcome.clone().unwrap_or_default(),
            ),
            ("note".to_string(), rec.note.clone().unwrap_or_default()),
            ("tags".to_string(), rec.tags.join(",")),
            ("stop_reason".to_string(), reason.to_string()),
            ("parts".to_string(), rec.paths.len().to_string()),
            (
                "marks".to_string(),
                serde_json::to_string(&rec.marks).unwrap_or_default(),
            ),
        ]);
        let peak = self
            .stats
            .peak_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut writer = rec.writer;
        writer.peak_queue_age_ns = self
            .stats
            .peak_age_ns
            .load(std::sync::atomic::Ordering::Relaxed);
        writer.queue_age_p99_ns =
            crate::queue::age_quantile_ns(&rec.age_hist_start, &self.stats.age_histogram(), 0.99);
        // since the service started: observations are not per episode
        writer.clock_drops = self
            .stats
            .clock_drops
            .load(std::sync::atomic::Ordering::Relaxed);
        let labelled = (|| -> Result<(), crate::writer::WriteError> {
            writer.event(t_end, "stop_reason", "", 0, reason)?;
            writer.write_metadata("demotape.labels", labels)
        })();
        let r = match labelled {
            // a write error closes the file at its last complete flush (never a lost episode)
            Err(e) => {
                let closed = writer.close_after_error(&e.to_string());
                Err(crate::writer::WriteError::Closed {
                    error: Box::new(e),
                    closed,
                })
            }
            Ok(()) => writer.finish(&drops, t_end, peak),
        };
        let summary = r.map_err(|e| format!("finishing {}: {e:#}", rec.meta.episode_id))?;
        self.episodes_recorded += 1;
        tracing::info!(episode = %rec.meta.episode_id, messages = rec.messages, parts = rec.paths.len(),
            path = %summary.path.display(), reason, "episode finished");
        Ok(Closed {
            episode_id: rec.meta.episode_id,
            paths: rec.paths,
            messages: rec.messages,
            drops: drops.iter().sum(),
            outcome: rec.outcome,
            duration_s: t_end.saturating_sub(rec.meta.start_ns) as f64 / 1e9,
        })
    }

    fn command(&mut self, rx: &Receiver<Item>, verb: Verb, args: CommandArgs, t_cmd: u64) -> Reply {
        args.validate()?;
        match verb {
            Verb::Start => self.start(args, t_cmd),
            Verb::Stop | Verb::Discard => {
                if self.rec.is_none() {
                    return Err("not recording".into());
                }
                if let Some(rec) = self.rec.as_mut() {
                    if args.outcome.is_some() {
                        rec.outcome = args.outcome.clone();
                    }
                    if args.note.is_some() {
                        rec.note = args.note.clone();
                    }
                }
                let reason = if verb == Verb::Stop {
                    "stop"
                } else {
                    "discard"
                };
                let closed = self.finish(rx, t_cmd, reason)?;
                let mut v = serde_json::to_value(&closed).unwrap_or_default();
                self.status_lock().last_episode = Some(v.clone());
                if verb == Verb::Discard {
                    let trash = self.dir.join("discarded");
                    std::fs::create_dir_all(&trash)
                        .map_err(|e| format!("cannot create {}: {e}", trash.display()))?;
                    let mut moved = Vec::new();
                    for p in &closed.paths {
                        let to = trash.join(file_name(p));
                        std::fs::rename(p, &to).map_err(|e| {
                            format!("discard: moving {} to {}: {e}", p.display(), to.display())
                        })?;
                        moved.push(to);
                    }
                    tracing::info!(episode = %closed.episode_id, "discarded (moved to {})", trash.display());
                    v["paths"] = serde_json::json!(moved);
                    v["discarded"] = true.into();
                }
                Ok(v)
            }
            Verb::Mark => {
                let Some(rec) = self.rec.as_mut() else {
                    return Err("not recording: mark labels the running episode (use stop --outcome to label while stopping)".into());
                };
                if args.outcome.is_none() && args.note.is_none() && args.tags.is_empty() {
                    return Err("mark needs an outcome, a note or tags".into());
                }
                if rec.marks.len() >= MAX_EPISODE_MARKS {
                    return Err(format!(
                        "this episode has {MAX_EPISODE_MARKS} marks already, the most one keeps"
                    ));
                }
                if rec.tags.len() + args.tags.len() > MAX_EPISODE_TAGS {
                    return Err(format!(
                        "this episode would have more than {MAX_EPISODE_TAGS} tags"
                    ));
                }
                let m = serde_json::json!({"t_ns": t_cmd, "outcome": args.outcome, "note": args.note, "tags": args.tags});
                if args.outcome.is_some() {
                    rec.outcome = args.outcome.clone();
                }
                rec.tags.extend(args.tags.iter().cloned());
                rec.writer
                    .event(
                        t_cmd,
                        "mark",
                        "",
                        rec.marks.len() as u64 + 1,
                        &m.to_string(),
                    )
                    .map_err(|e| e.to_string())?;
                rec.marks.push(m.clone());
                Ok(serde_json::json!({"episode": rec.meta.episode_id, "mark": m}))
            }
            Verb::Status => Ok(serde_json::to_value(&*self.status_lock()).unwrap_or_default()),
        }
    }

    fn status_lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refresh the shared status (and check the disk while recording).
    fn refresh(&mut self, rx: &Receiver<Item>) {
        let now = hal::sim::now_ns();
        if self.rec.is_some()
            && self.last_free_check.elapsed() >= std::time::Duration::from_millis(500)
        {
            self.last_free_check = std::time::Instant::now();
            let need = self.cfg.control.min_free_mb * 1_000_000;
            match (self.free_space)(&self.dir) {
                Ok(free) if free < need => {
                    let why = format!(
                        "disk low: {} MB free on {} (control.min_free_mb = {}); episode stopped",
                        free / 1_000_000,
                        self.dir.display(),
                        self.cfg.control.min_free_mb
                    );
                    tracing::error!("{why}");
                    if let Some(rec) = self.rec.as_mut() {
                        let _ = rec.writer.event(now, "disk_low", "", free, &why);
                    }
                    let r = self.finish(rx, now, "disk_low");
                    let mut st = self.status_lock();
                    st.last_error = Some(why);
                    if let Ok(c) = r {
                        st.last_episode = serde_json::to_value(&c).ok();
                    }
                }
                _ => {}
            }
        }
        let episode = self.rec.as_ref().map(|r| {
            serde_json::json!({
                "id": r.meta.episode_id,
                "part": r.part,
                "path": r.writer.path(),
                "started_ns": r.meta.start_ns,
                "duration_s": now.saturating_sub(r.meta.start_ns) as f64 / 1e9,
                "messages": r.messages,
                "task": r.meta.task,
                "operator": r.meta.operator,
                "outcome": r.outcome,
            })
        });
        let sync = self
            .rec
            .as_ref()
            .map(|r| {
                r.writer
                    .sync_reports()
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let free = free_bytes(&self.dir)
            .or_else(|_| free_bytes(&self.cfg.recorder.out_dir))
            .unwrap_or(0);
        let preroll_s = match (self.preroll.front(), self.preroll.back()) {
            (Some(a), Some(b)) => (b.0.host_receive_ns - a.0.host_receive_ns) as f64 / 1e9,
            _ => 0.0,
        };
        let recorded = self.episodes_recorded;
        let mut st = self.status_lock();
        st.t_ns = now;
        st.state = if episode.is_some() {
            "recording"
        } else {
            "idle"
        }
        .into();
        st.episode = episode;
        st.sync = sync;
        st.disk_free_bytes = free;
        st.preroll_s = preroll_s;
        st.preroll_bytes = self.preroll_bytes;
        st.preroll_evicted = self.preroll_evicted;
        st.episodes_recorded = recorded;
        st.queue_age_ms = self.stats.age_ns(now) as f64 / 1e6;
        st.queue_peak_age_ms = self
            .stats
            .peak_age_ns
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1e6;
        for (c, (n, b, d)) in st.channels.iter_mut().zip(self.stats.counts()) {
            (c.received, c.bytes, c.drops) = (n, b, d);
        }
    }
}

/// What a finished episode reports.
#[derive(Serialize, Clone, Debug)]
pub struct Closed {
    pub episode_id: String,
    pub paths: Vec<PathBuf>,
    pub messages: u64,
    pub drops: u64,
    pub outcome: Option<String>,
    pub duration_s: f64,
}

/// Drops per stream since `base` (the counts when the episode or part began).
fn relative_drops(stats: &QueueStats, base: &[u64]) -> Vec<u64> {
    stats
        .drops_snapshot()
        .iter()
        .zip(base)
        .map(|(d, b)| d - b)
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Key expressions of a robot's control plane.
pub fn ctl_key(prefix: &str, robot: &str, verb: &str) -> String {
    format!("{prefix}/{}/ctl/{verb}", sanitize(robot))
}

pub fn status_key(prefix: &str, robot: &str) -> String {
    format!("{prefix}/{}/status", sanitize(robot))
}

/// What a service run did, for its exit code.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunSummary {
    pub episodes: u64,
    /// Samples the capture queue refused over the whole run (recording or idle).
    pub drops: u64,
}

/// Run the service until `stop` is cancelled.
pub fn run(cfg: Config, stop: CancellationToken) -> anyhow::Result<RunSummary> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("demotape-rt")
        .build()?;
    rt.block_on(run_async(cfg, stop))
}

async fn run_async(cfg: Config, stop: CancellationToken) -> anyhow::Result<RunSummary> {
    // every trigger names a serial board's trigger channel
    crate::timing::resolve_triggers(&cfg.sync.triggers, &cfg.serial)
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let session = cfg
        .zenoh
        .open()
        .await
        .context("opening the Zenoh session (see [zenoh] in the config)")?;
    tracing::info!(zid = %session.zid(), mode = %cfg.zenoh.mode, "zenoh session open");
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut net_stats = None;
    let mut net_table = None;
    let mut discovery = None;
    if !cfg.ros.topics.is_empty() || cfg.ros.discover {
        let z = hal::zenoh::ZenohSource::new(session.clone(), cfg.ros.clone())
            .map_err(anyhow::Error::msg)?;
        net_stats = Some(z.stats());
        // the Zenoh source comes first (offset 0): its table's indexes are the recording's
        net_table = Some(z.table());
        discovery = cfg.ros.discover.then(|| z.discovery());
        sources.push(Box::new(z));
    }
    for c in &cfg.serial {
        sources.push(Box::new(hal::serial::SerialSource::new(c.clone())));
    }
    if sources.is_empty() {
        anyhow::bail!(
            "no sources configured: add [[ros.topics]] (ROS 2 over Zenoh) or [[serial]] boards to the config"
        );
    }
    let mut streams = Vec::new();
    let mut offsets = Vec::new();
    for s in &sources {
        offsets.push(streams.len());
        streams.extend(s.streams());
    }
    let limits = QueueLimits {
        messages: cfg.recorder.queue_max_messages,
        bytes: cfg.recorder.queue_max_bytes,
    };
    let (queue, rx) = CaptureQueue::new(streams.len(), limits.messages, limits.bytes);
    let robot = sanitize(&cfg.recorder.robot_id);
    let dir = cfg.recorder.out_dir.join(&robot);
    let status = Arc::new(Mutex::new(Status {
        robot: robot.clone(),
        state: "idle".into(),
        disk_path: dir.clone(),
        channels: streams
            .iter()
            .map(|s| ChannelStatus {
                topic: s.topic.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }));
    let live = if cfg.live.enabled {
        let (hub, tap) = tokio::task::block_in_place(|| {
            let hub = crate::live::LiveHub::start(
                session.clone(),
                &cfg.control.key_prefix,
                &robot,
                cfg.live.clone(),
            )?;
            let tap = hub.tap(&streams)?;
            anyhow::Ok((hub, tap))
        })?;
        Some((Arc::new(hub), tap))
    } else {
        None
    };
    let (cmd_tx, cmd_rx) = crossbeam_channel::bounded::<Command>(16);
    let mut manager = Manager::new(
        cfg.clone(),
        streams,
        queue.stats.clone(),
        status.clone(),
        Arc::new(free_bytes),
    );
    manager.opts.table = net_table.clone();
    let flush_every = std::time::Duration::from_millis(cfg.recorder.flush_interval_ms);
    let manager_thread = std::thread::Builder::new()
        .name("episode-manager".into())
        .spawn(move || manager_loop(&mut manager, rx, cmd_rx, flush_every))?;

    let source_stop = stop.child_token();
    let mut runs = Vec::new();
    for (src, offset) in sources.into_iter().zip(offsets) {
        let sink: Arc<dyn hal::SampleSink> = Arc::new(OffsetSink {
            inner: queue.clone(),
            offset,
            live: live.as_ref().map(|l| l.1.clone()),
        });
        runs.push(tokio::spawn(src.run(sink, source_stop.clone())));
    }
    drop(queue);

    // control plane
    let prefix = cfg.control.key_prefix.clone();
    let ctl = session
        .declare_queryable(ctl_key(&prefix, &robot, "*"))
        .await
        .map_err(|e| anyhow::anyhow!("declaring the control queryable: {e}"))?;
    let skey = status_key(&prefix, &robot);
    tracing::info!(control = %ctl_key(&prefix, &robot, "{start,stop,discard,mark,status}"), status = %skey, "listening for operators");
    let ctl_task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let q = tokio::select! {
                    _ = stop.cancelled() => break,
                    q = ctl.recv_async() => match q { Ok(q) => q, Err(_) => break },
                };
                handle_query(q, &cmd_tx).await;
            }
        })
    };
    let status_task = {
        let stop = stop.clone();
        let session = session.clone();
        let status = status.clone();
        let hub = live.as_ref().map(|l| l.0.clone());
        let period = std::time::Duration::from_millis(cfg.control.status_period_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut rates = RateMeter::default();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let json = {
                    let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                    rates.update(hal::sim::now_ns(), &mut st.channels);
                    st.live = hub.as_ref().map(|h| h.counters());
                    // the Zenoh source's streams come first
                    if let Some(ns) = &net_stats {
                        use std::sync::atomic::Ordering::Relaxed;
                        for (c, t) in st.channels.iter_mut().zip(ns.iter()) {
                            c.network = Some(NetworkCounters {
                                malformed: t.malformed.load(Relaxed),
                                wrong_type: t.wrong_type.load(Relaxed),
                                gaps: t.gaps.load(Relaxed),
                                stale: t.stale_events.load(Relaxed),
                            });
                        }
                    }
                    let mut v = serde_json::to_value(&*st).unwrap_or_default();
                    // discovered topics by name; slots not bound yet left out
                    if let (Some(t), Some(chs)) = (
                        &net_table,
                        v.get_mut("channels").and_then(|c| c.as_array_mut()),
                    ) {
                        let t = t.read().unwrap_or_else(|e| e.into_inner());
                        for (c, spec) in chs.iter_mut().zip(t.iter()) {
                            c["topic"] = spec.topic.clone().into();
                        }
                        chs.retain(|c| c["topic"].as_str().is_some_and(|t| !t.is_empty()));
                    }
                    if let Some(d) = &discovery {
                        use std::sync::atomic::Ordering::Relaxed;
                        v["discovery"] = serde_json::json!({
                            "announced": d.announced.load(Relaxed),
                            "recorded": d.recorded.load(Relaxed),
                            "skipped": d.skipped.load(Relaxed),
                            "publishers_left": d.left.load(Relaxed),
                            "skipped_topics": *d.skipped_topics.lock().unwrap_or_else(|e| e.into_inner()),
                        });
                    }
                    v.to_string()
                };
                if let Err(e) = session.put(&skey, json).await {
                    tracing::warn!("publishing status: {e}");
                }
            }
        })
    };

    stop.cancelled().await;
    tracing::info!("shutting down: finishing the current episode");
    for r in runs {
        match r.await {
            Ok(Ok(report)) => tracing::debug!(?report, "source finished"),
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("source task: {e}"),
        }
    }
    let _ = ctl_task.await;
    let _ = status_task.await;
    let recorded = tokio::task::spawn_blocking(move || manager_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("episode manager panicked"))??;
    let _ = session.close().await;
    Ok(recorded)
}

async fn handle_query(q: zenoh::query::Query, cmd_tx: &Sender<Command>) {
    let t = hal::sim::now_ns();
    let key = q.key_expr().clone();
    let verb_s = key
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let reply: Reply = (|| {
        let verb = Verb::parse(&verb_s).ok_or_else(|| {
            format!("unknown verb {verb_s:?} (expected start, stop, discard, mark or status)")
        })?;
        let args: CommandArgs = match q.payload() {
            Some(p) if p.len() > MAX_REQUEST_BYTES => {
                return Err(format!(
                    "{verb_s} request is {} bytes; at most {MAX_REQUEST_BYTES} are accepted",
                    p.len()
                ));
            }
            Some(p) if !p.is_empty() => serde_json::from_slice(&p.to_bytes())
                .map_err(|e| format!("bad {verb_s} arguments (JSON expected): {e}"))?,
            _ => CommandArgs::default(),
        };
        args.validate()
            .map_err(|e| format!("{verb_s} refused: {e}"))?;
        Ok((verb, args))
    })()
    .and_then(|(verb, args)| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        cmd_tx
            .try_send((verb, args, t, tx))
            .map_err(|_| "recorder busy or shutting down".to_string())?;
        Ok(rx)
    })
    .and_then(|rx| {
        // the manager answers within one flush interval; finishing a big episode may take
        // a moment longer
        tokio::task::block_in_place(|| rx.recv_timeout(std::time::Duration::from_secs(30)))
            .map_err(|_| "no answer from the episode manager".to_string())?
    });
    let res = match &reply {
        Ok(v) => {
            tracing::info!(verb = %verb_s, "control: ok");
            let body = serde_json::json!({"ok": true, "verb": verb_s, "result": v});
            q.reply(key, body.to_string()).await
        }
        Err(e) => {
            tracing::warn!(verb = %verb_s, "control refused: {e}");
            let body = serde_json::json!({"ok": false, "verb": verb_s, "error": e});
            q.reply_err(body.to_string()).await
        }
    };
    if let Err(e) = res {
        tracing::warn!("replying to {verb_s}: {e}");
    }
}

fn manager_loop(
    m: &mut Manager,
    rx: Receiver<Item>,
    cmd_rx: Receiver<Command>,
    flush_every: std::time::Duration,
) -> anyhow::Result<RunSummary> {
    let mut last_flush = std::time::Instant::now();
    loop {
        let wait = flush_every.saturating_sub(last_flush.elapsed());
        let mut disconnected = false;
        crossbeam_channel::select! {
            recv(cmd_rx) -> c => if let Ok((verb, args, t, reply)) = c {
                let r = m.command(&rx, verb, args, t);
                m.refresh(&rx);
                let _ = reply.send(r);
            },
            recv(rx) -> item => match item {
                Ok(item) => if let Err(e) = m.take(item) {
                    m.fail(&format!("{e:#}"));
                },
                Err(_) => disconnected = true,
            },
            default(wait) => {}
        }
        if disconnected {
            break;
        }
        if last_flush.elapsed() >= flush_every {
            last_flush = std::time::Instant::now();
            if let Some(rec) = m.rec.as_mut() {
                let drops = relative_drops(&m.stats, &rec.drops_base);
                if let Err(e) = rec.writer.flush(&drops) {
                    m.fail(&e.to_string());
                }
            }
            m.refresh(&rx);
        }
    }
    if m.rec.is_some() {
        let now = hal::sim::now_ns();
        let _ = m
            .finish(&rx, now, "shutdown")
            .map_err(|e| tracing::error!("{e}"));
    }
    Ok(RunSummary {
        episodes: m.episodes_recorded,
        drops: m.stats.drops_snapshot().iter().sum(),
    })
}

impl Manager {
    /// A write failed (disk full, I/O error): end the episode, keep what is written
    /// readable, say why, and go back to idle so the next start can try again.
    fn fail(&mut self, why: &str) {
        tracing::error!("recording failed: {why}");
        if let Some(rec) = self.rec.take() {
            let id = rec.meta.episode_id.clone();
            let closed = rec.writer.close_after_error(why);
            tracing::error!(episode = %id, "episode ended by a write error: {closed}");
            self.status_lock().last_episode = Some(
                serde_json::json!({"episode_id": id, "paths": rec.paths, "error": why, "closed": closed}),
            );
        }
        self.status_lock().last_error = Some(why.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hal::msgs::{Header, WrenchStamped};
    use hal::{Modality, Payload};
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn rates_cover_the_last_period_only() {
        let mut ch = vec![ChannelStatus::default(); 2];
        let mut m = RateMeter::default();
        m.update(1_000_000_000, &mut ch);
        assert_eq!(
            (ch[0].rate_hz, ch[1].rate_hz),
            (0.0, 0.0),
            "nothing to compare yet"
        );
        (ch[0].received, ch[0].bytes, ch[1].received) = (500, 2_000_000, 30);
        m.update(1_500_000_000, &mut ch);
        assert_eq!(
            (ch[0].rate_hz, ch[0].mb_per_s, ch[1].rate_hz),
            (1000.0, 4.0, 60.0)
        );
        ch[0].received = 600;
        m.update(2_500_000_000, &mut ch);
        assert_eq!((ch[0].rate_hz, ch[1].rate_hz), (100.0, 0.0));
    }

    fn wrench(seq: u64, t: u64) -> Sample {
        Sample {
            stream: 0,
            device_stamp_us: t / 1000,
            transmit_stamp_us: None,
            host_receive_ns: t,
            sequence: seq,
            boot_id: 1,
            payload: Payload::Wrench(WrenchStamped {
                header: Header::default(),
                ..Default::default()
            }),
        }
    }

    /// The disk guard with a simulated filesystem: start refused below the threshold; while
    /// recording, falling below it stops the episode cleanly, says why, and the file is
    /// complete (indexed, with its labels).
    #[test]
    fn disk_guard_refuses_and_stops_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.recorder.out_dir = tmp.path().into();
        cfg.control.min_free_mb = 100;
        let free = Arc::new(AtomicU64::new(50_000_000));
        let f2 = free.clone();
        let streams = vec![StreamSpec {
            topic: "/wrist/right/wrench".into(),
            modality: Modality::Wrench,
            device: "ft".into(),
            rate_hz: 1000.0,
            ros_type: None,
            nominal_bytes: 100,
        }];
        let (queue, rx) = CaptureQueue::new(1, 1000, 1 << 20);
        let status = Arc::new(Mutex::new(Status {
            channels: vec![ChannelStatus::default()],
            ..Default::default()
        }));
        let mut m = Manager::new(
            cfg,
            streams,
            queue.stats.clone(),
            status.clone(),
            Arc::new(move |_: &Path| Ok(f2.load(Ordering::Relaxed))),
        );
        let t0 = hal::sim::now_ns();
        let e = m
            .command(&rx, Verb::Start, CommandArgs::default(), t0)
            .unwrap_err();
        assert!(
            e.contains("refusing to start") && e.contains("50 MB free"),
            "{e}"
        );
        free.store(10_000_000_000, Ordering::Relaxed);
        let ok = m
            .command(&rx, Verb::Start, CommandArgs::default(), t0)
            .unwrap();
        let path = PathBuf::from(ok["path"].as_str().unwrap());
        for i in 0..100 {
            m.take(Item::Sample {
                sample: wrench(i, t0 + i * 1_000_000),
                bytes: 0,
            })
            .unwrap();
        }
        free.store(99_000_000, Ordering::Relaxed);
        m.last_free_check = std::time::Instant::now() - std::time::Duration::from_secs(1);
        m.refresh(&rx);
        assert!(m.rec.is_none(), "episode stopped");
        let st = status.lock().unwrap().clone();
        assert!(
            st.last_error.as_deref().unwrap().contains("disk low"),
            "{st:?}"
        );
        assert_eq!(st.state, "idle");
        // the stopped episode is a complete, indexed file with all 100 samples
        let data = std::fs::read(&path).unwrap();
        let summary = mcap::Summary::read(&data).unwrap().expect("summary");
        let n: u64 = summary
            .stats
            .as_ref()
            .map(|s| {
                s.channel_message_counts
                    .iter()
                    .filter(|(id, _)| summary.channels[id].topic == "/wrist/right/wrench")
                    .map(|(_, n)| *n)
                    .sum()
            })
            .unwrap();
        assert_eq!(n, 100);
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains("disk_low"));
    }
}
