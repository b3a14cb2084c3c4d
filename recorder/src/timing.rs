//! Where a sample's time comes from when it is not its own clock fit: hardware trigger pulses
//! (`[[sync.triggers]]`) and PTP-stamped devices (`[[sync.ptp]]`).
//!
//! A triggered camera's frame is held in the writer until the pulse that exposed it has
//! arrived (or can no longer arrive: a later pulse is in, or the hold timed out), then stamped
//! at pulse + exposure offset + half the exposure, the pulse mapped through the trigger
//! board's own clock fit. A frame without its pulse keeps the camera's own clock fit and is
//! counted. The match state goes into the camera device's sync report (`demotape.sync`).

use hal::Sample;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use sync::ptp::{PtpConfig, Timescale};
use sync::trigger::{FrameMatch, TriggerConfig, TriggerMatcher, TriggerReport};

/// The `[sync]` table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    pub triggers: Vec<TriggerEntry>,
    pub ptp: Vec<PtpEntry>,
}

fn default_lock_after() -> u32 {
    3
}
fn default_servo_error() -> f64 {
    PtpConfig::default().servo_error_us
}
fn default_max_drift() -> f64 {
    PtpConfig::default().max_drift_ppm
}

/// One `[[sync.triggers]]` table: a camera exposed by a trigger board's line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriggerEntry {
    /// The camera: its device (clock domain, e.g. `camera_head`), one of its topics, or its
    /// name (`head` for device `camera_head`). Every stream of that device (RGB and depth of
    /// one exposure) is stamped from the pulses.
    pub camera: String,
    /// The trigger board's `device` (a `[[serial]]` board with a `trigger` channel).
    pub board: String,
    /// The board's trigger channel (protocol v1: one per board).
    #[serde(default)]
    pub line: u8,
    /// Pulse → start of exposure (µs), and the exposure time (µs; 0 = stamp the start).
    #[serde(default)]
    pub exposure_offset_us: f64,
    #[serde(default)]
    pub exposure_us: f64,
    /// Plausible delay from a pulse to its frame (ms). Default 0 to 80 % of the camera's
    /// frame period (at most 20 ms): the window must be shorter than the period, or no frame
    /// has exactly one candidate and the matcher never locks.
    #[serde(default)]
    pub min_latency_ms: f64,
    #[serde(default)]
    pub max_latency_ms: Option<f64>,
    /// Consecutive frames agreeing on the pulse ↔ frame numbering before the lock.
    #[serde(default = "default_lock_after")]
    pub lock_after: u32,
}

/// One `[[sync.ptp]]` table: a device whose stamps are PTP time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PtpEntry {
    pub device: String,
    #[serde(default)]
    pub timescale: Timescale,
    #[serde(default = "default_servo_error")]
    pub servo_error_us: f64,
    #[serde(default = "default_max_drift")]
    pub max_drift_ppm: f64,
}

impl PtpEntry {
    pub fn config(&self) -> PtpConfig {
        PtpConfig {
            timescale: self.timescale,
            servo_error_us: self.servo_error_us,
            max_drift_ppm: self.max_drift_ppm,
            ..Default::default()
        }
    }
}

impl SyncConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (k, t) in self.triggers.iter().enumerate() {
            let at = format!("sync.triggers[{k}] (camera {:?})", t.camera);
            if t.camera.is_empty() || t.board.is_empty() {
                return Err(format!("{at}: camera and board are required"));
            }
            for (name, v) in [
                ("exposure_offset_us", t.exposure_offset_us),
                ("exposure_us", t.exposure_us),
                ("min_latency_ms", t.min_latency_ms),
            ] {
                if !(v.is_finite() && (0.0..=1e7).contains(&v)) {
                    return Err(format!("{at}: {name} = {v} must be in 0..=1e7"));
                }
            }
            if let Some(m) = t.max_latency_ms
                && !(m.is_finite() && m > t.min_latency_ms)
            {
                return Err(format!(
                    "{at}: max_latency_ms = {m} must be above min_latency_ms = {}",
                    t.min_latency_ms
                ));
            }
            if t.lock_after == 0 {
                return Err(format!("{at}: lock_after must be at least 1"));
            }
        }
        for (k, p) in self.ptp.iter().enumerate() {
            if p.device.is_empty() {
                return Err(format!("sync.ptp[{k}]: device is required"));
            }
            if !(p.servo_error_us > 0.0 && p.max_drift_ppm > 0.0) {
                return Err(format!(
                    "sync.ptp[{k}] ({}): servo_error_us and max_drift_ppm must be positive",
                    p.device
                ));
            }
        }
        Ok(())
    }
}

