//! The simulated robot: the embedded default source.
//!
//! A bimanual humanoid whose right arm (7-DoF, parallel gripper) does pick-and-place
//! episodes while the left arm holds still. Seeded and deterministic: the same seed, episode
//! index and start time give bit-identical samples. Every stream of the `humanoid-ref` load
//! (`shared/design/loads.md`) is produced: RGB and depth frames rendered from the scene,
//! 32-joint states, two wrist wrenches from a contact/load model, ten tactile pads. Each
//! device has its own clock (offset, drift) and transport delay (one-sided, FIFO), and the
//! episode's ground truth (true capture times, phases, outcome) is available as [`Truth`].

pub mod family;
pub mod plan;
pub mod render;

use crate::msgs::{
    Header, Image, JointState, TactileArray, Time, Vector3 as RosVec3, Wrench, WrenchStamped,
};
use crate::sample::{Modality, Payload, Sample, StreamSpec};
use crate::source::{SampleSink, Source, SourceError, SourceFuture, SourceReport};
use nalgebra::{Isometry3, Point3, UnitQuaternion, Vector3};
use plan::{EpisodeParams, EpisodePlan, Outcome, PhaseSpan, WorldState};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};
use render::{Intrinsics, Renderer, SceneBox, SceneGeom, look_at};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Probabilities of injected failures per episode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FailureRates {
    pub slip: f64,
    pub drop: f64,
    pub miss: f64,
}

impl Default for FailureRates {
    fn default() -> Self {
        FailureRates {
            slip: 0.15,
            drop: 0.10,
            miss: 0.10,
        }
    }
}

/// `sim.boards`: `true`/`false`, or a list of `[[sim.boards]]` tables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum SimBoards {
    /// `true`: the wrist wrench and tactile devices go through sensor boards.
    Sensors(bool),
    List(Vec<SimBoard>),
}

impl Default for SimBoards {
    fn default() -> Self {
        SimBoards::Sensors(false)
    }
}

impl SimBoards {
    /// The wrench and tactile devices are routed through sensor boards.
    pub fn sensors(&self) -> bool {
        match self {
            SimBoards::Sensors(b) => *b,
            SimBoards::List(l) => l.iter().any(|b| matches!(b, SimBoard::Sensors)),
        }
    }
    /// Route the wrench and tactile devices through sensor boards (keeping trigger boards).
    pub fn enable_sensors(&mut self) {
        match self {
            SimBoards::Sensors(b) => *b = true,
            SimBoards::List(l) if !l.iter().any(|b| matches!(b, SimBoard::Sensors)) => {
                l.push(SimBoard::Sensors)
            }
            SimBoards::List(_) => {}
        }
    }
    pub fn triggers(&self) -> Vec<&SimTriggerBoard> {
        match self {
            SimBoards::Sensors(_) => Vec::new(),
            SimBoards::List(l) => l
                .iter()
                .filter_map(|b| match b {
                    SimBoard::Trigger(t) => Some(t),
                    SimBoard::Sensors => None,
                })
                .collect(),
        }
    }
    pub fn any(&self) -> bool {
        self.sensors() || !self.triggers().is_empty()
    }
}

/// One `[[sim.boards]]` table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SimBoard {
    /// The wrist wrench and tactile devices, one board each.
    Sensors,
    /// A camera-trigger board: pulses at each exposure of its cameras, with its own clock.
    Trigger(SimTriggerBoard),
}

/// What a triggered camera's frames carry besides the image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FrameStamp {
    /// Only the host's receive time (a USB camera without a usable clock).
    #[default]
    Receive,
    /// The camera's own counter in whole milliseconds, taken at exposure start.
    Counter,
}

/// A simulated camera-trigger board (`[[sim.boards]] kind = "trigger"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimTriggerBoard {
    /// Device name: its clock domain, and the serial board's name.
    pub name: String,
    /// Cameras it exposes (names from `rgb_cameras`); empty = all of them.
    pub cameras: Vec<String>,
    /// Pulse → start of exposure (µs) and exposure time (µs). A frame's true capture time is
    /// the middle of its exposure.
    pub exposure_offset_us: f64,
    pub exposure_us: f64,
    pub frame_stamp: FrameStamp,
    /// Frame delivery after the end of exposure (readout and USB/GigE), uniform, ms.
    pub frame_delay_ms: [f64; 2],
    /// Fractions of frames lost in transport (the camera's frame numbers go on) and of
    /// pulses lost between board and host.
    pub frame_drop: f64,
    pub pulse_drop: f64,
}

impl Default for SimTriggerBoard {
    fn default() -> Self {
        SimTriggerBoard {
            name: "trigger_board".into(),
            cameras: Vec::new(),
            exposure_offset_us: 20.0,
            exposure_us: 4000.0,
            frame_stamp: FrameStamp::Receive,
            frame_delay_ms: [0.5, 8.0],
            frame_drop: 0.0,
            pulse_drop: 0.0,
        }
    }
}

/// A PTP-stamped simulated device (`[[sim.ptp]]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimPtp {
    pub device: String,
    /// Amplitude of the servo's wander around the reference (µs; a 7 s sine).
    pub servo_error_us: f64,
    /// A device that lost its lock drifts away from the reference from the episode's start.
    pub drift_ppm: f64,
}

impl Default for SimPtp {
    fn default() -> Self {
        SimPtp {
            device: String::new(),
            servo_error_us: 1.0,
            drift_ppm: 0.0,
        }
    }
}

/// Simulator settings. Defaults are the `humanoid-ref` load of `shared/design/loads.md`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Master seed; episode `i` uses a seed derived from it and `i`.
    pub seed: u64,
    /// Image width and height of every camera.
    pub image_width: u32,
    pub image_height: u32,
    /// RGB cameras (each also a device with its own clock).
    pub rgb_cameras: Vec<String>,
    /// Cameras that also publish depth (must be among `rgb_cameras`).
    pub depth_cameras: Vec<String>,
    pub camera_rate_hz: f64,
    pub joint_rate_hz: f64,
    pub wrench_rate_hz: f64,
    pub tactile_rate_hz: f64,
    pub tactile_rows: u32,
    pub tactile_cols: u32,
    pub failures: FailureRates,
    /// Device clock drift is drawn uniformly in +-this (ppm).
    pub max_drift_ppm: f64,
    /// Fraction of messages delayed by an extra 5-30 ms (bus contention).
    pub late_fraction: f64,
    /// Simulated serial boards on pseudo-terminals (the recorder reads them with the serial
    /// driver): `true` routes the wrist wrench and tactile streams through sensor boards;
    /// `[[sim.boards]]` tables choose them one by one (`kind = "sensors"` or `"trigger"`).
    pub boards: SimBoards,
    /// Devices that stamp in PTP time (`[[sim.ptp]]`): their counters are the reference clock
    /// itself, up to a servo error (or drifting away from it, to test the check).
    pub ptp: Vec<SimPtp>,
    /// Camera sensor noise, standard deviation in 8-bit levels (depth: in mm, halved);
    /// 0 renders flat-shaded images, which compress unrealistically well.
    pub image_noise: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            image_width: 640,
            image_height: 480,
            rgb_cameras: vec!["head".into(), "wrist_left".into(), "wrist_right".into()],
            depth_cameras: vec!["head".into(), "wrist_right".into()],
            camera_rate_hz: 30.0,
            joint_rate_hz: 500.0,
            wrench_rate_hz: 1000.0,
            tactile_rate_hz: 200.0,
            tactile_rows: 16,
            tactile_cols: 16,
            failures: FailureRates::default(),
            max_drift_ppm: 100.0,
            late_fraction: 0.002,
            boards: SimBoards::default(),
            ptp: Vec::new(),
            image_noise: 3.0,
        }
    }
}

