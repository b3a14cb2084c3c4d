//! Read the signals segmentation needs from a recorded episode (joints, gripper, wrench,
//! fingertip touch), decoding only their chunks, with checked CDR decoding.

use crate::read::read_selected_parts;
use crate::segment::Signals;
use hal::msgs::JointState;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Which topics and joints carry the signals. Defaults follow the simulator and
/// `shared/design/conventions.md`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignalConfig {
    pub joint_topic: String,
    /// The arm's joints in kinematic order (with `[robot] urdf`: the chain's joints, and this
    /// key must be left at its default or equal them).
    pub arm_joints: Vec<String>,
    /// The gripper finger joint; the opening is `gripper_scale` × its position +
    /// `gripper_offset`. Empty (with no `gripper_joints`): the robot has no gripper (a fixed
    /// tool, a part held from the start); the episode is then split into `segment` spans.
    pub gripper_joint: String,
    /// Instead of one joint: the mean position of these (a dexterous hand's fingers, e.g.
    /// `kRightHandPinky`…`kRightHandIndex` normalized 1 = open) is the position.
    pub gripper_joints: Vec<String>,
    /// Instead of joints: a field of any topic, `/topic.field.path` (e.g. a gripper driver's
    /// `/gripper/status.position`, or `/hand/state.position[0]`); the mean of the numbers it
    /// selects is the position. Empty: the gripper comes from the joint states. (Left out of
    /// the serialized config when empty, so configs without it hash as before: layers and
    /// models made under them still apply.)
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gripper_field: String,
    pub gripper_scale: f64,
    pub gripper_offset: f64,
    pub wrench_topic: String,
    /// Fingertip pads; the first one also gives the contact centroid.
    pub tactile_topics: Vec<String>,
    /// Pressure (kPa) above which a taxel counts as in contact.
    pub contact_kpa: f32,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            joint_topic: "/joint_states".into(),
            arm_joints: (1..=7).map(|i| format!("right_arm_joint{i}")).collect(),
            gripper_joint: "right_gripper_finger".into(),
            gripper_joints: Vec::new(),
            gripper_field: String::new(),
            gripper_scale: 2.0,
            gripper_offset: 0.0,
            wrench_topic: "/wrist/right/wrench".into(),
            tactile_topics: vec!["/tactile/right_a_tip".into(), "/tactile/right_b_tip".into()],
            contact_kpa: 0.5,
        }
    }
}

/// Deserializes a string without keeping (or allocating) it.
struct SkipStr;
impl<'de> Deserialize<'de> for SkipStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SkipStr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SkipStr, E> {
                Ok(SkipStr)
            }
        }
        d.deserialize_str(V)
    }
}

/// Deserializes a sequence of f64 without storing it.
struct SkipF64s;
impl<'de> Deserialize<'de> for SkipF64s {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SkipF64s;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of float64")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SkipF64s, A::Error> {
                while seq.next_element::<f64>()?.is_some() {}
                Ok(SkipF64s)
            }
        }
        d.deserialize_seq(V)
    }
}

