//! `demotape annotate`: automatic phases and outcomes for many episodes, with quality gates.
//!
//! For each episode it writes, next to nothing it modifies:
//! - `<stem>.annotations.json`: the sidecar (phases, outcome, confidence, evidence, gates,
//!   provenance),
//! - `<stem>.annotations.mcap`: a companion MCAP with the `auto` layer on
//!   `/demotape/annotations/auto` (`demotape_msgs/msg/Annotation`), which Foxglove and Rerun
//!   open alongside the episode to show the phases on its timeline.
//!
//! The episode file itself is never touched.

use crate::segment::{Segmentation, segment};
use crate::signals::{SignalConfig, read_signals};
use hal::kinematics::ArmModel;
use hal::msgs::{Annotation, Header, RosMessage, Time};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `demotape annotate` can be told, as TOML (`demotape annotate --config FILE`;
/// `demotape annotate --print-config` shows the defaults).
#[derive(Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnnotateConfig {
    /// Where the signals are (topics, joint names).
    pub signals: SignalConfig,
    /// The robot's arm from its URDF (`urdf`, `base_link`, `tool_link`) and the unit of its
    /// recorded joint positions (`joint_units`).
    pub robot: hal::robot::RobotConfig,
    /// Without `[robot] urdf`: the arm's kinematics in modified DH; the simulated robot's by
    /// default.
    pub arm: ArmModel,
    pub gates: GateConfig,
    /// Where the config file is (relative `robot.urdf` paths start there).
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

impl Default for AnnotateConfig {
    fn default() -> Self {
        AnnotateConfig {
            signals: SignalConfig::default(),
            robot: hal::robot::RobotConfig::default(),
            arm: ArmModel::sim_default("right_arm_"),
            gates: GateConfig::default(),
            dir: None,
        }
    }
}

impl AnnotateConfig {
    /// CRC-32 of the configuration (signals, robot, arm, gates) as JSON: which robot and
    /// which signals a layer, or a model, was made with.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(&(&self.signals, &self.robot, &self.arm, &self.gates))
            .unwrap_or_default();
        format!("{:08x}", crc32fast::hash(json.as_bytes()))
    }

    /// CRC-32 of what says which robot and signals these are (signals, robot, arm; not the
    /// gates): a model learned under one is refused under another.
    pub fn robot_hash(&self) -> String {
        let json =
            serde_json::to_string(&(&self.signals, &self.robot, &self.arm)).unwrap_or_default();
        format!("{:08x}", crc32fast::hash(json.as_bytes()))
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut c: AnnotateConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        c.dir = path.parent().map(Path::to_path_buf);
        c.robot_arm()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(c)
    }

    /// The arm to read and to compute the tool pose with: the URDF chain of `[robot]`, else
    /// the DH `[arm]` with `signals.arm_joints` as its joints (any number of them).
    pub fn robot_arm(&self) -> anyhow::Result<hal::robot::RobotArm> {
        if self.robot.urdf.is_some() {
            let arm = self
                .robot
                .arm(&self.arm, self.dir.as_deref())
                .map_err(|e| anyhow::anyhow!(e))?;
            let default = SignalConfig::default().arm_joints;
            if self.signals.arm_joints != default && self.signals.arm_joints != arm.joint_names() {
                anyhow::bail!(
                    "signals.arm_joints [{}] differ from the joints of the {} [{}]: leave \
                     arm_joints out with a URDF (or pick the chain with robot.base_link / \
                     robot.tool_link)",
                    self.signals.arm_joints.join(", "),
                    arm.describe,
                    arm.joint_names().join(", ")
                );
            }
            return Ok(arm);
        }
        let n = self.arm.links.len();
        // no links at all is a hand (or gripper) without an arm: the tool stays at the base
        if self.arm.limits.len() != n || self.signals.arm_joints.len() != n {
            anyhow::bail!(
                "the DH arm has {n} links, {} joint limits and {} joint names \
                 (signals.arm_joints): they must be as many — all three empty for a hand \
                 without an arm — (or describe the robot with [robot] urdf = \"robot.urdf\")",
                self.arm.limits.len(),
                self.signals.arm_joints.len()
            );
        }
        let mut dh = self.arm.clone();
        dh.joint_names = self.signals.arm_joints.clone();
        Ok(hal::robot::RobotArm::dh(dh, self.robot.joint_units))
    }
}