/// A `[[sync.triggers]]` entry with its pulses' topic found among the serial boards.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerBinding {
    pub entry: TriggerEntry,
    pub pulses_topic: String,
}

/// Find each trigger's pulse topic: the `trigger` channel `line` of the `[[serial]]` board
/// whose device is `board`.
pub fn resolve_triggers(
    entries: &[TriggerEntry],
    boards: &[hal::serial::SerialBoardConfig],
) -> Result<Vec<TriggerBinding>, String> {
    entries
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let Some(b) = boards.iter().find(|b| b.device == e.board) else {
                let names: Vec<&str> = boards.iter().map(|b| b.device.as_str()).collect();
                return Err(format!(
                    "sync.triggers[{k}]: no serial board with device {:?} (boards: {names:?})",
                    e.board
                ));
            };
            let Some(c) = b
                .channels
                .iter()
                .find(|c| c.kind == hal::serial::ChannelUse::Trigger && c.channel == e.line)
            else {
                return Err(format!(
                    "sync.triggers[{k}]: serial board {:?} has no trigger channel {} (add a \
                     [[serial.channels]] with kind = \"trigger\" and channel = {})",
                    e.board, e.line, e.line
                ));
            };
            Ok(TriggerBinding {
                entry: e.clone(),
                pulses_topic: c.topic.clone(),
            })
        })
        .collect()
}

/// Whether stream `spec` is the camera `camera` names.
fn is_camera(camera: &str, spec: &hal::StreamSpec) -> bool {
    spec.device == camera || spec.topic == camera || spec.device == format!("camera_{camera}")
}

/// A frame waiting for its pulse.
struct Held {
    sample: Sample,
    channel: u16,
    /// The camera's own clock fit of this frame.
    fallback_ns: u64,
}

struct Trigger {
    b: TriggerBinding,
    /// Built when the camera's first stream is bound (its rate sets the default window).
    matcher: Option<TriggerMatcher>,
    held: VecDeque<Held>,
    /// Frames left unmatched while the lock is being acquired, kept until it holds (then
    /// stamped from their pulses) or fails (then written with their own clock's time).
    acquiring: Vec<Held>,
    /// Recent decisions by frame number, so the depth frame of an exposure gets the time its
    /// RGB frame got.
    decided: VecDeque<(u64, Decision)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Decision {
    /// Stamped from a pulse (`Some`) or left to the camera's clock (`None`).
    Done(Option<u64>),
    /// Waiting in `acquiring`.
    Acquiring,
}

impl Trigger {
    fn stamp(&self, trigger_ns: u64) -> u64 {
        let e = &self.b.entry;
        trigger_ns + (e.exposure_offset_us * 1e3 + e.exposure_us * 500.0) as u64
    }

    fn decide(&mut self, seq: u64, d: Decision) {
        match self.decided.iter_mut().find(|x| x.0 == seq) {
            Some(x) => x.1 = d,
            None => self.decided.push_back((seq, d)),
        }
        while self.decided.len() > 32 {
            self.decided.pop_front();
        }
    }

    /// Write the acquiring frames: from their pulses if the lock now holds, else with their
    /// own clock's time.
    fn settle_acquiring(&mut self, out: &mut Vec<Ready>) {
        let held = std::mem::take(&mut self.acquiring);
        let mut done: Vec<(u64, Option<u64>)> = Vec::new();
        for h in held {
            let seq = h.sample.sequence;
            // the first frame of an exposure decides; the others (depth) follow it
            let stamp = match done.iter().find(|d| d.0 == seq) {
                Some(d) => d.1,
                None => {
                    let s = self
                        .matcher
                        .as_mut()
                        .and_then(|m| m.backfill(seq, h.fallback_ns))
                        .map(|(_, t)| self.stamp(t));
                    done.push((seq, s));
                    s
                }
            };
            self.decide(seq, Decision::Done(stamp));
            out.push(Ready {
                stamp_ns: stamp.unwrap_or(h.fallback_ns),
                sample: h.sample,
                channel: h.channel,
            });
        }
    }
}

/// What a stream is to the trigger logic.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    None,
    /// Pulses (for the triggers naming this topic).
    Pulses,
    Camera(usize),
}