impl SimConfig {
    /// A named load preset: `humanoid-ref` (default), `small` (160x120 images, for quick
    /// tests and demos; every other rate as humanoid-ref) or `automotive` (six 1250x1000
    /// cameras at 24 Hz, after rosbag2's automotive benchmark).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "humanoid-ref" => Some(SimConfig::default()),
            "small" => Some(SimConfig {
                image_width: 160,
                image_height: 120,
                ..SimConfig::default()
            }),
            // rosbag2's automotive benchmark (automotive.yaml): six 1250x1000 rgb8 cameras
            // at 24 Hz (~540 MB/s), no depth; the robot's other streams as humanoid-ref
            "automotive" => Some(SimConfig {
                image_width: 1250,
                image_height: 1000,
                rgb_cameras: (0..6).map(|i| format!("auto_{i}")).collect(),
                depth_cameras: Vec::new(),
                camera_rate_hz: 24.0,
                ..SimConfig::default()
            }),
            _ => None,
        }
    }
}

/// Names of the 32 joints in every joint-state message.
pub fn joint_names() -> Vec<String> {
    let mut v = Vec::with_capacity(32);
    for i in 1..=7 {
        v.push(format!("right_arm_joint{i}"));
    }
    v.push("right_gripper_finger".into());
    for i in 1..=7 {
        v.push(format!("left_arm_joint{i}"));
    }
    v.push("left_gripper_finger".into());
    v.extend(["waist_yaw", "waist_pitch", "head_pan", "head_tilt"].map(String::from));
    for side in ["left", "right"] {
        for j in [
            "hip_yaw",
            "hip_roll",
            "hip_pitch",
            "knee",
            "ankle_pitch",
            "ankle_roll",
        ] {
            v.push(format!("{side}_{j}"));
        }
    }
    v
}

/// Tactile pads on each hand.
pub const PADS: [&str; 5] = ["a_tip", "a_base", "b_tip", "b_base", "palm"];
/// Edge length of one taxel (m).
pub const TAXEL: f64 = 0.003;

/// One device's clock: `counter_us(T) = floor((T - boot_ns) * (1 + drift) / 1000)`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DeviceClock {
    pub device: String,
    /// Reference time (ns since the Unix epoch) at which the counter was 0.
    pub boot_ns: u64,
    pub boot_id: u64,
    /// Drift in parts per billion (positive: the device clock runs fast).
    pub drift_ppb: i64,
    /// Minimum transport delay (ns) and mean of the exponential part (ns).
    pub min_delay_ns: u64,
    pub mean_extra_delay_ns: u64,
    /// A PTP-stamped device: the counter is reference time (µs since the Unix epoch) plus
    /// the servo's wander, plus `drift_ppb` from `boot_ns` on (a device that lost its lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptp_servo_error_ns: Option<u64>,
}

impl DeviceClock {
    pub fn counter_us(&self, t_ns: u64) -> u64 {
        let dt = t_ns as i128 - self.boot_ns as i128;
        if let Some(servo) = self.ptp_servo_error_ns {
            let wander = servo as f64 * (dt as f64 / 7e9 * std::f64::consts::TAU).sin();
            let drift = dt * self.drift_ppb as i128 / 1_000_000_000;
            let c = (t_ns as i128 + drift + wander as i128) / 1000;
            return c.max(0) as u64;
        }
        let c = dt * (1_000_000_000 + self.drift_ppb as i128) / 1_000_000_000_000;
        c.max(0) as u64
    }
}

/// Ground truth of one episode, written next to the recording as `<episode>.truth.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Truth {
    pub seed: u64,
    pub episode_index: u64,
    /// Reference time (ns since the Unix epoch) of episode time 0.
    pub t0_ns: u64,
    pub duration_s: f64,
    pub params: EpisodeParams,
    /// The episode's label: the outcome of its (last) attempt.
    pub outcome: Outcome,
    /// Phase intervals (seconds from t0).
    pub phases: Vec<PhaseSpan>,
    pub devices: Vec<DeviceClock>,
    pub streams: Vec<StreamTruth>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerTruth>,
}

/// True capture times of one stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StreamTruth {
    pub topic: String,
    pub device: String,
    /// True capture time of each message, ns after `t0_ns`, in sequence order (a
    /// triggered camera's: the middle of its exposure).
    pub capture_rel_ns: Vec<u64>,
    /// Sequence numbers never delivered (lost frames, lost trigger pulses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<u64>,
}

/// The true pulses of a simulated trigger board.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TriggerTruth {
    pub board: String,
    pub cameras: Vec<String>,
    /// True time of each pulse, ns after `t0_ns`, by pulse number.
    pub pulse_rel_ns: Vec<u64>,
    /// Pulse numbers lost between board and host.
    pub dropped_pulses: Vec<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Camera {
        rgb: usize,
        depth: Option<usize>,
        cam: usize,
    },
    Joints {
        stream: usize,
    },
    Ft {
        stream: usize,
        right: bool,
    },
    Tactile {
        first: usize,
        right: bool,
    },
    /// A trigger board (index into `cfg.boards.triggers()`): its ticks are pulses.
    Trigger {
        board: usize,
    },
}

/// What a device's samples carry as their device stamp.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stamp {
    /// Its own clock at capture.
    Own,
    /// Nothing but the host's receive time.
    Receive,
    /// Its own clock in whole milliseconds, at `stamp_at` (a triggered camera's exposure start).
    CoarseCounter,
}