/// `demotape annotate --print-config`: the defaults (the simulated robot), commented. A unit
/// test checks that it parses to exactly [`AnnotateConfig::default`].
pub const DEFAULT_CONFIG_TOML: &str = r#"# demotape annotate --config FILE: where the signals are and what the robot is.
# Every key may be left out (its default is shown). Times are seconds from the episode start.

[signals]
# sensor_msgs/msg/JointState topic with the arm (and gripper) joints.
joint_topic = "/joint_states"
# The arm's joints in kinematic order. With [robot] urdf, leave this out: the arm's joints
# are the URDF chain's. A hand without an arm: arm_joints = [] with [arm] links = [] and
# limits = [] (no motion; the outcome from the gripper and touch alone).
arm_joints = ["right_arm_joint1", "right_arm_joint2", "right_arm_joint3", "right_arm_joint4", "right_arm_joint5", "right_arm_joint6", "right_arm_joint7"]
# The gripper finger joint; its position × gripper_scale + gripper_offset is the opening (m).
# "" (and no gripper_joints): the robot has no gripper; episodes get `segment` spans, split
# where motion and contact change, and no outcome.
gripper_joint = "right_gripper_finger"
# Or the mean of several joints (a hand's fingers), e.g. for normalized 1 = open fingers:
# gripper_joints = ["kRightHandPinky", "kRightHandRing", "kRightHandMiddle", "kRightHandIndex"]
# gripper_scale = 0.1
gripper_joints = []
# Or a field of any topic (the mean of the numbers it selects), for a gripper that is not a
# joint of joint_topic: its driver's status, e.g.
# gripper_field = "/gripper/status.position"   or   "/hand/state.position[0]"
gripper_field = ""
gripper_scale = 2.0
gripper_offset = 0.0
# geometry_msgs/msg/WrenchStamped at the wrist (tared automatically before each grasp: bias
# and tool weight); a robot without one simply has no such channel.
wrench_topic = "/wrist/right/wrench"
# demotape_msgs/msg/TactileArray fingertip pads (optional); the first gives the contact centroid.
tactile_topics = ["/tactile/right_a_tip", "/tactile/right_b_tip"]
# Pressure (kPa) above which a taxel counts as touching.
contact_kpa = 0.5

[robot]
# The arm from the robot's URDF (xacro expanded), relative to this file, e.g.
# urdf = "ur5e.urdf"
# base_link = "base_link"   # default: the URDF's root link
# tool_link = "tool0"       # default: the leaf with the most movable joints before it
# The unit of the recorded joint positions: "rad" (rad, m: ROS) or "deg" (deg, mm: LeRobot's
# Feetech arms).
joint_units = "rad"

# Without [robot] urdf: the arm in modified Denavit–Hartenberg parameters (Craig), one
# [[arm.links]] per joint (RotX(alpha) TransX(a) RotZ(q + theta_offset) TransZ(d)), the base
# position in the world (m), the tool center point tool_d along the last z axis (m), turned
# by tool_yaw (rad). The default is the simulator's Panda-like arm.
[arm]
joint_names = ["right_arm_joint1", "right_arm_joint2", "right_arm_joint3", "right_arm_joint4", "right_arm_joint5", "right_arm_joint6", "right_arm_joint7"]
base_xyz = [-0.45, 0.0, 0.0]
tool_d = 0.2104
tool_yaw = -0.7853981633974483
limits = [[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698], [-2.8973, 2.8973], [-0.0175, 3.7525], [-2.8973, 2.8973]]
links = [
    { a = 0.0, d = 0.333, alpha = 0.0 },
    { a = 0.0, d = 0.0, alpha = -1.5707963267948966 },
    { a = 0.0, d = 0.316, alpha = 1.5707963267948966 },
    { a = 0.0825, d = 0.0, alpha = 1.5707963267948966 },
    { a = -0.0825, d = 0.384, alpha = -1.5707963267948966 },
    { a = 0.0, d = 0.0, alpha = 1.5707963267948966 },
    { a = 0.088, d = 0.0, alpha = 1.5707963267948966 },
]

