//! The recorder's TOML configuration. `demotape-recorder config` prints [`DEFAULT_CONFIG`],
//! which documents every key with its default; a test keeps it equal to `Config::default()`.

use hal::sim::SimConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The documented default configuration.
pub const DEFAULT_CONFIG: &str = r#"# demotape-recorder configuration. Every key is optional; shown values are the defaults.

[recorder]
# Robot id: names the output subdirectory and every episode file (sanitized to [A-Za-z0-9_-]).
robot_id = "sim-robot"
# Where episodes are written: <out_dir>/<robot_id>/<robot_id>_<UTC start>_<seq>.mcap
out_dir = "episodes"
# Close and flush the current MCAP chunk at least this often (ms). A crash (even SIGKILL)
# loses at most this much data. Must be between 10 and 200.
flush_interval_ms = 100
# fdatasync the episode file this often, from a helper thread that never blocks the writer,
# so a power cut loses at most about this much (plus one flush interval). 0 = only when an
# episode is finished (finished episodes are always fsynced, with their directory entry).
fsync_interval_ms = 1000
# Close a chunk earlier once it holds this many uncompressed bytes.
chunk_size_bytes = 8388608
# Capture queue between sensor drivers and the writer thread. A sample that does not fit is
# dropped and counted (sensors are never blocked); drops are written into the episode.
queue_max_bytes = 536870912
queue_max_messages = 65536
# Free text copied into each episode's metadata.
task = "pick and place"
operator = ""

[recorder.compression]
# Chunk compression, per stream. Closed chunks are compressed on a pool of threads and
# written in order. Each stream's chunks hold only its own messages.
#   "auto": raw camera and depth frames get lz4 while it pays (one chunk in 16 is compressed
#           to measure it, and lz4 is kept while it shrinks them by min_ratio); compressed
#           images get none (JPEG does not shrink); everything else zstd (small messages
#           shrink 5-10x).
#   "lz4", "zstd", "none": that codec for every stream.
# (`compression = "lz4"` directly under [recorder], as older configs have it, still works.)
default = "auto"
# The smallest lz4 ratio (uncompressed / compressed) for which "auto" keeps lz4 on an image
# stream. Noisy raw frames shrink ~1.17x: not worth a core.
min_ratio = 1.5
# Compression threads; 0 = one per CPU core.
workers = 0
# Bytes of closed chunks waiting for compression before the writer waits for them (MB).
max_in_flight_mb = 64
# Per-topic overrides ("none" | "lz4" | "zstd" | "auto"), e.g.
# topics = { "/camera/head/depth" = "zstd", "/joint_states" = "lz4" }
topics = {}

[sim]
# The simulated robot (the embedded default source). `--load small` uses 160x120 images.
seed = 1
image_width = 640
image_height = 480
rgb_cameras = ["head", "wrist_left", "wrist_right"]
depth_cameras = ["head", "wrist_right"]
camera_rate_hz = 30.0
joint_rate_hz = 500.0
wrench_rate_hz = 1000.0
tactile_rate_hz = 200.0
tactile_rows = 16
tactile_cols = 16
# Device clocks drift uniformly within +-max_drift_ppm; late_fraction of messages arrive
# 5-30 ms late.
max_drift_ppm = 100.0
late_fraction = 0.002
# Route the wrist wrench and tactile streams through simulated microcontroller boards on
# pseudo-terminals, read back by the serial driver (exercises the whole serial path).
# Instead of true/false, [[sim.boards]] tables choose boards one by one (see below).
boards = false
# Camera sensor noise (std. dev. in 8-bit levels; depth gets half of it in mm). Real sensors
# are noisy, which is what makes raw images expensive to compress; 0 = flat shading.
image_noise = 3.0

[sim.failures]
# Probability per episode of each injected failure (the rest succeed).
slip = 0.15
drop = 0.1
miss = 0.1