/// A message's joint names, hashed and counted without allocating: which publisher it came
/// from, when several share the joint-state topic (an arm driver and a gripper driver).
struct NamesKey {
    hash: u64,
    len: usize,
}
impl<'de> Deserialize<'de> for NamesKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        struct Name<'a>(&'a mut DefaultHasher);
        impl<'de> serde::de::DeserializeSeed<'de> for Name<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                struct V<'a>(&'a mut DefaultHasher);
                impl serde::de::Visitor<'_> for V<'_> {
                    type Value = ();
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a joint name")
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
                        s.hash(self.0);
                        Ok(())
                    }
                }
                d.deserialize_str(V(self.0))
            }
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NamesKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of joint names")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NamesKey, A::Error> {
                let mut h = DefaultHasher::new();
                let mut len = 0;
                while seq.next_element_seed(Name(&mut h))?.is_some() {
                    len += 1;
                }
                Ok(NamesKey {
                    hash: h.finish(),
                    len,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// The fields of a JointState that segmentation uses, decoded without allocating the joint
/// names of every message (each publisher's names are read once).
#[derive(Deserialize)]
struct JointPositions {
    _sec: i32,
    _nanosec: u32,
    _frame_id: SkipStr,
    name: NamesKey,
    position: Vec<f64>,
    _velocity: SkipF64s,
    _effort: SkipF64s,
}

/// WrenchStamped without its frame id.
#[derive(Deserialize)]
struct WrenchLite {
    _sec: i32,
    _nanosec: u32,
    _frame_id: SkipStr,
    f: [f64; 6],
}

/// TactileArray without its strings.
#[derive(Deserialize)]
struct TactileLite {
    _sec: i32,
    _nanosec: u32,
    _frame_id: SkipStr,
    _pad: SkipStr,
    _rows: u32,
    cols: u32,
    _taxel_size: f32,
    pressure: Vec<f32>,
}

fn decode<T: for<'de> Deserialize<'de>>(data: &[u8]) -> Option<T> {
    hal::msgs::decode(data).ok()
}

pub use crate::read::Metadata;

/// Linear interpolation of time-sorted `(t, v)` samples at `t`, clamped to the ends (exact at
/// a sample's own time).
fn interpolate(samples: &[(f64, f64)], t: f64) -> f64 {
    let i = samples.partition_point(|s| s.0 < t);
    match (samples.get(i.wrapping_sub(1)), samples.get(i)) {
        (_, Some(b)) if b.0 == t => b.1,
        (Some(a), Some(b)) => a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0),
        (Some(a), None) => a.1,
        (None, Some(b)) => b.1,
        (None, None) => 0.0,
    }
}

/// Signals of `path` (with its later parts, when the recorder split the episode), with times
/// in seconds from the episode start (from its metadata, else the first message). Returns
/// them, the episode start (ns) and the metadata records.
/// `arm` says which joints to read (in chain order) and in what unit they were recorded;
/// [`Signals::q`] holds them in SI units.
pub fn read_signals(
    path: &Path,
    cfg: &SignalConfig,
    arm: &hal::robot::RobotArm,
) -> anyhow::Result<(Signals, u64, Metadata)> {
    let arm_joints = arm.joint_names();
    let gripper_field: Option<crate::decode::TopicPath> = if cfg.gripper_field.is_empty() {
        None
    } else {
        Some(
            cfg.gripper_field
                .parse()
                .map_err(|e| anyhow::anyhow!("signals.gripper_field: {e}"))?,
        )
    };
    let want = |topic: &str, _: &str| {
        topic == cfg.joint_topic
            || topic == cfg.wrench_topic
            || cfg.tactile_topics.iter().any(|t| t == topic)
            || gripper_field.as_ref().is_some_and(|g| g.topic == topic)
    };
    // a split episode is read whole, from this part on
    let mut parts = crate::read::episode_parts(path)?;
    if let Some(m) = &parts.missing {
        tracing::warn!(
            "{}: its later part {} is missing; reading the episode up to there",
            path.display(),
            m.display()
        );
    }
    let sel = read_selected_parts(&mut parts, want)?;
    let joints = sel.by_topic(&cfg.joint_topic);
    // with no joint states at all, a wrist wrench alone still gives contact segments
    let wrench_only = joints.is_empty() && !sel.by_topic(&cfg.wrench_topic).is_empty();
    if joints.is_empty() && !wrench_only {
        anyhow::bail!(
            "{}: no messages on {} nor on {} (segmentation needs joint states or a wrist wrench)",
            path.display(),
            cfg.joint_topic,
            cfg.wrench_topic
        );
    }
    let first = sel
        .messages
        .values()
        .flatten()
        .map(|m| m.header.log_time)
        .min()
        .unwrap_or(0);
    let last = sel
        .messages
        .values()
        .flatten()
        .map(|m| m.header.log_time)
        .max()
        .unwrap_or(0);
    let start = sel
        .metadata
        .get("demotape.episode")
        .and_then(|m| m.get("start_ns"))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s <= first)
        .unwrap_or(first);
    let end = sel
        .metadata
        .get("demotape.episode_end")
        .and_then(|m| m.get("end_ns"))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(last)
        .max(last);
    let rel = |t: u64| t.saturating_sub(start) as f64 * 1e-9;
    let mut s = Signals {
        duration_s: rel(end),
        ..Default::default()
    };
    // Each publisher's layout (names hash → where the arm joints and the gripper are), read
    // once from its first message. The arm may come from one publisher and the gripper from
    // another: arm samples carry the gripper opening interpolated at their times.
    // (where the arm joints are, where the gripper joints are) in that publisher's names
    type Layout = (Option<Vec<usize>>, Option<Vec<usize>>);
    let mut layouts: HashMap<u64, Layout> = HashMap::new();
    let mut arm_q: Vec<(f64, Vec<f64>)> = Vec::new();
    let mut seen_names: Vec<String> = Vec::new();
    let mut grip: Vec<(f64, f64)> = Vec::new();
    let mut bad = 0usize;
    // `gripper_joint = ""`, no `gripper_joints` and no `gripper_field`: a robot without a
    // gripper
    let no_gripper =
        cfg.gripper_joint.is_empty() && cfg.gripper_joints.is_empty() && gripper_field.is_none();
    // a gripper from a topic field: not from the joint states
    let gripper_in_joints = !no_gripper && gripper_field.is_none();
    if let Some(g) = &gripper_field {
        let found = crate::decode::path_samples(&sel, g)
            .map_err(|e| anyhow::anyhow!("{}: signals.gripper_field: {e:#}", path.display()))?;
        let Some(ps) = found.or_else(|| wrench_only.then(Default::default)) else {
            anyhow::bail!(
                "{}: signals.gripper_field = {:?}: the recording has no messages on {}",
                path.display(),
                cfg.gripper_field,
                g.topic
            );
        };
        ps.warn_skipped(g, Some(path));
        for (t, values) in &ps.samples {
            let pos = values.iter().map(|(_, x)| x).sum::<f64>() / values.len() as f64;
            grip.push((rel(*t), cfg.gripper_scale * pos + cfg.gripper_offset));
        }
    }
    for m in joints {
        let Some(js) = decode::<JointPositions>(&m.data) else {
            bad += 1;
            continue;
        };
        if js.name.len != js.position.len() {
            bad += 1;
            continue;
        }
        let (a, g) = match layouts.get(&js.name.hash) {
            Some(l) => l.clone(),
            None => {
                let Some(full) = decode::<JointState>(&m.data) else {
                    bad += 1;
                    continue;
                };
                let find = |n: &str| full.name.iter().position(|x| x == n);
                let a: Option<Vec<usize>> = arm_joints.iter().map(|n| find(n)).collect();
                for n in &full.name {
                    if !seen_names.contains(n) {
                        seen_names.push(n.clone());
                    }
                }
                let g: Option<Vec<usize>> = if !gripper_in_joints {
                    None
                } else if cfg.gripper_joints.is_empty() {
                    find(&cfg.gripper_joint).map(|i| vec![i])
                } else {
                    cfg.gripper_joints.iter().map(|n| find(n)).collect()
                };
                let l = (a, g);
                layouts.insert(js.name.hash, l.clone());
                l
            }
        };
        let t = rel(m.header.log_time);
        if let Some(a) = a {
            let mut q: Vec<f64> = a.iter().map(|&k| js.position[k]).collect();
            arm.to_si(&mut q);
            arm_q.push((t, q));
        }
        if let Some(g) = g {
            let pos = g.iter().map(|&k| js.position[k]).sum::<f64>() / g.len() as f64;
            grip.push((t, cfg.gripper_scale * pos + cfg.gripper_offset));
        }
    }
    if layouts.is_empty() && bad > 0 {
        anyhow::bail!(
            "{}: unreadable: none of the {bad} messages on {} decodes as sensor_msgs/msg/JointState (truncated or malformed CDR)",
            path.display(),
            cfg.joint_topic
        );
    }
    if !wrench_only && (arm_q.is_empty() || (grip.is_empty() && !no_gripper)) {
        let (what, want): (&str, Vec<&str>) = if arm_q.is_empty() {
            (
                "arm joints",
                arm_joints
                    .iter()
                    .filter(|n| !seen_names.contains(n))
                    .map(String::as_str)
                    .collect(),
            )
        } else {
            if let Some(g) = &gripper_field {
                ("gripper field", vec![g.topic.as_str()])
            } else if cfg.gripper_joints.is_empty() {
                ("gripper joint", vec![cfg.gripper_joint.as_str()])
            } else {
                (
                    "gripper joints",
                    cfg.gripper_joints
                        .iter()
                        .filter(|n| !seen_names.contains(n))
                        .map(String::as_str)
                        .collect(),
                )
            }
        };
        anyhow::bail!(
            "{}: {} lacks the configured {what} (missing: {}; the messages name: {}; the arm \
             is the {})",
            path.display(),
            cfg.joint_topic,
            want.join(", "),
            seen_names.join(", "),
            arm.describe
        );
    }
    // in time order (chunks may interleave slightly)
    arm_q.sort_by(|x, y| x.0.total_cmp(&y.0));
    grip.sort_by(|x, y| x.0.total_cmp(&y.0));
    for (t, q) in arm_q {
        s.t.push(t);
        s.q.push(q);
        if !grip.is_empty() {
            s.aperture.push(interpolate(&grip, t));
        }
    }
    let w = sel.by_topic(&cfg.wrench_topic);
    if !w.is_empty() {
        let mut rows: Vec<(f64, [f64; 6])> = w
            .iter()
            .filter_map(|m| {
                let x = decode::<WrenchLite>(&m.data)?;
                Some((rel(m.header.log_time), x.f))
            })
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        s.wrench = Some((
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        ));
    }
    if cfg
        .tactile_topics
        .iter()
        .any(|t| !sel.by_topic(t).is_empty())
    {
        let mut acc: std::collections::BTreeMap<u64, (f64, f64, f64)> = Default::default();
        for (k, topic) in cfg.tactile_topics.iter().enumerate() {
            for m in sel.by_topic(topic) {
                let Some(ta) = decode::<TactileLite>(&m.data) else {
                    continue;
                };
                let e = acc.entry(m.header.log_time).or_default();
                for (i, p) in ta.pressure.iter().enumerate() {
                    e.0 += f64::from(*p);
                    if k == 0 && *p > cfg.contact_kpa && ta.cols > 0 {
                        e.1 += f64::from(*p);
                        e.2 += f64::from(*p) * (i / ta.cols as usize) as f64;
                    }
                }
            }
        }
        let mut last = 0.0;
        let mut tt = Vec::new();
        let mut tot = Vec::new();
        let mut cen = Vec::new();
        for (t, (total, w, wr)) in acc {
            if w > 5.0 {
                last = wr / w;
            }
            tt.push(rel(t));
            tot.push(total);
            cen.push(last);
        }
        s.tactile = Some((tt, tot, cen));
    }
    if bad > 0 {
        tracing::warn!(file = %path.display(), bad, "undecodable joint-state messages skipped");
    }
    let declared = |t: &str| sel.channels.values().any(|c| c.topic == t);
    for t in std::iter::once(&cfg.wrench_topic)
        .chain(&cfg.tactile_topics)
        .chain(gripper_field.as_ref().map(|g| &g.topic))
    {
        if declared(t) && sel.by_topic(t).is_empty() {
            s.silent.push(t.clone());
        }
    }
    Ok((s, start, sel.metadata))
}