# Quality gates: an episode failing one is left out of `export` unless --gates ignore.
[gates]
# Samples the recorder dropped.
max_drops = 0
# Worst device's 99th-percentile clock-fit residual (µs).
max_sync_residual_p99_us = 20000.0
# Share of the episode spent idle.
max_idle_fraction = 0.6
min_duration_s = 2.0
# Largest step of any joint between two samples (rad, or m for prismatic joints, after
# robot.joint_units).
max_joint_jump_rad = 0.2
"#;

/// Quality-gate thresholds (defaults: what a training set can live with).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    pub max_drops: u64,
    pub max_sync_residual_p99_us: f64,
    pub max_idle_fraction: f64,
    pub min_duration_s: f64,
    pub max_joint_jump_rad: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            max_drops: 0,
            max_sync_residual_p99_us: 20_000.0,
            max_idle_fraction: 0.6,
            min_duration_s: 2.0,
            max_joint_jump_rad: 0.2,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Gate {
    pub name: &'static str,
    pub pass: bool,
    pub value: f64,
    pub limit: f64,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseOut {
    pub phase: String,
    pub start_s: f64,
    pub end_s: f64,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Who labelled an episode: the rules, or a model learned from reviewed episodes.
#[derive(Clone, Debug, Serialize)]
pub struct Labeler {
    /// "rules" or "model".
    pub by: &'static str,
    /// The model file given (`annotate --model`), used or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why the model given was not used for this episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Whether the outcome is the model's ("model") or the rules' (and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_by: Option<String>,
    /// How far apart (ms, median over boundaries) the nearest reviewed episodes put the
    /// boundaries: high means a review of this episode would teach the model the most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disagreement_ms: Option<f64>,
    /// The reviewed episodes whose boundaries were transferred, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nearest: Vec<String>,
}

/// Refuse a model made for another robot or signal configuration (exit 2 at the command
/// line): its templates and figures would be read in the wrong units or from other joints.
pub fn check_model(model: &crate::learn::Model, config: &AnnotateConfig) -> anyhow::Result<()> {
    let here = config.robot_hash();
    if model.config_hash != here {
        anyhow::bail!(
            "{}: learned with robot/signal configuration {} (task {:?}, {} episodes), this \
             configuration is {here}: a model is not moved between robots or signal layouts; \
             train one with this --config",
            model.source,
            model.config_hash,
            model.task,
            model.episodes.len()
        );
    }
    Ok(())
}

/// The sidecar document.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeAnnotation {
    pub source: PathBuf,
    pub tool: String,
    pub config_hash: String,
    pub layer: &'static str,
    pub labeler: Labeler,
    /// The last attempt's outcome; `none` when the episode got `segment` spans (no grasp).
    pub outcome: String,
    pub confidence: f64,
    /// Every grasp attempt (a regrasp is a second one), each with its own outcome.
    pub attempts: Vec<crate::segment::Attempt>,
    pub used_signals: Vec<&'static str>,
    pub evidence: Vec<String>,
    /// The episode's outcome figures (`learn::select::descriptor`: how the gripper closed,
    /// what it held and lost, no label in them), which `review list --order coverage` spreads
    /// the first reviews over. Empty without a gripper.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<&'static str, f64>,
    pub phases: Vec<PhaseOut>,
    pub gates: Vec<Gate>,
    pub pass: bool,
}

/// Output paths for an episode.
pub fn outputs(episode: &Path, out_dir: Option<&Path>) -> (PathBuf, PathBuf) {
    let stem = episode
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "episode".into());
    let dir = out_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| episode.parent().map(Path::to_path_buf).unwrap_or_default());
    (
        dir.join(format!("{stem}.annotations.json")),
        dir.join(format!("{stem}.annotations.mcap")),
    )
}

/// Where a failed annotation is recorded (`<stem>.annotations.failed.json`, beside the
/// sidecar it would have been): the review queue lists such episodes with the reason.
pub fn failure_path(episode: &Path, out_dir: Option<&Path>) -> PathBuf {
    let (sidecar, _) = outputs(episode, out_dir);
    PathBuf::from(
        sidecar
            .to_string_lossy()
            .trim_end_matches(".annotations.json")
            .to_string()
            + ".annotations.failed.json",
    )
}