# Simulated boards one by one (replaces `boards = true/false` above):
#
# [[sim.boards]]
# kind = "sensors"               # the wrist wrench and tactile devices, one board each
#
# [[sim.boards]]
# kind = "trigger"               # a camera-trigger board with its own clock, pulsing at
# name = "trigger_board"         #   each exposure; its cameras' frames then carry only
# cameras = []                   #   what frame_stamp says (empty cameras = all of them)
# exposure_offset_us = 20.0
# exposure_us = 4000.0
# frame_stamp = "receive"        # receive (host receive time only) | counter (camera ms counter)
# frame_delay_ms = [0.5, 8.0]    # delivery after the exposure ends, uniform
# frame_drop = 0.0               # fraction of frames lost (the camera's numbering goes on)
# pulse_drop = 0.0               # fraction of pulses lost
# `sim` stamps the triggered cameras from the pulses ([[sync.triggers]]) unless
# [[sync.triggers]] is configured.
#
# PTP-stamped simulated devices: their counters are the reference clock plus the servo's
# wander, or drifting away from it (to see the check flag them; add [[sync.ptp]] to use it):
#
# [[sim.ptp]]
# device = "ft_right"
# servo_error_us = 1.0
# drift_ppm = 0.0

[zenoh]
# The embedded Zenoh session used for ROS 2 topics, episode control and status.
# "peer" needs no router; rmw_zenoh systems meet at a router: set connect to it.
mode = "peer"
connect = []                  # e.g. ["tcp/localhost:7447"]
listen = []                   # e.g. ["tcp/0.0.0.0:7448"]
multicast_scouting = true
# A full Zenoh JSON5 config for TLS/mTLS, user-password auth and access control (see
# docs/ACCESS_CONTROL.md). Keys above are applied on top where they differ from defaults.
# config_file = "/etc/demotape/zenoh.json5"

[ros]
# ROS 2 topics to record over Zenoh, from zenoh-bridge-ros2dds ("bridge": key = topic without
# the leading '/', under bridge_namespace if set) and rmw_zenoh nodes ("rmw": key =
# <domain_id>/<topic>/<type>/<hash>). Payloads of any message type are checked against its
# definition and recorded byte for byte; malformed ones, other types and silent publishers
# become events.
domain_id = 0
bridge_namespace = ""
key_styles = ["bridge", "rmw"]
# A topic silent this long (and at least 5 periods) gets a "stale" event.
stale_after_ms = 1000
# Message definitions beyond the built-in standard packages (std_msgs, builtin_interfaces,
# geometry_msgs, sensor_msgs, nav_msgs, tf2_msgs, trajectory_msgs, diagnostic_msgs,
# shape_msgs, visualization_msgs as in ROS 2 Jazzy, and demotape_msgs): directories holding
# <pkg>/msg/<Type>.msg, e.g. an installed workspace's share/.
msg_paths = []                # e.g. ["/opt/ros/jazzy/share", "/home/robot/ws/install/my_msgs/share"]
# Record every topic that ROS 2 nodes announce (rmw_zenoh liveliness tokens of domain_id and
# zenoh-bridge-ros2dds ones, also those of nodes started before the recorder), besides the [[ros.topics]] below. include / exclude are
# regexes on the topic name (include empty = every topic); a type without a definition is
# skipped with an event and counted in status.
discover = false
include = []                  # e.g. ["^/arm/", "^/tf"]
exclude = []                  # e.g. ["/image_raw$", "^/rosout$"]
# One [[ros.topics]] table per topic, of any defined type. A type whose first field is a
# std_msgs/Header is clock-synchronized on header.stamp; any other is stamped when received
# (channel metadata demotape.stamp = "receive"). Example:
#
# [[ros.topics]]
# topic = "/camera/head/image_raw"
# type = "sensor_msgs/msg/Image"
# device = "camera_head"        # clock domain of header.stamp (default: from the topic)
# rate_hz = 30.0                # nominal, for status and the silence watchdog
# stamp = "header"              # header (default) | receive
# modality = "rgb"              # rgb | depth | compressed_rgb | joint_state | wrench | tactile | other
#                               # (default from the type: Image -> rgb, or depth if the topic says so)