struct Device {
    kind: Kind,
    clock: DeviceClock,
    /// Capture (rel ns) and arrival (rel ns) per tick.
    capture: Vec<u64>,
    arrival: Vec<u64>,
    /// Ticks lost on the way (the tick's sequence number is used up).
    dropped: Vec<bool>,
    stamp: Stamp,
    /// When the device stamps each tick (rel ns), if not at capture.
    stamp_at: Vec<u64>,
    next: usize,
    rng: ChaCha8Rng,
    bias: [f64; 6],
}

/// A trigger pulse the episode produced, for its board.
#[derive(Clone, Debug, PartialEq)]
pub struct Pulse {
    /// The board's device name.
    pub board: String,
    pub pulse: u32,
    /// On the board's clock (µs).
    pub event_time_us: u64,
}

struct CameraDef {
    name: String,
    intr: Intrinsics,
}

/// One simulated episode: the plan plus every device's schedule. Yields samples in host
/// arrival order with [`SimEpisode::next_samples`].
pub struct SimEpisode {
    cfg: SimConfig,
    episode_index: u64,
    t0_ns: u64,
    plan: EpisodePlan,
    streams: Vec<StreamSpec>,
    devices: Vec<Device>,
    cameras: Vec<CameraDef>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    renderer: Renderer,
    seq: Vec<u64>,
    names: Vec<String>,
    triggers: Vec<SimTriggerBoard>,
    pulses: Vec<Pulse>,
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // splitmix64 over the combination, so nearby seeds give unrelated streams
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SimEpisode {
    /// Plan episode `episode_index` of `duration_s` seconds starting at reference time `t0_ns`.
    pub fn new(cfg: &SimConfig, episode_index: u64, duration_s: f64, t0_ns: u64) -> Self {
        let mut plan_rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, episode_index, 0));
        let plan = EpisodePlan::generate(cfg, &mut plan_rng, duration_s);
        let mut streams = Vec::new();
        let mut kinds = Vec::new();
        let mut cameras = Vec::new();
        let img_bytes = (cfg.image_width * cfg.image_height) as usize;
        for (ci, name) in cfg.rgb_cameras.iter().enumerate() {
            let device = format!("camera_{name}");
            let rgb = streams.len();
            streams.push(StreamSpec {
                topic: format!("/camera/{name}/image_raw"),
                modality: Modality::Rgb,
                device: device.clone(),
                rate_hz: cfg.camera_rate_hz,
                ros_type: None,
                nominal_bytes: img_bytes * 3,
            });
            let depth = if cfg.depth_cameras.contains(name) {
                streams.push(StreamSpec {
                    topic: format!("/camera/{name}/depth"),
                    modality: Modality::Depth,
                    device: device.clone(),
                    rate_hz: cfg.camera_rate_hz,
                    ros_type: None,
                    nominal_bytes: img_bytes * 2,
                });
                Some(streams.len() - 1)
            } else {
                None
            };
            let hfov = if name.starts_with("wrist") { 1.6 } else { 1.2 };
            cameras.push(CameraDef {
                name: name.clone(),
                intr: Intrinsics::with_hfov(cfg.image_width, cfg.image_height, hfov),
            });
            kinds.push((
                device,
                Kind::Camera {
                    rgb,
                    depth,
                    cam: ci,
                },
                cfg.camera_rate_hz,
                4_000_000u64,
                1_500_000u64,
            ));
        }
        let js = streams.len();
        streams.push(StreamSpec {
            topic: "/joint_states".into(),
            modality: Modality::JointState,
            device: "joint_controller".into(),
            rate_hz: cfg.joint_rate_hz,
            ros_type: None,
            nominal_bytes: 32 * 24 + 32 * 28,
        });
        kinds.push((
            "joint_controller".into(),
            Kind::Joints { stream: js },
            cfg.joint_rate_hz,
            300_000,
            500_000,
        ));
        for side in ["left", "right"] {
            let s = streams.len();
            streams.push(StreamSpec {
                topic: format!("/wrist/{side}/wrench"),
                modality: Modality::Wrench,
                device: format!("ft_{side}"),
                rate_hz: cfg.wrench_rate_hz,
                ros_type: None,
                nominal_bytes: 80,
            });
            kinds.push((
                format!("ft_{side}"),
                Kind::Ft {
                    stream: s,
                    right: side == "right",
                },
                cfg.wrench_rate_hz,
                125_000,
                300_000,
            ));
        }
        for side in ["left", "right"] {
            let first = streams.len();
            for pad in PADS {
                streams.push(StreamSpec {
                    topic: format!("/tactile/{side}_{pad}"),
                    modality: Modality::Tactile,
                    device: format!("tactile_{side}"),
                    rate_hz: cfg.tactile_rate_hz,
                    ros_type: None,
                    nominal_bytes: (cfg.tactile_rows * cfg.tactile_cols * 4) as usize + 64,
                });
            }
            kinds.push((
                format!("tactile_{side}"),
                Kind::Tactile {
                    first,
                    right: side == "right",
                },
                cfg.tactile_rate_hz,
                500_000,
                500_000,
            ));
        }

