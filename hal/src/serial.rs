//! Serial sensor boards speaking the demotape board protocol (`firmware-bridge`) as a
//! [`Source`]: tactile fingertips, wrist force-torque sensors, joint encoders, camera trigger
//! boards (each pulse a `sensor_msgs/msg/TimeReference` sample whose sequence is the pulse
//! number; the recorder matches them to camera frames, see `[[sync.triggers]]`).
//!
//! The driver opens the port with `tokio-serial`, performs the handshake (Identify → Hello,
//! checks the channels against the configuration, Start), and turns every sample into a
//! [`Sample`] carrying both the board's event stamp and the frame's transmit stamp. It
//! counts frames lost on the wire from sequence gaps, notices board restarts (a new boot id:
//! the clock restarted, so sync starts a new segment) and, when the port disappears, keeps
//! trying to reopen it; each of these becomes an event in the recording.

use crate::msgs::{
    Header, JointState, TactileArray, Time, TimeReference, Vector3, Wrench, WrenchStamped,
};
use crate::sample::{Modality, Payload, Sample, StreamSpec};
use crate::sim::now_ns;
use crate::source::{SampleSink, Source, SourceEvent, SourceFuture, SourceReport};
use firmware_bridge::{BoardCodec, ChannelKind, Frame, Header as FrameHeader, Message};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_serial::SerialPortBuilderExt;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// What a board channel carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelUse {
    Wrench,
    Tactile,
    Encoder,
    /// Trigger pulses. Protocol version 1 carries no line in its Trigger message, so a board
    /// has at most one trigger channel (its id is the line).
    Trigger,
}

/// One board channel mapped to a topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelMap {
    pub channel: u8,
    pub kind: ChannelUse,
    pub topic: String,
    /// `header.frame_id` (and the pad name for tactile channels).
    #[serde(default)]
    pub frame_id: String,
    #[serde(default = "default_rate")]
    pub rate_hz: f64,
    /// Tactile: taxel grid and taxel edge length (m).
    #[serde(default)]
    pub rows: u32,
    #[serde(default)]
    pub cols: u32,
    #[serde(default)]
    pub taxel_size: f32,
    /// Encoder: joint names, one per value.
    #[serde(default)]
    pub joint_names: Vec<String>,
}

fn default_rate() -> f64 {
    1000.0
}
fn default_baud() -> u32 {
    921_600
}
fn default_reconnect() -> u64 {
    200
}

/// A serial board: which port, which clock domain, which channels.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SerialBoardConfig {
    /// e.g. `/dev/ttyACM0` or `/dev/serial/by-id/...`.
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Device name: the clock domain in sync reports and `/demotape/clock/<device>`.
    pub device: String,
    pub channels: Vec<ChannelMap>,
    /// How often to retry opening a missing port (ms).
    #[serde(default = "default_reconnect")]
    pub reconnect_ms: u64,
}

/// The driver for one board.
pub struct SerialSource {
    cfg: SerialBoardConfig,
    name: String,
}

impl SerialSource {
    pub fn new(cfg: SerialBoardConfig) -> Self {
        SerialSource {
            name: format!("serial:{}", cfg.device),
            cfg,
        }
    }
}

fn modality(u: ChannelUse) -> Modality {
    match u {
        ChannelUse::Wrench => Modality::Wrench,
        ChannelUse::Tactile => Modality::Tactile,
        ChannelUse::Encoder => Modality::JointState,
        ChannelUse::Trigger => Modality::Trigger,
    }
}

impl Source for SerialSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.cfg
            .channels
            .iter()
            .map(|c| StreamSpec {
                topic: c.topic.clone(),
                modality: modality(c.kind),
                device: self.cfg.device.clone(),
                rate_hz: c.rate_hz,
                ros_type: None,
                nominal_bytes: match c.kind {
                    ChannelUse::Wrench => 80,
                    ChannelUse::Tactile => (c.rows * c.cols * 4) as usize + 64,
                    ChannelUse::Encoder => c.joint_names.len() * 40 + 64,
                    ChannelUse::Trigger => 64,
                },
            })
            .collect()
    }

    fn run(self: Box<Self>, sink: Arc<dyn SampleSink>, stop: CancellationToken) -> SourceFuture {
        Box::pin(async move {
            let mut d = Driver::new(self.cfg, sink);
            d.run(stop).await;
            Ok(d.report)
        })
    }
}