[control]
# Episode control for `demotape-recorder run`: queryables <key_prefix>/<robot_id>/ctl/*
# (start, stop, discard, mark, status) and live status on <key_prefix>/<robot_id>/status.
key_prefix = "demotape"
# Seconds of data kept while idle and written at the start of the next episode, bounded
# by bytes (oldest leave first).
preroll_s = 2.0
preroll_max_bytes = 268435456
# Split long episodes into parts (<episode>_partNNN.mcap) by size or duration; 0 = never.
# The seam falls between two messages: none is lost or written twice.
split_max_bytes = 0
split_max_s = 0.0
# Refuse to start, or stop the episode cleanly, when out_dir has less free space (MB).
min_free_mb = 1024
status_period_ms = 1000

[live]
# A decimated copy of every stream on <control.key_prefix>/<robot_id>/live/<topic> for
# `demotape view --live` (Rerun). Costs nothing until a viewer subscribes; never slows the
# recording (copies that cannot be sent at once are dropped and counted in status.live).
# `run` publishes it whenever enabled; `sim` only with --live. Times are receive times.
enabled = true
image_hz = 5.0                # camera/depth frames per second and stream
signal_hz = 30.0              # joint state, wrench, tactile messages per second and stream
image_stride = 2              # keep every n-th pixel of every n-th row (1 = full resolution)
queue_messages = 16           # copies waiting for the publisher thread

[sync]
# Every device's stamps are mapped onto the host clock by fitting its clock (lower envelope
# of receive - stamp). Two kinds of devices are timed otherwise:
#
# Hardware-triggered cameras: each frame gets the time of the trigger pulse that exposed it,
# from a trigger board (a [[serial]] board with a kind = "trigger" channel), mapped through
# the board's own clock fit. Frames wait for their pulse (about a frame period, in memory);
# frames without one keep the camera's own clock and are counted in demotape.sync.
#
# [[sync.triggers]]
# camera = "camera_head"         # device, topic, or name ("head" for device camera_head)
# board = "trigger_board"        # the [[serial]] board's device
# line = 0                       # its trigger channel
# exposure_offset_us = 20.0      # pulse -> exposure start
# exposure_us = 4000.0           # frames are stamped mid-exposure (0: at its start)
# min_latency_ms = 0.0           # plausible pulse -> frame delay; max defaults to 80 % of
# max_latency_ms = 20.0          #   the frame period, at most 20 ms
# lock_after = 3                 # agreeing frames before the pulse <-> frame numbering locks
#
# PTP-stamped devices (LiDARs, industrial cameras, F/T sensors with IEEE 1588, on a host whose
# clock ptp4l/phc2sys discipline): stamps are taken as they are, checked against the fitted
# clock; a device that drifts, runs ahead of its arrivals or sits on another timescale is
# flagged (event ptp_fault) and fitted from then on.
#
# [[sync.ptp]]
# device = "lidar_front"
# timescale = "utc"              # utc | tai (PTP's own, 37 s ahead)
# servo_error_us = 10.0          # hardware timestamping: < 1 us; software: tens of us
# max_drift_ppm = 5.0

# Real serial sensor boards (demotape board protocol, see firmware-bridge/PROTOCOL.md), one
# [[serial]] table each. None by default. Example:
#
# [[serial]]
# path = "/dev/ttyACM0"          # or a stable /dev/serial/by-id/... path
# baud = 921600
# device = "ft_right"            # clock domain: /demotape/clock/ft_right
# reconnect_ms = 200             # retry period while the port is missing
# [[serial.channels]]
# channel = 0
# kind = "wrench"                # wrench | tactile | encoder | trigger
# topic = "/wrist/right/wrench"
# frame_id = "right_ft_sensor"
# rate_hz = 1000.0
"#;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub recorder: RecorderConfig,
    pub sim: SimConfig,
    pub serial: Vec<hal::serial::SerialBoardConfig>,
    pub zenoh: hal::zenoh::SessionConfig,
    pub ros: hal::zenoh::TopicsConfig,
    pub control: crate::service::ControlConfig,
    pub live: crate::live::LiveConfig,
    pub sync: crate::timing::SyncConfig,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Lz4,
    Zstd,
    None,
    /// By stream (see [`DEFAULT_CONFIG`]): measured lz4 for raw frames, none for compressed
    /// images, zstd for the rest.
    Auto,
}