        let dur_ns = (duration_s * 1e9) as u64;
        let mut devices = Vec::new();
        let mut heap = BinaryHeap::new();
        for (di, (device, kind, rate, min_delay, mean_delay)) in kinds.into_iter().enumerate() {
            // Clock parameters belong to the device, not the episode: consecutive episodes see
            // one continuous counter per device.
            let mut crng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 0xC10C, di as u64));
            let drift_ppb =
                (crng.gen_range(-cfg.max_drift_ppm..=cfg.max_drift_ppm) * 1000.0) as i64;
            let boot_ns = 1_600_000_000_000_000_000 + crng.gen_range(0..100_000_000_000_000_000u64);
            let clock = DeviceClock {
                device: device.clone(),
                boot_ns,
                boot_id: crng.r#gen::<u32>() as u64,
                drift_ppb,
                min_delay_ns: min_delay,
                mean_extra_delay_ns: mean_delay,
                ptp_servo_error_ns: None,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, episode_index, 100 + di as u64));
            // Regular in device time: the true period is stretched by the drift.
            let period = 1e9 / rate / (1.0 + drift_ppb as f64 * 1e-9);
            let phase0 = rng.gen_range(0.0..period);
            let exp = Exp::new(1.0 / mean_delay as f64).expect("positive delay mean");
            let mut capture = Vec::new();
            let mut arrival = Vec::new();
            let mut last = 0u64;
            let mut k = 0u64;
            loop {
                let t = (phase0 + k as f64 * period) as u64;
                if t >= dur_ns {
                    break;
                }
                let mut delay = min_delay as f64 + exp.sample(&mut rng);
                if rng.gen_bool(cfg.late_fraction.clamp(0.0, 1.0)) {
                    delay += rng.gen_range(5e6..30e6);
                }
                let a = (t + delay as u64).max(last);
                last = a;
                capture.push(t);
                arrival.push(a);
                k += 1;
            }
            let bias = std::array::from_fn(|i| {
                if i < 3 {
                    rng.gen_range(-0.2..0.2)
                } else {
                    rng.gen_range(-0.01..0.01)
                }
            });
            devices.push(Device {
                kind,
                clock,
                dropped: vec![false; capture.len()],
                capture,
                arrival,
                stamp: Stamp::Own,
                stamp_at: Vec::new(),
                next: 0,
                rng,
                bias,
            });
        }
        let triggers: Vec<SimTriggerBoard> = cfg.boards.triggers().into_iter().cloned().collect();
        for (bi, tb) in triggers.iter().enumerate() {
            let board = Self::trigger_board(cfg, episode_index, dur_ns, bi, tb);
            let pulses = board.capture.clone();
            for (ci, d) in devices.iter_mut().enumerate() {
                let Kind::Camera { cam, .. } = d.kind else {
                    continue;
                };
                let name = &cfg.rgb_cameras[cam];
                if !tb.cameras.is_empty() && !tb.cameras.contains(name) {
                    continue;
                }
                Self::expose_by(
                    d,
                    &pulses,
                    tb,
                    mix(cfg.seed, episode_index, 600 + ci as u64),
                );
            }
            devices.push(board);
        }
        for p in &cfg.ptp {
            if let Some(d) = devices.iter_mut().find(|d| d.clock.device == p.device) {
                d.clock.ptp_servo_error_ns = Some((p.servo_error_us * 1000.0).round() as u64);
                d.clock.drift_ppb = (p.drift_ppm * 1000.0).round() as i64;
                d.clock.boot_ns = t0_ns;
            }
        }
        for (di, d) in devices.iter().enumerate() {
            if let Some(&a) = d.arrival.first() {
                heap.push(Reverse((a, di)));
            }
        }
        let n = streams.len();
        SimEpisode {
            cfg: cfg.clone(),
            episode_index,
            t0_ns,
            plan,
            streams,
            devices,
            cameras,
            heap,
            renderer: Renderer::default(),
            seq: vec![0; n],
            names: joint_names(),
            triggers,
            pulses: Vec::new(),
        }
    }

    /// Trigger board `bi`: a device whose ticks are pulses, regular in its own time at the
    /// camera rate.
    fn trigger_board(
        cfg: &SimConfig,
        episode_index: u64,
        dur_ns: u64,
        bi: usize,
        tb: &SimTriggerBoard,
    ) -> Device {
        let mut crng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 0x7A1C, bi as u64));
        let drift_ppb = (crng.gen_range(-cfg.max_drift_ppm..=cfg.max_drift_ppm) * 1000.0) as i64;
        let clock = DeviceClock {
            device: tb.name.clone(),
            boot_ns: 1_600_000_000_000_000_000 + crng.gen_range(0..100_000_000_000_000_000u64),
            boot_id: crng.r#gen::<u32>() as u64,
            drift_ppb,
            // the pty and the serial driver are the real transport
            min_delay_ns: 0,
            mean_extra_delay_ns: 0,
            ptp_servo_error_ns: None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, episode_index, 500 + bi as u64));
        let period = 1e9 / cfg.camera_rate_hz / (1.0 + drift_ppb as f64 * 1e-9);
        let phase0 = rng.gen_range(0.0..period);
        let (mut capture, mut dropped) = (Vec::new(), Vec::new());
        let mut k = 0u64;
        loop {
            let t = (phase0 + k as f64 * period) as u64;
            if t >= dur_ns {
                break;
            }
            capture.push(t);
            dropped.push(rng.gen_bool(tb.pulse_drop.clamp(0.0, 1.0)));
            k += 1;
        }
        Device {
            kind: Kind::Trigger { board: bi },
            clock,
            // handed to the board at once; it sends it on
            arrival: capture.iter().map(|t| t + 10_000).collect(),
            capture,
            dropped,
            stamp: Stamp::Own,
            stamp_at: Vec::new(),
            next: 0,
            rng,
            bias: [0.0; 6],
        }
    }

    /// Make camera device `d` expose at each pulse: captured mid-exposure, stamped at
    /// exposure start, delivered after the exposure plus a uniform delay, some frames lost.
    fn expose_by(d: &mut Device, pulses: &[u64], tb: &SimTriggerBoard, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let start = |p: u64| p + (tb.exposure_offset_us * 1000.0) as u64;
        let (lo, hi) = (
            tb.frame_delay_ms[0].min(tb.frame_delay_ms[1]) * 1e6,
            tb.frame_delay_ms[0].max(tb.frame_delay_ms[1]) * 1e6,
        );
        let exposure = (tb.exposure_us * 1000.0) as u64;
        let mut last = 0;
        d.capture = pulses.iter().map(|&p| start(p) + exposure / 2).collect();
        d.stamp_at = pulses.iter().map(|&p| start(p)).collect();
        d.arrival = pulses
            .iter()
            .map(|&p| {
                let delay = if hi > lo { rng.gen_range(lo..hi) } else { lo };
                let a = (start(p) + exposure + delay as u64).max(last);
                last = a;
                a
            })
            .collect();
        d.dropped = pulses
            .iter()
            .map(|_| rng.gen_bool(tb.frame_drop.clamp(0.0, 1.0)))
            .collect();
        d.stamp = match tb.frame_stamp {
            FrameStamp::Receive => Stamp::Receive,
            FrameStamp::Counter => Stamp::CoarseCounter,
        };
    }

    /// The trigger pulses produced since the last call (for the boards).
    pub fn take_pulses(&mut self) -> Vec<Pulse> {
        std::mem::take(&mut self.pulses)
    }

    pub fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    pub fn plan(&self) -> &EpisodePlan {
        &self.plan
    }

    pub fn t0_ns(&self) -> u64 {
        self.t0_ns
    }

    /// Arrival time (ns after t0) of the next batch of samples, if any.
    pub fn peek_arrival_rel_ns(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((a, _))| *a)
    }

    /// The ground truth of this episode.
    pub fn truth(&self) -> Truth {
        let mut streams: Vec<StreamTruth> = self
            .streams
            .iter()
            .map(|s| StreamTruth {
                topic: s.topic.clone(),
                device: s.device.clone(),
                capture_rel_ns: Vec::new(),
                dropped: Vec::new(),
            })
            .collect();
        let dropped = |d: &Device| -> Vec<u64> {
            (0..d.dropped.len() as u64)
                .filter(|&k| d.dropped[k as usize])
                .collect()
        };
        let mut triggers = Vec::new();
        for d in &self.devices {
            if let Kind::Trigger { board } = d.kind {
                let tb = &self.triggers[board];
                triggers.push(TriggerTruth {
                    board: tb.name.clone(),
                    cameras: if tb.cameras.is_empty() {
                        self.cfg.rgb_cameras.clone()
                    } else {
                        tb.cameras.clone()
                    },
                    pulse_rel_ns: d.capture.clone(),
                    dropped_pulses: dropped(d),
                });
                continue;
            }
            for idx in stream_indices(d.kind) {
                streams[idx].capture_rel_ns = d.capture.clone();
                streams[idx].dropped = dropped(d);
            }
        }
        Truth {
            seed: self.cfg.seed,
            episode_index: self.episode_index,
            t0_ns: self.t0_ns,
            duration_s: self.plan.duration_s,
            params: self.plan.params.clone(),
            outcome: self.plan.params.outcome,
            phases: self.plan.phases.clone(),
            devices: self.devices.iter().map(|d| d.clock.clone()).collect(),
            streams,
            triggers,
        }
    }

    /// The next device tick's samples (one per stream of that device), in arrival order.
    pub fn next_samples(&mut self, out: &mut Vec<Sample>) -> bool {
        let Some(Reverse((_, di))) = self.heap.pop() else {
            return false;
        };
        let k = self.devices[di].next;
        self.devices[di].next += 1;
        if let Some(&a) = self.devices[di].arrival.get(k + 1) {
            self.heap.push(Reverse((a, di)));
        }
        let cap = self.devices[di].capture[k];
        let arr = self.devices[di].arrival[k];
        let t_abs = self.t0_ns + cap;
        let host = self.t0_ns + arr;
        let d = &self.devices[di];
        let stamp_us = match d.stamp {
            Stamp::Own => d.clock.counter_us(t_abs),
            Stamp::Receive => host / 1000,
            Stamp::CoarseCounter => {
                let at = d.stamp_at.get(k).map_or(t_abs, |s| self.t0_ns + s);
                d.clock.counter_us(at) / 1000 * 1000
            }
        };
        let boot_id = d.clock.boot_id;
        let kind = d.kind;
        if d.dropped.get(k).copied().unwrap_or(false) {
            // lost on the way: the device's numbering goes on
            for idx in stream_indices(kind) {
                self.seq[idx] += 1;
            }
            return true;
        }
        if let Kind::Trigger { board } = kind {
            self.pulses.push(Pulse {
                board: self.triggers[board].name.clone(),
                pulse: k as u32,
                event_time_us: stamp_us,
            });
            return true;
        }
        let t = cap as f64 * 1e-9;
        let state = self.plan.state(t);
        let mut push = |this: &mut Self, stream: usize, payload: Payload| {
            let seq = this.seq[stream];
            this.seq[stream] += 1;
            out.push(Sample {
                stream,
                device_stamp_us: stamp_us,
                transmit_stamp_us: None,
                host_receive_ns: host,
                sequence: seq,
                boot_id,
                payload,
            });
        };
        match kind {
            Kind::Camera { rgb, depth, cam } => {
                let frame_seed = self.seq[rgb] ^ ((cam as u64) << 48);
                let (img, dimg) = self.render_camera(cam, &state, depth.is_some(), frame_seed);
                push(self, rgb, Payload::Image(img));
                if let (Some(ds), Some(d)) = (depth, dimg) {
                    push(self, ds, Payload::Image(d));
                }
            }
            Kind::Joints { stream } => {
                let js = self.joint_state(di, t, &state);
                push(self, stream, Payload::JointState(js));
            }
            Kind::Ft { stream, right } => {
                let w = self.wrench(di, t, &state, right);
                push(self, stream, Payload::Wrench(w));
            }
            Kind::Tactile { first, right } => {
                for (i, pad) in PADS.iter().enumerate() {
                    let m = self.tactile(di, &state, right, pad);
                    push(self, first + i, Payload::Tactile(m));
                }
            }
            Kind::Trigger { .. } => {}
        }
        true
    }

    fn scene(&self, s: &WorldState) -> SceneGeom {
        let p = &self.plan.params;
        let mut boxes = vec![SceneBox {
            pose: s.object,
            half: Vector3::repeat(p.object_size / 2.0),
            color: [200, 40, 30],
        }];
        let o = self.plan.arm.link_origins(s.q.as_slice());
        for w in o.windows(2).take(o.len() - 2) {
            let d = w[1] - w[0];
            let len = d.norm();
            if len < 1e-3 {
                continue;
            }
            let rot = UnitQuaternion::rotation_between(&Vector3::z(), &d)
                .unwrap_or_else(UnitQuaternion::identity);
            boxes.push(SceneBox {
                pose: Isometry3::from_parts(((w[0] + w[1]) / 2.0).into(), rot),
                half: Vector3::new(0.03, 0.03, len / 2.0),
                color: [225, 225, 230],
            });
        }
        let t = s.tool;
        boxes.push(SceneBox {
            pose: t * Isometry3::translation(0.0, 0.0, -0.06),
            half: Vector3::new(0.025, 0.07, 0.02),
            color: [60, 60, 70],
        });
        for sign in [-1.0, 1.0] {
            boxes.push(SceneBox {
                pose: t * Isometry3::translation(0.0, sign * (s.aperture / 2.0 + 0.008), -0.01),
                half: Vector3::new(0.01, 0.008, 0.025),
                color: [170, 170, 180],
            });
        }
        SceneGeom {
            boxes,
            target_xy: p.target_xy,
            target_half: 0.05,
        }
    }

    fn render_camera(
        &mut self,
        cam: usize,
        s: &WorldState,
        want_depth: bool,
        frame_seed: u64,
    ) -> (Image, Option<Image>) {
        let scene = self.scene(s);
        let def = &self.cameras[cam];
        let pose = match def.name.as_str() {
            "head" => look_at(Vector3::new(-0.80, 0.0, 1.05), Vector3::new(0.08, 0.0, 0.0)),
            "wrist_left" => look_at(
                Vector3::new(0.05, 0.5, 0.35),
                Vector3::new(0.08, -0.05, 0.0),
            ),
            "wrist_right" => {
                let eye = s.tool * Point3::new(-0.08, 0.0, -0.16);
                let at = s.tool * Point3::new(0.0, 0.0, 0.05);
                look_at(eye.coords, at.coords)
            }
            other => {
                // Extra configured cameras look at the workspace from a spot derived from the name.
                let a = (other.bytes().map(u32::from).sum::<u32>() % 628) as f64 / 100.0;
                look_at(
                    Vector3::new(0.1 + 0.7 * a.cos(), 0.7 * a.sin(), 0.6),
                    Vector3::new(0.08, 0.0, 0.0),
                )
            }
        };
        let intr = def.intr;
        let frame = format!("{}_optical_frame", def.name);
        let mut rgb = Vec::new();
        let mut depth = Vec::new();
        self.renderer.render(
            &intr,
            &pose,
            &scene,
            &mut rgb,
            want_depth.then_some(&mut depth),
        );
        if self.cfg.image_noise > 0.0 {
            self.renderer.add_noise(
                self.cfg.image_noise,
                frame_seed,
                &mut rgb,
                want_depth.then_some(&mut depth),
            );
        }
        let header = Header {
            stamp: Time::default(),
            frame_id: frame,
        };
        let img = Image {
            header: header.clone(),
            height: intr.height,
            width: intr.width,
            encoding: "rgb8".into(),
            is_bigendian: 0,
            step: intr.width * 3,
            data: rgb,
        };
        let d = want_depth.then(|| Image {
            header,
            height: intr.height,
            width: intr.width,
            encoding: "16UC1".into(),
            is_bigendian: 0,
            step: intr.width * 2,
            data: depth,
        });
        (img, d)
    }

    fn joint_state(&mut self, di: usize, t: f64, s: &WorldState) -> JointState {
        let rng = &mut self.devices[di].rng;
        let np = Normal::new(0.0, 1e-5).expect("sigma");
        let nv = Normal::new(0.0, 1e-3).expect("sigma");
        let ne = Normal::new(0.0, 0.05).expect("sigma");
        let mut pos = Vec::with_capacity(32);
        let mut vel = Vec::with_capacity(32);
        let mut eff = Vec::with_capacity(32);
        let load = if s.held {
            self.plan.params.object_mass_kg * 9.81
        } else {
            0.0
        };
        for i in 0..7 {
            pos.push(s.q[i] + np.sample(rng));
            vel.push(s.qd[i] + nv.sample(rng));
            let lever = [0.0, 0.55, 0.0, 0.35, 0.0, 0.1, 0.0][i];
            eff.push(8.0 * s.q[i].sin() * lever + load * lever + ne.sample(rng));
        }
        pos.push(s.aperture / 2.0);
        vel.push(0.0);
        eff.push(-s.grip_force);
        let left = [0.0, -0.5, 0.0, -2.2, 0.0, 1.75, -0.785];
        for (i, l) in left.iter().enumerate() {
            pos.push(l + 0.002 * (t * 0.7 + i as f64).sin() + np.sample(rng));
            vel.push(0.0014 * (t * 0.7 + i as f64).cos() + nv.sample(rng));
            eff.push(8.0 * l.sin() * 0.3 + ne.sample(rng));
        }
        pos.push(0.04);
        vel.push(0.0);
        eff.push(0.0);
        // waist, head (the head follows the gripper a little), legs (standing, slight sway)
        let head_pan = (s.tool.translation.y).atan2(s.tool.translation.x + 0.45) * 0.5;
        let extra = [0.0, 0.05, head_pan, 0.6];
        for e in extra {
            pos.push(e + np.sample(rng));
            vel.push(nv.sample(rng));
            eff.push(ne.sample(rng));
        }
        for i in 0..12 {
            let base = [0.0, 0.02, -0.3, 0.6, -0.3, -0.02][i % 6];
            pos.push(base + 0.003 * (t * 0.5).sin() + np.sample(rng));
            vel.push(0.0015 * (t * 0.5).cos() + nv.sample(rng));
            eff.push(20.0 * base + ne.sample(rng));
        }
        JointState {
            header: Header {
                stamp: Time::default(),
                frame_id: "base_link".into(),
            },
            name: self.names.clone(),
            position: pos,
            velocity: vel,
            effort: eff,
        }
    }

    fn wrench(&mut self, di: usize, t: f64, s: &WorldState, right: bool) -> WrenchStamped {
        let p = &self.plan.params;
        let mut f = Vector3::zeros();
        let mut tq = Vector3::zeros();
        if right {
            let m = p.object_mass_kg;
            if s.held {
                let share = 1.0 - s.support_share;
                f.z -= m * (9.81 + s.object_acc_z) * share;
                // contact push while the table takes over the weight
                f.z += 2.0 * s.support_share * (1.0 - s.support_share) * 4.0;
                if let Some([ts, _]) = p.slip {
                    let dt = t - ts;
                    if (0.0..0.3).contains(&dt) {
                        f.z += m
                            * 9.81
                            * 0.3
                            * (2.0 * std::f64::consts::PI * 15.0 * dt).sin()
                            * (-dt / 0.05).exp();
                    }
                }
                let sensor = s.tool * Point3::new(0.0, 0.0, -0.15);
                let r = s.object.translation.vector - sensor.coords;
                tq = r.cross(&f);
            }
            if let (Outcome::Drop, Some(td)) = (p.outcome, p.drop_s) {
                // the release of the load rings the sensor briefly
                let dt = t - td;
                if (0.0..0.2).contains(&dt) {
                    f.z += m
                        * 9.81
                        * 0.4
                        * (2.0 * std::f64::consts::PI * 12.0 * dt).sin()
                        * (-dt / 0.04).exp();
                }
            }
            // express in the sensor frame (aligned with the tool)
            let inv = s.tool.rotation.inverse();
            f = inv * f;
            tq = inv * tq;
        }
        let dev = &mut self.devices[di];
        let nf = Normal::new(0.0, 0.05).expect("sigma");
        let nt = Normal::new(0.0, 0.004).expect("sigma");
        let b = dev.bias;
        let rng = &mut dev.rng;
        let v = |x: f64, b: f64, rng: &mut ChaCha8Rng, n: &Normal<f64>| x + b + n.sample(rng);
        WrenchStamped {
            header: Header {
                stamp: Time::default(),
                frame_id: format!("{}_ft_sensor", if right { "right" } else { "left" }),
            },
            wrench: Wrench {
                force: RosVec3 {
                    x: v(f.x, b[0], rng, &nf),
                    y: v(f.y, b[1], rng, &nf),
                    z: v(f.z, b[2], rng, &nf),
                },
                torque: RosVec3 {
                    x: v(tq.x, b[3], rng, &nt),
                    y: v(tq.y, b[4], rng, &nt),
                    z: v(tq.z, b[5], rng, &nt),
                },
            },
        }
    }

    fn tactile(&mut self, di: usize, s: &WorldState, right: bool, pad: &str) -> TactileArray {
        let (rows, cols) = (
            self.cfg.tactile_rows as usize,
            self.cfg.tactile_cols as usize,
        );
        let side = if right { "right" } else { "left" };
        let noise: Normal<f64> = Normal::new(0.0, 0.15).expect("sigma");
        let rng = &mut self.devices[di].rng;
        let mut pressure = Vec::with_capacity(rows * cols);
        let force = if right && s.grip_force > 0.0 {
            match pad {
                "a_tip" | "b_tip" => s.grip_force,
                "a_base" | "b_base" if self.plan.params.object_size > 0.05 => 0.1 * s.grip_force,
                _ => 0.0,
            }
        } else {
            0.0
        };
        let sigma = 1.5 + 0.25 * force.sqrt();
        // the contact centroid moves toward the fingertip edge as the object slips
        let cy = rows as f64 / 2.0 + s.slip_offset / TAXEL;
        let cx = cols as f64 / 2.0 + if pad.starts_with('a') { 0.5 } else { -0.5 };
        let peak_kpa =
            force / (2.0 * std::f64::consts::PI * sigma * sigma * TAXEL * TAXEL) / 1000.0;
        for r in 0..rows {
            for c in 0..cols {
                let mut v = noise.sample(rng).abs() * 0.5;
                if force > 0.0 {
                    let dy = r as f64 + 0.5 - cy;
                    let dx = c as f64 + 0.5 - cx;
                    v += peak_kpa * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
                }
                pressure.push(v as f32);
            }
        }
        TactileArray {
            header: Header {
                stamp: Time::default(),
                frame_id: format!("{side}_{pad}"),
            },
            pad: format!("{side}_{pad}"),
            rows: rows as u32,
            cols: cols as u32,
            taxel_size: TAXEL as f32,
            pressure,
        }
    }
}