enum Next {
    Reconnect,
    Rehandshake,
    Stop,
}

struct Driver {
    cfg: SerialBoardConfig,
    sink: Arc<dyn SampleSink>,
    report: SourceReport,
    boot: Option<u32>,
    cmd_seq: u32,
    connected: bool,
    pending_gap: u64,
    last_gap_event: Instant,
    overflow_seen: u32,
}

impl Driver {
    fn new(cfg: SerialBoardConfig, sink: Arc<dyn SampleSink>) -> Self {
        let n = cfg.channels.len();
        Driver {
            cfg,
            sink,
            report: SourceReport {
                produced: vec![0; n],
                refused: vec![0; n],
            },
            boot: None,
            cmd_seq: 1,
            connected: false,
            pending_gap: 0,
            last_gap_event: Instant::now(),
            overflow_seen: 0,
        }
    }

    fn event(&self, kind: &str, count: u64, detail: String) {
        self.sink.event(SourceEvent {
            t_ns: now_ns(),
            kind: kind.into(),
            topic: self.cfg.device.clone(),
            count,
            detail,
        });
    }

    fn flush_gaps(&mut self) {
        if self.pending_gap > 0 {
            let n = self.pending_gap;
            self.pending_gap = 0;
            self.event(
                "gap",
                n,
                format!(
                    "{n} frames from {} lost on the wire (sequence gaps)",
                    self.cfg.device
                ),
            );
        }
        self.last_gap_event = Instant::now();
    }

    fn command(&mut self, msg: Message) -> Frame {
        let seq = self.cmd_seq;
        self.cmd_seq = self.cmd_seq.wrapping_add(1);
        Frame {
            header: FrameHeader {
                board_id: 0,
                boot_id: 0,
                seq,
                tx_time_us: 0,
            },
            msg,
        }
    }

    async fn run(&mut self, stop: CancellationToken) {
        let path = self.cfg.path.to_string_lossy().into_owned();
        while !stop.is_cancelled() {
            let port = match tokio_serial::new(&path, self.cfg.baud).open_native_async() {
                Ok(p) => p,
                Err(e) => {
                    if self.connected {
                        self.connected = false;
                        self.flush_gaps();
                        self.event("disconnected", 0, format!("{path}: {e}"));
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(self.cfg.reconnect_ms)) => continue,
                    }
                }
            };
            let mut framed = Framed::new(port, BoardCodec::new());
            loop {
                match self.session(&mut framed, &stop, &path).await {
                    Next::Rehandshake => continue,
                    Next::Reconnect => {
                        if self.connected {
                            self.connected = false;
                            self.flush_gaps();
                            self.event("disconnected", 0, format!("{path}: the port went away"));
                        }
                        break;
                    }
                    Next::Stop => {
                        let stop_cmd = self.command(Message::Stop);
                        let _ =
                            tokio::time::timeout(Duration::from_millis(200), framed.send(stop_cmd))
                                .await;
                        self.flush_gaps();
                        return;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(self.cfg.reconnect_ms)) => {}
            }
        }
        self.flush_gaps();
    }