/// [`annotate_file`], and on failure a `<stem>.annotations.failed.json` saying why (so the
/// episode still shows in `demotape review list`); a success removes an earlier failure
/// record once its sidecar is written.
pub fn annotate_or_record(
    episode: &Path,
    out_dir: Option<&Path>,
    config: &AnnotateConfig,
    arm: &hal::robot::RobotArm,
    model: Option<&crate::learn::Model>,
) -> Result<EpisodeAnnotation, String> {
    let failed = failure_path(episode, out_dir);
    match annotate_file(episode, out_dir, config, arm, model) {
        Ok(a) => {
            if failed.exists() {
                let _ = std::fs::remove_file(&failed);
            }
            Ok(a)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            let doc = serde_json::json!({
                "source": episode,
                "error": msg,
                "tool": concat!("demotape ", env!("CARGO_PKG_VERSION")),
                "at_ns": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            });
            if let Some(d) = failed.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(d);
            }
            if let Err(w) = write_atomic(
                &failed,
                serde_json::to_string_pretty(&doc)
                    .unwrap_or_default()
                    .as_bytes(),
            ) {
                tracing::warn!(file = %failed.display(), "could not record the failure: {w}");
            }
            Err(msg)
        }
    }
}

fn lower(o: hal::sim::plan::Outcome) -> String {
    format!("{o:?}").to_lowercase()
}