fn stream_indices(k: Kind) -> Vec<usize> {
    match k {
        Kind::Camera { rgb, depth, .. } => std::iter::once(rgb).chain(depth).collect(),
        Kind::Joints { stream } | Kind::Ft { stream, .. } => vec![stream],
        Kind::Tactile { first, .. } => (first..first + PADS.len()).collect(),
        Kind::Trigger { .. } => Vec::new(),
    }
}

/// The simulated robot as a [`Source`]: plays one episode in real time (each sample is
/// delivered at its simulated host arrival time).
///
/// Devices can be *routed through boards*: their samples are handed to a simulated serial
/// board (`firmware_bridge::board`) instead of the sink, and reach the recorder through a
/// pseudo-terminal and the serial driver, like a real wrist sensor's would.
pub struct SimSource {
    episode: SimEpisode,
    name: String,
    routed: std::collections::HashMap<
        String,
        std::sync::mpsc::Sender<firmware_bridge::board::FeedItem>,
    >,
    gates: Vec<Arc<std::sync::atomic::AtomicBool>>,
}

impl SimSource {
    pub fn new(episode: SimEpisode) -> Self {
        SimSource {
            name: format!("sim-episode-{}", episode.episode_index),
            episode,
            routed: Default::default(),
            gates: Vec::new(),
        }
    }