    /// Handshake, then stream until something changes.
    async fn session(
        &mut self,
        framed: &mut Framed<tokio_serial::SerialStream, BoardCodec>,
        stop: &CancellationToken,
        path: &str,
    ) -> Next {
        // Identify until Hello.
        let hello = loop {
            let cmd = self.command(Message::Identify);
            if framed.send(cmd).await.is_err() {
                return Next::Reconnect;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            let got = loop {
                tokio::select! {
                    _ = stop.cancelled() => return Next::Stop,
                    _ = tokio::time::sleep_until(deadline) => break None,
                    item = framed.next() => match item {
                        Some(Ok(f)) if matches!(f.msg, Message::Hello { .. }) => break Some(f),
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return Next::Reconnect,
                    },
                }
            };
            if let Some(f) = got {
                break f;
            }
        };
        let Message::Hello {
            name,
            channels,
            fw_major,
            fw_minor,
        } = &hello.msg
        else {
            return Next::Reconnect;
        };
        for c in &self.cfg.channels {
            let want = match c.kind {
                ChannelUse::Wrench => ChannelKind::Wrench,
                ChannelUse::Tactile => ChannelKind::Tactile,
                ChannelUse::Encoder => ChannelKind::Encoder,
                ChannelUse::Trigger => ChannelKind::Trigger,
            };
            if !channels.iter().any(|b| b.id == c.channel && b.kind == want) {
                self.event(
                    "config_mismatch",
                    0,
                    format!(
                        "board {name:?} on {path} has no {:?} channel {} (configured for {})",
                        c.kind, c.channel, c.topic
                    ),
                );
            }
        }
        let boot = hello.header.boot_id;
        if let Some(b) = self.boot
            && b != boot
        {
            self.flush_gaps();
            self.event(
                "device_reboot",
                0,
                format!(
                    "{} restarted (boot id {b:08x} -> {boot:08x}): its clock restarted",
                    self.cfg.device
                ),
            );
        }
        if self.boot != Some(boot) {
            self.overflow_seen = 0; // a new boot counts its overflows from zero
        }
        self.boot = Some(boot);
        if !self.connected {
            self.connected = true;
            self.event(
                "connected",
                0,
                format!(
                    "{path}: board {name:?} firmware {fw_major}.{fw_minor}, boot id {boot:08x}"
                ),
            );
        }
        // a trigger channel with a rate: the board generates the pulses at that period
        if let Some(c) = self
            .cfg
            .channels
            .iter()
            .find(|c| c.kind == ChannelUse::Trigger && c.rate_hz > 0.0)
        {
            let cmd = self.command(Message::ConfigureTrigger {
                enable: true,
                period_us: (1e6 / c.rate_hz).round() as u32,
            });
            if framed.send(cmd).await.is_err() {
                return Next::Reconnect;
            }
        }
        let start = self.command(Message::Start);
        if framed.send(start).await.is_err() {
            return Next::Reconnect;
        }
        let mut last_seq = hello.header.seq;
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => return Next::Stop,
                item = framed.next() => item,
            };
            let f = match item {
                Some(Ok(f)) => f,
                Some(Err(_)) | None => return Next::Reconnect,
            };
            let host = now_ns();
            if f.header.boot_id != boot {
                // restarted without re-enumerating (watchdog, brown-out): identify again
                self.flush_gaps();
                self.event(
                    "device_reboot",
                    0,
                    format!(
                        "{} restarted (boot id {boot:08x} -> {:08x}): its clock restarted",
                        self.cfg.device, f.header.boot_id
                    ),
                );
                self.boot = Some(f.header.boot_id);
                return Next::Rehandshake;
            }
            let gap = f.header.seq.wrapping_sub(last_seq).wrapping_sub(1);
            if gap > 0 && gap < u32::MAX / 2 {
                self.pending_gap += u64::from(gap);
            }
            last_seq = f.header.seq;
            if self.last_gap_event.elapsed() >= Duration::from_secs(1) {
                self.flush_gaps();
            }
            match f.msg {
                Message::Samples {
                    channel,
                    first_index,
                    samples,
                    ..
                } => {
                    let Some(si) = self.cfg.channels.iter().position(|c| c.channel == channel)
                    else {
                        continue;
                    };
                    for (k, s) in samples.into_iter().enumerate() {
                        let payload = build_payload(&self.cfg.channels[si], s.values);
                        let sample = Sample {
                            stream: si,
                            device_stamp_us: s.event_time_us,
                            transmit_stamp_us: Some(f.header.tx_time_us),
                            host_receive_ns: host,
                            sequence: u64::from(first_index) + k as u64,
                            boot_id: u64::from(boot),
                            payload,
                        };
                        self.report.produced[si] += 1;
                        if !self.sink.push(sample) {
                            self.report.refused[si] += 1;
                        }
                    }
                }
                Message::Trigger {
                    pulse,
                    event_time_us,
                } => {
                    let Some(si) = self
                        .cfg
                        .channels
                        .iter()
                        .position(|c| c.kind == ChannelUse::Trigger)
                    else {
                        continue;
                    };
                    let c = &self.cfg.channels[si];
                    let payload = Payload::Trigger(TimeReference {
                        header: Header {
                            stamp: Time::default(),
                            frame_id: c.frame_id.clone(),
                        },
                        time_ref: Time {
                            sec: (event_time_us / 1_000_000).min(i32::MAX as u64) as i32,
                            nanosec: (event_time_us % 1_000_000) as u32 * 1000,
                        },
                        source: format!("{}/line{}", self.cfg.device, c.channel),
                    });
                    let sample = Sample {
                        stream: si,
                        device_stamp_us: event_time_us,
                        transmit_stamp_us: Some(f.header.tx_time_us),
                        host_receive_ns: host,
                        sequence: u64::from(pulse),
                        boot_id: u64::from(boot),
                        payload,
                    };
                    self.report.produced[si] += 1;
                    if !self.sink.push(sample) {
                        self.report.refused[si] += 1;
                    }
                }
                Message::Heartbeat { overflow_drops, .. } => {
                    // every frame's transmit time is a clock observation: a board whose own
                    // samples are sparse (a trigger board) sends heartbeats often for it
                    if !self.cfg.channels.is_empty() {
                        self.sink.push(Sample {
                            stream: 0,
                            device_stamp_us: f.header.tx_time_us,
                            transmit_stamp_us: Some(f.header.tx_time_us),
                            host_receive_ns: host,
                            sequence: u64::from(f.header.seq),
                            boot_id: u64::from(boot),
                            payload: Payload::Clock,
                        });
                    }
                    if overflow_drops <= self.overflow_seen {
                        continue;
                    }
                    let n = overflow_drops - self.overflow_seen;
                    self.overflow_seen = overflow_drops;
                    self.event(
                        "overflow",
                        u64::from(n),
                        format!("{} dropped {n} frames in its own buffer", self.cfg.device),
                    );
                }
                _ => {}
            }
        }
    }
}