/// `[recorder.compression]`: the compression policy, per stream.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct CompressionPolicy {
    pub default: Compression,
    pub min_ratio: f64,
    pub workers: usize,
    pub max_in_flight_mb: usize,
    pub topics: std::collections::BTreeMap<String, Compression>,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        CompressionPolicy {
            default: Compression::Auto,
            min_ratio: 1.5,
            workers: 0,
            max_in_flight_mb: 64,
            topics: Default::default(),
        }
    }
}

impl CompressionPolicy {
    /// One codec for every stream (the older `compression = "lz4"` form).
    pub fn all(c: Compression) -> Self {
        CompressionPolicy {
            default: c,
            ..Default::default()
        }
    }

    /// The codec of one stream's chunks.
    pub fn for_stream(
        &self,
        topic: &str,
        modality: hal::Modality,
    ) -> crate::mcap_file::ChannelCodec {
        use crate::mcap_file::{ChannelCodec, Codec};
        let c = self.topics.get(topic).copied().unwrap_or(self.default);
        match c {
            Compression::None => ChannelCodec::Fixed(Codec::None),
            Compression::Lz4 => ChannelCodec::Fixed(Codec::Lz4),
            Compression::Zstd => ChannelCodec::Fixed(Codec::Zstd),
            Compression::Auto => match modality {
                hal::Modality::Rgb | hal::Modality::Depth => ChannelCodec::Measured {
                    min_ratio: self.min_ratio,
                },
                hal::Modality::CompressedRgb => ChannelCodec::Fixed(Codec::None),
                _ => ChannelCodec::Fixed(Codec::Zstd),
            },
        }
    }