    /// Send this device's samples to a board feed instead of the sink.
    pub fn route_device(
        &mut self,
        device: &str,
        feed: std::sync::mpsc::Sender<firmware_bridge::board::FeedItem>,
    ) {
        self.routed.insert(device.to_string(), feed);
    }

    /// Do not start playing before `flag` is set (a board streaming), waiting 3 s at most.
    pub fn wait_for(&mut self, flag: Arc<std::sync::atomic::AtomicBool>) {
        self.gates.push(flag);
    }

    pub fn truth(&self) -> Truth {
        self.episode.truth()
    }

    fn is_routed(&self, stream: usize) -> bool {
        self.routed
            .contains_key(&self.episode.streams[stream].device)
    }
}

/// The board channel a routed sample goes to, and its values.
pub fn board_item(s: &Sample) -> Option<(u8, Vec<f32>)> {
    match &s.payload {
        Payload::Wrench(w) => {
            let f = &w.wrench;
            Some((
                0,
                [
                    f.force.x, f.force.y, f.force.z, f.torque.x, f.torque.y, f.torque.z,
                ]
                .iter()
                .map(|v| *v as f32)
                .collect(),
            ))
        }
        Payload::Tactile(t) => {
            // one channel per pad, in PADS order
            let ch = PADS.iter().position(|p| t.pad.ends_with(p))?;
            Some((ch as u8, t.pressure.clone()))
        }
        _ => None,
    }
}