fn build_payload(c: &ChannelMap, v: Vec<f32>) -> Payload {
    let header = Header {
        stamp: Time::default(),
        frame_id: c.frame_id.clone(),
    };
    let g = |i: usize| f64::from(v.get(i).copied().unwrap_or(f32::NAN));
    match c.kind {
        ChannelUse::Wrench => Payload::Wrench(WrenchStamped {
            header,
            wrench: Wrench {
                force: Vector3 {
                    x: g(0),
                    y: g(1),
                    z: g(2),
                },
                torque: Vector3 {
                    x: g(3),
                    y: g(4),
                    z: g(5),
                },
            },
        }),
        ChannelUse::Tactile => Payload::Tactile(TactileArray {
            header,
            pad: c.frame_id.clone(),
            rows: c.rows,
            cols: c.cols,
            taxel_size: c.taxel_size,
            pressure: v,
        }),
        ChannelUse::Encoder => Payload::JointState(JointState {
            header,
            name: c.joint_names.clone(),
            position: v.iter().map(|x| f64::from(*x)).collect(),
            velocity: Vec::new(),
            effort: Vec::new(),
        }),
        // pulses come in Trigger messages, never in Samples
        ChannelUse::Trigger => Payload::Trigger(TimeReference {
            header,
            ..Default::default()
        }),
    }
}