    /// Compression threads to start.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

impl<'de> Deserialize<'de> for CompressionPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Table {
            default: Compression,
            min_ratio: f64,
            workers: usize,
            max_in_flight_mb: usize,
            topics: std::collections::BTreeMap<String, Compression>,
        }
        impl Default for Table {
            fn default() -> Self {
                let p = CompressionPolicy::default();
                Table {
                    default: p.default,
                    min_ratio: p.min_ratio,
                    workers: p.workers,
                    max_in_flight_mb: p.max_in_flight_mb,
                    topics: p.topics,
                }
            }
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(Compression),
            Table(Table),
        }
        Ok(match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "recorder.compression: expected \"auto\", \"lz4\", \"zstd\" or \"none\", or a table with keys default, min_ratio, workers, max_in_flight_mb, topics",
            )
        })? {
            Either::One(c) => CompressionPolicy::all(c),
            Either::Table(t) => CompressionPolicy {
                default: t.default,
                min_ratio: t.min_ratio,
                workers: t.workers,
                max_in_flight_mb: t.max_in_flight_mb,
                topics: t.topics,
            },
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    pub robot_id: String,
    pub out_dir: PathBuf,
    pub flush_interval_ms: u64,
    pub fsync_interval_ms: u64,
    pub chunk_size_bytes: u64,
    pub queue_max_bytes: usize,
    pub queue_max_messages: usize,
    pub task: String,
    pub operator: String,
    /// Last: a TOML table must follow the plain keys when serialized.
    pub compression: CompressionPolicy,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            robot_id: "sim-robot".into(),
            out_dir: "episodes".into(),
            flush_interval_ms: 100,
            fsync_interval_ms: 1000,
            chunk_size_bytes: 8 * 1024 * 1024,
            queue_max_bytes: 512 * 1024 * 1024,
            queue_max_messages: 65536,
            task: "pick and place".into(),
            operator: String::new(),
            compression: CompressionPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        let r = &self.recorder;
        if !(10..=200).contains(&r.flush_interval_ms) {
            return Err(format!(
                "recorder.flush_interval_ms = {} is outside 10..=200",
                r.flush_interval_ms
            ));
        }
        if r.fsync_interval_ms > 60_000 {
            return Err(format!(
                "recorder.fsync_interval_ms = {} is above 60000",
                r.fsync_interval_ms
            ));
        }
        let c = &r.compression;
        if !(c.min_ratio >= 1.0 && c.min_ratio.is_finite()) {
            return Err(format!(
                "recorder.compression.min_ratio = {} must be at least 1",
                c.min_ratio
            ));
        }
        if c.workers > 64 || c.max_in_flight_mb == 0 {
            return Err(
                "recorder.compression: workers must be 0..=64 and max_in_flight_mb positive".into(),
            );
        }
        if r.queue_max_messages == 0 || r.queue_max_bytes == 0 {
            return Err("recorder.queue_max_* must be positive".into());
        }
        let s = &self.sim;
        for c in &s.depth_cameras {
            if !s.rgb_cameras.contains(c) {
                return Err(format!(
                    "sim.depth_cameras: {c:?} is not in sim.rgb_cameras"
                ));
            }
        }
        for (k, v) in [
            ("camera_rate_hz", s.camera_rate_hz),
            ("joint_rate_hz", s.joint_rate_hz),
            ("wrench_rate_hz", s.wrench_rate_hz),
            ("tactile_rate_hz", s.tactile_rate_hz),
        ] {
            if !(v > 0.0 && v <= 100_000.0) {
                return Err(format!("sim.{k} = {v} must be in (0, 100000]"));
            }
        }
        if s.image_width == 0
            || s.image_height == 0
            || s.image_width > 8192
            || s.image_height > 8192
        {
            return Err("sim.image_width/height must be in 1..=8192".into());
        }
        for b in &self.serial {
            if b.channels.is_empty() {
                return Err(format!(
                    "serial board {:?} ({}) has no channels",
                    b.device,
                    b.path.display()
                ));
            }
            for c in &b.channels {
                if !c.topic.starts_with('/') {
                    return Err(format!(
                        "serial board {:?}: topic {:?} must start with '/'",
                        b.device, c.topic
                    ));
                }
            }
        }
        self.ros.validate()?;
        self.control.validate()?;
        self.live.validate()?;
        self.sync.validate()?;
        for tb in s.boards.triggers() {
            for c in &tb.cameras {
                if !s.rgb_cameras.contains(c) {
                    return Err(format!(
                        "sim.boards (trigger {:?}): camera {c:?} is not in sim.rgb_cameras",
                        tb.name
                    ));
                }
            }
            if [tb.frame_drop, tb.pulse_drop]
                .iter()
                .any(|p| !(0.0..=1.0).contains(p))
            {
                return Err(format!(
                    "sim.boards (trigger {:?}): frame_drop and pulse_drop must be in [0, 1]",
                    tb.name
                ));
            }
        }
        for b in &self.serial {
            if b.channels
                .iter()
                .filter(|c| c.kind == hal::serial::ChannelUse::Trigger)
                .count()
                > 1
            {
                return Err(format!(
                    "serial board {:?}: protocol v1 carries one trigger line per board",
                    b.device
                ));
            }
        }
        if !["peer", "client", "router"].contains(&self.zenoh.mode.as_str()) {
            return Err(format!(
                "zenoh.mode = {:?}: expected peer, client or router",
                self.zenoh.mode
            ));
        }
        let f = &s.failures;
        if [f.slip, f.drop, f.miss]
            .iter()
            .any(|p| !(0.0..=1.0).contains(p))
            || f.slip + f.drop + f.miss > 1.0
        {
            return Err(
                "sim.failures: probabilities must be in [0, 1] and sum to at most 1".into(),
            );
        }
        Ok(())
    }
}

pub use hal::sanitize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_defaults() {
        let parsed = Config::parse(DEFAULT_CONFIG, Path::new("DEFAULT_CONFIG")).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn bad_values_name_the_file_and_key() {
        let e = Config::parse("[recorder]\nflush_interval_ms = 900\n", Path::new("x.toml"))
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("x.toml") && m.contains("flush_interval_ms"),
            "{m}"
        );
        let e = Config::parse("[recorder]\nnope = 1\n", Path::new("y.toml")).unwrap_err();
        assert!(
            e.to_string().contains("y.toml") && e.to_string().contains("nope"),
            "{e}"
        );
    }

    #[test]
    fn sanitize_keeps_paths_safe() {
        assert_eq!(sanitize("../../etc/passwd"), "______etc_passwd");
        assert_eq!(sanitize(""), "robot");
        assert_eq!(sanitize("arm-2_b"), "arm-2_b");
    }
}