impl Source for SimSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn streams(&self) -> Vec<StreamSpec> {
        (0..self.episode.streams.len())
            .filter(|&i| !self.is_routed(i))
            .map(|i| self.episode.streams[i].clone())
            .collect()
    }
    fn run(self: Box<Self>, sink: Arc<dyn SampleSink>, stop: CancellationToken) -> SourceFuture {
        Box::pin(async move {
            let name = self.name.clone();
            let handle = tokio::task::spawn_blocking(move || {
                // episode stream index -> output index (None: routed through a board)
                let mut out_index = Vec::new();
                let mut k = 0;
                for i in 0..self.episode.streams.len() {
                    if self.is_routed(i) {
                        out_index.push(None);
                    } else {
                        out_index.push(Some(k));
                        k += 1;
                    }
                }
                let routed = self.routed;
                let gate_deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
                while !self
                    .gates
                    .iter()
                    .all(|g| g.load(std::sync::atomic::Ordering::Acquire))
                    && std::time::Instant::now() < gate_deadline
                    && !stop.is_cancelled()
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let mut ep = self.episode;
                let mut report = SourceReport {
                    produced: vec![0; k],
                    refused: vec![0; k],
                };
                let start = std::time::Instant::now();
                let wall0 = now_ns();
                // The episode's t0 is the wall clock when it was planned; keep that relation.
                let lag0 = wall0.saturating_sub(ep.t0_ns);
                let mut buf = Vec::new();
                while let Some(arr) = ep.peek_arrival_rel_ns() {
                    if stop.is_cancelled() {
                        break;
                    }
                    let due = std::time::Duration::from_nanos(arr.saturating_sub(lag0));
                    let el = start.elapsed();
                    if due > el {
                        std::thread::sleep(due - el);
                    }
                    buf.clear();
                    ep.next_samples(&mut buf);
                    for p in ep.take_pulses() {
                        if let Some(feed) = routed.get(&p.board) {
                            // a board that is unplugged simply does not take it
                            let _ = feed.send(firmware_bridge::board::FeedItem::Trigger {
                                pulse: p.pulse,
                                event_time_us: p.event_time_us,
                            });
                        }
                    }
                    for mut s in buf.drain(..) {
                        match out_index[s.stream] {
                            Some(i) => {
                                s.stream = i;
                                report.produced[i] += 1;
                                if !sink.push(s) {
                                    report.refused[i] += 1;
                                }
                            }
                            None => {
                                let spec = &ep.streams[s.stream];
                                if let (Some(feed), Some((channel, values))) =
                                    (routed.get(&spec.device), board_item(&s))
                                {
                                    // a board that is unplugged simply does not take it
                                    let _ = feed.send(firmware_bridge::board::FeedItem::Sample {
                                        channel,
                                        event_time_us: s.device_stamp_us,
                                        values,
                                    });
                                }
                            }
                        }
                    }
                }
                report
            });
            handle.await.map_err(|e| SourceError::Failed {
                source_name: name,
                message: e.to_string(),
            })
        })
    }
}