/// Annotate one episode and write its sidecar and companion MCAP. `arm` is
/// `config.robot_arm()`, built once for a batch (a URDF is read and parsed there). With a
/// `model` (`demotape train`, already checked against `config` by [`check_model`]) its
/// phases and outcome replace the rules' where it applies to the episode; the layer's
/// `labeler` says which labelled it, and why.
pub fn annotate_file(
    episode: &Path,
    out_dir: Option<&Path>,
    config: &AnnotateConfig,
    arm: &hal::robot::RobotArm,
    model: Option<&crate::learn::Model>,
) -> anyhow::Result<EpisodeAnnotation> {
    let (cfg, gates_cfg) = (&config.signals, &config.gates);
    let (signals, start, meta) = read_signals(episode, cfg, arm)?;
    let mut seg: Segmentation = segment(&signals, arm.kin.as_ref());
    let figures: BTreeMap<&'static str, f64> = {
        let series = crate::learn::features::series(&signals, arm.kin.as_ref());
        crate::learn::features::outcome_features(&series, &seg)
            .map(|f| {
                crate::learn::features::OUTCOME_FEATURES
                    .iter()
                    .zip(f)
                    .take(crate::learn::select::DESCRIPTOR_LEN)
                    .filter(|(_, v)| v.is_finite())
                    .map(|(n, v)| (*n, v))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut labeler = Labeler {
        by: "rules",
        model: None,
        why: None,
        outcome_by: None,
        disagreement_ms: None,
        nearest: Vec::new(),
    };
    if let Some(m) = model {
        labeler.model = Some(m.source.clone());
        let series = crate::learn::features::series(&signals, arm.kin.as_ref());
        let task = crate::learn::load::task_of(&meta);
        match crate::learn::refuses(m, &task, &series) {
            Some(why) => {
                tracing::warn!("{}: model {} not used: {why}", episode.display(), m.source);
                labeler.why = Some(why);
            }
            None => match m.predict(&series, &seg, signals.duration_s) {
                p if p.refused.is_some() => {
                    let why = p.refused.unwrap_or_default();
                    tracing::warn!("{}: model {} not used: {why}", episode.display(), m.source);
                    labeler.why = Some(why);
                }
                p => {
                    labeler.by = "model";
                    labeler.outcome_by = Some(p.outcome_source.clone());
                    labeler.disagreement_ms = Some(p.disagreement_ms);
                    labeler.nearest = p.nearest.clone();
                    seg.evidence.push(format!(
                        "model {}: phases from the {} nearest of {} reviewed episodes \
                     (disagreement {:.0} ms); outcome from {}",
                        m.source,
                        p.nearest.len(),
                        m.templates.len(),
                        p.disagreement_ms,
                        p.outcome_source
                    ));
                    if p.outcome != seg.outcome
                        && let (Some(o), Some(last)) = (p.outcome, seg.attempts.last_mut())
                    {
                        last.outcome = o;
                        last.confidence = p.confidence;
                    }
                    seg.phases = p.phases;
                    seg.outcome = p.outcome;
                    seg.confidence = p.confidence;
                }
            },
        }
    }
    let config_hash = config.hash();
    let tool = concat!("demotape ", env!("CARGO_PKG_VERSION")).to_string();

    // gates
    let mut gates = Vec::new();
    let drops: u64 = meta
        .get("demotape.episode_end")
        .and_then(|m| m.get("drops"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    gates.push(Gate {
        name: "drops",
        pass: drops <= gates_cfg.max_drops,
        value: drops as f64,
        limit: gates_cfg.max_drops as f64,
        detail: "samples dropped while recording".into(),
    });
    let worst_sync = meta
        .get("demotape.sync")
        .map(|m| {
            m.values()
                .filter_map(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                .filter_map(|j| j["residual_p99_us"].as_f64())
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0);
    gates.push(Gate {
        name: "sync_residual",
        pass: worst_sync <= gates_cfg.max_sync_residual_p99_us,
        value: worst_sync,
        limit: gates_cfg.max_sync_residual_p99_us,
        detail: "worst device's delay above its clock envelope, p99 (µs)".into(),
    });
    let idle: f64 = seg
        .phases
        .iter()
        .filter(|p| p.phase == hal::sim::plan::Phase::Idle)
        .map(|p| p.end_s - p.start_s)
        .sum::<f64>()
        / signals.duration_s.max(1e-9);
    gates.push(Gate {
        name: "idle_fraction",
        pass: idle <= gates_cfg.max_idle_fraction,
        value: idle,
        limit: gates_cfg.max_idle_fraction,
        detail: "share of the episode spent idle".into(),
    });
    gates.push(Gate {
        name: "duration",
        pass: signals.duration_s >= gates_cfg.min_duration_s,
        value: signals.duration_s,
        limit: gates_cfg.min_duration_s,
        detail: "episode length (s)".into(),
    });
    // A configured stream is missing when the recording has its channel but no message on
    // it (the sensor fell silent); a robot without that sensor (no channel) misses nothing.
    let missing = &signals.silent;
    gates.push(Gate {
        name: "missing_streams",
        pass: missing.is_empty(),
        value: missing.len() as f64,
        limit: 0.0,
        detail: if missing.is_empty() {
            "every recorded stream has messages".into()
        } else {
            format!("declared but silent: {}", missing.join(", "))
        },
    });
    let jump = signals
        .q
        .windows(2)
        .map(|w| {
            w[1].iter()
                .zip(&w[0])
                .map(|(b, a)| (b - a).abs())
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    gates.push(Gate {
        name: "joint_jumps",
        pass: jump <= gates_cfg.max_joint_jump_rad,
        value: jump,
        limit: gates_cfg.max_joint_jump_rad,
        detail: "largest joint step between consecutive samples (rad, or m for prismatic \
                 joints; recorded units converted by robot.joint_units)"
            .into(),
    });
    let pass = gates.iter().all(|g| g.pass);

    let abs = |s: f64| start + (s.max(0.0) * 1e9) as u64;
    let phases: Vec<PhaseOut> = seg
        .phases
        .iter()
        .map(|p| PhaseOut {
            phase: p.phase.as_str().into(),
            start_s: p.start_s,
            end_s: p.end_s,
            start_ns: abs(p.start_s),
            end_ns: abs(p.end_s),
        })
        .collect();
    let doc = EpisodeAnnotation {
        source: episode.into(),
        tool: tool.clone(),
        config_hash: config_hash.clone(),
        layer: "auto",
        labeler,
        outcome: seg.outcome.map_or_else(|| "none".to_string(), lower),
        confidence: seg.confidence,
        attempts: seg.attempts.clone(),
        used_signals: seg.used.clone(),
        evidence: seg.evidence.clone(),
        figures,
        phases,
        gates,
        pass,
    };
    let (json_path, mcap_path) = outputs(episode, out_dir);
    if let Some(d) = json_path.parent() {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
    }
    write_atomic(&json_path, serde_json::to_vec_pretty(&doc)?.as_slice())?;
    write_layer(&mcap_path, &doc, &seg, start)?;
    Ok(doc)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

fn write_layer(
    path: &Path,
    doc: &EpisodeAnnotation,
    seg: &Segmentation,
    start: u64,
) -> anyhow::Result<()> {
    let tmp = path.with_extension("mcap.tmp");
    let (mut w, ch) = layer_writer(&tmp, "auto", &doc.tool)?;
    let prov = format!("{} config {}", doc.tool, doc.config_hash);
    let evidence = seg.evidence.join("; ");
    let mut seq = 0u32;
    let mut put = |w: &mut mcap::Writer<_>,
                   kind: &str,
                   label: &str,
                   a: u64,
                   b: u64,
                   conf: f64,
                   ev: &str|
     -> anyhow::Result<()> {
        let msg = Annotation {
            header: Header {
                stamp: Time::from_nanos(a),
                frame_id: String::new(),
            },
            layer: "auto".into(),
            kind: kind.into(),
            label: label.into(),
            start: Time::from_nanos(a),
            end: Time::from_nanos(b),
            confidence: conf,
            evidence: ev.into(),
            provenance: prov.clone(),
        };
        let data = msg.encode()?;
        w.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: ch,
                sequence: seq,
                log_time: a,
                publish_time: a,
            },
            &data,
        )?;
        seq += 1;
        Ok(())
    };
    for p in &doc.phases {
        put(
            &mut w,
            "phase",
            &p.phase,
            p.start_ns,
            p.end_ns,
            seg.confidence,
            &doc.used_signals.join(","),
        )?;
    }
    let grasp = seg
        .phases
        .iter()
        .find(|p| p.phase == hal::sim::plan::Phase::Grasp)
        .map_or(0.0, |p| p.start_s);
    let end = seg.phases.last().map_or(0.0, |p| p.end_s);
    if seg.outcome.is_some() {
        put(
            &mut w,
            "outcome",
            &doc.outcome,
            start + (grasp * 1e9) as u64,
            start + (end * 1e9) as u64,
            doc.confidence,
            &evidence,
        )?;
    }
    w.write_metadata(&mcap::records::Metadata {
        name: "demotape.annotation".into(),
        metadata: BTreeMap::from([
            ("source".to_string(), doc.source.display().to_string()),
            ("tool".to_string(), doc.tool.clone()),
            ("config_hash".to_string(), doc.config_hash.clone()),
            ("layer".to_string(), "auto".to_string()),
        ]),
    })?;
    w.finish()?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

/// A companion MCAP (being written at `path`) with one annotation channel,
/// `/demotape/annotations/<layer>`.
pub(crate) fn layer_writer(
    path: &Path,
    layer: &str,
    library: &str,
) -> anyhow::Result<(mcap::Writer<std::io::BufWriter<std::fs::File>>, u16)> {
    let file =
        std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut w = mcap::WriteOptions::new()
        .profile("ros2")
        .library(library)
        .create(std::io::BufWriter::new(file))?;
    let sid = w.add_schema(
        Annotation::TYPE_NAME,
        "ros2msg",
        Annotation::schema_text().as_bytes(),
    )?;
    let ch = w.add_channel(
        sid,
        &format!("/demotape/annotations/{layer}"),
        "cdr",
        &BTreeMap::new(),
    )?;
    Ok((w, ch))
}

/// Episodes under `paths` (files as given; directories searched recursively for `.mcap`),
/// each by its first file: the later parts of a split episode found beside their first are
/// left out (they are read with it). Companion files (`*.annotations*.mcap`) are never
/// episodes: skipped in directories, and left out with a warning when named.
pub fn collect(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "mcap") && !crate::read::is_companion(&p) {
                out.push(p);
            }
        }
    }
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out);
        } else if crate::read::is_companion(p) {
            tracing::warn!(
                "{}: a demotape companion file (labels), not an episode; left out",
                p.display()
            );
        } else {
            out.push(p.clone());
        }
    }
    // the later parts of a split episode are read with its first
    crate::read::episode_heads(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_gripper_field_leaves_the_robot_hash_as_it_was() {
        let c = AnnotateConfig::default();
        let json = serde_json::to_string(&c.signals).unwrap();
        assert!(!json.contains("gripper_field"), "{json}");
        let mut f = c.clone();
        f.signals.gripper_field = "/gripper/status.position".into();
        assert_ne!(c.robot_hash(), f.robot_hash());
    }

    #[test]
    fn printed_defaults_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, toml::to_string(&AnnotateConfig::default()).unwrap()).unwrap();
        let mut loaded = AnnotateConfig::load(&p).unwrap();
        assert_eq!(loaded.dir.as_deref(), Some(dir.path()));
        loaded.dir = None;
        assert_eq!(loaded, AnnotateConfig::default());
        std::fs::write(&p, "[arm]\nlinks = []\n").unwrap();
        let e = AnnotateConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("a.toml"), "{e}");
        std::fs::write(&p, "[signals]\nbogus = 1\n").unwrap();
        assert!(
            AnnotateConfig::load(&p)
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
    }

    #[test]
    fn a_hand_without_an_arm_is_a_robot_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hand.toml");
        std::fs::write(
            &p,
            "[signals]\narm_joints = []\ngripper_joints = [\"f1\", \"f2\"]\n\
             [arm]\njoint_names = []\nbase_xyz = [0.0, 0.0, 0.0]\ntool_d = 0.0\ntool_yaw = 0.0\nlinks = []\nlimits = []\n",
        )
        .unwrap();
        let c = AnnotateConfig::load(&p).unwrap();
        let arm = c.robot_arm().unwrap();
        assert!(arm.joint_names().is_empty());
        let base = arm.kin.fk(&[]);
        assert!(base.translation.vector.iter().all(|x| x.is_finite()));
        // an arm whose lists disagree is still an error naming the three counts
        std::fs::write(
            &p,
            "[signals]\narm_joints = []\n[arm]\njoint_names = []\nbase_xyz = [0.0, 0.0, 0.0]\ntool_d = 0.0\ntool_yaw = 0.0\nlinks = []\nlimits = [[0.0, 1.0]]\n",
        )
        .unwrap();
        let e = AnnotateConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("0 links, 1 joint limits and 0 joint names"),
            "{e}"
        );
    }

    #[test]
    fn the_commented_defaults_are_the_defaults() {
        let c: AnnotateConfig = toml::from_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(c, AnnotateConfig::default());
    }

    #[test]
    fn a_urdf_gives_the_arm_with_its_own_joints_and_units() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("arm.urdf"),
            hal::robot::sim_arm_urdf("arm_"),
        )
        .unwrap();
        let p = dir.path().join("robot.toml");
        // a natural config: the URDF (relative to the config), the units; no joint list
        std::fs::write(&p, "[robot]\nurdf = \"arm.urdf\"\njoint_units = \"deg\"\n").unwrap();
        let c = AnnotateConfig::load(&p).unwrap();
        let arm = c.robot_arm().unwrap();
        assert_eq!(arm.joint_names().len(), 7);
        assert_eq!(arm.joint_names()[0], "arm_joint1");
        let mut q = vec![90.0; 7];
        arm.to_si(&mut q);
        assert!((q[0] - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
        // a joint list that contradicts the URDF is named, with the chain's joints
        std::fs::write(
            &p,
            "[robot]\nurdf = \"arm.urdf\"\n[signals]\narm_joints = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let e = format!("{:#}", AnnotateConfig::load(&p).unwrap_err());
        assert!(e.contains("arm_joint1") && e.contains("[a, b]"), "{e}");
        // a tool link the URDF does not have
        std::fs::write(&p, "[robot]\nurdf = \"arm.urdf\"\ntool_link = \"hand\"\n").unwrap();
        let e = format!("{:#}", AnnotateConfig::load(&p).unwrap_err());
        assert!(e.contains("no link \"hand\""), "{e}");
        // a DH arm of another size is fine when its joint names match
        std::fs::write(
            &p,
            "[arm]\njoint_names = [\"j1\", \"j2\"]\nbase_xyz = [0.0, 0.0, 0.0]\ntool_d = 0.1\ntool_yaw = 0.0\n\
             links = [{ a = 0.0, d = 0.1, alpha = 0.0 }, { a = 0.3, d = 0.0, alpha = 1.5 }]\n\
             limits = [[-3.0, 3.0], [-3.0, 3.0]]\n[signals]\narm_joints = [\"j1\", \"j2\"]\n",
        )
        .unwrap();
        let c = AnnotateConfig::load(&p).unwrap();
        assert_eq!(c.robot_arm().unwrap().joint_names(), ["j1", "j2"]);
    }
}