/// The per-episode trigger state of the writer.
pub struct Triggers {
    triggers: Vec<Trigger>,
    roles: Vec<Role>,
    /// Longest a frame waits for its pulse (host time).
    hold_ns: u64,
}

/// A frame ready to be written with this stamp.
pub struct Ready {
    pub sample: Sample,
    pub channel: u16,
    pub stamp_ns: u64,
}

impl Triggers {
    pub fn new(bindings: &[TriggerBinding], streams: usize) -> Self {
        Triggers {
            triggers: bindings
                .iter()
                .map(|b| Trigger {
                    b: b.clone(),
                    matcher: None,
                    held: VecDeque::new(),
                    acquiring: Vec::new(),
                    decided: VecDeque::new(),
                })
                .collect(),
            roles: vec![Role::None; streams],
            hold_ns: 100_000_000,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }

    /// Stream `i` got its channel: is it a pulse stream or a triggered camera's?
    pub fn bind(&mut self, i: usize, spec: &hal::StreamSpec) {
        if i >= self.roles.len() {
            self.roles.resize(i + 1, Role::None);
        }
        if self.triggers.iter().any(|t| t.b.pulses_topic == spec.topic) {
            self.roles[i] = Role::Pulses;
            return;
        }
        if let Some(k) = self
            .triggers
            .iter()
            .position(|t| is_camera(&t.b.entry.camera, spec))
        {
            self.roles[i] = Role::Camera(k);
            let t = &mut self.triggers[k];
            if t.matcher.is_none() {
                let e = &t.b.entry;
                let period_ms = if spec.rate_hz > 0.0 {
                    1e3 / spec.rate_hz
                } else {
                    25.0
                };
                let max_ms = e.max_latency_ms.unwrap_or((0.8 * period_ms).min(20.0));
                t.matcher = Some(TriggerMatcher::new(TriggerConfig {
                    lock_after: e.lock_after,
                    min_latency_ns: (e.min_latency_ms * 1e6) as u64,
                    max_latency_ns: (max_ms * 1e6) as u64,
                    ..Default::default()
                }));
            }
        }
    }

    /// A pulse (on stream `i`, number `pulse`) mapped to the reference clock.
    pub fn pulse(&mut self, i: usize, topic: &str, pulse: u64, t_ns: u64) {
        if self.roles.get(i) != Some(&Role::Pulses) {
            return;
        }
        for t in &mut self.triggers {
            if t.b.pulses_topic == topic
                && let Some(m) = &mut t.matcher
            {
                m.push_trigger(pulse, t_ns);
            }
        }
    }

    /// Keep a triggered camera's frame until its pulse decides its time. Returns the sample
    /// back when stream `i` is not a triggered camera's.
    pub fn hold(&mut self, sample: Sample, channel: u16, fallback_ns: u64) -> Option<Sample> {
        match self.roles.get(sample.stream) {
            Some(&Role::Camera(k)) => {
                self.triggers[k].held.push_back(Held {
                    sample,
                    channel,
                    fallback_ns,
                });
                None
            }
            _ => Some(sample),
        }
    }

    /// Frames whose time is decided: their pulse arrived or can no longer arrive, they waited
    /// `hold_ns` (the board went silent), or `all` (the episode ends).
    pub fn release(&mut self, now_host_ns: u64, all: bool) -> Vec<Ready> {
        let mut out = Vec::new();
        for t in &mut self.triggers {
            while let Some(h) = t.held.front() {
                let seq = h.sample.sequence;
                let known = t.decided.iter().find(|d| d.0 == seq).map(|d| d.1);
                let Some(m) = t.matcher.as_mut() else { break };
                let go = all
                    || known.is_some()
                    || m.ready(seq, h.fallback_ns)
                    || now_host_ns > h.sample.host_receive_ns + self.hold_ns;
                if !go {
                    break;
                }
                let h = t.held.pop_front().expect("front exists");
                let decision = match known {
                    Some(d) => d,
                    None => match m.push_frame(seq, h.fallback_ns) {
                        FrameMatch::Matched { trigger_ns, .. } => {
                            let s = t.stamp(trigger_ns);
                            // the lock holds now: the frames that built it get their pulses
                            t.settle_acquiring(&mut out);
                            Decision::Done(Some(s))
                        }
                        FrameMatch::Unmatched {
                            reason: "not locked yet",
                            ..
                        } if t.acquiring.len() < 4 * m.config().lock_after as usize => {
                            Decision::Acquiring
                        }
                        FrameMatch::Unmatched { .. } | FrameMatch::Duplicate => {
                            // no lock coming from these frames: they keep their own times
                            t.settle_acquiring(&mut out);
                            Decision::Done(None)
                        }
                    },
                };
                t.decide(seq, decision);
                match decision {
                    Decision::Acquiring => t.acquiring.push(h),
                    Decision::Done(stamp) => out.push(Ready {
                        stamp_ns: stamp.unwrap_or(h.fallback_ns),
                        sample: h.sample,
                        channel: h.channel,
                    }),
                }
            }
            if all {
                t.settle_acquiring(&mut out);
            }
        }
        out
    }

    /// Frames waiting now.
    pub fn held(&self) -> usize {
        self.triggers
            .iter()
            .map(|t| t.held.len() + t.acquiring.len())
            .sum()
    }

    /// The trigger part of each camera device's sync report: (camera stream's device, report).
    pub fn reports(
        &self,
        device_of: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, TriggerReport)> {
        self.triggers
            .iter()
            .filter_map(|t| {
                let m = t.matcher.as_ref()?;
                let device = device_of(&t.b.entry.camera)?;
                Some((
                    device,
                    TriggerReport {
                        board: t.b.entry.board.clone(),
                        line: t.b.entry.line,
                        pulses_topic: t.b.pulses_topic.clone(),
                        exposure_offset_us: t.b.entry.exposure_offset_us,
                        exposure_us: t.b.entry.exposure_us,
                        stats: m.stats.clone(),
                    },
                ))
            })
            .collect()
    }

    /// The camera a trigger names, as the stream's device (for the report).
    pub fn camera_device(camera: &str, streams: &[hal::StreamSpec]) -> Option<String> {
        streams
            .iter()
            .find(|s| is_camera(camera, s))
            .map(|s| s.device.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> hal::serial::SerialBoardConfig {
        toml::from_str(
            r#"
path = "/dev/ttyACM3"
device = "trig"
[[channels]]
channel = 0
kind = "trigger"
topic = "/trigger/trig/line0"
"#,
        )
        .unwrap()
    }

    fn entry(board: &str, line: u8) -> TriggerEntry {
        TriggerEntry {
            camera: "head".into(),
            board: board.into(),
            line,
            exposure_offset_us: 0.0,
            exposure_us: 0.0,
            min_latency_ms: 0.0,
            max_latency_ms: None,
            lock_after: 3,
        }
    }

    #[test]
    fn triggers_resolve_to_the_boards_pulse_topic_or_say_what_is_missing() {
        let b = vec![board()];
        let r = resolve_triggers(&[entry("trig", 0)], &b).unwrap();
        assert_eq!(r[0].pulses_topic, "/trigger/trig/line0");
        let e = resolve_triggers(&[entry("other", 0)], &b).unwrap_err();
        assert!(e.contains("\"other\"") && e.contains("trig"), "{e}");
        let e = resolve_triggers(&[entry("trig", 2)], &b).unwrap_err();
        assert!(e.contains("no trigger channel 2"), "{e}");
    }

    #[test]
    fn the_config_tables_parse_and_validate() {
        let c: SyncConfig = toml::from_str(
            r#"
[[triggers]]
camera = "camera_head"
board = "trig"
exposure_us = 4000
[[ptp]]
device = "lidar"
timescale = "tai"
"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.ptp[0].timescale, Timescale::Tai);
        assert_eq!(c.ptp[0].servo_error_us, 10.0);
        let bad = SyncConfig {
            triggers: vec![TriggerEntry {
                max_latency_ms: Some(0.0),
                ..entry("trig", 0)
            }],
            ptp: Vec::new(),
        };
        assert!(bad.validate().unwrap_err().contains("max_latency_ms"));
    }
}