/// Host `CLOCK_REALTIME` in ns since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig::preset("small").unwrap()
    }

    fn with_failures(slip: f64, drop: f64, miss: f64) -> SimConfig {
        SimConfig {
            failures: FailureRates { slip, drop, miss },
            ..small()
        }
    }

    #[test]
    fn deterministic_for_same_seed() {
        let a_cfg = small();
        let mut a = SimEpisode::new(&a_cfg, 3, 1.0, 1_700_000_000_000_000_000);
        let mut b = SimEpisode::new(&a_cfg, 3, 1.0, 1_700_000_000_000_000_000);
        let (mut va, mut vb) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            a.next_samples(&mut va);
            b.next_samples(&mut vb);
        }
        assert_eq!(va, vb);
        assert!(va.len() > 400);
    }

    #[test]
    fn rates_match_config_and_arrivals_are_ordered() {
        let cfg = small();
        let mut ep = SimEpisode::new(&cfg, 0, 2.0, 1_700_000_000_000_000_000);
        let mut counts = vec![0u64; ep.streams().len()];
        let mut last_host = 0;
        let mut v = Vec::new();
        while ep.next_samples(&mut v) {
            for s in v.drain(..) {
                assert!(s.host_receive_ns >= last_host);
                last_host = s.host_receive_ns;
                counts[s.stream] += 1;
            }
        }
        for (s, c) in ep.streams().iter().zip(&counts) {
            let expect = s.rate_hz * 2.0;
            assert!(
                (*c as f64 - expect).abs() <= 1.0 + expect * 0.001,
                "{} {c} vs {expect}",
                s.topic
            );
        }
        assert_eq!(ep.streams().len(), 3 + 2 + 1 + 2 + 10);
    }

    #[test]
    fn every_outcome_appears_and_phases_cover_the_episode() {
        let cfg = with_failures(0.25, 0.25, 0.25);
        let mut seen = std::collections::HashSet::new();
        for i in 0..40 {
            let ep = SimEpisode::new(&cfg, i, 10.0, 1_700_000_000_000_000_000);
            let tr = ep.truth();
            seen.insert(tr.outcome);
            assert_eq!(tr.phases.first().unwrap().start_s, 0.0);
            assert_eq!(tr.phases.last().unwrap().end_s, 10.0);
            for w in tr.phases.windows(2) {
                assert!((w[0].end_s - w[1].start_s).abs() < 1e-12);
                assert!(w[0].start_s <= w[0].end_s);
            }
            let has = |p| tr.phases.iter().any(|s| s.phase == p);
            use plan::Phase::*;
            match tr.outcome {
                Outcome::Miss => assert!(!has(Lift) && !has(Transport) && !has(Place)),
                Outcome::Drop => assert!(has(Transport) && !has(Place)),
                _ => assert!(has(Lift) && has(Transport) && has(Place) && has(Release)),
            }
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    #[test]
    fn the_object_is_lifted_on_success_and_stays_on_a_miss() {
        let cfg = with_failures(0.0, 0.0, 0.0);
        let ep = SimEpisode::new(&cfg, 1, 10.0, 0);
        let plan = ep.plan();
        let tr = plan
            .phases
            .iter()
            .find(|p| p.phase == plan::Phase::Transport)
            .unwrap();
        let s = plan.state((tr.start_s + tr.end_s) / 2.0);
        assert!(
            s.held && s.object.translation.z > 0.05,
            "{:?}",
            s.object.translation
        );
        // held object follows the tool, the tool reached the object (IK works)
        assert!((s.object.translation.vector - s.tool.translation.vector).norm() < 0.03);
        let end = plan.state(9.9);
        let tgt = plan.params.target_xy;
        assert!(
            (end.object.translation.x - tgt[0]).abs() < 0.01
                && (end.object.translation.y - tgt[1]).abs() < 0.01
        );
        let cfg = with_failures(0.0, 0.0, 1.0);
        let ep = SimEpisode::new(&cfg, 1, 10.0, 0);
        let end = ep.plan().state(9.9);
        assert!((end.object.translation.vector - ep.plan().object_home).norm() < 1e-9);
    }

    #[test]
    fn wrench_sees_the_object_weight_while_held() {
        let cfg = with_failures(0.0, 0.0, 0.0);
        let mut ep = SimEpisode::new(&cfg, 2, 10.0, 0);
        let tr = ep
            .plan()
            .phases
            .iter()
            .find(|p| p.phase == plan::Phase::Transport)
            .copied()
            .unwrap();
        let m = ep.plan().params.object_mass_kg;
        let mut v = Vec::new();
        let mut loaded = Vec::new();
        let mut idle = Vec::new();
        let right = ep
            .streams()
            .iter()
            .position(|s| s.topic == "/wrist/right/wrench")
            .unwrap();
        while ep.next_samples(&mut v) {
            for s in v.drain(..) {
                if s.stream != right {
                    continue;
                }
                let t = s.sequence as f64 / 1000.0;
                if let Payload::Wrench(w) = &s.payload {
                    let f = w.wrench.force;
                    let n = (f.x * f.x + f.y * f.y + f.z * f.z).sqrt();
                    if t > tr.start_s + 0.2 && t < tr.end_s - 0.2 {
                        loaded.push(n);
                    }
                    if t < 0.4 {
                        idle.push(n);
                    }
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            (mean(&loaded) - m * 9.81).abs() < 0.25 * m * 9.81 + 0.4,
            "loaded {} vs {}",
            mean(&loaded),
            m * 9.81
        );
        assert!(mean(&idle) < 0.5, "idle {}", mean(&idle));
    }
}
